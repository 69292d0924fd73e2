#!/usr/bin/python3
"""tools/nnh5-convert: Keras and safetensors files.

- from-keras on the fixtures of tests/formats/make_keras_fixtures.py (each
  Keras era, as the Keras sources write them): models rebuilt by nnh5.py
  equal the numpy reference within 1e-6 relative; state dicts hold exactly
  the expected keys, shapes and bits (bfloat16 included); hostile files are
  refused naming the layer, and nothing is written.
- to-safetensors / from-safetensors: every nnh5 dtype safetensors has, in
  every shape of the corpus, crosses nnh5 -> safetensors -> nnh5 bitwise;
  the file is laid out as the reference writer lays it out (checked here
  from the format description); sharded folders of 3 shards read; the
  reference reader's refusals (header cap, JSON, duplicates, gaps,
  overlaps, trailing bytes, sizes, unknown dtypes) are refused.
"""
import collections
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

import pycommon as pc
from pycommon import check, nnh5, path

torch = pc.need_torch()
CONVERT = os.path.join(pc.TOOLS, "nnh5-convert")
FIXTURES = os.path.join(pc.HERE, "..", "formats", "make_keras_fixtures.py")


def convert(*args):
    return subprocess.run([CONVERT, *map(str, args)], capture_output=True, text=True)


def refused(args, words, what, output):
    if os.path.exists(output):
        os.unlink(output)
    p = convert(*args)
    check(p.returncode == 1 and all(w in p.stderr for w in words), what,
          f"exit {p.returncode}: {p.stderr.strip()}")
    check(not os.path.exists(output), f"{what}: no output file")


def keras():
    kdir = path("keras")
    subprocess.run([sys.executable, FIXTURES, kdir], check=True)
    import h5py
    with h5py.File(os.path.join(kdir, "expect.h5"), "r") as f:
        x = f["x"][()]
        refs = {k: f["y"][k][()] for k in f["y"]}
        sds = {fx: collections.OrderedDict((g[str(i)].attrs["key"], g[str(i)][()])
                                           for i in range(len(g)))
               for fx, g in f["sd"].items()}

    for fx in ("k2_model", "k3_model", "k3_model_name"):
        out = path(fx + ".nnh5.h5")
        p = convert("from-keras", os.path.join(kdir, fx + ".h5"), out)
        if not check(p.returncode == 0 and "model" in p.stdout, f"from-keras {fx}", p.stderr):
            continue
        model = nnh5.load_model(out).double()
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy()
        ref = refs[fx]
        scale = np.abs(ref).max()
        err = np.abs(y - ref) / np.maximum(np.abs(ref), 1e-3 * scale)
        check(y.shape == ref.shape and err.max() <= 1e-6, f"{fx}: the model equals numpy",
              f"max relative error {err.max()}")

    for fx, src in (("k2_model", "k2_model.h5"), ("k3_model", "k3_model.h5"),
                    ("k2_weights_split", "k2_weights_split.h5"), ("k3.weights", "k3.weights.h5")):
        out = path(fx + ".sd.h5")
        args = ["from-keras", os.path.join(kdir, src), out]
        p = convert(*(args[:1] + ["--state-dict"] + args[1:]))
        if not check(p.returncode == 0 and "state dict" in p.stdout, f"from-keras {src}",
                     p.stderr):
            continue
        got = nnh5.load_state_dict(out, numpy=False)
        want = sds[fx]
        check(list(got) == list(want), f"{fx}: keys in order", pc.order_diff(got, want))
        for k, w in want.items():
            g = got.get(k)
            if fx == "k3.weights" and k == "dense_1.weight":
                ok = g is not None and g.dtype == torch.bfloat16 and \
                    g.view(torch.int16).numpy().view("<u2").tobytes() == w.tobytes()
            else:
                ok = g is not None and g.numpy().dtype == w.dtype and \
                    g.numpy().tobytes() == w.tobytes() and tuple(g.shape) == w.shape
            check(ok, f"{fx}: {k} exact")

    for src, words in (("bad_class.h5", ["'conv2d'", "Conv2D"]),
                       ("bad_shape.h5", ["'dense_1'", "(7, 5)"]),
                       ("bad_missing.h5", ["dense_1/bias:0", "missing"]),
                       ("bad_extlink.h5", ["external link"]),
                       ("bad_softmax.h5", ["'dense_3'", "softmax"]),
                       ("bad_weight.h5", ["'batch_normalization'", "gamma:0"])):
        refused(["from-keras", os.path.join(kdir, src), path("refused.h5")], words,
                f"from-keras {src} refused", path("refused.h5"))


