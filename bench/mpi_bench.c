/*
 * bench/mpi_bench.c - collective saves and loads against the I/O floor
 * (run under mpirun; figures only on a quiet machine, doc/MPI.md).
 *
 *   mpirun -np 4 build/bench/mpi_bench --dir /path --bytes 1073741824 --reps 5
 *   mpirun -np 4 build/bench/mpi_bench --dir /path --small 10000 --reps 5
 *
 * --bytes N: one float32 tensor of N bytes (rows of 4 KiB) split by rows
 * over the ranks. nnh5's collective save (nnh5_mpi_file_create, write,
 * close: checksums, MPI_File_sync, rename) and load (nnh5_mpi_read_sharded)
 * against an IOR-style baseline moving the same bytes with the same
 * decomposition through MPI_File_write_at_all + MPI_File_sync and
 * MPI_File_read_at_all. Reports the medians and nnh5/baseline ratios of
 * throughput (the target: >= 0.8).
 *
 * --small N: N tensors of 256 float32 each. Collectively, written once
 * each (replicated: rank 0 writes, every rank takes part in the calls),
 * against rank 0 alone saving the same N tensors with the serial API of
 * the same library (sec2 driver). Reports the ratio (target: <= 3).
 *
 * Every save is durable (fsync as in real use). Runs alternate so drift
 * hits both sides alike.
 */
#include "bench_util.h"

#include <nnh5.h>
#include <nnh5/mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank, nranks;

