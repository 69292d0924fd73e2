#!/usr/bin/python3
"""Differential test of nnh5's safetensors reader against an independent model.

usage: st_diff.py ST_CHECK WORKDIR [COUNT]

The model below is written from the format's description (doc/FORMATS.md,
"safetensors"; the reference reader huggingface/safetensors tensor.rs), not
from nnh5's C code. COUNT files (default 12,000) are generated: valid files
in the reference writer's layout and mutations of them (byte flips, cuts,
appended bytes, header-length edits, and edits of the JSON text: offsets,
shapes, dtypes, duplicates, numbers, escapes, whitespace). Each file is read
strictly and a sample leniently by nnh5 (ST_CHECK, tests/formats/st_check.c)
and by the model: the accept/refuse decision and, when accepted, the
tensors (names, dtypes, shapes, XXH3 of the bytes) and metadata must match.
"""
import json
import os
import random
import struct
import sys

import xxhash

MAX_HEADER = 100_000_000
U64 = 1 << 64
# safetensors dtype -> (bits per element, nnh5 dtype or None: not representable)
DTYPES = {"BOOL": (8, "bool"), "U8": (8, "uint8"), "I8": (8, "int8"), "I16": (16, "int16"),
          "U16": (16, "uint16"), "I32": (32, "int32"), "U32": (32, "uint32"),
          "I64": (64, "int64"), "U64": (64, "uint64"), "F16": (16, "float16"),
          "BF16": (16, "bfloat16"), "F32": (32, "float32"), "F64": (64, "float64"),
          "C64": (64, "complex64"), "F8_E4M3": (8, "float8_e4m3fn"),
          "F8_E5M2": (8, "float8_e5m2"), "F8_E8M0": (8, None), "F8_E4M3FNUZ": (8, None),
          "F8_E5M2FNUZ": (8, None), "F6_E2M3": (6, None), "F6_E3M2": (6, None),
          "F4": (4, None)}


class Refused(Exception):
    pass


def pairs_hook(pairs):
    return ("obj", pairs)  # keep duplicates: the rules say where they matter


def no_constant(name):
    raise Refused(f"not JSON: {name}")


def has_surrogate(s):
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def strings_ok(v):
    """No lone surrogates anywhere (Python's json lets them through; JSON readers of Rust do not)."""
    if isinstance(v, str):
        return not has_surrogate(v)
    if isinstance(v, tuple) and v[0] == "obj":
        return all(strings_ok(k) and strings_ok(x) for k, x in v[1])
    if isinstance(v, list):
        return all(strings_ok(x) for x in v)
    return True


I64 = 1 << 63


def jansson_ok(v):
    """nnh5's rules stricter than the reference's code, anywhere in the header (nnh5 reads
    it with jansson; the reference ignores unknown fields unchecked): a name given twice or
    holding a NUL character, an integer outside int64, a real beyond a double's range."""
    if isinstance(v, tuple) and v[0] == "obj":
        keys = [k for k, _ in v[1]]
        return (len(set(keys)) == len(keys) and not any("\0" in k for k in keys)
                and all(jansson_ok(x) for _, x in v[1]))
    if isinstance(v, tuple) and v[0] == "float":
        return abs(float(v[1])) != float("inf")
    if isinstance(v, list):
        return all(jansson_ok(x) for x in v)
    if type(v) is int:
        return -I64 <= v < I64
    return True


