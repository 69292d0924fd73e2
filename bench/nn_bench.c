/*
 * bench/nn_bench.c - how fast is nnh5's forward pass? One run compares, for
 * the seed MLP (20-256-10, ReLU) at batch 1, 64, 1024 and for
 * 1024-4096-4096-1024 (ReLU) at batch 1, 64, 1024:
 *   - nnh5_model_forward_into() (bias and ReLU included, no allocation),
 *   - bare cblas_sgemm calls of the same shapes (no bias, no activation),
 *   - torch's forward (eval, no_grad) when a torch script is given and runs.
 * nnh5 and sgemm are timed alternately, call by call, so machine noise hits
 * both; the table shows medians and ratios.
 *
 * Usage: nn_bench [TORCH_SCRIPT]   (bench/torch_forward.py; run by python3)
 */
#include <nnh5.h>

#include "bench_util.h"
#include <nnh5/nn.h>

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct config {
	const char *name;
	const int64_t *widths;
	size_t n_widths;
	int64_t batch;
} config;

static const int64_t seed_mlp[] = { 20, 256, 10 };
static const int64_t big_mlp[] = { 1024, 4096, 4096, 1024 };

static const config configs[] = {
	{ "20-256-10", seed_mlp, 3, 1 },
	{ "20-256-10", seed_mlp, 3, 64 },
	{ "20-256-10", seed_mlp, 3, 1024 },
	{ "1024-4096-4096-1024", big_mlp, 4, 1 },
	{ "1024-4096-4096-1024", big_mlp, 4, 64 },
	{ "1024-4096-4096-1024", big_mlp, 4, 1024 },
};
#define N_CONFIGS (sizeof(configs) / sizeof(configs[0]))

#define CHECK(call)                                                                            \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_) {                                                                         \
			fprintf(stderr, "nn_bench: %s\n", nnh5_error_message());                    \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* The bare baseline: the same sgemm calls into the same kind of buffers. */
static void bare(float *const *bufs, float *const *w, const config *c)
{
	const float *x = bufs[0];
	for (size_t l = 0; l + 1 < c->n_widths; l++) {
		float *y = bufs[1 + (l % 2)];
		int K = (int)c->widths[l], N = (int)c->widths[l + 1], M = (int)c->batch;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w[l], K,
			    0.0f, y, N);
		x = y;
	}
}

