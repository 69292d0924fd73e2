#!/usr/bin/python3
# Cross-check nnh5 files with Debian's h5py and h5dump, in both directions.
#
# 1. `xcheck write DIR` writes a corpus with nnh5 and a manifest; every object
#    is checked here with h5py against doc/FORMAT.md (dtypes, shapes, values
#    bit for bit, group structure, nnh5_* attributes, key and creation order,
#    user attributes, superblock version, layouts, alignment, filters), and
#    every file must go through h5dump without an error.
# 2. This script writes a corpus with h5py (tracked and untracked groups,
#    nesting, big-endian numbers, bool, float16, 0-d, empty arrays, lists,
#    fixed- and variable-length string attributes, unsupported datasets) and a
#    manifest in the same format, and `xcheck verify DIR` loads it with nnh5.
#
# Values follow the formula shared with xcheck.c: k = (i*mul + add) mod m;
# integers k - sub + big, floats (k - sub) / div, bool (i*mul + add) % 3 == 0.
#
# Usage: h5py_check.py XCHECK_EXE SCRATCH_DIR [H5DUMP]. Exit 0 if everything matched,
# 1 otherwise, 77 (skip) if h5py or numpy is missing.
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction

try:
    import numpy as np
    import h5py
except ImportError as e:  # pragma: no cover
    print(f"SKIP: h5py/numpy not available ({e})")
    sys.exit(77)

try:
    import xxhash  # Debian python3-xxhash: checks the stored checksums independently
except ImportError:  # pragma: no cover
    xxhash = None

XCHECK, SCRATCH = sys.argv[1], sys.argv[2]
N_CHECKS = 0
FAILURES = []


def check(ok, where, msg):
    global N_CHECKS
    N_CHECKS += 1
    if not ok:
        FAILURES.append(f"{where}: {msg}")
        print(f"FAIL {where}: {msg}")
    return ok


# ------------------------------------------------------------------ values

INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64,
            "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}
# What h5py 3.7 returns for each nnh5 dtype. bfloat16 (a 16-bit HDF5 float
# with bfloat16's layout) comes back converted by HDF5 to float32, exactly.
H5PY_DTYPE = {"bool": np.dtype(np.bool_), "float16": np.dtype("<f2"),
              "bfloat16": np.dtype("<f4"), "float32": np.dtype("<f4"),
              "float64": np.dtype("<f8"), "complex64": np.dtype("<c8"),
              "complex128": np.dtype("<c16"),
              # HDF5 converts a 1-byte float to h5py's smallest float, float16
              # (exact for the formula's values, |x| <= 2: FORMAT.md "float8")
              "float8_e4m3fn": np.dtype("<f2"), "float8_e5m2": np.dtype("<f2")}
