/*
 * bench/bench_util.h - what the benchmark programs share: a monotonic clock
 * and the median of a run's timings.
 */
#ifndef NNH5_BENCH_UTIL_H
#define NNH5_BENCH_UTIL_H

#include <stddef.h>

/* Milliseconds on CLOCK_MONOTONIC. */
double bench_now_ms(void);

/* The median of v[0..n-1] (n >= 1); v is left as it is. NaN if out of memory. */
double bench_median(const double *v, size_t n);

#endif
