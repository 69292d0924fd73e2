"""tools/nnh5.py over libnnh5 (ctypes) and over h5py alone (doc/PYTHON.md, "The C library").

Run by meson in both modes (python-clib: NNH5_LIBRARY is this build's libnnh5;
python-clib-pure: NNH5_PYTHON_PURE=1). Checks: which backend the module took and
that saves and loads went through it; the library rule (NNH5_LIBRARY, the
soname, NNH5_PYTHON_PURE, a missing or mismatched library falls back to h5py);
that both backends write the same h5py-visible files and return the same values;
that C failures come out as the same nnh5.Error classes naming file and object;
that a load hands the C library's memory to numpy without a copy (peak memory).
"""
import collections
import json
import os
import shutil
import subprocess
import sys

import pycommon as pc
from pycommon import check, expect_error, h5py, nnh5, np, path

torch = pc.need_torch()
LIB = os.environ.get("NNH5_TEST_LIB")
FAKE = os.environ.get("NNH5_TEST_FAKE_LIB")


def child(code, env):
    """Run code in a new Python with the environment changed by env (None: removed)."""
    e = dict(os.environ)
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    p = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1])\n"
                        + code, pc.TOOLS, path("")], capture_output=True, text=True, env=e)
    return p.returncode, p.stdout, p.stderr


PROBE = """
import json, warnings, numpy as np
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import nnh5
    b = nnh5.backend()
nnh5.save_state_dict({"a.w": np.arange(4.0)}, sys.argv[2] + "probe.h5")
back = nnh5.load_state_dict(sys.argv[2] + "probe.h5", numpy=True)
print(json.dumps({"backend": b, "calls": nnh5.calls, "warned": [str(x.message) for x in w],
                  "ok": back["a.w"].tolist() == [0.0, 1.0, 2.0, 3.0]}))
"""


def library_rule():
    """NNH5_LIBRARY, then the soname; NNH5_PYTHON_PURE; a missing or mismatched library."""
    cases = [
        ("NNH5_LIBRARY names this build's library", {"NNH5_LIBRARY": LIB,
                                                     "NNH5_PYTHON_PURE": None},
         "libnnh5", LIB),
        # meson's LD_LIBRARY_PATH holds the build's lib/: the soname is found there
        ("the soname through the dynamic loader", {"NNH5_LIBRARY": None,
                                                   "NNH5_PYTHON_PURE": None},
         "libnnh5", "libnnh5.so.0"),
        ("NNH5_PYTHON_PURE=1 wins over NNH5_LIBRARY", {"NNH5_LIBRARY": LIB,
                                                       "NNH5_PYTHON_PURE": "1"},
         "h5py", "NNH5_PYTHON_PURE"),
        ("a missing library falls back", {"NNH5_LIBRARY": path("nope/libnnh5.so.0"),
                                          "NNH5_PYTHON_PURE": None}, "h5py", "nope"),
        ("another version falls back", {"NNH5_LIBRARY": FAKE, "NNH5_PYTHON_PURE": None},
         "h5py", "libnnh5 9.0.0 is not 0.1.x"),
        ("a library without nnh5's functions falls back",
         {"NNH5_LIBRARY": "libm.so.6", "NNH5_PYTHON_PURE": None}, "h5py", "libm.so.6"),
        ("the soname missing from the loader's path falls back",
         {"NNH5_LIBRARY": None, "NNH5_PYTHON_PURE": None, "LD_LIBRARY_PATH": path("none")},
         None, None),
    ]
    for what, env, want, words in cases:
        if not LIB and (want != "h5py" or env.get("NNH5_LIBRARY") in (LIB, FAKE)):
            continue  # a sanitizer build: its libraries cannot be loaded into Python
        rc, out, err = child(PROBE, env)
        if not check(rc == 0, f"{what}: runs", err.strip()[-400:]):
            continue
        r = json.loads(out)
        if want is None:  # an installed libnnh5 may be found elsewhere: either is right
            want = r["backend"][0]
            words = "" if want == "h5py" else "libnnh5.so.0"
        check(r["backend"][0] == want and words in r["backend"][1], f"{what}: {want}",
              str(r["backend"]))
        check(r["ok"] and r["calls"][want] == 2 and sum(r["calls"].values()) == 2,
              f"{what}: the save and the load went through {want}", str(r["calls"]))
        explicit_bad = want == "h5py" and env.get("NNH5_LIBRARY") and not env.get(
            "NNH5_PYTHON_PURE")
        check(bool(r["warned"]) == bool(explicit_bad),
              f"{what}: " + ("warns that NNH5_LIBRARY is not used" if explicit_bad
                             else "no warning"), str(r["warned"]))


