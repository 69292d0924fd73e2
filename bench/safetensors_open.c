/*
 * bench/safetensors_open.c - zero-copy: the time to open a safetensors file
 * and read one small tensor should not grow with the file.
 *
 *   safetensors_open [--dir DIR] [--sizes BYTES,BYTES,...] [--runs N]
 *
 * For each size (default 1 MiB and 1 GiB) a file is made in DIR (default
 * /tmp): a U8 tensor "big" filling the size (a sparse file: nothing is
 * written for it) and a 16-element F32 tensor "small" after it, at the end
 * of the file. Each run opens the file (nnh5_safetensors_open: map and
 * validate), gets "small" (a view), sums it and closes; the median of N runs
 * (default 200) is printed with the ratio to the first size. The page cache
 * is warm after the first run: this measures nnh5's own cost, which for a
 * mapped file does not depend on the size. The files are removed at the end.
 */
#include "bench_util.h"

#include <nnh5.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int make_file(const char *path, unsigned long long size)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof hdr,
			 "{\"big\":{\"dtype\":\"U8\",\"shape\":[%llu],\"data_offsets\":[0,%llu]},"
			 "\"small\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[%llu,%llu]}}",
			 size, size, size, size + 64);
	unsigned char len8[8];
	float small[16];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	while (n % 8)
		hdr[n++] = ' ';
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)((unsigned long long)n >> (8 * i));
	for (int i = 0; i < 16; i++)
		small[i] = (float)i;
	if (fd < 0 || write(fd, len8, 8) != 8 || write(fd, hdr, (size_t)n) != n ||
	    pwrite(fd, small, sizeof small, (off_t)(8 + n + size)) != (ssize_t)sizeof small) {
		perror(path);
		return -1;
	}
	return close(fd);
}

static double one_run(const char *path)
{
	nnh5_safetensors *st;
	nnh5_tensor *t;
	double t0 = bench_now_ms(), sum = 0;

	if (nnh5_safetensors_open(&st, path, NULL) || nnh5_safetensors_get(&t, st, "small")) {
		fprintf(stderr, "safetensors_open: %s\n", nnh5_error_message());
		exit(1);
	}
	for (size_t i = 0; i < nnh5_tensor_numel(t); i++)
		sum += nnh5_tensor_get(t, i);
	nnh5_tensor_free(t);
	nnh5_safetensors_close(st);
	if (sum != 120.0) {
		fprintf(stderr, "safetensors_open: wrong sum %g\n", sum);
		exit(1);
	}
	return bench_now_ms() - t0;
}

int main(int argc, char **argv)
{
	const char *dir = "/tmp", *sizes = "1048576,1073741824";
	int runs = 200;
	double first = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--sizes") == 0)
			sizes = argv[i + 1];
		else if (strcmp(argv[i], "--runs") == 0)
			runs = atoi(argv[i + 1]);
	}
	if (runs < 1)
		runs = 1;
	printf("%-14s %14s %10s\n", "file bytes", "open+get us", "ratio");
	for (const char *p = sizes; *p;) {
		unsigned long long size = strtoull(p, NULL, 10);
		char path[4096];
		double *v = malloc((size_t)runs * sizeof *v), med;
		snprintf(path, sizeof path, "%s/nnh5-bench-%llu.safetensors", dir, size);
		if (!v || make_file(path, size) < 0)
			return 1;
		for (int r = 0; r < runs; r++)
			v[r] = one_run(path);
		med = bench_median(v, (size_t)runs) * 1000.0;
		if (first == 0)
			first = med;
		printf("%-14llu %14.1f %10.2f\n", size, med, med / first);
		free(v);
		unlink(path);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	return 0;
}
