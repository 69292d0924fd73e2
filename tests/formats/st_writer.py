#!/usr/bin/python3
"""nnh5's safetensors writer and sharded folders against independent Python.

usage: st_writer.py ST_CHECK WORKDIR

1. A file of every dtype safetensors and nnh5 share, written here by a
   Python transcription of the reference writer (huggingface/safetensors
   tensor.rs: tensors by dtype order descending, then name; compact JSON;
   header padded with spaces to a multiple of 8), is read by nnh5 and written
   again (st_check resave): the bytes must be identical.
2. The same tensors saved by nnh5 as a folder with small shards: the shard
   split (huggingface_hub's rule), the shard names, every shard's bytes and
   the index (transformers: json.dumps(indent=2, sort_keys=True) + "\\n")
   must equal what Python computes; nnh5 loads the folder back bitwise.
3. Folders made here, valid and tampered with (a shard outside the folder,
   a tensor the index misplaces or forgets, an index entry no shard holds,
   an index that is not JSON): nnh5 loads or refuses each as the index
   rules say.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import xxhash

ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
         "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
         "F64", "I64", "U64"]
SHARED = {"BOOL": (1, "bool"), "U8": (1, "uint8"), "I8": (1, "int8"),
          "F8_E5M2": (1, "float8_e5m2"), "F8_E4M3": (1, "float8_e4m3fn"), "I16": (2, "int16"),
          "U16": (2, "uint16"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
          "I32": (4, "int32"), "U32": (4, "uint32"), "F32": (4, "float32"),
          "C64": (8, "complex64"), "F64": (8, "float64"), "I64": (8, "int64"),
          "U64": (8, "uint64")}
FAILS = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        FAILS.append(what)


def js(s):
    return json.dumps(s, ensure_ascii=False)


def serialize(tensors, meta):
    """The reference writer's bytes for tensors [(name, dtype, shape, raw)] and meta [(k, v)]."""
    order = sorted(tensors, key=lambda t: (-ORDER.index(t[1]), t[0].encode()))
    parts, off = [], 0
    if meta:
        parts.append('"__metadata__":{' + ",".join(js(k) + ":" + js(v) for k, v in meta) + "}")
    for name, dt, shape, raw in order:
        parts.append(js(name) + ':{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'
                     % (dt, ",".join(map(str, shape)), off, off + len(raw)))
        off += len(raw)
    h = ("{" + ",".join(parts) + "}").encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in order), order


def split(tensors, max_bytes):
    """huggingface_hub's split_state_dict_into_shards: lists of tensors, in closing order."""
    shards, cur, size = [], [], 0
    for t in tensors:
        n = len(t[3])
        if n > max_bytes:
            shards.append([t])
            continue
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += n
    if cur:
        shards.append(cur)
    return shards


def line_of(tensors):
    """st_check's line for a set of tensors (sorted for comparison)."""
    return sorted((n.encode().hex() or "-", SHARED[dt][1], ",".join(map(str, s)) or "-",
                   f"{xxhash.xxh3_64_intdigest(raw):016x}") for n, dt, s, raw in tensors)


def parse(line):
    w = line.split(" ")
    if w[0] != "OK":
        return None
    n = int(w[1])
    return sorted(tuple(w[2 + 4 * i:6 + 4 * i]) for i in range(n))


