#!/usr/bin/python3
"""bench/py_instructions.py - instructions and HDF5 calls per tensor of tools/nnh5.py.

    /usr/bin/python3 bench/py_instructions.py [--tools DIR] [--dir DIR] [--small N] [--large M]

Runs save_state_dict() and load_state_dict(numpy=True) of state dicts shaped
like bench/workloads.py's small12k (keys model.layers.I.pJ and the Adam
moments' optim.exp_avg(_sq).layers.I.pJ, 64 to 1,024 float32 each; numpy
values, so that torch is not imported) under valgrind's callgrind, once
with N and once with M tensors, and prints per tensor, (count at M - count
at N) / (M - N): the instructions executed and the calls of each public
HDF5 function (H5Dcreate2, H5Oget_info, ...). The start-up cost of Python,
h5py and the file cancels out. Instruction and call counts do not depend
on the machine's load: this one may run beside other work. --tools picks
the nnh5.py to measure (default: this checkout's tools/). The module's
backend is its usual choice (doc/PYTHON.md, "The C library"): set
NNH5_LIBRARY=build/lib/libnnh5.so to measure it over the C library,
NNH5_PYTHON_PURE=1 over h5py alone; the first line printed says which.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

SIZES = [64, 128, 256, 512, 1024]
PUBLIC = re.compile(r"^H5[A-Z]+[a-z]")  # H5Dcreate2, H5Pget_layout; not H5D__create, H5P_get


def state_dict(n):
    import numpy as np
    sd = {}
    for i in range(n // 3):
        name = f"layers.{i // 10}.p{i % 10}"
        for prefix in ("model.", "optim.exp_avg.", "optim.exp_avg_sq."):
            sd[prefix + name] = np.full(SIZES[i % len(SIZES)], i, dtype=np.float32)
    return sd


def child(tools, op, n, path):
    """One operation, in the process valgrind runs."""
    sys.path.insert(0, tools)
    import nnh5
    if op == "save":
        nnh5.save_state_dict(state_dict(n), path)
    else:
        nnh5.load_state_dict(path, numpy=True)


def counts(out):
    """(instructions, {function: calls}) from a callgrind output file."""
    names, calls, total, callee = {}, collections.Counter(), 0, None
    with open(out) as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if line.startswith("cfn="):
                    callee = names.get(m.group(1))
            elif line.startswith("calls=") and callee:
                calls[callee] += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    return total, calls


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", default=os.path.join(here, "..", "tools"))
    ap.add_argument("--dir", default="/tmp/nnh5-py-instructions")
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--large", type=int, default=600)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.tools, a.child[0], int(a.child[1]), a.child[2])
        return
    os.makedirs(a.dir, exist_ok=True)
    sys.path.insert(0, a.tools)
    import nnh5
    print("tools/nnh5.py over %s (%s)" % nnh5.backend())
    for op in ("save", "load"):
        res = []
        for n in (a.small, a.large):
            h5 = os.path.join(a.dir, f"sd{n}.h5")
            if op == "load":  # the file to load, written outside valgrind
                child(a.tools, "save", n, h5)
            out = os.path.join(a.dir, f"{op}{n}.callgrind")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            sys.executable, __file__, "--tools", a.tools,
                            "--child", op, str(n), h5],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res.append(counts(out))
        span = a.large - a.small
        per = {k: (res[1][1][k] - res[0][1][k]) / span
               for k in set(res[0][1]) | set(res[1][1]) if PUBLIC.match(k)}
        per = {k: v for k, v in per.items() if abs(v) >= 0.01}
        print(f"{op}: {(res[1][0] - res[0][0]) / span:,.0f} instructions and "
              f"{sum(per.values()):.1f} HDF5 API calls per tensor")
        for k, v in sorted(per.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {v:8.2f} {k}")


if __name__ == "__main__":
    main()
