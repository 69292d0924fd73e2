/*
 * bench/mpi_bench.c - collective saves and loads against the I/O floor and
 * against serial nnh5, and the constants of doc/MPI.md's model (run under
 * mpirun; figures only on a quiet machine, doc/MPI.md "Speed").
 *
 *   mpirun -np 4 build/bench/mpi_bench --dir /path --bytes 1073741824 --reps 5
 *   mpirun -np 4 build/bench/mpi_bench --dir /path --small 10000 --reps 5
 *
 * --bytes N: one float32 tensor of N bytes (rows of 4 KiB) split by rows
 * over the ranks. nnh5's collective save (nnh5_mpi_file_create, write,
 * close: checksums, MPI_File_sync, rename) and load (nnh5_mpi_read_sharded)
 * against an IOR-style baseline moving the same bytes with the same
 * decomposition through MPI_File_write_at_all + MPI_File_sync and
 * MPI_File_read_at_all. Loads come in two pairs doing the same job:
 * nnh5_mpi_read_sharded (a new tensor) against the baseline reading into a
 * page-aligned buffer allocated that round, and nnh5_mpi_read_sharded_into
 * (a tensor the caller keeps) against the baseline reading into one reused
 * buffer. --huge-pages: nnh5_set_huge_pages(NNH5_HUGE_PAGES_ON) first (by
 * default the library decides, NNH5_HUGE_PAGES_AUTO). --rounds: every
 * round's time after each median, in the order run. All
 * run interleaved, round by round, in an order that turns each round (the
 * saves, then the loads). Reports medians and ranges and the
 * ratios of throughputs nnh5 / baseline (the target: >= 0.8).
 *
 * --small N: a state dict of N tensors of 256 float32 each, replicated
 * (rank 0 writes, every rank takes part): the collective save
 * (nnh5_mpi_write_state_dict), the same through N calls of
 * nnh5_mpi_write_sharded, the same dict as the one section of a durable
 * collective checkpoint (nnh5_mpi_checkpoints_save: summary, commit,
 * retention), and rank 0 saving the same dict with the serial
 * nnh5_save_state_dict of the same library; loads: every rank its copy
 * through one reader and a broadcast (nnh5_mpi_load_state_dict), against
 * rank 0's serial nnh5_load_state_dict. Ratios against serial (target: the
 * collective save <= 3x serial). Also counts (independent of machine load)
 * of the MPI calls each save makes, through PMPI wrappers. And the same
 * number of tensors split by rows over the ranks (1 KiB per rank each): the
 * per-dataset cost of a split tensor (with NNH5_DIRECT_WRITE=0, HDF5
 * 1.10's path: one collective H5Dwrite each).
 *
 * Lines starting "const" are the model's constants (doc/MPI.md).
 * Every save is durable (fsync as in real use).
 */
#include "bench_util.h"

#include <nnh5.h>
#include <nnh5/mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/* ------------------------------------------------------------------ */
/* Counting MPI calls (PMPI): what a save costs in collectives         */

enum { C_ALLREDUCE, C_BCAST, C_BARRIER, C_ALLGATHER, C_WRITE_ALL, C_WRITE, C_SYNC, C_NCOUNT };
static const char *const count_names[C_NCOUNT] = {
	"Allreduce", "Bcast", "Barrier", "Allgather(v)", "File_write_at_all", "File_write_at",
	"File_sync",
};
static unsigned long counts[C_NCOUNT];

int MPI_Allreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
	counts[C_ALLREDUCE]++;
	return PMPI_Allreduce(s, r, n, t, op, c);
}

int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm c)
{
	counts[C_BCAST]++;
	return PMPI_Bcast(b, n, t, root, c);
}

int MPI_Barrier(MPI_Comm c)
{
	counts[C_BARRIER]++;
	return PMPI_Barrier(c);
}

int MPI_Allgather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt,
		  MPI_Comm c)
{
	counts[C_ALLGATHER]++;
	return PMPI_Allgather(s, sn, st, r, rn, rt, c);
}

int MPI_Allgatherv(const void *s, int sn, MPI_Datatype st, void *r, const int rn[],
		   const int d[], MPI_Datatype rt, MPI_Comm c)
{
	counts[C_ALLGATHER]++;
	return PMPI_Allgatherv(s, sn, st, r, rn, d, rt, c);
}

