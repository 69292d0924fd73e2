#!/usr/bin/python3
"""Build the Keras fixtures (make_keras_fixtures.py) in a fresh folder, then
run the C tests on them. Usage: run_keras_tests.py TEST_KERAS TMPDIR.
Exits 77 (skip) without h5py or numpy."""
import os
import shutil
import subprocess
import sys

try:
    import h5py  # noqa: F401
    import numpy  # noqa: F401
except ImportError:
    sys.exit(77)

exe, tmp = sys.argv[1], sys.argv[2]
shutil.rmtree(tmp, ignore_errors=True)
here = os.path.dirname(os.path.abspath(__file__))
subprocess.run([sys.executable, os.path.join(here, "make_keras_fixtures.py"), tmp], check=True)
sys.exit(subprocess.run([exe, tmp]).returncode)
