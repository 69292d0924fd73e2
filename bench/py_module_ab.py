#!/usr/bin/python3
"""bench/py_module_ab.py - two versions of tools/nnh5.py against torch, in one process.

    git show REV:tools/nnh5.py > /tmp/nnh5_before.py
    MALLOC_MMAP_THRESHOLD_=131072 NNH5_LIBRARY=build/lib/libnnh5.so \\
        /usr/bin/python3 bench/py_module_ab.py /tmp/nnh5_before.py tools/nnh5.py \\
        [--op load|save|save-nondurable] [--reps 8]

bench/workloads.py's small12k state dict (12,000 float32 tensors of 64 to 1,024
elements), with each module file and with torch, interleaved round by round (a warm-up
round first, not counted): --op load (the default) times load_state_dict() against
torch.load; --op save times save_state_dict() (durable) against torch.save + fsync
(bench/workloads.py's peer); --op save-nondurable times save_state_dict(...,
durable=False) against torch.save (neither fsyncs). Prints the median and range of each in ms and each
module's ratio torch / module. MALLOC_MMAP_THRESHOLD_ as bench/workloads.py sets it:
fresh memory for every operation. Quiet machine only.
"""
import argparse
import importlib.util
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--op", choices=["load", "save", "save-nondurable"], default="load")
    ap.add_argument("--dir", default="/tmp/nnh5-workloads")
    args = ap.parse_args()
    sys.argv = sys.argv[:1]  # bench/workloads.py parses nothing at import
    sys.path[:0] = [HERE, os.path.join(HERE, "..", "tools")]
    import torch
    import workloads
    mods = {"before": module("nnh5_before", args.before),
            "after": module("nnh5_after", args.after)}
    sd = workloads.small12k()
    os.makedirs(args.dir, exist_ok=True)
    h5, pt = os.path.join(args.dir, "ab.h5"), os.path.join(args.dir, "ab.pt")
    mods["after"].save_state_dict(sd, h5)
    torch.save(sd, pt)
    if args.op == "load":
        ops = [("before", lambda: mods["before"].load_state_dict(h5)),
               ("after", lambda: mods["after"].load_state_dict(h5)),
               ("torch.load", lambda: torch.load(pt))]
    elif args.op == "save":
        ops = [("before", lambda: mods["before"].save_state_dict(sd, h5)),
               ("after", lambda: mods["after"].save_state_dict(sd, h5)),
               ("torch.save+fsync", lambda: workloads.torch_save(sd, pt))]
    else:
        ops = [("before", lambda: mods["before"].save_state_dict(sd, h5, durable=False)),
               ("after", lambda: mods["after"].save_state_dict(sd, h5, durable=False)),
               ("torch.save", lambda: torch.save(sd, pt))]
    peer = ops[2][0]
    times = {name: [] for name, _ in ops}
    for rnd in range(args.reps + 1):
        for name, fn in (ops if rnd % 2 == 0 else ops[::-1]):
            os.sync()
            t0 = time.perf_counter()
            r = fn()
            ms = (time.perf_counter() - t0) * 1e3
            del r
            if rnd:
                times[name].append(ms)
    torch_ms = statistics.median(times[peer])
    for name, xs in times.items():
        m = statistics.median(xs)
        print(f"{name}: {m:.1f} ms ({min(xs):.1f}-{max(xs):.1f})"
              + ("" if name == peer else f", {torch_ms / m:.2f}x {peer}"))


if __name__ == "__main__":
    main()
