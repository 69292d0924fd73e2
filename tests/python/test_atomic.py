#!/usr/bin/python3
"""Atomic saves in tools/nnh5.py: a failed save leaves the previous file and nothing else.

Each way a save can fail - refused keys or values before anything is
written, an error or a KeyboardInterrupt in the middle of writing, a failed
rename, a missing folder, a model whose probe does not run - must leave the
previous file byte for byte and no temporary file beside it. A successful
save fsyncs the file and its folder (durable=False skips both), replaces the
file, and gives it the usual permissions (0666 less the umask), as the C
library does.
"""
import collections
import json
import os
import subprocess
import sys

import pycommon as pc
from pycommon import check, nnh5, np, path

torch = pc.need_torch()


def folder_state(folder):
    return {f: open(os.path.join(folder, f), "rb").read() for f in pc.files_in(folder)
            if os.path.isfile(os.path.join(folder, f))}


def failing(what, fn, exc, folder, words=()):
    """fn() must raise exc and change nothing in folder."""
    before = folder_state(folder)
    try:
        fn()
        err = None
    except exc as e:
        err = e
    except BaseException as e:  # noqa: B036 (KeyboardInterrupt is one of the cases)
        check(False, what, f"raised {type(e).__name__}: {e}, expected {exc.__name__}")
        return
    if not check(err is not None, what, f"no error, expected {exc.__name__}"):
        return
    check(all(w in str(err) for w in words), f"{what}: message", str(err))
    after = folder_state(folder)
    check(after == before, f"{what}: the folder is unchanged",
          f"before {sorted(before)}, after {sorted(after)}")


class FailOnNth:
    """Replace nnh5._Writer.dataset so that its n-th call raises exc."""

    def __init__(self, n, exc):
        self.n, self.exc, self.calls = n, exc, 0
        self.orig = nnh5._Writer.dataset

    def __enter__(self):
        outer = self

        def dataset(writer, *a, **kw):
            outer.calls += 1
            if outer.calls == outer.n:
                raise outer.exc
            return outer.orig(writer, *a, **kw)
        nnh5._Writer.dataset = dataset
        return self

    def __exit__(self, *exc):
        nnh5._Writer.dataset = self.orig


FULL_DISK = r"""
import collections, errno, importlib.machinery, json, os, sys
mnt, tools, big_h5 = sys.argv[1:4]
sys.path.insert(0, tools)
import numpy as np, torch, nnh5
converter = importlib.machinery.SourceFileLoader(
    "nnh5_convert", os.path.join(tools, "nnh5-convert")).load_module()
os.chdir(mnt)
print("READY", flush=True)
nnh5.save({"a": np.zeros(10)}, "x.h5")
with open("x.pt", "wb") as fp:
    fp.write(b"previous")
big = collections.OrderedDict((f"l{i}.w", torch.rand(100, 100)) for i in range(10))
net = torch.nn.Sequential(torch.nn.Linear(300, 300), torch.nn.ReLU())


def no_space(fn):
    try:
        fn()
        return "saved"
    except OSError as e:
        return "ENOSPC" if e.errno == errno.ENOSPC else repr(e)


for name, fn in (("state dict", lambda: nnh5.save_state_dict(big, "x.h5")),
                 ("list", lambda: nnh5.save(list(big.values()), "x.h5")),
                 ("model", lambda: nnh5.save_model(net, "x.h5", probe_input=torch.zeros(2, 300)))):
    r = no_space(fn)
    print(json.dumps([name, r, sorted(os.listdir(".")), list(nnh5.load("x.h5", numpy=True))]))
rc = converter.main(["to-torch", "-q", big_h5, "x.pt"])
print(json.dumps(["to-torch", "ENOSPC" if rc == 1 else rc, sorted(os.listdir(".")),
                  [open("x.pt", "rb").read().decode()]]))
nnh5.save({"b": np.ones(3)}, "x.h5")  # the disk has room again for a small save
print(json.dumps(["after", "saved", sorted(os.listdir(".")), list(nnh5.load("x.h5"))]))
"""


