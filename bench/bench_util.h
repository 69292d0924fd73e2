/*
 * bench/bench_util.h - what the benchmark programs share: a monotonic clock
 * the median of a run's timings, and the peak resident memory.
 */
#ifndef NNH5_BENCH_UTIL_H
#define NNH5_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Milliseconds on CLOCK_MONOTONIC. */
double bench_now_ms(void);

/* The median of v[0..n-1] (n >= 1); v is left as it is. NaN if out of memory. */
double bench_median(const double *v, size_t n);

/* A field of /proc/self/status given with its colon ("VmHWM:"), in KiB; -1 if absent. */
long bench_status_kib(const char *field);

/* Reset VmHWM to the current resident size; false if the kernel refuses. */
bool bench_reset_peak(void);

#endif
