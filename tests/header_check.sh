#!/bin/sh
# Each public header must compile on its own, strictly, in C11 and in C++.
# nnh5/mpi.h needs MPI's headers: it is compiled with the flags given as the
# third argument (pkg-config's ompi-c, and -DNNH5_MPI), and skipped without.
set -eu
inc=$1; out=$2; mpi_flags=${3:-}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for h in "$inc"/nnh5.h "$inc"/nnh5/*.h; do
	rel=${h#"$inc"/}
	extra=""
	if [ "$rel" = nnh5/mpi.h ]; then
		[ -n "$mpi_flags" ] || continue
		# MPI C++ bindings (deprecated) do not compile cleanly: C++ users skip them too.
		extra="-DNNH5_MPI -DOMPI_SKIP_MPICXX -DMPICH_SKIP_MPICXX $mpi_flags"
	fi
	printf '#include <%s>\nint nnh5_header_check_dummy;\n' "$rel" > "$tmp/t.c"
	# shellcheck disable=SC2086
	cc -std=c11 -pedantic -Wall -Wextra -Werror -I"$inc" $extra -c "$tmp/t.c" -o "$tmp/t.o"
	if command -v c++ >/dev/null 2>&1; then
		cp "$tmp/t.c" "$tmp/t.cpp"
		# shellcheck disable=SC2086
		c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$inc" $extra -c "$tmp/t.cpp" -o "$tmp/t.o"
	fi
done
touch "$out"
