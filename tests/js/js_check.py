#!/usr/bin/python3
"""Cross-check nnh5 files with two independent JavaScript readers (node).

- jsfive: a pure-JavaScript HDF5 parser (no libhdf5);
- h5wasm: libhdf5 2.0 compiled to WebAssembly (a newer HDF5 than nnh5's).

1. A corpus is written the ways nnh5 writes files: the C API (`xcheck write`:
   every dtype, rank 8, lists, dicts, state dicts, several objects through
   one handle; `tool_mkfiles`: models, a checkpoint folder with its index),
   and tools/nnh5.py (every dtype at rank 0, empty, small and large, nested
   state dicts with non-ASCII names, a list, a dict of 20,000 keys, a
   torch model).
2. h5py (Debian's libhdf5 1.10, checked against doc/FORMAT.md by the
   h5py-roundtrip test) describes every group, dataset and attribute of every
   file, with each dataset's stored bytes, in expected.json.
3. read_check.mjs opens every file with both readers and compares: the
   members of every group (names as UTF-8), every attribute, and every
   dataset's shape and values. What a reader cannot represent is asserted as
   such (h5wasm refuses float16 and bfloat16; jsfive reads bfloat16 bits as
   float16 and 64-bit integers as JS numbers), never skipped silently.

Usage: js_check.py SCRATCH_DIR, with NNH5_PY_TOOLS, NNH5_XCHECK,
NNH5_MKFILES and NNH5_JS_DIR (tests/js, holding node_modules) in the
environment. Exits 77 (skipped) without node or the npm packages
(tools/bootstrap.sh --test installs both).
"""
import base64
import json
import os
import shutil
import subprocess
import sys

# The Python module's own (h5py) writer is what the python/ files check, with
# its compression profiles forced to deflate below; the C library's files
# are the other set. Over libnnh5 the module would write the C library's files.
os.environ["NNH5_PYTHON_PURE"] = "1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import pycommon as pc  # noqa: E402  (exits 77 without h5py/numpy; empties SCRATCH_DIR)
from pycommon import check, h5py, nnh5, np, path  # noqa: E402

JS_DIR = os.environ.get("NNH5_JS_DIR") or os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node") or shutil.which("nodejs")


def need_node():
    missing = [m for m in ("jsfive", "h5wasm")
               if not os.path.isfile(os.path.join(JS_DIR, "node_modules", m, "package.json"))]
    if not NODE or missing:
        print("SKIP: " + ("node is not installed" if not NODE else
                          f"npm packages missing in {JS_DIR}/node_modules: {', '.join(missing)}")
              + " (run tools/bootstrap.sh --test)")
        sys.exit(77)


# ------------------------------------------------------------------ corpus

def run(args):
    p = subprocess.run(args, capture_output=True, text=True)
    check(p.returncode == 0, " ".join(os.path.basename(a) for a in args[:2]),
          f"exit {p.returncode}: {p.stderr.strip()[-500:]}")


def python_corpus(d):
    os.makedirs(d)
    rng = np.random.default_rng(7)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    sd = {}
    for name in nnh5.DTYPES:
        if name == "bfloat16" and torch is None:
            continue
        for i, shape in enumerate([(), (0,), (3, 4), (40, 30), (2, 0, 3)]):
            a = pc.random_bits(rng, name, shape)
            if name == "bfloat16":
                a = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
            sd[f"{name}.t{i}" if i != 2 else f"módulo_{name}.t{i}"] = a
    nnh5.save_state_dict(sd, os.path.join(d, "state_dict.h5"),
                         attrs={"epoch": 3, "note": "héllo ✓", "lr": 0.125})
    for name in ("float32", "int64", "bool"):
        nnh5.save(pc.random_bits(rng, name, ()), os.path.join(d, f"scalar_{name}.h5"))
        nnh5.save(pc.random_bits(rng, name, (0, 4)), os.path.join(d, f"empty_{name}.h5"))
    nnh5.save(pc.random_bits(rng, "float64", (64, 80)), os.path.join(d, "tensor.h5"))
    nnh5.save([pc.random_bits(rng, "int16", (i + 1, 300)) for i in range(12)],
              os.path.join(d, "list.h5"))
    nnh5.save({"größe": pc.random_bits(rng, "float32", (5,)), "b": pc.random_bits(rng, "uint8", (9,)),
               "a b": pc.random_bits(rng, "int32", (2000,))}, os.path.join(d, "dict.h5"))
    nnh5.save({f"key{i:05d}": np.int8(i % 100) for i in range(20000)},
              os.path.join(d, "dict_20000_keys.h5"))
    # Compressed as nnh5 writes it without the LZ4 and blosc plugins (shuffle + deflate,
    # which JavaScript readers decode; nnh5.compression_filters says what a profile uses),
    # and tied weights (one dataset under two names).
    real = nnh5.compression_filters
    nnh5.compression_filters = lambda p: {"fast": "shuffle+deflate(1)",
                                          "archive": "shuffle+deflate(6)"}.get(p, "none")
    try:
        comp = {f"{name}.w": pc.random_bits(rng, name, (64, 40))
                for name in ("float32", "float64", "int16", "uint8", "bool")}
        comp["smooth"] = np.linspace(0, 1, 60000, dtype="<f4").reshape(300, 200)
        nnh5.save_state_dict(comp, os.path.join(d, "deflate_fast.h5"), compression="fast")
        nnh5.save_state_dict(comp, os.path.join(d, "deflate_archive.h5"), compression="archive")
    finally:
        nnh5.compression_filters = real
    w = pc.random_bits(rng, "float32", (30, 20))
    nnh5.save_state_dict({"wte.weight": w, "lm_head.weight": w}, os.path.join(d, "tied.h5"))
    if torch is not None:
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        nnh5.save_model(model, os.path.join(d, "model.h5"), probe_input=torch.ones(2, 4))


