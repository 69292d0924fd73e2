#!/usr/bin/python3
"""bench/workloads.py - nnh5 against torch.save/torch.load on three workloads.

    /usr/bin/python3 bench/workloads.py LIBNNH5_SO [--reps N] [--dir DIR] [--only NAME]

The workloads (built with torch, float32 unless the model has other types):
  resnet50   torchvision's resnet50, randomly initialised: 320 tensors, its
             int64 num_batches_tracked buffers included (about 98 MiB);
  gpt2       GPT-2-small shapes: 148 tensors, about 475 MiB;
  small12k   12,000 small tensors: 4,000 parameters of a model (64 to 1,024
             float32 each) with their Adam moments (exp_avg, exp_avg_sq).

nnh5 is called through its C one-call API (ctypes over LIBNNH5_SO):
nnh5_save_state_dict() of read-only views of the same memory torch saves
(durable: nnh5 fsyncs the file and its folder) and nnh5_load_state_dict()
(checksums verified). Its peer is torch.save() followed by fsync of the file,
and torch.load(). Each round runs the four operations of every workload
in turn (the order alternates between rounds), each after os.sync(), each
save into a new file (the previous one is removed first, untimed); loads read
from the page cache. Freeing what a load returned is not timed, for either.

Prints, per workload and operation, the median and the range over the rounds
in milliseconds and the ratio torch / nnh5 (> 1: nnh5 is faster), then the
peak memory of each operation measured once in a fresh process (this script
with --measure): the peak resident size during the operation (VmHWM, reset
through /proc/self/clear_refs) minus the resident size before it, against the
workload's tensor bytes.

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

NNH5_DTYPES = {torch.float32: 11, torch.int64: 4, torch.float16: 9, torch.float64: 12}


def resnet50():
    try:
        import torchvision
    except ImportError:
        sys.exit("bench/workloads.py: resnet50 needs Debian's python3-torchvision "
                 "(or run with --only gpt2 / --only small12k)")
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).state_dict()


def gpt2():
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.empty(*shape).normal_(0, 0.02, generator=g)
    sd = {"wte.weight": t(50257, 768), "wpe.weight": t(1024, 768)}
    for i in range(12):
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
    for i in range(4000):
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


def measure(args, nn):
    """One operation in this fresh process: prints its peak extra bytes."""
    sd = WORKLOADS[args.only]()
    d = nn.views(sd)
    base = os.path.join(args.dir, args.only)
    op = args.measure
    r = None
    if op.endswith("load"):  # the file to load, written untimed
        nn.save(d, base + ".h5") if op == "nnh5-load" else torch_save(sd, base + ".pt")
    if op.endswith("save"):
        remove(base + (".h5" if op == "nnh5-save" else ".pt"))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS:")
    if op == "nnh5-save":
        nn.save(d, base + ".h5")
    elif op == "torch-save":
        torch_save(sd, base + ".pt")
    elif op == "nnh5-load":
        r = nn.load(base + ".h5")
    else:
        r = torch.load(base + ".pt")
    print((status_kib("VmHWM:") - before) * 1024)
    if op == "nnh5-load":
        nn.free(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--dir", default="/tmp/nnh5-workloads")
    ap.add_argument("--only", choices=list(WORKLOADS))
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    nn = Nnh5(args.lib)
    torch.set_num_threads(1)
    if args.measure:
        measure(args, nn)
        return
    names = [args.only] if args.only else list(WORKLOADS)
    sds = {w: WORKLOADS[w]() for w in names}
    views = {w: nn.views(sds[w]) for w in names}
    times = {(w, op): [] for w in names for op in
             ("nnh5-save", "torch-save", "nnh5-load", "torch-load")}
    for w in names:  # files for the first round's loads; warms the page cache
        nn.save(views[w], os.path.join(args.dir, w + ".h5"))
        torch_save(sds[w], os.path.join(args.dir, w + ".pt"))
    for rnd in range(args.reps + 1):
        for w in names:
            h5 = os.path.join(args.dir, w + ".h5")
            pt = os.path.join(args.dir, w + ".pt")
            ops = [("nnh5-save", lambda: (remove(h5), timed(lambda: nn.save(views[w], h5)))[1]),
                   ("torch-save", lambda: (remove(pt), timed(lambda: torch_save(sds[w], pt)))[1]),
                   ("nnh5-load", lambda: timed(lambda: nn.load(h5))),
                   ("torch-load", lambda: timed(lambda: torch.load(pt)))]
            if rnd % 2:
                ops = ops[1::-1] + ops[3:1:-1]
            for op, fn in ops:
                ms, r = fn()
                if op == "nnh5-load":
                    nn.free(r)
                del r
                if rnd:  # round 0 is a warm-up
                    times[(w, op)].append(ms)
    print(f"{args.reps} rounds, medians in ms (range), ratio = torch / nnh5 (> 1: nnh5 faster)")
    print("| workload | tensors | MiB | nnh5 save | torch.save+fsync | ratio | nnh5 load | "
          "torch.load | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in names:
        nbytes = sum(v.numel() * v.element_size() for v in sds[w].values())
        cell = {}
        for op in ("nnh5-save", "torch-save", "nnh5-load", "torch-load"):
            xs = times[(w, op)]
            cell[op] = (statistics.median(xs), min(xs), max(xs))

        def fmt(op):
            m, lo, hi = cell[op]
            return f"{m:.1f} ({lo:.1f}-{hi:.1f})"
        print(f"| {w} | {len(sds[w])} | {nbytes / 2**20:.1f} | {fmt('nnh5-save')} | "
              f"{fmt('torch-save')} | {cell['torch-save'][0] / cell['nnh5-save'][0]:.2f}x | "
              f"{fmt('nnh5-load')} | {fmt('torch-load')} | "
              f"{cell['torch-load'][0] / cell['nnh5-load'][0]:.2f}x |")
    print()
    print("Peak extra memory, MiB (x tensor bytes), each in a fresh process:")
    print("| workload | nnh5 save | torch.save | nnh5 load | torch.load |")
    print("|---|---|---|---|---|")
    for w in names:
        nbytes = sum(v.numel() * v.element_size() for v in sds[w].values())
        row = []
        for op in ("nnh5-save", "torch-save", "nnh5-load", "torch-load"):
            out = subprocess.run([sys.executable, __file__, args.lib, "--dir", args.dir,
                                  "--only", w, "--measure", op],
                                 capture_output=True, text=True, check=True).stdout
            peak = int(out.split()[-1])
            row.append(f"{peak / 2**20:.1f} ({peak / nbytes:.2f}x)")
        print(f"| {w} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
