#!/usr/bin/python3
"""Tensors, state dicts, lists and dicts through tools/nnh5.py, alone and crossed with C.

1. Python only: a state dict of every torch dtype nnh5 supports (bit patterns
   with NaN payloads, -0.0, infinities, denormals), scalars, empty, high-rank
   and non-contiguous tensors, saved and loaded back bitwise in key order;
   the same with numpy arrays (all 13 dtypes, big-endian input too), also
   with torch and xxhash made unimportable.
2. Format: files the module writes pass tests/xcheck/h5py_check.py's checks
   of doc/FORMAT.md (types, layouts, alignment, attributes, creation order).
3. C only: py_helper writes, reads back and compares every dtype in C.
4. Python writes -> C reads (bitwise, checksums required and equal to
   Python's); C writes -> Python reads; C re-saves what Python wrote.
5. Checksums: a flipped data byte is reported by Python (ChecksumError) and
   C (NNH5_ERR_CHECKSUM), for files written by either side.
6. Plain h5py files load in the same order with the same bytes as in C, and
   files C refuses (external links and storage, virtual datasets, unknown
   filters, non-tensor types, cycles, newer format versions) are refused.
"""
import collections
import importlib.util
import json
import os
import subprocess
import sys
import warnings

import pycommon as pc
from pycommon import check, expect_error, helper, np, h5py, nnh5, path

torch = pc.need_torch()
if not nnh5.HAVE_XXHASH:  # the files here carry checksums; their absence is simulated below
    print("SKIP: python3-xxhash is not installed")
    sys.exit(77)
ALL_DTYPES = list(nnh5.DTYPES)


def numpy_corpus(seed=2):
    rng = np.random.default_rng(seed)
    sd = collections.OrderedDict()
    for name in ALL_DTYPES:
        if name == "bfloat16":
            continue  # numpy has none
        for i, shape in enumerate(pc.SHAPES):
            sd[f"{name}.t{i}"] = pc.random_bits(rng, name, shape)
    for dt in (">i2", ">i4", ">u8", ">f2", ">f4", ">f8"):  # big-endian input is stored LE
        sd[f"big_endian.{dt[1:]}"] = pc.random_bits(rng, nnh5._np_dtype_name(np.dtype(dt)),
                                                     (3, 5)).astype(dt)
    sd["scalar.np_generic"] = np.float32(1.5)
    sd["noncontig.fortran"] = np.asfortranarray(pc.random_bits(rng, "int32", (6, 7)))
    sd["noncontig.reversed"] = pc.random_bits(rng, "uint16", (40,))[::-3]
    return sd


def compare_dump(want, dump, what, stored_required=True):
    """py_helper's dump of a file against the tensors that were saved, checksums included."""
    check([d[0] for d in dump] == list(want), f"{what}: key order",
          pc.order_diff([d[0] for d in dump], want))
    got = {d[0]: d for d in dump}
    for k, v in want.items():
        if k not in got:
            continue
        wd, ws, wb = pc.bits(v)
        _, gd, gs, stored, gb = got[k]
        check((gd, gs, gb) == (wd, ws, wb), f"{what}: {k}",
              f"C read {gd} {gs} {gb[:16].hex()}..., expected {wd} {ws} {wb[:16].hex()}...")
        if stored_required and nnh5.HAVE_XXHASH:
            import xxhash
            check(stored == xxhash.xxh3_64_intdigest(wb), f"{what}: {k}: stored checksum",
                  f"{stored!r} is not XXH3-64 of the data")