FLOAT8 = {"float8_e4m3fn": (1, (7, 3, 4, 0, 3), 7), "float8_e5m2": (1, (7, 2, 5, 0, 2), 15)}
for _n, _b in INT_BITS.items():
    H5PY_DTYPE[_n] = np.dtype(("<i" if _n[0] == "i" else "<u") + str(_b // 8))


def exact_values(dtype, shape, fm):
    """Python numbers (bool, int or Fraction) of the formula, flat."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    mul, add, mod = int(fm["mul"]), int(fm["add"]), int(fm["mod"])
    sub, div, big = int(fm["sub"]), int(fm["div"]), int(fm["big"])
    out = []
    for i in range(n):
        lin = i * mul + add
        k = lin % mod
        if dtype == "bool":
            out.append(lin % 3 == 0)
        elif dtype in INT_BITS:
            v = k - sub + big
            if dtype.startswith("u"):
                v %= 1 << INT_BITS[dtype]
            out.append(v)
        elif dtype.startswith("complex"):
            out.append(complex(Fraction(k - sub, div), -Fraction(k - sub, div)))
        else:
            out.append(Fraction(k - sub, div))
    return out


def expected_array(dtype, shape, fm, np_dtype):
    vals = exact_values(dtype, shape, fm)
    if dtype in INT_BITS or dtype == "bool":
        arr = np.array(vals, dtype=np_dtype)
    elif dtype.startswith("complex"):
        arr = np.array(vals, dtype=np_dtype)
    else:
        arr = np.array([float(v) for v in vals], dtype=np_dtype)
        # the values are exact in every float dtype by construction
        assert all(Fraction(float(x)) == v for x, v in zip(arr, vals))
    return arr.reshape(tuple(shape))


def float8_bits(v, esize, msize, bias):
    """The float8 code of an exact value (a Fraction that the format holds)."""
    sign = 0x80 if v < 0 else 0
    v = abs(v)
    if v == 0:
        return sign
    e = 0
    while v >= 2:
        v /= 2
        e += 1
    while v < 1:
        v *= 2
        e -= 1
    if e + bias <= 0:  # subnormal
        m = v * 2 ** (e + bias - 1) * 2 ** msize
        assert m.denominator == 1
        return sign | int(m)
    m = (v - 1) * 2 ** msize
    assert m.denominator == 1
    return sign | ((e + bias) << msize) | int(m)


def bits(arr):
    """The array's bytes in little-endian order, for a bitwise comparison."""
    a = np.ascontiguousarray(arr)
    return a.astype(a.dtype.newbyteorder("<")).tobytes()


def attr_string_info(obj, name):
    """(is string, encoding, vlen) of attribute name on obj."""
    aid = obj.attrs.get_id(name)
    info = h5py.check_string_dtype(aid.dtype)
    if info is None:
        return (False, None, None)
    return (True, info.encoding, info.length is None)


# ------------------------------------------------- part 1: files nnh5 wrote

def check_hdf5_type(where, ds, dtype):
    tid = ds.id.get_type()
    if dtype == "bool":
        ok = isinstance(tid, h5py.h5t.TypeEnumID)
        check(ok, where, f"bool is not an HDF5 enum ({type(tid).__name__})")
        if ok:
            base = tid.get_super()
            check(base.get_size() == 1 and base.get_sign() == h5py.h5t.SGN_2
                  and base.get_order() == h5py.h5t.ORDER_LE, where,
                  "bool enum base is not H5T_STD_I8LE")
            members = {tid.get_member_name(i): tid.get_member_value(i)
                       for i in range(tid.get_nmembers())}
            check(members == {b"FALSE": 0, b"TRUE": 1}, where,
                  f"bool enum members {members}")
    elif dtype in INT_BITS:
        ok = isinstance(tid, h5py.h5t.TypeIntegerID)
        check(ok, where, f"{dtype} is not an HDF5 integer")
        if ok:
            check(tid.get_size() * 8 == INT_BITS[dtype]
                  and tid.get_order() == h5py.h5t.ORDER_LE
                  and (tid.get_sign() == h5py.h5t.SGN_NONE) == dtype.startswith("u"),
                  where, f"HDF5 type of {dtype} is not H5T_STD_{dtype[0].upper()}"
                  f"{INT_BITS[dtype]}LE")
    elif dtype.startswith("complex"):
        part = 4 if dtype == "complex64" else 8
        ok = isinstance(tid, h5py.h5t.TypeCompoundID) and tid.get_nmembers() == 2
        check(ok, where, f"{dtype} is not an HDF5 compound of two members")
        if ok:
            got = [(tid.get_member_name(k), tid.get_member_offset(k),
                    tid.get_member_type(k).get_class(), tid.get_member_type(k).get_size())
                   for k in (0, 1)]
            want = [(b"r", 0, h5py.h5t.FLOAT, part), (b"i", part, h5py.h5t.FLOAT, part)]
            check(got == want and tid.get_size() == 2 * part, where,
                  f"complex compound {got}, expected h5py's {want}")
    else:
        ok = isinstance(tid, h5py.h5t.TypeFloatID)
        check(ok, where, f"{dtype} is not an HDF5 float")
        if ok:
            want = {"float16": (2, (15, 10, 5, 0, 10), 15),
                    "bfloat16": (2, (15, 7, 8, 0, 7), 127),
                    "float32": (4, (31, 23, 8, 0, 23), 127),
                    "float64": (8, (63, 52, 11, 0, 52), 1023), **FLOAT8}[dtype]
            got = (tid.get_size(), tuple(tid.get_fields()), tid.get_ebias())
            check(got == want and tid.get_order() == h5py.h5t.ORDER_LE, where,
                  f"HDF5 float layout (size, fields, bias) {got}, expected {want}, LE")


def check_dataset(f, fname, path, spec):
    where = f"{fname}:{path}"
    obj = f.get(path)
    if not check(isinstance(obj, h5py.Dataset), where, f"no dataset ({type(obj).__name__})"):
        return
    ds = obj
    dtype, shape = spec["dtype"], tuple(spec["shape"])
    check(ds.shape == shape, where, f"shape {ds.shape}, expected {shape}")
    check(ds.dtype == H5PY_DTYPE[dtype], where,
          f"h5py dtype {ds.dtype}, expected {H5PY_DTYPE[dtype]}")
    check_hdf5_type(where, ds, dtype)
    if dtype == "bfloat16" or dtype in FLOAT8:
        check(ds.attrs.get("nnh5_dtype") == dtype, where,
              f"nnh5_dtype attribute {ds.attrs.get('nnh5_dtype')!r}, expected {dtype!r}")
    else:
        check("nnh5_dtype" not in ds.attrs, where,
              "nnh5_dtype written on a plain numpy type")
    check("nnh5_kind" not in ds.attrs, where, "nnh5_kind written on a dataset")
    if ds.shape != shape:
        return
    want = expected_array(dtype, shape, spec["formula"], H5PY_DTYPE[dtype])
    got = ds[()]
    check(np.asarray(got).dtype == want.dtype and bits(got) == bits(want), where,
          f"values differ: got {np.asarray(got).ravel()[:6]}..., "
          f"expected {want.ravel()[:6]}...")
    # nnh5_xxh3: XXH3-64 of the little-endian element bytes (FORMAT.md, "Checksums")
    stored = ds.attrs.get("nnh5_xxh3")
    check(stored is not None and np.asarray(stored).dtype == np.dtype("<u8"), where,
          f"nnh5_xxh3 attribute {stored!r}, expected a uint64")
    if xxhash is not None and stored is not None:
        raw = np.empty(shape + (ds.id.get_type().get_size(),), dtype="<u1")
        if raw.size:
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=ds.id.get_type())
        check(int(stored) == xxhash.xxh3_64_intdigest(raw.tobytes()), where,
              f"nnh5_xxh3 {int(stored):016x} is not XXH3-64 of the data")
    if dtype in FLOAT8 and want.size:
        # the raw bits against an independent encoding of the exact values
        raw = np.empty(shape, dtype="<u1")
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=ds.id.get_type())
        _, (_, _, esize, _, msize), bias = FLOAT8[dtype]
        check(np.array_equal(raw.ravel(), [float8_bits(v, esize, msize, bias) for v in
                                           exact_values(dtype, shape, spec["formula"])]),
              where, f"raw {dtype} bits differ")
    if dtype == "bfloat16" and want.size:
        # the raw 16 bits (the way doc/FORMAT.md tells h5py users to read them)
        raw = np.empty(shape, dtype="<u2")
        ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=ds.id.get_type())
        want_bits = (want.astype("<f4").view("<u4") >> 16).astype("<u2")
        check(np.array_equal(raw, want_bits), where, "raw bfloat16 bits differ")
    # layout: every dataset contiguous (small ones too: FORMAT.md), no fill value
    # written, no filters; from 4 KiB on, 4 KiB-aligned
    dcpl = ds.id.get_create_plist()
    nbytes = ds.size * ds.id.get_type().get_size()
    layout = dcpl.get_layout()
    check(dcpl.get_nfilters() == 0, where, f"{dcpl.get_nfilters()} filters")
    check(layout == h5py.h5d.CONTIGUOUS, where,
          f"{nbytes} bytes: layout {layout}, expected contiguous (FORMAT.md)")
    check(dcpl.get_fill_time() == h5py.h5d.FILL_TIME_NEVER, where,
          "fill value written for a contiguous dataset")
    if nbytes >= 4096:
        off = ds.id.get_offset()
        check(off is not None and off % 4096 == 0, where,
              f"{nbytes} bytes at file offset {off}, expected a multiple of 4096")


