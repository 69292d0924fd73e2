#!/bin/sh
# The shared library exports nnh5_ symbols only. With "dispatch" (libxxhash
# has its x86 dispatcher, lib/core/xxh.h), every XXH3 hash of the library
# goes through it: the default XXH3_64bits and XXH3_64bits_update are never
# imported, and the dispatched update is.
#   tests/symbols.sh LIBRARY dispatch|plain
set -eu
bad=$(nm -D --defined-only "$1" | awk '$2 ~ /^[TDBRV]$/ {print $3}' | grep -v '^nnh5_' || true)
if [ -n "$bad" ]; then
	echo "symbols outside the nnh5_ prefix are exported:"; echo "$bad"; exit 1
fi
n=$(nm -D --defined-only "$1" | grep -c ' T nnh5_')
[ "$n" -gt 50 ] || { echo "only $n nnh5_ functions exported"; exit 1; }
echo "ok: $n nnh5_ functions exported, nothing else"
if [ "${2:-plain}" = dispatch ]; then
	imports=$(nm -D --undefined-only "$1" | awk '{print $2}' | sed 's/@.*//')
	plain=$(echo "$imports" | grep -x -e XXH3_64bits -e XXH3_64bits_update || true)
	if [ -n "$plain" ]; then
		echo "the library imports libxxhash's default XXH3 code, not its dispatcher:"
		echo "$plain"; exit 1
	fi
	echo "$imports" | grep -qx XXH3_64bits_update_dispatch ||
		{ echo "XXH3_64bits_update_dispatch is not imported"; exit 1; }
	echo "ok: every XXH3 hash goes through libxxhash's dispatcher"
fi
