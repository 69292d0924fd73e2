#!/bin/sh
# Fuzz nnh5's loaders (doc/FUZZING.md).
#
#   fuzz/run.sh [SECONDS]     each target for SECONDS (default 60)
#
# Builds the libFuzzer targets with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz/ (FUZZ_BUILD overrides), writes
# the seed corpus (fuzz/mkseeds plus the test suite's h5py and hostile files
# when a build has made them), fuzzes each target in fork mode (a crash is
# saved and fuzzing goes on), replays the final corpus with leak detection,
# and classifies every crash, timeout and out-of-memory input by the first
# stack frame outside the C library and the sanitizer runtime: inside HDF5
# (a known limit of HDF5 1.10's parser; nnh5's untrusted mode contains it,
# which this script checks with `nnh5 verify --untrusted`) or in nnh5 (a bug:
# the script fails). Exit 0: no nnh5 finding; 1: nnh5 findings; 77: no clang.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
dir=${FUZZ_BUILD:-build-fuzz}
work=$dir/fuzz-work

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: skipped: clang is not installed (Debian: clang libclang-rt-14-dev)"
	exit 77
fi
opts="-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=false
-Dtests=disabled -Dexamples=false -Dbuildtype=debugoptimized"
if [ -f "$dir/build.ninja" ]; then
	# shellcheck disable=SC2086
	CC=clang meson setup --reconfigure "$dir" $opts >"$dir.setup.log" 2>&1
else
	# shellcheck disable=SC2086
	CC=clang meson setup "$dir" $opts >"$dir.setup.log" 2>&1
fi || { tail -20 "$dir.setup.log"; exit 1; }
ninja -C "$dir" >"$dir.compile.log" 2>&1 || { tail -30 "$dir.compile.log"; exit 1; }
if [ ! -x "$dir/fuzz/fuzz_load" ]; then
	echo "fuzz: skipped: this clang cannot link -fsanitize=fuzzer (Debian: libclang-rt-14-dev)"
	exit 77
fi

mkdir -p "$work/seeds"
"$dir/fuzz/mkseeds" "$work/seeds" || exit 1
for f in build*/tests/xcheck/corpus/h5py/*.h5 build*/tests/hostile/corpus/*.h5; do
	[ -f "$f" ] && [ "$(wc -c <"$f")" -le 65536 ] && cp "$f" "$work/seeds/"
done
# safetensors seeds: the differential test's last batch of files (tests/formats)
for f in build*/tests/formats/st-diff/*.safetensors; do
	[ -f "$f" ] && cp "$f" "$work/seeds/"
done
nseeds=$(ls "$work/seeds" | wc -l)

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# Where did it stop? The first frame outside libc and the sanitizer runtime.
blame() { # log file -> "HDF5 <function>" | "nnh5 <function>" | "unknown"
	grep -E '^ *#[0-9]+ 0x' "$1" |
		grep -vE 'libc\.so|/sysdeps/|libasan|libubsan|libclang_rt|compiler-rt|__asan|__sanitizer|__ubsan|__interceptor_|in (malloc|calloc|realloc|free|memcpy|memmove|memset|abort|raise) |fuzzer::' |
		awk 'NR == 1 { lib = ($0 ~ /libhdf5/) ? "HDF5" : "nnh5" }
			fn == "" { for (i = 1; i < NF; i++) if ($i == "in") { fn = $(i + 1); break } }
			END { if (NR) print lib, (fn == "" ? "?" : fn) }'
}

status=0
total_execs=0
for t in fuzz_load fuzz_model fuzz_safetensors fuzz_direct; do
	corpus=$work/corpus-$t
	art=$work/artifacts-$t
	mkdir -p "$corpus" "$art"
	start=$(date +%s)
	ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" \
		"$dir/fuzz/$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
		-max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$art/" "$corpus" "$work/seeds" >"$work/$t.log" 2>&1
	took=$(( $(date +%s) - start ))
	stats=$(grep -E '^#[0-9]+: cov:' "$work/$t.log" | tail -1)
	execs=$(echo "$stats" | sed -n 's/^#\([0-9]*\):.*/\1/p')
	cov=$(echo "$stats" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ncorp=$(ls "$corpus" | wc -l)
	total_execs=$((total_execs + ${execs:-0}))
	# Leaks: replay the corpus once with full stacks (HDF5 has no frame pointers).
	leak="no leaks"
	# allocator_may_return_null as in the run: an input that makes HDF5 ask for
	# an impossible size is HDF5's error path, not a leak.
	if ! ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:allocator_may_return_null=1" \
		LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp" \
		"$dir/fuzz/$t" -runs=0 -max_len=65536 "$corpus" >"$work/$t.leaks.log" 2>&1; then
		leak="LEAK (see $work/$t.leaks.log)"
		status=1
	fi
	in_hdf5=0
	in_nnh5=0
	for a in "$art"/crash-* "$art"/timeout-* "$art"/oom-* "$art"/leak-*; do
		case "$a" in *.log) continue ;; esac
		[ -f "$a" ] || continue
		ASAN_OPTIONS="detect_leaks=0" timeout 60 "$dir/fuzz/$t" -timeout=10 "$a" >"$a.log" 2>&1
		who=$(blame "$a.log")
		case "$who" in
		HDF5*)
			in_hdf5=$((in_hdf5 + 1))
			# Untrusted mode must turn it into an error, not a crash of the caller.
			if "$dir/tools/nnh5" verify --untrusted --timeout 20 "$a" >"$a.untrusted.log" 2>&1 ||
			   [ $? -eq 1 ]; then
				:
			else
				echo "fuzz: $t: $(basename "$a"): nnh5 verify --untrusted did not contain it"
				status=1
			fi
			echo "fuzz: $t: $(basename "$a"): inside $who" ;;
		*)
			in_nnh5=$((in_nnh5 + 1))
			status=1
			echo "fuzz: $t: $(basename "$a"): in ${who:-unknown code}: see $a.log" ;;
		esac
	done
	echo "fuzz: $t: ${execs:-0} executions in ${took} s (cov ${cov:-?}, corpus $ncorp from $nseeds seeds); crashes/timeouts/ooms: $in_hdf5 inside HDF5, $in_nnh5 in nnh5; $leak"
done
echo "fuzz: $total_execs executions in total"
exit $status