int MPI_File_write_at_all(MPI_File fh, MPI_Offset o, const void *b, int n, MPI_Datatype t,
			  MPI_Status *st)
{
	counts[C_WRITE_ALL]++;
	return PMPI_File_write_at_all(fh, o, b, n, t, st);
}

int MPI_File_write_at(MPI_File fh, MPI_Offset o, const void *b, int n, MPI_Datatype t,
		      MPI_Status *st)
{
	counts[C_WRITE]++;
	return PMPI_File_write_at(fh, o, b, n, t, st);
}

int MPI_File_sync(MPI_File fh)
{
	counts[C_SYNC]++;
	return PMPI_File_sync(fh);
}

/* This rank's calls since the snapshot in before. */
static void print_counts(const char *what, const unsigned long *before, int per)
{
	if (rank != 0)
		return;
	printf("count %-28s rank 0 MPI calls:", what);
	for (int i = 0; i < C_NCOUNT; i++)
		printf(" %s %lu (%.2f/tensor)", count_names[i], counts[i] - before[i],
		       (double)(counts[i] - before[i]) / per);
	printf("\n");
}

/* ------------------------------------------------------------------ */

static double max_ms(double t)
{
	double m;
	PMPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	return m;
}

static double vmin(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double vmax(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

/* "label  median ms [min, max]  GB/s" for times t of moving gb gigabytes (gb 0: no rate). */
/* --rounds: every round's time after the median, in the order run. */
static bool show_rounds;

static double report(const char *label, const double *t, int reps, double gb)
{
	double med = bench_median(t, (size_t)reps);
	printf("%-34s %10.2f ms [%.2f, %.2f]", label, med, vmin(t, reps), vmax(t, reps));
	if (gb > 0)
		printf(" %8.3f GB/s", gb / med * 1e3);
	for (int i = 0; show_rounds && i < reps; i++)
		printf("%s%.0f", i ? " " : "  rounds: ", t[i]);
	printf("\n");
	return med;
}

/* Bytes of round i of moving n bytes in rounds of 1 GiB (0 past the end). */
static MPI_Offset piece_at(MPI_Offset n, int i)
{
	MPI_Offset done = (MPI_Offset)i << 30;
	if (done >= n)
		return 0;
	return n - done > ((MPI_Offset)1 << 30) ? (MPI_Offset)1 << 30 : n - done;
}

/*
 * This process's page faults (minor and major) and CPU time (user, system)
 * so far: figures that depend little on the machine's load.
 */
struct usage {
	long faults;
	double user_ms, sys_ms;
};

static struct usage usage_now(void)
{
	struct rusage ru;
	struct usage u = { 0, 0, 0 };
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		u.faults = ru.ru_minflt + ru.ru_majflt;
		u.user_ms = (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3;
		u.sys_ms = (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3;
	}
	return u;
}

static struct usage usage_since(struct usage a)
{
	struct usage b = usage_now();
	return (struct usage){ b.faults - a.faults, b.user_ms - a.user_ms, b.sys_ms - a.sys_ms };
}

/* The IOR-style read: n bytes at off of raw into buf, in rounds of at most 1 GiB. */
/* n bytes (at least one page) on a page boundary; exits on failure (a benchmark). */
static void *page_alloc(size_t n)
{
	size_t page = 4096, size = (n + page - 1) / page * page;
	void *p = aligned_alloc(page, size ? size : page);

	if (!p) {
		fprintf(stderr, "mpi_bench: out of memory (%zu bytes)\n", n);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	return p;
}

static void baseline_read(const char *raw, void *buf, MPI_Offset off, MPI_Offset n, int rounds)
{
	MPI_File fh;

	MPI_File_open(MPI_COMM_WORLD, raw, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh);
	for (int i = 0; i < rounds; i++) {
		MPI_Offset done = (MPI_Offset)i << 30, k = piece_at(n, i);
		MPI_File_read_at_all(fh, off + done, (char *)buf + done, (int)k, MPI_BYTE,
				     MPI_STATUS_IGNORE);
	}
	MPI_File_close(&fh);
}

static void bench_bytes(const char *dir, uint64_t bytes, int reps)
{
	const int64_t cols = 1024; /* 4 KiB rows */
	int64_t rows = (int64_t)(bytes / (uint64_t)(cols * 4));
	int64_t shape[2] = { rows, cols }, start[2], count[2];
	nnh5_mpi_sharding s;
	char path[4096], raw[4096];
	double *t[7];
	struct usage flt[7], f0;
	nnh5_open_options nover = NNH5_OPEN_OPTIONS_INIT;
	nnh5_tensor *local, *back, *into;

	if (rows < nranks) {
		if (rank == 0)
			fprintf(stderr, "--bytes too small for %d ranks\n", nranks);
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	for (int i = 0; i < 7; i++)
		t[i] = calloc((size_t)reps + 1, sizeof(double)); /* [reps]: the warm-up round */
	/* What the checksum chain costs: the same load with verification off. */
	nover.verify_checksums = false;
	CHECK(nnh5_mpi_sharding_init(&s, 2, shape));
	s.parts[0] = nranks;
	s.coord[0] = rank;
	CHECK(nnh5_mpi_sharding_box(start, count, &s));
	CHECK(nnh5_tensor_ones(&local, NNH5_FLOAT32, 2, count));
	/*
	 * The reused destinations: touched once here, warm in every round (not
	 * zeros: a compiler may turn malloc + memset 0 into calloc, which leaves
	 * fresh mmap'd memory untouched).
	 */
	CHECK(nnh5_tensor_full(&into, NNH5_FLOAT32, 2, count, 2.0));
	snprintf(path, sizeof path, "%s/mpi_bench.h5", dir);
	snprintf(raw, sizeof raw, "%s/mpi_bench.raw", dir);
	MPI_Offset off = (MPI_Offset)(start[0] * cols * 4), n = (MPI_Offset)(count[0] * cols * 4);
	/* Page-aligned, as IOR's buffers: a copy into memory 16 bytes past a page boundary
	 * (where malloc's large blocks start) runs at about 0.6 times the speed here. */
	void *buf = page_alloc((size_t)n);
	memset(buf, 1, n ? (size_t)n : 1);
	unsigned long before[C_NCOUNT];
	int rounds = (int)((n + ((MPI_Offset)1 << 30) - 1) >> 30), most;
	PMPI_Allreduce(&rounds, &most, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	rounds = most > 0 ? most : 1;
	for (int r = -1; r < reps; r++) {
		int slot = r < 0 ? reps : r; /* round -1 warms up, untimed in the medians */
		nnh5_mpi_file *f;
		MPI_File fh;
		double t0;

		/*
		 * Both write a new file, as IOR does (it removes its file between
		 * iterations, outside the timing): overwriting the blocks of the
		 * last round's file in place skips the file system's allocation,
		 * which a save into a new file (nnh5's temporary file) cannot.
		 */
		/*
		 * The two saves, then the five loads, each group in an order that
		 * turns round by round: whichever runs first after the saves (or
		 * after another method freed its memory) pays for the page cache's
		 * and the memory's state, so no method always comes first.
		 */
		for (int o = 0; o < 2; o++) {
			if ((o + r + 2) % 2 == 0) {
				if (rank == 0)
					unlink(path);
				memcpy(before, counts, sizeof before);
				PMPI_Barrier(MPI_COMM_WORLD);
				t0 = bench_now_ms();
				CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
				CHECK(nnh5_mpi_write_sharded(f, "x", local, &s));
				CHECK(nnh5_mpi_file_close(f));
				t[0][slot] = max_ms(bench_now_ms() - t0);
				if (r < 0)
					print_counts("bytes: nnh5 save", before, 1);
				if (r < 0 && rank == 0) {
					/* Which verification the verified loads below run (doc/MPI.md, "When loads are verified"). */
					nnh5_file *sf;
					int64_t bb = 0;
					CHECK(nnh5_file_open(&sf, path, NNH5_READ));
					if (nnh5_file_get_attr_int(&bb, sf, "x", "nnh5_xxh3_block_bytes") == NNH5_OK)
						printf("bytes: block checksums of %lld bytes: verified loads hash each "
						       "rank's own blocks\n",
						       (long long)bb);
					else
						printf("bytes: no block checksums (32 MiB or less): verified loads run "
						       "the whole-tensor chain\n");
					nnh5_file_close(sf);
				}
			} else {
				if (rank == 0)
					unlink(raw);
				PMPI_Barrier(MPI_COMM_WORLD);
				t0 = bench_now_ms();
				MPI_File_open(MPI_COMM_WORLD, raw, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
				/* A count is an int: shards move in rounds of at most 1 GiB, as many on every rank. */
				for (int i = 0; i < rounds; i++) {
					MPI_Offset done = (MPI_Offset)i << 30, k = piece_at(n, i);
					MPI_File_write_at_all(fh, off + done, (const char *)nnh5_tensor_data(local) + done,
							      (int)k, MPI_BYTE, MPI_STATUS_IGNORE);
				}
				MPI_File_sync(fh);
				MPI_File_close(&fh);
				t[1][slot] = max_ms(bench_now_ms() - t0);
			}
		}

		/*
		 * Loads. nnh5_mpi_read_sharded hands back a new tensor, so its
		 * honest peer reads into memory allocated that round (page-aligned,
		 * as IOR's); _into fills a tensor the caller keeps,
		 * against the peer reading into one reused, warm buffer.
		 */
		for (int o = 0; o < 5; o++) {
			switch ((o + r + 5) % 5) {
			case 0: {
				PMPI_Barrier(MPI_COMM_WORLD);
				f0 = usage_now();
				t0 = bench_now_ms();
				CHECK(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, NULL));
				CHECK(nnh5_mpi_read_sharded(&back, f, "x", &s));
				CHECK(nnh5_mpi_file_close(f));
				t[2][slot] = max_ms(bench_now_ms() - t0);
				flt[2] = usage_since(f0);
				nnh5_tensor_free(back);
				break;
			}
			case 1: {
				PMPI_Barrier(MPI_COMM_WORLD);
				f0 = usage_now();
				t0 = bench_now_ms();
				void *fresh = page_alloc((size_t)n);
				baseline_read(raw, fresh, off, n, rounds);
				t[4][slot] = max_ms(bench_now_ms() - t0);
				flt[4] = usage_since(f0);
				free(fresh);
				break;
			}
			case 2: {
				PMPI_Barrier(MPI_COMM_WORLD);
				f0 = usage_now();
				t0 = bench_now_ms();
				CHECK(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, NULL));
				CHECK(nnh5_mpi_read_sharded_into(into, f, "x", &s));
				CHECK(nnh5_mpi_file_close(f));
				t[5][slot] = max_ms(bench_now_ms() - t0);
				flt[5] = usage_since(f0);
				break;
			}
			case 3: {
				PMPI_Barrier(MPI_COMM_WORLD);
				f0 = usage_now();
				t0 = bench_now_ms();
				CHECK(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, &nover));
				CHECK(nnh5_mpi_read_sharded_into(into, f, "x", &s));
				CHECK(nnh5_mpi_file_close(f));
				t[6][slot] = max_ms(bench_now_ms() - t0);
				flt[6] = usage_since(f0);
				break;
			}
			case 4: {
				PMPI_Barrier(MPI_COMM_WORLD);
				f0 = usage_now();
				t0 = bench_now_ms();
				baseline_read(raw, buf, off, n, rounds);
				t[3][slot] = max_ms(bench_now_ms() - t0);
				flt[3] = usage_since(f0);
				break;
			}
			}
		}
	}
	if (rank == 0) {
		double gb = (double)rows * (double)cols * 4 / 1e9;
		printf("bytes: np %d, %.3f GB, %d reps interleaved (median [min, max])\n", nranks, gb,
		       reps);
		/*
		 * The warm-up round: the first saves and whichever load runs first
		 * after them pay one-time costs of the process and the file system
		 * (doc/MPI.md, "Speed: the benchmark").
		 */
		printf("bytes: warm-up round, not in the medians: saves %.0f / %.0f ms, loads %.0f / %.0f "
		       "/ %.0f / %.0f / %.0f ms (in the order below)\n",
		       t[0][reps], t[1][reps], t[2][reps], t[4][reps], t[5][reps], t[3][reps],
		       t[6][reps]);
		double ms = report("save nnh5", t[0], reps, gb);
		double mb = report("save write_at_all+sync (baseline)", t[1], reps, gb);
		double ls = report("load nnh5 (new tensor)", t[2], reps, gb);
		double lf = report("load read_at_all, fresh (baseline)", t[4], reps, gb);
		double li = report("load nnh5 _into (reused)", t[5], reps, gb);
		double lb = report("load read_at_all, reused (baseline)", t[3], reps, gb);
		double lv = report("load nnh5 _into, checksum off", t[6], reps, gb);
		static const char *const lname[7] = { "", "", "load nnh5", "reused baseline",
						      "fresh baseline", "nnh5 _into",
						      "_into, no checksum" };
		for (int i = 2; i < 7; i++)
			printf("usage rank 0, last round: %-16s %8ld page faults, %8.1f ms user, "
			       "%8.1f ms system\n",
			       lname[i], flt[i].faults, flt[i].user_ms, flt[i].sys_ms);
		printf("ratio save nnh5/baseline throughput %.3f (target >= 0.8)\n", mb / ms);
		printf("ratio load nnh5/baseline throughput %.3f (new tensor vs fresh buffer; target "
		       ">= 0.8)\n",
		       lf / ls);
		printf("ratio load nnh5/baseline-reused throughput %.3f (new tensor vs reused "
		       "buffer)\n",
		       lb / ls);
		printf("ratio load nnh5-into/baseline-reused throughput %.3f (both reused; target "
		       ">= 0.8)\n",
		       lb / li);
		printf("ratio load nnh5-into-unverified/baseline-reused throughput %.3f (the "
		       "verification's share)\n",
		       lb / lv);
		printf("const B_w %.3f GB/s (np %d, baseline write+sync)\n", gb / mb * 1e3, nranks);
		printf("const B_r %.3f GB/s (np %d, baseline read, reused buffer)\n", gb / lb * 1e3,
		       nranks);
		printf("const b_nnh5_w %.3f GB/s (np %d, nnh5 save: write, checksum chain, "
		       "metadata, sync, commit)\n",
		       gb / ms * 1e3, nranks);
	}
	free(buf);
	unlink(raw);
	if (rank == 0)
		unlink(path);
	nnh5_tensor_free(local);
	nnh5_tensor_free(into);
	for (int i = 0; i < 7; i++)
		free(t[i]);
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* N tensors "g<i/100>.t<i>" of 256 float32, each rank's copy the same. */
static nnh5_dict *small_dict(int n)
{
	int64_t shape[1] = { 256 };
	char name[64];
	nnh5_dict *d;

	CHECK(nnh5_dict_new(&d));
	for (int i = 0; i < n; i++) {
		nnh5_tensor *t;
		CHECK(nnh5_tensor_full(&t, NNH5_FLOAT32, 1, shape, (double)i));
		snprintf(name, sizeof name, "g%d.t%d", i / 100, i);
		CHECK(nnh5_dict_set(d, name, t));
	}
	return d;
}

static void bench_small(const char *dir, int n, int reps)
{
	int64_t shape[1] = { 256 };
	nnh5_mpi_sharding *sh = calloc((size_t)n, sizeof *sh);
	nnh5_dict *d = small_dict(n), *back;
	char path[4096], ppath[4096], spath[4096], epath[4096], name[64];
	double *t[8];
	struct usage lu[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
	char cdir[4096];
	nnh5_mpi_checkpoints *ck;
	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	unsigned long before[C_NCOUNT];
	long empty_size = 0, coll_size = 0;
	/* The same count of tensors split by rows over the ranks: each rank writes 1 KiB of each. */
	int64_t sshape[2] = { nranks, 256 };
	nnh5_mpi_sharding *ssh = calloc((size_t)n, sizeof *ssh);
	nnh5_dict *sd;
	char xpath[4096];

	CHECK(nnh5_dict_new(&sd));
	for (int i = 0; i < n; i++) {
		nnh5_tensor *piece;
		int64_t one[2] = { 1, 256 };
		CHECK(nnh5_mpi_sharding_init(&ssh[i], 2, sshape));
		ssh[i].parts[0] = nranks;
		ssh[i].coord[0] = rank;
		CHECK(nnh5_tensor_full(&piece, NNH5_FLOAT32, 2, one, (double)i));
		snprintf(name, sizeof name, "g%d.t%d", i / 100, i);
		CHECK(nnh5_dict_set(sd, name, piece));
	}
	snprintf(xpath, sizeof xpath, "%s/mpi_bench_split.h5", dir);
	for (int i = 0; i < 8; i++)
		t[i] = calloc((size_t)reps, sizeof(double));
	/* The collective checkpoint folder (durable, the default), two kept. */
	snprintf(cdir, sizeof cdir, "%s/mpi_bench_ckpts", dir);
	co.keep_last = 2;
	CHECK(nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, cdir, &co));
	for (int i = 0; i < n; i++) {
		CHECK(nnh5_mpi_sharding_init(&sh[i], 1, shape));
		sh[i].replica = rank;
	}
	snprintf(path, sizeof path, "%s/mpi_bench_small.h5", dir);
	snprintf(ppath, sizeof ppath, "%s/mpi_bench_percall.h5", dir);
	snprintf(spath, sizeof spath, "%s/mpi_bench_serial.h5", dir);
	snprintf(epath, sizeof epath, "%s/mpi_bench_empty.h5", dir);
	for (int r = 0; r < reps; r++) {
		nnh5_mpi_file *f;
		double t0;

		/* An empty collective save: create, commit (the fixed cost). */
		PMPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, epath, NULL));
		CHECK(nnh5_mpi_file_close(f));
		t[0][r] = max_ms(bench_now_ms() - t0);

		memcpy(before, counts, sizeof before);
		PMPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
		CHECK(nnh5_mpi_write_state_dict(f, "/", d, sh));
		CHECK(nnh5_mpi_file_close(f));
		t[1][r] = max_ms(bench_now_ms() - t0);
		if (r == 0)
			print_counts("small: collective state dict", before, n);

		memcpy(before, counts, sizeof before);
		PMPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, ppath, NULL));
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof name, "g%d/t%d", i / 100, i);
			CHECK(nnh5_mpi_write_sharded(f, name, nnh5_dict_value(d, (size_t)i), &sh[i]));
		}
		CHECK(nnh5_mpi_file_close(f));
		t[2][r] = max_ms(bench_now_ms() - t0);
		if (r == 0)
			print_counts("small: per-call write_sharded", before, n);

		memcpy(before, counts, sizeof before);
		PMPI_Barrier(MPI_COMM_WORLD);
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, xpath, NULL));
		CHECK(nnh5_mpi_write_state_dict(f, "/", sd, ssh));
		CHECK(nnh5_mpi_file_close(f));
		t[6][r] = max_ms(bench_now_ms() - t0);
		if (r == 0)
			print_counts("small: split state dict", before, n);

		PMPI_Barrier(MPI_COMM_WORLD);
		if (rank == 0) {
			t0 = bench_now_ms();
			CHECK(nnh5_save_state_dict(spath, d));
			t[3][r] = bench_now_ms() - t0;
		}

		/* The same dict as a collective checkpoint's one section (summary, commit, retention). */
		{
			nnh5_checkpoint *summary;
			nnh5_mpi_section sec = { "model", d, sh };
			CHECK(nnh5_checkpoint_new(&summary, r + 1));
			CHECK(nnh5_checkpoint_set_metric(summary, "loss", 1.0 / (r + 1)));
			PMPI_Barrier(MPI_COMM_WORLD);
			t0 = bench_now_ms();
			CHECK(nnh5_mpi_checkpoints_save(ck, summary, 1, &sec));
			t[7][r] = max_ms(bench_now_ms() - t0);
			nnh5_checkpoint_free(summary);
		}

		PMPI_Barrier(MPI_COMM_WORLD);
		struct usage u0 = usage_now();
		t0 = bench_now_ms();
		CHECK(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, "/"));
		t[4][r] = max_ms(bench_now_ms() - t0);
		lu[0] = usage_since(u0);
		nnh5_dict_free(back);

		PMPI_Barrier(MPI_COMM_WORLD);
		if (rank == 0) {
			u0 = usage_now();
			t0 = bench_now_ms();
			CHECK(nnh5_load_state_dict(&back, spath));
			t[5][r] = bench_now_ms() - t0;
			lu[1] = usage_since(u0);
			nnh5_dict_free(back);
		}
	}
	if (rank == 0) {
		empty_size = file_size(epath);
		coll_size = file_size(path);
		printf("small: np %d, %d tensors of 1 KiB, %d reps interleaved (median [min, max])\n",
		       nranks, n, reps);
		double e = report("empty collective save", t[0], reps, 0);
		double c = report("save collective state dict", t[1], reps, 0);
		double pc = report("save per-call write_sharded", t[2], reps, 0);
		double sp = report("save split state dict", t[6], reps, 0);
		double ck_ms = report("save collective checkpoint", t[7], reps, 0);
		double s = report("save serial nnh5 (rank 0)", t[3], reps, 0);
		double lc = report("load one reader + broadcast", t[4], reps, 0);
		double ls = report("load serial nnh5 (rank 0)", t[5], reps, 0);
		printf("ratio save collective/serial time %.2f (target <= 3)\n", c / s);
		printf("ratio save per-call/serial time %.2f\n", pc / s);
		printf("ratio save checkpoint/serial time %.2f\n", ck_ms / s);
		printf("ratio load collective/serial time %.2f\n", lc / ls);
		/*
		 * Each rank of the one-reader load walks the whole file image, as the
		 * serial load does: with more ranks than cores that CPU work is
		 * shared out over fewer cores, which the wall-clock ratio includes.
		 */
		for (int i = 0; i < 2; i++)
			printf("usage rank 0, last round: %-28s %8ld page faults, %8.1f ms user, "
			       "%8.1f ms system\n",
			       i ? "load serial nnh5" : "load one reader + broadcast", lu[i].faults,
			       lu[i].user_ms, lu[i].sys_ms);
		printf("const c_ds %.1f us per dataset (np %d: (state dict save - empty save) / N)\n",
		       (c - e) * 1e3 / n, nranks);
		printf("const c_split %.1f us per split dataset (np %d: (split state dict save - "
		       "empty save) / N)\n",
		       (sp - e) * 1e3 / n, nranks);
		printf("const t_commit %.2f ms (np %d: an empty collective save, create to commit)\n",
		       e, nranks);
		printf("const m_ds %.0f bytes of metadata per tensor ((file - empty file - data) / N)\n",
		       (double)(coll_size - empty_size - (long)n * 1024) / n);
		unlink(path);
		unlink(ppath);
		unlink(spath);
		unlink(epath);
		unlink(xpath);
	}
	CHECK(nnh5_mpi_checkpoints_close(ck));
	if (rank == 0) {
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", cdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", cdir);
	}
	nnh5_dict_free(d);
	nnh5_dict_free(sd);
	free(sh);
	free(ssh);
	for (int i = 0; i < 8; i++)
		free(t[i]);
}