ST_DTYPES = ("bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
             "float16", "bfloat16", "float32", "float64", "float8_e4m3fn", "float8_e5m2",
             "complex64")


def corpus():
    rng = np.random.default_rng(5)
    sd = collections.OrderedDict()
    for name in ST_DTYPES:
        for i, shape in enumerate(pc.SHAPES):
            sd[f"{name}.t{i}"] = pc.random_bits(rng, name, shape)
    return sd


def parse_layout(file):
    """The header of a .safetensors file, checked against the reference writer's layout."""
    data = open(file, "rb").read()
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n]
    check(n % 8 == 0 and header.rstrip(b" ") == header.rstrip() and
          header.decode().startswith("{"), "header padded with spaces to a multiple of 8")
    h = json.loads(header)
    names = [k for k in h if k != "__metadata__"]
    size = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4,
            "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
            "C64": 8}
    order = sorted(names, key=lambda k: (h[k]["data_offsets"][0], h[k]["data_offsets"][1]))
    # The reference's Dtype enum (safetensors/src/tensor.rs): its writer sorts by it, descending.
    enum = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
            "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
            "F64", "I64", "U64"]
    check(order == sorted(names, key=lambda k: (-enum.index(h[k]["dtype"]), k)),
          "tensors ordered by the reference's dtype order, then name")
    end = 0
    for k in order:
        b, e = h[k]["data_offsets"]
        check(b == end and e - b == size[h[k]["dtype"]] * math.prod(h[k]["shape"]),
              f"offsets of {k} tile the data")
        end = e
    check(8 + n + end == len(data), "no byte after the last tensor")
    return h, data, n


def as_values(sd):
    def value(k, v):
        if k.startswith("bfloat16"):
            return pc.torch_of("bfloat16", v)
        if k.startswith("float8"):
            return nnh5.float8_array(v, k.split(".")[0])
        return v.copy()
    return collections.OrderedDict((k, value(k, v)) for k, v in sd.items())


def raw_of(conv, file):
    """key -> (dtype, bits) of an nnh5 file, read through nnh5.py's reader (torch 1.13 has no
    uint16..uint64)."""
    with conv._RawReader(file) as r:
        return r.read_walk("/", ".")


def same_raw(got, sd, what):
    """got (raw pairs) holds sd's tensors bit for bit, dtype and shape included."""
    for k, (dt, buf) in got.items():
        w = sd[k]
        wb = w.view("<u1") if w.dtype == np.bool_ else w
        check(dt == k.split(".")[0] and buf.shape == w.shape and buf.tobytes() == wb.tobytes(),
              f"{what}: {k}", f"{dt} {buf.shape}")


