#!/bin/sh
# Each public header must compile on its own, strictly, in C11 and in C++.
set -eu
inc=$1; out=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for h in "$inc"/nnh5.h "$inc"/nnh5/*.h; do
	rel=${h#"$inc"/}
	printf '#include <%s>\nint nnh5_header_check_dummy;\n' "$rel" > "$tmp/t.c"
	cc -std=c11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o"
	if command -v c++ >/dev/null 2>&1; then
		cp "$tmp/t.c" "$tmp/t.cpp"
		c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.cpp" -o "$tmp/t.o"
	fi
done
touch "$out"
