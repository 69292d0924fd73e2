#!/bin/sh
# Install what nnh5 needs from Debian's packages: idempotent, and quiet when
# everything is already present. Run as root (or through sudo).
#   tools/bootstrap.sh          what building the library, tool and examples needs
#   tools/bootstrap.sh --test   also what the full test suite needs
set -eu

build_pkgs="gcc g++ pkg-config meson ninja-build libhdf5-dev hdf5-tools libopenblas-dev
libxxhash-dev libcjson-dev binutils"
# python3-sklearn: the digits data of examples/train_digits.
# clang + libclang-rt-14-dev: libFuzzer (fuzz/run.sh); strace: the hostile-file check;
# groff-base: the manual page's rendering check (tests/man_check.sh).
test_pkgs="libcmocka-dev python3-h5py python3-numpy python3-torch python3-xxhash python3-sklearn
valgrind clang libclang-rt-14-dev strace groff-base"

pkgs=$build_pkgs
[ "${1:-}" = "--test" ] && pkgs="$pkgs $test_pkgs"

missing=""
for p in $pkgs; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

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