def run_python(code, *args):
    """Run code in a fresh /usr/bin/python3 with tools/ on the path: (rc, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {pc.TOOLS!r})\n"
                        + code, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


# ------------------------------------------------------------ 1. Python only

def python_only():
    sd = pc.torch_corpus()
    nnh5.save_state_dict(sd, path("py_torch.h5"))
    pc.same_tensors(sd, nnh5.load_state_dict(path("py_torch.h5")), "python torch round trip")
    back = nnh5.load_state_dict(path("py_torch.h5"), numpy=True)
    check(all(isinstance(v, np.ndarray) for v in back.values()), "numpy=True gives numpy arrays")
    pc.same_tensors(sd, back, "python torch -> numpy", numpy_bf16=True)

    nd = numpy_corpus()
    nnh5.save_state_dict(nd, path("py_numpy.h5"))
    pc.same_tensors(nd, nnh5.load_state_dict(path("py_numpy.h5"), numpy=True),
                    "python numpy round trip")
    check(all(isinstance(v, torch.Tensor) for v in nnh5.load_state_dict(
        path("py_torch.h5")).values()), "torch tensors by default")
    # save()/load() like torch.save/torch.load; numpy cases load back as numpy
    cases = {"tensor": sd["float32.t4"], "bf16": sd["bfloat16.t4"], "tensor0d": sd["int64.t0"],
             "list": [sd["bfloat16.t4"], sd["uint8.t3"], sd["bool.t1"]],
             "tuple": (sd["int8.t3"],), "dict": {"x": sd["float16.t5"], "y.z": sd["bool.t6"]},
             "np_tensor": nd["uint64.t5"], "np_list": [nd["uint32.t3"], nd["float16.t7"]],
             "np_dict": {"a": nd["uint16.t3"], "b.c": nd["bool.t6"]},
             "empty_dict": {}, "empty_list": []}
    for name, obj in cases.items():
        nnh5.save(obj, path(f"py_save_{name}.h5"))
        numpy = name.startswith("np_")
        got = nnh5.load(path(f"py_save_{name}.h5"), numpy=numpy)
        if isinstance(obj, dict):
            check(type(got) is dict, f"load {name}: a dict", type(got).__name__)
        elif isinstance(obj, (list, tuple)):
            check(type(got) is list and len(got) == len(obj), f"load {name}: a list",
                  f"{type(got).__name__}")
            obj = {str(i): v for i, v in enumerate(obj)}
            got = {str(i): v for i, v in enumerate(got)}
        else:
            check(isinstance(got, np.ndarray if numpy else torch.Tensor), f"load {name}: a "
                  "tensor", type(got).__name__)
            obj, got = {"t": obj}, {"t": got}
        pc.same_tensors(obj, got, f"save/load {name}")
    check(isinstance(nnh5.load(path("py_torch.h5")), collections.OrderedDict),
          "load(state dict file) gives an OrderedDict")

    # without torch: numpy only; without xxhash: no checksums written
    rc, out, err = run_python("""
import json, collections
sys.modules['torch'] = None
import numpy as np, nnh5
a = np.arange(6, dtype='<u4').reshape(2, 3)
nnh5.save_state_dict(collections.OrderedDict([('l.w', a), ('l.b', np.array(True))]), sys.argv[1])
sd = nnh5.load_state_dict(sys.argv[1])
t = nnh5.load(sys.argv[2])
try:
    nnh5.save_model(None, sys.argv[1] + '.model')
    model_error = ''
except nnh5.UnsupportedError as e:
    model_error = str(e)
print(json.dumps({'types': [type(v).__name__ for v in sd.values()], 'keys': list(sd),
                  'equal': bool((sd['l.w'] == a).all()), 'bool': bool(sd['l.b']),
                  'bf16': [t.dtype.str, t.ravel().tolist()], 'model_error': model_error}))
""", path("notorch.h5"), path("py_save_bf16.h5"))
    if check(rc == 0, "without torch: runs", err.strip()[-300:]):
        r = json.loads(out)
        check(r["types"] == ["ndarray", "ndarray"] and r["keys"] == ["l.w", "l.b"]
              and r["equal"] and r["bool"], "without torch: numpy arrays", out)
        check(r["bf16"] == ["<f4", sd["bfloat16.t4"].float().ravel().tolist()] or
              np.array_equal(np.array(r["bf16"][1], dtype="<f4"),
                             sd["bfloat16.t4"].float().numpy().ravel(), equal_nan=True),
              "without torch: bfloat16 widens exactly to float32", out)
        check("needs PyTorch" in r["model_error"], "without torch: save_model says why", out)
    rc, out, err = run_python("""
import warnings, h5py
sys.modules['xxhash'] = None
import numpy as np, nnh5
assert not nnh5.HAVE_XXHASH
nnh5.save({'a': np.arange(3000.0), 'b': np.int8(3)}, sys.argv[1])
with h5py.File(sys.argv[1]) as f:
    print(sorted(k for name in f for k in f[name].attrs))
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter('always')
    d = nnh5.load(sys.argv[2])
    d = nnh5.load(sys.argv[2])
    print([str(x.message) for x in w])
try:
    nnh5.load(sys.argv[2], require_checksums=True)
except nnh5.ChecksumError as e:
    print('refused:', e)
