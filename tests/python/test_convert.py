#!/usr/bin/python3
"""tools/nnh5-convert: PyTorch .pt files to nnh5 and back.

- A state dict of every torch dtype (NaN payloads, -0.0, scalars, empty and
  non-contiguous tensors, nested keys) saved with torch.save, converted to
  nnh5 and back, loads as the identical state dict (bitwise, same key order);
  the C library reads the converted file with every checksum verified.
- Checkpoint dicts: the state dict under 'state_dict', 'model' or --key.
- A whole pickled module, a pickle with code in it and entries that are not
  tensors are refused (the code does not run); the output file is written
  atomically (a refused conversion keeps the previous file, leaves nothing).
- The script finds nnh5.py beside itself when copied or symlinked elsewhere.
"""
import collections
import contextlib
import io
import os
import shutil
import subprocess

import pycommon as pc
from pycommon import check, helper, nnh5, path

torch = pc.need_torch()
CONVERT = os.path.join(pc.TOOLS, "nnh5-convert")


CONVERTER = pc.load_converter()


def convert(*args, cli=False):
    """Run the converter (in this process, or as a command with cli=True)."""
    if cli:
        return subprocess.run([CONVERT, *map(str, args)], capture_output=True, text=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = CONVERTER.main([str(a) for a in args])
        except SystemExit as e:  # argparse
            rc = e.code
    return subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())


def expect_refused(args, words, what, output=None, cli=False):
    p = convert(*args, cli=cli)
    check(p.returncode == 1 and all(w in p.stderr for w in words), what,
          f"exit {p.returncode}: {p.stderr.strip()}")
    if output:
        check(not os.path.exists(output), f"{what}: no output file")


class Marker:
    """Unpickling this creates a file: proof that code in a pickle ran."""

    def __init__(self, where):
        self.where = where

    def __reduce__(self):
        return (open, (self.where, "w"))


