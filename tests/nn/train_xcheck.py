#!/usr/bin/python3
"""tests/nn/train_xcheck.py - nnh5's training against real PyTorch.

(a) Gradients: train_run builds a model with every layer type, runs
    forward_train, a loss (cross-entropy or MSE) and backward, and writes
    the model, input, target, Dropout mask, output, loss and gradients.
    torch rebuilds the model from the file (nnh5_layers and each child's
    attributes), applies the same mask where the Dropout was, and autograd
    must give the same output, loss, parameter gradients and input gradient.
(b) Optimizers: train_run steps SGD or Adam over random gradients it writes
    out (halving lr halfway); torch.optim.SGD / torch.optim.Adam from the
    same initial parameters with the same gradients and the same lr change
    must end with the same parameters and the same state (momentum_buffer,
    exp_avg, exp_avg_sq, step).

Relative error max|nnh5 - torch| / max|torch| per tensor: at most 1e-12 in
float64 (1e-10 for gradients, which sum in another order) and 1e-6 in
float32 (1e-5 for gradients).

Usage: train_xcheck.py TRAIN_RUN TMPDIR. Exit 77 (skip) without torch or h5py.
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

TRAIN_RUN, TMP = sys.argv[1], sys.argv[2]
os.makedirs(TMP, exist_ok=True)
torch.set_num_threads(1)
failures = []
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + (": " + detail if detail else ""))
    if not ok:
        failures.append(what)


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-300))


def run(args):
    r = subprocess.run([TRAIN_RUN] + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())


def attr_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


class Mask(nn.Module):
    """A Dropout whose mask is given: x * mask."""

    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return x * self.mask


def torch_model(group, mask, dtype):
    """The nn.Sequential an nnh5 model group describes, with its parameters."""
    children = collections.OrderedDict()
    for name in group.attrs["nnh5_layers"]:
        name = attr_str(name)
        a = group[name].attrs
        kind = attr_str(a["nnh5_layer_type"])
        if kind == "Linear":
            mod = nn.Linear(int(a["in_features"]), int(a["out_features"]), bias=bool(a["bias"]))
        elif kind == "Flatten":
            mod = nn.Flatten(int(a["start_dim"]), int(a["end_dim"]))
        elif kind == "Dropout":
            mod = Mask(torch.from_numpy(mask))
        else:
            mod = {"ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh, "GELU": nn.GELU}[kind]()
        children[name] = mod
    model = nn.Sequential(children).to(dtype)
    with torch.no_grad():
        for key, p in model.named_parameters():
            p.copy_(torch.from_numpy(group[key.replace(".", "/")][()]))
    return model


def part_a(dtype, loss_name, batch):
    label = "grads-%s-%s-b%d" % (dtype, loss_name, batch)
    path = os.path.join(TMP, label + ".h5")
    try:
        run(["grads", dtype, loss_name, str(batch), path])
    except RuntimeError as e:
        check(label, False, str(e))
        return
    with h5py.File(path, "r") as f:
        model = torch_model(f["model"], f["mask"][()], TORCH_DTYPE[dtype])
        x = torch.from_numpy(f["input"][()]).requires_grad_(True)
        target = torch.from_numpy(f["target"][()])
        got = {k: f[k][()] for k in ("output", "loss", "grad_input")}
        got_grads = {n: f["grads/" + n.replace(".", "/")][()] for n, _ in model.named_parameters()}
    y = model(x)
    loss = (nn.CrossEntropyLoss() if loss_name == "ce" else nn.MSELoss())(y, target)
    loss.backward()
    tol, gtol = (1e-12, 1e-10) if dtype == "float64" else (1e-6, 1e-5)
    errs = {"output": rel_err(got["output"], y.detach().numpy()),
            "loss": rel_err(got["loss"], loss.item()),
            "grad_input": rel_err(got["grad_input"], x.grad.numpy())}
    for n, p in model.named_parameters():
        errs[n] = rel_err(got_grads[n], p.grad.numpy())
    bad = [k for k, e in errs.items() if e > (gtol if k not in ("output", "loss") else tol)]
    check(label, not bad, "max relative error %.2e%s" % (max(errs.values()),
                                                          ", too large: " + ", ".join(bad) if bad else ""))


def part_b(kind, dtype, hyper, steps=6):
    label = "optim-%s-%s-%s" % (kind, dtype, ",".join("%s=%s" % kv for kv in hyper.items()) or "defaults")
    path = os.path.join(TMP, label.replace(",", "_").replace("=", "") + ".h5")
    try:
        run(["optim", kind, dtype, str(steps), path] + ["%s=%r" % kv for kv in hyper.items()])
    except RuntimeError as e:
        check(label, False, str(e))
        return

    def state(group):
        out = {}
        group.visititems(lambda n, o: out.__setitem__(n.replace("/", "."), o[()])
                         if isinstance(o, h5py.Dataset) else None)
        return out

    with h5py.File(path, "r") as f:
        init = state(f["init"])
        final = state(f["final"])
        optim = state(f["optim"])
        grads = [state(f["grads_%d" % k]) for k in range(steps)]
    params = collections.OrderedDict((k, torch.from_numpy(v).clone().requires_grad_(True))
                                     for k, v in init.items())
    if kind == "sgd":
        opt = torch.optim.SGD(params.values(), lr=hyper.get("lr", 0.01),
                              momentum=hyper.get("momentum", 0.0),
                              dampening=hyper.get("dampening", 0.0),
                              weight_decay=hyper.get("weight_decay", 0.0),
                              nesterov=bool(hyper.get("nesterov", 0)))
    else:
        opt = torch.optim.Adam(params.values(), lr=hyper.get("lr", 1e-3),
                               betas=(hyper.get("beta1", 0.9), hyper.get("beta2", 0.999)),
                               eps=hyper.get("eps", 1e-8),
                               weight_decay=hyper.get("weight_decay", 0.0))
    for k in range(steps):
        for name, p in params.items():
            p.grad = torch.from_numpy(grads[k][name])
        opt.step()
        if k + 1 == steps // 2:
            for g in opt.param_groups:
                g["lr"] *= 0.5
    tol = 1e-12 if dtype == "float64" else 1e-6
    errs = {}
    for name, p in params.items():
        errs[name] = rel_err(final[name], p.detach().numpy())
        st = opt.state[p]
        for buf in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
            if buf in st and st[buf] is not None:
                errs[name + "." + buf] = rel_err(optim[name + "." + buf], st[buf].numpy())
        if kind == "adam":
            errs[name + ".step"] = 0.0 if int(optim["step"]) == int(st["step"]) else float("inf")
    errs["lr"] = rel_err(optim["lr"], opt.param_groups[0]["lr"])
    expected_bufs = len(params) * (2 if kind == "adam" else (1 if hyper.get("momentum", 0) else 0))
    have_bufs = sum(1 for k in optim if k.endswith(("momentum_buffer", "exp_avg", "exp_avg_sq")))
    bad = [k for k, e in errs.items() if e > tol]
    check(label, not bad and int(optim["step"]) == steps and have_bufs == expected_bufs,
          "max relative error %.2e over %d tensors, step %d, %d buffers%s"
          % (max(errs.values()), len(errs), int(optim["step"]), have_bufs,
             ", too large: " + ", ".join(bad) if bad else ""))


for dtype in ("float64", "float32"):
    for loss_name in ("ce", "mse"):
        for batch in (1, 4):
            part_a(dtype, loss_name, batch)

for dtype in ("float64", "float32"):
    part_b("sgd", dtype, {"lr": 0.1})
    part_b("sgd", dtype, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01})
    part_b("sgd", dtype, {"lr": 0.05, "momentum": 0.8, "nesterov": 1, "weight_decay": 0.001})
    part_b("adam", dtype, {})
    part_b("adam", dtype, {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.05})

if failures:
    print("%d failure(s): %s" % (len(failures), ", ".join(failures)))
    sys.exit(1)
print("all training cross-checks passed")
