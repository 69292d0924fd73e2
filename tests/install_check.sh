#!/bin/sh
# Install into a scratch DESTDIR, then build and run a program against the
# installed headers and library found through pkg-config (nnh5.pc).
set -eu
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --destdir "$dest" --quiet >/dev/null
pc=$(find "$dest" -name nnh5.pc | head -1)
[ -n "$pc" ] || { echo "nnh5.pc was not installed"; exit 1; }
export PKG_CONFIG_SYSROOT_DIR="$dest" PKG_CONFIG_PATH="$(dirname "$pc")"
libdir=$(dirname "$(find "$dest" -name "libnnh5.so" | head -1)")
cat > "$dest/consumer.c" <<'C'
#include <nnh5.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	nnh5_tensor *t;
	char *s;
	if (nnh5_tensor_arange(&t, NNH5_INT64, 0, 4, 1) || nnh5_tensor_format(&s, t))
		return 1;
	int bad = strcmp(s, "tensor([0, 1, 2, 3])") != 0;
	puts(s);
	nnh5_free(s);
	nnh5_tensor_free(t);
	return bad;
}
C
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$dest/consumer.c" $(pkg-config --cflags --libs nnh5) \
	-Wl,-rpath,"$libdir" -o "$dest/consumer"
"$dest/consumer"
echo "ok: built and ran against the installed nnh5 via pkg-config"
# The Python module and its converter are installed beside the nnh5 tool.
bindir=$(dirname "$(find "$dest" -name nnh5-convert | head -1)")
[ -f "$bindir/nnh5.py" ] && [ -x "$bindir/nnh5-convert" ] && [ -x "$bindir/nnh5" ] ||
	{ echo "nnh5.py and nnh5-convert are not installed beside nnh5"; exit 1; }
if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
	"$bindir/nnh5-convert" --help >/dev/null
	echo "ok: the installed nnh5-convert finds nnh5.py beside it"
fi
# The Fortran module (when built): nnh5.mod and libnnh5_fortran through
# nnh5-fortran.pc, as doc/FORTRAN.md tells users to build.
fpc=$(find "$dest" -name nnh5-fortran.pc | head -1)
if [ -n "$fpc" ] && command -v gfortran >/dev/null 2>&1; then
	cat > "$dest/consumer.f90" <<'F'
program consumer
  use nnh5
  implicit none
  real :: a(3, 2), b(3, 2)
  real, allocatable :: c(:,:)
  integer :: st
  a = reshape([1., 2., 3., 4., 5., 6.], [3, 2])
  st = nnh5_save_tensor("consumer.h5", a)
  if (st /= NNH5_OK) error stop 1
  st = nnh5_load_tensor("consumer.h5", c)
  if (st /= NNH5_OK) error stop 2
  b = c
  if (any(shape(c) /= [3, 2]) .or. any(b /= a)) error stop 3
  print '(a)', "nnh5 " // nnh5_version()
end program
F
	libdir_f=$(dirname "$(find "$dest" -name "libnnh5_fortran.so" | head -1)")
	# shellcheck disable=SC2046
	(cd "$dest" && gfortran consumer.f90 $(pkg-config --cflags --libs nnh5-fortran) \
		-Wl,-rpath,"$libdir_f:$libdir" -o consumer_f && ./consumer_f)
	echo "ok: built and ran a Fortran program against the installed module via pkg-config"
	# the module's library names no nnh5 library: the program picks libnnh5 or libnnh5_mpi
	if readelf -d "$libdir_f/libnnh5_fortran.so" | grep NEEDED | grep -q 'libnnh5'; then
		echo "libnnh5_fortran.so depends on an nnh5 library"
		exit 1
	fi
	echo "ok: libnnh5_fortran.so does not depend on libnnh5"
fi
# The MPI flavour, when built: nnh5-mpi.pc gives <nnh5/mpi.h> (with NNH5_MPI)
# and libnnh5_mpi; a program of two ranks writes and reads a sharded tensor.
mpc=$(find "$dest" -name nnh5-mpi.pc | head -1)
if [ -n "$mpc" ] && command -v mpirun >/dev/null 2>&1; then
	cat > "$dest/mpi_consumer.c" <<'C'
