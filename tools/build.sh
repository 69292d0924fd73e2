#!/bin/sh
# Configure (or reconfigure) and compile nnh5 in ./build (or the folder given).
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build}
if [ -f "$dir/build.ninja" ]; then
	meson setup --reconfigure "$dir" >/dev/null
else
	meson setup "$dir" >/dev/null
fi
meson compile -C "$dir" >/dev/null
echo "built: $dir" >&2
