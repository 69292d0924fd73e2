/*
 * bench/fresh_memory.c - what a large load's new memory costs: a file's
 * bytes read from the page cache into memory allocated for the read, by
 * the kind of memory, and nnh5_load_tensor() with and without huge pages
 * (nnh5_set_huge_pages()). It is the evidence behind nnh5's defaults (doc/
 * SPEED.md, "New memory for large tensors").
 *
 *   build/bench/fresh_memory --dir /path [--mib 512] [--rounds 7] [--pause 4]
 *
 * Writes DIR/fresh_memory.h5 (one float32 tensor of MIB MiB, saved by nnh5)
 * and the same bytes in DIR/fresh_memory.h5.raw, then reads them, every
 * round, with each method in a rotated order (both files in the page cache):
 *   read, malloc          read() into malloc'd memory (glibc: 16 bytes past
 *                         a page boundary for large blocks)
 *   read, page-aligned    read() into aligned_alloc(4096) memory
 *   read, huge pages      read() into 2 MiB-aligned memory advised
 *                         MADV_HUGEPAGE
 *   nnh5, 4 KiB pages     the one-call load (checksum verified) after
 *                         nnh5_set_huge_pages(NNH5_HUGE_PAGES_OFF)
 *   nnh5, huge pages      the same after NNH5_HUGE_PAGES_ON
 * Each method's memory is freed before the next one starts, and the
 * process sleeps PAUSE seconds after each: a virtual machine with
 * free page reporting hands freed 2 MiB blocks back to its host within
 * about two seconds, and new huge pages must then be backed again (pause
 * 0 shows memory reused at once). Prints the median, minimum and maximum
 * of each, and each median against "read, malloc" and "read,
 * page-aligned" of the same run. Figures only on a quiet machine.
 */
#define _GNU_SOURCE
#include <nnh5.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_util.h"

enum { READ_MALLOC, READ_PAGE, READ_HUGE, NNH5_DEFAULT, NNH5_HUGE, NMETHODS };

static const char *const names[NMETHODS] = {
	"read, malloc", "read, page-aligned", "read, huge pages", "nnh5, 4 KiB pages",
	"nnh5, huge pages",
};

static void die(const char *what)
{
	fprintf(stderr, "fresh_memory: %s\n", what);
	exit(1);
}

/* The plain file's n bytes into buf (pread until done). */
static void read_all(int fd, char *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, buf + done, n - done, (off_t)done);
		if (r <= 0)
			die("pread failed or the file is short");
		done += (size_t)r;
	}
}

static double run(int method, const char *path, int fd, size_t n)
{
	double t0 = bench_now_ms(), t;
	char *buf = NULL;
	nnh5_tensor *x = NULL;

	switch (method) {
	case READ_MALLOC:
		buf = malloc(n);
		break;
	case READ_PAGE:
		buf = aligned_alloc(4096, n);
		break;
	case READ_HUGE:
		buf = aligned_alloc((size_t)2 << 20, n);
		if (buf)
			madvise(buf, n, MADV_HUGEPAGE);
		break;
	default:
		nnh5_set_huge_pages(method == NNH5_HUGE ? NNH5_HUGE_PAGES_ON : NNH5_HUGE_PAGES_OFF);
		if (nnh5_load_tensor(&x, path))
			die(nnh5_error_message());
		t = bench_now_ms() - t0;
		nnh5_tensor_free(x);
		nnh5_set_huge_pages(NNH5_HUGE_PAGES_AUTO);
		return t;
	}
	if (!buf)
		die("out of memory");
	read_all(fd, buf, n);
	t = bench_now_ms() - t0;
	free(buf);
	return t;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	size_t mib = 512;
	int rounds = 7, pause = 4;
	char path[4096];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--mib") == 0)
			mib = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--pause") == 0)
			pause = atoi(argv[i + 1]);
	}
	if (!dir || mib < 4 || rounds < 1 || rounds > 100 || pause < 0) {
		fprintf(stderr, "usage: fresh_memory --dir DIR [--mib N>=4] [--rounds 1-100] "
				"[--pause SECONDS]\n");
		return 2;
	}
	snprintf(path, sizeof path, "%s/fresh_memory.h5", dir);

	/* The nnh5 file, and the same bytes in a plain file for read(). */
	size_t n = mib << 20;
	int64_t shape[1] = {(int64_t)(n / 4)};
	nnh5_tensor *t;
	char raw[4096 + 8];
	if (nnh5_tensor_full(&t, NNH5_FLOAT32, 1, shape, 1.5) || nnh5_save_tensor(path, t))
		die(nnh5_error_message());
	snprintf(raw, sizeof raw, "%s.raw", path);
	int fd = open(raw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("cannot create the plain file");
	for (size_t done = 0; done < n;) {
		ssize_t w = pwrite(fd, (const char *)nnh5_tensor_data(t) + done, n - done,
				   (off_t)done);
		if (w <= 0)
			die("write failed");
		done += (size_t)w;
	}
	nnh5_tensor_free(t);
	if (nnh5_load_tensor(&t, path)) /* the nnh5 file into the page cache too */
		die(nnh5_error_message());
	nnh5_tensor_free(t);

	double *ms = calloc((size_t)rounds * NMETHODS, sizeof *ms);
	if (!ms)
		die("out of memory");
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < NMETHODS; k++) {
			int m = (k + r) % NMETHODS;
			ms[m * rounds + r] = run(m, path, fd, n);
			sleep((unsigned)pause);
		}
	close(fd);

	double med[NMETHODS];
	printf("%zu MiB, %d rounds, %d s pause, methods rotated round by round\n", mib, rounds,
	       pause);
	for (int m = 0; m < NMETHODS; m++) {
		double lo = ms[m * rounds], hi = lo;
		for (int r = 1; r < rounds; r++) {
			lo = ms[m * rounds + r] < lo ? ms[m * rounds + r] : lo;
			hi = ms[m * rounds + r] > hi ? ms[m * rounds + r] : hi;
		}
		med[m] = bench_median(&ms[m * rounds], (size_t)rounds);
		printf("%-20s %8.1f ms [%.1f, %.1f]\n", names[m], med[m], lo, hi);
	}
	for (int m = 0; m < NMETHODS; m++)
		printf("ratio %-20s time / read-malloc %.2f, / read-page-aligned %.2f\n", names[m],
		       med[m] / med[READ_MALLOC], med[m] / med[READ_PAGE]);
	free(ms);
	unlink(path);
	unlink(raw);
	return 0;
}
