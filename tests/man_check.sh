#!/bin/sh
# man_check.sh PAGE VERSION [NNH5]: the manual page renders without a single
# groff warning, names the project's version, and documents every command
# and option the tool's --help texts list (so the two cannot drift apart).
set -eu
page=$1 version=$2 tool=${3:-}
command -v groff >/dev/null || { echo "groff is not installed (Debian: groff-base)"; exit 77; }
warnings=$(groff -man -ww -z "$page" 2>&1 || echo "groff failed")
if [ -n "$warnings" ]; then
	echo "$page: groff warnings:"; echo "$warnings"; exit 1
fi
grep -q "^\.TH NNH5 1 .*\"nnh5 $version\"" "$page" || {
	echo "$page: the .TH line does not name nnh5 $version"; exit 1; }
[ -n "$tool" ] || { echo "ok: $page renders without warnings"; exit 0; }
# The page's source with roff's escaped hyphens made plain, to look options up.
text=$(sed 's/\\-/-/g' "$page")
missing=""
for cmd in $("$tool" --help | awk '/^commands:/ {on = 1; next} on && NF == 0 {on = 0} on {print $1}' | sort -u); do
	printf '%s\n' "$text" | grep -q "^\.B.* \"*$cmd\b" || missing="$missing command:$cmd"
	for opt in $("$tool" "$cmd" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		printf '%s\n' "$text" | grep -q -- "$opt" || missing="$missing $cmd:$opt"
	done
done
for opt in $("$tool" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	printf '%s\n' "$text" | grep -q -- "$opt" || missing="$missing nnh5:$opt"
done
if [ -n "$missing" ]; then
	echo "$page does not document:$missing"; exit 1
fi
echo "ok: $page renders without warnings and documents every command and option of --help"
