/*
 * bench/threads_bench.c - throughput of one model shared by T threads, each
 * with its own nnh5_model_ctx (nn.h, "Threads"), against T private copies
 * of the model (what a threaded caller had to do before contexts). OpenBLAS
 * runs one thread per caller, as nn.h asks for this case. Every thread runs
 * CALLS forward passes of a BATCH x IN input through the MLP given by
 * WIDTHS; the table shows the median wall time of REPEAT runs, rows per
 * second, and the speed-up over one thread.
 *
 * Usage: threads_bench [-t 1,2,4,8] [-w 64,256,256,64] [-b BATCH] [-n CALLS] [-r REPEAT]
 */
#include <nnh5.h>

#include "bench_util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 256
#define MAX_WIDTHS 16

typedef struct job {
	pthread_t tid;
	const nnh5_model *shared; /* run through a context */
	nnh5_model *own;          /* or through the model's own call (a private copy) */
	const nnh5_tensor *x;
	long calls;
	int status;
} job;

static void *work(void *arg)
{
	job *j = arg;
	nnh5_model_ctx *c = NULL;
	nnh5_tensor *y = NULL;
	size_t nd;
	int64_t shape[NNH5_MAX_NDIM];
	const nnh5_model *m = j->shared ? j->shared : j->own;
	j->status = nnh5_model_output_shape(&nd, shape, m, nnh5_tensor_ndim(j->x),
					    nnh5_tensor_shape(j->x));
	if (!j->status)
		j->status = nnh5_tensor_new(&y, nnh5_model_dtype(m), nd, shape);
	if (!j->status && j->shared)
		j->status = nnh5_model_ctx_new(&c, j->shared);
	for (long i = 0; i < j->calls && !j->status; i++)
		j->status = c ? nnh5_model_forward_ctx_into(c, j->x, y)
			      : nnh5_model_forward_into(j->own, j->x, y);
	nnh5_model_ctx_free(c);
	nnh5_tensor_free(y);
	return NULL;
}

static nnh5_model *build(const int64_t *w, size_t nw)
{
	nnh5_model *m;
	if (nnh5_model_new(&m, NNH5_FLOAT32, 1))
		return NULL;
	for (size_t i = 0; i + 1 < nw; i++) {
		if (nnh5_model_add_linear(m, NULL, w[i], w[i + 1], true) ||
		    (i + 2 < nw && nnh5_model_add_relu(m, NULL))) {
			nnh5_model_free(m);
			return NULL;
		}
	}
	return m;
}

/* One timed run of t threads; copies[] non-NULL means private models. */
static double run(int t, const nnh5_model *shared, nnh5_model **copies, const nnh5_tensor *x,
		  long calls)
{
	job jobs[MAX_THREADS];
	double t0 = bench_now_ms();
	for (int i = 0; i < t; i++) {
		jobs[i] = (job){ .shared = copies ? NULL : shared, .own = copies ? copies[i] : NULL,
				 .x = x, .calls = calls };
		if (pthread_create(&jobs[i].tid, NULL, work, &jobs[i]))
			return -1;
	}
	int bad = 0;
	for (int i = 0; i < t; i++) {
		pthread_join(jobs[i].tid, NULL);
		bad |= jobs[i].status;
	}
	return bad ? -1 : bench_now_ms() - t0;
}

static size_t parse_list(int64_t *out, size_t cap, const char *s)
{
	size_t n = 0;
	char *end;
	while (*s && n < cap) {
		out[n++] = strtoll(s, &end, 10);
		if (*end != ',' && *end)
			return 0;
		s = *end ? end + 1 : end;
	}
	return n;
}

int main(int argc, char **argv)
{
	int64_t threads[32], widths[MAX_WIDTHS] = { 64, 256, 256, 64 };
	size_t nt = parse_list(threads, 32, "1,2,4,8"), nw = 4;
	int64_t batch = 64;
	long calls = 2000;
	int repeat = 5;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-t"))
			nt = parse_list(threads, 32, argv[i + 1]);
		else if (!strcmp(argv[i], "-w"))
			nw = parse_list(widths, MAX_WIDTHS, argv[i + 1]);
		else if (!strcmp(argv[i], "-b"))
			batch = strtoll(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "-n"))
			calls = strtol(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "-r"))
			repeat = atoi(argv[i + 1]);
	}
	if (nt == 0 || nw < 2 || batch < 1 || calls < 1 || repeat < 1 || repeat > 100) {
		fprintf(stderr, "usage: threads_bench [-t 1,2,4,8] [-w 64,256,256,64] [-b BATCH] [-n CALLS] [-r REPEAT]\n");
		return 2;
	}
	nnh5_nn_set_num_threads(1);
	nnh5_model *m = build(widths, nw);
	nnh5_tensor *x = NULL;
	nnh5_rng rng;
	nnh5_rng_seed(&rng, 3);
	int64_t xs[2] = { batch, widths[0] };
	if (!m || nnh5_tensor_randn(&x, NNH5_FLOAT32, 2, xs, &rng)) {
		fprintf(stderr, "threads_bench: %s\n", nnh5_error_message());
		return 1;
	}
	printf("MLP");
	for (size_t i = 0; i < nw; i++)
		printf("%s%lld", i ? "-" : " ", (long long)widths[i]);
	printf(", float32, batch %lld, %ld calls per thread, median of %d runs, 1 BLAS thread\n",
	       (long long)batch, calls, repeat);
	printf("%8s %14s %14s %14s %14s\n", "threads", "shared ms", "shared rows/s", "speed-up",
	       "copies rows/s");
	double base = 0;
	for (size_t k = 0; k < nt; k++) {
		int t = (int)threads[k];
		if (t < 1 || t > MAX_THREADS)
			continue;
		nnh5_model *copies[MAX_THREADS];
		double shared_ms[100], copy_ms[100];
		int ok = 1;
		for (int i = 0; i < t && ok; i++) {
			copies[i] = build(widths, nw);
			ok = copies[i] != NULL;
		}
		/* interleaved, so noise hits both kinds alike */
		for (int r = 0; r < repeat && ok; r++) {
			shared_ms[r] = run(t, m, NULL, x, calls);
			copy_ms[r] = run(t, m, copies, x, calls);
			ok = shared_ms[r] >= 0 && copy_ms[r] >= 0;
		}
		for (int i = 0; i < t; i++)
			nnh5_model_free(copies[i]);
		if (!ok) {
			fprintf(stderr, "threads_bench: %s\n", nnh5_error_message());
			return 1;
		}
		double sm = bench_median(shared_ms, (size_t)repeat);
		double cm = bench_median(copy_ms, (size_t)repeat);
		double rows = (double)t * (double)calls * (double)batch;
		double rate = rows / (sm / 1e3);
		if (k == 0)
			base = rate / t;
		printf("%8d %14.1f %14.0f %13.2fx %14.0f\n", t, sm, rate, rate / base / 1.0,
		       rows / (cm / 1e3));
	}
	nnh5_tensor_free(x);
	nnh5_model_free(m);
	return 0;
}
