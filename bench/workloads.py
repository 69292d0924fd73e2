#!/usr/bin/python3
"""bench/workloads.py - nnh5 against torch.save/torch.load on three workloads.

    /usr/bin/python3 bench/workloads.py LIBNNH5_SO [--reps N] [--dir DIR] [--only NAME]
                                       [--no-python] [--tiny]

The workloads (built with torch, float32 unless the model has other types):
  resnet50   torchvision's resnet50, randomly initialised: 320 tensors, its
             int64 num_batches_tracked buffers included (about 98 MiB);
  gpt2       GPT-2-small shapes: 148 tensors, about 475 MiB;
  small12k   12,000 small tensors: 4,000 parameters of a model (64 to 1,024
             float32 each) with their Adam moments (exp_avg, exp_avg_sq).

nnh5 is called through its C one-call API (ctypes over LIBNNH5_SO):
nnh5_save_state_dict() of read-only views of the same memory torch saves
(durable: nnh5 fsyncs the file and its folder) and nnh5_load_state_dict()
(checksums verified). The Python module tools/nnh5.py is measured in the same
rounds (unless --no-python), in both of its modes: over LIBNNH5_SO through
ctypes (pyc-save, pyc-load: the module's default when it finds the library)
and over h5py alone (py-save, py-load: NNH5_PYTHON_PURE=1), each
nnh5.save_state_dict() of the same state dict (durable, checksummed) and
nnh5.load_state_dict() (torch tensors, checksums verified, the load policy
applied). Their peer is torch.save() followed by
fsync of the file, and torch.load(). Each round runs the six operations of
every workload in turn (the order reverses between rounds), each after
os.sync(), each save into a new file (the previous one is removed first,
untimed); loads read from the page cache. Freeing what a load returned is
not timed.

The raw peers write() every tensor's bytes into one file and fsync it (the
floor of a durable save; nnh5 also fsyncs the folder), and read() them back
into a new buffer per tensor (the floor of a load from the page cache).

Prints, per workload and operation, the median and the range over the rounds
in milliseconds and the ratio torch / nnh5 (> 1: nnh5 is faster), then the
peak memory of each operation measured once in a fresh process (this script
with --measure): the peak resident size during the operation (VmHWM, reset
through /proc/self/clear_refs) minus the resident size before it, against the
workload's tensor bytes (the file a load reads is written by another process).

Every operation runs with fresh memory, as a load in a new process does:
the script re-executes itself with glibc's MALLOC_MMAP_THRESHOLD_=131072
(unless the variable is set already), which also turns off glibc's dynamic
threshold. Without it, freeing a large block raises the threshold (up to 32
MiB), so later allocations come from the heap that earlier operations
already faulted in, and whether an operation pays its page faults depends
on what ran before it. Counted on resnet50 (ru_minflt per load, six rounds
alternating nnh5 and torch): without the variable nnh5 10203, 736, 507, 0,
469, 56 and torch 23433, 900, 571, 2, 517, 5; with it nnh5 9877 to 10295
and torch 24636 to 25117 every round.

--tiny shrinks gpt2 and small12k (two layers of a GPT-2 eighth the width;
1,200 small tensors) for a smoke run of the script itself.

Run on a quiet machine only (no build or test beside it): doc/SPEED.md.
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import nnh5 as nnh5py  # noqa: E402  (tools/nnh5.py, the Python module)

NNH5_DTYPES = {torch.float32: 11, torch.int64: 4, torch.float16: 9, torch.float64: 12}


def resnet50():
    try:
        import torchvision
    except ImportError:
        sys.exit("bench/workloads.py: resnet50 needs Debian's python3-torchvision "
                 "(tools/bootstrap.sh --bench installs it; or run with --only gpt2 / "
                 "--only small12k)")
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).state_dict()


TINY = False  # --tiny


def gpt2():
    g = torch.Generator().manual_seed(0)
    div = 8 if TINY else 1

    def t(*shape):
        return torch.empty(*(d // div for d in shape)).normal_(0, 0.02, generator=g)
    sd = {"wte.weight": t(50257, 768), "wpe.weight": t(1024, 768)}
    for i in range(2 if TINY else 12):
        p = f"h.{i}."
        sd.update({p + "ln_1.weight": t(768), p + "ln_1.bias": t(768),
                   p + "attn.c_attn.weight": t(768, 2304), p + "attn.c_attn.bias": t(2304),
                   p + "attn.c_proj.weight": t(768, 768), p + "attn.c_proj.bias": t(768),
                   p + "ln_2.weight": t(768), p + "ln_2.bias": t(768),
                   p + "mlp.c_fc.weight": t(768, 3072), p + "mlp.c_fc.bias": t(3072),
                   p + "mlp.c_proj.weight": t(3072, 768), p + "mlp.c_proj.bias": t(768)})
    sd["ln_f.weight"] = t(768)
    sd["ln_f.bias"] = t(768)
    return sd


def small12k():
    g = torch.Generator().manual_seed(0)
    sizes = [64, 128, 256, 512, 1024]
    sd = {}
    for i in range(400 if TINY else 4000):
        n = sizes[i % len(sizes)]
        name = f"layers.{i // 10}.p{i % 10}"
        sd["model." + name] = torch.empty(n).normal_(0, 0.02, generator=g)
        sd["optim.exp_avg." + name] = torch.empty(n).normal_(0, 1e-3, generator=g)
        sd["optim.exp_avg_sq." + name] = torch.empty(n).uniform_(0, 1e-6, generator=g)
    return sd


WORKLOADS = {"resnet50": resnet50, "gpt2": gpt2, "small12k": small12k}


class Nnh5:
    """The few C functions the benchmark needs, through ctypes."""

    def __init__(self, so):
        lib = ctypes.CDLL(so)
        vp = ctypes.c_void_p
        lib.nnh5_dict_new.argtypes = [ctypes.POINTER(vp)]
        lib.nnh5_dict_free.argtypes = [vp]
        lib.nnh5_dict_free.restype = None
        lib.nnh5_dict_set.argtypes = [vp, ctypes.c_char_p, vp]
        lib.nnh5_tensor_view_const.argtypes = [ctypes.POINTER(vp), ctypes.c_int, ctypes.c_size_t,
                                               ctypes.POINTER(ctypes.c_int64), vp, ctypes.c_size_t]
        lib.nnh5_save_state_dict.argtypes = [ctypes.c_char_p, vp]
        lib.nnh5_load_state_dict.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p]
        lib.nnh5_dict_len.argtypes = [vp]
        lib.nnh5_dict_len.restype = ctypes.c_size_t
        lib.nnh5_error_message.restype = ctypes.c_char_p
        self.lib = lib

    def check(self, rc, what):
        if rc != 0:
            raise RuntimeError(f"{what}: {self.lib.nnh5_error_message().decode()}")

    def views(self, sd):
        """An nnh5 state dict of read-only views of sd's tensors (kept alive by sd)."""
        d = ctypes.c_void_p()
        self.check(self.lib.nnh5_dict_new(ctypes.byref(d)), "dict")
        for k, v in sd.items():
            v = v.contiguous()
            shape = (ctypes.c_int64 * max(v.dim(), 1))(*v.shape)
            t = ctypes.c_void_p()
            self.check(self.lib.nnh5_tensor_view_const(
                ctypes.byref(t), NNH5_DTYPES[v.dtype], v.dim(), shape,
                ctypes.c_void_p(v.data_ptr()), v.numel() * v.element_size()), k)
            self.check(self.lib.nnh5_dict_set(d, k.encode(), t), k)
        return d

    def save(self, d, path):
        self.check(self.lib.nnh5_save_state_dict(path.encode(), d), path)

    def load(self, path):
        d = ctypes.c_void_p()
        self.check(self.lib.nnh5_load_state_dict(ctypes.byref(d), path.encode()), path)
        return d

    def free(self, d):
        self.lib.nnh5_dict_free(d)