#define CHECK(call)                                                                      \
	do {                                                                             \
		int rc_ = (call);                                                        \
		if (rc_) {                                                               \
			fprintf(stderr, "rank %d: %s: %s\n", rank, #call, nnh5_error_message()); \
			MPI_Abort(MPI_COMM_WORLD, 1);                                    \
		}                                                                        \
	} while (0)

static double max_ms(double t)
{
	double m;
	MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	return m;
}

static void bench_bytes(const char *dir, uint64_t bytes, int reps)
{
	const int64_t cols = 1024; /* 4 KiB rows */
	int64_t rows = (int64_t)(bytes / (uint64_t)(cols * 4));
	int64_t shape[2] = { rows, cols }, start[2], count[2];
	nnh5_mpi_sharding s;
	char path[4096], raw[4096];
	double *t_save = calloc((size_t)reps, sizeof(double)), *t_load = calloc((size_t)reps, sizeof(double));
	double *b_save = calloc((size_t)reps, sizeof(double)), *b_load = calloc((size_t)reps, sizeof(double));
	nnh5_tensor *local, *back;

	if (rows < nranks) {
		if (rank == 0)
			fprintf(stderr, "--bytes too small for %d ranks\n", nranks);
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	CHECK(nnh5_mpi_sharding_init(&s, 2, shape));
	s.parts[0] = nranks;
	s.coord[0] = rank;
	CHECK(nnh5_mpi_sharding_box(start, count, &s));
	CHECK(nnh5_tensor_ones(&local, NNH5_FLOAT32, 2, count));
	snprintf(path, sizeof path, "%s/mpi_bench.h5", dir);
	snprintf(raw, sizeof raw, "%s/mpi_bench.raw", dir);
	MPI_Offset off = (MPI_Offset)(start[0] * cols * 4), n = (MPI_Offset)(count[0] * cols * 4);
	for (int r = 0; r < reps; r++) {
		nnh5_mpi_file *f;
		MPI_File fh;
		double t0;

		MPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
		CHECK(nnh5_mpi_write_sharded(f, "x", local, &s));
		CHECK(nnh5_mpi_file_close(f));
		t_save[r] = max_ms(bench_now_ms() - t0);

		MPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		MPI_File_open(MPI_COMM_WORLD, raw, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
		MPI_File_write_at_all(fh, off, nnh5_tensor_data(local), (int)n, MPI_BYTE,
				      MPI_STATUS_IGNORE);
		MPI_File_sync(fh);
		MPI_File_close(&fh);
		b_save[r] = max_ms(bench_now_ms() - t0);

		MPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, NULL));
		CHECK(nnh5_mpi_read_sharded(&back, f, "x", &s));
		CHECK(nnh5_mpi_file_close(f));
		t_load[r] = max_ms(bench_now_ms() - t0);
		nnh5_tensor_free(back);

		void *buf = malloc((size_t)n);
		MPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		MPI_File_open(MPI_COMM_WORLD, raw, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh);
		MPI_File_read_at_all(fh, off, buf, (int)n, MPI_BYTE, MPI_STATUS_IGNORE);
		MPI_File_close(&fh);
		b_load[r] = max_ms(bench_now_ms() - t0);
		free(buf);
	}
	if (rank == 0) {
		double gb = (double)rows * (double)cols * 4 / 1e9;
		double ms = bench_median(t_save, (size_t)reps), mb = bench_median(b_save, (size_t)reps);
		double ls = bench_median(t_load, (size_t)reps), lb = bench_median(b_load, (size_t)reps);
		printf("np %d, %.3f GB, %d reps (medians)\n", nranks, gb, reps);
		printf("save  nnh5 %8.1f ms %7.2f GB/s | write_at_all+sync %8.1f ms %7.2f GB/s | ratio %.2f\n",
		       ms, gb / ms * 1e3, mb, gb / mb * 1e3, mb / ms);
		printf("load  nnh5 %8.1f ms %7.2f GB/s | read_at_all        %8.1f ms %7.2f GB/s | ratio %.2f\n",
		       ls, gb / ls * 1e3, lb, gb / lb * 1e3, lb / ls);
	}
	unlink(raw);
	if (rank == 0)
		unlink(path);
	nnh5_tensor_free(local);
	free(t_save);
	free(t_load);
	free(b_save);
	free(b_load);
}

static void bench_small(const char *dir, int n, int reps)
{
	int64_t shape[1] = { 256 };
	nnh5_mpi_sharding s;
	nnh5_tensor *t;
	char path[4096], spath[4096], name[64];
	double *tc = calloc((size_t)reps, sizeof(double)), *ts = calloc((size_t)reps, sizeof(double));

	CHECK(nnh5_tensor_ones(&t, NNH5_FLOAT32, 1, shape));
	CHECK(nnh5_mpi_sharding_init(&s, 1, shape));
	s.replica = rank;
	snprintf(path, sizeof path, "%s/mpi_bench_small.h5", dir);
	snprintf(spath, sizeof spath, "%s/mpi_bench_serial.h5", dir);
	for (int r = 0; r < reps; r++) {
		nnh5_mpi_file *f;
		double t0;

		MPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof name, "g%d/t%d", i / 100, i);
			CHECK(nnh5_mpi_write_sharded(f, name, t, &s));
		}
		CHECK(nnh5_mpi_file_close(f));
		tc[r] = max_ms(bench_now_ms() - t0);

		MPI_Barrier(MPI_COMM_WORLD);
		if (rank == 0) {
			nnh5_file *sf;
			t0 = bench_now_ms();
			CHECK(nnh5_file_open(&sf, spath, NNH5_CREATE));
			for (int i = 0; i < n; i++) {
				snprintf(name, sizeof name, "g%d/t%d", i / 100, i);
				CHECK(nnh5_file_write_tensor(sf, name, t));
			}
			CHECK(nnh5_file_close(sf));
			ts[r] = bench_now_ms() - t0;
		}
	}
	if (rank == 0) {
		double c = bench_median(tc, (size_t)reps), sm = bench_median(ts, (size_t)reps);
		printf("np %d, %d tensors of 1 KiB, %d reps (medians)\n", nranks, n, reps);
		printf("collective %8.1f ms (%.1f us/tensor) | serial %8.1f ms (%.1f us/tensor) | "
		       "ratio %.2f\n",
		       c, c * 1e3 / n, sm, sm * 1e3 / n, c / sm);
		unlink(path);
		unlink(spath);
	}
	nnh5_tensor_free(t);
	free(tc);
	free(ts);
}

int main(int argc, char **argv)
{
	const char *dir = ".";
	uint64_t bytes = 0;
	int small = 0, reps = 5;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--bytes") == 0)
			bytes = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--small") == 0)
			small = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--reps") == 0)
			reps = atoi(argv[i + 1]);
	}
	if (reps < 1)
		reps = 1;
	if (bytes)
		bench_bytes(dir, bytes, reps);
	if (small > 0)
		bench_small(dir, small, reps);
	if (!bytes && small <= 0 && rank == 0)
		fprintf(stderr, "usage: mpirun -np P mpi_bench --dir DIR [--bytes N] [--small N] [--reps R]\n");
	MPI_Finalize();
	return 0;
}
