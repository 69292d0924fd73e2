/*
 * bench/compression_bench.c - what each compression profile costs and saves
 * (doc/FORMATS.md, "Compression"): for float32 weights, the same weights
 * in bfloat16, and Adam's two moments (exp_avg, exp_avg_sq) as a trained
 * model has them, the stored bytes over the raw bytes, and the write (save
 * + close, not durable: no fsync) and read (load of the whole file) speed in
 * MB/s of logical data, medians of several runs, per profile.
 *
 * Usage: compression_bench [MIB [RUNS [SCRATCH_DIR]]]
 *   MIB   logical size of each kind of data (default 256)
 *   RUNS  runs per measure (default 5)
 * Prints a Markdown table. Data is generated with a fixed seed, so the
 * ratios are the same on every machine; the speeds are this machine's.
 */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <nnh5.h>

#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(call)                                                                      \
	do {                                                                             \
		int rc_ = (call);                                                        \
		if (rc_ != NNH5_OK) {                                                    \
			fprintf(stderr, "%s: %s\n", #call, nnh5_error_message());       \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

#define COLS 1024

/* kind 0: float32 weights N(0, 0.02); 1: bfloat16 of them; 2: Adam's exp_avg and exp_avg_sq. */
static nnh5_dict *make_data(int kind, size_t mib)
{
	nnh5_dict *d;
	nnh5_rng rng;
	nnh5_tensor *w;
	size_t per = kind == 2 ? mib / 2 : mib;
	int64_t rows = (int64_t)(per << 20) / (COLS * (kind == 1 ? 2 : 4));
	int64_t shape[] = { rows ? rows : 1, COLS };

	nnh5_rng_seed(&rng, 1234);
	CHECK(nnh5_dict_new(&d));
	CHECK(nnh5_tensor_new(&w, NNH5_FLOAT32, 2, shape));
	float *p = nnh5_tensor_mutable_data(w);
	size_t n = nnh5_tensor_numel(w);
	for (size_t i = 0; i < n; i++)
		p[i] = (float)(0.02 * nnh5_rng_normal(&rng));
	if (kind == 0) {
		CHECK(nnh5_dict_set(d, "weight", w));
	} else if (kind == 1) {
		nnh5_tensor *b;
		CHECK(nnh5_tensor_convert(&b, w, NNH5_BFLOAT16));
		nnh5_tensor_free(w);
		CHECK(nnh5_dict_set(d, "weight", b));
	} else {
		/* Moments after some steps: exp_avg ~ 0.1 x gradient, exp_avg_sq ~ its square. */
		nnh5_tensor *sq;
		CHECK(nnh5_tensor_new(&sq, NNH5_FLOAT32, 2, shape));
		float *q = nnh5_tensor_mutable_data(sq);
		for (size_t i = 0; i < n; i++) {
			double g = 1e-3 * nnh5_rng_normal(&rng);
			p[i] = (float)(0.1 * g);
			q[i] = (float)(1e-3 * g * g);
		}
		CHECK(nnh5_dict_set(d, "weight.exp_avg", w));
		CHECK(nnh5_dict_set(d, "weight.exp_avg_sq", sq));
	}
	return d;
}

static size_t logical_bytes(const nnh5_dict *d)
{
	size_t n = 0;
	for (size_t i = 0; i < nnh5_dict_len(d); i++)
		n += nnh5_tensor_nbytes(nnh5_dict_value(d, i));
	return n;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
	size_t runs = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 5;
	char tmpl[] = "/tmp/nnh5-compression-XXXXXX", path[4200];
	const char *dir = argc > 3 ? argv[3] : mkdtemp(tmpl);
	const char *kinds[] = { "float32 weights", "bfloat16 weights", "Adam moments" };
	double *w = calloc(runs ? runs : 1, sizeof *w), *r = calloc(runs ? runs : 1, sizeof *r);

	if (!dir || !w || !r || mib == 0 || runs == 0) {
		fprintf(stderr, "usage: compression_bench [MIB [RUNS [SCRATCH_DIR]]]\n");
		return 2;
	}
	snprintf(path, sizeof path, "%s/bench.h5", dir);
	printf("| data | profile | filters | stored / raw | write MB/s | read MB/s |\n");
	printf("|---|---|---|---|---|---|\n");
	for (int kind = 0; kind < 3; kind++) {
		nnh5_dict *d = make_data(kind, mib);
		double mb = (double)logical_bytes(d) / 1e6;
		for (int profile = 0; profile <= NNH5_COMPRESSION_ARCHIVE; profile++) {
			nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
			struct stat st;
			o.durable = false;
			o.compression = profile;
			for (size_t i = 0; i < runs; i++) {
				nnh5_file *f;
				nnh5_dict *back;
				double t0 = bench_now_ms();
				CHECK(nnh5_file_open_ext(&f, path, NNH5_CREATE, &o));
				CHECK(nnh5_file_write_state_dict(f, "/", d));
				CHECK(nnh5_file_close(f));
				double t1 = bench_now_ms();
				CHECK(nnh5_load_state_dict(&back, path));
				double t2 = bench_now_ms();
				nnh5_dict_free(back);
				w[i] = t1 - t0;
				r[i] = t2 - t1;
			}
			if (stat(path, &st) < 0)
				return 1;
			printf("| %s | %s | %s | %.3f | %.0f | %.0f |\n", kinds[kind],
			       nnh5_compression_name(profile), nnh5_compression_filters(profile),
			       (double)st.st_size / (double)logical_bytes(d),
			       mb / (bench_median(w, runs) / 1e3), mb / (bench_median(r, runs) / 1e3));
		}
		nnh5_dict_free(d);
	}
	unlink(path);
	if (argc <= 3)
		rmdir(dir);
	free(w);
	free(r);
	return 0;
}
