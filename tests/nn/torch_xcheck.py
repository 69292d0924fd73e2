#!/usr/bin/python3
"""tests/nn/torch_xcheck.py - nnh5's network layer against real PyTorch.

(a) A torch model (the seed MLP, a 784-512-256-10 ReLU MLP, and one with
    every activation) writes its state dict with h5py in nnh5's layout
    (key a.b -> dataset a/b, plain h5py, no nnh5 attributes); nn_run loads it
    strictly, runs the same input, and the output must match torch's
    (float32, relative error <= 1e-5). Also with float16 parameters.
(b) nn_run builds and saves a model with nnh5 (nnh5_save_model, with a
    probe); torch loads the datasets with load_state_dict(strict=True) and
    must reproduce the stored probe output.

Usage: torch_xcheck.py NN_RUN TMPDIR. Exit 77 (skip) without torch or h5py.
"""
import collections
import os
import subprocess
import sys

try:
    import h5py
    import numpy as np
    import torch
    from torch import nn
except ImportError as e:  # pragma: no cover
    print("skip:", e)
    sys.exit(77)

NN_RUN, TMP = sys.argv[1], sys.argv[2]
os.makedirs(TMP, exist_ok=True)
torch.set_num_threads(1)
failures = []


def torch_model(spec):
    """The nn.Sequential that SPEC (nn_run's syntax) describes."""
    children = collections.OrderedDict()
    for i, item in enumerate(spec.split(",")):
        name, _, rest = item.rpartition("=")
        name = name or str(i)
        t, *args = rest.split(":")
        if t == "Linear":
            mod = nn.Linear(int(args[0]), int(args[1]), bias=not (len(args) > 2 and args[2] == "nobias"))
        elif t == "Dropout":
            mod = nn.Dropout(float(args[0]))
        else:
            mod = {"ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "GELU": nn.GELU,
                   "Flatten": nn.Flatten}[t]()
        children[name] = mod
    return nn.Sequential(children).eval()


def rel_err(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) /
                 max(float(np.max(np.abs(b))), 1e-30))


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (": " + detail if detail else ""))
    if not ok:
        failures.append(what)


def part_a(label, spec, width, batch, dtype=np.float32):
    torch.manual_seed(len(spec) + batch)
    model = torch_model(spec)
    x = torch.randn(batch, width)
    path = os.path.join(TMP, label + "-in.h5")
    with h5py.File(path, "w") as f:
        for key, t in model.state_dict().items():
            f.create_dataset("state/" + key.replace(".", "/"), data=t.numpy().astype(dtype))
        f.create_dataset("input", data=x.numpy())
    if dtype != np.float32:
        # torch computes with the same rounded parameters
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.float16).to(torch.float32))
    with torch.no_grad():
        want = model(x).numpy()
    out = os.path.join(TMP, label + "-out.h5")
    r = subprocess.run([NN_RUN, "forward", spec, path, out], capture_output=True, text=True)
    if r.returncode != 0:
        check(label, False, r.stderr.strip())
        return
    with h5py.File(out, "r") as f:
        got = f["tensor"][()]
    e = rel_err(got, want)
    check(label, got.shape == want.shape and got.dtype == np.float32 and e <= 1e-5,
          "shape %s, relative error %.2e" % (got.shape, e))


def part_b(label, spec, batch):
    path = os.path.join(TMP, label + "-nnh5.h5")
    r = subprocess.run([NN_RUN, "save", spec, "7", str(batch), path], capture_output=True, text=True)
    if r.returncode != 0:
        check(label, False, r.stderr.strip())
        return
    model = torch_model(spec)
    with h5py.File(path, "r") as f:
        sd = {}
        f.visititems(lambda n, o: sd.__setitem__(n.replace("/", "."), torch.from_numpy(o[()]))
                     if isinstance(o, h5py.Dataset) and not n.startswith("nnh5_") else None)
        x = torch.from_numpy(f["nnh5_probe/input"][()])
        stored = f["nnh5_probe/output"][()]
        layers = list(f.attrs["nnh5_layers"])
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        check(label, False, str(e))
        return
    with torch.no_grad():
        got = model(x).numpy()
    e = rel_err(got, stored)
    want_layers = list(model._modules.keys())
    check(label, e <= 1e-5 and layers == want_layers,
          "strict load ok, relative error %.2e, layers %s" % (e, layers))


SEED = "hidden=Linear:20:256,relu=ReLU,output=Linear:256:10"
DEEP = "Linear:784:512,ReLU,Linear:512:256,ReLU,Linear:256:10"
ACTS = "Linear:20:64,GELU,Dropout:0.5,Linear:64:32,Tanh,Linear:32:16:nobias,Sigmoid"

for batch in (1, 2, 64):
    part_a("a-seed-b%d" % batch, SEED, 20, batch)
part_a("a-deep-b1", DEEP, 784, 1)
part_a("a-deep-b33", DEEP, 784, 33)
part_a("a-acts-b9", ACTS, 20, 9)
part_a("a-seed-float16", SEED, 20, 5, np.float16)
part_b("b-seed", SEED, 2)
part_b("b-deep", DEEP, 16)
part_b("b-acts", ACTS, 9)

if failures:
    print("%d failure(s): %s" % (len(failures), ", ".join(failures)))
    sys.exit(1)
print("all torch cross-checks passed")
