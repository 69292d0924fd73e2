#!/usr/bin/python3
"""Models between PyTorch and the C network through tools/nnh5.py.

1. Torch models trained for a few SGD steps on random data, saved with
   nnh5.save_model (with a probe), rebuilt by the C library
   (nnh5_load_model) and run on the same input: outputs within relative
   error 1e-5 of torch's; nnh5_verify_model accepts the probe; the C
   library prints the same architecture as torch.
2. Models built and saved in C (tests/nn's nn_run), rebuilt with
   nnh5.load_model: torch reproduces the stored probe output.
3. Files from save_model have the layout of files from nnh5_save_model:
   the same objects and attributes, with the same HDF5 types.
4. Refusals: modules nnh5 cannot rebuild (named in the error), damaged or
   incomplete model files (in Python and in C).
"""
import collections
import os
import resource
import subprocess
import warnings

import pycommon as pc
from pycommon import check, expect_error, helper, np, h5py, nnh5, path

torch = pc.need_torch()
nn = torch.nn


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-30))


def train(model, x_shape, steps=8, seed=0):
    """A few SGD steps on random data (MSE to random targets); returns (first, last) loss."""
    g = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    x = torch.randn(*x_shape, generator=g, dtype=dtype)
    with torch.no_grad():
        y = torch.randn(model(x).shape, generator=g, dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses[0], losses[-1]


def c_forward(model_file, x, label):
    """Run x through the model file in C; returns (output array, printed architecture)."""
    nnh5.save(x, path(label + "-in.h5"))
    p = helper("model-forward", model_file, path(label + "-in.h5"), path(label + "-out.h5"))
    if p.returncode:
        return None, ""
    return nnh5.load(path(label + "-out.h5"), numpy=True), p.stdout.strip()


def python_to_c(label, model, x_shape, dtype=torch.float32):
    model = model.to(dtype)
    if any(nn.parameter.is_lazy(p) for p in model.parameters()):
        with torch.no_grad():  # infer the lazy widths before training
            model(torch.zeros(*x_shape, dtype=dtype))
    first, last = train(model, x_shape)
    check(last < first, f"{label}: training lowers the loss", f"{first} -> {last}")
    model.train()
    g = torch.Generator().manual_seed(99)
    probe = torch.randn(2, *x_shape[1:], generator=g, dtype=dtype)
    f = path(label + ".h5")
    nnh5.save_model(model, f, probe_input=probe)
    check(model.training, f"{label}: save_model restores the training flag")
    model.eval()
    x = torch.randn(*x_shape, generator=g, dtype=dtype)
    with torch.no_grad():
        want = model(x).numpy()
    got, arch = c_forward(f, x, label)
    if got is None:
        return
    e = rel_err(got, want)
    check(got.shape == want.shape and got.dtype == want.dtype and e <= 1e-5,
          f"{label}: C output matches torch", f"shape {got.shape} {got.dtype}, rel err {e:.2e}")
    check(arch == repr(model), f"{label}: C prints torch's architecture",
          f"\n{arch}\nvs\n{model!r}")
    p = helper("model-verify", f)
    fields = p.stdout.split()
    if check(len(fields) == 6, f"{label}: verify output", p.stdout):
        stored = nnh5.load(f, numpy=True)  # the parameters; the probe output for the scale
        with h5py.File(f) as h:
            scale = float(np.max(np.abs(h["nnh5_probe/output"][()])))
        check(float(fields[3]) <= 1e-5 * scale, f"{label}: nnh5_verify_model accepts the probe",
              p.stdout.strip())
        check(len(stored) == len(model.state_dict()), f"{label}: load() gives the parameters")
    # the module reloads itself in torch, bitwise
    back = nnh5.load_model(f)
    check(repr(back) == repr(model) and not back.training, f"{label}: load_model rebuilds it",
          repr(back))
    with torch.no_grad():
        check(torch.equal(back(x), model(x)), f"{label}: load_model gives the same outputs")
    return e


def c_to_python(label, spec, batch):
    f = path(label + "-c.h5")
    p = subprocess.run([pc.NN_RUN, "save", spec, "7", str(batch), f], capture_output=True,
                       text=True)
    if not check(p.returncode == 0, f"{label}: nn_run save", p.stderr):
        return
    model = nnh5.load_model(f)
    with h5py.File(f) as h:
        x = torch.from_numpy(h["nnh5_probe/input"][()])
        stored = h["nnh5_probe/output"][()]
        layers = [s.decode() if isinstance(s, bytes) else s for s in h.attrs["nnh5_layers"]]
    with torch.no_grad():
        got = model(x).numpy()
    e = rel_err(got, stored)
    check(got.shape == stored.shape and e <= 1e-5, f"{label}: torch reproduces C's probe output",
          f"rel err {e:.2e}")
    check(list(model._modules) == layers, f"{label}: children named as in C", str(layers))
    return e


def structure(f):
    """{object path: (kind, dtype, shape, {attribute: (HDF5 class, size, shape)})} of a file."""
    out = {}

    def attrs(obj):
        r = {}
        for name in obj.attrs:
            if name == "nnh5_writer":
                continue
            aid = obj.attrs.get_id(name)
            t = aid.get_type()
            r[name] = (t.get_class(), t.get_size() if t.get_class() != h5py.h5t.STRING
                       else h5py.check_string_dtype(aid.dtype), aid.shape)
        return r

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = ("dataset", obj.dtype.str, obj.shape,
                         obj.id.get_create_plist().get_layout(), attrs(obj))
        else:
            out[name] = ("group", attrs(obj))

    with h5py.File(f) as h:
        out["/"] = ("group", attrs(h))
        h.visititems(visit)
    return out


def same_layout(label, spec, model):
    """save_model writes what nnh5_save_model writes for the same architecture."""
    fc, fp = path(label + "-layout-c.h5"), path(label + "-layout-py.h5")
    p = subprocess.run([pc.NN_RUN, "save", spec, "3", "4", fc], capture_output=True, text=True)
    if not check(p.returncode == 0, f"{label}: nn_run save", p.stderr):
        return
    nnh5.save_model(model, fp, probe_input=torch.randn(4, model[0].in_features
                                                      if isinstance(model[0], nn.Linear) else 20))
    a, b = structure(fc), structure(fp)
    check(a == b, f"{label}: save_model's layout is nnh5_save_model's",
          "\n".join(f"  {k}: C {a.get(k)} / Python {b.get(k)}" for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)))