def calls_counted():
    """Every save and load of tensors, lists, dicts and state dicts takes this mode's path."""
    mode = "libnnh5" if pc.C_MODE else "h5py"
    before = dict(nnh5.calls)
    sd = collections.OrderedDict([("a.w", torch.randn(3, 4)), ("b", torch.ones(2))])
    nnh5.save_state_dict(sd, path("calls_sd.h5"))
    nnh5.load_state_dict(path("calls_sd.h5"))
    nnh5.save([torch.ones(2), np.zeros(3)], path("calls_list.h5"))
    nnh5.load(path("calls_list.h5"))
    nnh5.save({"x": torch.ones(2)}, path("calls_dict.h5"))
    nnh5.load(path("calls_dict.h5"))
    nnh5.save(torch.ones(2), path("calls_tensor.h5"))
    nnh5.load(path("calls_tensor.h5"))
    nnh5.load(path("calls_sd.h5"))
    got = {k: nnh5.calls[k] - before[k] for k in before}
    check(got == {"libnnh5": 9, "h5py": 0} if pc.C_MODE else got == {"libnnh5": 0, "h5py": 9},
          f"9 saves and loads through {mode}", str(got))
    # what the C library does not do as the h5py code does goes to h5py, in either mode
    before = dict(nnh5.calls)
    nnh5.save(torch.ones(2), path("calls_tensor_attrs.h5"), attrs={"epoch": 3})
    nnh5.save(torch.ones(2), path("calls_tensor_fast.h5"), compression="fast")
    got = {k: nnh5.calls[k] - before[k] for k in before}
    check(got == {"libnnh5": 0, "h5py": 2}, "one tensor with attrs, compressed: h5py",
          str(got))
    # durable=False: the C library's saves with options (nnh5_save_*_ext), a tensor too
    before = dict(nnh5.calls)
    nnh5.save(torch.ones(2), path("calls_tensor_nd.h5"), durable=False)
    nnh5.save_state_dict({"a.w": torch.ones(3)}, path("calls_sd_nd.h5"), durable=False)
    nnh5.save([torch.ones(3)], path("calls_list_nd.h5"), durable=False)
    got = {k: nnh5.calls[k] - before[k] for k in before}
    check(got == ({"libnnh5": 3, "h5py": 0} if pc.C_MODE else {"libnnh5": 0, "h5py": 3}),
          f"durable=False saves through {mode}", str(got))
    check(torch.equal(nnh5.load(path("calls_tensor_nd.h5")), torch.ones(2))
          and nnh5.load(path("calls_list_nd.h5"))[0].tolist() == [1.0] * 3,
          "durable=False saves load back")
    # two values on one memory, dtype and shape but other strides: the C library would tie
    # them, the module does not (doc/PYTHON.md, "Tied weights"): h5py writes the file
    a = np.arange(5.0).reshape(1, 5)
    b = np.lib.stride_tricks.as_strided(a, (1, 5), (8, 8))
    before = dict(nnh5.calls)
    nnh5.save({"a": a, "b": b}, path("calls_strides.h5"))
    got = {k: nnh5.calls[k] - before[k] for k in before}
    check(got == {"libnnh5": 0, "h5py": 1}, "same memory, other strides: h5py", str(got))
    check(hard_links(path("calls_strides.h5")) == [], "... and two datasets, not tied",
          str(hard_links(path("calls_strides.h5"))))
    # a tensor file from another writer: its only dataset (the h5py code's rule)
    with h5py.File(path("calls_one.h5"), "w") as h:
        h["x"] = np.arange(3.0)
        h.attrs["nnh5_kind"] = "tensor"
    before = dict(nnh5.calls)
    t = nnh5.load(path("calls_one.h5"), numpy=True)
    got = {k: nnh5.calls[k] - before[k] for k in before}
    check(got == {"libnnh5": 0, "h5py": 1} and t.tolist() == [0.0, 1.0, 2.0],
          "a tensor file without /tensor: its one dataset, through h5py", f"{got} {t}")