def check_order_tracked(where, g):
    gcpl = g.id.get_create_plist()
    both = h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED
    check(gcpl.get_link_creation_order() == both, where,
          f"link creation order flags {gcpl.get_link_creation_order()}, expected tracked|indexed")
    check(gcpl.get_attr_creation_order() == both, where,
          f"attribute creation order flags {gcpl.get_attr_creation_order()}")


def check_links_and_attr_storage(where, g):
    """Link names marked UTF-8 (as h5py marks them); HDF5's default attribute storage.

    Forced dense attribute storage (phase change 0, 0) makes pure readers such as
    jsfive fail; names marked ASCII come out garbled in readers that honour the set."""
    gcpl = g.id.get_create_plist()
    max_compact, min_dense = gcpl.get_attr_phase_change()
    check(max_compact > 0, where,
          f"attribute phase change ({max_compact}, {min_dense}): attributes forced dense")
    names = []
    g.id.links.iterate(names.append)
    for n in names:
        cset = g.id.links.get_info(n).cset
        check(cset == h5py.h5t.CSET_UTF8, f"{where.rstrip('/')}/{n.decode('utf-8', 'replace')}",
              f"link name character set {cset}, expected UTF-8 ({h5py.h5t.CSET_UTF8})")


def check_keys_attr(where, g, keys):
    if not check("nnh5_keys" in g.attrs, where, "no nnh5_keys attribute"):
        return
    s, enc, vlen = attr_string_info(g, "nnh5_keys")
    check(s and enc == "utf-8" and vlen, where,
          f"nnh5_keys is not variable-length UTF-8 (string {s}, {enc}, vlen {vlen})")
    got = g.attrs["nnh5_keys"]
    check(got.ndim == 1, where, f"nnh5_keys has rank {got.ndim}")
    got = [x.decode() if isinstance(x, bytes) else str(x) for x in got.ravel()]
    check(got == keys, where, f"nnh5_keys {got}, expected {keys}")


