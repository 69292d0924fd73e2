#!/usr/bin/python3
"""bench/peers.py - torch.save/torch.load and h5py on the tensors io_bench saved.

io_bench runs this with Debian's /usr/bin/python3:
    peers.py --reps N --dir DIR ID=FILE.h5 ...
Each FILE.h5 is an nnh5 state dict; its tensors (same bytes, same keys, same
order) are loaded once with h5py, then every round times, after os.sync():
torch.save of the state dict (into a new file: the previous round's is
removed first, untimed), torch.load of it, an h5py write in nnh5's
layout (one dataset per key, one group per module level) and an h5py read of
every dataset into numpy. Prints "RESULT ID OP MEDIAN_MS PEAK_EXTRA_BYTES"
lines. Peak memory is measured as io_bench measures it: once per operation
in a fresh process (this script run with --measure), the peak resident size
during the operation (VmHWM, reset through /proc/self/clear_refs) minus the
resident size before it; -1 when unknown. Prints nothing if torch or h5py
is missing.
"""
import argparse
import gc
import os
import statistics
import subprocess
import sys
import time

try:
    import h5py
    import numpy as np
    import torch
except ImportError:
    sys.exit(0)


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_state_dict(path):
    """The nnh5 state dict at path as {dotted key: torch tensor}, in stored order."""
    out = {}
    with h5py.File(path, "r") as f:
        keys = [k.decode() if isinstance(k, bytes) else k for k in f.attrs["nnh5_keys"]]
        for k in keys:
            out[k] = torch.from_numpy(f[k.replace(".", "/")][()])
    return out


def h5py_write(sd, path):
    with h5py.File(path, "w", track_order=True) as f:
        for k, v in sd.items():
            f.create_dataset(k.replace(".", "/"), data=v.numpy())


def h5py_read(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def operations(sd, wid, folder):
    """The four timed operations on sd, and the file each save writes."""
    tpath = os.path.join(folder, wid + ".pt")
    hpath = os.path.join(folder, wid + ".h5py.h5")
    ops = {
        "torch.save": lambda: torch.save(sd, tpath),
        "torch.load": lambda: torch.load(tpath),
        "h5py.write": lambda: h5py_write(sd, hpath),
        "h5py.read": lambda: h5py_read(hpath),
    }
    return ops, {"torch.save": tpath, "h5py.write": hpath}


def run_once(fn, target):
    """fn() after removing target (saves write a new file, as in io_bench) and os.sync()."""
    gc.collect()
    if target and os.path.exists(target):
        os.unlink(target)
    os.sync()
    t0 = time.perf_counter()
    result = fn()
    t1 = time.perf_counter()
    return (t1 - t0) * 1e3, result


def measure(wid, path, folder, op):
    """Print the bytes operation op added at its peak, in this fresh process."""
    sd = read_state_dict(path)
    ops, targets = operations(sd, wid, folder)
    if not reset_peak():
        print(-1)
        return
    before = status_kib("VmRSS:")
    run_once(ops[op], targets.get(op))
    print((status_kib("VmHWM:") - before) * 1024)


def peak_extra(wid, path, folder, op):
    out = subprocess.run([sys.executable, __file__, "--dir", folder, "--measure", op,
                          "%s=%s" % (wid, path)], capture_output=True, text=True)
    try:
        return int(out.stdout.split()[-1])
    except (IndexError, ValueError):
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--dir", default=".")
    ap.add_argument("--measure", help="print the peak memory of one operation")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.measure:
        wid, path = a.files[0].split("=", 1)
        measure(wid, path, a.dir, a.measure)
        return
    for spec in a.files:
        wid, path = spec.split("=", 1)
        sd = read_state_dict(path)
        ops, targets = operations(sd, wid, a.dir)
        times = {k: [] for k in ops}
        for r in range(a.reps + 1):  # round 0 warms up
            for name, fn in ops.items():
                ms, result = run_once(fn, targets.get(name))
                del result
                if r > 0:
                    times[name].append(ms)
        del sd
        for name in ops:
            print("RESULT %s %s %.4f %d" % (wid, name, statistics.median(times[name]),
                                            peak_extra(wid, path, a.dir, name)), flush=True)


if __name__ == "__main__":
    main()