def refusals():
    f = path("refused.h5")

    class Custom(nn.Module):
        def forward(self, x):
            return x

    class MyLinear(nn.Linear):
        pass

    for what, model, words in (
            ("conv", nn.Sequential(nn.Linear(4, 4), nn.Conv2d(1, 1, 3)), ["'1'", "Conv2d"]),
            ("gelu tanh", nn.Sequential(collections.OrderedDict(act=nn.GELU(approximate="tanh"))),
             ["'act'", "approximate='tanh'"]),
            ("nested", nn.Sequential(nn.Sequential(nn.ReLU())), ["'0'", "Sequential"]),
            ("custom child", nn.Sequential(nn.ReLU(), Custom()), ["'1'", "Custom"]),
            ("Linear subclass", nn.Sequential(MyLinear(2, 3)), ["'0'", "MyLinear"]),
            ("not Sequential", Custom(), ["Custom", "not a torch.nn.Sequential"]),
            ("float16", nn.Sequential(nn.Linear(2, 3)).half(), ["float16", "float32 or float64"]),
            ("mixed dtypes", nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3).double()),
             ["float64", "one dtype"])):
        expect_error(lambda: nnh5.save_model(model, f), nnh5.UnsupportedError, words,
                     f"save_model refuses {what}")
    expect_error(lambda: nnh5.save_model(nn.Sequential(nn.Linear(3, 2)), f,
                                         probe_input=torch.zeros(2, 5)),
                 nnh5.InvalidError, ["probe", "(2, 5)"], "save_model: a probe of the wrong width")
    expect_error(lambda: nnh5.save_model(nn.Sequential(collections.OrderedDict(
        nnh5_x=nn.ReLU())), f), nnh5.InvalidError, ["nnh5_x"], "save_model: a reserved name")
    check(not os.path.exists(f), "refusals write nothing")

    # damaged or incomplete model files: Python and C refuse them alike
    good = path("good-model.h5")
    model = nn.Sequential(collections.OrderedDict(hidden=nn.Linear(4, 8), relu=nn.ReLU(),
                                                  output=nn.Linear(8, 2)))
    nnh5.save_model(model, good, probe_input=torch.randn(3, 4))
    nnh5.save(torch.zeros(3, 4), path("x4.h5"))

    def damaged(what, edit, words, exc=nnh5.FormatError):
        g = path(f"damaged-{what.replace(' ', '_')}.h5")
        with open(good, "rb") as src, open(g, "wb") as dst:
            dst.write(src.read())
        with h5py.File(g, "r+") as h:
            edit(h)
        expect_error(lambda: nnh5.load_model(g), exc, words, f"load_model refuses {what}")
        p = helper("model-forward", g, path("x4.h5"), path("unused.h5"), check_rc=False)
        check(p.returncode == 1 and exc.status in p.stderr,
              f"C refuses {what} too", p.stderr.strip())

    damaged("an unknown layer type", lambda h: h["relu"].attrs.__setitem__(
        "nnh5_layer_type", "Swish"), ["'relu'", "unknown layer type 'Swish'"])
    damaged("a missing parameter", lambda h: h["output"].__delitem__("bias"),
            ["missing keys: 'output.bias'"], nnh5.ShapeError)
    damaged("a mis-shaped parameter", lambda h: (h["hidden"].__delitem__("bias"),
                                                 h["hidden"].create_dataset("bias", (9,), "f4")),
            ["'hidden.bias'", "(8,)", "(9,)"], nnh5.ShapeError)
    damaged("an unexpected parameter", lambda h: h["relu"].create_dataset("weight", (2,), "f4"),
            ["unexpected keys: 'relu.weight'"], nnh5.ShapeError)
    damaged("a missing hyperparameter", lambda h: h["hidden"].attrs.__delitem__("in_features"),
            ["'hidden'", "in_features"])
    damaged("a missing child group", lambda h: h.attrs.__setitem__(
        "nnh5_layers", np.array(["hidden", "relu", "output", "extra"], dtype=object)),
        ["'extra'"])
    damaged("no layer type", lambda h: h["relu"].attrs.__delitem__("nnh5_layer_type"),
            ["'relu'", "nnh5_layer_type"])
    # a forged architecture: declared sizes far beyond the stored weights, refused before
    # anything is allocated (1.6 GB and seconds before the fix), in Python and in C
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for what, size in (("Linear(20000, 20000)", 20000), ("an overflowing size", 2**62)):
        damaged(f"a forged {what}", lambda h: (h["output"].attrs.modify("in_features", size),
                                               h["output"].attrs.modify("out_features", size)),
                ["'output'", f"Linear(in_features={size}, out_features={size})",
                 "stores 'output.weight' as (2, 8)", "refused before allocating"],
                nnh5.ShapeError)
    damaged("a forged Linear without its weight", lambda h: (
        h["hidden"].attrs.modify("in_features", 20000),
        h["hidden"].attrs.modify("out_features", 20000), h["hidden"].__delitem__("weight")),
        ["'hidden'", "has no parameter 'hidden.weight'"], nnh5.ShapeError)
    damaged("a forged LazyLinear", lambda h: (
        h["output"].attrs.__setitem__("nnh5_layer_type", "LazyLinear"),
        h["output"].attrs.modify("out_features", 20000)),
        ["'output'", "LazyLinear(out_features=20000)", "(2, 8)"], nnh5.ShapeError)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    check(grown < 100 * 1024, "forged architectures allocate nothing",
          f"peak resident memory grew by {grown} KiB")
    nnh5.save_state_dict(model.state_dict(), path("plain-sd.h5"))
    expect_error(lambda: nnh5.load_model(path("plain-sd.h5")), nnh5.FormatError,
                 ["state_dict, not a model"], "load_model refuses a plain state dict")