def walk(f):
    """Everything h5py shows of an open file, in creation order, but the writer's name."""
    out = []

    def attrs(obj):
        return [(k, repr(obj.attrs[k])) for k in obj.attrs if k != "nnh5_writer"]

    def visit(g, name):
        out.append(("group", name, attrs(g)))
        for k in g:
            link = g.get(k, getlink=True)
            if isinstance(link, h5py.HardLink):
                obj = g[k]
                if isinstance(obj, h5py.Group):
                    visit(obj, name + "/" + k)
                else:
                    raw = obj[()] if obj.size else None
                    out.append(("dataset", name + "/" + k, str(obj.dtype), obj.dtype.str,
                                obj.shape, raw.tobytes() if raw is not None else b"",
                                attrs(obj), obj.chunks, obj.compression,
                                obj.compression_opts, obj.shuffle,
                                sorted(obj._filters.items()) if obj._filters else None))
            else:
                out.append(("link", name + "/" + k, type(link).__name__))
    visit(f, "")
    return out


def hard_links(file):
    """Groups of names that are one dataset."""
    by_addr = collections.defaultdict(list)
    with h5py.File(file) as f:

        def visit(g, name):
            for k in g:
                o = g[k]
                if isinstance(o, h5py.Group):
                    visit(o, name + "/" + k)
                else:
                    by_addr[h5py.h5o.get_info(o.id).addr].append(name + "/" + k)
        visit(f, "")
    return sorted(v for v in by_addr.values() if len(v) > 1)


