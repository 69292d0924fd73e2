/*
 * bench/direct_write_instructions.c - the saves the direct HDF5 writer
 * takes, for counting instructions per tensor with callgrind (deterministic,
 * unlike a clock), both writers on the same state dict:
 *
 *   direct_write_instructions small FILE [N]
 *       N (default 12,000) float32 tensors of 64..1024 elements, a model's
 *       and its Adam moments': model.layers.L.pK, optim.exp_avg.layers.L.pK,
 *       optim.exp_avg_sq.layers.L.pK (8 per layer)
 *   direct_write_instructions large FILE [N]
 *       N (default 4) float32 tensors of 64 MiB
 *
 *   valgrind --tool=callgrind --toggle-collect=nnh5_save_state_dict \
 *       direct_write_instructions small FILE            (the direct writer)
 *   NNH5_DIRECT_WRITE=0 valgrind ... (the same)         (HDF5's API)
 *
 * Divide the instructions by N. Only nnh5_save_state_dict is counted, not
 * building the state dict. Uses the public API only.
 */
#include <nnh5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	nnh5_dict *sd;
	bool large;
	long n;
	int rc;

	if (argc < 3 || (strcmp(argv[1], "small") && strcmp(argv[1], "large"))) {
		fprintf(stderr, "usage: direct_write_instructions small|large FILE [N]\n");
		return 2;
	}
	large = !strcmp(argv[1], "large");
	n = argc > 3 ? atol(argv[3]) : large ? 4 : 12000;
	rc = nnh5_dict_new(&sd);
	for (long i = 0; !rc && i < n; i++) {
		static const char *const part[] = { "model", "optim.exp_avg", "optim.exp_avg_sq" };
		long per = (n + 2) / 3, layer = (i % per) / 8;
		int64_t shape[1] = { large ? (int64_t)16 << 20 : 64 + (i * 7919) % 961 };
		nnh5_tensor *t;
		char key[96];
		snprintf(key, sizeof key, "%s.layers.%ld.p%ld", part[i / per], layer, i % 8);
		rc = nnh5_tensor_new(&t, NNH5_FLOAT32, 1, shape);
		if (!rc) {
			float *p = nnh5_tensor_mutable_data(t);
			for (int64_t j = 0; j < shape[0]; j++)
				p[j] = (float)(i + j);
			rc = nnh5_dict_set(sd, key, t);
		}
	}
	if (!rc)
		rc = nnh5_save_state_dict(argv[2], sd);
	if (rc)
		fprintf(stderr, "direct_write_instructions: %s\n", nnh5_error_message());
	nnh5_dict_free(sd);
	return rc ? 1 : 0;
}
