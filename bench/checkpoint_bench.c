/*
 * bench/checkpoint_bench.c - how long does a checkpoint save block training?
 *
 * One run, one 512 MiB checkpoint (64 float32 tensors of 2048 x 1024), in a
 * scratch folder (argument 1, default: a new folder under /tmp), measuring:
 *   - memcpy of the same bytes into a warm buffer (the floor for any copy),
 *     timed just before each save call so both see the same machine,
 *   - an asynchronous manager's save call (the training thread is blocked
 *     only while the tensors are staged), first call and later calls,
 *   - a synchronous manager's save call (write, fsync, rename, fsync).
 * Medians of NNH5_BENCH_RUNS (default 5) runs; the ratios are what to read,
 * since the machine is shared and noisy.
 *
 * Usage: checkpoint_bench [SCRATCH_DIR]
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <nnh5.h>

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_TENSORS 64
#define ROWS 2048
#define COLS 1024

#define CHECK(call)                                                                      \
	do {                                                                             \
		int rc_ = (call);                                                        \
		if (rc_ != NNH5_OK) {                                                    \
			fprintf(stderr, "%s: %s\n", #call, nnh5_error_message());       \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

/* A checkpoint of step whose "model" section views the tensors in params. */
static nnh5_checkpoint *make_checkpoint(int64_t step, nnh5_tensor *const *params)
{
	int64_t shape[] = { ROWS, COLS };
	nnh5_checkpoint *c;
	nnh5_dict *sd;

	CHECK(nnh5_checkpoint_new(&c, step));
	CHECK(nnh5_dict_new(&sd));
	for (int i = 0; i < N_TENSORS; i++) {
		char key[64];
		nnh5_tensor *v;
		snprintf(key, sizeof key, "layers.%d.weight", i);
		CHECK(nnh5_tensor_view(&v, NNH5_FLOAT32, 2, shape,
				       nnh5_tensor_mutable_data(params[i]),
				       nnh5_tensor_nbytes(params[i])));
		CHECK(nnh5_dict_set(sd, key, v));
	}
	CHECK(nnh5_checkpoint_set_state(c, "model", sd));
	CHECK(nnh5_checkpoint_set_metric(c, "loss", 1.0 / (double)(step + 1)));
	return c;
}

/* memcpy of every tensor into dst (the floor for any staging copy), in ms. */
static double time_memcpy(unsigned char *dst, nnh5_tensor *const *params)
{
	double t0 = bench_now_ms();
	size_t off = 0;

	for (int i = 0; i < N_TENSORS; i++) {
		memcpy(dst + off, nnh5_tensor_data(params[i]), nnh5_tensor_nbytes(params[i]));
		off += nnh5_tensor_nbytes(params[i]);
	}
	return bench_now_ms() - t0;
}

/*
 * Time each manager save call (the blocked time), waiting between calls.
 * Each call is paired with a memcpy of the same bytes just before it, so
 * both see the same machine.
 */
static void time_saves(double *out, double *copy, int runs, const char *dir, bool async,
		       nnh5_tensor **params, unsigned char *dst, double *first)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;

	o.keep_last = 1;
	o.async = async;
	CHECK(nnh5_checkpoint_manager_open(&m, dir, &o));
	for (int r = -1; r < runs; r++) {
		nnh5_checkpoint *c = make_checkpoint(r + 1, params);
		double mc = time_memcpy(dst, params);
		double t0 = bench_now_ms();
		CHECK(nnh5_checkpoint_manager_save(m, c));
		double t1 = bench_now_ms();
		nnh5_checkpoint_free(c);
		CHECK(nnh5_checkpoint_manager_wait(m));
		if (r < 0)
			*first = t1 - t0; /* staging buffer not allocated yet */
		else {
			out[r] = t1 - t0;
			copy[r] = mc;
		}
	}
	CHECK(nnh5_checkpoint_manager_close(m));
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/nnh5-ckpt-bench-XXXXXX", sync_dir[4200], async_dir[4200];
	const char *base = argc > 1 ? argv[1] : NULL;
	const char *env = getenv("NNH5_BENCH_RUNS");
	int runs = env ? atoi(env) : 5;
	nnh5_tensor *params[N_TENSORS];
	int64_t shape[] = { ROWS, COLS };
	size_t total = 0;
	nnh5_rng rng;

	if (runs < 1 || runs > 100)
		runs = 5;
	if (!base && !(base = mkdtemp(tmpl))) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sync_dir, sizeof sync_dir, "%s/sync", base);
	snprintf(async_dir, sizeof async_dir, "%s/async", base);
	nnh5_rng_seed(&rng, 1);
	for (int i = 0; i < N_TENSORS; i++) {
		CHECK(nnh5_tensor_uniform(&params[i], NNH5_FLOAT32, 2, shape, -1, 1, &rng));
		total += nnh5_tensor_nbytes(params[i]);
	}

	/* memcpy of the same bytes, tensor by tensor, into a warm buffer */
	unsigned char *dst = malloc(total);
	double *t_memcpy = calloc((size_t)runs, sizeof(double));
	double *t_async = calloc((size_t)runs, sizeof(double));
	double *t_sync = calloc((size_t)runs, sizeof(double));
	double first_async = 0, first_sync = 0;
	if (!dst || !t_memcpy || !t_async || !t_sync)
		return 1;
	double *t_memcpy2 = calloc((size_t)runs, sizeof(double));
	if (!t_memcpy2)
		return 1;
	memset(dst, 1, total);
	time_saves(t_async, t_memcpy, runs, async_dir, true, params, dst, &first_async);
	time_saves(t_sync, t_memcpy2, runs, sync_dir, false, params, dst, &first_sync);

	double mc = bench_median(t_memcpy, (size_t)runs), as = bench_median(t_async, (size_t)runs);
	double sy = bench_median(t_sync, (size_t)runs);
	double gib = (double)total / (1024.0 * 1024 * 1024);
	printf("checkpoint of %.0f MiB (%d float32 tensors of %d x %d), medians of %d runs\n",
	       gib * 1024, N_TENSORS, ROWS, COLS, runs);
	printf("%-44s %10s %10s %12s\n", "", "ms", "GiB/s", "vs memcpy");
	printf("%-44s %10.1f %10.2f %11.2fx\n", "memcpy of the same bytes", mc, gib / (mc / 1e3), 1.0);
	printf("%-44s %10.1f %10.2f %11.2fx\n", "async save: training thread blocked", as,
	       gib / (as / 1e3), as / mc);
	printf("%-44s %10.1f %10.2f %11.2fx\n", "async save, first call (buffer allocated)",
	       first_async, gib / (first_async / 1e3), first_async / mc);
	printf("%-44s %10.1f %10.2f %11.2fx\n", "sync save (write, fsync, rename, fsync)", sy,
	       gib / (sy / 1e3), sy / mc);
	printf("async blocked / sync blocked: %.3f; async blocked / memcpy: %.2f (target <= 1.5)\n",
	       as / sy, as / mc);

	for (int i = 0; i < N_TENSORS; i++)
		nnh5_tensor_free(params[i]);
	free(dst);
	free(t_memcpy);
	free(t_memcpy2);
	free(t_async);
	free(t_sync);
	if (argc <= 1) { /* our own scratch folder: remove what we made */
		char cmd[4400];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", base);
	}
	return 0;
}