def same_files():
    """The C library and the h5py code write what h5py shows alike, and both load it back
    the same: every dtype and shape, non-contiguous and tied values, lists, dicts, tensors."""
    sd = pc.torch_corpus(seed=5)
    sd["tied.first"] = sd["float32.t4"]  # a second name: a hard link
    nd = collections.OrderedDict()
    rng = np.random.default_rng(3)
    for name in ("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "complex64",
                 "complex128", "bool"):
        nd[f"{name}.x"] = pc.random_bits(rng, name, (3, 5))
    nd["big.endian"] = np.arange(6, dtype=">i4").reshape(2, 3)
    nd["strided.x"] = np.arange(40.0).reshape(5, 8)[::2, 1::3]
    objs = {"sd": ("state_dict", sd), "np_sd": ("state_dict", nd),
            "list": ("save", [sd["bfloat16.t4"], sd["bool.t3"], sd["bfloat16.t4"]]),
            "dict": ("save", {"x": nd["complex64.x"], "y.z": sd["int8.t5"]}),
            "tensor": ("save", sd["float16.t6"]), "np_tensor": ("save", nd["uint64.x"])}
    # attributes: through a C file handle; durable=False and compression: the C saves
    # with options (uncompressed: the direct writer)
    opts = {"sd": {"attrs": {"epoch": 7, "lr": 0.5, "note": "é"}},
            "list": {"durable": False, "compression": "fast"},
            "dict": {"compression": "archive", "attrs": {"n": np.int64(-2)}},
            "np_sd": {"compression": "fast", "durable": False},
            "tensor": {"durable": False}}
    for name, kw in opts.items():
        objs[name + "_opts"] = objs[name] + (kw,)
    objs["np_sd_nondurable"] = objs["np_sd"] + ({"durable": False},)
    for name, (how, obj, *kw) in objs.items():
        kw = kw[0] if kw else {}
        files = {}
        for mode in ("h5py", "c"):
            files[mode] = path(f"same_{name}_{mode}.h5")
            fn = nnh5.save_state_dict if how == "state_dict" else nnh5.save
            before = dict(nnh5.calls)
            if mode == "h5py":
                with pc.pure():
                    fn(obj, files[mode], **kw)
            else:
                fn(obj, files[mode], **kw)
                check(nnh5.calls["libnnh5"] - before["libnnh5"] == int(pc.C_MODE),
                      f"{name}: saved through the mode's path", str(nnh5.calls))
        with h5py.File(files["h5py"]) as a, h5py.File(files["c"]) as b:
            wa, wb = walk(a), walk(b)
        diff = next((f"{x} != {y}" for x, y in zip(wa, wb) if x != y), f"{len(wa)} vs {len(wb)}")
        check(wa == wb, f"{name}: the same objects, order, dtypes, data and attributes",
              diff[:600])
        check(hard_links(files["h5py"]) == hard_links(files["c"]), f"{name}: the same ties",
              f"{hard_links(files['h5py'])} != {hard_links(files['c'])}")
        for numpy in (True,) if name.startswith("np_") else (False, True):
            loader = nnh5.load_state_dict if how == "state_dict" else nnh5.load
            with pc.pure():
                want = loader(files["c"], numpy=numpy)
            got = loader(files["h5py"], numpy=numpy)
            check(type(got) is type(want), f"{name} numpy={numpy}: the same container",
                  f"{type(got)} != {type(want)}")
            if not isinstance(want, (dict, list)):
                want, got = {"t": want}, {"t": got}
            if isinstance(want, list):
                want = {str(i): v for i, v in enumerate(want)}
                got = {str(i): v for i, v in enumerate(got)}
            check([type(v) for v in got.values()] == [type(v) for v in want.values()],
                  f"{name} numpy={numpy}: the same value types")
            check(all(getattr(g, "dtype", None) == getattr(w, "dtype", None)
                      for g, w in zip(got.values(), want.values())),
                  f"{name} numpy={numpy}: the same dtypes (float8 marks included)",
                  str([(getattr(g, "dtype", None), getattr(w, "dtype", None))
                       for g, w in zip(got.values(), want.values())][:4]))
            pc.same_tensors(want, got, f"{name} numpy={numpy}")
    # lazily conjugated and negated views: saved as their values, not their memory
    z = torch.randn(4, dtype=torch.complex64)
    lazy = {"conj": z.conj(), "neg": z.conj().imag}
    for mode in ("h5py", "c"):
        f = path(f"lazy_{mode}.h5")
        if mode == "h5py":
            with pc.pure():
                nnh5.save(lazy, f)
        else:
            nnh5.save(lazy, f)
        back = nnh5.load(f)
        check(torch.equal(back["conj"], z.conj().resolve_conj())
              and torch.equal(back["neg"], z.conj().imag.resolve_neg()),
              f"{mode}: conjugated and negated views saved as their values")
    back = nnh5.load_state_dict(path("same_sd_c.h5"))
    check(back["tied.first"].data_ptr() == back["float32.t4"].data_ptr(),
          "tied names load on one memory")
    back = nnh5.load(path("same_list_c.h5"), numpy=True)
    check(np.shares_memory(back[0], back[2]), "a list holding one tensor twice loads tied")