/* The latency of one agreement: an MPI_Allreduce of 3 words (status and two digests). */
static void bench_agree(void)
{
	const int iters = 1000;
	uint64_t v[3] = { 0, 0, 0 };
	double t0;

	PMPI_Barrier(MPI_COMM_WORLD);
	t0 = bench_now_ms();
	for (int i = 0; i < iters; i++)
		PMPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	double t = max_ms(bench_now_ms() - t0);
	if (rank == 0)
		printf("const t_agree %.2f us (np %d: one MPI_Allreduce of 3 words, mean of %d)\n",
		       t * 1e3 / iters, nranks, iters);
}

int main(int argc, char **argv)
{
	const char *dir = ".";
	uint64_t bytes = 0;
	int small = 0, reps = 5;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : "";
		if (strcmp(argv[i], "--huge-pages") == 0)
			nnh5_set_huge_pages(NNH5_HUGE_PAGES_ON);
		else if (strcmp(argv[i], "--rounds") == 0)
			show_rounds = true;
		else if (strcmp(argv[i], "--dir") == 0 && ++i)
			dir = v;
		else if (strcmp(argv[i], "--bytes") == 0 && ++i)
			bytes = strtoull(v, NULL, 10);
		else if (strcmp(argv[i], "--small") == 0 && ++i)
			small = atoi(v);
		else if (strcmp(argv[i], "--reps") == 0 && ++i)
			reps = atoi(v);
	}
	if (reps < 1)
		reps = 1;
	if (bytes || small > 0)
		bench_agree();
	if (bytes)
		bench_bytes(dir, bytes, reps);
	if (small > 0)
		bench_small(dir, small, reps);
	if (!bytes && small <= 0 && rank == 0)
		fprintf(stderr, "usage: mpirun -np P mpi_bench --dir DIR [--bytes N] [--small N] [--reps R] "
				"[--huge-pages] [--rounds]\n");
	MPI_Finalize();
	return 0;
}
