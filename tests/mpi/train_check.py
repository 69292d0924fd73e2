#!/usr/bin/python3
"""examples/mpi_train killed and resumed on another rank count ends bitwise
where an uninterrupted run ends.

    train_check.py MPIRUN PROGRAM [TRIALS] [--async]

Reference: 4 ranks, uninterrupted. Then TRIALS times (default 1 with a
fixed kill): start the run on P ranks, kill it (rank 1 SIGKILLs itself at
a step given by --die-at in the first trial; later trials SIGKILL a random
rank's process from outside at a random moment, saves included), check
that the newest checkpoint loads with h5py and equals what the run
reaches at that step, then resume on Q != P ranks and compare final.h5
with the reference, byte for byte. A killed rank must bring the job down
within the timeout (mpirun terminates the survivors): a trial fails if a
rank's process is alive 120 s after the kill. When every rank has exited
but mpirun has not (a deadlock of Open MPI 4.1's launcher after a rank dies
during start-up; doc/MPI.md), mpirun is killed, the trial goes on and its
number is printed.

--async: the killed runs checkpoint asynchronously (a background thread
writes while training goes on, so kills land in background saves too); the
reference stays synchronous, so the async checkpoints must equal its
checkpoints. Trial 0 then resumes at step 15 or 10 (the save of step 15
may still be in flight when rank 1 dies at step 17).
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

args = [a for a in sys.argv[1:] if a != "--async"]
ASYNC = ["--async"] if "--async" in sys.argv[1:] else []
mpirun, prog = args[0:2]
trials = int(args[2]) if len(args) > 2 else 1
STEPS, EVERY = "40", "5"
base = os.environ.get("NNH5_TEST_TMP", "/tmp")
os.makedirs(base, exist_ok=True)
top = tempfile.mkdtemp(prefix="nnh5-mpi-train-", dir=base)


def run(np_, folder, *extra, timeout=300, wait=True):
    cmd = [mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np_), prog,
           "--dir", folder, "--steps", STEPS, "--every", EVERY] + list(extra)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    if not wait:
        return p
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def final(folder):
    with h5py.File(os.path.join(folder, "final.h5"), "r") as f:
        return f["tensor"][()].tobytes()


def committed(folder):
    if not os.path.isdir(folder):
        return []
    return sorted(int(n[5:-3]) for n in os.listdir(folder)
                  if n.startswith("ckpt-") and n.endswith(".h5"))


ref_dir = os.path.join(top, "ref")
t0 = time.monotonic()
rc, out = run(4, ref_dir, "--keep", "0")
ref_seconds = time.monotonic() - t0
if rc != 0:
    sys.exit("uninterrupted run failed:\n" + out)
ref = final(ref_dir)
# The reference's checkpoints, to compare the killed runs' with.
ref_weights = {}
for step in committed(ref_dir):
    with h5py.File(os.path.join(ref_dir, "ckpt-%012d.h5" % step), "r") as f:
        ref_weights[step] = f["model/weight"][()].tobytes()

rng = random.Random(1234)
launcher_hangs = []
for trial in range(trials):
    folder = os.path.join(top, "t%d" % trial)
    p_ranks = rng.choice([2, 3, 4]) if trial else 3
    q_ranks = rng.choice([r for r in (1, 2, 3, 4) if r != p_ranks]) if trial else 2
    if trial == 0:
        rc, out = run(p_ranks, folder, "--die-at", "17", *ASYNC)
        if rc == 0:
            sys.exit("the run meant to die at step 17 succeeded:\n" + out)
    else:
        p = run(p_ranks, folder, *ASYNC, wait=False)
        time.sleep(rng.uniform(0.0, 1.1 * ref_seconds))
        # One rank's process (a child of mpirun), or mpirun's whole group.
        kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                              text=True).stdout.split()
        victims = [int(k) for k in kids] or [p.pid]
        try:
            os.kill(rng.choice(victims), signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            # What is left: the ranks (children of mpirun) and mpirun itself.
            ps = subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:20,etime,args", "-s",
                                 str(p.pid)], capture_output=True, text=True).stdout
            live = [line for line in ps.splitlines()[1:]
                    if int(line.split()[0]) != p.pid and "Z" not in line.split()[2]]
            os.killpg(p.pid, signal.SIGKILL)
            out, _ = p.communicate()
            if live:
                sys.exit("trial %d (%d ranks, killed %s): survivors did not exit within 120 s\n"
                         "processes:\n%s\noutput:\n%s"
                         % (trial, p_ranks, victims, ps, out[-3000:]))
            # Every rank exited; mpirun itself did not (Open MPI 4.1's launcher can
            # deadlock when a rank dies during start-up: doc/MPI.md, "A rank killed").
            launcher_hangs.append(trial)
    # What was committed is whole: each checkpoint equals the reference's.
    for step in committed(folder):
        with h5py.File(os.path.join(folder, "ckpt-%012d.h5" % step), "r") as f:
            if f["model/weight"][()].tobytes() != ref_weights[step]:
                sys.exit("trial %d: checkpoint %d differs from the reference" % (trial, step))
    rc, out = run(q_ranks, folder, "--resume", *ASYNC)
    if rc != 0:
        sys.exit("trial %d: resume on %d ranks failed:\n%s" % (trial, q_ranks, out))
    if final(folder) != ref:
        sys.exit("trial %d: killed on %d ranks, resumed on %d: final weights differ"
                 % (trial, p_ranks, q_ranks))
    resumed_ok = ("resumed at step 15" in out or
                  (ASYNC and "resumed at step 10" in out))
    if trial == 0 and not resumed_ok:
        sys.exit("trial 0: expected to resume at step 15%s:\n%s"
                 % (" or 10" if ASYNC else "", out))
    shutil.rmtree(folder)
print("%d trial(s)%s: killed runs resumed on another rank count end bitwise as the reference"
      % (trials, " (async saves)" if ASYNC else ""))
if launcher_hangs:
    print("mpirun hung after every rank had exited in trial(s) %s (killed by this script)"
          % ", ".join(map(str, launcher_hangs)))
shutil.rmtree(top)