""", path("noxxh.h5"), path("py_torch.h5"))
    if check(rc == 0, "without xxhash: runs", err.strip()[-300:]):
        lines = out.splitlines()
        check(lines[0] == "[]", "without xxhash: no nnh5_xxh3 attributes written", lines[0])
        check(lines[1].count("not verified") == 1, "without xxhash: loading warns once", lines[1])
        check(lines[2].startswith("refused:") and "xxhash" in lines[2],
              "without xxhash: require_checksums refuses", lines[2])
    p = helper("dump", "dict", path("noxxh.h5"))
    check("\t-\t" in p.stdout, "C loads a file without checksums", p.stdout[:200])
    p = helper("dump", "dict", path("noxxh.h5"), "require", check_rc=False)
    check(p.returncode == 1 and "NNH5_ERR_CHECKSUM" in p.stderr,
          "C with require_checksums refuses a file without checksums", p.stderr)


# ---------------------------------------------------- 2. FORMAT.md conformance

def load_h5py_check():
    """tests/xcheck/h5py_check.py as a module (it reads two arguments when imported)."""
    argv = sys.argv
    sys.argv = [os.environ["NNH5_H5PY_CHECK"], "unused", "unused"]
    try:
        spec = importlib.util.spec_from_file_location("h5py_check", os.environ["NNH5_H5PY_CHECK"])
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.argv = argv
    return mod


def conformance():
    hc = load_h5py_check()
    d = path("format")
    os.makedirs(d)
    files = []
    seed = [0]

    def tensor(dtype_name, shape):
        seed[0] += 1
        fm = {"mul": 3 + seed[0] % 5, "add": seed[0] * 7, "mod": 97,
              "sub": 0 if dtype_name[0] in "ub" else 48,
              "div": 4 if dtype_name.startswith(("float", "bfloat", "complex")) else 1,
              "big": "0"}
        if dtype_name == "uint64":
            fm["big"] = str(1 << 63)
        if dtype_name in nnh5.FLOAT8:  # k/4 for |k| <= 8: exact in both formats
            fm["mod"], fm["sub"] = 17, 8
        vals = hc.expected_array(dtype_name, shape, fm, hc.H5PY_DTYPE[dtype_name])
        if dtype_name in nnh5.FLOAT8:
            _, (_, _, esize, _, msize), bias = hc.FLOAT8[dtype_name]
            vals = nnh5.float8_array(
                [hc.float8_bits(v, esize, msize, bias)
                 for v in hc.exact_values(dtype_name, shape, fm)], dtype_name).reshape(shape)
        value = torch.from_numpy(vals).to(torch.bfloat16) if dtype_name == "bfloat16" else vals
        return {"kind": "tensor", "dtype": dtype_name, "shape": list(shape), "formula": fm}, value

    items, sd = [], collections.OrderedDict()
    for name in ALL_DTYPES:
        for i, shape in enumerate([(), (0,), (3, 4), (40, 30), (2, 0, 3)]):
            spec, v = tensor(name, shape)
            key = f"{name}.t{i}" if i != 4 else f"deep.{name}.er.t4"
            if i == 2:
                key = f"módulo_{name}.t2"  # non-ASCII group and link names
            sd[key] = v
            items.append(dict(spec, key=key))
    nnh5.save_state_dict(sd, os.path.join(d, "sd.h5"),
                         attrs={"epoch": 3, "note": "héllo ✓", "lr": 0.125})
    files.append({"file": "sd.h5", "api": "save", "objects": [
        {"path": "/", "kind": "state_dict", "keys": list(sd), "items": items}],
        "attrs": [{"obj": "/", "name": "epoch", "type": "int", "value": "3"},
                  {"obj": "/", "name": "note", "type": "string", "value": "héllo ✓"},
                  {"obj": "/", "name": "lr", "type": "float", "value": 0.125}]})
    dct, ditems = {}, []
    for name in ALL_DTYPES:
        spec, v = tensor(name, (5, 7))
        dct[f"k_{name}"] = v
        ditems.append(dict(spec, key=f"k_{name}"))
    nnh5.save(dct, os.path.join(d, "dict.h5"))
    files.append({"file": "dict.h5", "api": "save", "attrs": [], "objects": [
        {"path": "/", "kind": "dict", "keys": list(dct), "items": ditems}]})
    lst, litems = [], []
    for i in range(12):
        spec, v = tensor(ALL_DTYPES[i % 13], (i % 3 + 1, 1100))
        lst.append(v)
        litems.append(spec)
    nnh5.save(lst, os.path.join(d, "list.h5"))
    files.append({"file": "list.h5", "api": "save", "attrs": [], "objects": [
        {"path": "/", "kind": "list", "items": litems}]})
    spec, v = tensor("float32", (50, 60))
    nnh5.save(v, os.path.join(d, "tensor.h5"))
    files.append({"file": "tensor.h5", "api": "save", "attrs": [],
                  "objects": [dict(spec, path="tensor")]})
    with open(os.path.join(d, "manifest.json"), "w", encoding="utf-8") as fp:
        json.dump({"writer": "nnh5.py", "files": files}, fp, ensure_ascii=False)
    hc.check_nnh5_corpus(d)
    hc.run_h5dump(d)  # every file goes through h5dump without an error
    pc.N_CHECKS += hc.N_CHECKS
    for f in hc.FAILURES:
        check(False, "FORMAT.md conformance", f)
    print(f"FORMAT.md conformance of files nnh5.py wrote: {hc.N_CHECKS} checks by "
          f"h5py_check.py, {len(hc.FAILURES)} failed")


# ---------------------------------------------------------- 3./4. crossing with C

def crossing():
    p = helper("roundtrip", path("c_roundtrip.h5"))
    print(p.stdout.strip())
    n = len(ALL_DTYPES) * len(pc.SHAPES) * 3 + 1  # state dict, dict, list, one tensor
    check(p.stdout.startswith(f"roundtrip: {n} tensors"), "C only: every corpus tensor compared",
          p.stdout)

    # Python writes, C reads (checksums required: every tensor has one)
    sd = pc.torch_corpus(seed=5)
    nnh5.save_state_dict(sd, path("py_for_c.h5"))
    compare_dump(sd, pc.parse_dump(helper("dump", "state_dict", path("py_for_c.h5"),
                                          "require").stdout), "python -> C state dict")
    nd = numpy_corpus(seed=6)
    nnh5.save_state_dict(nd, path("py_np_for_c.h5"))
    compare_dump(nd, pc.parse_dump(helper("dump", "state_dict", path("py_np_for_c.h5"),
                                          "require").stdout), "python numpy -> C")
    dct = collections.OrderedDict((k.replace(".", "_"), v) for k, v in list(sd.items())[::3])
    nnh5.save(dct, path("py_dict_for_c.h5"))
    compare_dump(dct, pc.parse_dump(helper("dump", "dict", path("py_dict_for_c.h5"),
                                           "require").stdout), "python -> C dict")
    lst = list(nd.values())[::2]
    nnh5.save(lst, path("py_list_for_c.h5"))
    compare_dump({str(i): v for i, v in enumerate(lst)},
                 pc.parse_dump(helper("dump", "list", path("py_list_for_c.h5"),
                                      "require").stdout), "python -> C list")
    nnh5.save(sd["noncontig.transposed"], path("py_tensor_for_c.h5"))
    compare_dump({"tensor": sd["noncontig.transposed"]},
                 pc.parse_dump(helper("dump", "tensor", path("py_tensor_for_c.h5"),
                                      "require").stdout), "python -> C tensor")
    # Python -> C -> Python
    helper("resave", path("py_for_c.h5"), path("c_resaved.h5"))
    pc.same_tensors(sd, nnh5.load_state_dict(path("c_resaved.h5"), require_checksums=True),
            "python -> C resave -> python")

    # C writes, Python reads: as torch tensors (the dtypes torch has) and as numpy (all 13)
    for kind in ("state_dict", "dict", "list", "tensor"):
        for mode in ("torch", "numpy"):
            f = path(f"c_{kind}_{mode}.h5")
            dump = pc.parse_dump(helper("write", kind, f, *(["torch"] if mode == "torch" else
                                                            [])).stdout)
            want = collections.OrderedDict((d[0], d) for d in dump)
            numpy = mode == "numpy"
            if kind == "state_dict":
                got = nnh5.load_state_dict(f, numpy=numpy, require_checksums=True)
            else:
                got = nnh5.load(f, numpy=numpy, require_checksums=True)
                if kind == "list":
                    got = {str(i): v for i, v in enumerate(got)}
                elif kind == "tensor":
                    got = {"tensor": got}
            check(list(got) == list(want), f"C -> python {mode} {kind}: key order")
            for k, (_, dt, shape, stored, data) in want.items():
                if k not in got:
                    continue
                check(isinstance(got[k], np.ndarray if numpy else torch.Tensor),
                      f"C -> python {mode} {kind}: {k}: type", type(got[k]).__name__)
                if numpy and dt == "bfloat16":
                    data = (np.frombuffer(data, "<u2").astype("<u4") << 16).tobytes()
                    dt = "float32"
                check(pc.bits(got[k]) == (dt, shape, data), f"C -> python {mode} {kind}: {k}",
                      f"{pc.bits(got[k])[:2]} vs {dt} {shape}")
    expect_error(lambda: nnh5.load_state_dict(path("c_state_dict_numpy.h5")),
                 nnh5.UnsupportedError, ["'/uint16/t0' is uint16", "numpy=True"],
                 "uint16 into torch 1.13: refused with the remedy")
    nnh5.save_state_dict({"f8": nnh5.float8_array([0x38, 0xb8], "float8_e4m3fn")},
                         path("float8.h5"))
    if not hasattr(torch, "float8_e4m3fn"):
        expect_error(lambda: nnh5.load_state_dict(path("float8.h5")), nnh5.UnsupportedError,
                     ["'/f8' is float8_e4m3fn", "numpy=True"],
                     "float8 into a torch without it: refused with the remedy")
    f8 = nnh5.load_state_dict(path("float8.h5"), numpy=True)["f8"]
    check(f8.dtype.metadata == {"nnh5_dtype": "float8_e4m3fn"} and f8.tolist() == [0x38, 0xb8],
          "float8 with numpy=True: the bits, marked", repr(f8))
    with h5py.File(path("float8.h5")) as f:
        check(f["f8"][()].tolist() == [1.0, -1.0], "h5py reads float8 as float16 values",
              repr(f["f8"][()]))
    # h5py (independently of nnh5.py) sees C's and Python's checksums the same way
    import xxhash
    with h5py.File(path("c_state_dict_numpy.h5")) as f:
        ds = f["float64/t6"]
        raw = np.empty(ds.shape, "<u8")
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=ds.id.get_type())
        check(int(ds.attrs["nnh5_xxh3"]) == xxhash.xxh3_64_intdigest(raw),
              "C's nnh5_xxh3 is xxhash.xxh3_64_intdigest of the data")


# ---------------------------------------------------------------- 5. checksums

def checksums():
    for who in ("python", "C"):
        f = path(f"flip_{who}.h5")
        if who == "python":
            nnh5.save_state_dict(pc.torch_corpus(seed=9), f)
        else:
            helper("write", "state_dict", f)
        with h5py.File(f) as h:  # float32.t6, (64, 80): contiguous, outside the object header
            off = h["float32/t6"].id.get_offset()
            header = h5py.h5o.get_info(h["float32"].id, b"t4").addr  # (3, 4): its header
        g = f + ".header"
        with open(f, "rb") as src, open(g, "wb") as dst:
            dst.write(src.read())
        pc.flip_byte(f, off + 1234)
        expect_error(lambda: nnh5.load_state_dict(f, numpy=True), nnh5.ChecksumError,
                     ["damaged", "/float32/t6", "stored checksum"],
                     f"{who} file, flipped data byte: Python reports it")
        p = helper("dump", "state_dict", f, check_rc=False)
        check(p.returncode == 1 and "NNH5_ERR_CHECKSUM" in p.stderr and "float32/t6" in p.stderr,
              f"{who} file, flipped data byte: C reports it", p.stderr)
        back = nnh5.load_state_dict(f, numpy=True, verify_checksums=False)
        check("float32.t6" in back, f"{who} file: verify_checksums=False loads it anyway")
        # a flip inside a dataset's object header hits HDF5's metadata checksum
        pc.flip_byte(g, header + 40)
        try:
            nnh5.load_state_dict(g, numpy=True)
            err = None
        except nnh5.Error as e:
            err = e
            print(f"  flipped object-header byte ({who}): {type(e).__name__}: {str(e)[:150]}")
        check(err is not None, f"{who} file, flipped header byte: Python refuses it")
        p = helper("dump", "state_dict", g, check_rc=False)
        check(p.returncode == 1, f"{who} file, flipped header byte: C refuses it", p.stdout[:100])


# ---------------------------------------------- 6. plain h5py files, refusals

def plain_h5py():
    rng = np.random.default_rng(7)
    for tracked in (True, False):
        f = path(f"h5py_{tracked}.h5")
        with h5py.File(f, "w", track_order=tracked) as h:
            h.create_dataset("zz", data=rng.integers(-9, 9, 3).astype(">i4"))
            b = h.create_group("body", track_order=tracked)
            b.create_dataset("w2", data=rng.standard_normal((2, 3)).astype(">f8"))
            blk = b.create_group("Block", track_order=not tracked)
            blk.create_dataset("deep", data=rng.integers(0, 99, 4).astype(">u8"))
            blk.create_dataset("bias", data=rng.integers(0, 2, 5).astype(bool))
            b.create_dataset("layer10", data=np.float16(rng.standard_normal((3, 2))))
            b.create_dataset("layer2", data=np.array(1.5, dtype=">f2"))
            h.create_dataset("alpha", data=np.zeros((0, 4), "<f4"))
            h.create_dataset("big", data=rng.standard_normal((40, 40)).astype(">f4"))
        for kind, load in (("state_dict", lambda: nnh5.load_state_dict(f, numpy=True)),
                           ("dict", lambda: nnh5.load(f, numpy=True))):
            p = helper("dump", kind, f)
            dump = pc.parse_dump(p.stdout)
            got = load()
            check([d[0] for d in dump] == list(got), f"h5py file (tracked {tracked}) as {kind}: "
                  "same key order as C", f"{list(got)} vs {[d[0] for d in dump]}")
            for key, dt, shape, _, data in dump:
                if key in got:
                    check(pc.bits(got[key]) == (dt, shape, data),
                          f"h5py file (tracked {tracked}) as {kind}: {key}: same as C")

        # a group inside the file (a checkpoint's sections are read this way)
        full = nnh5.load_state_dict(f, numpy=True)
        sub = nnh5.load_state_dict(f, numpy=True, group="body")
        check(list(sub) == [k[5:] for k in full if k.startswith("body.")],
              f"h5py file (tracked {tracked}): group='body'", str(list(sub)))
    expect_error(lambda: nnh5.load_state_dict(f, group="body/nope"), nnh5.FormatError,
                 ["'/body/nope' not found"], "group= names a missing group")
    with h5py.File(path("ckpt-like.h5"), "w") as h:
        h.attrs["nnh5_kind"] = "checkpoint"
        h.create_group("model").create_dataset("w", data=np.arange(3.0))
    expect_error(lambda: nnh5.load(path("ckpt-like.h5")), nnh5.UnsupportedError,
                 ["checkpoint", "group='model'"], "load() of a checkpoint says how to read it")
    check(list(nnh5.load_state_dict(path("ckpt-like.h5"), group="model")) == ["w"],
          "a checkpoint's section loads with group=")

    def refused(name, build, exc, words, c_status):
        f = path(f"refused_{name}.h5")
        with h5py.File(f, "w", libver="latest") as h:
            h.create_dataset("good", data=np.arange(3.0))
            build(h)
        expect_error(lambda: nnh5.load_state_dict(f), exc, words, f"refused {name}: Python")
        p = helper("dump", "state_dict", f, check_rc=False)
        check(p.returncode == 1 and c_status in p.stderr, f"refused {name}: C too", p.stderr)

    def external_storage(h):
        with open(path("raw.bin"), "wb") as fp:
            fp.write(b"\0" * 64)
        h.create_dataset("ext", shape=(8,), dtype="<f8", external=[(path("raw.bin"), 0, 64)])

    def virtual(h):
        layout = h5py.VirtualLayout(shape=(3,), dtype="<f8")
        layout[:] = h5py.VirtualSource(path("other.h5"), "x", shape=(3,))
        h.create_virtual_dataset("vds", layout)

    def cycle(h):
        g = h.create_group("g")
        g["back"] = h["g"]

    refused("external_link", lambda h: h.__setitem__("ext", h5py.ExternalLink(
        "/etc/passwd", "/x")), nnh5.UnsafeError, ["/ext", "external link"], "NNH5_ERR_UNSAFE")
    refused("soft_group", lambda h: (h.create_group("grp").create_dataset("x", data=[1]),
                                     h.__setitem__("soft", h5py.SoftLink("/grp"))),
            nnh5.UnsafeError, ["/soft", "soft link to a group"], "NNH5_ERR_UNSAFE")
    refused("external_storage", external_storage, nnh5.UnsafeError,
            ["/ext", "external files"], "NNH5_ERR_UNSAFE")
    refused("virtual", virtual, nnh5.UnsafeError, ["/vds", "virtual"], "NNH5_ERR_UNSAFE")
    refused("lzf_filter", lambda h: h.create_dataset("lzf", data=np.zeros(100),
                                                      compression="lzf"),
            nnh5.UnsafeError, ["/lzf", "filter 32000"], "NNH5_ERR_UNSAFE")
    refused("string", lambda h: h.create_dataset("names", data=["a", "bc"]),
            nnh5.UnsupportedError, ["/names", "string (variable-length)"], "NNH5_ERR_TYPE")
    refused("compound", lambda h: h.create_dataset("c", data=np.zeros(2, "i4,f8")),
            nnh5.UnsupportedError, ["/c", "compound of 2 members"], "NNH5_ERR_TYPE")
    refused("enum3", lambda h: h.create_dataset("e", data=np.zeros(2, "u1"), dtype=h5py.enum_dtype(
        {"R": 0, "G": 1, "B": 2}, basetype="u1")), nnh5.UnsupportedError, ["/e", "enum"],
        "NNH5_ERR_TYPE")
    refused("cycle", cycle, nnh5.FormatError, ["/g/back", "cycle"], "NNH5_ERR_FORMAT")
    refused("version2", lambda h: h.attrs.create("nnh5_format_version", 2, dtype="<i8"),
            nnh5.FormatError, ["format version 2"], "NNH5_ERR_FORMAT")
    # deflate, shuffle and fletcher32 are allowed (chunked h5py datasets load)
    f = path("allowed_filters.h5")
    a = np.arange(1000, dtype="<i4")
    with h5py.File(f, "w") as h:
        h.create_dataset("d", data=a, compression="gzip", shuffle=True, fletcher32=True)
    check(np.array_equal(nnh5.load(f, numpy=True)["d"], a), "deflate+shuffle+fletcher32 load")
    with open(path("text.h5"), "w") as fp:
        fp.write("not hdf5\n" * 100)
    expect_error(lambda: nnh5.load(path("text.h5")), nnh5.FormatError,
                 ["text.h5", "not an HDF5 file"], "a text file is refused")
    expect_error(lambda: nnh5.load(path("missing.h5")), FileNotFoundError,
                 ["missing.h5", "No such file"], "a missing file")
    expect_error(lambda: nnh5.load(pc.TMP), nnh5.InvalidError, ["is a folder"], "a folder")


def bool_rule():
    """doc/FORMAT.md "bool": only h5py's bool loads as bool; bytes other than 0/1 are refused."""
    bad = np.array([0, 1, 2, 1, 0], dtype="u1")
    f = path("bool_bad.h5")
    with h5py.File(f, "w") as h:  # h5py stores a numpy bool's bytes as they are
        h.create_dataset("mask", data=bad.view(np.bool_))
        check(h["mask"].dtype == np.bool_, "h5py wrote its bool type")
    for numpy in (True, False):
        expect_error(lambda: nnh5.load(f, numpy=numpy), nnh5.FormatError,
                     [f, "dataset '/mask'", "element 2", "byte 0x02", "a bool is 0 or 1"],
                     f"a stored bool byte 0x02 is refused (numpy={numpy})")
    p = helper("dump", "dict", f, check_rc=False)
    check(p.returncode == 1 and "NNH5_ERR_FORMAT" in p.stderr and "element 2" in p.stderr,
          "C refuses the same file", p.stderr.strip())
    big = np.zeros(10000, dtype="u1")
    big[7777] = 0xff
    with h5py.File(path("bool_big.h5"), "w") as h:  # contiguous, not compact
        h.create_dataset("mask", data=big.view(np.bool_))
    expect_error(lambda: nnh5.load(path("bool_big.h5")), nnh5.FormatError,
                 ["element 7777", "byte 0xff"], "a contiguous bool dataset is checked too")
    # the type rule: an enum over uint8 with FALSE/TRUE is not h5py's bool
    with h5py.File(path("bool_u8.h5"), "w") as h:
        h.create_dataset("x", data=np.array([0, 1], "u1"), dtype=h5py.enum_dtype(
            {"FALSE": 0, "TRUE": 1}, basetype="u1"))
    expect_error(lambda: nnh5.load(path("bool_u8.h5")), nnh5.UnsupportedError,
                 ["'/x'", "enum of 2 members"], "an unsigned FALSE/TRUE enum is not bool")
    p = helper("dump", "dict", path("bool_u8.h5"), check_rc=False)
    check(p.returncode == 1 and "NNH5_ERR_TYPE" in p.stderr, "C agrees on the type rule",
          p.stderr.strip())
    # saving such bytes is refused before anything is written
    out = path("bool_save.h5")
    for what, value in (("numpy", bad.view(np.bool_)),
                        ("torch", torch.from_numpy(bad).view(torch.bool)),
                        ("non-contiguous torch", torch.from_numpy(np.tile(bad, (2, 1))).view(
                            torch.bool).t())):
        expect_error(lambda: nnh5.save(value, out), nnh5.InvalidError,
                     ["element 2" if what != "non-contiguous torch" else "element 4",
                      "byte 0x02"], f"saving a {what} bool holding 0x02 is refused")
        expect_error(lambda: nnh5.save_state_dict({"ok": torch.ones(2), "m.mask": value}, out),
                     nnh5.InvalidError, ["'m.mask'", "byte 0x02"],
                     f"saving a state dict with a {what} bool holding 0x02 is refused")
    check(not os.path.exists(out), "refused saves write nothing")
    good = torch.tensor([True, False, True])
    nnh5.save(good, out)
    check(torch.equal(nnh5.load(out), good), "a bool tensor round-trips")


