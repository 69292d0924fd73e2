#!/usr/bin/python3
"""tools/nnh5.py's loaders against hostile files: the C library's load policy, in Python.

1. The hostile corpus (tests/hostile/make_corpus.py, written here into the
   scratch folder): every file through every loader (load, load_state_dict,
   load_model, and load_state_dict(group=...) where a file hides its trap
   outside the root group), each in a child process whose address space is
   capped (RLIMIT_AS: what it had after importing, plus 512 MiB; the
   deflate bomb declares 4 GiB) and run under strace when it is installed.
   Each file is refused with its own nnh5.Error subclass and message (files
   the table does not know yet with some nnh5.Error other than
   NoMemoryError/HDF5Error), the child's peak memory stays within 256 MiB
   of what it had before loading, and strace sees no file opened but the
   one loaded: nothing in the corpus's elsewhere/ folder, no /etc/passwd,
   no other corpus file. A control run proves that h5py itself, following
   an external link, is seen opening the other file.
2. Python-specific cases: a 10 KB sparse file that declared 2.2 GB (chunked
   and contiguous never written), a small deflate bomb (refused at 100:1,
   loaded with max_compression_ratio=2000), control-character and DEL
   names deep in a state dict, a model whose weight is a soft link through
   an external link or sparse, aliases counted each time they load.
3. The options: LoadOptions and keyword arguments for every limit, the same
   names and defaults as nnh5_open_options, invalid values refused;
   allow_external and allow_filter_plugins let through what they name.
4. Errors: damaged and truncated files come out as nnh5.Error subclasses,
   never as a raw RuntimeError, KeyError or OSError.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pycommon as pc
from pycommon import check, expect_error, np, h5py, nnh5, path

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_CORPUS = os.path.join(HERE, "..", "hostile", "make_corpus.py")
STRACE = shutil.which("strace")
HEADROOM = 512 << 20     # address space a child may add to what its imports took
MEMORY_SLACK = 256 << 20  # peak memory a refused load may add (the caps used are smaller)

# The child: imports, caps its address space, runs its jobs, prints one JSON line per job.
CHILD = r"""
import json, os, re, resource, sys
sys.path.insert(0, sys.argv[1])
jobs = json.loads(sys.argv[2])
import numpy as np
import nnh5
if any(j["loader"] == "load_model" for j in jobs):
    import torch
    torch.set_num_threads(1)