def first_seen(seq):
    out = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out


def check_container(f, fname, path, spec):
    kind = spec["kind"]
    where = f"{fname}:{path}({kind})"
    g = f[path] if path != "/" else f["/"]
    if not check(isinstance(g, h5py.Group), where, "not a group"):
        return
    check(g.attrs.get("nnh5_kind") == kind, where,
          f"nnh5_kind {g.attrs.get('nnh5_kind')!r}, expected {kind!r}")
    if "nnh5_kind" in g.attrs:
        s, enc, vlen = attr_string_info(g, "nnh5_kind")
        check(s and enc == "utf-8" and vlen, where, "nnh5_kind is not a vlen UTF-8 string")
    check_order_tracked(where, g)
    prefix = "" if path == "/" else path + "/"
    items = spec["items"]
    if kind == "list":
        n = len(items)
        ln = g.attrs.get("nnh5_length")
        check(ln is not None and ln == n and g.attrs.get_id("nnh5_length").dtype == np.dtype("<i8"),
              where, f"nnh5_length {ln!r}, expected int64 {n}")
        names = [str(i) for i in range(n)]
        check(list(g) == names, where, f"members (creation order) {list(g)}, expected {names}")
        for i, it in enumerate(items):
            check_dataset(f, fname, f"{prefix}{i}", it)
        return
    keys = spec["keys"]
    check_keys_attr(where, g, keys)
    if kind == "dict":
        check(list(g) == keys, where, f"members (creation order) {list(g)}, expected {keys}")
        for it in items:
            check_dataset(f, fname, prefix + it["key"], it)
        return
    # state dict: key a.b.c is the dataset a/b/c, one group per module level
    for it in items:
        check_dataset(f, fname, prefix + it["key"].replace(".", "/"), it)
    want_ds = sorted(k.replace(".", "/") for k in keys)
    got_ds = []
    g.visititems(lambda n, o: got_ds.append(n) if isinstance(o, h5py.Dataset) else None)
    check(sorted(got_ds) == want_ds, where, f"datasets {sorted(got_ds)}, expected {want_ds}")
    # each module group lists its children in first-insertion order
    parts = [k.split(".") for k in keys]
    modules = first_seen(tuple(p[:d]) for p in parts for d in range(len(p)))
    for mod in modules:
        children = first_seen(p[len(mod)] for p in parts if tuple(p[:len(mod)]) == mod
                              and len(p) > len(mod))
        gp = "/".join(mod)
        sub = g[gp] if gp else g
        check(list(sub) == children, f"{where}/{gp}",
              f"members {list(sub)}, expected creation order {children}")
        if gp:
            check_order_tracked(f"{where}/{gp}", sub)