def full_disk():
    """Saves that fill the disk (a 256 KiB tmpfs in a private mount namespace)."""
    mnt = path("full-disk")
    os.makedirs(mnt)
    big_h5 = path("big.h5")
    nnh5.save_state_dict({f"l{i}.w": torch.rand(100, 100) for i in range(10)}, big_h5)
    p = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=256k nnh5-test "$1" '
                        '&& exec "$2" -c "$3" "$1" "$4" "$5"', "sh", mnt, sys.executable,
                        FULL_DISK, pc.TOOLS, big_h5], capture_output=True, text=True)
    if not p.stdout.startswith("READY"):
        print(f"NOTE: full-disk saves not tested (needs root for unshare -m and a tmpfs "
              f"mount): {p.stderr.strip()[:200]}")
        return
    check(p.returncode == 0, "a full disk: the process exits cleanly (no crash in HDF5)",
          f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
    lines = [json.loads(x) for x in p.stdout.splitlines()[1:]]
    check(len(lines) == 5, "a full disk: every save ran", p.stdout)
    for name, result, files, keys in lines:
        want = "saved" if name == "after" else "ENOSPC"
        check(result == want, f"a full disk, {name}: {want}", str(result))
        check(files == ["x.h5", "x.pt"], f"a full disk, {name}: no temporary file", str(files))
        check(keys == (["b"] if name == "after" else ["previous"] if name == "to-torch"
                       else ["a"]), f"a full disk, {name}: the previous file is intact",
              str(keys))


def target_rules():
    """What a save replaces (doc/SAVING.md): links followed, modes and owners kept, special
    files, read-only files and long names; the same in nnh5-convert to-torch."""
    import stat
    d = path("targets")
    os.makedirs(d)
    real, link = os.path.join(d, "real.h5"), os.path.join(d, "link.h5")
    nnh5.save({"a": np.ones(2)}, real)
    os.symlink("real.h5", link)
    nnh5.save({"b": np.ones(2)}, link)
    check(os.path.islink(link) and list(nnh5.load(real)) == ["b"],
          "a link at the target: followed, the link stays")
    os.chmod(real, 0o600)
    if os.geteuid() == 0:
        os.chown(real, 12345, 23456)
    nnh5.save({"c": np.ones(2)}, real)
    st = os.stat(real)
    check(stat.S_IMODE(st.st_mode) == 0o600, "mode 0600 kept", f"{st.st_mode:o}")
    if os.geteuid() == 0:
        check((st.st_uid, st.st_gid) == (12345, 23456), "owner and group kept",
              f"{st.st_uid}:{st.st_gid}")
    fifo = os.path.join(d, "fifo.h5")
    os.mkfifo(fifo)
    try:
        nnh5.save({"a": np.ones(2)}, fifo)
        check(False, "a FIFO target is refused")
    except nnh5.InvalidError as e:
        check("a FIFO" in str(e) and stat.S_ISFIFO(os.lstat(fifo).st_mode),
              "a FIFO target is refused and left alone", str(e))
    if os.geteuid() == 0:
        dev = os.path.join(d, "null-copy")
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        try:
            nnh5.save({"a": np.ones(2)}, dev)
            check(False, "a character device target is refused")
        except nnh5.InvalidError as e:
            check(stat.S_ISCHR(os.lstat(dev).st_mode), "a character device is left alone", str(e))
    long = os.path.join(d, "n" * 252 + ".h5")
    nnh5.save({"a": np.ones(2)}, long)
    nnh5.save({"b": np.ones(2)}, long)
    check(list(nnh5.load(long)) == ["b"], "a base name of 255 bytes saves")
    # a read-only file of the user is refused (in a child as nobody when we are root)
    ro_dir = os.path.join(d, "ro")
    os.makedirs(ro_dir)
    os.chmod(d, 0o755)
    os.chmod(os.path.dirname(d), 0o755)
    code = ("import os, sys, numpy as np; sys.path.insert(0, sys.argv[1]); import nnh5\n"
            "p = os.path.join(sys.argv[2], 'ro.h5'); nnh5.save({'a': np.ones(2)}, p)\n"
            "os.chmod(p, 0o444)\n"
            "try:\n    nnh5.save({'b': np.ones(2)}, p); print('replaced')\n"
            "except PermissionError as e:\n    print('refused' if list(nnh5.load(p)) == ['a'] "
            "and 'not writable' in str(e) else e)\n")
    pre = None
    if os.geteuid() == 0:
        os.chown(ro_dir, 65534, 65534)
        def pre():
            os.setgid(65534)
            os.setuid(65534)
    p = subprocess.run([sys.executable, "-c", code, pc.TOOLS, ro_dir], capture_output=True,
                       text=True, preexec_fn=pre)
    check(p.stdout.strip() == "refused", "a read-only file is refused and kept",
          p.stdout + p.stderr[-300:])
    # nnh5-convert to-torch goes through the same rules
    torch.save({"w": torch.ones(2)}, os.path.join(d, "in.pt"))
    nnh5.save_state_dict({"w": torch.ones(2)}, os.path.join(d, "in.h5"))
    pt_real, pt_link = os.path.join(d, "out.pt"), os.path.join(d, "out-link.pt")
    open(pt_real, "wb").close()
    os.chmod(pt_real, 0o640)
    os.symlink("out.pt", pt_link)
    conv = subprocess.run([sys.executable, os.path.join(pc.TOOLS, "nnh5-convert"), "to-torch",
                           os.path.join(d, "in.h5"), pt_link], capture_output=True, text=True)
    check(conv.returncode == 0 and os.path.islink(pt_link)
          and stat.S_IMODE(os.stat(pt_real).st_mode) == 0o640
          and os.path.getsize(pt_real) > 0, "nnh5-convert to-torch: link followed, mode kept",
          conv.stderr[-300:])
    conv = subprocess.run([sys.executable, os.path.join(pc.TOOLS, "nnh5-convert"), "from-torch",
                           os.path.join(d, "in.pt"), fifo], capture_output=True, text=True)
    check(conv.returncode != 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode),
          "nnh5-convert from-torch: a FIFO target is refused", conv.stderr[-300:])
    check(not [f for f in pc.files_in(d) if nnh5.TMP_MARK in f], "no temporary file left",
          str(pc.files_in(d)))