vm = int(re.search(r"VmSize:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[3]),) * 2)
for i, j in enumerate(jobs):
    os.path.exists("/nnh5-job-marker/%d" % i)  # where this job starts, in a strace log
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"file": j["file"], "loader": j["loader"], "kw": j["kw"]}
    try:
        kw = dict(j["kw"])
        if j["loader"] != "load_model":
            kw["numpy"] = True
        r = getattr(nnh5, j["loader"])(j["path"], **kw)
        out["loaded"] = sorted(r.keys()) if hasattr(r, "keys") else type(r).__name__
        if hasattr(r, "values"):
            out["sums"] = {k: float(np.asarray(v, dtype=np.float64).sum()) for k, v in r.items()}
    except BaseException as e:
        out["error"] = type(e).__name__
        out["nnh5_error"] = isinstance(e, nnh5.Error)
        out["message"] = str(e)
    out["grew"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    print(json.dumps(out), flush=True)
"""

# file -> {loader or "*": (error class name, words in the message)}; None: loads.
S = "*"
EXPECT = {
    "external_link.h5": {S: ("UnsafeError", ["'/evil' is an external link (to another file)"])},
    "external_link_group.h5": {S: ("UnsafeError", ["'/evil' is an external link"])},
    "external_storage.h5": {S: ("UnsafeError", ["dataset '/raw' stores its data in external "
                                                "files: refused"])},
    "external_passwd.h5": {S: ("UnsafeError", ["dataset '/passwd' stores its data in external"])},
    "virtual.h5": {S: ("UnsafeError", ["dataset '/vds' is a virtual dataset (reads other "
                                       "files): refused"])},
    "blosc_params.h5": {S: ("UnsafeError", ["dataset '/x' uses filter 32001",
                                            "blosc with parameters nnh5 does not write"])},
    "lz4_params.h5": {S: ("UnsafeError", ["dataset '/x' uses filter 32004",
                                          "LZ4 with parameters nnh5 does not write"])},
    "unknown_filter.h5": {S: ("UnsafeError", ["dataset '/filtered' uses filter 32123",
                                              "allowed: deflate, shuffle, fletcher32"])},
    "huge_2e62.h5": {S: ("LimitError", ["dataset '/huge' declares 4611686018427387904 bytes",
                                        "max_tensor_bytes"])},
    "huge_overflow.h5": {S: ("LimitError", ["dataset '/huge' declares a size that overflows "
                                            "64 bits"])},
    "sparse.h5": {S: ("UnsafeError", ["dataset '/sparse' declares 1073741824 bytes but stores "
                                      "4096", "100:1"])},
    "deflate_bomb.h5": {S: ("UnsafeError", ["dataset '/bomb' declares 4294967296 bytes but "
                                            "stores", "compression bomb"])},
    "overlap.h5": {S: ("UnsafeError", ["dataset '/b': its data (bytes 2048..10240) overlaps "
                                       "the data of another dataset"])},
    "outside.h5": {S: ("FormatError", ["dataset '/b'", "outside the file"])},
    "cycle.h5": {S: ("FormatError", ["group '/a/loop' links back to its own ancestor "
                                     "(a cycle)"])},
    "soft_cycle.h5": {S: ("FormatError", ["'/s1' is a soft link that does not resolve"])},
    "bad_utf8.h5": {S: ("FormatError", ["the name 'bad\\xff\\xfe', which is not valid UTF-8: "
                                        "refused"])},
    "control_name.h5": {S: ("FormatError", ["the name 'evil\\x1b[31mred\\x07', which is made "
                                            "with control characters"])},
    "long_name.h5": {S: ("LimitError", ["a name of 5000 bytes", "max_name_length"])},
    "bad_utf8_attr.h5": {S: ("FormatError", ["attribute 'nnh5_keys': string 0 ('w\\xff') is "
                                             "not valid UTF-8"])},
    "groups_100k.h5": {S: ("LimitError", ["group '/' holds more than 10000 groups "
                                          "(max_groups)"])},
    "deep.h5": {S: ("LimitError", ["nested deeper than 64 groups (max_depth)"])},
    "soft_via_external.h5": {S: ("UnsafeError", ["'/s' is a soft link to '/nnh5_hidden/x'",
                                                 "crosses '/nnh5_hidden', an external link"])},
    "soft_outside_group.h5": {
        S: ("UnsafeError", ["'/elsewhere' is an external link"]),
        "group=model": ("UnsafeError", ["'/model/hidden/weight' is a soft link to "
                                        "'/elsewhere/x'", "crosses '/elsewhere', an external"])},
    "soft_tensor.h5": {S: ("UnsafeError", ["'/tensor' is a soft link to '/nnh5_ext/x'",
                                           "crosses '/nnh5_ext', an external link"])},
    "soft_chain.h5": {S: ("UnsafeError", ["soft link to '/nnh5_ext/x'",
                                          "crosses '/nnh5_ext', an external link"])},
    "soft_relative.h5": {S: ("UnsafeError", ["'/g/s' is a soft link to 'nnh5_sub/y'",
                                             "crosses '/g/nnh5_sub', an external link"])},
    "soft_group.h5": {S: ("UnsafeError", ["'/s' is a soft link to a group: refused"])},
    "soft_group_external.h5": {S: ("UnsafeError", ["'/s' is a soft link to '/nnh5_ext/grp'",
                                                   "crosses '/nnh5_ext', an external link"])},
    "soft_long_chain.h5": {S: ("FormatError", ["'/c00' is a soft link that does not resolve "
                                               "within 16 soft links"])},
    "reserved_external.h5": {S: None},
    "aliases_ok.h5": {S: None},
    # 201 names of one 8 MiB dataset as copies: each counts (max_load_bytes=64 MiB,
    # copy_aliases; tied, the default, they load as one buffer: test_tied.py)
    "aliases_200.h5": {S: ("LimitError", ["would bring the data read from this file past the "
                                          "per-load limit of 67108864 bytes (max_load_bytes)"])},
}
# Where libnnh5 (ctypes) words a refusal otherwise, or is stricter (doc/PYTHON.md, "The C
# library"): the same class of error, in C's words.
C_EXPECT = {
    "soft_cycle.h5": {S: ("FormatError", ["the soft link '/s1' -> '/s2' leads back to itself "
                                          "(a cycle of soft links)"])},
    "soft_via_external.h5": {S: ("UnsafeError", ["'/nnh5_hidden' is an external link (to "
                                                 "another file): refused"])},
    "soft_outside_group.h5": {
        S: ("UnsafeError", ["'/elsewhere' is an external link"]),
        "group=model": ("UnsafeError", ["'/elsewhere' is an external link", "met resolving "
                                        "the soft link 'model/hidden/weight' -> "
                                        "'/elsewhere/x'"])},
    # load() reads it with the h5py code: the C library has no one-dataset rule with options
    "soft_tensor.h5": {S: ("UnsafeError", ["'/nnh5_ext'", "an external link"])},
    "soft_chain.h5": {S: ("UnsafeError", ["'/nnh5_ext' is an external link", "met resolving "
                                          "the soft link '/a' -> '/b'"])},
    "soft_relative.h5": {S: ("UnsafeError", ["'/g/nnh5_sub' is an external link"])},
    "soft_group_external.h5": {S: ("UnsafeError", ["'/nnh5_ext' is an external link"])},
    "soft_long_chain.h5": {S: ("FormatError", ["through more than 16 soft links in a row"])},
    # stricter: an external link under a reserved name is refused, not skipped
    "reserved_external.h5": {S: ("UnsafeError", ["'/nnh5_probe' is an external link"])},
    # stricter: the copies of aliases in one load may not pass the file's size
    "aliases_200.h5": {S: ("LimitError", ["is another name of '/data' (an alias)",
                                          "past the file's size"])},
}
if pc.C_MODE:
    EXPECT.update(C_EXPECT)
# Files whose loads run with options (the C test's caps).
OPTIONS = {"aliases_200.h5": {"max_load_bytes": 64 << 20, "copy_aliases": True}}
# Loads that are not a model: load_model refuses them before reading any tensor.
NOT_A_MODEL = ("FormatError", ["not a model"])


def run_child(jobs, traced):
    """Run jobs in a capped child (under strace if traced): ([result], [strace lines of each
    job], rc). A job's memory is how much the child's peak grew while it ran."""
    argv = [sys.executable, "-c", CHILD, pc.TOOLS, json.dumps(jobs), str(HEADROOM)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    lines = []
    with tempfile.NamedTemporaryFile(prefix="nnh5-strace-", suffix=".log") as log:
        if traced:
            argv = [STRACE, "-f", "-qq", "-e", "trace=file", "-o", log.name] + argv
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        if traced:
            lines = [[] for _ in jobs]
            at = None
            for ln in open(log.name, errors="replace").read().splitlines():
                if "/nnh5-job-marker/" in ln:
                    at = int(ln.split("/nnh5-job-marker/")[1].split('"')[0])
                elif at is not None:
                    lines[at].append(ln)
    results = []
    for line in p.stdout.splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:
            pass
    if p.returncode != 0 or len(results) != len(jobs):
        check(False, f"child for {jobs[0]['file']}...", f"exit {p.returncode}, {len(results)} "
              f"of {len(jobs)} results: {p.stderr.strip()[-600:]}")
    return results, lines, p.returncode


def judge(res, expect):
    what = f"{res['file']}: {res['loader']}" + (f"({res['kw']})" if res["kw"] else "")
    if expect is None:
        check("loaded" in res, f"{what}: loads", res.get("message", ""))
        return
    if "loaded" in res:
        check(False, f"{what}: refused", f"loaded {str(res['loaded'])[:200]}")
        return
    check(res["nnh5_error"], f"{what}: an nnh5.Error", f"{res['error']}: {res['message']}")
    if expect == "any":
        check(res["error"] not in ("NoMemoryError", "HDF5Error"), f"{what}: refused by the "
              "policy", f"{res['error']}: {res['message']}")
        return
    cls, words = expect
    missing = [w for w in words if w not in res["message"]]
    check(res["error"] == cls and not missing, what,
          f"{res['error']}: {res['message']!r}, expected {cls} with {missing or words}")


def outside_touched(lines, corpus, name, files):
    return [ln for ln in lines
            if os.path.join(corpus, "elsewhere") in ln or "/etc/passwd" in ln
            or any(os.path.join(corpus, other) in ln for other in files if other != name)]


# ------------------------------------------------------------ 1. the corpus

def corpus():
    out = path("corpus")
    p = subprocess.run([sys.executable, MAKE_CORPUS, out], capture_output=True, text=True)
    if not check(p.returncode == 0, "make_corpus.py", p.stderr[-800:]):
        return
    out = os.path.realpath(out)
    files = sorted(f for f in os.listdir(out) if f.endswith(".h5"))
    if STRACE:
        rc, lines = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=file", "-o",
                                    path("control.log"), sys.executable, "-c",
                                    "import h5py, sys; h5py.File(sys.argv[1])['evil'][()]",
                                    os.path.join(out, "external_link.h5")]).returncode, \
            open(path("control.log")).read()
        check(rc == 0 and os.path.join(out, "elsewhere") in lines,
              "control: strace sees h5py open the external link's target")
    else:
        print("strace not found: no proof that no other file is opened")
    unknown = [f for f in files if f not in EXPECT]
    if unknown:
        print(f"corpus files without a specific expectation (any nnh5.Error): {unknown}")
    # one child for the numpy loaders, one for load_model (torch): every file in each
    for loaders in (("load", "load_state_dict"), ("load_model",)):
        jobs = []
        for name in files:
            table = EXPECT.get(name, {S: "any"})
            kw = OPTIONS.get(name, {})
            jobs += [{"file": name, "path": os.path.join(out, name), "loader": ld, "kw": kw}
                     for ld in loaders]
            for key in table:
                if key.startswith("group=") and "load_state_dict" in loaders:
                    jobs.append({"file": name, "path": os.path.join(out, name),
                                 "loader": "load_state_dict", "kw": dict(kw, group=key[6:])})
        results, lines, _ = run_child(jobs, bool(STRACE))
        for i, res in enumerate(results):
            name = res["file"]
            table = EXPECT.get(name, {S: "any"})
            key = "group=" + res["kw"]["group"] if "group" in res["kw"] else S
            expect = table.get(key, table[S])
            if res["loader"] == "load_model" and "not a model" in res.get("message", ""):
                expect = NOT_A_MODEL  # refused before a tensor is read: checked by strace only
            judge(res, expect)
            check(res["grew"] < MEMORY_SLACK, f"{name}: {res['loader']}: memory",
                  f"peak grew by {res['grew'] >> 20} MiB")
            if STRACE:
                f = os.path.join(out, name)
                check(any(f in ln for ln in lines[i]), f"{name}: {res['loader']}: strace saw "
                      "the file opened")
                bad = outside_touched(lines[i], out, name, files)
                check(not bad, f"{name}: {res['loader']}: no other file opened",
                      "; ".join(bad[:3]))
    ok = [r for r in run_child([{"file": "aliases_ok.h5", "path": os.path.join(
        out, "aliases_ok.h5"), "loader": "load", "kw": {}}], False)[0] if "loaded" in r]
    check(ok and ok[0]["loaded"] == ["a", "hard", "soft"]
          and len(set(ok[0]["sums"].values())) == 1, "aliases_ok: every name loads the data",
          str(ok))


# ------------------------------------------------- 2. Python-specific cases

def python_cases():
    # A 10 KB file that declared 2.2 GB: chunked with nothing written, and contiguous never
    # written (HDF5 fills both with zeros); the old module allocated and filled 2.2 GB.
    f = path("sparse_10k.h5")
    with h5py.File(f, "w") as h:
        h.create_dataset("w", shape=(550_000_000,), dtype="<f4", chunks=(1 << 18,))
        h.create_dataset("v", shape=(550_000_000,), dtype="<f4")
    check(os.path.getsize(f) < 12_000, "sparse_10k.h5 is about 10 KB",
          str(os.path.getsize(f)))
    for loader in ("load", "load_state_dict"):
        results, _, _ = run_child([{"file": "sparse_10k.h5", "path": f, "loader": loader,
                                    "kw": {}}], False)
        for r in results:
            judge(r, ("UnsafeError", ["declares 2200000000 bytes but stores 0",
                                      "max_compression_ratio"]))
    # A deflate bomb of 64 MiB in about 64 KB of chunks: 1000:1.
    f = path("bomb_small.h5")
    chunk = 1 << 18
    import zlib
    packed = zlib.compress(bytes(4 * chunk), 9)
    with h5py.File(f, "w") as h:
        d = h.create_dataset("bomb", shape=(16 * chunk,), dtype="<f4", chunks=(chunk,),
                             compression="gzip")
        for i in range(16):
            d.id.write_direct_chunk((i * chunk,), packed, 0)
    expect_error(lambda: nnh5.load(f, numpy=True), nnh5.UnsafeError,
                 ["dataset '/bomb' declares 16777216 bytes", "compression bomb"],
                 "a small deflate bomb is refused at 100:1")
    got = nnh5.load(f, numpy=True, max_compression_ratio=2000)
    check(got["bomb"].shape == (16 * chunk,) and not got["bomb"].any(),
          "max_compression_ratio=2000 lets the bomb load")
    # Control characters and DEL deep in a state dict.
    for bad in ("x\n", "x\x7f", "x\t"):
        f = path("ctrl.h5")
        with h5py.File(f, "w") as h:
            h.create_group("layer").create_group("sub").create_dataset(bad, data=[1.0])
        expect_error(lambda: nnh5.load_state_dict(f), nnh5.FormatError,
                     ["group '/layer/sub'", "made with control characters"],
                     f"a name {bad!r} deep in a state dict is refused")
    # A soft link to a group in the middle of a soft link's path is refused, as in C.
    f = path("soft_mid_group.h5")
    with h5py.File(f, "w") as h:
        h.create_group("g")["x"] = np.ones(2, dtype="<f4")
        h["nnh5_s"] = h5py.SoftLink("/g")
        h["t"] = h5py.SoftLink("/nnh5_s/x")
    check(list(nnh5.load_state_dict(f, numpy=True, group="g")) == ["x"], "/g itself loads")
    expect_error(lambda: nnh5.load(f, numpy=True), nnh5.UnsafeError,
                 ["'/nnh5_s' is a soft link to a group: refused"],
                 "a soft link to a group inside a soft link's path is refused")
    # Aliases as copies: each load of a dataset counts; re-reads of one dataset are no
    # overlap. Tied (the default) they count once.
    f = path("alias3.h5")
    with h5py.File(f, "w") as h:
        h["a"] = np.ones(1 << 20, dtype="<f4")  # 4 MiB, contiguous
        h["b"] = h["a"]
        h["c"] = h5py.SoftLink("/a")
    check(len(nnh5.load(f, numpy=True, max_load_bytes=4 << 20)) == 3,
          "three names of 4 MiB load tied under max_load_bytes=4 MiB")
    if pc.C_MODE:  # libnnh5 caps copies of aliases at the file's size (4 MiB) too
        expect_error(lambda: nnh5.load(f, numpy=True, max_load_bytes=12 << 20,
                                       copy_aliases=True),
                     nnh5.LimitError, ["another name of '/a'", "past the file's size"],
                     "copies of aliases past the file's size are refused")
    else:
        check(len(nnh5.load(f, numpy=True, max_load_bytes=12 << 20, copy_aliases=True)) == 3,
              "three names of 4 MiB load as copies under max_load_bytes=12 MiB")
        expect_error(lambda: nnh5.load(f, numpy=True, max_load_bytes=(12 << 20) - 1,
                                       copy_aliases=True),
                     nnh5.LimitError, ["dataset '/c'", "max_load_bytes"],
                     "the third name of 4 MiB passes max_load_bytes=12 MiB - 1")
    models()


def models():
    torch = pc.need_torch()
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    target = path("other.h5")
    with h5py.File(target, "w") as h:
        h["x"] = np.zeros((3, 4), dtype="<f4")

    def hostile(name, edit):
        f = path(name)
        nnh5.save_model(net, f)
        with h5py.File(f, "r+") as h:
            edit(h)
        return f

    def soft_external(h):
        del h["0/weight"]
        h["nnh5_x"] = h5py.ExternalLink(target, "/")
        h["0"]["weight"] = h5py.SoftLink("/nnh5_x/x")

    f = hostile("model_soft_external.h5", soft_external)
    for loader in ("load_model", "load_state_dict", "load"):
        results, lines, _ = run_child([{"file": os.path.basename(f), "path": f,
                                        "loader": loader, "kw": {}}], bool(STRACE))
        for r in results:
            judge(r, ("UnsafeError", ["'/nnh5_x' is an external link",
                                      "the soft link '/0/weight' -> '/nnh5_x/x'"]
                      if pc.C_MODE and loader != "load_model" else
                      ["'/0/weight' is a soft link to '/nnh5_x/x'",
                       "crosses '/nnh5_x', an external link"]))
        if STRACE:
            check(not [ln for ln in lines[0] if target in ln],
                  f"model_soft_external: {loader}: other.h5 never opened")
    # a 3 GiB weight, nothing stored: refused (by the policy, or by the shape check)
    f = hostile("model_big_sparse.h5", lambda h: (
        h.__delitem__("0/weight"),
        h["0"].create_dataset("weight", shape=(3, 1 << 28), dtype="<f4", chunks=(1, 1 << 18))))
    for r in run_child([{"file": "model_big_sparse.h5", "path": f, "loader": "load_model",
                         "kw": {}}], False)[0]:
        judge(r, "any")
        check(r["grew"] < MEMORY_SLACK, "model_big_sparse: memory",
              f"peak grew by {r['grew'] >> 20} MiB")


# ------------------------------------------------------------ 3. the options

def options():
    o = nnh5.LoadOptions()
    names = ["max_tensor_bytes", "max_load_bytes", "max_compression_ratio", "max_groups",
             "max_tensors", "max_depth", "max_name_length", "allow_external",
             "allow_filter_plugins", "copy_aliases"]
    check(list(type(o).__slots__) == names, "LoadOptions has nnh5_open_options' names",
          str(type(o).__slots__))
    defaults = {n: o.limit(n) for n in names[:7]}
    check(defaults == {"max_tensor_bytes": 16 << 30, "max_load_bytes": 64 << 30,
                       "max_compression_ratio": 100, "max_groups": 10000, "max_tensors": 100000,
                       "max_depth": 64, "max_name_length": 1024},
          "defaults are the C library's", str(defaults))
    f = path("opts.h5")
    with h5py.File(f, "w") as h:
        h["a"] = np.arange(8, dtype="<f4")
        h.create_group("g").create_group("h")["b"] = np.arange(3, dtype="<f4")
        h["c" * 40] = np.arange(2, dtype="<f4")
    cases = [({"max_tensor_bytes": 31}, nnh5.LimitError, ["'/a' declares 32 bytes",
                                                         "max_tensor_bytes"]),
             ({"max_load_bytes": 40}, nnh5.LimitError, ["max_load_bytes"]),
             ({"max_tensors": 2}, nnh5.LimitError, ["more than 2 datasets (max_tensors)"]),
             ({"max_groups": 1}, nnh5.LimitError, ["more than 1 groups (max_groups)"]),
             ({"max_depth": 1}, nnh5.LimitError, ["'/g/h' is nested deeper than 1 groups"]),
             ({"max_name_length": 39}, nnh5.LimitError, ["a name of 40 bytes"])]
    for kw, exc, words in cases:
        for loader in (nnh5.load, nnh5.load_state_dict):
            expect_error(lambda: loader(f, numpy=True, **kw), exc, words,
                         f"{loader.__name__}(**{kw})")
            expect_error(lambda: loader(f, numpy=True, options=nnh5.LoadOptions(**kw)), exc,
                         words, f"{loader.__name__}(options=LoadOptions(**{kw}))")
            expect_error(lambda: loader(f, numpy=True, options=kw), exc, words,
                         f"{loader.__name__}(options={kw})")
    check(len(nnh5.load(f, numpy=True, max_tensors=3, max_depth=2, max_name_length=40)) == 3,
          "limits that fit load")
    # keyword arguments override the options object
    check(len(nnh5.load(f, numpy=True, options=nnh5.LoadOptions(max_tensors=1),
                        max_tensors=3)) == 3, "a keyword overrides the options object")
    for kw, words in (({"max_depth": 257}, ["max_depth 257 exceeds 256"]),
                      ({"max_groups": -1}, ["max_groups"]), ({"max_tensors": 1.5}, []),
                      ({"allow_external": 1}, ["allow_external"]),
                      ({"max_lod_bytes": 1}, ["unknown load option 'max_lod_bytes'"])):
        expect_error(lambda: nnh5.load(f, **kw), nnh5.InvalidError, words, f"invalid {kw}")
    expect_error(lambda: nnh5.LoadOptions(max_depth=300), nnh5.InvalidError, ["max_depth"],
                 "LoadOptions(max_depth=300)")
    # allow_external and allow_filter_plugins let through what they name
    other = path("opts_other.h5")
    with h5py.File(other, "w") as h:
        h["x"] = np.arange(5, dtype="<f4")
    with h5py.File(f, "w") as h:
        h["ext"] = h5py.ExternalLink(other, "/x")
        h.create_dataset("lzf", data=np.arange(100, dtype="<f4"), chunks=(50,),
                         compression="lzf")
    expect_error(lambda: nnh5.load(f), nnh5.UnsafeError, ["'/ext' is an external link"],
                 "an external link is refused by default")
    expect_error(lambda: nnh5.load(f, allow_external=True), nnh5.UnsafeError,
                 ["'/lzf' uses filter 32000"], "allow_external does not allow filters")
    got = nnh5.load(f, numpy=True, allow_external=True, allow_filter_plugins=True)
    check(list(got["ext"]) == [0, 1, 2, 3, 4] and got["lzf"][99] == 99,
          "allow_external and allow_filter_plugins load both")
    import inspect
    for fn in (nnh5.load, nnh5.load_state_dict, nnh5.load_model):
        sig = inspect.signature(fn)
        check("options" in sig.parameters and "max_load_bytes" in (fn.__doc__ or ""),
              f"{fn.__name__} takes options= and documents the limits")


# ------------------------------------------------------------- 4. the errors

def errors():
    check(issubclass(nnh5.LimitError, nnh5.Error) and issubclass(nnh5.LimitError,
                                                                 OverflowError),
          "LimitError is an nnh5.Error and an OverflowError")
    check(issubclass(nnh5.NotFoundError, FileNotFoundError), "NotFoundError is a "
          "FileNotFoundError")
    for cls, status in ((nnh5.UnsafeError, "NNH5_ERR_UNSAFE"), (nnh5.FormatError,
                        "NNH5_ERR_FORMAT"), (nnh5.LimitError, "NNH5_ERR_OVERFLOW"),
                        (nnh5.ChecksumError, "NNH5_ERR_CHECKSUM"),
                        (nnh5.NotFoundError, "NNH5_ERR_NOT_FOUND"),
                        (nnh5.NoMemoryError, "NNH5_ERR_NOMEM"), (nnh5.HDF5Error, "NNH5_ERR_HDF5")):
        check(cls.status == status, f"{cls.__name__}.status is {status}")
    expect_error(lambda: nnh5.load(path("missing.h5")), nnh5.NotFoundError,
                 ["missing.h5", "No such file"], "a missing file: NotFoundError")
    # every prefix of a file, and the file with each 64th byte flipped: an nnh5.Error or a
    # load, in a child (restarted after a hang, which counts unless C hangs there too)
    f = path("whole.h5")
    nnh5.save_state_dict({"a.w": np.arange(3000, dtype="<f4"), "a.b": np.ones(3, "<f8"),
                          "c": np.zeros(5, "<i2")}, f)
    data = open(f, "rb").read()
    variants = [data[:n] for n in range(0, len(data), max(1, len(data) // 64))]
    for i in range(0, len(data), 64):
        b = bytearray(data)
        b[i] ^= 0x5a
        variants.append(bytes(b))
    os.makedirs(path("damaged"))
    todo = []
    for i, v in enumerate(variants):
        todo.append(path(f"damaged/{i:04d}.h5"))
        with open(todo[-1], "wb") as fp:
            fp.write(v)
    raw, hangs, done = [], [], 0
    while todo:
        p = subprocess.Popen([sys.executable, "-c", SWEEP, pc.TOOLS] + todo,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        lines = out.splitlines()
        for ln in lines:
            if ln.startswith("RAW "):
                raw.append(ln[4:])
        n = sum(1 for ln in lines if ln.startswith("DONE "))
        done += n
        if p.returncode == 0 and n == len(todo):
            break
        hung = todo[n]
        c = subprocess.run(["timeout", "10", pc.HELPER, "dump", "state_dict", hung],
                           capture_output=True)
        # 124: C hangs too; < 0 (a signal): HDF5 crashes in C too (a damaged global heap)
        hangs.append((os.path.basename(hung), c.returncode == 124 or c.returncode < 0))
        todo = todo[n + 1:]
    check(not raw, f"{len(variants)} damaged files x 2 loaders: only nnh5.Error",
          f"{len(raw)} raw errors, e.g. {raw[:3]}")
    for name, c_hangs in hangs:
        if c_hangs:
            print(f"KNOWN damaged/{name}: HDF5 hangs or crashes reading it, from Python and "
                  "from C alike")
        check(c_hangs, f"damaged/{name}: Python hangs where C does not")


# Loads each file named on the command line with load and load_state_dict; prints RAW for an
# error that is not an nnh5.Error, DONE after each file.
SWEEP = r"""
import sys
sys.path.insert(0, sys.argv[1])
import nnh5
for f in sys.argv[2:]:
    for loader in (nnh5.load, nnh5.load_state_dict):
        try:
            loader(f, numpy=True)
        except nnh5.Error:
            pass
        except Exception as e:
            print("RAW %s %s: %s: %s" % (f, loader.__name__, type(e).__name__, e), flush=True)
    print("DONE " + f, flush=True)
"""


def main():
    print(f"nnh5.py {nnh5.__version__}, h5py {h5py.version.version}, HDF5 "
          f"{h5py.version.hdf5_version}, strace {STRACE or 'missing'}")
    pc.run_parts(corpus, python_cases, options, errors)
    pc.finish("test_hostile")


if __name__ == "__main__":
    main()
