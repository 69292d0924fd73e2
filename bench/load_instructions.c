/*
 * bench/load_instructions.c - a fixed workload for counting instructions
 * per small tensor with callgrind (deterministic, unlike a clock):
 *
 *   load_instructions write FILE   (a state dict of 2,000 tensors of 1 KiB)
 *   valgrind --tool=callgrind --toggle-collect=nnh5_load_state_dict \
 *       load_instructions load FILE
 *
 * Divide the instructions callgrind reports by 2,000.
 */
#include <nnh5.h>

#include <stdio.h>
#include <string.h>

#define N_TENSORS 2000
#define FLOATS 256 /* 1 KiB of float32 */

static int write_file(const char *path)
{
	nnh5_dict *sd;
	int rc = nnh5_dict_new(&sd);

	for (int i = 0; !rc && i < N_TENSORS; i++) {
		nnh5_tensor *t;
		char key[64];
		int64_t shape[1] = { FLOATS };
		snprintf(key, sizeof key, "layer%d.block%d.weight", i / 10, i % 10);
		rc = nnh5_tensor_new(&t, NNH5_FLOAT32, 1, shape);
		if (!rc) {
			float *p = nnh5_tensor_mutable_data(t);
			for (int j = 0; j < FLOATS; j++)
				p[j] = (float)(i * FLOATS + j);
			rc = nnh5_dict_set(sd, key, t);
			if (rc)
				nnh5_tensor_free(t);
		}
	}
	if (!rc)
		rc = nnh5_save_state_dict(path, sd);
	nnh5_dict_free(sd);
	return rc;
}

int main(int argc, char **argv)
{
	nnh5_dict *sd = NULL;
	int rc;

	if (argc != 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "load"))) {
		fprintf(stderr, "usage: load_instructions write|load FILE\n");
		return 2;
	}
	if (strcmp(argv[1], "write") == 0) {
		rc = write_file(argv[2]);
	} else {
		rc = nnh5_load_state_dict(&sd, argv[2]);
		if (!rc && nnh5_dict_len(sd) != N_TENSORS)
			rc = NNH5_ERR_FORMAT;
		nnh5_dict_free(sd);
	}
	if (rc)
		fprintf(stderr, "load_instructions: %s\n", nnh5_error_message());
	return rc ? 1 : 0;
}