def main():
    sd = pc.torch_corpus(seed=11)
    for ext in (".pt", ".pth"):
        src, mid, dst = path("sd" + ext), path(f"sd{ext}.h5"), path("back" + ext)
        torch.save(sd, src)
        p = convert("from-torch", src, mid, cli=ext == ".pt")
        check(p.returncode == 0 and f"{len(sd)} tensors" in p.stdout, f"from-torch {ext}",
              p.stderr)
        check("CVE-2025-32434" in p.stderr and "pickle" in p.stderr,
              "from-torch says pickle files are unsafe", p.stderr)
        p = convert("to-torch", mid, dst)
        check(p.returncode == 0, f"to-torch {ext}", p.stderr)
        back = torch.load(dst, weights_only=True)  # the output needs no trust
        pc.same_tensors(torch.load(src, weights_only=True), back, f".pt -> nnh5 -> .pt ({ext})")
        check(isinstance(back, collections.OrderedDict), "to-torch writes an OrderedDict")
        dump = pc.parse_dump(helper("dump", "state_dict", mid, "require").stdout)
        check([d[0] for d in dump] == list(sd), "C reads the converted file in key order")
        check(all(d[1:3] + (d[4],) == pc.bits(sd[d[0]]) for d in dump),
              "C reads the converted file bitwise")
    q = convert("from-torch", "-q", path("sd.pt"), path("quiet.h5"))
    check(q.returncode == 0 and q.stdout == "" and q.stderr == "", "-q prints nothing",
          q.stdout + q.stderr)

    # checkpoints: the state dict inside a dict
    small = collections.OrderedDict((k, v) for k, v in sd.items() if k.startswith("float32"))
    for name, obj, extra in (("state_dict", {"state_dict": small, "epoch": 3}, []),
                             ("model", {"model": small, "step": 7}, []),
                             ("key", {"ema": small, "best": small}, ["--key", "ema"])):
        torch.save(obj, path(f"ck_{name}.pt"))
        p = convert("from-torch", *extra, path(f"ck_{name}.pt"), path(f"ck_{name}.h5"))
        check(p.returncode == 0, f"checkpoint with '{name}'", p.stderr)
        if p.returncode == 0:
            pc.same_tensors(small, nnh5.load_state_dict(path(f"ck_{name}.h5")),
                            f"checkpoint with '{name}'")
    expect_refused(["from-torch", "--key", "nope", path("ck_key.pt"), path("nope.h5")],
                   ["no entry 'nope'", "'ema'"], "--key names a missing entry", path("nope.h5"))

    # a model file's parameters (the probe is not part of them)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    nnh5.save_model(model, path("model.h5"), probe_input=torch.randn(2, 4))
    p = convert("to-torch", path("model.h5"), path("model.pt"))
    if check(p.returncode == 0, "to-torch of a model file", p.stderr):
        pc.same_tensors(model.state_dict(), torch.load(path("model.pt")), "model file -> .pt")
        fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        try:
            fresh.load_state_dict(torch.load(path("model.pt")))  # strict
            err = ""
        except RuntimeError as e:
            err = str(e)
        check(not err, "the converted parameters load into the module strictly", err)

    # refusals: nothing written, nothing run, a previous output kept
    with open(path("keep.h5"), "wb") as fp:
        fp.write(b"previous content")
    marker = path("pickle-code-ran")
    torch.save({"w": torch.zeros(2), "x": Marker(marker)}, path("evil.pt"))
    expect_refused(["from-torch", path("evil.pt"), path("keep.h5")],
                   ["weights_only=True", "refused"], "a pickle with code in it is refused",
                   cli=True)
    check(not os.path.exists(marker), "the pickle's code did not run")
    torch.save(model, path("module.pt"))
    expect_refused(["from-torch", path("module.pt"), path("keep.h5")], ["weights_only"],
                   "a pickled module is refused without --trust-pickle")
    torch.save({"w": torch.zeros(2), "name": "text"}, path("text.pt"))
    expect_refused(["from-torch", path("text.pt"), path("keep.h5")],
                   ["entry 'name'", "not a tensor"], "an entry that is not a tensor is refused")
    torch.save({"a": torch.zeros(2), "a.b": torch.zeros(2)}, path("conflict.pt"))
    expect_refused(["from-torch", path("conflict.pt"), path("keep.h5")],
                   ["'a' and 'a.b' conflict"], "keys nnh5 cannot store are refused")
    torch.save({"c": torch.quantize_per_tensor(torch.zeros(2), 0.1, 0, torch.qint8)},
               path("quantized.pt"))
    expect_refused(["from-torch", "--trust-pickle", path("quantized.pt"), path("keep.h5")],
                   ["'c'", "qint8"], "a dtype nnh5 does not store is refused")
    with open(path("empty.pt"), "wb"):
        pass
    expect_refused(["from-torch", path("empty.pt"), path("keep.h5")],
                   ["not a file torch.load reads"], "an empty file is refused")
    p = convert("from-torch")
    check(p.returncode == 2 and "usage" in p.stderr, "usage errors exit 2", p.stderr)
    expect_refused(["to-torch", path("evil.pt"), path("keep.h5")],
                   ["not an HDF5 file"], "to-torch refuses a file that is not HDF5")
    with open(path("keep.h5"), "rb") as fp:
        check(fp.read() == b"previous content", "refused conversions keep the previous output")
    check(not [f for f in pc.files_in(pc.TMP) if nnh5.TMP_MARK in f],
          "refused conversions leave no temporary file", str(pc.files_in(pc.TMP)))
    p = convert("from-torch", "--trust-pickle", path("module.pt"), path("module.h5"))
    if check(p.returncode == 0, "--trust-pickle converts a pickled module", p.stderr):
        pc.same_tensors(model.state_dict(), nnh5.load_state_dict(path("module.h5")),
                        "pickled module -> nnh5")

    # installed elsewhere: nnh5.py beside the script, also through a symlink
    bindir, other = path("bin"), path("elsewhere")
    os.makedirs(bindir)
    os.makedirs(other)
    for f in ("nnh5-convert", "nnh5.py"):
        shutil.copy(os.path.join(pc.TOOLS, f), bindir)
    os.symlink(os.path.join(bindir, "nnh5-convert"), os.path.join(other, "nnh5-convert"))
    for exe in (os.path.join(bindir, "nnh5-convert"), os.path.join(other, "nnh5-convert")):
        p = subprocess.run([exe, "to-torch", path("sd.pt.h5"), path("copy.pt")],
                           capture_output=True, text=True, cwd="/",
                           env=dict(os.environ, PYTHONPATH=""))
        check(p.returncode == 0, f"runs as {exe}", p.stderr)
    pc.finish("test_convert")


if __name__ == "__main__":
    main()
