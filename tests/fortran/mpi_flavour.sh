#!/bin/sh
# The Fortran module with the MPI flavour: fortran_check linked against
# libnnh5_mpi (instead of libnnh5) writes every array of spec.py, reads them
# back, and the serial build reads the same files bitwise.
#   mpi_flavour.sh FORTRAN_CHECK_MPI FORTRAN_CHECK_SERIAL DIR
set -eu
mpi=$1
serial=$2
dir=$3
rm -rf "$dir"
mkdir -p "$dir"
if ldd "$mpi" | grep -q 'libnnh5\.so'; then
	echo "FAIL: $mpi links the serial libnnh5" >&2
	exit 1
fi
ldd "$mpi" | grep -q 'libnnh5_mpi\.so' || { echo "FAIL: $mpi does not link libnnh5_mpi" >&2; exit 1; }
"$mpi" write "$dir"
"$mpi" check "$dir" f
"$serial" check "$dir" f
