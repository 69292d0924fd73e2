#!/usr/bin/python3
"""The Fortran module against C and Python, bitwise (doc/FORTRAN.md, "Proof").

    roundtrip.py FORTRAN_CHECK FORTRAN_API C_FILES NNH5_PY_DIR WORKDIR

1. Every array of spec.py (7 dtypes x rank 0 to 4 and two empty shapes) is
   written by Fortran (the generated fortran_check), by C (fortran_c_files)
   and by Python (tools/nnh5.py, with numpy), each as one file per array and
   as one state dict; each language reads the other two's files and compares
   bitwise. Python also checks the memory-order convention element by
   element: Fortran's a(i, j) is h5py's a[j-1, i-1].
2. Two PyTorch MLPs (float32, float64) saved with nnh5.save_model run in C
   (nnh5_model_forward) and in Fortran (model, context, every OpenMP thread):
   outputs bitwise equal.
3. Error statuses and messages, and the checkpoint manager, from Fortran;
   Python reads the Fortran checkpoint.

Exit 77 (skipped) when numpy, h5py or torch are missing.
"""
import os
import shutil
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
fcheck, fapi, cfiles, pydir, work = sys.argv[1:6]
sys.path.insert(0, here)
sys.path.insert(0, pydir)
try:
    import numpy as np
    import h5py
    import torch
    import nnh5
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)
import spec  # noqa: E402

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
failures = 0


def run(*args):
    global failures
    r = subprocess.run(list(args), capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    print(f"$ {' '.join(os.path.basename(a) for a in args[:2])}: {out}")
    if r.returncode != 0:
        failures += 1


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# 1. arrays, three writers
sd = {}
for t in spec.TYPES:
    for tag in spec.SHAPES:
        a = spec.array(t, tag)
        nnh5.save(a, os.path.join(work, f"p_{t}_{tag}.h5"))
        sd[f"{t}.{tag}"] = a
nnh5.save_state_dict(sd, os.path.join(work, "p_sd.h5"))
nnh5.save(np.arange(4, dtype=np.uint8), os.path.join(work, "p_u8_r1.h5"))
run(fcheck, "write", work)
run(cfiles, "write", work)
run(fcheck, "check", work, "c")
run(fcheck, "check", work, "p")
run(cfiles, "check", work, "f")
run(cfiles, "check", work, "p")
checked = 0
for p in ("f", "c"):
    got_sd = nnh5.load_state_dict(os.path.join(work, f"{p}_sd.h5"), numpy=True)
    for t in spec.TYPES:
        for tag in spec.SHAPES:
            want = spec.array(t, tag)
            got = np.asarray(nnh5.load(os.path.join(work, f"{p}_{t}_{tag}.h5"), numpy=True))
            got_d = np.asarray(got_sd[f"{t}.{tag}"])
            for what, g in (("file", got), ("state dict", got_d)):
                if not same(g, want):
                    print(f"FAILED: Python read {p}_{t}_{tag} ({what}): {g.dtype} {g.shape}, "
                          f"want {want.dtype} {want.shape}")
                    failures += 1
                checked += 1
# the convention itself: Fortran a(i, j, k) == h5py a[k-1, j-1, i-1], element k of val()
with h5py.File(os.path.join(work, "f_i32_r3.h5"), "r") as f:
    a = f["tensor"][()]
    n1, n2, n3 = spec.SHAPES["r3"]
    for i in range(n1):
        for j in range(n2):
            for k in range(n3):
                flat = i + n1 * (j + n2 * k)   # Fortran's column-major index
                if a[k, j, i] != spec.val("i32", flat):
                    print(f"FAILED: f_i32_r3 a({i + 1},{j + 1},{k + 1}) != h5py a[{k},{j},{i}]")
                    failures += 1
print(f"Python read {checked} Fortran and C arrays bitwise")

# 2. models from PyTorch
torch.manual_seed(0)
for suffix, dtype in (("r32", torch.float32), ("r64", torch.float64)):
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                torch.nn.GELU(), torch.nn.Linear(16, 3)).to(dtype)
    nnh5.save_model(model, os.path.join(work, f"model_{suffix}.h5"))
    nnh5.save(torch.randn(5, 6, dtype=dtype).numpy(), os.path.join(work, f"x_{suffix}.h5"))
    nnh5.save(torch.randn(2, 5, 6, dtype=dtype).numpy(), os.path.join(work, f"x3_{suffix}.h5"))
    for x in ("x", "x3"):
        run(cfiles, "forward", os.path.join(work, f"model_{suffix}.h5"),
            os.path.join(work, f"{x}_{suffix}.h5"),
            os.path.join(work, f"c_{x.replace('x', 'y')}_{suffix}.h5"))
run(fapi, "forward", work)
for name in ("y_r32", "y3_r32", "y_r64"):
    c = nnh5.load(os.path.join(work, f"c_{name}.h5"), numpy=True)
    f = nnh5.load(os.path.join(work, f"f_{name}.h5"), numpy=True)
    if not same(np.asarray(c), np.asarray(f)):
        print(f"FAILED: Fortran's {name} differs from C's")
        failures += 1

# 3. errors and checkpoints
run(fapi, "errors", work)
run(fapi, "checkpoint", work)
ckdir = os.path.join(work, "ckpt")
names = sorted(n for n in os.listdir(ckdir) if n.startswith("ckpt-"))
with h5py.File(os.path.join(ckdir, names[-1]), "r") as f:
    u = f["extra/u"][()]
    # u(i, j) = 300 + 10 i + j was saved (Fortran shape (4, 3)): h5py shape (3, 4), u[j-1, i-1]
    want = np.array([[300 + 10 * i + j for i in range(1, 5)] for j in range(1, 4)], dtype=np.float64)
    if not same(u, want):
        print(f"FAILED: the Fortran checkpoint's u in h5py: {u}")
        failures += 1
if names != ["ckpt-000000000003.h5", "ckpt-000000000004.h5"]:
    print(f"FAILED: retention kept {names}")
    failures += 1

print(f"{failures} failures")
sys.exit(1 if failures else 0)
