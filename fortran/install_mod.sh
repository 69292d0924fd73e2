#!/bin/sh
# Install the module files (meson installs none): nnh5.mod, and nnh5_mpi.mod
# when the MPI flavour built it. $1: the build folder of fortran/, $2: the
# install folder relative to the prefix.
set -eu
mod=$(find "$1" -name nnh5.mod | head -1)
[ -n "$mod" ] || { echo "install_mod.sh: nnh5.mod not found in $1" >&2; exit 1; }
dest="${MESON_INSTALL_DESTDIR_PREFIX}/$2"
mkdir -p "$dest"
cp "$mod" "$dest/nnh5.mod"
mpimod=$(find "$1" -name nnh5_mpi.mod | head -1)
if [ -n "$mpimod" ]; then
	cp "$mpimod" "$dest/nnh5_mpi.mod"
fi
