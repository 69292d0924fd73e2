#!/usr/bin/python3
"""Prove that loading a hostile file touches no other file.

For every file of the corpus, run `test_hostile --load FILE` (every loader
nnh5 has, from disk, from memory and in untrusted mode) under
`strace -f -e trace=file`, and fail if any traced call names a file in the
corpus's elsewhere/ folder (the targets of its external links, external
storage and virtual datasets), /etc/passwd, or any corpus file other than
the one being loaded. Usage: strace_check.py STRACE TEST_HOSTILE CORPUS_DIR
"""
import os
import subprocess
import sys
import tempfile


def traced(strace, argv):
    """(exit status, lines of the strace log) of argv run under strace."""
    # LeakSanitizer cannot run under ptrace; the other tests check leaks.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    with tempfile.NamedTemporaryFile(prefix="nnh5-strace-", suffix=".log") as log:
        rc = subprocess.run([strace, "-f", "-qq", "-e", "trace=file", "-o", log.name] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env).returncode
        return rc, open(log.name, errors="replace").read().splitlines()


def main():
    strace, prog, corpus = sys.argv[1:4]
    corpus = os.path.realpath(corpus)
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".h5"))
    failures = 0
    # The control: h5py follows the external link, and this check must see it.
    rc, lines = traced(strace, [sys.executable, "-c",
                                "import h5py, sys; h5py.File(sys.argv[1])['evil'][()]",
                                os.path.join(corpus, "external_link.h5")])
    elsewhere = os.path.join(corpus, "elsewhere")
    if rc != 0 or not any(elsewhere in line for line in lines):
        print("FAIL control: h5py reading an external link was not seen opening the target")
        failures += 1
    else:
        print("ok   control: h5py following the external link opens elsewhere/target.h5")
    for name in files:
        path = os.path.join(corpus, name)
        rc, lines = traced(strace, [prog, "--load", path])
        if rc != 0:
            print(f"FAIL {name}: the loader exited with {rc}")
            failures += 1
            continue
        if not any(path in line for line in lines):
            print(f"FAIL {name}: strace saw no access to the file itself (is strace working?)")
            failures += 1
            continue
        bad = [line for line in lines
               if os.path.join(corpus, "elsewhere") in line or "/etc/passwd" in line
               or any(os.path.join(corpus, other) in line for other in files if other != name)]
        if bad:
            print(f"FAIL {name}: touched another file:")
            for line in bad[:5]:
                print("    " + line)
            failures += 1
        else:
            print(f"ok   {name}: {len(lines)} file calls, none outside the file")
    print(f"{len(files) + 1 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