def errors():
    """C statuses as the module's classes; messages name the file, the object, the problem."""
    sd = {"a.w": np.arange(1000, dtype="<f4"), "a.b": np.ones(4, "<f8")}
    f = path("err.h5")
    nnh5.save_state_dict(sd, f)
    with h5py.File(f, "r+") as h:  # damage the data, keep the stored checksum
        d = h["a/w"]
        d[3] = 42.0
    for loader in (nnh5.load_state_dict, nnh5.load):
        e = expect_error(lambda: loader(f, numpy=True), nnh5.ChecksumError,
                         [f, "/a/w"], f"{loader.__name__}: damaged data: ChecksumError")
        check(e is None or "damaged" in e or "checksum" in e,
              f"{loader.__name__}: the message says the data is damaged", str(e))
    check(len(nnh5.load_state_dict(f, numpy=True, verify_checksums=False)) == 2,
          "verify_checksums=False loads it")
    g = path("nosum.h5")
    with h5py.File(g, "w") as h:
        h["x"] = np.ones(3)
    expect_error(lambda: nnh5.load(g, require_checksums=True), nnh5.ChecksumError, [g, "x"],
                 "require_checksums: a dataset without a checksum")
    e = expect_error(lambda: nnh5.load_state_dict(path("missing.h5")), nnh5.NotFoundError,
                     ["missing.h5"], "a missing file: NotFoundError")
    try:
        nnh5.load(path("missing.h5"))
    except FileNotFoundError as x:
        check(x.errno == 2 and x.status == "NNH5_ERR_NOT_FOUND", "errno ENOENT, status name",
              f"{x.errno} {x.status}")
    h = path("nothdf5.h5")
    with open(h, "wb") as fp:
        fp.write(b"not an HDF5 file" * 100)
    expect_error(lambda: nnh5.load(h), nnh5.FormatError, ["nothdf5.h5", "not an HDF5 file"],
                 "not HDF5: FormatError")
    expect_error(lambda: nnh5.load_state_dict(path("")), nnh5.InvalidError, ["a folder"],
                 "a folder: InvalidError")
    expect_error(lambda: nnh5.load_state_dict(f, numpy=True, max_tensor_bytes=100),
                 nnh5.LimitError, [f, "/a/w", "4000 bytes", "max_tensor_bytes"],
                 "max_tensor_bytes: LimitError")
    expect_error(lambda: nnh5.load_state_dict(f, numpy=True, max_tensors=1,
                                              verify_checksums=False),
                 nnh5.LimitError, [f, "max_tensors"], "max_tensors: LimitError")
    expect_error(lambda: nnh5.load(f, numpy=True, options=nnh5.LoadOptions(max_load_bytes=4010),
                                   verify_checksums=False),
                 nnh5.LimitError, [f, "max_load_bytes"], "max_load_bytes: LimitError")
    x = path("ext.h5")
    with h5py.File(x, "w") as hf:
        hf["w"] = np.ones(2)
        hf["evil"] = h5py.ExternalLink(f, "/a/w")
    expect_error(lambda: nnh5.load(x, numpy=True), nnh5.UnsafeError,
                 [x, "'/evil' is an external link"], "an external link: UnsafeError")
    t = path("u16.h5")
    nnh5.save({"u": np.arange(3, dtype=np.uint16)}, t)
    expect_error(lambda: nnh5.load(t), nnh5.UnsupportedError, ["'/u' is uint16", "numpy=True"],
                 "uint16 into torch 1.13: UnsupportedError naming the dataset")
    expect_error(lambda: nnh5.load_state_dict(f, group="nope"), nnh5.FormatError,
                 ["'/nope' not found"], "a missing group: FormatError")


def peak_memory():
    """A load keeps the C library's buffers (no copy): peak memory near the tensor bytes."""
    f = path("peak.h5")
    n = 16
    nnh5.save_state_dict({f"l{i}.w": torch.full((1 << 20,), float(i)) for i in range(n)}, f)
    rc, out, err = child(f"""
import nnh5, gc, torch  # torch before the measure: its import is not the load
def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")
before = kib("VmRSS:")
sd = nnh5.load_state_dict({f!r})
peak = kib("VmHWM:") - before
ok = all(float(v[0]) == i and float(v[-1]) == i for i, v in enumerate(sd.values()))
del sd
gc.collect()
print(peak * 1024, kib("VmRSS:") - before, ok)
""", {"MALLOC_PERTURB_": None})  # perturbing glibc's malloc pages in memory C never touches
    if not check(rc == 0, "peak memory: runs", err.strip()[-300:]):
        return
    peak, after, ok = out.split()
    tensor_bytes = n * 4 << 20
    print(f"load of {tensor_bytes >> 20} MiB in {n} tensors: peak +{int(peak) >> 20} MiB "
          f"({int(peak) / tensor_bytes:.2f}x) with {nnh5.backend()[0]}")
    check(ok == "True", "peak memory: the values")
    check(int(peak) <= 1.10 * tensor_bytes, "a load's peak is at most 1.10x the tensor bytes",
          f"{int(peak)} bytes for {tensor_bytes}")
    check(int(after) * 1024 < tensor_bytes // 4, "the memory is freed with the tensors",
          f"{after} KiB still resident")


