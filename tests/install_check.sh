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
