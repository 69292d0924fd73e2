#!/usr/bin/python3
"""Tests of the nnh5 command-line tool: golden outputs, exit codes, JSON,
damaged files, plain h5py files and hostile names.

usage: run_tool_tests.py NNH5 MKFILES WORKDIR GOLDENDIR [--update]
Files are made in WORKDIR (by the mkfiles helper and by h5py) and every
command runs there with relative names, so outputs hold no temporary paths.
--update rewrites the golden files (inspect them before committing).
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

nnh5, mkfiles, work, golden = (os.path.abspath(a) for a in sys.argv[1:5])
update = "--update" in sys.argv[5:]
failures = []


def run(*args, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([nnh5, *args], cwd=work, capture_output=True, env=e, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def expect(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name} {detail}")
    else:
        print(f"ok   {name}")


def gold(name, args, code):
    rc, out, err = run(*args)
    expect(f"{name} exit {code}", rc == code, f"got {rc}; stderr: {err}")
    path = os.path.join(golden, name + ".txt")
    if update:
        with open(path, "w") as f:
            f.write(out)
        return
    with open(path) as f:
        want = f.read()
    expect(f"{name} golden", out == want, "\n--- want\n" + want + "--- got\n" + out)


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
subprocess.run([mkfiles, work], check=True)

# A plain h5py file: no nnh5 attributes, a string dataset, big-endian data,
# nested groups, links of every kind, a cycle and hostile names.
with h5py.File(os.path.join(work, "plain.h5"), "w") as f:
    f["weights"] = np.arange(6, dtype=">f8").reshape(2, 3)
    f["labels"] = np.array([b"cat", b"dog"])
    g = f.create_group("enc")
    g["w"] = np.ones((2, 2), dtype=np.int16)
    g["loop"] = f["enc"]  # a hard link back to itself
    f["soft"] = h5py.SoftLink("/enc")
    f["ext"] = h5py.ExternalLink("/etc/passwd", "/x")
    f["evil\x1b[31mred\x07"] = np.zeros(1, dtype=np.float32)
    f[b"bad\xff"] = np.zeros(1)  # not UTF-8

with open(os.path.join(work, "model.h5"), "rb") as f:
    data = f.read()
with open(os.path.join(work, "truncated.h5"), "wb") as f:
    f.write(data[: len(data) // 2])
with open(os.path.join(work, "random.h5"), "wb") as f:
    f.write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())

gold("ls-model", ["ls", "model.h5"], 0)
gold("ls-dict", ["ls", "dict.h5"], 0)
gold("ls-subpath", ["ls", "model.h5", "hidden"], 0)
gold("ls-plain", ["ls", "plain.h5"], 0)
gold("show-weight", ["show", "model.h5", "hidden/weight"], 0)
gold("show-specials", ["show", "dict.h5", "specials"], 0)
gold("show-big", ["show", "dict.h5", "big"], 0)
gold("show-full", ["show", "--full", "dict.h5", "ints"], 0)
gold("show-plain", ["show", "plain.h5", "weights"], 0)
gold("diff-same", ["diff", "model.h5", "model.h5"], 0)
gold("diff-models", ["diff", "model.h5", "model2.h5"], 1)
gold("diff-atol", ["diff", "--atol", "0.01", "model.h5", "model2.h5"], 0)
gold("diff-kinds", ["diff", "model.h5", "dict.h5"], 1)
gold("verify-model", ["verify", "model.h5"], 0)
gold("verify-plain", ["verify", "plain.h5"], 0)

# --json parses back and describes every entry.
rc, out, _ = run("ls", "--json", "model.h5")
doc = json.loads(out)
expect("json exit", rc == 0)
entries = {e["path"]: e for e in doc["entries"]}
expect("json weight", entries["/hidden/weight"]["shape"] == [8, 4]
       and entries["/hidden/weight"]["dtype"] == "float32"
       and entries["/hidden/weight"]["bytes"] == 128 and entries["/"]["kind"] == "model")
expect("json totals", doc["totals"]["parameters"] == 58)
rc, out, _ = run("ls", "--json", "plain.h5")
doc = json.loads(out)
expect("json plain escapes", any("\\x1b" in e["path"] for e in doc["entries"])
       and not any("\x1b" in e["path"] for e in doc["entries"]))

# Control characters never reach the terminal.
for args in (["ls", "plain.h5"], ["verify", "plain.h5"], ["diff", "plain.h5", "model.h5"]):
    rc, out, err = run(*args)
    expect(f"escaped {args[0]}", "\x1b" not in out and "\x07" not in out and "\\x1b" in out)

# Damaged and foreign files: exit 2 and a message naming the file.
for name in ("truncated.h5", "random.h5", "missing.h5"):
    for cmd in (["ls"], ["verify"], ["show", "--", name, "x"], ["dump"], ["diff", "model.h5"]):
        args = cmd + [name] if cmd[0] != "show" else cmd
        rc, out, err = run(*args)
        expect(f"{' '.join(args)} exit 2", rc == 2 and name in err, f"rc {rc} err {err!r}")

# A flipped bit in a tensor's data: verify names the tensor and fails (exit 1).
with h5py.File(os.path.join(work, "dict.h5"), "r") as f:
    big_offset = f["big"].id.get_offset()
expect("big is contiguous", big_offset is not None, "dict.h5 /big has no file offset")
if big_offset is not None:
    with open(os.path.join(work, "dict.h5"), "rb") as f:
        data = bytearray(f.read())
    data[big_offset + 100] ^= 0x04
    with open(os.path.join(work, "flipped.h5"), "wb") as f:
        f.write(data)
    rc, out, _ = run("verify", "flipped.h5")
    bad = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    expect("verify flipped exit 1", rc == 1, f"rc {rc}")
    expect("verify flipped names it", len(bad) == 1 and "/big" in bad[0] and "damaged" in bad[0]
           and "checksum" in bad[0], repr(bad))

# A checkpoint folder: listing, verification, and a damaged newest checkpoint.
gold("ls-run", ["ls", "run"], 0)
gold("verify-run", ["verify", "run"], 0)
with h5py.File(os.path.join(work, "run", "ckpt-000000000400.h5"), "r") as f:
    off = f["extra/big"].id.get_offset()
with open(os.path.join(work, "run", "ckpt-000000000400.h5"), "r+b") as f:
    f.seek(off + 7)
    b = f.read(1)
    f.seek(off + 7)
    f.write(bytes([b[0] ^ 1]))
rc, out, _ = run("verify", "run")
expect("verify run damaged exit 1", rc == 1, f"rc {rc}")
expect("verify run names step 400", "FAIL  checkpoint step 400" in out and "damaged" in out
       and "resume from: step 300" in out, out)

# Usage errors and help.
expect("no args", run()[0] == 2)
expect("unknown cmd", run("frob")[0] == 2)
expect("help", run("--help")[0] == 0)
expect("version", run("--version")[0] == 0 and "nnh5" in run("--version")[1])
for cmd in ("ls", "show", "diff", "verify", "dump"):
    rc, out, _ = run(cmd, "--help")
    expect(f"{cmd} --help", rc == 0 and out.startswith("usage: nnh5 " + cmd))
    expect(f"{cmd} bad option", run(cmd, "--bogus")[0] == 2)
expect("show group", run("show", "model.h5", "hidden")[0] == 2)
expect("show missing", run("show", "model.h5", "nope")[0] == 2)
expect("show string", run("show", "plain.h5", "labels")[0] == 2)
expect("show via soft link", run("show", "plain.h5", "soft/w")[0] == 2)

# dump: h5dump's own output; a clear message when it is missing.
if shutil.which("h5dump") or os.environ.get("NNH5_H5DUMP"):
    rc, out, _ = run("dump", "model.h5")
    expect("dump header", rc == 0 and 'HDF5 "model.h5"' in out and "DATA {" not in out)
    rc, out, _ = run("dump", "model.h5", "hidden/bias")
    expect("dump dataset", rc == 0 and "DATA {" in out)
    rc, out, _ = run("dump", "--attrs", "model.h5", "hidden")
    expect("dump attrs", rc == 0 and "nnh5_layer_type" in out)
rc, out, err = run("dump", "model.h5", env={"NNH5_H5DUMP": "/nonexistent/h5dump"})
expect("dump missing h5dump", rc == 2 and "not installed" in err, err)

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all passed")
