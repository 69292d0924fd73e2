#!/usr/bin/python3
"""nnh5 ls DIR and nnh5 verify DIR: steps up to INT64_MAX, and both beside a running
trainer (keep_last 2, fast saves) whose retention removes files while they read.

usage: test_ckpt_folder.py NNH5 CKPT_TRAINER WORKDIR
NNH5_TRAINER_SECONDS sets how long the trainer runs (default 4); the figures
(trainer saves, verify and ls runs, failures) are printed.
"""
import os
import shutil
import subprocess
import sys

nnh5, trainer, work = (os.path.abspath(a) for a in sys.argv[1:4])
failures = []
INT64_MAX = 2**63 - 1


def expect(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f" {detail}"))
    if not cond:
        failures.append(name)


def run(*args):
    p = subprocess.run([nnh5, *args], cwd=work, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

# Steps beyond 12 digits sort, list and resume like any other.
steps = [7, 999_999_999_999, 10**12, 10**15 + 3, INT64_MAX]
subprocess.run([trainer, os.path.join(work, "huge"), *map(str, steps)], check=True)
rc, out, err = run("ls", "huge")
rows = [line.split()[0] for line in out.splitlines()[2:]]
expect("ls huge: every step, ascending", rc == 0 and rows == [str(s) for s in steps], out + err)
expect("ls huge: the latest is INT64_MAX", f"ckpt-{INT64_MAX}.h5  latest" in out, out)
rc, out, err = run("verify", "huge")
expect("verify huge: resume from INT64_MAX", rc == 0 and f"resume from: step {INT64_MAX}" in out
       and "0 of 5 checkpoints failed" in out, out + err)

# Beside a trainer: never a removed file reported as damaged, never "nothing".
secs = os.environ.get("NNH5_TRAINER_SECONDS", "4")
folder = os.path.join(work, "live")
subprocess.run([trainer, folder, "1"], check=True)  # a checkpoint exists from the start
shutil.rmtree(folder)
t = subprocess.Popen([trainer, "--run", folder, secs], stdout=subprocess.PIPE, text=True)
verify_runs = verify_bad = nothing = ls_runs = ls_bad = gone = 0
first_bad = ""
while t.poll() is None:
    if not os.path.exists(os.path.join(folder, ".nnh5-lock")):
        continue
    rc, out, err = run("verify", "live")
    if t.poll() is not None and "resume from" not in out:
        break
    verify_runs += 1
    gone += out.count("removed by retention while verifying")
    if "resume from: nothing" in out:
        nothing += 1
    if rc != 0:
        verify_bad += 1
        first_bad = first_bad or out + err
    rc, out, err = run("ls", "live")
    ls_runs += 1
    if rc != 0:
        ls_bad += 1
        first_bad = first_bad or out + err
saves = int(t.stdout.read().strip() or 0)
expect("the trainer ran", t.wait() == 0 and saves > 0, f"exit {t.returncode}")
print(f"beside a trainer for {secs} s: {saves} saves; {verify_runs} verify runs, {verify_bad} "
      f"failed, {nothing} said 'nothing', {gone} files removed while verifying; {ls_runs} ls "
      f"runs, {ls_bad} failed")
expect("verify beside a trainer: never fails", verify_runs > 0 and verify_bad == 0, first_bad)
expect("verify beside a trainer: never 'resume from: nothing'", nothing == 0)
expect("ls beside a trainer: never fails", ls_bad == 0, first_bad)

print(f"test_ckpt_folder: {len(failures)} failed")
sys.exit(1 if failures else 0)
