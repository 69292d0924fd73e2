#!/bin/sh
# bench/speed.sh [BUILD_DIR] - the tables of doc/SPEED.md.
# Builds the benchmarks, then runs bench/io_bench (saves, loads and lazy
# loads of three workloads against raw write()/read(), torch.save/torch.load
# and h5py, through bench/peers.py) and bench/nn_bench (forward passes
# against bare sgemm and torch). torch and h5py are Debian's, under
# /usr/bin/python3; without them their columns say n/a.
# NNH5_BENCH_REPS sets the number of timed rounds (default 7).
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${NNH5_BENCH_REPS:-7}
ninja -C "$build" bench/io_bench bench/nn_bench >/dev/null
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(uname -m), Linux $(uname -r)):"
echo
"$build/bench/io_bench" --reps "$reps" --dir "$build/bench/io_bench_tmp" --peers bench/peers.py
echo
"$build/bench/nn_bench" bench/torch_forward.py