def check_user_attr(f, fname, a):
    where = f"{fname}:{a['obj']}@{a['name']}"
    obj = f[a["obj"]]
    if not check(a["name"] in obj.attrs, where, "missing"):
        return
    v = obj.attrs[a["name"]]
    aid = obj.attrs.get_id(a["name"])
    check(aid.shape == (), where, f"not scalar: shape {aid.shape}")
    if a["type"] == "string":
        s, enc, vlen = attr_string_info(obj, a["name"])
        check(s and enc == "utf-8" and vlen, where, "not a variable-length UTF-8 string")
        check(isinstance(v, str) and v == a["value"], where, f"{v!r}, expected {a['value']!r}")
    elif a["type"] == "int":
        check(aid.dtype == np.dtype("<i8"), where, f"type {aid.dtype}, expected int64 LE")
        check(isinstance(v, (int, np.integer)) and int(v) == int(a["value"]), where,
              f"{v!r}, expected {a['value']}")
    else:
        check(aid.dtype == np.dtype("<f8"), where, f"type {aid.dtype}, expected float64 LE")
        check(isinstance(v, (float, np.floating)) and
              np.float64(v).tobytes() == np.float64(a["value"]).tobytes(), where,
              f"{v!r}, expected {a['value']!r}")


def check_nnh5_corpus(d):
    with open(os.path.join(d, "manifest.json"), encoding="utf-8") as fp:
        manifest = json.load(fp)
    for e in manifest["files"]:
        fname = e["file"]
        with h5py.File(os.path.join(d, fname), "r") as f:
            where = fname
            sb = f.id.get_create_plist().get_version()[0]
            check(sb == 2, where, f"superblock version {sb}, expected 2 (libver v18)")
            check(f.attrs.get("nnh5_format_version") == 1
                  and f.attrs.get_id("nnh5_format_version").dtype == np.dtype("<i8"),
                  where, f"nnh5_format_version {f.attrs.get('nnh5_format_version')!r}")
            w = f.attrs.get("nnh5_writer")
            check(isinstance(w, str) and w.startswith("nnh5 "), where, f"nnh5_writer {w!r}")
            # every group tracks and indexes creation order
            check_order_tracked(f"{where}:/", f["/"])
            groups = []
            f.visititems(lambda n, o: groups.append(n) if isinstance(o, h5py.Group) else None)
            for gname in groups:
                check_order_tracked(f"{where}:{gname}", f[gname])
            for gname in ["/"] + groups:
                check_links_and_attr_storage(f"{where}:{gname}", f[gname])
            for o in e["objects"]:
                if o["kind"] == "tensor":
                    check_dataset(f, fname, o["path"], o)
                    if e["api"] == "save":
                        check(f.attrs.get("nnh5_kind") == "tensor", where,
                              f"root nnh5_kind {f.attrs.get('nnh5_kind')!r}, expected 'tensor'")
                else:
                    check_container(f, fname, o["path"], o)
            for a in e["attrs"]:
                check_user_attr(f, fname, a)


def run_h5dump(d):
    h5dump = sys.argv[3] if len(sys.argv) > 3 else shutil.which("h5dump")
    if not h5dump:
        print("NOTE: h5dump not found; h5dump checks skipped")
        return
    for name in sorted(os.listdir(d)):
        if not name.endswith(".h5"):
            continue
        p = subprocess.run([h5dump, os.path.join(d, name)], capture_output=True)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        check(p.returncode == 0, f"h5dump {name}", f"exit status {p.returncode}: {out[-300:]}")
        check("error" not in out.lower(), f"h5dump {name}",
              f"output mentions an error: {out[out.lower().find('error') - 100:][:300]}")


# ------------------------------------------------- part 2: files h5py wrote

NNH5_OF = {"i1": "int8", "i2": "int16", "i4": "int32", "i8": "int64",
           "u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64",
           "f2": "float16", "f4": "float32", "f8": "float64", "b1": "bool",
           "c8": "complex64", "c16": "complex128"}