def fsyncs():
    """The C library's save is durable as the h5py code's is: fsync of the temporary file,
    rename, fsync of the folder (strace)."""
    strace = shutil.which("strace")
    if not pc.C_MODE or not strace:
        return
    d = path("durable")
    os.makedirs(d)
    for durable in (True, False):
        events = traced_save(strace, d, durable)
        if events is None:
            return
        if durable:
            kinds = [e[0] for e in events]
            check("rename" in kinds and "fsync" in kinds[:kinds.index("rename")]
                  and "fsync" in kinds[kinds.index("rename"):],
                  "fsync of the file before the rename, of the folder after", str(events))
            check(any(e[0] == "fsync" and nnh5.TMP_MARK in e[1] for e in events),
                  "the temporary file is fsynced", str(events))
        else:
            check(("rename",) in events and not [e for e in events if e[0] == "fsync"],
                  "durable=False: renamed, no fsync", str(events))


def traced_save(strace, d, durable):
    """The fsyncs and renames of one save of the module under strace, or None."""
    log = path("strace.log")
    p = subprocess.run([strace, "-f", "-qq", "-e", "trace=fsync,fdatasync,rename,renameat,"
                        "renameat2,openat", "-o", log, sys.executable, "-c",
                        f"import sys; sys.path.insert(0, {pc.TOOLS!r}); import nnh5, numpy as np;"
                        f"nnh5.save_state_dict({{'a.w': np.ones(3)}}, "
                        f"{os.path.join(d, 'x.h5')!r}, durable={durable})"],
                       capture_output=True, text=True)
    if not check(p.returncode == 0, "under strace: runs", p.stderr[-300:]):
        return None
    fds, events = {}, []
    for ln in open(log).read().splitlines():
        parts = ln.split(None, 1)
        if len(parts) < 2:
            continue
        call = parts[1]
        if call.startswith("openat(") and d in call and "= " in call:
            fd = call.rsplit("= ", 1)[1].split()[0]
            fds[fd] = call.split('"')[1]
        elif call.startswith(("fsync(", "fdatasync(")):
            fd = call.split("(")[1].split(")")[0]
            events.append(("fsync", os.path.basename(fds.get(fd, "?")) or "?"))
        elif call.startswith("rename") and d in call:
            events.append(("rename",))
    return events


class _CountFrees:
    """with _CountFrees() as c: every share of a C tensor the module frees, in c.freed, and
    the address of every C buffer handed to numpy, in c.addrs (over libnnh5; nothing is
    counted over h5py)."""

    def __enter__(self):
        self.freed, addrs = [], []
        self.addrs = addrs
        self.real = nnh5._CBuffer.free
        self.cls = nnh5._CBuffer

        class Recorded(nnh5._CBuffer):
            __slots__ = ()

            def __init__(self, t, shape, typestr, addr):
                addrs.append(addr)
                super().__init__(t, shape, typestr, addr)
        nnh5._CBuffer = Recorded
        self.page = nnh5._EXPORT_PAGE
        nnh5._EXPORT_PAGE = 3  # many pages of records per load
        if self.real is not None:
            def free(t, real=self.real, freed=self.freed):
                freed.append(t)
                real(t)
            nnh5._CBuffer.free = staticmethod(free)
        return self

    def __exit__(self, *exc):
        nnh5._EXPORT_PAGE = self.page
        nnh5._CBuffer = self.cls
        nnh5._CBuffer.free = self.real


def _buffer_of(v):
    """The _CBuffer at the end of numpy array v's base chain; None if there is none."""
    b = v
    while isinstance(b, np.ndarray):
        b = b.base
    return b if isinstance(b, nnh5._CBuffer) else None


