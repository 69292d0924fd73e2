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
 *
 * It uses the public API only, so it builds against older nnh5 releases too:
 * doc/SPEED.md, "Small-tensor loads", interleaves two builds' `time` runs.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <nnh5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_DEFAULT 2000
#define FLOATS 256 /* 1 KiB of float32 */

static int write_file(const char *path, long n)
{
	nnh5_dict *sd;
	int rc = nnh5_dict_new(&sd);

	for (long i = 0; !rc && i < n; i++) {
		nnh5_tensor *t;
		char key[64];
		int64_t shape[1] = { FLOATS };
		snprintf(key, sizeof key, "layer%ld.w%ld", i / 12, i % 12);
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

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
{
	nnh5_dict *sd = NULL;
	long n = argc == 4 ? strtol(argv[3], NULL, 10) : N_DEFAULT;
	int rc;

	if (argc < 3 || argc > 4 || n <= 0 ||
	    (strcmp(argv[1], "write") && strcmp(argv[1], "load") && strcmp(argv[1], "time")) ||
	    (argc == 4 && strcmp(argv[1], "write"))) {
		fprintf(stderr, "usage: load_instructions write FILE [N] | load FILE | time FILE\n");
		return 2;
	}
	if (strcmp(argv[1], "write") == 0) {
		rc = write_file(argv[2], n);
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