class Corpus:
    """Writes files with h5py and the manifest `xcheck verify` reads."""

    def __init__(self, d):
        self.d = d
        self.files = []
        self.seed = 0

    def entry(self, name, api):
        e = {"file": name, "api": api, "objects": [], "attrs": []}
        self.files.append(e)
        return e

    def tensor(self, np_dtype, shape):
        """A tensor spec and its numpy data in np_dtype (any byte order)."""
        self.seed += 1
        nd = np.dtype(np_dtype)
        dtype = NNH5_OF[nd.kind + str(nd.itemsize)] if nd.kind != "b" else "bool"
        fm = {"mul": 3 + self.seed % 5, "add": self.seed * 7, "mod": 97,
              "sub": 0 if nd.kind in "ub" else 48, "div": 4 if nd.kind in "fc" else 1,
              "big": "0"}
        if dtype == "int64":
            fm["big"] = str(-(5 << 40))
        if dtype == "uint64":
            fm["big"] = str(1 << 63)
        spec = {"kind": "tensor", "dtype": dtype, "shape": list(shape), "formula": fm}
        return spec, expected_array(dtype, shape, fm, nd)

    def build(self, g, tree, prefix, tracked_default):
        """tree: list of (name, node); node ('ds', dtype, shape) or ('grp', tracked, tree)."""
        specs = []
        for name, node in tree:
            if node[0] == "ds":
                spec, data = self.tensor(node[1], node[2])
                g.create_dataset(name, data=data)
                specs.append((prefix + [name], spec))
            else:
                sub = g.create_group(name, track_order=node[1])
                specs.extend(self.build(sub, node[2], prefix + [name], node[1]))
        return specs

    @staticmethod
    def expected_keys(tree, tracked):
        """Depth-first keys: creation order where tracked, else name order."""
        out = []
        items = tree if tracked else sorted(tree, key=lambda t: t[0].encode())
        for name, node in items:
            if node[0] == "ds":
                out.append([name])
            else:
                out.extend([name] + k for k in Corpus.expected_keys(node[2], node[1]))
        return out

    def container_specs(self, path, tree, tracked, specs, kind_file=None):
        by_key = {tuple(p): s for p, s in specs}
        objs = []
        for kind, sep in (("dict", "/"), ("state_dict", ".")):
            keys = self.expected_keys(tree, tracked)
            o = {"path": path, "kind": kind, "keys": [sep.join(k) for k in keys],
                 "items": [dict(by_key[tuple(k)], key=sep.join(k)) for k in keys]}
            if kind_file:
                o["file_kind"] = kind_file
            objs.append(o)
        return objs


NET = [  # a nested module tree, inserted in non-alphabetical order
    ("zz", ("ds", "<i4", (3,))),
    ("body", ("grp", None, [
        ("w2", ("ds", ">f8", (2, 3))),
        ("Block", ("grp", None, [
            ("deep", ("ds", ">i4", (4,))),
            ("bias", ("ds", "bool", (5,))),
        ])),
        ("a10", ("ds", ">u8", (2,))),
        ("a9", ("ds", ">f2", (3, 2))),
    ])),
    ("alpha", ("ds", "<f2", ())),
    ("Mixed", ("grp", False, [
        ("y", ("ds", ">i2", ())),
        ("x", ("ds", "<f4", (0, 4))),
    ])),
    ("empty", ("ds", ">f4", (2, 0, 3))),
]


def with_tracking(tree, tracked):
    out = []
    for name, node in tree:
        if node[0] == "grp":
            t = tracked if node[1] is None else node[1]
            node = ("grp", t, with_tracking(node[2], tracked))
        out.append((name, node))
    return out


