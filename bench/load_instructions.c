/*
 * bench/load_instructions.c - a fixed workload of small tensors, for
 * counting instructions per tensor with callgrind (deterministic, unlike a
 * clock) and for timing loads of two library builds side by side:
 *
 *   load_instructions write FILE [N]   (a state dict of N tensors of 1 KiB,
 *                                       12 per group; N defaults to 2,000)
 *   valgrind --tool=callgrind --toggle-collect=nnh5_load_state_dict \
 *       load_instructions load FILE    (divide the instructions by N)
 *   load_instructions time FILE        (one load; prints its milliseconds)
 *   load_instructions write-small12k FILE  (bench/workloads.py's small12k:
 *                                       12,000 float32 tensors of 64..1,024
 *                                       elements, a model and Adam moments)
 *   load_instructions peak FILE [FIRST] (one load; prints the tensor bytes,
 *                                       the peak resident bytes it added
 *                                       (VmHWM) and their ratio; with FIRST,
 *                                       after a load of FIRST, freed and
 *                                       trimmed: HDF5's one-time set-up and
 *                                       the code's pages left out)
 *   load_instructions peak-alloc FILE  (one load through a counting
 *                                       allocator, nnh5_set_allocator():
 *                                       the peak of what nnh5 itself had
 *                                       allocated, malloc's 8-byte header
 *                                       and rounding included, beside the
 *                                       tensor bytes, per tensor; and what
 *                                       it still holds after the load)
 *
 * It uses the public API only, so it builds against older nnh5 releases too:
 * doc/SPEED.md, "Small-tensor loads", interleaves two builds' `time` runs.
 */
#define _GNU_SOURCE /* clock_gettime, malloc_usable_size */
#include <nnh5.h>

#include "bench_util.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_DEFAULT 2000
#define FLOATS 256 /* 1 KiB of float32 */

/* A float32 tensor of n elements with values from base, set in sd under key. */
static int add_tensor(nnh5_dict *sd, const char *key, int64_t n, float base)
{
	nnh5_tensor *t;
	int rc = nnh5_tensor_new(&t, NNH5_FLOAT32, 1, &n);

	if (rc)
		return rc;
	float *p = nnh5_tensor_mutable_data(t);
	for (int64_t j = 0; j < n; j++)
		p[j] = base + (float)j;
	rc = nnh5_dict_set(sd, key, t);
	if (rc)
		nnh5_tensor_free(t);
	return rc;
}

static int write_file(const char *path, long n)
{
	nnh5_dict *sd;
	int rc = nnh5_dict_new(&sd);

	for (long i = 0; !rc && i < n; i++) {
		char key[64];
		snprintf(key, sizeof key, "layer%ld.w%ld", i / 12, i % 12);
		rc = add_tensor(sd, key, FLOATS, (float)(i * FLOATS));
	}
	if (!rc)
		rc = nnh5_save_state_dict(path, sd);
	nnh5_dict_free(sd);
	return rc;
}

/* The names and sizes of bench/workloads.py's small12k (values differ: only sizes matter). */
static int write_small12k(const char *path)
{
	static const int64_t sizes[] = { 64, 128, 256, 512, 1024 };
	static const char *const prefix[] = { "model.", "optim.exp_avg.", "optim.exp_avg_sq." };
	nnh5_dict *sd;
	int rc = nnh5_dict_new(&sd);

	for (int i = 0; !rc && i < 4000; i++)
		for (int k = 0; !rc && k < 3; k++) {
			char key[96];
			snprintf(key, sizeof key, "%slayers.%d.p%d", prefix[k], i / 10, i % 10);
			rc = add_tensor(sd, key, sizes[i % 5], (float)(i * 3 + k));
		}
	if (!rc)
		rc = nnh5_save_state_dict(path, sd);
	nnh5_dict_free(sd);
	return rc;
}

/* A counting allocator: live and peak bytes as malloc holds them (8-byte header included). */
static size_t live_bytes, peak_bytes;

static size_t held(void *p)
{
	return p ? malloc_usable_size(p) + sizeof(size_t) : 0;
}

static void count(size_t add, size_t sub)
{
	live_bytes = live_bytes + add - sub;
	if (live_bytes > peak_bytes)
		peak_bytes = live_bytes;
}

