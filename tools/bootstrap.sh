#!/bin/sh
# Install what nnh5 needs from Debian's packages: idempotent, and quiet when
# everything is already present. Run as root (or through sudo).
#   tools/bootstrap.sh          what building the library, tool and examples needs
#   tools/bootstrap.sh --test   also what the full test suite needs
#   tools/bootstrap.sh --bench  also what the benchmarks of bench/ need (doc/SPEED.md);
#                               the test suite never needs these (--test --bench: both)
set -eu

# gfortran: the Fortran module (fortran/) and examples/heat (OpenMP: libgomp comes with it).
# libjansson-dev: JSON in the library (safetensors, Keras); libcjson-dev: the tool's JSON output.
build_pkgs="gcc g++ gfortran pkg-config meson ninja-build libhdf5-dev hdf5-tools libopenblas-dev
libxxhash-dev libjansson-dev libcjson-dev binutils"
# The MPI flavour, libnnh5_mpi (-Dmpi=auto builds it when these are present),
# and mpirun for its tests and example. Installing libhdf5-openmpi-dev makes the
# plain pkg-config name hdf5 mean the MPI build: meson.build names hdf5-serial.
build_pkgs="$build_pkgs libhdf5-openmpi-dev libopenmpi-dev openmpi-bin"
# python3-sklearn: the digits data of examples/train_digits.
# clang + libclang-rt-14-dev: libFuzzer (fuzz/run.sh); strace: the hostile-file check;
# groff-base: the manual page's rendering check (tests/man_check.sh).
# hdf5-filter-plugin(-blosc-serial): the LZ4 and blosc filters of the compression
# profiles (the library works without them: the profiles fall back to deflate).
test_pkgs="libcmocka-dev python3-h5py python3-numpy python3-torch python3-xxhash python3-sklearn
valgrind clang libclang-rt-14-dev strace groff-base hdf5-filter-plugin
hdf5-filter-plugin-blosc-serial"

# python3-torchvision: the resnet50 workload of bench/workloads.py; torch, numpy and
# h5py: the peers of bench/workloads.py, bench/peers.py and bench/torch_forward.py.
bench_pkgs="python3-torchvision python3-torch python3-numpy python3-h5py"

testing=false
benching=false
for arg in "$@"; do
	case "$arg" in
	--test) testing=true ;;
	--bench) benching=true ;;
	*) echo "usage: tools/bootstrap.sh [--test] [--bench]" >&2; exit 2 ;;
	esac
done
pkgs=$build_pkgs
$testing && pkgs="$pkgs $test_pkgs"
$benching && pkgs="$pkgs $bench_pkgs"

missing=""
for p in $pkgs; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
# node and npm run the JavaScript readers of tests/js: any node will do (Debian's
# nodejs and npm when there is none).
if $testing && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
	echo "bootstrap: installing$missing" >&2
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The npm packages of tests/js (jsfive, h5wasm), at the versions pinned in its
# package-lock.json, into tests/js/node_modules (gitignored); again only when
# the lock file changed since the last install.
js=$(cd "$(dirname "$0")/../tests/js" && pwd)
if $testing && { [ ! -f "$js/node_modules/.package-lock.json" ] ||
	[ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; }; then
	echo "bootstrap: npm ci in $js" >&2
	(cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