def run_lines(exe, lines):
    out = subprocess.run([exe], input="".join(x + "\n" for x in lines), capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return out


def main():
    exe, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = random.Random(7)
    names = ["emb.weight", "layer.0.w", "layer.10.w", "layer.2.w", "é", "a\"q\\b", "t\nn",
             "\u2603", "z", "big"]
    tensors = []
    for i, dt in enumerate(SHARED):
        shape = [rng.choice([0, 1, 2, 3, 7]) for _ in range(rng.choice([0, 1, 2, 3]))]
        if i == 3:
            shape = [40, 30]  # larger than a shard: a shard of its own
        ne = 1
        for d in shape:
            ne *= d
        raw = bytes(rng.getrandbits(1) if dt == "BOOL" else rng.getrandbits(8)
                    for _ in range(ne * SHARED[dt][0]))
        tensors.append((names[i % len(names)] + str(i), dt, shape, raw))
    meta = [("format", "pt")]
    data, order = serialize(tensors, meta)
    src = os.path.join(work, "in.safetensors")
    with open(src, "wb") as f:
        f.write(data)

    # 1. and 2.: nnh5 writes the file and the folder
    out, folder, max_bytes = os.path.join(work, "out.safetensors"), os.path.join(work, "hf"), 64
    p = subprocess.run([exe, "resave", src, out, folder, str(max_bytes)], capture_output=True,
                       text=True)
    check(p.returncode == 0, "nnh5 reads and writes again", p.stdout + p.stderr)
    with open(out, "rb") as f:
        check(f.read() == data, "the file nnh5 writes is the reference writer's, byte for byte")
    shards = split(order, max_bytes)  # nnh5's dict is in the file's offset order
    check(len(shards) >= 3, f"{len(shards)} shards (3 or more)")
    want_files = {f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors": s
                  for k, s in enumerate(shards)}
    got_files = sorted(os.listdir(folder))
    check(got_files == sorted(list(want_files) + ["model.safetensors.index.json"]),
          "the shard names", got_files)
    for fname, s in want_files.items():
        path = os.path.join(folder, fname)
        got = open(path, "rb").read() if os.path.exists(path) else b""
        check(got == serialize(s, meta)[0], f"shard {fname}: the reference writer's bytes")
    index = {"metadata": {"total_size": sum(len(t[3]) for t in tensors)},
             "weight_map": {t[0]: fname for fname, s in want_files.items() for t in s}}
    want_index = json.dumps(index, indent=2, sort_keys=True) + "\n"
    with open(os.path.join(folder, "model.safetensors.index.json"), encoding="utf-8") as f:
        got_index = f.read()
    check(got_index == want_index, "the index is transformers', byte for byte",
          f"{got_index[:200]!r} vs {want_index[:200]!r}")
    out_lines = run_lines(exe, [f"D {folder}"])
    check(parse(out_lines[0]) == line_of(tensors), "nnh5 loads its folder back bitwise",
          out_lines[0][:200])

    # 3. folders made here
    def make(name, files):
        d = os.path.join(work, name)
        os.makedirs(d)
        for fn, content in files.items():
            with open(os.path.join(d, fn), "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
        return d

    parts = split(order, 100)
    fnames = [f"model-{k + 1:05d}-of-{len(parts):05d}.safetensors" for k in range(len(parts))]
    good = {fn: serialize(s, None)[0] for fn, s in zip(fnames, parts)}
    wmap = {t[0]: fn for fn, s in zip(fnames, parts) for t in s}

    def idx(m):
        return json.dumps({"metadata": {"total_size": 1}, "weight_map": m}, indent=2)

    cases = [
        ("valid", dict(good, **{"model.safetensors.index.json": idx(wmap)}), True),
        ("no index, one file", {"model.safetensors": data}, True),
        ("a shard outside the folder", dict(good, **{"model.safetensors.index.json": idx(
            dict(wmap, **{order[0][0]: "../in.safetensors"}))}), False),
        ("a tensor the index forgets", dict(good, **{"model.safetensors.index.json": idx(
            {k: v for k, v in list(wmap.items())[1:]})}), False),
        ("a tensor the index misplaces", dict(good, **{"model.safetensors.index.json": idx(
            dict(wmap, **{order[0][0]: fnames[-1] if wmap[order[0][0]] != fnames[-1]
                          else fnames[0]}))}), False),
        ("an index entry no shard holds", dict(good, **{"model.safetensors.index.json": idx(
            dict(wmap, ghost=fnames[0]))}), False),
        ("a missing shard", dict({k: v for k, v in list(good.items())[1:]},
                                 **{"model.safetensors.index.json": idx(wmap)}), False),
        ("an index that is not JSON", dict(good, **{"model.safetensors.index.json": "{"}), False),
        ("weight_map not an object", dict(good, **{"model.safetensors.index.json":
                                                   '{"weight_map": []}'}), False),
    ]
    dirs = [make(f"case{i}", files) for i, (_, files, _) in enumerate(cases)]
    out_lines = run_lines(exe, [f"D {d}" for d in dirs])
    for (what, _, ok), line in zip(cases, out_lines):
        if ok:
            check(parse(line) == line_of(tensors), f"folder {what}: loads, same tensors", line[:200])
        else:
            check(line.startswith("REFUSED"), f"folder {what}: refused", line[:200])
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
