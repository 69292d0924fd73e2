#!/usr/bin/python3
"""Print the end of each failed test's output from meson's testlog.json.

Usage: print-failures.py BUILD_DIR
Called by tools/run-tests.sh so that a failure in CI shows why it failed.
"""
import json
import sys

build = sys.argv[1]
try:
    lines = open(f"{build}/meson-logs/testlog.json", errors="replace").read().splitlines()
except OSError as e:
    print(f"{build}: no test log: {e}")
    sys.exit(0)
for line in lines:
    t = json.loads(line)
    if t.get("result") in ("OK", "SKIP", "EXPECTEDFAIL"):
        continue
    out = ((t.get("stdout") or "") + (t.get("stderr") or "")).splitlines()
    marked = [x for x in out if x.startswith(("FAIL", "ERROR", "==")) or "Sanitizer" in x
              or "Traceback" in x or "Error" in x][:40]
    print(f"{build}: --- {t.get('name')}: {t.get('result')}: lines that say why ---")
    for text in marked:
        print(f"{build}: {text}")
    print(f"{build}: --- {t.get('name')}: its last {min(len(out), 60)} lines ---")
    for text in out[-60:]:
        print(f"{build}: {text}")