def special_files():
    """Loaders refuse a FIFO, a device, a socket or a link to one without blocking."""
    import signal
    import socket
    good = path("special_good.h5")
    nnh5.save(torch.arange(4), good)
    fifo, fifo_link, good_link, sock = (path(n) for n in (
        "special_fifo.h5", "special_fifo_link.h5", "special_good_link.h5", "special_sock.h5"))
    os.mkfifo(fifo)
    os.symlink(fifo, fifo_link)
    os.symlink(good, good_link)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(sock)
    except OSError:  # the scratch path is longer than a socket address allows
        sock = None
    s.close()

    def hang(signum, frame):
        raise TimeoutError("a loader blocked on a special file")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)  # a hang fails this part instead of the whole suite
    try:
        cases = [(fifo, "FIFO"), (fifo_link, "FIFO"), ("/dev/zero", "character device")]
        if sock:
            cases.append((sock, "socket"))
        for p, what in cases:
            for name, fn in (("load", nnh5.load), ("load_state_dict", nnh5.load_state_dict),
                             ("load_model", nnh5.load_model)):
                expect_error(lambda: fn(p), nnh5.InvalidError,
                             [p, what, "not a regular file"], f"{name} refuses {p}")
        check(torch.equal(nnh5.load(good_link), torch.arange(4)), "a link to a file loads")
        with open(good, "rb") as src, open(path("special_cut.h5"), "wb") as dst:
            dst.write(b"u" * 512 + src.read(200))  # the signature after a user block
        expect_error(lambda: nnh5.load(path("special_cut.h5")), nnh5.FormatError,
                     ["special_cut.h5", "damaged HDF5 file"], "a cut file is damaged HDF5")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def newer_hdf5():
    """A file written by a newer HDF5 says so, as the C library does, not "damaged"."""
    data = os.environ.get("NNH5_TEST_DATA") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "data")
    newer = os.path.join(data, "written-by-hdf5-2.0.hdf5")
    msg = pc.expect_error(lambda: nnh5.load(newer), nnh5.FormatError,
                          ["written-by-hdf5-2.0.hdf5", "/weight", "written by a newer HDF5",
                           "layout message"], "a newer HDF5's file: said so")
    check(msg is None or "damaged" not in msg, "a newer HDF5's file is not called damaged",
          msg or "")
    c = helper("dump", "state_dict", newer, check_rc=False)
    check(c.returncode != 0 and "newer HDF5" in c.stdout + c.stderr,
          "the C library says the same of it", c.stdout + c.stderr)