def torch_save(sd, path):
    torch.save(sd, path)
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def timed(fn):
    os.sync()
    t0 = time.perf_counter()
    r = fn()
    return (time.perf_counter() - t0) * 1e3, r


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


# The operations: (name, file suffix, a save?). The Python module's are left out
# with --no-python.
OPS = [("nnh5-save", ".h5", True), ("torch-save", ".pt", True), ("pyc-save", ".pyc.h5", True),
       ("py-save", ".py.h5", True), ("raw-save", ".raw", True),
       ("nnh5-load", ".h5", False), ("torch-load", ".pt", False), ("pyc-load", ".pyc.h5", False),
       ("py-load", ".py.h5", False), ("raw-load", ".raw", False)]
PY_LIB = None  # the module's libnnh5 (nnh5py._clib()), set in main()


def py_mode(op):
    """Point the Python module at libnnh5 (pyc-*) or at h5py alone (py-*) for op."""
    nnh5py._CLIB = PY_LIB if op.startswith("pyc-") else False


def tensor_bytes(v):
    """The bytes of tensor v as a flat uint8 numpy view (no copy)."""
    return v.contiguous().reshape(-1).numpy().view(np.uint8)


def raw_save(sd, path):
    """The floor of a durable save: every tensor's bytes write()n into one file, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for v in sd.values():
            b = tensor_bytes(v)
            done = 0
            while done < b.nbytes:
                done += os.write(fd, b[done:])
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_load(sd, path):
    """The floor of a load: each tensor's bytes read() into a new buffer."""
    out = []
    with open(path, "rb", buffering=0) as f:
        for v in sd.values():
            b = np.empty(v.numel() * v.element_size(), dtype=np.uint8)
            f.readinto(b)
            out.append(b)
    return out