def depth(v):
    if isinstance(v, tuple) and v[0] == "obj":
        return 1 + max((depth(x) for _, x in v[1]), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


def members(v):
    if isinstance(v, tuple) and v[0] == "obj":
        return len(v[1]) + sum(members(x) for _, x in v[1])
    if isinstance(v, list):
        return len(v) + sum(members(x) for x in v)
    return 0


def u64(v):
    return type(v) is int and 0 <= v < U64


def model(buf, lenient):
    """(tensors sorted by name, metadata) or raise Refused."""
    if len(buf) < 8:
        raise Refused("too small")
    n = struct.unpack("<Q", buf[:8])[0]
    if n > MAX_HEADER or 8 + n > len(buf):
        raise Refused("header length")
    try:
        text = buf[8:8 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("utf-8") from None
    if not lenient and not text.startswith("{"):
        raise Refused("start")
    try:
        root = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=no_constant,
                          parse_float=lambda s: ("float", s))
    except (ValueError, RecursionError):
        raise Refused("json") from None
    if depth(root) >= 128:  # serde_json's recursion limit
        raise Refused("depth")
    if members(root) > 2_000_000:  # nnh5's bound on the header's tree
        raise Refused("size")
    if not strings_ok(root) or not (isinstance(root, tuple) and root[0] == "obj"):
        raise Refused("json")
    if not jansson_ok(root):
        raise Refused("stricter")
    keys = [k for k, _ in root[1]]
    if len(set(keys)) != len(keys):
        raise Refused("duplicate")
    meta, tensors = [], []
    for k, v in root[1]:
        if "\0" in k:
            raise Refused("nul")
        if k == "__metadata__":
            if v is None:
                continue
            if not (isinstance(v, tuple) and v[0] == "obj"):
                raise Refused("metadata")
            mk = [a for a, _ in v[1]]
            if len(set(mk)) != len(mk) or not all(isinstance(b, str) for _, b in v[1]):
                raise Refused("metadata")
            meta = list(v[1])
            continue
        if not (isinstance(v, tuple) and v[0] == "obj"):
            raise Refused("entry")
        fields = dict(v[1])
        for f in ("dtype", "shape", "data_offsets"):
            if [a for a, _ in v[1]].count(f) != 1:
                raise Refused("fields")
        dt, shape, offs = fields["dtype"], fields["shape"], fields["data_offsets"]
        if not isinstance(dt, str) or dt not in DTYPES:
            raise Refused("dtype")
        if not isinstance(shape, list) or not all(u64(d) for d in shape):
            raise Refused("shape")
        if not isinstance(offs, list) or len(offs) != 2 or not all(u64(o) for o in offs):
            raise Refused("offsets")
        tensors.append((k, dt, shape, offs[0], offs[1]))
    tensors.sort(key=lambda t: (t[3], t[4]))
    start = 0
    for name, dt, shape, b, e in tensors:
        if b != start or e < b:
            raise Refused("tiling")
        start = e
        ne = 1
        for d in shape:  # checked_mul fold: the first overflow refuses
            ne *= d
            if ne >= U64:
                raise Refused("overflow")
        nbits = ne * DTYPES[dt][0]
        if nbits >= U64:
            raise Refused("overflow")
        if nbits % 8 or e - b != nbits // 8:
            raise Refused("size")
    data_len = len(buf) - 8 - n
    if start > data_len or (not lenient and start != data_len):
        raise Refused("buffer")
    out = []
    for name, dt, shape, b, e in tensors:
        if DTYPES[dt][1] is None or len(shape) > 32 or any(d >= 1 << 63 for d in shape):
            raise Refused("unrepresentable")
        raw = buf[8 + n + b:8 + n + e]
        out.append((hx(name), DTYPES[dt][1], ",".join(map(str, shape)) or "-",
                    f"{xxhash.xxh3_64_intdigest(raw):016x}"))
    if any("\0" in a or "\0" in b for a, b in meta):
        raise Refused("nul")
    return sorted(out), [f"{hx(a)}={hx(b)}" for a, b in meta]


def hx(s):
    """As st_check prints names: UTF-8 in hex, "-" when empty."""
    return s.encode("utf-8").hex() or "-"


def parse_c(line):
    w = line.split(" ")
    if w[0] == "REFUSED":
        return None
    n = int(w[1])
    body = w[2:2 + 4 * n]
    tensors = sorted(tuple(body[i:i + 4]) for i in range(0, 4 * n, 4))
    meta = [w[k + 1] for k in range(2 + 4 * n, len(w), 2) if w[k] == "M"]
    return tensors, meta


# ------------------------------------------------------------------ generation

def writer(tensors, meta):
    """A file the way the reference writer lays it out (any order of the JSON keys)."""
    hdr, data, off = {}, b"", 0
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


NAMES = ["w", "b", "layer.0.weight", "emb", "é", "a b", "x\"q", "\u2603", "", "t\\n"]


def valid(rng):
    tensors = []
    for i in range(rng.randint(0, 5)):
        dt = rng.choice(list(DTYPES) if rng.random() < 0.15 else
                        [d for d in DTYPES if DTYPES[d][1]])
        shape = [rng.choice([0, 1, 2, 3, 5]) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4]))]
        ne = 1
        for d in shape:
            ne *= d
        raw = bytes(rng.getrandbits(8) for _ in range(ne * DTYPES[dt][0] // 8))
        tensors.append((rng.choice(NAMES) + str(i), dt, shape, raw))
    meta = None
    if rng.random() < 0.4:
        meta = {"format": "pt", rng.choice(NAMES): rng.choice(NAMES)}
    return writer(tensors, meta)


TEXT_EDITS = [
    (b'"data_offsets":[0,', b'"data_offsets":[1,'), (b'"data_offsets":[0,', b'"data_offsets":[-0,'),
    (b'"shape":[', b'"shape":[1,'), (b'"shape":[', b'"shape":[0,'), (b'"shape":[2', b'"shape":[2.0'),
    (b'"shape":[', b'"shape":[18446744073709551616,'), (b'"shape":[', b'"shape":[9223372036854775808,0,'),
    (b'"shape":[', b'"shape":[4294967296,4294967296,0,'), (b'"F32"', b'"F33"'), (b'"F32"', b'"F8_E8M0"'),
    (b'"I8"', b'"F4"'), (b'"U8"', b'"BOOL"'), (b'"dtype"', b'"dtype":"U8","dtype"'),
    (b'"dtype"', b'"xtra":[1,{"a":1,"a":2}],"dtype"'), (b'{"', b' {"'), (b'{"', b'\n\t{"'),
    (b'"format":"pt"', b'"format":1'), (b'"format"', b'"format":"x","format"'),
    (b'{"__metadata__":', b'{"__metadata__":null,"__metadata__":'), (b'"pt"', b'"p\\ud800t"'),
    (b'"pt"', b'"p\\ud83d\\ude00t"'), (b'"pt"', b'"p\\u0000t"'), (b'"pt"', b'"p\tt"'),
    (b'"pt"', b'"p\\qt"'), (b'"w0"', b'"b0"'), (b'"w0"', b'"__metadata__"'), (b'}', b'}}'),
    (b'],"data', b'],"data_offsets":[0,0],"data'), (b'"shape":[', b'"shape":['),
    (b'"data_offsets":[', b'"data_offsets":[0,0,'), (b'"data_offsets"', b'"data_offset"'),
    (b':[0,', b':[0 ,'), (b'"shape":[]', b'"shape":[1]'), (b'"shape":[]', b'"shape":null'),
    (b'"dtype"', b'"deep":' + b'[' * 125 + b']' * 125 + b',"dtype"'),
    (b'"dtype"', b'"deep":' + b'[' * 126 + b']' * 126 + b',"dtype"'),
    (b'"shape":[', b'"shape":[4611686018427387904,'), (b'"I8"', b'"F6_E2M3"'),
    (b'{"', b'{"d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"'),
    (b'{"', b'{"d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'
            b'"d":{"dtype":"I8","shape":[0],"data_offsets":[0,0]},"'),
    (b'true', b'tru'), (b'{', b'['), (b'"', b"'"), (b'1', b'01'), (b'1', b'1e0'), (b'0]', b'0 ]'),
    # ignored fields: what jansson reads (int64, doubles, NUL in values) and what it refuses
    (b'"dtype"', b'"xtra":[9223372036854775807,-9223372036854775808,1e-400,"a\\u0000"],"dtype"'),
    (b'"dtype"', b'"xtra":[9223372036854775808],"dtype"'), (b'"dtype"', b'"xtra":-1e400,"dtype"'),
    (b'"dtype"', b'"xtra":{"a\\u0000":1},"dtype"'),
]


def set_len(buf, n):
    return struct.pack("<Q", n) + buf[8:]


def mutate(rng, buf):
    k = rng.randrange(10)
    if len(buf) < 8:
        return buf + bytes(rng.randrange(0, 3))
    n = struct.unpack("<Q", buf[:8])[0]
    if k == 0 and len(buf) > 8:  # flip a byte of the header
        i = rng.randrange(8, min(len(buf), 8 + n + 1))
        return buf[:i] + bytes([buf[i] ^ (1 << rng.randrange(8))]) + buf[i + 1:]
    if k == 1:
        return buf[:rng.randrange(len(buf) + 1)]
    if k == 2:
        return buf + bytes(rng.randrange(1, 9))
    if k == 3:
        return set_len(buf, rng.choice([0, 1, n - 1, n + 1, n + 8, MAX_HEADER, MAX_HEADER + 1,
                                        U64 - 1, len(buf) - 8, len(buf)]) % U64)
    if k == 4 and len(buf) > 8:  # flip any byte
        i = rng.randrange(len(buf))
        return buf[:i] + bytes([rng.getrandbits(8)]) + buf[i + 1:]
    # edit the JSON text and fix the length prefix (so that the edit is what is judged)
    hdr = buf[8:8 + n]
    old, new = rng.choice(TEXT_EDITS)
    if old in hdr:
        hdr = hdr.replace(old, new, 1)
    else:
        hdr = hdr.replace(b"}", b',"z":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}', 1)
    if rng.random() < 0.5:
        hdr = hdr.rstrip(b" ")
        hdr += b" " * ((8 - len(hdr) % 8) % 8)
    return struct.pack("<Q", len(hdr)) + hdr + buf[8 + n:]


def main():
    exe, work = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 12000
    os.makedirs(work, exist_ok=True)
    rng = random.Random(15)
    cases = []
    for i in range(count):
        buf = valid(rng)
        for _ in range(0 if i % 4 == 0 else rng.randint(1, 2)):
            buf = mutate(rng, buf)
        path = os.path.join(work, f"f{i % 500}.safetensors")
        cases.append((path, buf, i % 3 == 0))
    # The bound on the header's tree, from both sides: 2,000,000 members and one more.
    for k in (1999992, 1999993):
        h = (b'{"w":{"x":[' + b",".join([b"0"] * k) +
             b'],"dtype":"U8","shape":[1],"data_offsets":[0,1]}}')
        cases.append((os.path.join(work, f"bound{k}.safetensors"),
                      struct.pack("<Q", len(h)) + h + b"x", False))
    mismatches, accepted, refused = [], 0, 0
    # Batches of 500 files reuse the names f0..f499.
    for b in range(0, len(cases), 500):
        batch = cases[b:b + 500]
        for path, buf, _ in batch:
            with open(path, "wb") as f:
                f.write(buf)
        lines = "".join(f"{path}\n" + (f"L {path}\n" if lenient else "")
                        for path, _, lenient in batch)
        import subprocess
        out = subprocess.run([exe], input=lines, capture_output=True, text=True,
                             errors="surrogateescape", check=True).stdout.splitlines()
        k = 0
        for path, buf, lenient in batch:
            for mode in ([False, True] if lenient else [False]):
                try:
                    want = model(buf, mode)
                except Refused:
                    want = None
                got = parse_c(out[k])
                k += 1
                if want is None:
                    refused += 1
                else:
                    accepted += 1
                if (want is None) != (got is None) or (want and got and
                                                       (list(want[0]) != got[0] or
                                                        want[1] != got[1])):
                    mismatches.append((buf, mode, want, out[k - 1]))
    print(f"safetensors differential: {accepted + refused} reads of {len(cases)} files, "
          f"{accepted} accepted, {refused} refused, {len(mismatches)} mismatches")
    for buf, mode, want, got in mismatches[:10]:
        print(f"MISMATCH lenient={mode}: model {want!r}\n  nnh5  {got}\n  file {buf[:300]!r}")
    return 1 if mismatches or accepted < count // 10 or refused < count // 10 else 0


if __name__ == "__main__":
    sys.exit(main())