static void *count_malloc(size_t n)
{
	void *p = malloc(n);
	count(held(p), 0);
	return p;
}

static void *count_realloc(void *old, size_t n)
{
	size_t was = held(old);
	void *p = realloc(old, n);
	if (p)
		count(held(p), was);
	return p;
}

static void count_free(void *p)
{
	count(0, held(p));
	free(p);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
{
	nnh5_dict *sd = NULL;
	long n = argc == 4 && strcmp(argv[1], "peak") ? strtol(argv[3], NULL, 10) : N_DEFAULT;
	int rc;

	if (argc < 3 || argc > 4 || n <= 0 ||
	    (strcmp(argv[1], "write") && strcmp(argv[1], "load") && strcmp(argv[1], "time") &&
	     strcmp(argv[1], "write-small12k") && strcmp(argv[1], "peak") &&
	     strcmp(argv[1], "peak-alloc")) ||
	    (argc == 4 && strcmp(argv[1], "write") && strcmp(argv[1], "peak"))) {
		fprintf(stderr, "usage: load_instructions write FILE [N] | write-small12k FILE | "
				"load FILE | time FILE | peak FILE [FIRST] | peak-alloc FILE\n");
		return 2;
	}
	if (strcmp(argv[1], "write") == 0) {
		rc = write_file(argv[2], n);
	} else if (strcmp(argv[1], "write-small12k") == 0) {
		rc = write_small12k(argv[2]);
	} else if (strcmp(argv[1], "peak-alloc") == 0) {
		nnh5_set_allocator(count_malloc, count_realloc, count_free);
		rc = nnh5_load_state_dict(&sd, argv[2]);
		size_t bytes = 0, count_t = rc ? 0 : nnh5_dict_len(sd);
		for (size_t i = 0; i < count_t; i++)
			bytes += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
		if (!rc && count_t)
			printf("tensors %zu bytes %zu alloc_peak %zu beside_per_tensor %.1f "
			       "after_load_beside_per_tensor %.1f\n",
			       count_t, bytes, peak_bytes,
			       ((double)peak_bytes - (double)bytes) / (double)count_t,
			       ((double)live_bytes - (double)bytes) / (double)count_t);
		nnh5_dict_free(sd);
		nnh5_set_allocator(NULL, NULL, NULL);
	} else if (strcmp(argv[1], "peak") == 0) {
		/* The library's and HDF5's one-time set-up is not the load's. */
		nnh5_tensor *warm;
		int64_t one = 1;
		if (nnh5_tensor_new(&warm, NNH5_FLOAT32, 1, &one) == NNH5_OK)
			nnh5_tensor_free(warm);
		if (argc == 4 && nnh5_load_state_dict(&sd, argv[3]) == NNH5_OK) {
			nnh5_dict_free(sd);
			sd = NULL;
			malloc_trim(0); /* what it freed goes back: this load's pages count */
		}
		bench_reset_peak();
		long long before = bench_status_kib("VmRSS:") * 1024LL;
		rc = nnh5_load_state_dict(&sd, argv[2]);
		long long peak = bench_status_kib("VmHWM:") * 1024LL;
		size_t bytes = 0;
		for (size_t i = 0; !rc && i < nnh5_dict_len(sd); i++)
			bytes += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
		if (!rc && (before < 0 || peak < 0 || bytes == 0))
			rc = NNH5_ERR_IO;
		if (!rc)
			printf("tensors %zu bytes %zu peak_extra %lld ratio %.3f\n", nnh5_dict_len(sd),
			       bytes, peak - before, (double)(peak - before) / (double)bytes);
		nnh5_dict_free(sd);
	} else {
		double t0 = now_ms();
		rc = nnh5_load_state_dict(&sd, argv[2]);
		double t1 = now_ms();
		if (!rc && nnh5_dict_len(sd) == 0)
			rc = NNH5_ERR_FORMAT;
		if (!rc && strcmp(argv[1], "time") == 0)
			printf("%.3f\n", t1 - t0);
		nnh5_dict_free(sd);
	}
	if (rc)
		fprintf(stderr, "load_instructions: %s\n", nnh5_error_message());
	return rc ? 1 : 0;
}
