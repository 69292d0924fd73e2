#!/bin/sh
# The shared library exports nnh5_ symbols only.
set -eu
bad=$(nm -D --defined-only "$1" | awk '$2 ~ /^[TDBRV]$/ {print $3}' | grep -v '^nnh5_' || true)
if [ -n "$bad" ]; then
	echo "symbols outside the nnh5_ prefix are exported:"; echo "$bad"; exit 1
fi
n=$(nm -D --defined-only "$1" | grep -c ' T nnh5_')
[ "$n" -gt 50 ] || { echo "only $n nnh5_ functions exported"; exit 1; }
echo "ok: $n nnh5_ functions exported, nothing else"