def lazy_without_probe():
    f = path("lazy.h5")
    model = nn.Sequential(nn.LazyLinear(6), nn.ReLU(), nn.LazyLinear(2, bias=False))
    nnh5.save_model(model, f)
    with h5py.File(f) as h:
        check(h["0"].attrs["nnh5_layer_type"] == "LazyLinear" and h["0"].attrs["in_features"] == -1
              and h["2"].attrs["bias"] == 0 and len(h["0"]) == 0,
              "a lazy LazyLinear is saved as LazyLinear with in_features -1, no parameters")
    back = nnh5.load_model(f)
    check(type(back[0]) is nn.LazyLinear and back[0].out_features == 6,
          "load_model rebuilds a LazyLinear lazy", repr(back))
    got, arch = c_forward(f, torch.randn(3, 5), "lazy")
    check(got is not None and got.shape == (3, 2), "C rebuilds the lazy model and runs it",
          f"{None if got is None else got.shape}")


def main():
    warnings.filterwarnings("ignore", "Lazy modules are a new feature")
    errs = []
    torch.manual_seed(0)
    seed_mlp = nn.Sequential(collections.OrderedDict(
        hidden=nn.Linear(20, 256), relu=nn.ReLU(), output=nn.Linear(256, 10)))
    acts = nn.Sequential(nn.Flatten(), nn.Linear(20, 64), nn.GELU(), nn.Dropout(0.5),
                         nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 16, bias=False),
                         nn.Sigmoid(), nn.ReLU())
    lazy = nn.Sequential(collections.OrderedDict(
        enc=nn.LazyLinear(32), act=nn.ReLU(), head=nn.LazyLinear(3)))
    for label, model, shape, dtype in (
            ("seed-mlp", seed_mlp, (64, 20), torch.float32),
            ("activations", acts, (9, 4, 5), torch.float32),
            ("lazy", lazy, (5, 12), torch.float32),
            ("deep-float64", nn.Sequential(nn.Linear(30, 128), nn.ReLU(), nn.Linear(128, 128),
                                           nn.Sigmoid(), nn.Linear(128, 4)), (17, 30),
             torch.float64)):
        pc.run_part(lambda: errs.append(python_to_c(label, model, shape, dtype)))
    for label, spec, batch in (
            ("c-seed", "hidden=Linear:20:256,relu=ReLU,output=Linear:256:10", 2),
            ("c-deep", "Linear:784:512,ReLU,Linear:512:256,ReLU,Linear:256:10", 16),
            ("c-acts", "Linear:20:64,GELU,Dropout:0.5,Linear:64:32,Tanh,Linear:32:16:nobias,"
             "Sigmoid", 9),
            ("c-lazy", "Flatten,Linear:12:16,ReLU,LazyLinear:8,Tanh", 5)):
        pc.run_part(lambda: errs.append(c_to_python(label, spec, batch)))
    pc.run_part(lambda: same_layout(
        "seed", "hidden=Linear:20:256,relu=ReLU,output=Linear:256:10",
        nn.Sequential(collections.OrderedDict(hidden=nn.Linear(20, 256), relu=nn.ReLU(),
                                              output=nn.Linear(256, 10)))))
    pc.run_part(lambda: same_layout(
        "acts", "Linear:20:64,GELU,Dropout:0.5,Linear:64:32,Tanh,Linear:32:16:nobias,Sigmoid,"
        "Flatten", nn.Sequential(nn.Linear(20, 64), nn.GELU(), nn.Dropout(0.5), nn.Linear(64, 32),
                                 nn.Tanh(), nn.Linear(32, 16, bias=False), nn.Sigmoid(),
                                 nn.Flatten())))
    pc.run_part(refusals)
    pc.run_part(lazy_without_probe)
    errs = [e for e in errs if e is not None]
    if errs:
        print(f"largest relative error between torch and C: {max(errs):.2e} over "
              f"{len(errs)} models")
    pc.finish("test_models")


if __name__ == "__main__":
    main()
