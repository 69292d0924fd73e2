#!/bin/sh
# The Fortran module nnh5_mpi under mpirun (tests/fortran/mpi_load.f90):
# NP ranks load one model collectively and run it; rank 0's output must be
# the C library's forward pass of the same input, bitwise.
#   mpi_load.sh MPIRUN NP MPI_LOAD C_FILES NNH5_TOOL DIR
set -eu
mpirun=$1
np=$2
prog=$3
cfiles=$4
tool=$5
dir=$6
rm -rf "$dir"
mkdir -p "$dir"
"$cfiles" mlp "$dir/mlp.h5"
"$mpirun" --oversubscribe -np "$np" "$prog" "$dir/mlp.h5" "$dir"
"$cfiles" forward "$dir/mlp.h5" "$dir/x.h5" "$dir/y_c.h5"
# nnh5 diff exits 0 only when every tensor is identical.
"$tool" diff "$dir/y.h5" "$dir/y_c.h5"
echo "ok: rank 0's forward pass equals C's bitwise"
