#!/bin/sh
# The full test suite: a normal build, then the same tests built with
# AddressSanitizer and UndefinedBehaviorSanitizer, then a short fuzz run when
# clang is installed (fuzz/run.sh). Slow suites are left out (meson's default
# test setup excludes them; run them with
# meson test -C build-test --setup slow --suite slow). Ends with the line
# "N passed, N failed".
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0

run_suite() { # dir, meson setup args...
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1
	else
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1
	fi || { cat "$dir.setup.log"; failed=$((failed + 1)); return; }
	if ! meson compile -C "$dir" >"$dir.compile.log" 2>&1; then
		tail -50 "$dir.compile.log"
		failed=$((failed + 1))
		return
	fi
	meson test -C "$dir" --no-suite slow --print-errorlogs --num-processes 2 \
		>"$dir.test.log" 2>&1
	grep -E '^ *[0-9]+/[0-9]+ ' "$dir.test.log" | sed "s|^|$dir: |"
	/usr/bin/python3 tools/print-failures.py "$dir" || true
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$dir.test.log")
	fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$dir.test.log")
	timeout=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$dir.test.log")
	xpass=$(sed -n 's/^Unexpected Pass: *\([0-9]*\).*/\1/p' "$dir.test.log")
	if [ -z "$ok" ]; then
		tail -30 "$dir.test.log"
		failed=$((failed + 1))
		return
	fi
	passed=$((passed + ok))
	failed=$((failed + ${fail:-0} + ${timeout:-0} + ${xpass:-0}))
}

run_suite build-test -Dbuildtype=debugoptimized
# Full allocation stacks (HDF5 has no frame pointers) so that tests/lsan.supp
# can name the leaks that are HDF5's own.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:fast_unwind_on_malloc=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Python cannot load an AddressSanitizer library (the runtime must come
# first): the Python module keeps to h5py in this build's tests.
export NNH5_PYTHON_PURE=1
run_suite build-asan -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
unset NNH5_PYTHON_PURE

# A short fuzz run (15 s per target) when clang with libFuzzer is installed:
# one check, failed by any finding in nnh5's own code (doc/FUZZING.md).
FUZZ_BUILD=build-fuzz fuzz/run.sh "${NNH5_FUZZ_SECONDS:-15}" >build-fuzz.log 2>&1
fuzz_status=$?
sed 's/^/build-fuzz: /' build-fuzz.log | grep -E 'fuzz: ' || tail -20 build-fuzz.log
case $fuzz_status in
0) passed=$((passed + 1)) ;;
77) ;; # no clang: skipped
*) failed=$((failed + 1)) ;;
esac

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