def safetensors():
    sd = corpus()
    src = path("st_src.h5")
    nnh5.save_state_dict(as_values(sd), src)
    st = path("st.safetensors")
    p = convert("to-safetensors", src, st)
    check(p.returncode == 0, "to-safetensors", p.stderr)
    h, data, n = parse_layout(st)
    for k, v in sd.items():
        b, e = h[k]["data_offsets"]
        raw = v.astype(nnh5._BUF[k.split(".")[0]]) if k.startswith("bool") else v
        check(data[8 + n + b:8 + n + e] == np.ascontiguousarray(raw).tobytes(),
              f"{k}: bytes in the file")
    conv = pc.load_converter()
    back = path("st_back.h5")
    p = convert("from-safetensors", st, back)
    check(p.returncode == 0, "from-safetensors", p.stderr)
    got = raw_of(conv, back)
    check(set(got) == set(sd), "every tensor comes back")
    same_raw(got, sd, "nnh5 -> safetensors -> nnh5")

    # A sharded folder of 3 shards, as Hugging Face writes it.
    folder = path("sharded")
    os.makedirs(folder)
    raw = collections.OrderedDict((k, (k.split(".")[0], v.view("<u1") if v.dtype == np.bool_
                                       else v)) for k, v in sd.items())
    keys = list(raw)
    wmap, total = {}, 0
    for i in range(3):
        part = collections.OrderedDict((k, raw[k]) for k in keys[i::3])
        name = f"model-{i + 1:05d}-of-00003.safetensors"
        with open(os.path.join(folder, name), "wb") as fp:
            for c in conv.st_bytes(part):
                fp.write(c)
        for k in part:
            wmap[k] = name
            total += part[k][1].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": wmap}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fp:
        json.dump(index, fp)
    out = path("sharded.h5")
    p = convert("from-safetensors", folder, out)
    if check(p.returncode == 0, "from-safetensors of a folder of 3 shards", p.stderr):
        got = raw_of(conv, out)
        check(list(got) == list(wmap), "sharded: weight_map order")
        same_raw(got, sd, "sharded")

    one = path("one_shard")
    os.makedirs(one)
    shutil.copy(st, os.path.join(one, "model.safetensors"))
    p = convert("from-safetensors", one, path("one.h5"))
    check(p.returncode == 0 and list(raw_of(conv, path("one.h5"))) == list(raw_of(conv, back)),
          "a folder of one model.safetensors without an index", p.stderr)

    bad = dict(index, weight_map=dict(wmap, **{keys[0]: "../model-00001-of-00003.safetensors"}))
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fp:
        json.dump(bad, fp)
    refused(["from-safetensors", folder, path("r.h5")], ["is not a .safetensors file of"],
            "a shard outside the folder", path("r.h5"))
    bad = dict(index, weight_map=dict(wmap, **{keys[0]: wmap[keys[1]]}))
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as fp:
        json.dump(bad, fp)
    refused(["from-safetensors", folder, path("r.h5")], ["not in its shard"],
            "a tensor mapped to the wrong shard", path("r.h5"))

    # The reference reader's refusals, on mutations of a small valid file.
    small = collections.OrderedDict([("a", ("float32", np.arange(6, dtype="<f4").reshape(2, 3))),
                                     ("b", ("int64", np.arange(2, dtype="<i8")))])
    good = b"".join(conv.st_bytes(small))
    hlen = int.from_bytes(good[:8], "little")
    hdr = json.loads(good[8:8 + hlen])

    def with_header(h, tail=None):
        j = json.dumps(h).encode()
        j += b" " * (-len(j) % 8)
        return len(j).to_bytes(8, "little") + j + (good[8 + hlen:] if tail is None else tail)

    cases = [
        ("header too large", (200_000_000).to_bytes(8, "little") + good[8:], "HeaderTooLarge"),
        ("header past the end", (len(good)).to_bytes(8, "little") + good[8:], "past the end"),
        ("not JSON", good[:8] + b"[" + good[9:], "JSON"),
        ("duplicate names", good[:8] + good[8:8 + hlen].replace(b'"a"', b'"b"', 1) +
         good[8 + hlen:], "twice"),
        ("a gap", with_header(dict(hdr, a=dict(hdr["a"], data_offsets=[
            hdr["a"]["data_offsets"][0] + 4, hdr["a"]["data_offsets"][1] + 4]))), "tile"),
        ("size unlike dtype and shape", with_header(dict(hdr, a=dict(hdr["a"], shape=[2, 2]))),
         "hold"),
        ("trailing bytes", good + b"\0\0\0\0", "MetadataIncompleteBuffer"),
        ("truncated data", good[:-1], "MetadataIncompleteBuffer"),
        ("float8 e8m0", with_header(dict(hdr, b=dict(hdr["b"], dtype="F8_E8M0",
                                                        shape=[16]))), "F8_E8M0"),
        ("__metadata__ not strings", with_header(dict(hdr, __metadata__={"k": 1})),
         "__metadata__"),
        ("too short", b"\1\0\0", "too short"),
    ]
    for what, blob, word in cases:
        f = path("mut.safetensors")
        with open(f, "wb") as fp:
            fp.write(blob)
        refused(["from-safetensors", f, path("r.h5")], [word], f"refused: {what}", path("r.h5"))
    with open(path("mut.safetensors"), "wb") as fp:
        fp.write(good + b"\0\0\0\0")
    p = convert("from-safetensors", "--lenient", path("mut.safetensors"), path("lenient.h5"))
    check(p.returncode == 0, "--lenient accepts bytes after the last tensor", p.stderr)
    lead = (hlen + 8).to_bytes(8, "little") + b"\n" * 8 + good[8:8 + hlen] + good[8 + hlen:]
    with open(path("ws.safetensors"), "wb") as fp:
        fp.write(lead)
    p = convert("from-safetensors", path("ws.safetensors"), path("ws.h5"))
    check(p.returncode == 0, "leading whitespace in the header is accepted (serde does)",
          p.stderr)


def main():
    shutil.rmtree(path("keras"), ignore_errors=True)
    pc.run_parts(keras, safetensors)
    pc.finish("test_formats")


if __name__ == "__main__":
    main()
