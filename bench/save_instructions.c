/*
 * bench/save_instructions.c - the state dicts of bench/workloads.py built in
 * C and saved once with nnh5_save_state_dict(), for counting instructions per
 * tensor with callgrind (deterministic, unlike a clock) and for the extra
 * memory a save takes (peak resident set during the save less the resident
 * set before it; Linux resets the peak through /proc/self/clear_refs):
 *
 *   save_instructions small12k FILE [PARAMS]
 *                                     (12,000 float32 tensors of 64..1,024
 *                                      elements: 4,000 parameters in modules
 *                                      of 10, with their two Adam moments,
 *                                      interleaved as an optimizer's
 *                                      state dict lists them; PARAMS
 *                                      parameters instead of 4,000)
 *   save_instructions resnet50 FILE   (resnet50's 320 tensors, their names
 *                                      and shapes; int64 counters included)
 *   valgrind --tool=callgrind --toggle-collect=nnh5_save_state_dict \
 *       save_instructions small12k FILE   (divide the instructions by 12,000)
 *
 * Prints the number of tensors, their bytes and the extra KiB. Public API
 * only, so it builds against older releases too.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench_util.h"

#include <nnh5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int put(nnh5_dict *sd, const char *key, nnh5_dtype dtype, size_t ndim,
	       const int64_t *shape, unsigned seed)
{
	nnh5_tensor *t;
	int rc = nnh5_tensor_new(&t, dtype, ndim, shape);

	if (rc)
		return rc;
	unsigned char *p = nnh5_tensor_mutable_data(t);
	size_t n = nnh5_tensor_nbytes(t);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((seed * 2654435761u + i * 40503u) >> 13);
	rc = nnh5_dict_set(sd, key, t);
	if (rc)
		nnh5_tensor_free(t);
	return rc;
}

static int small12k(nnh5_dict *sd, unsigned params)
{
	static const int64_t sizes[] = { 64, 128, 256, 512, 1024 };
	static const char *const prefix[] = { "model.", "optim.exp_avg.", "optim.exp_avg_sq." };
	int rc = NNH5_OK;

	for (unsigned i = 0; !rc && i < params; i++)
		for (unsigned k = 0; !rc && k < 3; k++) {
			char key[96];
			snprintf(key, sizeof key, "%slayers.%u.p%u", prefix[k], i / 10, i % 10);
			rc = put(sd, key, NNH5_FLOAT32, 1, &sizes[i % 5], i * 3 + k);
		}
	return rc;
}

static int batchnorm(nnh5_dict *sd, const char *name, int64_t c, unsigned *seed)
{
	static const char *const part[] = { "weight", "bias", "running_mean", "running_var" };
	char key[160];
	int rc = NNH5_OK;

	for (unsigned k = 0; !rc && k < 4; k++) {
		snprintf(key, sizeof key, "%s.%s", name, part[k]);
		rc = put(sd, key, NNH5_FLOAT32, 1, &c, (*seed)++);
	}
	snprintf(key, sizeof key, "%s.num_batches_tracked", name);
	return rc ? rc : put(sd, key, NNH5_INT64, 0, NULL, (*seed)++);
}

static int conv(nnh5_dict *sd, const char *name, int64_t out, int64_t in, int64_t k,
		unsigned *seed)
{
	char key[160];
	int64_t shape[4] = { out, in, k, k };

	snprintf(key, sizeof key, "%s.weight", name);
	return put(sd, key, NNH5_FLOAT32, 4, shape, (*seed)++);
}

/* torchvision's resnet50: bottleneck blocks 3, 4, 6, 3 (320 tensors). */
static int resnet50(nnh5_dict *sd)
{
	static const int blocks[4] = { 3, 4, 6, 3 };
	unsigned seed = 1;
	int64_t in = 64;
	int rc = conv(sd, "conv1", 64, 3, 7, &seed);

	if (!rc)
		rc = batchnorm(sd, "bn1", 64, &seed);
	for (int l = 0; !rc && l < 4; l++) {
		int64_t p = (int64_t)64 << l;
		for (int b = 0; !rc && b < blocks[l]; b++) {
			char m[64], name[96];
			snprintf(m, sizeof m, "layer%d.%d", l + 1, b);
			const struct { const char *c, *bn; int64_t out, in, k; } step[3] = {
				{ "conv1", "bn1", p, in, 1 },
				{ "conv2", "bn2", p, p, 3 },
				{ "conv3", "bn3", 4 * p, p, 1 },
			};
			for (int s = 0; !rc && s < 3; s++) {
				snprintf(name, sizeof name, "%s.%s", m, step[s].c);
				rc = conv(sd, name, step[s].out, step[s].in, step[s].k, &seed);
				snprintf(name, sizeof name, "%s.%s", m, step[s].bn);
				if (!rc)
					rc = batchnorm(sd, name, step[s].out, &seed);
			}
			if (!rc && b == 0) {
				snprintf(name, sizeof name, "%s.downsample.0", m);
				rc = conv(sd, name, 4 * p, in, 1, &seed);
				snprintf(name, sizeof name, "%s.downsample.1", m);
				if (!rc)
					rc = batchnorm(sd, name, 4 * p, &seed);
			}
			in = 4 * p;
		}
	}
	if (!rc)
		rc = put(sd, "fc.weight", NNH5_FLOAT32, 2, (const int64_t[]){ 1000, 2048 }, seed++);
	if (!rc)
		rc = put(sd, "fc.bias", NNH5_FLOAT32, 1, (const int64_t[]){ 1000 }, seed++);
	return rc;
}

int main(int argc, char **argv)
{
	nnh5_dict *sd = NULL;
	int rc;

	unsigned params = argc == 4 ? (unsigned)strtoul(argv[3], NULL, 10) : 4000;

	if (argc < 3 || argc > 4 || (strcmp(argv[1], "small12k") && strcmp(argv[1], "resnet50")) ||
	    (argc == 4 && (strcmp(argv[1], "small12k") || params == 0))) {
		fprintf(stderr, "usage: save_instructions small12k FILE [PARAMS] | resnet50 FILE\n");
		return 2;
	}
	rc = nnh5_dict_new(&sd);
	if (!rc)
		rc = strcmp(argv[1], "small12k") == 0 ? small12k(sd, params) : resnet50(sd);
	if (!rc) {
		size_t bytes = 0;
		for (size_t i = 0; i < nnh5_dict_len(sd); i++)
			bytes += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
		bool reset = bench_reset_peak();
		long before = bench_status_kib("VmRSS:");
		rc = nnh5_save_state_dict(argv[2], sd);
		long peak = bench_status_kib("VmHWM:");
		if (!rc)
			printf("%zu tensors, %zu bytes, %ld KiB extra\n", nnh5_dict_len(sd), bytes,
			       reset && before >= 0 && peak >= 0 ? peak - before : -1);
	}
	if (rc)
		fprintf(stderr, "save_instructions: %s\n", nnh5_error_message());
	nnh5_dict_free(sd);
	return rc ? 1 : 0;
}