def ownership():
    """A load hands each C buffer to numpy and torch without a copy, and frees every share
    exactly once: when the last array or tensor over it goes, when the dict goes but one
    tensor stays, and when a load fails half-way through its values."""
    import gc
    rng = np.random.default_rng(11)
    sd = collections.OrderedDict()
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                 "float32", "float64"):
        for i, shape in enumerate([(), (0,), (3, 0), (7,), (4, 5)]):
            sd[f"{name}.s{i}"] = pc.torch_of(name, pc.random_bits(rng, name, shape))
    sd["big.w"] = torch.randn(1 << 20)  # 4 MiB: its own (huge-page) allocation
    sd["tied.w"] = sd["float32.s4"]
    f = path("own.h5")
    nnh5.save_state_dict(sd, f)
    with pc.pure():
        want_torch = nnh5.load_state_dict(f)
        want_numpy = nnh5.load_state_dict(f, numpy=True)
    nonempty = [k for k, v in sd.items() if v.numel()]
    bufs = view = None
    with _CountFrees() as c:
        got = nnh5.load_state_dict(f)
        pc.same_tensors(want_torch, got, "ownership: torch values as over h5py")
        check(all(got[k].dtype == want_torch[k].dtype for k in sd), "ownership: torch dtypes")
        got_np = nnh5.load_state_dict(f, numpy=True)
        pc.same_tensors(want_numpy, got_np, "ownership: numpy values as over h5py")
        check(all(got_np[k].dtype == want_numpy[k].dtype for k in sd),
              "ownership: numpy dtypes (bfloat16 widened, bool as bool)",
              str([(k, got_np[k].dtype, want_numpy[k].dtype) for k in sd
                   if got_np[k].dtype != want_numpy[k].dtype][:3]))
        check(got["tied.w"].data_ptr() == got["float32.s4"].data_ptr()
              and np.shares_memory(got_np["tied.w"], got_np["float32.s4"]),
              "ownership: tied names load on one memory")
        if pc.C_MODE:
            plain = [k for k in nonempty if not k.startswith("bfloat16")]
            bufs = {k: _buffer_of(got_np[k]) for k in plain}
            check(all(b is not None for b in bufs.values()),
                  "ownership: every numpy array's base is the C buffer (no copy)",
                  str([k for k, b in bufs.items() if b is None][:4]))
            check(all(not got_np[k].flags.owndata for k in plain),
                  "ownership: no numpy array owns a copy of its data")
            view = got_np["big.w"][1:]
            check(np.shares_memory(view, got_np["big.w"])
                  and got_np["big.w"].ctypes.data == nnh5._clib().tensor_data(bufs["big.w"].t),
                  "ownership: the array is the C memory itself")
            # torch: from_numpy over the C buffers (bfloat16 and bool too), one per dataset
            torch_ptrs = {got[k].data_ptr() for k in nonempty}
            check(torch_ptrs == set(c.addrs[:len(nonempty) - 1]),
                  "ownership: every torch tensor is over the C library's memory (no copy)",
                  f"{len(torch_ptrs & set(c.addrs))} of {len(torch_ptrs)}")
            held = len(nonempty) - 1  # the tied key's share goes at once, as empty ones do
            # (numpy widens bfloat16 into new memory: those shares go at once too)
            widened = sum(1 for k in nonempty if k.startswith("bfloat16"))
            check(len(c.freed) == 2 * (len(sd) - held) + widened,
                  "ownership: while the values live, only the shares no array holds are freed",
                  f"{len(c.freed)} freed, {2 * (len(sd) - held) + widened} expected")
        # drop everything but one tensor (and a view of it): the rest is freed, it stays
        keep, keep_np = got["big.w"], got_np["big.w"][5:]
        expect = sd["big.w"].clone()
        del got, got_np, bufs, view
        gc.collect()
        shares = len(sd)  # one share per key and load
        if pc.C_MODE:
            check(len(c.freed) == 2 * shares - 2, "ownership: all but the two kept shares freed",
                  f"{len(c.freed)} of {2 * shares}")
        # memory the freed tensors had is reused by a new load; the kept one is untouched
        again = nnh5.load_state_dict(f)
        check(torch.equal(keep, expect) and np.array_equal(keep_np, expect.numpy()[5:]),
              "ownership: a kept tensor keeps its values after the dict and others go")
        del keep, keep_np, again
        gc.collect()
        if pc.C_MODE:
            check(len(c.freed) == 3 * shares,
                  "ownership: every share of three loads freed once when the last value goes",
                  f"{len(c.freed)} frees of {3 * shares}")
        # a load that fails half-way (torch has no uint32 in 1.13): every share is freed
        bad = collections.OrderedDict([("a", np.arange(4.0)), ("b", np.arange(3, dtype="<u4")),
                                       ("c", np.arange(6.0)), ("d", np.zeros(0))])
        nnh5.save_state_dict(bad, path("own_bad.h5"))
        before = len(c.freed)
        if not hasattr(torch, "uint32"):
            expect_error(lambda: nnh5.load_state_dict(path("own_bad.h5")),
                         nnh5.UnsupportedError, ["'/b'", "numpy=True"],
                         "ownership: uint32 into torch")
            gc.collect()
            if pc.C_MODE:  # pages of 3: 'd' was never exported
                check(len(c.freed) - before == 3, "ownership: a failed load frees every share",
                      f"{len(c.freed) - before} of 3")