def write_corpus(d):
    for sub in ("c-api", "c-models"):
        os.makedirs(os.path.join(d, sub))
    run([os.environ["NNH5_XCHECK"], "write", os.path.join(d, "c-api")])
    run([os.environ["NNH5_MKFILES"], os.path.join(d, "c-models")])
    python_corpus(os.path.join(d, "python"))


# ------------------------------------------------------------------ reference

def type_info(tid):
    cls = tid.get_class()
    info = {"size": tid.get_size()}
    if cls == h5py.h5t.INTEGER:
        info.update({"class": "int", "signed": tid.get_sign() == h5py.h5t.SGN_2})
    elif cls == h5py.h5t.FLOAT:
        fields = tid.get_fields()
        info.update({"class": "float",
                     "bf16": info["size"] == 2 and fields[2] == 8 and tid.get_ebias() == 127})
    elif cls == h5py.h5t.ENUM and tid.get_nmembers() == 2 and info["size"] == 1:
        info.update({"class": "bool"})
    else:
        info.update({"class": "other"})
    return info


def attr_value(obj, name):
    v = obj.attrs[name]
    if isinstance(v, bytes):
        return {"t": "str", "v": v.decode("utf-8")}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, np.ndarray) and v.dtype.kind in "OSU":
        return {"t": "strs", "v": [x.decode("utf-8") if isinstance(x, bytes) else str(x)
                                   for x in v.ravel()]}
    if isinstance(v, (np.integer, int)):
        return {"t": "int", "v": str(int(v))}
    if isinstance(v, (np.floating, float)):
        return {"t": "float", "v": float(v) if np.isfinite(v) else repr(float(v))}
    return {"t": "other", "v": repr(v)}


LAYOUTS = {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous",
           h5py.h5d.CHUNKED: "chunked"}


def attrs_dense(o):
    """Are o's attributes in dense storage? HDF5 moves them there past 8 attributes or
    when one does not fit in an object header message (64 KiB)."""
    ids = [o.attrs.get_id(n) for n in o.attrs]
    return len(ids) > 8 or any(a.get_storage_size() >= 65536 for a in ids)


# jsfive fails on groups this large that track creation order (h5py's track_order
# groups too): 18,000 links read, 20,000 do not.
JSFIVE_MAX_ORDERED_LINKS = 18000


def describe(fname):
    objects = []
    with h5py.File(fname, "r") as f:
        def visit(p, o):
            e = {"path": p, "attrs": {n: attr_value(o, n) for n in o.attrs},
                 "attrs_dense": attrs_dense(o)}
            if isinstance(o, h5py.Group):
                tracked = o.id.get_create_plist().get_link_creation_order() != 0
                e.update({"type": "group", "links": sorted(o.keys()),
                          "big_ordered": tracked and len(o) > JSFIVE_MAX_ORDERED_LINKS})
            else:
                tid = o.id.get_type()
                n = int(np.prod(o.shape, dtype=np.int64)) if o.shape else 1
                e.update({"type": "dataset", "shape": list(o.shape), "dtype": type_info(tid),
                          "layout": LAYOUTS.get(o.id.get_create_plist().get_layout(), "other")})
                if e["dtype"]["class"] != "other":
                    buf = np.zeros(n * tid.get_size(), dtype=np.uint8)
                    if n:
                        o.id.read(h5py.h5s.ALL, h5py.h5s.ALL, buf, mtype=tid)
                    e["data"] = base64.b64encode(buf.tobytes()).decode()
            objects.append(e)
        visit("/", f["/"])
        f.visititems(lambda p, o: visit("/" + p, o))
    return objects


def main():
    need_node()
    corpus = path("corpus")
    write_corpus(corpus)
    files = []
    for root, _, names in os.walk(corpus):
        for n in sorted(names):
            if n.endswith(".h5"):
                p = os.path.join(root, n)
                files.append({"file": p, "name": os.path.relpath(p, corpus), "objects": describe(p)})
    files.sort(key=lambda e: e["name"])
    expected = path("expected.json")
    with open(expected, "w", encoding="utf-8") as fp:
        json.dump({"files": files}, fp, ensure_ascii=False)
    print(f"corpus: {len(files)} files, "
          f"{sum(o['type'] == 'dataset' for e in files for o in e['objects'])} datasets "
          f"(h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version})")
    p = subprocess.run([NODE, os.path.join(JS_DIR, "read_check.mjs"), expected], cwd=JS_DIR)
    check(p.returncode == 0, "read_check.mjs", f"exit status {p.returncode}")
    print(f"summary: {pc.N_CHECKS} checks here (plus read_check.mjs's), {len(pc.FAILURES)} failed")
    return 0 if not pc.FAILURES else 1


if __name__ == "__main__":
    sys.exit(main())