static void run_config(const config *c, double *nn_us, double *bare_us)
{
	nnh5_model *m;
	nnh5_rng rng;
	CHECK(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	for (size_t l = 0; l + 1 < c->n_widths; l++) {
		CHECK(nnh5_model_add_linear(m, NULL, c->widths[l], c->widths[l + 1], true));
		if (l + 2 < c->n_widths)
			CHECK(nnh5_model_add_relu(m, NULL));
	}
	nnh5_rng_seed(&rng, 2);
	int64_t xs[2] = { c->batch, c->widths[0] };
	int64_t ys[2] = { c->batch, c->widths[c->n_widths - 1] };
	nnh5_tensor *x, *y;
	CHECK(nnh5_tensor_randn(&x, NNH5_FLOAT32, 2, xs, &rng));
	CHECK(nnh5_tensor_new(&y, NNH5_FLOAT32, 2, ys));

	/* the baseline's own buffers and weights, the same sizes */
	int64_t maxw = 0;
	for (size_t l = 0; l < c->n_widths; l++)
		maxw = c->widths[l] > maxw ? c->widths[l] : maxw;
	float *bufs[3];
	bufs[0] = nnh5_tensor_mutable_data(x);
	bufs[1] = calloc((size_t)(c->batch * maxw), sizeof(float));
	bufs[2] = calloc((size_t)(c->batch * maxw), sizeof(float));
	float *w[8];
	nnh5_dict *sd;
	CHECK(nnh5_model_state_dict(&sd, m));
	for (size_t l = 0; l + 1 < c->n_widths; l++) {
		size_t n = (size_t)(c->widths[l] * c->widths[l + 1]);
		w[l] = malloc(n * sizeof(float));
		memcpy(w[l], nnh5_tensor_data(nnh5_dict_value(sd, 2 * l)), n * sizeof(float));
	}
	nnh5_dict_free(sd);

	/* warm up both, then alternate until 1.5 s or 2000 calls (at least 7) */
	for (int i = 0; i < 3; i++) {
		CHECK(nnh5_model_forward_into(m, x, y));
		bare(bufs, w, c);
	}
	size_t cap = 2000, n = 0;
	double *a = malloc(cap * sizeof(double)), *b = malloc(cap * sizeof(double));
	double start = (1e3 * bench_now_ms());
	while (n < cap && (n < 7 || (1e3 * bench_now_ms()) - start < 1.5e6)) {
		double t0 = (1e3 * bench_now_ms());
		CHECK(nnh5_model_forward_into(m, x, y));
		double t1 = (1e3 * bench_now_ms());
		bare(bufs, w, c);
		double t2 = (1e3 * bench_now_ms());
		a[n] = t1 - t0;
		b[n] = t2 - t1;
		n++;
	}
	*nn_us = bench_median(a, n);
	*bare_us = bench_median(b, n);
	free(a);
	free(b);
	for (size_t l = 0; l + 1 < c->n_widths; l++)
		free(w[l]);
	free(bufs[1]);
	free(bufs[2]);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(m);
}

/* torch's medians from the script's lines "NAME BATCH MICROSECONDS"; < 0 when absent. */
static void run_torch(const char *script, double *torch_us)
{
	char cmd[4200], name[64];
	long long batch;
	double us;
	for (size_t i = 0; i < N_CONFIGS; i++)
		torch_us[i] = -1;
	if (!script)
		return;
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' 2>/dev/null", script);
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	while (fscanf(p, "%63s %lld %lf", name, &batch, &us) == 3)
		for (size_t i = 0; i < N_CONFIGS; i++)
			if (strcmp(configs[i].name, name) == 0 && configs[i].batch == batch)
				torch_us[i] = us;
	pclose(p);
}

int main(int argc, char **argv)
{
	double nn_us[N_CONFIGS] = { 0 }, bare_us[N_CONFIGS] = { 0 }, torch_us[N_CONFIGS];
	/* NN_BENCH_ONLY=i runs only configuration i (for profiling) */
	const char *only = getenv("NN_BENCH_ONLY");
	for (size_t i = 0; i < N_CONFIGS; i++)
		if (!only || (size_t)atoi(only) == i)
			run_config(&configs[i], &nn_us[i], &bare_us[i]);
	run_torch(argc > 1 ? argv[1] : NULL, torch_us);

	printf("nnh5 %s forward, float32, %d OpenBLAS threads; medians in microseconds per call\n\n",
	       nnh5_version(), nnh5_nn_get_num_threads());
	printf("| layers | batch | nnh5 forward | bare sgemm | nnh5 / sgemm | torch forward | torch / nnh5 |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < N_CONFIGS; i++) {
		char t[32] = "n/a", r[32] = "n/a";
		if (torch_us[i] >= 0) {
			snprintf(t, sizeof(t), "%.1f", torch_us[i]);
			snprintf(r, sizeof(r), "%.2fx", torch_us[i] / nn_us[i]);
		}
		printf("| %s | %lld | %.1f | %.1f | %+.1f%% | %s | %s |\n", configs[i].name,
		       (long long)configs[i].batch, nn_us[i], bare_us[i],
		       100.0 * (nn_us[i] / bare_us[i] - 1.0), t, r);
	}
	if (only)
		return 0;
	/* The network issue's targets, as bench/io_bench prints its own. */
	double o64 = 100.0 * (nn_us[4] / bare_us[4] - 1.0), o1024 = 100.0 * (nn_us[5] / bare_us[5] - 1.0);
	printf("\nTargets (network issue):\n");
	printf("- %s large layers at most 10%% over bare sgemm: %+.1f%% at batch 64, %+.1f%% at "
	       "batch 1024\n",
	       o64 <= 10.0 && o1024 <= 10.0 ? "met:   " : "MISSED:", o64, o1024);
	if (torch_us[0] >= 0)
		printf("- %s seed MLP at batch 1 at least 5x faster than torch: %.2fx\n",
		       torch_us[0] / nn_us[0] >= 5.0 ? "met:   " : "MISSED:", torch_us[0] / nn_us[0]);
	return 0;
}