def tracked_objects():
    """A load leaves as few objects for Python's cyclic garbage collector as torch.load
    does: per tensor, the torch tensor and the owner of its C memory (one for numpy); a
    save holds none per value while the C library writes. Each tracked object counts
    toward the collections that walk all of a program's objects (doc/SPEED.md, "Python
    saves and loads and the garbage collector")."""
    import gc
    n = 3000
    sd = collections.OrderedDict((f"layers.{i // 10}.p{i % 10}", torch.full((16 + i % 5,), i,
                                  dtype=torch.float32)) for i in range(n))
    f = path("tracked.h5")
    nnh5.save_state_dict(sd, f)
    if not pc.C_MODE:
        return
    for numpy, per in ((False, 2), (True, 1)):
        gc.collect()
        was = gc.isenabled()
        gc.disable()
        try:
            before = len(gc.get_objects())
            got = nnh5.load_state_dict(f, numpy=numpy)
            added = len(gc.get_objects()) - before
        finally:
            if was:
                gc.enable()
        check(added <= per * n + 100, f"tracked objects: a load of {n} tensors "
              f"({'numpy' if numpy else 'torch'}) leaves at most {per} per tensor",
              f"{added} added")
        check(all(int(got[k][0]) == i for i, k in enumerate(sd)),
              "tracked objects: the values load")
        del got
    # a save holds no tracked object per value while the C library writes: ties are
    # looked for by address (ints), tie keys made only for an address met twice
    lib = nnh5._clib()
    real = lib.save_state_dict
    seen = []

    def counting(cpath, box):
        seen.append(len(gc.get_objects()))
        return real(cpath, box)
    sd["tied.again"] = sd["layers.0.p0"]  # one address met twice: its keys are made
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        lib.save_state_dict = counting
        before = len(gc.get_objects())
        nnh5.save_state_dict(sd, f)
    finally:
        lib.save_state_dict = real
        if was:
            gc.enable()
    check(len(seen) == 1 and seen[0] - before <= 100,
          f"tracked objects: a save of {n + 1} values holds none per value while C writes",
          f"{seen[0] - before if seen else None} held")
    back = nnh5.load_state_dict(f)
    check(back["tied.again"].data_ptr() == back["layers.0.p0"].data_ptr()
          and torch.equal(back["layers.2.p9"], sd["layers.2.p9"]),
          "tracked objects: the save's values and tie load back")


pc.run_parts(calls_counted, ownership, tracked_objects, library_rule, same_files, errors, peak_memory, fsyncs)
pc.finish("test_clib")