def name_rule():
    """One rule for names: what a save accepts a load returns unchanged; the rest is refused."""
    d = path("names")
    os.makedirs(d)
    target = os.path.join(d, "n.h5")
    for key in ("gr\u00f6\u00dfe", "\u6743\u91cd", "a b", "k" * 1024):
        nnh5.save({key: np.ones(2)}, target)
        check(list(nnh5.load(target)) == [key], f"key {key[:10]!r}: loads unchanged")
    nnh5.save({"kept": np.ones(2)}, target)
    bad = [({"a\x1b[31mb": np.ones(2)}, "control characters"),
           ({"k" * 2000: np.ones(2)}, "longer than the limit"),
           ({"\udcff": np.ones(2)}, "UTF-8"),
           ({"layer.\x7f.weight": torch.ones(2)}, "control characters"),
           ({"tab\there": torch.ones(2)}, "control characters")]
    for obj, words in bad:
        try:
            if any("." in k for k in obj):
                nnh5.save_state_dict(obj, target)
            else:
                nnh5.save(obj, target)
            check(False, f"{list(obj)[0][:10]!r}: refused at save time")
        except nnh5.InvalidError as e:
            check(words in str(e), f"{list(obj)[0][:10]!r}: refused, saying why", str(e))
    check(list(nnh5.load(target)) == ["kept"], "refused saves leave the file alone")