def run_op(op, nn, sd, view, path):
    """Run one operation; returns what a load returned (None for saves)."""
    if op == "nnh5-save":
        return nn.save(view, path)
    if op == "torch-save":
        return torch_save(sd, path)
    if op.startswith("py"):
        py_mode(op)
    if op in ("py-save", "pyc-save"):
        return nnh5py.save_state_dict(sd, path)
    if op == "raw-save":
        return raw_save(sd, path)
    if op == "raw-load":
        return raw_load(sd, path)
    if op == "nnh5-load":
        return nn.load(path)
    if op == "torch-load":
        return torch.load(path)
    return nnh5py.load_state_dict(path)


def op_path(base, op):
    return base + next(suffix for name, suffix, _ in OPS if name == op)


def measure(args, nn):
    """One operation in this fresh process: prints its peak extra bytes."""
    sd = WORKLOADS[args.only]()
    d = nn.views(sd)
    base = os.path.join(args.dir, args.only)
    op = args.measure
    path = op_path(base, op)
    r = None
    if op.endswith("load"):
        # the file to load, written by another process: memory a save freed but kept in
        # this process's heap would hide part of the load's peak
        subprocess.run([sys.executable, __file__, args.lib, "--dir", args.dir, "--only",
                        args.only, "--measure", op.replace("load", "save")]
                       + ["--tiny"] * args.tiny,
                       check=True, stdout=subprocess.DEVNULL)
    else:
        remove(path)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS:")
    r = run_op(op, nn, sd, d, path)
    print((status_kib("VmHWM:") - before) * 1024)
    if op == "nnh5-load":
        nn.free(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--dir", default="/tmp/nnh5-workloads")
    ap.add_argument("--only", choices=list(WORKLOADS))
    ap.add_argument("--no-python", action="store_true",
                    help="leave out the Python module (tools/nnh5.py)")
    ap.add_argument("--tiny", action="store_true",
                    help="small sizes, for a smoke run of this script (no figures)")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # fresh memory for every operation (the docstring); --measure children inherit it
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "131072"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    global TINY, PY_LIB
    TINY = args.tiny
    if not args.no_python:
        os.environ["NNH5_LIBRARY"] = os.path.abspath(args.lib)  # for the module's pyc-* ops
        os.environ.pop("NNH5_PYTHON_PURE", None)
        PY_LIB = nnh5py._clib()
        if PY_LIB is None:
            sys.exit(f"bench/workloads.py: tools/nnh5.py does not use {args.lib}: "
                     f"{nnh5py.backend()[1]}")
    os.makedirs(args.dir, exist_ok=True)
    nn = Nnh5(args.lib)
    torch.set_num_threads(1)
    if args.measure:
        measure(args, nn)
        return
    ops = [o for o in OPS if not (args.no_python and o[0].startswith("py"))]
    names = [args.only] if args.only else list(WORKLOADS)
    sds = {w: WORKLOADS[w]() for w in names}
    views = {w: nn.views(sds[w]) for w in names}
    times = {(w, op): [] for w in names for op, _, _ in ops}
    for w in names:  # files for the first round's loads; warms the page cache
        base = os.path.join(args.dir, w)
        for op, _, saves in ops:
            if saves:
                run_op(op, nn, sds[w], views[w], op_path(base, op))
    for rnd in range(args.reps + 1):
        for w in names:
            base = os.path.join(args.dir, w)
            order = ops if rnd % 2 == 0 else ops[::-1]
            for op, _, saves in order:
                path = op_path(base, op)
                if saves:
                    remove(path)  # untimed: every save writes a new file
                ms, r = timed(lambda: run_op(op, nn, sds[w], views[w], path))
                if op == "nnh5-load":
                    nn.free(r)
                del r
                if rnd:  # round 0 is a warm-up
                    times[(w, op)].append(ms)

    def cell(w, op):
        xs = times[(w, op)]
        return statistics.median(xs), min(xs), max(xs)

    def fmt(w, op):
        m, lo, hi = cell(w, op)
        return f"{m:.1f} ({lo:.1f}-{hi:.1f})"

    def ratio(w, peer, op):
        return f"{cell(w, peer)[0] / cell(w, op)[0]:.2f}x"

    print(f"{args.reps} rounds, medians in ms (range), ratio = torch / nnh5 (> 1: nnh5 faster)")
    tables = [("C library (nnh5_save_state_dict, nnh5_load_state_dict)", "nnh5")]
    if not args.no_python:
        tables.append(("Python module over libnnh5 (tools/nnh5.py through ctypes: "
                       "save_state_dict, load_state_dict)", "pyc"))
        tables.append(("Python module over h5py alone (NNH5_PYTHON_PURE=1)", "py"))
    for title, p in tables:
        print()
        print(title + ":")
        print(f"| workload | tensors | MiB | {p} save | torch.save+fsync | ratio | {p} load | "
              "torch.load | ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        for w in names:
            nbytes = sum(v.numel() * v.element_size() for v in sds[w].values())
            print(f"| {w} | {len(sds[w])} | {nbytes / 2**20:.1f} | {fmt(w, p + '-save')} | "
                  f"{fmt(w, 'torch-save')} | {ratio(w, 'torch-save', p + '-save')} | "
                  f"{fmt(w, p + '-load')} | {fmt(w, 'torch-load')} | "
                  f"{ratio(w, 'torch-load', p + '-load')} |")
    print()
    print("C library against raw I/O in the same rounds (write()+fsync of the bytes into one "
          "file; read() into a new buffer per tensor); ratio = raw time / nnh5 time:")
    print("| workload | nnh5 save | raw write+fsync | ratio | nnh5 load | raw read | ratio |")
    print("|---|---|---|---|---|---|---|")
    for w in names:
        print(f"| {w} | {fmt(w, 'nnh5-save')} | {fmt(w, 'raw-save')} | "
              f"{ratio(w, 'raw-save', 'nnh5-save')} | {fmt(w, 'nnh5-load')} | "
              f"{fmt(w, 'raw-load')} | {ratio(w, 'raw-load', 'nnh5-load')} |")
    print()
    print("Peak extra memory, MiB (x tensor bytes), each in a fresh process:")
    print("| workload | " + " | ".join(op.replace("-", " ") for op, _, _ in ops) + " |")
    print("|---|" + "---|" * len(ops))
    for w in names:
        nbytes = sum(v.numel() * v.element_size() for v in sds[w].values())
        row = []
        for op, _, _ in ops:
            out = subprocess.run([sys.executable, __file__, args.lib, "--dir", args.dir,
                                  "--only", w, "--measure", op] + ["--tiny"] * args.tiny,
                                 capture_output=True, text=True, check=True).stdout
            peak = int(out.split()[-1])
            row.append(f"{peak / 2**20:.1f} ({peak / nbytes:.2f}x)")
        print(f"| {w} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
