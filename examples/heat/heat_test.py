#!/usr/bin/python3
"""examples/heat killed with SIGKILL at random moments resumes bitwise.

    heat_test.py HEAT_EXE WORKDIR TRIALS KILLS [STEPS [SEED]]

Trains the source-term model (make_model.py; exit 77 without torch), runs
heat once uninterrupted, then TRIALS times: starts heat in a fresh
checkpoint folder and kills it (SIGKILL) after a random delay, up to KILLS
times per trial (each delay at most a 1/(KILLS+1) share of the
uninterrupted run; a restart that finishes before its kill ends the trial),
each restart with a random OpenMP thread count (1 to 4), then lets it
finish. The last kill of a trial in which no restart has resumed yet
waits for a committed checkpoint ("ckpt-*.h5" in the folder; temporary
files start with ".") and comes a random moment after it, so that the
next restart resumes however slow the build (sanitizers) or the
machine; a trial whose run finishes before a kill could bring a resume
starts again in a fresh folder (up to 3 times). Every trial's final field
must equal the uninterrupted run's bitwise, and at least one restart must
have resumed from a checkpoint.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
heat, work, trials, kills = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
steps = sys.argv[5] if len(sys.argv) > 5 else "400"
seed = int(sys.argv[6]) if len(sys.argv) > 6 else int(time.time())
every = "20"
tools = os.path.join(here, "..", "..", "tools")
sys.path.insert(0, tools)
try:
    import numpy as np  # noqa: F401
    import nnh5
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
model = os.path.join(work, "heat_source.h5")
r = subprocess.run([sys.executable, os.path.join(here, "make_model.py"), model, tools])
if r.returncode != 0:
    sys.exit(r.returncode)


def committed(ckpt):
    """True once the folder holds a committed checkpoint."""
    try:
        return any(n.startswith("ckpt-") and n.endswith(".h5") for n in os.listdir(ckpt))
    except FileNotFoundError:
        return False


def start(ckpt, out, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    # a 32 x 32 grid; no fsync: a kill tests atomic saves, fsync only matters for power cuts
    return subprocess.Popen([heat, model, ckpt, steps, every, out, "32", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


t0 = time.monotonic()
ref_out = os.path.join(work, "ref.h5")
p = start(os.path.join(work, "ref_ckpt"), ref_out, 2)
text, _ = p.communicate()
duration = time.monotonic() - t0
print(text.strip())
if p.returncode != 0:
    sys.exit(f"the uninterrupted run failed ({p.returncode})")
ref = nnh5.load(ref_out, numpy=True)
print(f"uninterrupted: {duration:.2f} s; seed {seed}")

rng = random.Random(seed)
failures = resumed = total_kills = 0
for trial in range(trials):
    ckpt = os.path.join(work, f"trial{trial}")
    out = os.path.join(work, f"trial{trial}.h5")
    done = 0
    trial_resumed = 0
    again = 3  # fresh starts left for a trial whose run finished before a kill could resume it
    while True:
        threads = rng.randint(1, 4)
        p = start(ckpt, out, threads)
        if done < kills:
            # at most a 1/(KILLS+1) share of a whole run, so that every kill lands
            delay = rng.uniform(0.05, duration / (kills + 1))
            if done == kills - 1 and not trial_resumed:
                # the last kill comes after a committed checkpoint
                deadline = time.monotonic() + 120
                while not committed(ckpt) and p.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
                delay = rng.uniform(0.0, duration / (4 * (kills + 1)))
            try:
                text, _ = p.communicate(timeout=delay)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                text, _ = p.communicate()
                done += 1
                total_kills += 1
                resumed += "resumed" in text
                trial_resumed += "resumed" in text
                print(f"trial {trial}: killed ({threads} threads) after: "
                      f"{text.strip().splitlines()[0] if text.strip() else '(nothing)'}")
                continue
        else:
            text, _ = p.communicate()
        resumed += "resumed" in text
        trial_resumed += "resumed" in text
        if p.returncode != 0:
            print(f"FAILED: trial {trial}: exit {p.returncode}: {text.strip()}")
            failures += 1
            break
        got = nnh5.load(out, numpy=True)
        same = got.dtype == ref.dtype and got.shape == ref.shape and got.tobytes() == ref.tobytes()
        print(f"trial {trial}: {done} kills, last run {threads} threads, "
              f"{'bitwise equal' if same else 'DIFFERENT'}: {text.strip().splitlines()[-1]}")
        failures += not same
        if kills and not trial_resumed and again and same:
            # a busy machine can make the measured duration (and so the delays) longer than
            # a restart's whole run: start the trial again in a fresh folder
            again -= 1
            shutil.rmtree(ckpt, ignore_errors=True)
            print(f"trial {trial}: finished before any restart resumed; again from scratch")
            done = 0
            continue
        break
if kills and not resumed:
    print("FAILED: no run resumed from a checkpoint")
    failures += 1
print(f"{trials} trials, {total_kills} kills, {resumed} resumed runs, {failures} failures")
sys.exit(1 if failures else 0)