def main():
    d = path("work")
    os.makedirs(d)
    target = os.path.join(d, "model.h5")
    sd = collections.OrderedDict((f"layer{i}.weight", torch.randn(30, 40)) for i in range(6))
    nnh5.save_state_dict(sd, target)
    pc.same_tensors(sd, nnh5.load_state_dict(target), "the first save")

    other = collections.OrderedDict(sd)
    other["layer0.weight"] = torch.zeros(3)
    failing("a value that is not a tensor", lambda: nnh5.save_state_dict(
        dict(other, extra="text"), target), nnh5.UnsupportedError, d, ["'extra'", "str"])
    failing("a dtype nnh5 does not store", lambda: nnh5.save_state_dict(
        dict(other, c=np.zeros(2, dtype=np.clongdouble)), target), nnh5.UnsupportedError, d,
        ["'c'", "complex256"])
    failing("an object array", lambda: nnh5.save({"o": np.array([None])}, target),
            nnh5.UnsupportedError, d, ["'o'", "object"])
    failing("a sparse tensor", lambda: nnh5.save(torch.eye(3).to_sparse(), target),
            nnh5.UnsupportedError, d, ["sparse"])
    failing("a Python number", lambda: nnh5.save(1.5, target), nnh5.UnsupportedError, d,
            ["float"])
    failing("a module instead of its state dict", lambda: nnh5.save_state_dict(
        torch.nn.Linear(2, 2), target), nnh5.UnsupportedError, d, ["state_dict()"])
    for key, words in (("a..b", ["'a..b'"]), (".a", ["'.a'"]), ("a.", ["'a.'"]),
                       ("a/b", ["'a/b'"]), ("", ["''"]), ("nnh5_x", ["reserved"]),
                       ("x.nnh5_probe.y", ["reserved"]), ("layer0.weight.extra",
                                                          ["'layer0.weight'", "conflict"]),
                       ("bad\0nul", ["NUL"]), ("bad\udcff", ["UTF-8"]), (7, ["int"])):
        failing(f"state dict key {key!r}", lambda: nnh5.save_state_dict(
            {**other, key: torch.zeros(1)}, target),
            nnh5.InvalidError, d, words)
    for key in ("a/b", ".", "..", "", "nnh5_keys"):
        failing(f"dict key {key!r}", lambda: nnh5.save({key: torch.zeros(1)}, target),
                nnh5.InvalidError, d, [repr(key)[1:-1] if key else "''"])
    failing("a reserved attribute", lambda: nnh5.save_state_dict(other, target,
                                                                 attrs={"nnh5_x": 1}),
            nnh5.InvalidError, d, ["nnh5_x"])
    failing("an attribute of another type", lambda: nnh5.save_state_dict(
        other, target, attrs={"x": [1]}), nnh5.UnsupportedError, d, ["'x'"])
    # failures injected into the h5py code (the C library's own are tested in C, and a
    # real full disk below reaches both)
    for n in (1, 4, 6):
        with pc.pure(), FailOnNth(n, OSError(28, "No space left on device")):
            failing(f"an I/O error at tensor {n} of 6", lambda: nnh5.save_state_dict(other, target),
                    OSError, d, ["No space"])
    with pc.pure(), FailOnNth(3, KeyboardInterrupt()):
        failing("Ctrl-C in the middle of a save", lambda: nnh5.save_state_dict(other, target),
                KeyboardInterrupt, d)
    os.makedirs(os.path.join(d, "dir.h5", "inside"))
    failing("the target is a non-empty folder", lambda: nnh5.save(other, os.path.join(
        d, "dir.h5")), nnh5.InvalidError, d, ["a folder"])
    failing("the folder does not exist", lambda: nnh5.save(other, os.path.join(
        d, "nope", "x.h5")), OSError, d, ["nope/x.h5"])
    failing("a path that names a folder", lambda: nnh5.save(other, d + "/"), nnh5.InvalidError,
            d, ["names a folder"])
    net = torch.nn.Sequential(torch.nn.Linear(4, 2))
    failing("a model whose probe does not run", lambda: nnh5.save_model(
        net, target, probe_input=torch.zeros(1, 5)), nnh5.InvalidError, d, ["probe"])
    failing("a model nnh5 cannot rebuild", lambda: nnh5.save_model(
        torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1)), target), nnh5.UnsupportedError, d,
        ["Conv1d"])
    pc.same_tensors(sd, nnh5.load_state_dict(target), "after every failure: the first save")

    # a successful save: fsync of the file and the folder, then the new content
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)
    os.fsync = fsync
    try:
        with pc.pure():  # os.fsync is the h5py code's; C's fsync: test_clib.py (strace)
            nnh5.save_state_dict(other, target)
            durable = list(synced)
            synced.clear()
            nnh5.save_state_dict(other, os.path.join(d, "fast.h5"), durable=False)
    finally:
        os.fsync = real_fsync
    check(len(durable) == 2 and nnh5.TMP_MARK in os.path.basename(durable[0])
          and durable[1] == os.path.realpath(d), "durable: fsync of the file, then the folder",
          str(durable))
    check(synced == [], "durable=False: no fsync", str(synced))
    pc.same_tensors(other, nnh5.load_state_dict(target), "the second save replaced the file")
    for mask in (0o022, 0o077, 0o002):
        old = os.umask(mask)
        try:
            nnh5.save(torch.zeros(2), os.path.join(d, f"mode{mask:o}.h5"))
        finally:
            os.umask(old)
        mode = os.stat(os.path.join(d, f"mode{mask:o}.h5")).st_mode & 0o777
        check(mode == 0o666 & ~mask, f"umask {mask:03o}: mode {mode:o}")
    check(not [f for f in pc.files_in(d) if nnh5.TMP_MARK in f], "no temporary file left",
          str(pc.files_in(d)))
    # no modification times: the same content saves to the same bytes
    for i in (1, 2):
        nnh5.save_state_dict(sd, os.path.join(d, f"same{i}.h5"))
        nnh5.save_model(net, os.path.join(d, f"same-model{i}.h5"), probe_input=torch.ones(2, 4))
    for a, b in (("same1.h5", "same2.h5"), ("same-model1.h5", "same-model2.h5")):
        with open(os.path.join(d, a), "rb") as fa, open(os.path.join(d, b), "rb") as fb:
            check(fa.read() == fb.read(), f"{a} and {b}: byte-identical")
    pc.run_part(full_disk)
    pc.run_part(target_rules)
    pc.run_part(name_rule)
    pc.finish("test_atomic")


if __name__ == "__main__":
    main()