def freed_without_gc():
    """A load's arrays go when the caller drops them, with the cyclic collector off: no
    reference cycle of the loader's holds them (the h5py walk's recursive closure did,
    so memory stayed until gc ran)."""
    import gc
    import weakref
    sd = collections.OrderedDict()
    for i in range(3):
        sd[f"layers.{i}.weight"] = np.full((64, 32), i, dtype=np.float32)
        sd[f"layers.{i}.sub.bias"] = np.arange(32, dtype=np.float64)
    p = path("freed.h5")
    nnh5.save_state_dict(sd, p)
    lp = path("freed_list.h5")
    nnh5.save([np.ones(8, dtype=np.int64), np.zeros(3, dtype=np.float32)], lp)
    loads = [("load_state_dict, numpy", lambda: nnh5.load_state_dict(p, numpy=True)),
             ("load_state_dict, torch", lambda: nnh5.load_state_dict(p, numpy=False)),
             ("load", lambda: nnh5.load(p, numpy=True)),
             ("load_state_dict of a group", lambda: nnh5.load_state_dict(p, numpy=True,
                                                                         group="layers")),
             ("load of a list", lambda: nnh5.load(lp, numpy=True))]
    was = gc.isenabled()
    gc.disable()
    try:
        for what, fn in loads:
            got = fn()
            values = list(got.values()) if isinstance(got, dict) else list(got)
            check(len(values) > 0, f"{what}: loaded something")
            refs = [weakref.ref(v) for v in values]
            del got, values
            alive = sum(r() is not None for r in refs)
            check(alive == 0, f"{what}: every loaded value is freed once dropped, without gc",
                  f"{alive} of {len(refs)} still alive")
    finally:
        if was:
            gc.enable()


def main():
    print(f"nnh5.py {nnh5.__version__}, h5py {h5py.version.version}, HDF5 "
          f"{h5py.version.hdf5_version}, torch {torch.__version__}, xxhash {nnh5.HAVE_XXHASH}")
    check(helper("version").stdout.strip() == nnh5.__version__,
          "nnh5.py's version is the C library's")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pc.run_parts(python_only, conformance, crossing, checksums, plain_h5py, bool_rule,
                     special_files, newer_hdf5, freed_without_gc)
    pc.finish("test_tensors")


if __name__ == "__main__":
    main()
