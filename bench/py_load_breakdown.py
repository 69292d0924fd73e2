#!/usr/bin/python3
"""bench/py_load_breakdown.py - where a load through tools/nnh5.py spends its work, against C.

    NNH5_LIBRARY=build/lib/libnnh5.so /usr/bin/python3 bench/py_load_breakdown.py
        [--ops OP,...] [--small N] [--large M] [--dir DIR] [--faults] [--big-mib B]

Instructions per tensor (valgrind's callgrind, (count at M - count at N) /
(M - N) tensors, so that start-up cancels out) of one load of a state dict
shaped like bench/workloads.py's small12k (64 to 1,024 float32 each), for
each operation:

  c-oneload   nnh5_load_state_dict() through ctypes (the C one-call load)
  c-fileapi   nnh5_file_open_ext() + nnh5_file_read_state_dict() + close
  py-numpy    nnh5.load_state_dict(path, numpy=True)
  py-torch    nnh5.load_state_dict(path) (torch tensors; importing torch
              under callgrind takes minutes: not in the default --ops)

With --faults, instead: in a fresh process per operation (no valgrind), the
minor page faults and the peak resident growth of one load of a file of
8 tensors of B MiB (default 32), against the tensor bytes; page faults do not
depend on the machine's load. --gpt2 loads bench/workloads.py's GPT-2-small
shapes instead (torch needed), --repeat K loads K times in a row in that
process (each freed before the next) and prints the faults of each. Counts, not timings: this may run beside other
work. The file is written by the C library (nnh5_save_state_dict through the
module).
"""
import argparse
import ctypes
import os
import re
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [64, 128, 256, 512, 1024]


def state_dict(n, big=None):
    import numpy as np
    sd = {}
    if big:
        for i in range(8):
            sd[f"layer{i}.weight"] = np.full(big // 4, i, dtype=np.float32)
        return sd
    for i in range(n // 3):
        name = f"layers.{i // 10}.p{i % 10}"
        for prefix in ("model.", "optim.exp_avg.", "optim.exp_avg_sq."):
            sd[prefix + name] = np.full(SIZES[i % len(SIZES)], i, dtype=np.float32)
    return sd


def nnh5_module():
    sys.path.insert(0, os.path.join(HERE, "..", "tools"))
    import nnh5
    return nnh5


def memory_kib():
    """/proc/self/status's sizes in KiB: {"VmRSS": ..., "VmHWM": ...}."""
    with open("/proc/self/status") as f:
        rows = [line.split(":", 1) for line in f]
    return {k: int(v.split()[0]) for k, v in rows if v.rstrip().endswith("kB")}


def load(op, path):
    """One load of path by op; returns what it loaded (kept until the caller measured)."""
    if op.startswith("py-"):
        nnh5 = nnh5_module()
        return nnh5.load_state_dict(path, numpy=op == "py-numpy")
    lib = ctypes.CDLL(os.environ["NNH5_LIBRARY"])
    vp = ctypes.c_void_p
    d = vp()
    if op == "c-oneload":
        lib.nnh5_load_state_dict.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p]
        rc = lib.nnh5_load_state_dict(ctypes.byref(d), path.encode())
    else:
        lib.nnh5_file_open_ext.argtypes = [ctypes.POINTER(vp), ctypes.c_char_p, ctypes.c_int,
                                           vp]
        lib.nnh5_file_read_state_dict.argtypes = [ctypes.POINTER(vp), vp, ctypes.c_char_p]
        lib.nnh5_file_close.argtypes = [vp]
        f = vp()
        rc = lib.nnh5_file_open_ext(ctypes.byref(f), path.encode(), 0, None)
        if not rc:
            rc = lib.nnh5_file_read_state_dict(ctypes.byref(d), f, b"/")
            lib.nnh5_file_close(f)
    if rc:
        sys.exit(f"{op}: status {rc}")
    return d


def free(op, value):
    if not op.startswith("py-"):
        lib = ctypes.CDLL(os.environ["NNH5_LIBRARY"])
        lib.nnh5_dict_free.argtypes = [ctypes.c_void_p]
        lib.nnh5_dict_free(value)


def child(op, path, repeat):
    """In a fresh process: load (repeat times), then print each load's minor faults and
    the first one's resident growth."""
    if op.startswith("py-"):
        nnh5 = nnh5_module()
        import numpy  # noqa: F401  (imported before the counts start)
        if op == "py-torch":
            import torch  # noqa: F401
        nnh5.backend()
    faults, peak = [], 0
    for i in range(int(repeat)):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        rss = memory_kib()["VmRSS"]
        flt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        value = load(op, path)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - flt)
        peak = peak or (memory_kib()["VmHWM"] - rss) * 1024
        free(op, value)
        del value
    print(peak, *faults)


def instructions(out):
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"{out}: no totals")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", default="c-oneload,c-fileapi,py-numpy")
    ap.add_argument("--dir", default="/tmp/nnh5-py-load-breakdown")
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--large", type=int, default=900)
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--big-mib", type=int, default=32)
    ap.add_argument("--gpt2", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--load-only", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(*a.child)
        return
    if a.load_only:
        load(*a.load_only)
        return
    if "NNH5_LIBRARY" not in os.environ:
        sys.exit("set NNH5_LIBRARY to the libnnh5.so to measure")
    os.makedirs(a.dir, exist_ok=True)
    nnh5 = nnh5_module()
    print("tools/nnh5.py over %s (%s)" % nnh5.backend())
    ops = a.ops.split(",")
    if a.faults:
        path = os.path.join(a.dir, "big.h5")
        if a.gpt2:
            sys.path.insert(0, HERE)
            import workloads
            sd = {k: v.numpy() for k, v in workloads.gpt2().items()}
        else:
            sd = state_dict(0, a.big_mib << 20)
        nbytes = sum(v.nbytes for v in sd.values())
        nnh5.save_state_dict(sd, path)
        print(f"{a.repeat} load(s) of {len(sd)} tensors, {nbytes / 2**20:.1f} MiB "
              f"({nbytes // 4096} pages of 4 KiB), each process fresh:")
        for op in ops:
            out = subprocess.run([sys.executable, __file__, "--child", op, path,
                                  str(a.repeat)],
                                 check=True, capture_output=True, text=True).stdout.split()
            peak, flts = int(out[0]), " / ".join(out[1:])
            print(f"  {op:10} minor faults {flts}; peak growth {peak / nbytes:.3f}x "
                  "the tensor bytes")
        return
    res = {op: [] for op in ops}
    for n in (a.small, a.large):
        path = os.path.join(a.dir, f"sd{n}.h5")
        nnh5.save_state_dict(state_dict(n), path)
        for op in ops:
            out = os.path.join(a.dir, f"{op}{n}.callgrind")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            sys.executable, __file__, "--load-only", op, path],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res[op].append(instructions(out))
    span = a.large - a.small
    print("instructions per tensor of a load (small12k shapes):")
    for op in ops:
        print(f"  {op:10} {(res[op][1] - res[op][0]) / span:10,.0f}")


if __name__ == "__main__":
    main()
