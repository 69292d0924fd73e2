#!/usr/bin/python3
"""Tests of the nnh5 command-line tool: golden outputs, exit codes, JSON,
damaged files, plain h5py files and hostile names.

usage: run_tool_tests.py NNH5 MKFILES WORKDIR GOLDENDIR [--update] [--corpus DIR]
Files are made in WORKDIR (by the mkfiles helper and by h5py) and every
command runs there with relative names, so outputs hold no temporary paths.
--update rewrites the golden files (inspect them before committing).
--corpus names the hostile corpus (tests/hostile/make_corpus.py): verify
must fail every file there that a loader refuses, and no command may open
anything the files point at.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import h5py
import numpy as np

nnh5, mkfiles, work, golden = (os.path.abspath(a) for a in sys.argv[1:5])
update = "--update" in sys.argv[5:]
corpus = None
if "--corpus" in sys.argv[5:]:
    corpus = os.path.abspath(sys.argv[sys.argv.index("--corpus") + 1])
failures = []


def run(*args, env=None, timeout=120):
    e = dict(os.environ)
    if env:
        e.update(env)
    try:
        p = subprocess.run([nnh5, *args], cwd=work, capture_output=True, env=e, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {timeout} s"
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def traced(argv):
    """(exit status, strace log lines) of argv run in work under strace -f -e trace=file."""
    env = dict(os.environ)
    # LeakSanitizer cannot run under ptrace.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    with tempfile.NamedTemporaryFile(prefix="nnh5-tool-strace-", suffix=".log") as log:
        rc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=file", "-o", log.name] + argv,
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env, timeout=120).returncode
        return rc, open(log.name, errors="replace").read().splitlines()


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

# Objects nnh5 does not load still show, as the walk describes them.
with h5py.File(os.path.join(work, "others.h5"), "w") as f:
    f["mytype"] = np.dtype("<i4")  # a committed datatype
    f["x"] = np.arange(3, dtype=np.int32)
    f["cpx"] = np.array([1 + 2j, -0.5 - 3.25j])  # h5py's complex loads as complex128
    f["pairs"] = np.zeros(1, dtype=[("x", "<f4"), ("y", "<f4")])  # another compound does not
    f.create_dataset("nul", data=h5py.Empty("f4"))
    f.create_dataset("vs", data=["a", "bc"], dtype=h5py.string_dtype())

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
gold("verify-plain", ["verify", "plain.h5"], 1)
gold("ls-others", ["ls", "others.h5"], 0)
gold("verify-others", ["verify", "others.h5"], 0)
gold("show-complex", ["show", "others.h5", "cpx"], 0)

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
# Links resolve as a load resolves them: a soft link to a group is refused.
rc, out, err = run("show", "plain.h5", "soft/w")
expect("show via soft link", rc == 2 and "/soft" in err and "refused" in err, f"rc {rc} {err}")

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


# Hostile files: what they point at lives in elsewhere/, which the tool must
# never open. Each trap sits beside an honest tensor /w.
elsewhere = os.path.join(work, "elsewhere")
os.makedirs(elsewhere)
with h5py.File(os.path.join(elsewhere, "target.h5"), "w") as f:
    f["x"] = np.arange(16, dtype=np.float32)
    f.create_group("grp")["y"] = np.arange(4, dtype=np.float32)
with open(os.path.join(elsewhere, "secret.bin"), "wb") as f:
    f.write(bytes(range(64)))


def hostile(name, **kw):
    f = h5py.File(os.path.join(work, name), "w", **kw)
    f["w"] = np.arange(4, dtype=np.float32)
    return f


target = os.path.join(elsewhere, "target.h5")
with hostile("h-extlink.h5") as f:  # a tensor that is an external link
    f["weight"] = h5py.ExternalLink(target, "/x")
with hostile("h-softext.h5") as f:  # a soft link whose path crosses an external link
    f["nnh5_hidden"] = h5py.ExternalLink(target, "/grp")
    f["s"] = h5py.SoftLink("/nnh5_hidden/y")
with hostile("h-storage.h5") as f:  # external raw storage: any file of the reader's machine
    f.create_dataset("raw", shape=(64,), dtype=np.uint8,
                     external=[(os.path.join(elsewhere, "secret.bin"), 0, 64)])
layout = h5py.VirtualLayout(shape=(16,), dtype=np.float32)
layout[:] = h5py.VirtualSource(target, "x", shape=(16,))
with hostile("h-virtual.h5", libver="latest") as f:
    f.create_virtual_dataset("vds", layout, fillvalue=0)
with hostile("h-deep.h5") as f:  # nested deeper than the default max_depth (64)
    g = f
    for i in range(70):
        g = g.create_group(f"g{i}")
    g["leaf"] = np.ones(2, dtype=np.float32)
with hostile("h-alias.h5") as f:  # tied weights: one dataset under two names
    f["a"] = np.arange(6, dtype=np.float32)
    f["b"] = f["a"]
    f["c"] = h5py.SoftLink("/a")

# verify fails every file some loader refuses, naming the object.
for name, obj, why in (("h-extlink.h5", "/weight", "external"),
                       ("h-softext.h5", "/s", ""),
                       ("h-storage.h5", "/raw", "external"),
                       ("h-virtual.h5", "/vds", "virtual"),
                       ("h-deep.h5", "/g0/g1/g2", "")):
    rc, out, err = run("verify", name)
    bad = [line for line in out.splitlines() if line.startswith("FAIL  ")]
    expect(f"verify {name} exit 1", rc == 1 and out.rstrip().splitlines()[-1].startswith("FAILED"),
           f"rc {rc}\n{out}{err}")
    expect(f"verify {name} names {obj}", any(obj in line and why in line.lower() for line in bad)
           and "tensor loads: /w" in out, out)
    rc, out, err = run("ls", name)
    expect(f"ls {name} lists it refused", rc == 0 and "refused" in out and "  w " in out,
           f"rc {rc}\n{out}{err}")
rc, out, err = run("verify", "h-alias.h5")
expect("verify aliases exit 0", rc == 0, f"rc {rc}\n{out}{err}")
expect("verify aliases loads each name", "tensor loads: /b (no checksum, alias of /a)" in out
       and "tensor loads: /a (no checksum)" in out, out)
gold("ls-alias", ["ls", "h-alias.h5"], 0)

# diff reports a refused key, in both files or in one, and exits 2.
for a, b in (("h-extlink.h5", "h-extlink.h5"), ("h-alias.h5", "h-extlink.h5")):
    rc, out, err = run("diff", a, b)
    expect(f"diff {a} {b} names the refused key", rc == 2 and "weight" in out
           and "external link" in out, f"rc {rc}\n{out}{err}")

# dump refuses before h5dump runs, and names the object and why.
for args, obj in ((["dump", "h-storage.h5", "raw"], "/raw"),
                  (["dump", "h-storage.h5"], "/raw"),
                  (["dump", "--header", "h-storage.h5", "raw"], "/raw"),
                  (["dump", "h-extlink.h5"], "/weight"),
                  (["dump", "h-softext.h5", "s"], "/s"),
                  (["dump", "h-softext.h5"], "/s"),
                  (["dump", "h-virtual.h5", "vds"], "/vds"),
                  (["dump", "h-deep.h5"], "/g0/g1")):
    rc, out, err = run(*args)
    expect(f"{' '.join(args)} refused", rc == 2 and obj in err and "refuse" in err
           and out == "", f"rc {rc} out {out!r} err {err!r}")
rc, out, err = run("dump", "h-storage.h5", "w")
expect("dump the honest tensor beside external storage",
       rc == 0 or not (shutil.which("h5dump") or os.environ.get("NNH5_H5DUMP")), err)

# strace: no command ever opens what the hostile files point at.
if shutil.which("strace"):
    rc, lines = traced(["h5dump", "-d", "/raw", "h-storage.h5"]) if shutil.which("h5dump") \
        else (0, [])
    if shutil.which("h5dump"):
        expect("strace control: h5dump reads external storage",
               any("secret.bin" in line for line in lines), "\n".join(lines[-5:]))
    for name in ("h-extlink.h5", "h-softext.h5", "h-storage.h5", "h-virtual.h5"):
        for cmd in (["ls"], ["ls", "--json"], ["verify"], ["dump"], ["diff", "h-alias.h5"]):
            argv = [nnh5, *cmd, name]
            rc, lines = traced(argv)
            seen = [line for line in lines if elsewhere in line or "secret.bin" in line
                    or "target.h5" in line]
            expect(f"strace {' '.join(cmd)} {name}: nothing else opened",
                   not seen and any(name in line for line in lines), "\n".join(seen[:3]))
    for args in (["dump", "h-storage.h5", "raw"], ["show", "h-extlink.h5", "weight"],
                 ["show", "h-softext.h5", "s"], ["show", "h-virtual.h5", "vds"]):
        rc, lines = traced([nnh5, *args])
        seen = [line for line in lines if elsewhere in line]
        expect(f"strace {' '.join(args)}: nothing else opened, exit 2", not seen and rc == 2,
               f"rc {rc} " + "\n".join(seen[:3]))
else:
    expect("strace is installed (tools/bootstrap.sh --test)", False)

# The hostile corpus: every file a loader refuses fails verify (exit 1, a
# FAIL line), and neither ls, verify nor dump opens what the files point at.
# These load under the default limits.
CORPUS_LOADS = {"aliases_ok.h5"}
# Every file a loader refuses, verify fails (a damaged nnh5_keys list
# included: nnh5_file_check_keys). Nothing is left as a known gap.
CORPUS_GAPS = set()
if corpus and os.path.isdir(corpus):
    away = os.path.join(corpus, "elsewhere")
    for name in sorted(f for f in os.listdir(corpus) if f.endswith(".h5")):
        path = os.path.join(corpus, name)
        rc, out, err = run("verify", path)
        if name in CORPUS_LOADS:
            expect(f"corpus verify {name} exit 0", rc == 0, f"rc {rc}\n{out}{err}")
        elif name in CORPUS_GAPS:
            expect(f"corpus verify {name}: known gap still open (verify says OK)", rc == 0,
                   "verify now fails it: move it out of CORPUS_GAPS")
            print(f"gap  corpus verify {name}: exit {rc}, a loader refuses it")
        else:
            expect(f"corpus verify {name} exit 1", rc == 1 and "\nFAIL  " in "\n" + out,
                   f"rc {rc}\n{out}{err}")
        if name == "aliases_200.h5":
            expect("corpus verify names an alias past the caps",
                   any(line.startswith("FAIL  /g") and "alias" in line
                       for line in out.splitlines()), out[:2000])
        if name == "groups_100k.h5" or not shutil.which("strace"):
            continue
        for cmd in (["ls"], ["verify"], ["dump"]):
            rc, lines = traced([nnh5, *cmd, path])
            seen = [line for line in lines if away in line or "/etc/passwd" in line]
            expect(f"corpus strace {cmd[0]} {name}: nothing else opened",
                   not seen and any(name in line for line in lines), "\n".join(seen[:3]))
elif corpus:
    expect(f"hostile corpus {corpus} exists", False)

# A FIFO is no file: every command refuses it at once instead of waiting
# for a writer that never comes.
fifo = os.path.join(work, "fifo.h5")
os.mkfifo(fifo)
for args in (["ls", "fifo.h5"], ["ls", "--json", "fifo.h5"], ["verify", "fifo.h5"],
             ["show", "fifo.h5", "w"], ["diff", "model.h5", "fifo.h5"], ["dump", "fifo.h5"]):
    rc, out, err = run(*args, timeout=10)
    expect(f"{' '.join(args)} refused without hanging", rc == 2 and "fifo.h5" in err,
           f"rc {rc} err {err!r}")
os.makedirs(os.path.join(work, "fiforun"))
os.mkfifo(os.path.join(work, "fiforun", "ckpt-000000000001.h5"))
os.mkfifo(os.path.join(work, "fiforun", "index.h5"))
for args in (["ls", "fiforun"], ["verify", "fiforun"]):
    rc, out, err = run(*args, timeout=10)
    expect(f"{' '.join(args)} does not hang", rc is not None, err)
rc, out, err = run("verify", "fiforun", timeout=10)
expect("verify fiforun fails the FIFO checkpoint", rc == 1 and "FAIL  checkpoint step 1" in out,
       f"rc {rc}\n{out}{err}")

# An empty checkpoint folder: nothing to resume from, said as the exit status says.
os.makedirs(os.path.join(work, "emptyrun"))
gold("verify-emptyrun", ["verify", "emptyrun"], 1)

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all passed")
