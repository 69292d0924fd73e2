#!/usr/bin/python3
"""Tests of `nnh5 convert`: Keras files (built by
tests/formats/make_keras_fixtures.py) and nnh5 files into nnh5, values
checked with h5py; refusals, exit codes, atomic output, quiet output.
With --rss MB: a file of about MB megabytes converts into a safetensors file
and a sharded folder, and that file into another folder, with peak memory (the child's ru_maxrss, from wait4 in
a small wrapper process) under half its size. With --big MB (suite 'slow'): the same for every
direction, under a third of the size, and progress on a terminal.

usage: test_convert.py NNH5 WORKDIR [--big MB | --rss MB]
"""
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys

import h5py
import numpy as np

nnh5, work = (os.path.abspath(a) for a in sys.argv[1:3])
big = int(sys.argv[sys.argv.index("--big") + 1]) if "--big" in sys.argv else 0
rss_mb = int(sys.argv[sys.argv.index("--rss") + 1]) if "--rss" in sys.argv else 0
here = os.path.dirname(os.path.abspath(__file__))
failures = []


def expect(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name} {detail}")
    else:
        print(f"ok   {name}")


def run(*args):
    p = subprocess.run([nnh5, *args], cwd=work, capture_output=True, timeout=600)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def h5_tensors(path):
    """{state dict key: array} of every dataset outside nnh5_* objects."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and "nnh5_" not in name:
                out[name.replace("/", ".")] = obj[()]
        f.visititems(visit)
    return out


def expected(fixture):
    with h5py.File(os.path.join(work, "expect.h5"), "r") as f:
        g = f["sd/" + fixture]
        return {g[str(i)].attrs["key"]: g[str(i)][()] for i in range(len(g))}


def same(got, want):
    if set(got) != set(want):
        return f"keys {sorted(got)} != {sorted(want)}"
    for k in want:
        g, w = got[k], want[k]
        if g.shape != w.shape or g.tobytes() != w.tobytes():
            return f"{k}: differs"
    return ""


def small_tests():
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run([sys.executable, os.path.join(here, "..", "formats", "make_keras_fixtures.py"),
                    work], check=True)

    # Keras weights into state dicts: keys, shapes and bits as imported.
    for fx, src in (("k3.weights", "k3.weights.h5"), ("k2_weights_split", "k2_weights_split.h5")):
        rc, out, err = run("convert", src, fx + ".out.h5")
        expect(f"convert {src}: exit 0, silent", rc == 0 and out == "" and err == "", err)
        got = h5_tensors(os.path.join(work, fx + ".out.h5"))
        if fx == "k3.weights":
            # h5py reads bfloat16 as float32, exactly: its top 16 bits are the bfloat16.
            v = got["dense_1.weight"]
            expect("bfloat16 read as float32 exactly", v.dtype == np.float32 and
                   not (v.view(np.uint32) & 0xFFFF).any(), str(v.dtype))
            got["dense_1.weight"] = (v.view(np.uint32) >> 16).astype(np.uint16)
        expect(f"convert {src}: the state dict", same(got, expected(fx)) == "",
               same(got, expected(fx)))

    # A Keras full model becomes an nnh5 model that verify rebuilds.
    rc, _, err = run("convert", "k3_model.h5", "model.out.h5")
    expect("convert k3_model.h5: exit 0", rc == 0, err)
    rc, out, _ = run("verify", "model.out.h5")
    expect("the converted model rebuilds", rc == 0 and "model rebuilds: / (" in out, out)
    with h5py.File(os.path.join(work, "model.out.h5"), "r") as f:
        expect("the model file's kind", f.attrs.get("nnh5_kind") in ("model", b"model"))
    rc, _, err = run("convert", "--state-dict", "k3_model.h5", "sd.out.h5")
    got = h5_tensors(os.path.join(work, "sd.out.h5"))
    expect("--state-dict: the weights alone", rc == 0 and same(got, expected("k3_model")) == "",
           err + same(got, expected("k3_model")))

    # nnh5 to nnh5: the same tensors (and the model stays a model).
    rc, _, err = run("convert", "sd.out.h5", "again.h5")
    expect("nnh5 -> nnh5: exit 0", rc == 0, err)
    expect("nnh5 -> nnh5: same tensors",
           same(h5_tensors(os.path.join(work, "again.h5")), got) == "")
    rc, out, _ = run("convert", "model.out.h5", "model2.h5")
    rc2, out2, _ = run("verify", "model2.h5")
    expect("nnh5 model -> nnh5 model", rc == 0 and rc2 == 0 and "model rebuilds" in out2, out2)
    # --from nnh5 on a Keras file reads it as plain HDF5: its tensors by path.
    rc, _, err = run("convert", "--from", "nnh5", "k3.weights.h5", "plain.h5")
    expect("--from nnh5 on a Keras file: its tensors by path",
           rc == 0 and "layers.dense.vars.0" in h5_tensors(os.path.join(work, "plain.h5")), err)

    # Refusals: exit 2, the loader's message, nothing written, OUT untouched.
    open(os.path.join(work, "keep.h5"), "wb").write(b"old")
    for src, needles in (("bad_class.h5", ["'conv2d'", "Conv2D"]),
                         ("bad_shape.h5", ["'dense_1'", "(7, 5)"]),
                         ("bad_missing.h5", ["dense_1/bias:0", "missing"]),
                         ("bad_extlink.h5", ["external link"]),
                         ("bad_softmax.h5", ["softmax"]),
                         ("bad_weight.h5", ["batch_normalization", "gamma"])):
        rc, _, err = run("convert", src, "keep.h5")
        expect(f"convert {src}: refused (exit 2) naming it",
               rc == 2 and all(n in err for n in needles), f"rc={rc} {err}")
        expect(f"convert {src}: OUT untouched",
               open(os.path.join(work, "keep.h5"), "rb").read() == b"old")
    leftovers = [n for n in os.listdir(work) if n.startswith(".") or "tmp" in n]
    expect("no temporary files left", leftovers == [], str(leftovers))

    # Usage errors.
    for args in (["convert"], ["convert", "a.h5"], ["convert", "--to", "zip", "a", "b"],
                 ["convert", "--from", "onnx", "a", "b"], ["convert", "--to"]):
        rc, _, err = run(*args)
        expect(f"{' '.join(args)}: usage (exit 2)", rc == 2 and err, err)
    rc, _, err = run("convert", "missing.h5", "x.h5")
    expect("a missing IN: exit 2", rc == 2 and "missing.h5" in err, err)
    rc, out, _ = run("convert", "--help")
    expect("convert --help", rc == 0 and "--from" in out and "--quiet" in out)

    safetensors_tests()

    # On a terminal a short conversion prints nothing either (progress only after 1 s).
    code, text = on_pty(["convert", "k2_model.h5", "tty.h5"])
    expect("short conversion on a terminal: no progress", code == 0 and text == "", text)


def st_layout(file):
    """The header of a .safetensors file, checked against the format description."""
    data = open(file, "rb").read()
    n = int.from_bytes(data[:8], "little")
    h = json.loads(data[8:8 + n])
    names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"])
    end, ok = 0, n % 8 == 0 and data[8:8 + n].rstrip(b" ").endswith(b"}")
    for k in names:
        b, e = h[k]["data_offsets"]
        ok = ok and b == end
        end = e
    return h, ok and 8 + n + end == len(data)


def safetensors_tests():
    rng = np.random.default_rng(3)
    src = os.path.join(work, "dtypes.h5")
    with h5py.File(src, "w") as f:
        for dt in ("u1", "i1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"):
            a = rng.integers(0, 256, size=24 * np.dtype(dt).itemsize, dtype=np.uint8)
            f[f"{np.dtype(dt).name}/w"] = a.view(dt).reshape(2, 3, 4)
        f["scalar"] = np.float32(1.5)
        f["empty"] = np.zeros((0, 3), np.float32)
        f["flag"] = np.array([True, False, True])
    want = h5_tensors(src)
    rc, _, err = run("convert", "dtypes.h5", "dtypes.safetensors")
    h, ok = st_layout(os.path.join(work, "dtypes.safetensors")) if rc == 0 else ({}, False)
    expect("nnh5 -> safetensors: exit 0, the format's layout", rc == 0 and ok, err)
    expect("nnh5 -> safetensors: keys joined with '.'", "float32.w" in h and "flag" in h, str(h))
    rc, _, err = run("convert", "dtypes.safetensors", "dtypes.back.h5")
    expect("safetensors -> nnh5: bitwise", rc == 0 and
           same(h5_tensors(os.path.join(work, "dtypes.back.h5")), want) == "", err)

    # 3+ shards, named and indexed as Hugging Face does; read back.
    rc, _, err = run("convert", "--shard-size", "100", "dtypes.h5", "sharded/")
    files = sorted(os.listdir(os.path.join(work, "sharded"))) if rc == 0 else []
    shards = [f for f in files if f.endswith(".safetensors")]
    expect("a folder of 3+ shards", rc == 0 and len(shards) >= 3 and
           all(re.fullmatch(r"model-\d{5}-of-%05d\.safetensors" % len(shards), f)
               for f in shards) and "model.safetensors.index.json" in files, err + str(files))
    if rc == 0:
        idx = json.load(open(os.path.join(work, "sharded", "model.safetensors.index.json")))
        expect("index: weight_map and total_size", set(idx["weight_map"]) == set(want) and
               idx["metadata"]["total_size"] == sum(v.nbytes for v in want.values()), str(idx))
    rc, _, err = run("convert", "sharded", "sharded.back.h5")
    expect("sharded folder -> nnh5: bitwise", rc == 0 and
           same(h5_tensors(os.path.join(work, "sharded.back.h5")), want) == "", err)

    # The loaders' refusals: a shard outside the folder, a tensor the index does not list,
    # trailing bytes (unless --lenient), a damaged checksum in the nnh5 input.
    idxp = os.path.join(work, "sharded", "model.safetensors.index.json")
    good = open(idxp).read()
    idx = json.loads(good)
    for what, wm, word in (
            ("a shard outside the folder",
             dict(idx["weight_map"], **{"flag": "../dtypes.safetensors"}), "not a file name in"),
            ("a tensor the index does not list",
             {k: v for k, v in idx["weight_map"].items() if k != "flag"}, "puts it nowhere")):
        json.dump(dict(idx, weight_map=wm), open(idxp, "w"))
        rc, _, err = run("convert", "sharded", "keep.h5")
        expect(f"sharded: {what}: refused", rc == 2 and word in err, err)
    open(idxp, "w").write(good)
    with open(os.path.join(work, "trailing.safetensors"), "wb") as fp:
        fp.write(open(os.path.join(work, "dtypes.safetensors"), "rb").read() + b"\0\0\0\0")
    rc, _, err = run("convert", "trailing.safetensors", "keep.h5")
    expect("trailing bytes refused", rc == 2 and err, err)
    rc, _, err = run("convert", "--lenient", "trailing.safetensors", "lenient.h5")
    expect("--lenient accepts trailing bytes", rc == 0, err)
    rc, _, err = run("convert", "--from", "nnh5", "--to", "safetensors", "k3.weights.h5", "x.st")
    expect("--to safetensors writes a file", rc == 0 and st_layout(os.path.join(work, "x.st"))[1],
           err)
    expect("OUT untouched by the refusals",
           open(os.path.join(work, "keep.h5"), "rb").read() == b"old")

    # "__metadata__" comes back as string attributes of the root, and goes along
    # into another safetensors file; a reserved name is refused, naming it.
    body = open(os.path.join(work, "dtypes.safetensors"), "rb").read()
    n = int.from_bytes(body[:8], "little")
    h = json.loads(body[8:8 + n])
    for name, meta in (("meta.safetensors", {"format": "pt", "note": "caf\u00e9 \u2713"}),
                       ("reserved.safetensors", {"nnh5_kind": "model"})):
        text = json.dumps(dict(h, __metadata__=meta)).encode()
        text += b" " * (-len(text) % 8)
        with open(os.path.join(work, name), "wb") as fp:
            fp.write(len(text).to_bytes(8, "little") + text + body[8 + n:])
    rc, _, err = run("convert", "meta.safetensors", "meta.h5")
    attrs = {}
    if rc == 0:
        with h5py.File(os.path.join(work, "meta.h5"), "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    expect("safetensors -> nnh5: __metadata__ as root attributes",
           rc == 0 and attrs.get("format") == "pt" and attrs.get("note") == "caf\u00e9 \u2713",
           err + str(attrs))
    rc, _, err = run("convert", "meta.safetensors", "meta2.safetensors")
    h2 = st_layout(os.path.join(work, "meta2.safetensors"))[0] if rc == 0 else {}
    expect("safetensors -> safetensors: __metadata__ kept",
           rc == 0 and h2.get("__metadata__") == {"format": "pt", "note": "caf\u00e9 \u2713"},
           err + str(h2.get("__metadata__")))
    rc, _, err = run("convert", "reserved.safetensors", "reserved.h5")
    expect("a metadata key under nnh5_ refused, named", rc == 2 and "nnh5_kind" in err and
           not os.path.exists(os.path.join(work, "reserved.h5")), err)

    # A safetensors file resharded into a folder, and Keras weights into safetensors.
    rc, _, err = run("convert", "--shard-size", "64", "dtypes.safetensors", "resharded/")
    rc2, _, err2 = run("convert", "resharded", "resharded.h5")
    expect("safetensors file -> folder -> nnh5: bitwise", rc == 0 and rc2 == 0 and
           same(h5_tensors(os.path.join(work, "resharded.h5")), want) == "", err + err2)
    rc, _, err = run("convert", "k3.weights.h5", "k3.safetensors")
    rc2, _, err2 = run("convert", "k3.safetensors", "k3.back.h5")
    sd = h5_tensors(os.path.join(work, "k3.back.h5")) if rc2 == 0 else {}
    exp = expected("k3.weights")
    expect("Keras -> safetensors -> nnh5: the Keras state dict", rc == 0 and rc2 == 0 and
           set(sd) == set(exp) and sd["dense.weight"].tobytes() == exp["dense.weight"].tobytes(),
           err + err2)

    # A damaged tensor in an nnh5 input: its checksum refuses it, into either format.
    shutil.copy(os.path.join(work, "dtypes.back.h5"), os.path.join(work, "damaged.h5"))
    with h5py.File(os.path.join(work, "damaged.h5"), "r") as f:
        off = f["float32/w"].id.get_offset()
    with open(os.path.join(work, "damaged.h5"), "r+b") as fp:
        fp.seek(off)
        b = fp.read(1)
        fp.seek(off)
        fp.write(bytes([b[0] ^ 1]))
    for out in ("damaged.safetensors", "damaged.out.h5"):
        rc, _, err = run("convert", "damaged.h5", out)
        expect(f"a damaged nnh5 input -> {out}: refused by its checksum",
               rc == 2 and "checksum" in err and not os.path.exists(os.path.join(work, out)),
               err)


def on_pty(args):
    """Run nnh5 with stderr on a pseudo-terminal; (exit status, what it printed there)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([nnh5, *args], cwd=work, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        r, _, _ = select.select([master], [], [], 600)
        if not r:
            break
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(), b"".join(chunks).decode(errors="replace")


# Runs argv[1:] and prints its peak RSS in KB. A small process of its own: on exec,
# Linux keeps the forking process's high-water mark in the child's ru_maxrss, so a
# child forked from this script (numpy, h5py) would start at this script's size.
RSS_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), ru.ru_maxrss)
"""


def peak_rss_kb(args):
    """Run nnh5 with args: (exit status, its peak RSS in KB, stderr)."""
    p = subprocess.run([sys.executable, "-S", "-c", RSS_WRAPPER, nnh5, *args], cwd=work,
                       capture_output=True, timeout=1800)
    rc, rss = (int(x) for x in p.stdout.split())
    return rc, rss, p.stderr.decode(errors="replace")


def make_big(mb, rows):
    """big.h5: about mb MB of float32 tensors of rows x 1024 (every one distinct)."""
    os.makedirs(work, exist_ok=True)
    n = max(1, mb * 256 // rows)
    with h5py.File(os.path.join(work, "big.h5"), "w") as f:
        for i in range(n):
            f[f"layer{i}/weight"] = np.full((rows, 1024), i, dtype=np.float32)
    return n, os.path.getsize(os.path.join(work, "big.h5"))


def expect_rss(what, args, size, share):
    """nnh5 args exits 0 with a peak RSS under share x size bytes."""
    rc, rss, err = peak_rss_kb(args)
    print(f"info {what} of {size >> 20} MB: peak RSS {rss} KB")
    expect(f"{what}: exit 0", rc == 0, err[-500:])
    expect(f"{what}: peak RSS under {share} x the file", rss * 1024 < size * share,
           f"{rss} KB for {size} bytes")


def check_st_output(n, names=("big.safetensors", "big.dir")):
    """The safetensors outputs names hold every tensor of big.h5, bitwise."""
    for name in names:
        rc, _, err = run("convert", "--quiet", name, "big.back.h5")
        got = h5_tensors(os.path.join(work, "big.back.h5")) if rc == 0 else {}
        expect(f"{name} back to nnh5: every tensor", rc == 0 and len(got) == n and all(
            (got[f"layer{i}.weight"] == i).all() for i in range(n)), err[-500:])


def rss_tests(mb):
    """nnh5 -> safetensors (file and folder) streams: peak memory under half the file."""
    n, size = make_big(mb, 2048)
    expect_rss("nnh5 -> safetensors", ["convert", "--quiet", "big.h5", "big.safetensors"],
               size, 0.5)
    expect_rss("nnh5 -> safetensors folder", ["convert", "--quiet", "--shard-size",
               str(size // 4), "big.h5", "big.dir/"], size, 0.5)
    shards = [f for f in os.listdir(os.path.join(work, "big.dir")) if f.startswith("model-")]
    expect("the folder has shards", len(shards) >= 3, str(shards))
    check_st_output(n)
    expect_rss("safetensors -> safetensors folder", ["convert", "--quiet", "--shard-size",
               str(size // 3), "big.safetensors", "big.re/"], size, 0.5)
    check_st_output(n, ("big.re",))
    shutil.rmtree(work, ignore_errors=True)


def big_tests(mb):
    """A state dict of about mb MB in 16 MB tensors: memory stays near one tensor."""
    n, size = make_big(mb, 4096)
    expect_rss("nnh5 -> nnh5", ["convert", "--quiet", "big.h5", "big.out.h5"], size, 1 / 3)
    expect_rss("nnh5 -> safetensors", ["convert", "--quiet", "big.h5", "big.safetensors"],
               size, 0.35)
    expect_rss("nnh5 -> safetensors folder", ["convert", "--quiet", "--shard-size",
               str(size // 4), "big.h5", "big.dir/"], size, 0.35)
    check_st_output(n)
    expect_rss("safetensors -> safetensors folder", ["convert", "--quiet", "--shard-size",
               str(size // 3), "big.safetensors", "big.re/"], size, 0.35)
    check_st_output(n, ("big.re",))
    expect_rss("safetensors -> nnh5", ["convert", "--quiet", "big.safetensors", "big.st.h5"],
               size, 1 / 3)
    code, text = on_pty(["convert", "big.h5", "big.tty.h5"])
    expect("big conversion on a terminal: progress", code == 0 and
           re.search(r"nnh5 convert: \d+/%d tensors" % n, text) is not None, repr(text[-300:]))
    code, text = on_pty(["convert", "--quiet", "big.h5", "big.tty.h5"])
    expect("--quiet on a terminal: nothing", code == 0 and text == "", repr(text[-300:]))
    shutil.rmtree(work, ignore_errors=True)


if big:
    big_tests(big)
elif rss_mb:
    rss_tests(rss_mb)
else:
    small_tests()
if failures:
    print(f"{len(failures)} failed")
    sys.exit(1)
print("all passed")