def write_h5py_corpus(d):
    c = Corpus(d)

    # nested groups with and without track_order, read as dict and state dict
    for tracked in (True, False):
        name = f"h5py_nested_{'tracked' if tracked else 'untracked'}.h5"
        tree = with_tracking(NET, tracked)
        e = c.entry(name, "file")
        with h5py.File(os.path.join(d, name), "w", track_order=tracked) as f:
            g = f.create_group("net", track_order=tracked)
            specs = c.build(g, tree, [], tracked)
            e["objects"].extend(c.container_specs("net", tree, tracked, specs, "group"))
            for p, s in specs:  # each dataset on its own, by path
                e["objects"].append(dict(s, path="net/" + "/".join(p), file_kind="tensor"))
        # the same tree at the root of a file, through the one-call loaders
        name = f"h5py_root_{'tracked' if tracked else 'untracked'}.h5"
        e = c.entry(name, "save")
        with h5py.File(os.path.join(d, name), "w", track_order=tracked) as f:
            specs = c.build(f, tree, [], tracked)
            e["objects"].extend(c.container_specs("/", tree, tracked, specs))

    # every big-endian and little-endian number type, bool, float16, 0-d, empty
    e = c.entry("h5py_types.h5", "file")
    with h5py.File(os.path.join(d, "h5py_types.h5"), "w") as f:
        for dt in ("<i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "<u1", "<u2", ">u2",
                   "<u4", ">u4", "<u8", ">u8", "<f2", ">f2", "<f4", ">f4", "<f8", ">f8",
                   "bool"):
            for shape in ((7,), (), (0,), (2, 3, 2)):
                spec, data = c.tensor(dt, shape)
                nm = f"{dt.replace('<', 'le_').replace('>', 'be_')}_{len(shape)}d" + \
                     ("_empty" if 0 in shape else "")
                f.create_dataset(nm, data=data)
                check(f[nm].dtype == np.dtype(dt), "h5py_types.h5", f"h5py wrote {f[nm].dtype}")
                e["objects"].append(dict(spec, path=nm, file_kind="tensor"))

    # a file with a single dataset that is not called "tensor"
    e = c.entry("h5py_single.h5", "save")
    with h5py.File(os.path.join(d, "h5py_single.h5"), "w") as f:
        spec, data = c.tensor(">f4", (3, 4))
        f.create_dataset("weights", data=data)
        e["objects"].append(dict(spec, path="/"))

    # list-like groups: members '0'..'11', stored in shuffled and in name order
    order = [5, 11, 0, 10, 1, 9, 2, 8, 3, 7, 4, 6]
    e = c.entry("h5py_lists.h5", "file")
    with h5py.File(os.path.join(d, "h5py_lists.h5"), "w") as f:
        for gname, tracked in (("shuffled", True), ("byname", False)):
            g = f.create_group(gname, track_order=tracked)
            items = [None] * 12
            for i in order:
                spec, data = c.tensor(["<f4", ">i8", "<u1", "bool"][i % 4], (i % 3 + 1,))
                g.create_dataset(str(i), data=data)
                items[i] = spec
            e["objects"].append({"path": gname, "kind": "list", "items": items,
                                 "file_kind": "group"})
    e = c.entry("h5py_list_root.h5", "save")
    with h5py.File(os.path.join(d, "h5py_list_root.h5"), "w") as f:
        items = []
        for i in range(12):
            spec, data = c.tensor(">f8", (2,))
            f.create_dataset(str(i), data=data)
            items.append(spec)
        e["objects"].append({"path": "/", "kind": "list", "items": items})

    # attributes: variable- and fixed-length strings, integers and floats of any width
    e = c.entry("h5py_attrs.h5", "file")
    with h5py.File(os.path.join(d, "h5py_attrs.h5"), "w") as f:
        g = f.create_group("grp")
        spec, data = c.tensor("<i4", (2,))
        f.create_dataset("grp/ds", data=data)
        e["objects"].append(dict(spec, path="grp/ds"))

        def attr(obj, path, name, typ, value, stored, dtype=None, error=None):
            if dtype is not None:
                obj.attrs.create(name, stored, dtype=dtype)
            else:
                obj.attrs[name] = stored
            a = {"obj": path, "name": name, "type": typ}
            if value is not None:
                a["value"] = value
            if error:
                a["error"] = error
            e["attrs"].append(a)

        attr(f, "/", "vlen_str", "string", "héllo wörld ✓", "héllo wörld ✓")
        attr(f, "/", "vlen_ascii", "string", "plain", "plain",
             dtype=h5py.string_dtype("ascii"))
        attr(f, "/", "fixed_ascii", "string", "fixed-len", np.bytes_(b"fixed-len"))
        attr(f, "/", "fixed_padded", "string", "ab", b"ab",
             dtype=h5py.string_dtype("ascii", 8))
        attr(f, "/", "fixed_utf8", "string", "αβγ", "αβγ".encode(),
             dtype=h5py.string_dtype("utf-8", 6))
        attr(f, "/", "i8", "int", "-100", np.int8(-100))
        attr(f, "/", "u8", "int", "200", np.uint8(200))
        attr(f, "/", "i32be", "int", "-123456", np.array(-123456, dtype=">i4"))
        attr(f, "/", "i64", "int", str(-(1 << 62)), np.int64(-(1 << 62)))
        attr(f, "/", "u64_fits", "int", str((1 << 63) - 1), np.uint64((1 << 63) - 1))
        attr(f, "/", "f64", "float", 0.1, np.float64(0.1))
        attr(f, "/", "f32", "float", 0.375, np.float32(0.375))
        attr(f, "/", "f64be", "float", -2.25, np.array(-2.25, dtype=">f8"))
        attr(g, "grp", "note", "string", "on a group ✓", "on a group ✓")
        attr(f["grp/ds"], "grp/ds", "unit", "string", "m/s²", "m/s²")
        attr(f["grp/ds"], "grp/ds", "scale", "float", 1.5, 1.5)
        # refused ones: wrong type, several values, too large, absent
        attr(f, "/", "str_as_int", "int", None, "seven",
             error={"status": "NNH5_ERR_TYPE", "message_contains": ["str_as_int"]})
        attr(f, "/", "int_as_str", "string", None, np.int64(7),
             error={"status": "NNH5_ERR_TYPE", "message_contains": ["int_as_str"]})
        attr(f, "/", "array_int", "int", None, np.arange(3, dtype="<i8"),
             error={"status": "NNH5_ERR_TYPE", "message_contains": ["array_int"]})
        attr(f, "/", "u64_big", "int", None, np.uint64(1 << 63),
             error={"status": "NNH5_ERR_OVERFLOW", "message_contains": ["u64_big"]})
        e["attrs"].append({"obj": "/", "name": "absent", "type": "int",
                           "error": {"status": "NNH5_ERR_NOT_FOUND",
                                     "message_contains": ["absent"]}})

    # unsupported datasets: refused with NNH5_ERR_TYPE naming the dataset and type
    e = c.entry("h5py_unsupported.h5", "file")
    with h5py.File(os.path.join(d, "h5py_unsupported.h5"), "w") as f:
        def refused(path, kind, words):
            e["objects"].append({"path": path, "kind": kind,
                                 "error": {"status": "NNH5_ERR_TYPE",
                                           "message_contains": words}})
        f.create_dataset("vlen_strings", data=["a", "bc", "déf"],
                         dtype=h5py.string_dtype("utf-8"))
        refused("vlen_strings", "tensor", ["vlen_strings", "string"])
        f.create_dataset("fixed_strings", data=np.array([b"ab", b"cd"], dtype="S2"))
        refused("fixed_strings", "tensor", ["fixed_strings", "string"])
        f.create_dataset("compound", data=np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]))
        refused("compound", "tensor", ["compound"])
        f.create_dataset("enum3", data=np.zeros(4, dtype="u1"),
                         dtype=h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 2}, basetype="u1"))
        refused("enum3", "tensor", ["enum3", "enum"])
        f.create_dataset("vlen_ints", shape=(2,), dtype=h5py.vlen_dtype(np.dtype("i4")))
        refused("vlen_ints", "tensor", ["vlen_ints"])
        # a compound other than h5py's complex {r, i}
        f.create_dataset("pairs", data=np.zeros(2, dtype=[("x", "<f4"), ("y", "<f4")]))
        refused("pairs", "tensor", ["pairs", "compound"])
        g = f.create_group("mixed", track_order=True)
        spec, data = c.tensor("<f4", (2,))
        g.create_dataset("good", data=data)
        # h5py's own complex loads as complex64 / complex128
        for cname, cdt in (("c64", "<c8"), ("c128", ">c16")):
            cspec, cdata = c.tensor(cdt, (3, 2))
            f.create_dataset(cname, data=cdata)
            e["objects"].append(dict(cspec, path=cname))
        g.create_dataset("bad_text", data=["x"], dtype=h5py.string_dtype())
        refused("mixed", "dict", ["bad_text", "string"])
        refused("mixed", "state_dict", ["bad_text", "string"])
        e["objects"].append(dict(spec, path="mixed/good"))

    with open(os.path.join(d, "manifest.json"), "w", encoding="utf-8") as fp:
        json.dump({"writer": "h5py " + h5py.version.version, "files": c.files}, fp,
                  ensure_ascii=False, indent=1)


def main():
    nnh5_dir = os.path.join(SCRATCH, "nnh5")
    h5py_dir = os.path.join(SCRATCH, "h5py")
    for d in (nnh5_dir, h5py_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    print(f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}, numpy {np.__version__}")

    p = subprocess.run([XCHECK, "write", nnh5_dir])
    if check(p.returncode == 0, "xcheck write", f"exit status {p.returncode}"):
        before = N_CHECKS
        check_nnh5_corpus(nnh5_dir)
        print(f"nnh5 -> h5py: {N_CHECKS - before} checks")
        before = N_CHECKS
        run_h5dump(nnh5_dir)
        print(f"nnh5 -> h5dump: {N_CHECKS - before} checks")

    write_h5py_corpus(h5py_dir)
    p = subprocess.run([XCHECK, "verify", h5py_dir], capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    for line in p.stdout.splitlines():
        if line.startswith("FAIL "):
            FAILURES.append("xcheck verify: " + line[5:])
    check(p.returncode == 0, "xcheck verify", f"exit status {p.returncode}")

    print(f"summary: {N_CHECKS} checks here (plus xcheck verify's), {len(FAILURES)} failed")
    return 0 if not FAILURES else 1


if __name__ == "__main__":
    sys.exit(main())