#include <nnh5.h>
#include <nnh5/mpi.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	int rank, n, bad = 1;
	int64_t shape[1] = { 8 }, start[1], count[1];
	nnh5_mpi_sharding s = NNH5_MPI_SHARDING_INIT;
	nnh5_mpi_file *f;
	nnh5_tensor *t, *back;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &n);
	nnh5_mpi_sharding_init(&s, 1, shape);
	s.parts[0] = n;
	s.coord[0] = rank;
	nnh5_mpi_sharding_box(start, count, &s);
	if (!nnh5_tensor_full(&t, NNH5_INT64, 1, count, (double)rank) &&
	    !nnh5_mpi_file_create(&f, MPI_COMM_WORLD, argv[1], NULL) &&
	    !nnh5_mpi_write_sharded(f, "x", t, &s) && !nnh5_mpi_file_close(f) &&
	    !nnh5_mpi_file_open(&f, MPI_COMM_WORLD, argv[1], NULL) &&
	    !nnh5_mpi_read_sharded(&back, f, "x", &s) && !nnh5_mpi_file_close(f))
		bad = !nnh5_tensor_bitwise_equal(t, back);
	if (bad)
		fprintf(stderr, "rank %d: %s\n", rank, nnh5_error_message());
	MPI_Finalize();
	return bad;
}
C
	# Neither a sysroot nor --define-variable: both would move MPI's own
	# (system) paths too. A copy of the .pc file with its prefix in $dest.
	mkdir "$dest/pc"
	sed "s|^prefix=|prefix=$dest|" "$mpc" > "$dest/pc/nnh5-mpi.pc"
	# shellcheck disable=SC2046
	cc -std=c11 -Wall -Werror "$dest/mpi_consumer.c" \
		$(env -u PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH="$dest/pc" \
		  pkg-config --cflags --libs nnh5-mpi) \
		-Wl,-rpath,"$libdir" -o "$dest/mpi_consumer"
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
		mpirun --oversubscribe -np 2 "$dest/mpi_consumer" "$dest/sharded.h5"
	echo "ok: built and ran an MPI program against the installed nnh5-mpi via pkg-config"
fi
# The Fortran module nnh5_mpi, when built: nnh5-fortran-mpi.pc, as
# doc/FORTRAN.md ("Collective loads") tells users to build; two ranks load
# a model saved by the program's rank 0 and run it.
fmpc=$(find "$dest" -name nnh5-fortran-mpi.pc | head -1)
if [ -n "$fmpc" ] && command -v mpif90 >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then
	cat > "$dest/mpi_consumer.f90" <<'F'
program mpi_consumer
  use mpi
  use nnh5
  use nnh5_mpi
  implicit none
  type(nnh5_model) :: model
  integer :: ierr, st
  call MPI_Init(ierr)
  st = nnh5_mpi_load_model(model, MPI_COMM_WORLD, 0, "no-such-model.h5")
  if (st /= NNH5_ERR_NOT_FOUND) error stop 1
  call MPI_Finalize(ierr)
end program
F
	mkdir -p "$dest/pc"
	for f in "$mpc" "$fmpc"; do
		sed "s|^prefix=|prefix=$dest|" "$f" > "$dest/pc/$(basename "$f")"
	done
	libdir_f=$(dirname "$(find "$dest" -name "libnnh5_fortran_mpi.so" | head -1)")
	# shellcheck disable=SC2046
	(cd "$dest" && mpif90 mpi_consumer.f90 \
		$(env -u PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH="$dest/pc" \
		  pkg-config --cflags --libs nnh5-fortran-mpi) \
		-Wl,-rpath,"$libdir_f:$libdir" -o mpi_consumer_f)
	(cd "$dest" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
		OMPI_MCA_btl=self,vader mpirun --oversubscribe -np 2 ./mpi_consumer_f)
	echo "ok: built and ran a Fortran MPI program against the installed nnh5_mpi via pkg-config"
fi
