/*
 * tests/mpi/test_mpi.c - sharded tensors over MPI (run under mpirun; every
 * rank runs the same tests in the same order, since the calls are
 * collective).
 *
 * The resharding matrix: for each writer count P and reader count Q (sub-
 * communicators of the first P or Q ranks of the job), each layout (split
 * dim 0, split dim 1, a 2-D block grid, replicated, uneven bounds over a
 * prime size, a rank with an empty piece) and each dtype, a global tensor
 * written by P ranks reads back bitwise on Q ranks, whole on one rank, and
 * through the serial reader (which verifies the stored checksum). Every
 * write ran as collective I/O. Which P, Q and dtypes: NNH5_MPI_P,
 * NNH5_MPI_Q, NNH5_MPI_DTYPES (comma-separated; defaults below). The files
 * are left in NNH5_MPI_DIR for reshard_check.py (h5py, nnh5 verify).
 *
 * Also: a failure on one rank gives every rank the same status and commits
 * nothing; inconsistent shardings are refused everywhere; a shared open
 * opens the file once in the whole job (counted by wrapping open()).
 */
/* open() and open64() are both wrapped below: neither may be an alias of the other. */
#undef _FILE_OFFSET_BITS
#define _GNU_SOURCE /* RTLD_NEXT */
#include "../testutil.h"

#include <nnh5/mpi.h>
#include "mpi/mpi_internal.h"
#include "mpi/hashchain.h"
#include "file/load_direct.h"
#include "file/save_direct.h"
#include "store/h5read.h"

#include <hdf5.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <dlfcn.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int world_rank, world_size;
static char dir[2048];

/* ------------------------------------------------------------------ */
/* Counting opens of one path in this process (the shared-open test)   */

static char counted_path[4096];
static int counted_opens;

static void count_open(const char *path)
{
	if (counted_path[0] && path && strcmp(path, counted_path) == 0)
		counted_opens++;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

/* NAME(DECL) counts path, then calls the C library's NAME with CALL. */
#define WRAP(NAME, FN_T, DECL, CALL)                                               \
	int NAME DECL;                                                            \
	int NAME DECL                                                             \
	{                                                                         \
		static FN_T real;                                                 \
		mode_t mode = 0;                                                  \
		if (flags & (O_CREAT | O_TMPFILE)) {                              \
			va_list ap;                                               \
			va_start(ap, flags);                                      \
			mode = va_arg(ap, mode_t);                                \
			va_end(ap);                                               \
		}                                                                 \
		if (!real)                                                        \
			*(void **)&real = dlsym(RTLD_NEXT, #NAME);                \
		count_open(path);                                                 \
		return real CALL;                                                 \
	}
WRAP(open, open_fn, (const char *path, int flags, ...), (path, flags, mode))
WRAP(open64, open_fn, (const char *path, int flags, ...), (path, flags, mode))
WRAP(openat, openat_fn, (int dfd, const char *path, int flags, ...), (dfd, path, flags, mode))
WRAP(openat64, openat_fn, (int dfd, const char *path, int flags, ...), (dfd, path, flags, mode))

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* A communicator of the first n ranks of the job (MPI_COMM_NULL on the others). */
static MPI_Comm first_ranks(int n)
{
	MPI_Comm c;

	MPI_Comm_split(MPI_COMM_WORLD, world_rank < n ? 0 : MPI_UNDEFINED, world_rank, &c);
	return c;
}

static int parse_list(int *out, int max, const char *env, const char *dflt)
{
	const char *s = getenv(env);
	int n = 0;

	if (!s || !*s)
		s = dflt;
	while (*s && n < max) {
		out[n++] = atoi(s);
		while (*s && *s != ',')
			s++;
		if (*s == ',')
			s++;
	}
	return n;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The same global tensor on every rank: finite values, 0/1 for bool. */
static nnh5_tensor *global_tensor(nnh5_dtype dt, size_t ndim, const int64_t *shape, uint64_t seed)
{
	nnh5_tensor *t;

	ok(nnh5_tensor_zeros(&t, dt, ndim, shape));
	size_t n = nnh5_tensor_numel(t);
	unsigned char *p = nnh5_tensor_mutable_data(t);
	for (size_t i = 0; i < n; i++) {
		uint64_t r = mix(seed * 1000003u + i);
		switch (dt) {
		case NNH5_FLOAT32: {
			float v = (float)(int64_t)(r % 20001) * 0.125f - 1250.0f;
			memcpy(p + 4 * i, &v, 4);
			break;
		}
		case NNH5_BFLOAT16: {
			uint16_t v = nnh5_float_to_bfloat16((float)(int64_t)(r % 2001) * 0.5f - 500.0f);
			memcpy(p + 2 * i, &v, 2);
			break;
		}
		case NNH5_FLOAT16: {
			uint16_t v = (uint16_t)(r & 0xbbff); /* exponent never all ones */
			memcpy(p + 2 * i, &v, 2);
			break;
		}
		case NNH5_INT64:
			memcpy(p + 8 * i, &r, 8);
			break;
		case NNH5_BOOL:
			p[i] = (unsigned char)(r & 1);
			break;
		default:
			fail_msg("dtype %d not in the matrix", (int)dt);
		}
	}
	return t;
}

/* The box start/count of global t as a new tensor. */
static nnh5_tensor *box_of(const nnh5_tensor *t, const int64_t *start, const int64_t *count)
{
	nnh5_tensor *b;
	size_t es = nnh5_dtype_size(nnh5_tensor_dtype(t));
	const int64_t *shape = nnh5_tensor_shape(t);

	assert_int_equal(nnh5_tensor_ndim(t), 2);
	ok(nnh5_tensor_zeros(&b, nnh5_tensor_dtype(t), 2, count));
	const unsigned char *src = nnh5_tensor_data(t);
	unsigned char *dst = nnh5_tensor_mutable_data(b);
	for (int64_t i = 0; i < count[0]; i++)
		if (count[1])
			memcpy(dst + (size_t)(i * count[1]) * es,
			       src + (size_t)((start[0] + i) * shape[1] + start[1]) * es,
			       (size_t)count[1] * es);
	return b;
}

enum { L_DIM0, L_DIM1, L_BLOCK, L_REPLICATED, L_UNEVEN, L_EMPTY, L_COUNT };
static const char *layout_names[L_COUNT] = { "dim0", "dim1", "block", "replicated",
					     "uneven", "empty" };

/* 13 rows (a prime), 10 columns. */
static const int64_t gshape[2] = { 13, 10 };

/*
 * Layout which for rank r of n. bounds must outlive the call that uses s.
 */
static void layout(nnh5_mpi_sharding *s, int which, int n, int r, int64_t bounds[2][8])
{
	ok(nnh5_mpi_sharding_init(s, 2, gshape));
	switch (which) {
	case L_DIM0:
		s->parts[0] = n;
		s->coord[0] = r;
		break;
	case L_DIM1:
		s->parts[1] = n;
		s->coord[1] = r;
		break;
	case L_BLOCK: {
		int a = 1;
		for (int i = 1; i * i <= n; i++)
			if (n % i == 0)
				a = i;
		s->parts[0] = a;
		s->parts[1] = n / a;
		s->coord[0] = r / (n / a);
		s->coord[1] = r % (n / a);
		break;
	}
	case L_REPLICATED:
		s->replica = r;
		break;
	case L_UNEVEN:
		/* bounds i^2 * 13 / n^2: small pieces first, some empty */
		s->parts[0] = n;
		s->coord[0] = r;
		for (int i = 0; i <= n; i++)
			bounds[0][i] = (int64_t)i * i * gshape[0] / ((int64_t)n * n);
		s->bounds[0] = bounds[0];
		break;
	case L_EMPTY:
		/* piece 0 is empty, the others share the rows evenly */
		s->parts[0] = n;
		s->coord[0] = r;
		bounds[0][0] = 0;
		for (int i = 1; i <= n; i++)
			bounds[0][i] = n == 1 ? gshape[0] : (int64_t)(i - 1) * gshape[0] / (n - 1);
		s->bounds[0] = bounds[0];
		break;
	}
}

static nnh5_dtype dtype_of(int code)
{
	switch (code) {
	case 0: return NNH5_FLOAT32;
	case 1: return NNH5_BFLOAT16;
	case 2: return NNH5_FLOAT16;
	case 3: return NNH5_INT64;
	default: return NNH5_BOOL;
	}
}

static void file_name(char *buf, size_t n, int p, int l, nnh5_dtype dt)
{
	snprintf(buf, n, "%s/w%d-%s-%s.h5", dir, p, layout_names[l], nnh5_dtype_name((int)dt));
}

/* ------------------------------------------------------------------ */
/* The resharding matrix                                               */

static void write_one(MPI_Comm comm, int p, int l, nnh5_dtype dt, const nnh5_tensor *g)
{
	char path[4096];
	int64_t bounds[2][8], start[2], count[2];
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	nnh5_mpi_io_stats st;
	int r;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;

	o.durable = false; /* the commit protocol is the same; fsync only costs time here */
	MPI_Comm_rank(comm, &r);
	file_name(path, sizeof path, p, l, dt);
	layout(&s, l, p, r, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	nnh5_tensor *local = box_of(g, start, count);
	ok(nnh5_mpi_file_create(&f, comm, path, &o));
	ok(nnh5_mpi_write_sharded(f, "model/layer.weight", local, &s));
	nnh5_mpi_file_io_stats(&st, f);
	if (st.transfers != 1 || st.collective != 1)
		fail_msg("%s: %llu transfers, %llu collective (cause %u)", path,
			 (unsigned long long)st.transfers, (unsigned long long)st.collective,
			 st.last_cause);
	ok(nnh5_mpi_file_close(f));
	nnh5_tensor_free(local);
}

static void read_one(MPI_Comm comm, int q, int p, int l, nnh5_dtype dt, const nnh5_tensor *g)
{
	char path[4096];
	int64_t bounds[2][8], start[2], count[2];
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	nnh5_tensor *t, *want;
	int r;

	MPI_Comm_rank(comm, &r);
	file_name(path, sizeof path, p, l, dt);
	/* Read with the same layout family over Q ranks, and along dim 1 too. */
	for (int rl = 0; rl < 2; rl++) {
		layout(&s, rl ? L_DIM1 : l, q, r, bounds);
		ok(nnh5_mpi_sharding_box(start, count, &s));
		ok(nnh5_mpi_file_open(&f, comm, path, NULL));
		ok(nnh5_mpi_read_sharded(&t, f, "model/layer.weight", &s));
		want = box_of(g, start, count);
		if (!nnh5_tensor_bitwise_equal(t, want))
			fail_msg("%s read by %d ranks (layout %s), rank %d: not bitwise equal", path,
				 q, layout_names[rl ? L_DIM1 : l], r);
		nnh5_tensor_free(t);
		nnh5_tensor_free(want);
		/* nnh5's files need no conversion: reads run collectively too. */
		nnh5_mpi_io_stats st;
		nnh5_mpi_file_io_stats(&st, f);
		if (st.transfers != 1 || st.collective != 1)
			fail_msg("%s read: %llu transfers, %llu collective (cause %u)", path,
				 (unsigned long long)st.transfers,
				 (unsigned long long)st.collective, st.last_cause);
		ok(nnh5_mpi_file_close(f));
	}
}

static void test_reshard_matrix(void **state)
{
	int ps[8], qs[8], dts[8];
	int np = parse_list(ps, 8, "NNH5_MPI_P", "4,3");
	int nq = parse_list(qs, 8, "NNH5_MPI_Q", "1,2,4");
	int nd = parse_list(dts, 8, "NNH5_MPI_DTYPES", "0,1,2,3,4");
	(void)state;

	for (int d = 0; d < nd; d++) {
		nnh5_dtype dt = dtype_of(dts[d]);
		for (int l = 0; l < L_COUNT; l++) {
			nnh5_tensor *g = global_tensor(dt, 2, gshape, (uint64_t)(d * 31 + l));
			for (int pi = 0; pi < np; pi++) {
				int p = ps[pi];
				if (p > world_size)
					continue;
				MPI_Comm c = first_ranks(p);
				if (c != MPI_COMM_NULL) {
					write_one(c, p, l, dt, g);
					MPI_Comm_free(&c);
				}
				MPI_Barrier(MPI_COMM_WORLD);
				for (int qi = 0; qi < nq; qi++) {
					if (qs[qi] > world_size)
						continue;
					c = first_ranks(qs[qi]);
					if (c != MPI_COMM_NULL) {
						read_one(c, qs[qi], p, l, dt, g);
						MPI_Comm_free(&c);
					}
				}
				/* The serial reader: same tensor, checksum verified and equal. */
				if (world_rank == 0) {
					char path[4096];
					nnh5_tensor *t;
					uint64_t sum;
					bool present;
					file_name(path, sizeof path, p, l, dt);
					nnh5_file *f;
					ok(nnh5_file_open(&f, path, NNH5_READ));
					ok(nnh5_file_read_tensor(&t, f, "model/layer.weight"));
					ok(nnh5_file_stored_checksum(&sum, &present, f,
								     "model/layer.weight"));
					assert_true(present);
					assert_true(sum == nnh5_tensor_checksum(g));
					if (!nnh5_tensor_bitwise_equal(t, g))
						fail_msg("%s: the serial reader sees another tensor", path);
					nnh5_tensor_free(t);
					ok(nnh5_file_close(f));
				}
				MPI_Barrier(MPI_COMM_WORLD);
			}
			/* The serial writer's file of the same tensor, for reshard_check.py. */
			if (world_rank == 0) {
				char path[4096];
				snprintf(path, sizeof path, "%s/serial-%s-%s.h5", dir, layout_names[l],
					 nnh5_dtype_name((int)dt));
				nnh5_file *f;
				ok(nnh5_file_open(&f, path, NNH5_CREATE));
				ok(nnh5_file_write_tensor(f, "model/layer.weight", g));
				ok(nnh5_file_close(f));
			}
			nnh5_tensor_free(g);
		}
	}
}

/* A file written by serial nnh5 reads sharded on every rank count. */
static void test_serial_file_reads_sharded(void **state)
{
	char path[4096];
	int64_t bounds[2][8], start[2], count[2];
	nnh5_tensor *g = global_tensor(NNH5_FLOAT32, 2, gshape, 7), *t, *want;
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	(void)state;

	snprintf(path, sizeof path, "%s/serial.h5", dir);
	if (world_rank == 0)
		ok(nnh5_save_tensor(path, g));
	MPI_Barrier(MPI_COMM_WORLD);
	layout(&s, L_BLOCK, world_size, world_rank, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	ok(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, NULL));
	ok(nnh5_mpi_read_sharded(&t, f, "/tensor", &s));
	want = box_of(g, start, count);
	assert_true(nnh5_tensor_bitwise_equal(t, want));
	nnh5_tensor_free(t);
	nnh5_tensor_free(want);
	/* A slab that leaves the tensor: the same error on every rank. */
	int64_t bad_start[2] = { 0, 0 }, bad_count[2] = { world_rank == world_size - 1 ? 14 : 1, 1 };
	fails(NNH5_ERR_SHAPE, nnh5_mpi_read_slab(&t, f, "/tensor", 2, bad_start, bad_count),
	      "leaves dimension 0");
	assert_null(t);
	/* Whole tensor through a slab on one rank, nothing on the others. */
	int64_t zs[2] = { 0, 0 }, all[2] = { world_rank == 0 ? 13 : 0, world_rank == 0 ? 10 : 0 };
	ok(nnh5_mpi_read_slab(&t, f, "/tensor", 2, zs, all));
	if (world_rank == 0)
		assert_true(nnh5_tensor_bitwise_equal(t, g));
	else
		assert_int_equal(nnh5_tensor_numel(t), 0);
	nnh5_tensor_free(t);
	ok(nnh5_mpi_file_close(f));
	nnh5_tensor_free(g);
}

/*
 * A damaged tensor: a whole read, or slabs tiling it along dimension 0,
 * fail the checksum on every rank; other partial slabs are not checked.
 */
static void test_whole_read_checks_checksum(void **state)
{
	char path[4096];
	int64_t shape[1] = { 4096 };
	nnh5_tensor *t;
	nnh5_mpi_file *f;
	(void)state;

	snprintf(path, sizeof path, "%s/damaged.h5", dir);
	if (world_rank == 0) {
		size_t n;
		ok(nnh5_tensor_ones(&t, NNH5_FLOAT32, 1, shape));
		ok(nnh5_save_tensor(path, t));
		nnh5_tensor_free(t);
		/* The data is the only long run of 1.0f (00 00 80 3f): damage its middle. */
		unsigned char *bytes = (unsigned char *)tu_slurp(path, &n);
		static const unsigned char one[16] = { 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f,
						       0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f };
		size_t at = 0;
		for (size_t i = 0; i + sizeof one <= n && !at; i++)
			if (memcmp(bytes + i, one, sizeof one) == 0)
				at = i + 8 * 1024;
		assert_true(at > 0 && at < n);
		FILE *fp = fopen(path, "r+b");
		assert_non_null(fp);
		fseek(fp, (long)at, SEEK_SET);
		fputc(0x40, fp);
		fclose(fp);
		free(bytes);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	ok(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, NULL));
	int64_t zero[1] = { 0 }, all[1] = { world_rank == 0 ? 4096 : 0 }, some[1] = { 16 };
	fails(NNH5_ERR_CHECKSUM, nnh5_mpi_read_slab(&t, f, "/tensor", 1, zero, all), "rank 0:",
	      "damaged");
	ok(nnh5_mpi_read_slab(&t, f, "/tensor", 1, zero, some));
	nnh5_tensor_free(t);

	/*
	 * Slabs that tile the tensor along dimension 0 are verified by the
	 * checksum chain although no rank reads it whole: split evenly, in
	 * reversed rank order, and unevenly with an empty piece. The damage
	 * (element 2048) lies on a rank other than the first one of the chain.
	 */
	nnh5_mpi_sharding s;
	int64_t bounds[9];
	for (int kind = 0; kind < 3; kind++) {
		ok(nnh5_mpi_sharding_init(&s, 1, shape));
		s.parts[0] = world_size;
		s.coord[0] = kind == 1 ? world_size - 1 - world_rank : world_rank;
		if (kind == 2) {
			/* piece 0 empty, then even pieces of the rest */
			bounds[0] = bounds[1] = 0;
			for (int i = 2; i <= world_size; i++)
				bounds[i] = 4096 * (int64_t)(i - 1) / (world_size - 1);
			s.bounds[0] = bounds;
		}
		fails(NNH5_ERR_CHECKSUM, nnh5_mpi_read_sharded(&t, f, "/tensor", &s), "damaged");
		assert_null(t);
	}
	/* Slabs that overlap are not verified: every rank reads [0, 1024 + 512 * rank). */
	int64_t most[1] = { 1024 + 512 * (int64_t)world_rank };
	ok(nnh5_mpi_read_slab(&t, f, "/tensor", 1, zero, most));
	nnh5_tensor_free(t);
	ok(nnh5_mpi_file_close(f));

	/* With verification off, the tiling reads the damaged data. */
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	o.verify_checksums = false;
	ok(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, &o));
	ok(nnh5_mpi_sharding_init(&s, 1, shape));
	s.parts[0] = world_size;
	s.coord[0] = world_rank;
	ok(nnh5_mpi_read_sharded(&t, f, "/tensor", &s));
	nnh5_tensor_free(t);
	ok(nnh5_mpi_file_close(f));
}

/*
 * Collective file reads of this process (PMPI), HDF5's and nnh5's, and the
 * independent ones into [watch_lo, watch_hi) (HDF5 reads metadata with
 * independent calls too).
 */
static unsigned long read_at_all_calls, read_at_calls;
static const char *watch_lo, *watch_hi;

int MPI_File_read_at(MPI_File fh, MPI_Offset o, void *b, int n, MPI_Datatype t, MPI_Status *st)
{
	if ((const char *)b >= watch_lo && (const char *)b < watch_hi)
		read_at_calls++;
	return PMPI_File_read_at(fh, o, b, n, t, st);
}

int MPI_File_read_at_all(MPI_File fh, MPI_Offset o, void *b, int n, MPI_Datatype t,
			 MPI_Status *st)
{
	read_at_all_calls++;
	return PMPI_File_read_at_all(fh, o, b, n, t, st);
}

/*
 * nnh5_mpi_read_sharded_into fills the caller's tensor with the piece, and
 * again on reuse; a split along dimension 0 of a plain float32 dataset
 * moves in independent MPI_File_read_at calls, verified or not (counted in
 * io_stats' independent), and read whole by every rank in one
 * MPI_File_read_at_all per rank (one collective transfer); mixed calls and
 * mixed verification read collectively. A destination of the wrong shape
 * or dtype, or read-only, on one rank fails on every rank. (Reads hashed
 * as they come in, of tensors with a block table: test_block_damage.)
 */
static void test_read_into(void **state)
{
	char path[4096];
	int64_t bounds[2][8], start[2], count[2];
	nnh5_tensor *g = global_tensor(NNH5_FLOAT32, 2, gshape, 11), *dst, *want, *other;
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	nnh5_mpi_io_stats st;
	char rank_text[32];
	(void)state;

	snprintf(path, sizeof path, "%s/into.h5", dir);
	snprintf(rank_text, sizeof rank_text, "rank %d:", world_size - 1);
	layout(&s, L_DIM0, world_size, world_rank, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	want = box_of(g, start, count);
	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	ok(nnh5_mpi_write_sharded(f, "w", want, &s));
	ok(nnh5_mpi_file_close(f));

	ok(nnh5_tensor_full(&dst, NNH5_FLOAT32, 2, count, -1.0));
	watch_lo = nnh5_tensor_data(dst);
	watch_hi = watch_lo + nnh5_tensor_nbytes(dst);
	/*
	 * A tiling: each rank reads its run with independent MPI_File_read_at
	 * calls (one here, of up to 1 GiB: this small tensor has no block
	 * table, and a verified read runs the whole-tensor chain after it),
	 * verified (the default) or not; no collective transfer.
	 */
	for (int verify = 0; verify <= 1; verify++) {
		nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
		o.verify_checksums = verify;
		ok(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, &o));
		for (int round = 0; round < 2; round++) {
			unsigned long before = read_at_all_calls, before_ind = read_at_calls;
			ok(nnh5_mpi_read_sharded_into(dst, f, "w", &s));
			assert_true(nnh5_tensor_bitwise_equal(dst, want));
			assert_int_equal(read_at_all_calls - before, 0);
			assert_int_equal(read_at_calls - before_ind, nnh5_tensor_nbytes(dst) ? 1 : 0);
			memset(nnh5_tensor_mutable_data(dst), 0x55, nnh5_tensor_nbytes(dst));
		}
		nnh5_mpi_file_io_stats(&st, f);
		assert_int_equal(st.transfers, 0);
		assert_int_equal(st.collective, 0);
		assert_int_equal(st.independent, 2);
		if (!verify) {
			/*
			 * Every rank the whole tensor (runs that overlap, not a
			 * tiling): one MPI_File_read_at_all per rank, one collective
			 * transfer.
			 */
			nnh5_mpi_sharding whole;
			nnh5_tensor *all = NULL;
			unsigned long before = read_at_all_calls;
			ok(nnh5_mpi_sharding_init(&whole, 2, gshape));
			ok(nnh5_mpi_read_sharded(&all, f, "w", &whole));
			assert_true(nnh5_tensor_bitwise_equal(all, g));
			assert_int_equal(read_at_all_calls - before, 1);
			nnh5_mpi_file_io_stats(&st, f);
			assert_int_equal(st.transfers, 1);
			assert_int_equal(st.collective, 1);
			nnh5_tensor_free(all);
			ok(nnh5_mpi_file_close(f));
		}
	}
	watch_lo = watch_hi = NULL;

	/* On the verified handle: the last rank's destination is wrong; every rank gets its error. */
	int64_t wrong[2] = { count[0], count[1] + 1 };
	ok(nnh5_tensor_zeros(&other, NNH5_FLOAT32, 2, world_rank == world_size - 1 ? wrong : count));
	fails(NNH5_ERR_SHAPE, nnh5_mpi_read_sharded_into(other, f, "w", &s), rank_text,
	      "destination");
	nnh5_tensor_free(other);
	ok(nnh5_tensor_zeros(&other, world_rank == world_size - 1 ? NNH5_INT32 : NNH5_FLOAT32, 2,
			     count));
	fails(NNH5_ERR_INVALID, nnh5_mpi_read_sharded_into(other, f, "w", &s), rank_text,
	      "float32");
	nnh5_tensor_free(other);
	ok(nnh5_tensor_view_const(&other, NNH5_FLOAT32, 2, count, nnh5_tensor_data(want),
				  nnh5_tensor_nbytes(want)));
	fails(NNH5_ERR_INVALID, nnh5_mpi_read_sharded_into(other, f, "w", &s), "read-only");
	nnh5_tensor_free(other);
	/* The failures left the file usable. */
	ok(nnh5_mpi_read_sharded_into(dst, f, "w", &s));
	assert_true(nnh5_tensor_bitwise_equal(dst, want));
	/*
	 * A split along dimension 1 goes through HDF5's collective H5Dread,
	 * which sets a file view of its own on the handle the direct reads
	 * share: the next direct read (byte offsets) must still read its rows.
	 */
	{
		nnh5_mpi_sharding s1;
		int64_t b1[2][8], st1[2], ct1[2];
		nnh5_tensor *cols = NULL, *want1;
		layout(&s1, L_DIM1, world_size, world_rank, b1);
		ok(nnh5_mpi_sharding_box(st1, ct1, &s1));
		ok(nnh5_mpi_read_sharded(&cols, f, "w", &s1));
		want1 = box_of(g, st1, ct1);
		assert_true(nnh5_tensor_bitwise_equal(cols, want1));
		memset(nnh5_tensor_mutable_data(dst), 0x55, nnh5_tensor_nbytes(dst));
		ok(nnh5_mpi_read_sharded_into(dst, f, "w", &s));
		assert_true(nnh5_tensor_bitwise_equal(dst, want));
		nnh5_tensor_free(cols);
		nnh5_tensor_free(want1);
	}
	/*
	 * Rank 0 reads into its memory, the others into new tensors: the way of
	 * the read is decided alike on every rank (one collective read), not by
	 * each rank's own call, which would leave rank 0 reading alone while the
	 * others wait in MPI_File_read_at_all.
	 */
	{
		unsigned long before = read_at_all_calls, before_ind = read_at_calls;
		nnh5_tensor *mixed = NULL;
		watch_lo = nnh5_tensor_data(dst);
		watch_hi = watch_lo + nnh5_tensor_nbytes(dst);
		if (world_rank == 0)
			ok(nnh5_mpi_read_sharded_into(dst, f, "w", &s));
		else
			ok(nnh5_mpi_read_sharded(&mixed, f, "w", &s));
		assert_true(nnh5_tensor_bitwise_equal(world_rank == 0 ? dst : mixed, want));
		assert_int_equal(read_at_all_calls - before, 1);
		assert_int_equal(read_at_calls - before_ind, 0);
		watch_lo = watch_hi = NULL;
		nnh5_tensor_free(mixed);
	}
	/* Rank 0 verifies, the others do not: one collective read too. */
	{
		nnh5_open_options half = NNH5_OPEN_OPTIONS_INIT;
		nnh5_mpi_file *fh;
		unsigned long before;
		half.verify_checksums = world_rank == 0;
		ok(nnh5_mpi_file_open(&fh, MPI_COMM_WORLD, path, &half));
		before = read_at_all_calls;
		ok(nnh5_mpi_read_sharded_into(dst, fh, "w", &s));
		assert_true(nnh5_tensor_bitwise_equal(dst, want));
		assert_int_equal(read_at_all_calls - before, 1);
		nnh5_mpi_file_io_stats(&st, fh);
		assert_int_equal(st.independent, 0);
		ok(nnh5_mpi_file_close(fh));
	}
	/*
	 * A file cut after the open, inside the last row (the policy judged it
	 * whole): the last rank's read comes back short, and is refused on
	 * every rank, verified or not (independent reads: the short read
	 * itself), and in a collective read (mixed calls: it reports whole
	 * bytes; the file's size after it says it was cut).
	 */
	nnh5_open_options nover = NNH5_OPEN_OPTIONS_INIT;
	nnh5_mpi_file *f2;
	nover.verify_checksums = false;
	ok(nnh5_mpi_file_open(&f2, MPI_COMM_WORLD, path, &nover));
	/* Its metadata read now: a file's tree may lie after the data (cut too). */
	ok(nnh5_mpi_read_sharded_into(dst, f2, "w", &s));
	MPI_Barrier(MPI_COMM_WORLD);
	if (world_rank == 0) {
		size_t n;
		unsigned char *bytes = (unsigned char *)tu_slurp(path, &n);
		const unsigned char *at = memmem(bytes, n, nnh5_tensor_data(g), nnh5_tensor_nbytes(g));
		assert_non_null(at);
		assert_int_equal(truncate(path, (off_t)(at - bytes) + (off_t)nnh5_tensor_nbytes(g) - 20),
				 0);
		free(bytes);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	fails(NNH5_ERR_FORMAT, nnh5_mpi_read_sharded_into(dst, f, "w", &s), rank_text,
	      "file ends");
	fails(NNH5_ERR_FORMAT, nnh5_mpi_read_sharded_into(dst, f2, "w", &s), rank_text,
	      "file ends");
	{
		nnh5_tensor *mixed = NULL;
		unsigned long before = read_at_all_calls;
		if (world_rank == 0)
			fails(NNH5_ERR_FORMAT, nnh5_mpi_read_sharded_into(dst, f, "w", &s),
			      rank_text, "file ends");
		else
			fails(NNH5_ERR_FORMAT, nnh5_mpi_read_sharded(&mixed, f, "w", &s),
			      rank_text, "file ends");
		assert_int_equal(read_at_all_calls - before, 1);
		assert_null(mixed);
	}
	ok(nnh5_mpi_file_close(f2));
	MPI_Barrier(MPI_COMM_WORLD);
	if (world_rank == 0)
		assert_int_equal(unlink(path), 0); /* damaged on purpose: not for mpi_run.py's verify */
	ok(nnh5_mpi_file_close(f));
	nnh5_tensor_free(dst);
	nnh5_tensor_free(want);
	nnh5_tensor_free(g);
}

/*
 * A file written by h5py (mpi_run.py) reads sharded: little-endian data
 * collectively, big-endian data through HDF5's fallback to independent I/O
 * (a type conversion, seen in the stats), gzip-compressed chunks too.
 */
static void test_h5py_file(void **state)
{
	char path[4096];
	int64_t bounds[2][8], start[2], count[2];
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	nnh5_mpi_io_stats st;
	static const char *names[] = { "le", "be", "chunked" };
	(void)state;

	snprintf(path, sizeof path, "%s/h5py.h5", dir);
	if (access(path, F_OK) != 0)
		skip(); /* run without mpi_run.py */
	layout(&s, L_BLOCK, world_size, world_rank, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	ok(nnh5_mpi_file_open(&f, MPI_COMM_WORLD, path, NULL));
	for (int i = 0; i < 3; i++) {
		nnh5_tensor *t;
		ok(nnh5_mpi_read_sharded(&t, f, names[i], &s));
		const float *p = nnh5_tensor_data(t);
		for (int64_t r = 0; r < count[0]; r++)
			for (int64_t c = 0; c < count[1]; c++)
				assert_true(p[r * count[1] + c] ==
					    (float)((start[0] + r) * 10 + start[1] + c) / 2);
		nnh5_tensor_free(t);
		nnh5_mpi_file_io_stats(&st, f);
		assert_int_equal(st.transfers, (uint64_t)i + 1);
		if (i == 0)
			assert_int_equal(st.collective, 1);
		if (i == 1) {
			/* the conversion: independent I/O, and the cause is kept */
			assert_int_equal(st.collective, 1);
			assert_int_not_equal(st.last_cause, 0);
		}
	}
	ok(nnh5_mpi_file_close(f));
}

/* A state dict of shards reads back with serial nnh5_load_state_dict(). */
static void test_state_dict(void **state)
{
	char path[4096];
	int64_t bounds[2][2][8], start[2], count[2];
	int64_t bshape[1] = { 5 };
	nnh5_mpi_sharding sh[2];
	nnh5_dict *local, *back;
	nnh5_tensor *w = global_tensor(NNH5_FLOAT32, 2, gshape, 11);
	nnh5_tensor *b = global_tensor(NNH5_INT64, 1, bshape, 12);
	nnh5_mpi_file *f;
	(void)state;

	snprintf(path, sizeof path, "%s/sd.h5", dir);
	layout(&sh[0], L_DIM0, world_size, world_rank, bounds[0]);
	ok(nnh5_mpi_sharding_init(&sh[1], 1, bshape));
	sh[1].replica = world_rank;
	ok(nnh5_mpi_sharding_box(start, count, &sh[0]));
	ok(nnh5_dict_new(&local));
	ok(nnh5_dict_set(local, "layer.weight", box_of(w, start, count)));
	nnh5_tensor *bc;
	ok(nnh5_tensor_clone(&bc, b));
	ok(nnh5_dict_set(local, "layer.bias", bc));
	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	ok(nnh5_mpi_write_state_dict(f, "/", local, sh));
	ok(nnh5_mpi_file_close(f));
	if (world_rank == 0) {
		/* A new file gets the mode a new serial file gets (0666 less the umask). */
		struct stat st;
		mode_t mask = umask(022);
		umask(mask);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0666 & ~mask);
		ok(nnh5_load_state_dict(&back, path));
		assert_int_equal(nnh5_dict_len(back), 2);
		assert_string_equal(nnh5_dict_key(back, 0), "layer.weight");
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "layer.weight"), w));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "layer.bias"), b));
		nnh5_dict_free(back);
	}
	/* Every rank: the collective load with one reader. */
	ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, "/"));
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "layer.weight"), w));
	nnh5_dict_free(back);

	/*
	 * Keys whose dataset path cannot be made: refused on every rank before
	 * anything is written, naming the key; the file still takes a good one.
	 */
	static char longkey[4300];
	nnh5_dict *bad;
	memset(longkey, 'k', sizeof longkey - 1);
	snprintf(path, sizeof path, "%s/sd_keys.h5", dir);
	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	const char *bad_keys[] = { longkey, "" };
	const char *why[] = { "is too long", "is empty" };
	for (int k = 0; k < 2; k++) {
		ok(nnh5_dict_new(&bad));
		ok(nnh5_tensor_clone(&bc, b));
		ok(nnh5_dict_set(bad, bad_keys[k], bc));
		fails(NNH5_ERR_INVALID, nnh5_mpi_write_state_dict(f, "model", bad, &sh[1]),
		      "state dict 'model'", why[k]);
		nnh5_dict_free(bad);
	}
	ok(nnh5_dict_new(&bad));
	ok(nnh5_tensor_clone(&bc, b));
	ok(nnh5_dict_set(bad, "head.out.bias", bc));
	ok(nnh5_mpi_write_state_dict(f, "model", bad, &sh[1]));
	nnh5_dict_free(bad);
	ok(nnh5_mpi_file_close(f));
	if (world_rank == 0) {
		nnh5_file *rf;
		nnh5_tensor *t;
		ok(nnh5_file_open(&rf, path, NNH5_READ));
		ok(nnh5_file_read_tensor(&t, rf, "/model/head/out/bias"));
		assert_true(nnh5_tensor_bitwise_equal(t, b));
		nnh5_tensor_free(t);
		nnh5_file_close(rf);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	nnh5_dict_free(local);
	nnh5_tensor_free(w);
	nnh5_tensor_free(b);
}

/*
 * Compression asked of a collective file or checkpoint folder: refused
 * with a clear error, not ignored (the collective writers store contiguous
 * datasets); no file and no temporary left.
 */
static void test_no_compression(void **state)
{
	char path[4096];
	nnh5_mpi_file *f;
	(void)state;

	snprintf(path, sizeof path, "%s/compressed.h5", dir);
	nnh5_open_options co = NNH5_OPEN_OPTIONS_INIT;
	co.compression = NNH5_COMPRESSION_FAST;
	f = (nnh5_mpi_file *)&co;
	fails(NNH5_ERR_INVALID, nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, &co), "compression",
	      "'fast'", "collective");
	assert_null(f);
	nnh5_checkpoint_options cko = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_mpi_checkpoints *ck = (nnh5_mpi_checkpoints *)&cko;
	char ckdir[4200];
	snprintf(ckdir, sizeof ckdir, "%s/compressed_ckpts", dir);
	cko.compression = NNH5_COMPRESSION_ARCHIVE;
	fails(NNH5_ERR_INVALID, nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, ckdir, &cko),
	      "compression 'archive'");
	assert_null(ck);
	MPI_Barrier(MPI_COMM_WORLD);
	if (world_rank == 0) {
		struct stat st;
		DIR *dd = opendir(dir);
		struct dirent *e;
		assert_int_equal(stat(path, &st), -1);
		assert_non_null(dd);
		while ((e = readdir(dd)) != NULL)
			assert_null(strstr(e->d_name, "compressed"));
		closedir(dd);
	}
	MPI_Barrier(MPI_COMM_WORLD);
}

/*
 * Tied tensors of a state dict (GPT-2's lm_head.weight and wte.weight):
 * stored once, the later name a hard link, when every rank holds them
 * tied with the same split; serial and collective loads give them back
 * tied. A tie only some ranks hold is two datasets, bitwise right. The
 * same through Parallel HDF5 (a group written after the switch).
 */
static void test_tied_state_dict(void **state)
{
	char path[4096];
	int64_t bounds[8][2][8], start[2], count[2], bshape[1] = { 5 };
	nnh5_tensor *w = global_tensor(NNH5_FLOAT32, 2, gshape, 31);
	nnh5_tensor *b = global_tensor(NNH5_INT64, 1, bshape, 32);
	nnh5_tensor *ln = global_tensor(NNH5_FLOAT32, 1, bshape, 33);
	nnh5_mpi_sharding sh[8];
	nnh5_dict *local, *back;
	nnh5_mpi_file *f;
	nnh5_tensor *t;
	(void)state;

	snprintf(path, sizeof path, "%s/tied_sd.h5", dir);

	ok(nnh5_dict_new(&local));
	/* W split by rows with rank 0's piece empty (it abstains), b and ln replicated. */
	layout(&sh[0], L_EMPTY, world_size, world_rank, bounds[0]);
	ok(nnh5_mpi_sharding_box(start, count, &sh[0]));
	ok(nnh5_dict_set(local, "wte.weight", box_of(w, start, count)));
	ok(nnh5_mpi_sharding_init(&sh[1], 1, bshape));
	sh[1].replica = world_rank;
	ok(nnh5_tensor_clone(&t, b));
	ok(nnh5_dict_set(local, "enc.bias", t));
	ok(nnh5_mpi_sharding_init(&sh[2], 1, bshape));
	sh[2].replica = world_rank;
	ok(nnh5_tensor_clone(&t, ln));
	ok(nnh5_dict_set(local, "ln.weight", t));
	/* An empty shard cannot be tied: its rank abstains. */
	layout(&sh[3], L_EMPTY, world_size, world_rank, bounds[3]);
	if (count[0] > 0)
		ok(nnh5_dict_tie(local, "lm_head.weight", "wte.weight"));
	else
		ok(nnh5_dict_set(local, "lm_head.weight", box_of(w, start, count)));
	ok(nnh5_mpi_sharding_init(&sh[4], 1, bshape));
	sh[4].replica = world_rank;
	ok(nnh5_dict_tie(local, "dec.bias", "enc.bias"));
	/* Tied on the last rank only: the others hold a copy. */
	layout(&sh[5], L_EMPTY, world_size, world_rank, bounds[5]);
	if (world_rank == world_size - 1 && count[0] > 0)
		ok(nnh5_dict_tie(local, "head2.weight", "wte.weight"));
	else
		ok(nnh5_dict_set(local, "head2.weight", box_of(w, start, count)));

	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	ok(nnh5_mpi_write_state_dict(f, "model", local, sh));
	/* After the switch to Parallel HDF5 the first tie made: the same dict again. */
	ok(nnh5_mpi_write_state_dict(f, "copy", local, sh));
	ok(nnh5_mpi_file_close(f));

	const char *names[] = { "model", "copy" };
	for (int k = 0; k < 2; k++) {
		if (world_rank == 0) {
			nnh5_file *rf;
			ok(nnh5_file_open(&rf, path, NNH5_READ));
			ok(nnh5_file_read_state_dict(&back, rf, names[k]));
			nnh5_file_close(rf);
			assert_int_equal(nnh5_dict_len(back), 6);
			assert_string_equal(nnh5_dict_key(back, 3), "lm_head.weight");
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "lm_head.weight"), w));
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "head2.weight"), w));
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "dec.bias"), b));
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "ln.weight"), ln));
			assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "lm_head.weight"),
						     nnh5_dict_get(back, "wte.weight")));
			assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "dec.bias"),
						     nnh5_dict_get(back, "enc.bias")));
			/* Tied on one rank only, when another writes rows: stored apart. */
			assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "head2.weight"),
						     nnh5_dict_get(back, "wte.weight")) ==
				    (world_size <= 2));
			assert_false(nnh5_tensor_tied(nnh5_dict_get(back, "ln.weight"),
						      nnh5_dict_get(back, "enc.bias")));
			nnh5_dict_free(back);
		}
		/* Every rank: the collective load keeps the ties. */
		ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, names[k]));
		assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "lm_head.weight"),
					     nnh5_dict_get(back, "wte.weight")));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "wte.weight"), w));
		nnh5_dict_free(back);
	}
	nnh5_dict_free(local);
	nnh5_tensor_free(w);
	nnh5_tensor_free(b);
	nnh5_tensor_free(ln);
}

/* One rank's write fails: every rank gets the same error and nothing is committed. */
static void test_error_agreement(void **state)
{
	char path[4096];
	nnh5_tensor *g = global_tensor(NNH5_FLOAT32, 2, gshape, 3), *piece;
	int64_t bounds[2][8], start[2], count[2];
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	int fail_rank = world_size - 1;
	(void)state;

	snprintf(path, sizeof path, "%s/agree.h5", dir);
	/* A previous file that must survive. */
	if (world_rank == 0)
		ok(nnh5_save_tensor(path, g));
	MPI_Barrier(MPI_COMM_WORLD);
	layout(&s, L_DIM0, world_size, world_rank, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	piece = box_of(g, start, count);

	/* An I/O error in one rank's transfer. */
	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	if (world_rank == fail_rank)
		nnh5__mpi_fail_transfer = 1;
	char rank_text[32];
	snprintf(rank_text, sizeof rank_text, "rank %d:", fail_rank);
	fails(NNH5_ERR_IO, nnh5_mpi_write_sharded(f, "x", piece, &s), rank_text,
	      "writing dataset 'x' failed");
	fails(NNH5_ERR_IO, nnh5_mpi_file_close(f), "not committed", "writing dataset 'x' failed");

	/* One rank's shard has the wrong shape: refused before anything is written. */
	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	nnh5_tensor *wrong = NULL;
	int64_t wshape[2] = { count[0] + 1, count[1] };
	ok(nnh5_tensor_zeros(&wrong, NNH5_FLOAT32, 2, wshape));
	fails(NNH5_ERR_SHAPE,
	      nnh5_mpi_write_sharded(f, "x", world_rank == fail_rank ? wrong : piece, &s), rank_text,
	      "local shard");
	/* Ranks that disagree on the split, and a piece nobody writes. */
	nnh5_tensor *other_dtype = NULL;
	ok(nnh5_tensor_zeros(&other_dtype, NNH5_INT32, 2, count));
	fails(NNH5_ERR_INVALID,
	      nnh5_mpi_write_sharded(f, "y", world_rank == fail_rank ? other_dtype : piece, &s),
	      "describe it differently");
	nnh5_tensor_free(other_dtype);
	if (world_size > 1)
		fails(NNH5_ERR_INVALID,
		      nnh5_mpi_write_sharded(f, world_rank == fail_rank ? "y2" : "y", piece, &s),
		      "describe it differently");
	nnh5_mpi_sharding s2;
	if (world_size > 1) {
		s2 = s;
		if (world_rank == fail_rank)
			s2.replica = 1;
		fails(NNH5_ERR_INVALID, nnh5_mpi_write_sharded(f, "z", piece, &s2),
		      "exactly one rank");
	}
	/* Refusals wrote nothing: the file still commits. */
	ok(nnh5_mpi_write_sharded(f, "x", piece, &s));
	nnh5_mpi_file_discard(f);
	nnh5_tensor_free(wrong);

	/* The previous file is untouched, no temporary file is left. */
	if (world_rank == 0) {
		nnh5_tensor *t;
		ok(nnh5_load_tensor(&t, path));
		assert_true(nnh5_tensor_bitwise_equal(t, g));
		nnh5_tensor_free(t);
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q nnh5-tmp", dir);
		assert_int_not_equal(system(cmd), 0);
	}
	nnh5_tensor_free(piece);
	nnh5_tensor_free(g);
}

/*
 * A state dict of n small tensors: even keys split by rows (13 x 10), odd
 * keys replicated (5 elements); key i's values are seeded by i + seed.
 */
static nnh5_dict *many_tensors(nnh5_mpi_sharding *sh, int64_t (*bounds)[2][8], size_t n,
			       uint64_t seed)
{
	int64_t bshape[1] = { 5 }, start[2], count[2];
	nnh5_dict *d;
	char key[64];

	ok(nnh5_dict_new(&d));
	for (size_t i = 0; i < n; i++) {
		nnh5_tensor *g, *piece;
		snprintf(key, sizeof key, "block%zu.t%zu", i / 10, i);
		if (i % 2 == 0) {
			g = global_tensor(NNH5_FLOAT32, 2, gshape, seed + i);
			layout(&sh[i], L_DIM0, world_size, world_rank, bounds[i]);
			ok(nnh5_mpi_sharding_box(start, count, &sh[i]));
			piece = box_of(g, start, count);
			nnh5_tensor_free(g);
		} else {
			piece = global_tensor(NNH5_INT64, 1, bshape, seed + i);
			ok(nnh5_mpi_sharding_init(&sh[i], 1, bshape));
			sh[i].replica = world_rank;
		}
		ok(nnh5_dict_set(d, key, piece));
	}
	return d;
}

/* The state dict at name in the file at path, read serially. */
static int load_state_dict_at(nnh5_dict **out, const char *path, const char *name)
{
	nnh5_file *f;
	int rc = nnh5_file_open(&f, path, NNH5_READ);
	if (rc)
		return rc;
	rc = nnh5_file_read_state_dict(out, f, name);
	nnh5_file_close(f);
	return rc;
}

/* Collective file writes of this process (PMPI), HDF5's and nnh5's. */
static unsigned long write_at_all_calls;

int MPI_File_write_at_all(MPI_File fh, MPI_Offset o, const void *b, int n, MPI_Datatype t,
			  MPI_Status *st)
{
	write_at_all_calls++;
	return PMPI_File_write_at_all(fh, o, b, n, t, st);
}

/* The agreements one collective state-dict save of n tensors makes (create to close). */
static unsigned long agreements_of_save(const char *path, size_t n, bool *collective,
					unsigned long *writes)
{
	nnh5_mpi_sharding *sh = calloc(n, sizeof *sh);
	int64_t (*bounds)[2][8] = calloc(n, sizeof *bounds);
	nnh5_dict *d = many_tensors(sh, bounds, n, 100), *back;
	nnh5_mpi_file *f;
	nnh5_mpi_io_stats st;
	unsigned long before = nnh5__mpi_agreements, w0;

	ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
	w0 = write_at_all_calls;
	ok(nnh5_mpi_write_state_dict(f, "model", d, sh));
	*writes = write_at_all_calls - w0;
	nnh5_mpi_file_io_stats(&st, f);
	*collective = st.transfers == n && st.collective == n;
	ok(nnh5_mpi_file_close(f));
	unsigned long used = nnh5__mpi_agreements - before;
	if (world_rank == 0) {
		/* Every tensor reads back whole through the serial loader (checksums verified). */
		ok(load_state_dict_at(&back, path, "model"));
		assert_int_equal(nnh5_dict_len(back), n);
		for (size_t i = 0; i < n; i++) {
			int64_t bshape[1] = { 5 };
			nnh5_tensor *g = i % 2 == 0 ? global_tensor(NNH5_FLOAT32, 2, gshape, 100 + i)
						    : global_tensor(NNH5_INT64, 1, bshape, 100 + i);
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(back, i), g));
			nnh5_tensor_free(g);
		}
		nnh5_dict_free(back);
	}
	nnh5_dict_free(d);
	free(sh);
	free(bounds);
	return used;
}

/*
 * The checksum chain: tensors cut into pieces at random places (empty
 * pieces, whole tensors on one rank, tensors of no bytes), pieces held by
 * the ranks in a random order, all in one call: every rank gets, for each
 * tensor, nnh5_tensor_checksum() of the whole, and exactly one rank ends
 * each chain. The sizes cross XXH3's 256-byte buffer and 1 KiB blocks.
 */
static void test_hashchain(void **state)
{
	enum { T = 60 };
	static const nnh5_dtype dts[] = { NNH5_BOOL, NNH5_FLOAT16, NNH5_FLOAT32, NNH5_INT64 };
	nnh5_tensor *whole[T];
	nnh5__hashlink links[T];
	uint64_t sums[T];
	int P = world_size;
	int *holder = calloc((size_t)P, sizeof *holder);
	uint64_t *len = calloc((size_t)P, sizeof *len);
	(void)state;

	assert_non_null(holder);
	assert_non_null(len);
	for (int t = 0; t < T; t++) {
		uint64_t r = mix(7000 + (uint64_t)t);
		int64_t n = t == 3 ? 0 : t == 4 ? (int64_t)(3 << 18) + 5 : (int64_t)(r % 5000);
		nnh5_dtype dt = dts[t % 4];
		whole[t] = global_tensor(dt, 1, &n, 9000 + (uint64_t)t);
		size_t es = nnh5_dtype_size(dt);
		/* P pieces: cuts at random elements (pieces may be empty), or all on one piece. */
		int64_t cut[65];
		assert_true(P < 64);
		cut[0] = 0;
		cut[P] = n;
		for (int i = 1; i < P; i++) {
			int64_t c = n ? (int64_t)(mix(r + (uint64_t)i) % (uint64_t)(n + 1)) : 0;
			cut[i] = t % 7 == 5 ? n : c;
		}
		for (int i = 1; i < P; i++) /* sort the cuts */
			for (int j = i; j > 1 && cut[j - 1] > cut[j]; j--) {
				int64_t x = cut[j];
				cut[j] = cut[j - 1];
				cut[j - 1] = x;
			}
		/* A random permutation of ranks over the pieces. */
		for (int i = 0; i < P; i++)
			holder[i] = i;
		for (int i = P - 1; i > 0; i--) {
			int j = (int)(mix(r ^ (uint64_t)(i * 31)) % (uint64_t)(i + 1));
			int x = holder[i];
			holder[i] = holder[j];
			holder[j] = x;
		}
		int mine = -1;
		for (int i = 0; i < P; i++) {
			len[i] = (uint64_t)(cut[i + 1] - cut[i]) * es;
			if (holder[i] == world_rank)
				mine = i;
		}
		assert_true(mine >= 0);
		nnh5__hashchain_place(&links[t], world_rank, (size_t)P, holder, len);
		links[t].data = (const unsigned char *)nnh5_tensor_data(whole[t]) + (uint64_t)cut[mine] * es;
		links[t].nbytes = len[mine];
		links[t].elsize = es;
	}
	assert_int_equal(nnh5__hashchain_run(sums, links, T, MPI_COMM_WORLD), NNH5_OK);
	for (int t = 0; t < T; t++) {
		assert_true(sums[t] == nnh5_tensor_checksum(whole[t]));
		int ends = links[t].last, all;
		MPI_Allreduce(&ends, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
		assert_int_equal(all, 1);
		if (links[t].last)
			assert_true(links[t].sum == sums[t]);
	}
	/* Without the sharing reduction: only the chain's end knows. */
	for (int t = 0; t < T; t++)
		links[t].last = false;
	assert_int_equal(nnh5__hashchain_run(NULL, links, T, MPI_COMM_WORLD), NNH5_OK);
	for (int t = 0; t < T; t++)
		if (links[t].last)
			assert_true(links[t].sum == nnh5_tensor_checksum(whole[t]));
	for (int t = 0; t < T; t++)
		nnh5_tensor_free(whole[t]);
	free(holder);
	free(len);
}

/*
 * Direct metadata against Parallel HDF5 (NNH5_DIRECT_WRITE=0): random
 * rounds of tensors (dtypes of the matrix, 0 to 3 dimensions, sizes 0 to
 * 9) under random layouts (split by rows evenly or at random bounds with
 * empty pieces, along the last dimension, a 2-D grid, replicated, whole on
 * one rank), written as single tensors in nested groups and as state
 * dicts (named and at the root), each round into two files, one per path.
 * Round 4 holds the direct path to 8 links per group, so its state dict
 * goes on through Parallel HDF5 after the tensors written directly; round
 * 5 uses the file through lib/file in the middle (a user attribute), which
 * switches it too. Rank 0 loads both files serially (checksums verified):
 * every tensor equals the global one. mpi_run.py walks each pair with h5py
 * (equal objects, types, data and attributes) and runs nnh5 verify.
 */
struct rt {
	nnh5_tensor *g;
	nnh5_mpi_sharding s;
	int64_t bounds[2][8];
};

static void random_tensor(struct rt *t, uint64_t seed)
{
	static const nnh5_dtype dts[] = { NNH5_FLOAT32, NNH5_BFLOAT16, NNH5_FLOAT16, NNH5_INT64,
					  NNH5_BOOL };
	uint64_t r = mix(seed);
	size_t ndim = (size_t)(r % 4);
	int64_t shape[3];
	int P = world_size;

	for (size_t d = 0; d < ndim; d++)
		shape[d] = (int64_t)(mix(r + d + 1) % 10);
	t->g = global_tensor(dts[(r >> 8) % 5], ndim, shape, seed);
	ok(nnh5_mpi_sharding_init(&t->s, ndim, shape));
	int which = (int)((r >> 16) % 6);
	if (ndim == 0 && which < 4)
		which = 4;
	if (ndim < 2 && which == 2)
		which = 0;
	if (ndim < 2 && which == 3)
		which = 1;
	switch (which) {
	case 0: /* rows, even */
		t->s.parts[0] = P;
		t->s.coord[0] = world_rank;
		break;
	case 1: /* rows at random bounds, some pieces empty */
		t->s.parts[0] = P;
		t->s.coord[0] = world_rank;
		t->bounds[0][0] = 0;
		for (int i = 1; i < P; i++)
			t->bounds[0][i] = (int64_t)(mix(r + 100 + (uint64_t)i) % (uint64_t)(shape[0] + 1));
		t->bounds[0][P] = shape[0];
		for (int i = 1; i < P; i++)
			for (int j = i; j > 1 && t->bounds[0][j - 1] > t->bounds[0][j]; j--) {
				int64_t x = t->bounds[0][j];
				t->bounds[0][j] = t->bounds[0][j - 1];
				t->bounds[0][j - 1] = x;
			}
		t->s.bounds[0] = t->bounds[0];
		break;
	case 2: /* along the last dimension */
		t->s.parts[ndim - 1] = P;
		t->s.coord[ndim - 1] = world_rank;
		break;
	case 3: /* a grid over the first two dimensions */
		t->s.parts[0] = P % 2 == 0 ? 2 : 1;
		t->s.parts[1] = P / t->s.parts[0];
		t->s.coord[0] = world_rank / t->s.parts[1];
		t->s.coord[1] = world_rank % t->s.parts[1];
		break;
	case 4: /* replicated */
		t->s.replica = world_rank;
		break;
	default: /* whole, written by the last rank */
		t->s.replica = world_rank == P - 1 ? 0 : world_rank + 1;
		break;
	}
}

static nnh5_tensor *piece_of(const struct rt *t)
{
	int64_t start[3] = { 0 }, count[3] = { 0 };

	ok(nnh5_mpi_sharding_box(start, count, &t->s));
	/* Element by element, any number of dimensions (the tensors are small). */
	size_t nd = nnh5_tensor_ndim(t->g), es = nnh5_dtype_size(nnh5_tensor_dtype(t->g));
	const int64_t *shape = nnh5_tensor_shape(t->g);
	nnh5_tensor *b;
	ok(nnh5_tensor_zeros(&b, nnh5_tensor_dtype(t->g), nd, count));
	const unsigned char *src = nnh5_tensor_data(t->g);
	unsigned char *dst = nnh5_tensor_mutable_data(b);
	size_t n = nnh5_tensor_numel(b);
	for (size_t e = 0; e < n; e++) {
		size_t rest = e, at = 0, stride = 1;
		for (size_t d = nd; d-- > 0;) {
			size_t i = rest % (size_t)count[d];
			rest /= (size_t)count[d];
			at += ((size_t)start[d] + i) * stride;
			stride *= (size_t)shape[d];
		}
		memcpy(dst + e * es, src + at * es, es);
	}
	return b;
}

static void check_tensor(nnh5_file *f, const char *name, const nnh5_tensor *g)
{
	nnh5_tensor *t;

	ok(nnh5_file_read_tensor(&t, f, name));
	if (!nnh5_tensor_bitwise_equal(t, g))
		fail_msg("'%s': the serial reader sees another tensor", name);
	nnh5_tensor_free(t);
}

static void test_direct_vs_api(void **state)
{
	enum { ROUNDS = 6, SINGLE = 5, KEYS = 10 };
	(void)state;

	for (int round = 0; round < ROUNDS; round++) {
		struct rt single[SINGLE], sd[KEYS];
		nnh5_mpi_sharding shs[KEYS];
		char names[SINGLE][64], keys[KEYS][64], path[2][4096];
		nnh5_dict *d;
		/* A state dict at the root is the file's only content: no single tensors then. */
		const char *group = round == 1 || round == 3 ? "/" : "model";
		const int nsingle = group[0] == '/' ? 0 : SINGLE;

		for (int i = 0; i < SINGLE; i++) {
			random_tensor(&single[i], 1000u * (uint64_t)round + (uint64_t)i);
			snprintf(names[i], sizeof names[i], i % 2 ? "w%d/sub%d/t%d" : "top%d_%d", round,
				 i / 2, i);
		}
		ok(nnh5_dict_new(&d));
		for (int k = 0; k < KEYS; k++) {
			random_tensor(&sd[k], 1000u * (uint64_t)round + 500u + (uint64_t)k);
			snprintf(keys[k], sizeof keys[k], "layer%d.%s", k / 2, k % 2 ? "bias" : "weight");
			shs[k] = sd[k].s;
			ok(nnh5_dict_set(d, keys[k], piece_of(&sd[k])));
		}
		for (int api = 0; api < 2; api++) {
			nnh5_mpi_file *f;
			snprintf(path[api], sizeof path[api], "%s/diff-%s-%d.h5", dir,
				 api ? "api" : "direct", round);
			if (api)
				setenv("NNH5_DIRECT_WRITE", "0", 1);
			if (round == 4 && !api)
				nnh5__mpi_direct_max_links = 8;
			ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path[api], NULL));
			for (int i = 0; i < nsingle; i++) {
				nnh5_tensor *pc = piece_of(&single[i]);
				ok(nnh5_mpi_write_sharded(f, names[i], pc, &single[i].s));
				nnh5_tensor_free(pc);
				if (round == 5 && i == 2)
					ok(nnh5_file_set_attr_string(nnh5__mpi_file_handle(f), "/",
								     "note", "switched"));
			}
			ok(nnh5_mpi_write_state_dict(f, group, d, shs));
			nnh5_mpi_io_stats st;
			nnh5_mpi_file_io_stats(&st, f);
			/* Every tensor with elements moved collectively (no storage, no transfer). */
			unsigned long long moved = 0;
			for (int i = 0; i < nsingle; i++)
				moved += nnh5_tensor_numel(single[i].g) > 0;
			for (int k = 0; k < KEYS; k++)
				moved += nnh5_tensor_numel(sd[k].g) > 0;
			assert_int_equal(st.transfers, moved);
			assert_int_equal(st.collective, moved);
			ok(nnh5_mpi_file_close(f));
			nnh5__mpi_direct_max_links = 4096;
			unsetenv("NNH5_DIRECT_WRITE");
		}
		if (world_rank == 0) {
			for (int api = 0; api < 2; api++) {
				nnh5_file *f;
				nnh5_dict *back;
				ok(nnh5_file_open(&f, path[api], NNH5_READ));
				for (int i = 0; i < nsingle; i++)
					check_tensor(f, names[i], single[i].g);
				ok(nnh5_file_read_state_dict(&back, f, group));
				assert_int_equal(nnh5_dict_len(back), KEYS);
				for (int k = 0; k < KEYS; k++)
					if (!nnh5_tensor_bitwise_equal(nnh5_dict_get(back, keys[k]),
								       sd[k].g))
						fail_msg("%s: key '%s' differs", path[api], keys[k]);
				nnh5_dict_free(back);
				ok(nnh5_file_close(f));
			}
		}
		for (int i = 0; i < SINGLE; i++)
			nnh5_tensor_free(single[i].g);
		for (int k = 0; k < KEYS; k++)
			nnh5_tensor_free(sd[k].g);
		nnh5_dict_free(d);
		MPI_Barrier(MPI_COMM_WORLD);
	}
}

/*
 * A save of T tensors makes a number of agreements that does not grow with
 * T (validation of all tensors up front, one at the end, the commit's); a
 * failing transfer in the middle of a large state dict still gives every
 * rank the same error and commits nothing.
 */
static void test_agreements_per_save(void **state)
{
	char path[4096];
	bool coll8, coll64;
	(void)state;

	snprintf(path, sizeof path, "%s/many.h5", dir);
	unsigned long w8, w64;
	/*
	 * Direct metadata (the default): every write moves all its tensors'
	 * data in one MPI_File_write_at_all, whatever T; rank 0 writes the
	 * metadata at the close with MPI_File_write_at.
	 */
	unsigned long a8 = agreements_of_save(path, 8, &coll8, &w8);
	unsigned long a64 = agreements_of_save(path, 64, &coll64, &w64);
	assert_true(coll8 && coll64);
	assert_int_equal(a8, a64);
	assert_int_equal(w8, 1);
	assert_int_equal(w64, 1);
	/* create 4, the write 3, close 2 (close, commit) */
	assert_true(a64 <= 9);

	/*
	 * 5,000 tensors in groups of 10: more tensors than one group may hold,
	 * and a key list too large for an object header (written through
	 * HDF5 after the switch). The data still moves in one call; either
	 * alone sent the whole write through Parallel HDF5 (2,500 collective
	 * writes of split tensors).
	 */
	unsigned long w5k;
	bool coll5k;
	unsigned long a5k = agreements_of_save(path, 5000, &coll5k, &w5k);
	assert_true(coll5k);
	print_message("5,000 tensors: %lu MPI_File_write_at_all, %lu agreements\n", w5k, a5k);
	assert_true(w5k <= 3);
	assert_true(a5k <= 16);

	/* Parallel HDF5 (NNH5_DIRECT_WRITE=0). */
	setenv("NNH5_DIRECT_WRITE", "0", 1);
	a8 = agreements_of_save(path, 8, &coll8, &w8);
	a64 = agreements_of_save(path, 64, &coll64, &w64);
	unsetenv("NNH5_DIRECT_WRITE");
	assert_true(coll8 && coll64);
	assert_int_equal(a8, a64);
	/*
	 * One collective write per split tensor (HDF5 1.10's H5Dwrite); the
	 * replicated ones (odd keys) all share one: 28 more split tensors, 28
	 * more writes.
	 */
	assert_int_equal(w64 - w8, 28);
	assert_int_equal(w8, 4 + 1);
	/*
	 * create 5, the write 3, close 2 (close, commit): the split tensors
	 * are split by rows, so their checksums come from the chain during the
	 * write and the close has no checksum pass (its 3 agreements).
	 */
	assert_true(a64 <= 10);

	/* Both paths: direct metadata, then Parallel HDF5. */
	for (int api = 0; api < 2; api++) {
		if (api)
			setenv("NNH5_DIRECT_WRITE", "0", 1);
		/* The 40th transfer fails on the last rank: same error everywhere, nothing committed. */
		nnh5_mpi_sharding sh[64];
		int64_t bounds[64][2][8];
		nnh5_dict *d = many_tensors(sh, bounds, 64, 300);
		nnh5_mpi_file *f;
		char rank_text[32];
		snprintf(rank_text, sizeof rank_text, "rank %d:", world_size - 1);
		ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
		if (world_rank == world_size - 1)
			nnh5__mpi_fail_transfer = 40;
		fails(NNH5_ERR_IO, nnh5_mpi_write_state_dict(f, "model", d, sh), rank_text,
		      "writing dataset 'model/block3/t39' failed");
		nnh5__mpi_fail_transfer = 0;
		fails(NNH5_ERR_IO, nnh5_mpi_file_close(f), "not committed");
		/* One rank's key of another shape: refused before anything is created. */
		ok(nnh5_mpi_file_create(&f, MPI_COMM_WORLD, path, NULL));
		if (world_rank == world_size - 1) {
			nnh5_tensor *odd;
			int64_t six[1] = { 6 };
			ok(nnh5_tensor_zeros(&odd, NNH5_INT64, 1, six));
			ok(nnh5_dict_set(d, "block6.t61", odd));
		}
		fails(NNH5_ERR_SHAPE, nnh5_mpi_write_state_dict(f, "model", d, sh), rank_text,
		      "model/block6/t61");
		nnh5_mpi_file_discard(f);
		if (world_rank == 0) {
			/* Still the first file of 64 tensors seeded from 100. */
			nnh5_dict *back;
			int64_t bshape[1] = { 5 };
			nnh5_tensor *g = global_tensor(NNH5_INT64, 1, bshape, 100 + 39);
			ok(load_state_dict_at(&back, path, "model"));
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "block3.t39"), g));
			nnh5_tensor_free(g);
			nnh5_dict_free(back);
		}
		nnh5_dict_free(d);
		unsetenv("NNH5_DIRECT_WRITE");
	}
}

/* N ranks, one open of the file; the model runs forward on every rank. */
static void test_shared_open(void **state)
{
	char path[4096];
	nnh5_model *m, *back;
	nnh5_file *f;
	(void)state;

	snprintf(path, sizeof path, "%s/model.h5", dir);
	if (world_rank == 0) {
		ok(nnh5_model_new(&m, NNH5_FLOAT32, 5));
		ok(nnh5_model_add_linear(m, "fc1", 4, 8, true));
		ok(nnh5_model_add_relu(m, "act"));
		ok(nnh5_model_add_linear(m, "fc2", 8, 2, true));
		ok(nnh5_save_model(path, m, NULL));
		nnh5_model_free(m);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	snprintf(counted_path, sizeof counted_path, "%s", path);
	counted_opens = 0;
	ok(nnh5_mpi_file_open_shared(&f, MPI_COMM_WORLD, 0, path, NULL));
	int mine = counted_opens, total = 0;
	counted_path[0] = '\0';
	MPI_Allreduce(&mine, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	assert_int_equal(total, 1);
	assert_int_equal(mine, world_rank == 0 ? 1 : 0);
	ok(nnh5_file_read_model(&back, f, "/"));
	ok(nnh5_file_close(f));

	/* Every rank computes the same output; rank 0's is broadcast and compared. */
	int64_t xs[2] = { 3, 4 };
	nnh5_tensor *x = global_tensor(NNH5_FLOAT32, 2, xs, 99), *y;
	ok(nnh5_model_forward(&y, back, x));
	float mine_y[6], root_y[6];
	memcpy(mine_y, nnh5_tensor_data(y), sizeof mine_y);
	memcpy(root_y, mine_y, sizeof root_y);
	MPI_Bcast(root_y, 6, MPI_FLOAT, 0, MPI_COMM_WORLD);
	assert_memory_equal(mine_y, root_y, sizeof mine_y);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(back);

	/* nnh5_mpi_load_model: the same in one call, one open, the same output. */
	snprintf(counted_path, sizeof counted_path, "%s", path);
	counted_opens = 0;
	ok(nnh5_mpi_load_model(&back, MPI_COMM_WORLD, 0, path));
	mine = counted_opens;
	counted_path[0] = '\0';
	MPI_Allreduce(&mine, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	assert_int_equal(total, 1);
	x = global_tensor(NNH5_FLOAT32, 2, xs, 99);
	ok(nnh5_model_forward(&y, back, x));
	assert_memory_equal(nnh5_tensor_data(y), mine_y, sizeof mine_y);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(back);
	/* A file that is not a model: the same error everywhere, no model. */
	char notmodel[4200];
	snprintf(notmodel, sizeof notmodel, "%s/notmodel.h5", dir);
	if (world_rank == 0) {
		nnh5_dict *sd;
		ok(nnh5_dict_new(&sd));
		ok(nnh5_save_state_dict(notmodel, sd));
		nnh5_dict_free(sd);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	back = (nnh5_model *)&back;
	assert_int_not_equal(nnh5_mpi_load_model(&back, MPI_COMM_WORLD, 0, notmodel), NNH5_OK);
	assert_null(back);

	/* A file larger than max_load_bytes is refused on every rank. */
	nnh5_open_options small = NNH5_OPEN_OPTIONS_INIT;
	small.max_load_bytes = 100;
	fails(NNH5_ERR_OVERFLOW, nnh5_mpi_file_open_shared(&f, MPI_COMM_WORLD, 0, path, &small),
	      "max_load_bytes");
	assert_null(f);

	/* A missing file: the same error everywhere. */
	snprintf(path, sizeof path, "%s/missing.h5", dir);
	fails(NNH5_ERR_NOT_FOUND, nnh5_mpi_file_open_shared(&f, MPI_COMM_WORLD, 0, path, NULL),
	      "rank 0:");
	assert_null(f);
}

/*
 * nnh5_mpi_load_state_dict of a file nnh5 wrote: one open in the job; root
 * alone reads the file with the direct reader (as nnh5_load_state_dict
 * reads from disk) and the others get its tensors, bitwise, keys in
 * order, ties kept. What that reader declines goes through HDF5's API on
 * root, with the same result or error on every rank: a group of the file,
 * a damaged tensor.
 */
static void test_shared_state_dict(void **state)
{
	char path[4096], name[64];
	const nnh5_dtype dtypes[] = { NNH5_FLOAT32, NNH5_BFLOAT16, NNH5_INT64, NNH5_BOOL, NNH5_FLOAT64 };
	nnh5_dict *sd, *back;
	(void)state;

	snprintf(path, sizeof path, "%s/shared_sd.h5", dir);
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < 40; i++) {
		int64_t shape[2] = { 1 + i % 7, 3 + i % 5 };
		snprintf(name, sizeof name, "block%d.layer%d.%s", i / 8, i % 8, i % 2 ? "bias" : "weight");
		ok(nnh5_dict_set(sd, name, tu_seq(dtypes[i % 5], (size_t)(1 + i % 2), shape,
						  0.25 * (i + 1), (uint64_t)i)));
	}
	/* Tensors too large for a load's arena, and an empty one. */
	int64_t big_shape[2] = { 129, 257 }, none[2] = { 0, 5 };
	ok(nnh5_dict_set(sd, "big", tu_seq(NNH5_FLOAT64, 2, big_shape, 0.5, 7)));
	ok(nnh5_dict_set(sd, "empty", tu_seq(NNH5_FLOAT32, 2, none, 0.5, 7)));
	ok(nnh5_dict_set(sd, "big2", tu_seq(NNH5_INT64, 2, big_shape, 1.5, 8)));
	if (world_rank == 0)
		ok(nnh5_save_state_dict(path, sd));
	MPI_Barrier(MPI_COMM_WORLD);

	uint64_t taken = nnh5__load_direct_taken();
	snprintf(counted_path, sizeof counted_path, "%s", path);
	counted_opens = 0;
	ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, NULL));
	int mine = counted_opens, total = 0;
	counted_path[0] = '\0';
	MPI_Allreduce(&mine, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	assert_int_equal(total, 1);
	/* Root alone parsed the file: the others did not walk it again. */
	assert_int_equal(nnh5__load_direct_taken(), taken + (world_rank == 0));
	assert_int_equal(nnh5_dict_len(back), nnh5_dict_len(sd));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		assert_string_equal(nnh5_dict_key(back, i), nnh5_dict_key(sd, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(back, i), nnh5_dict_value(sd, i)));
	}
	nnh5_dict_free(back);

	/*
	 * Broadcasts of at most 1000 bytes: tensors split over several, groups
	 * of several tensors; the same tensors.
	 */
	uint64_t piece = nnh5__mpi_bcast_piece;
	nnh5__mpi_bcast_piece = 1000;
	ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, NULL));
	nnh5__mpi_bcast_piece = piece;
	assert_int_equal(nnh5_dict_len(back), nnh5_dict_len(sd));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		assert_string_equal(nnh5_dict_key(back, i), nnh5_dict_key(sd, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(back, i), nnh5_dict_value(sd, i)));
	}
	nnh5_dict_free(back);

	/* A tie (a hard link in the file, loaded by HDF5's API on root): tied on every rank. */
	char tied[4200];
	snprintf(tied, sizeof tied, "%s/shared_tied.h5", dir);
	ok(nnh5_dict_tie(sd, "head.weight", "block0.layer0.weight"));
	if (world_rank == 0)
		ok(nnh5_save_state_dict(tied, sd));
	MPI_Barrier(MPI_COMM_WORLD);
	ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, tied, NULL));
	assert_int_equal(nnh5_dict_len(back), nnh5_dict_len(sd));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		assert_string_equal(nnh5_dict_key(back, i), nnh5_dict_key(sd, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(back, i), nnh5_dict_value(sd, i)));
	}
	assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "head.weight"),
				     nnh5_dict_get(back, "block0.layer0.weight")));
	assert_false(nnh5_tensor_tied(nnh5_dict_get(back, "big"), nnh5_dict_get(back, "big2")));
	nnh5_dict_free(back);
	ok(nnh5_dict_remove(sd, "head.weight"));

	/* A key list too large for the root's header (dense attributes): still the direct reader. */
	char many[4200];
	nnh5_dict *big;
	snprintf(many, sizeof many, "%s/shared_many.h5", dir);
	ok(nnh5_dict_new(&big));
	for (int i = 0; i < 6000; i++) {
		int64_t one = 1;
		snprintf(name, sizeof name, "g%d.p%d", i / 100, i);
		ok(nnh5_dict_set(big, name, tu_seq(NNH5_FLOAT32, 1, &one, 1.0, i)));
	}
	if (world_rank == 0) {
		ok(nnh5_save_state_dict(many, big));
		int fd = open(many, O_RDONLY);
		struct stat st;
		nnh5__h5r r;
		assert_true(fd >= 0 && fstat(fd, &st) == 0);
		memset(&r, 0, sizeof r);
		assert_int_equal(nnh5__h5r_open(&r, fd, (uint64_t)st.st_size, 64), NNH5_OK);
		assert_true(r.root.dense_attrs);
		nnh5__h5r_free(&r);
		close(fd);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	taken = nnh5__load_direct_taken();
	ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, many, "/"));
	assert_int_equal(nnh5__load_direct_taken(), taken + (world_rank == 0));
	assert_int_equal(nnh5_dict_len(back), 6000);
	for (size_t i = 0; i < 6000; i += 599) {
		assert_string_equal(nnh5_dict_key(back, i), nnh5_dict_key(big, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(back, i), nnh5_dict_value(big, i)));
	}
	nnh5_dict_free(back);
	nnh5_dict_free(big);

	/* A group of the file: HDF5's API on the image, the same tensors. */
	taken = nnh5__load_direct_taken();
	ok(nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, "/block1"));
	assert_int_equal(nnh5__load_direct_taken(), taken);
	assert_int_equal(nnh5_dict_len(back), 8);
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "layer3.bias"),
					      nnh5_dict_get(sd, "block1.layer3.bias")));
	nnh5_dict_free(back);

	/* A damaged tensor: the direct reader declines, every rank gets the API path's error. */
	if (world_rank == 0) {
		long off = tu_data_offset(path, "/block2/layer4/weight");
		assert_true(off > 0);
		tu_flip_byte(path, off + 1, 0x10);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	taken = nnh5__load_direct_taken();
	back = (nnh5_dict *)&back;
	fails(NNH5_ERR_CHECKSUM, nnh5_mpi_load_state_dict(&back, MPI_COMM_WORLD, 0, path, "/"),
	      "block2/layer4/weight");
	assert_null(back);
	assert_int_equal(nnh5__load_direct_taken(), taken);
	MPI_Barrier(MPI_COMM_WORLD);
	if (world_rank == 0)
		assert_int_equal(unlink(path), 0); /* damaged on purpose: not for mpi_run.py's verify */
	nnh5_dict_free(sd);
}

/* An allocator counting the bytes the calling thread asks for while counting is set. */
static _Thread_local bool counting;
static size_t counted_bytes;

static void *counting_malloc(size_t n)
{
	if (counting)
		counted_bytes += n;
	return malloc(n);
}

static void *counting_realloc(void *p, size_t n)
{
	if (counting)
		counted_bytes += n;
	return realloc(p, n);
}

static void counting_free(void *p)
{
	free(p);
}

/* Save a checkpoint of step: W (13 x 10) split by rows, a replicated bias. */
static int save_step(nnh5_mpi_checkpoints *ck, int64_t step, const nnh5_tensor *w,
		     const nnh5_tensor *b)
{
	int64_t bounds[2][8], start[2], count[2];
	int64_t bshape[1] = { 5 };
	nnh5_mpi_sharding sh[2];
	nnh5_dict *local;
	nnh5_checkpoint *summary;
	nnh5_tensor *bc;

	layout(&sh[0], L_DIM0, world_size, world_rank, bounds);
	ok(nnh5_mpi_sharding_init(&sh[1], 1, bshape));
	sh[1].replica = world_rank;
	ok(nnh5_mpi_sharding_box(start, count, &sh[0]));
	ok(nnh5_dict_new(&local));
	ok(nnh5_dict_set(local, "layer.weight", box_of(w, start, count)));
	ok(nnh5_tensor_clone(&bc, b));
	ok(nnh5_dict_set(local, "layer.bias", bc));
	ok(nnh5_checkpoint_new(&summary, step));
	ok(nnh5_checkpoint_set_epoch(summary, 7));
	ok(nnh5_checkpoint_set_metric(summary, "loss", 1.0 / (double)(step + 1)));
	nnh5_mpi_section sec = { "model", local, sh };
	int rc = nnh5_mpi_checkpoints_save(ck, summary, 1, &sec);
	nnh5_checkpoint_free(summary);
	nnh5_dict_free(local);
	return rc;
}

/*
 * The collective checkpoint folder: one commit for all ranks, retention,
 * latest() agreed, a failure on one rank commits nothing on any, any rank
 * count (and serial nnh5) loads what was saved.
 */
/*
 * The MPI flavour never loads a filter plugin built for serial HDF5: such a
 * plugin links libhdf5_serial, and two HDF5 libraries must never share a
 * process (lib/meson.build names each flavour's own plugin folder).
 */
static void test_no_serial_hdf5(void **state)
{
	char line[4096];
	bool serial = false;
	FILE *maps;
	(void)state;

	assert_non_null(nnh5_compression_filters(NNH5_COMPRESSION_FAST));
	assert_non_null(nnh5_compression_filters(NNH5_COMPRESSION_ARCHIVE));
	maps = fopen("/proc/self/maps", "r");
	assert_non_null(maps);
	while (fgets(line, sizeof line, maps))
		if (strstr(line, "libhdf5_serial"))
			serial = true;
	fclose(maps);
	assert_false(serial);
}

/*
 * A checkpoint's sections take the direct path ("Direct metadata"): the
 * collective writes of a save do not grow with its tensors. Before the
 * sections came first, the summary's attributes switched the file to the
 * API path, and each tensor split by rows cost a collective H5Dwrite.
 */
static void test_checkpoint_sections_direct(void **state)
{
	char folder[4096];
	int64_t bounds[2][8], start[2], count[2];
	nnh5_tensor *w = global_tensor(NNH5_FLOAT32, 2, gshape, 23);
	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_mpi_checkpoints *ck;
	unsigned long writes[2];
	(void)state;

	snprintf(folder, sizeof folder, "%s/ckpts-direct", dir);
	co.durable = false;
	ok(nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, folder, &co));
	for (int k = 0; k < 2; k++) {
		size_t n = k ? 48 : 4;
		nnh5_mpi_sharding *sh = calloc(n, sizeof *sh);
		nnh5_dict *local;
		nnh5_checkpoint *summary;
		char key[48];
		assert_non_null(sh);
		ok(nnh5_dict_new(&local));
		for (size_t i = 0; i < n; i++) {
			layout(&sh[i], L_DIM0, world_size, world_rank, bounds);
			ok(nnh5_mpi_sharding_box(start, count, &sh[i]));
			snprintf(key, sizeof key, "layer%zu.weight", i);
			ok(nnh5_dict_set(local, key, box_of(w, start, count)));
		}
		ok(nnh5_checkpoint_new(&summary, k + 1));
		ok(nnh5_checkpoint_set_metric(summary, "loss", 0.5));
		nnh5_mpi_section sec = { "model", local, sh };
		unsigned long w0 = write_at_all_calls;
		ok(nnh5_mpi_checkpoints_save(ck, summary, 1, &sec));
		writes[k] = write_at_all_calls - w0;
		nnh5_checkpoint_free(summary);
		nnh5_dict_free(local);
		free(sh);
	}
	/* The same count for 4 and 48 tensors (3 here: the data, HDF5's metadata). */
	assert_int_equal(writes[1], writes[0]);
	assert_true(writes[1] <= 4);
	if (world_rank == 0) {
		char path[4200];
		nnh5_checkpoint *c;
		double loss;
		snprintf(path, sizeof path, "%s/ckpt-000000000002.h5", folder);
		ok(nnh5_checkpoint_load(&c, path));
		ok(nnh5_checkpoint_metric(&loss, c, "loss"));
		assert_true(loss == 0.5);
		const nnh5_dict *m = nnh5_checkpoint_state(c, "model");
		assert_non_null(m);
		assert_int_equal(nnh5_dict_len(m), 48);
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(m, "layer47.weight"), w));
		nnh5_checkpoint_free(c);
	}
	ok(nnh5_mpi_checkpoints_close(ck));
	nnh5_tensor_free(w);
}

static void test_checkpoints(void **state)
{
	char folder[4096];
	int64_t bshape[1] = { 5 }, step;
	nnh5_tensor *w = global_tensor(NNH5_FLOAT32, 2, gshape, 21);
	nnh5_tensor *b = global_tensor(NNH5_BFLOAT16, 1, bshape, 22);
	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_mpi_checkpoints *ck;
	(void)state;

	snprintf(folder, sizeof folder, "%s/ckpts", dir);
	co.keep_last = 2;
	co.durable = false;
	ok(nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, folder, &co));
	fails(NNH5_ERR_NOT_FOUND, nnh5_mpi_checkpoints_latest(&step, ck), "no checkpoint");
	for (int64_t s = 1; s <= 3; s++)
		ok(save_step(ck, s, w, b));
	ok(nnh5_mpi_checkpoints_latest(&step, ck));
	assert_int_equal(step, 3);

	/* The last rank's write fails: every rank has the error, step 4 is not committed. */
	if (world_rank == world_size - 1)
		nnh5__mpi_fail_transfer = 1;
	fails(NNH5_ERR_IO, save_step(ck, 4, w, b), "writing dataset");
	nnh5__mpi_fail_transfer = 0;
	ok(nnh5_mpi_checkpoints_latest(&step, ck));
	assert_int_equal(step, 3);
	if (world_rank == 0) {
		int64_t *steps;
		size_t n;
		ok(nnh5_checkpoint_folder_steps(&steps, &n, folder));
		/* keep_last 2: steps 2 and 3; nothing of step 4, no temporary file */
		assert_int_equal(n, 2);
		assert_int_equal(steps[0], 2);
		assert_int_equal(steps[1], 3);
		nnh5_free(steps);
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q nnh5-tmp", folder);
		assert_int_not_equal(system(cmd), 0);
		/* Serial nnh5 loads the collective checkpoint whole, checksums verified. */
		char path[4200];
		nnh5_checkpoint *c;
		double loss;
		snprintf(path, sizeof path, "%s/ckpt-000000000003.h5", folder);
		ok(nnh5_checkpoint_load(&c, path));
		assert_int_equal(nnh5_checkpoint_epoch(c), 7);
		ok(nnh5_checkpoint_metric(&loss, c, "loss"));
		assert_true(loss == 0.25);
		const nnh5_dict *m = nnh5_checkpoint_state(c, "model");
		assert_non_null(m);
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(m, "layer.weight"), w));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(m, "layer.bias"), b));
		nnh5_checkpoint_free(c);
	}
	ok(nnh5_mpi_checkpoints_close(ck));

	/* Resume on fewer ranks with another split: columns over the first Q ranks. */
	int q = world_size > 1 ? world_size - 1 : 1;
	MPI_Comm c = first_ranks(q);
	if (c != MPI_COMM_NULL) {
		int r;
		int64_t bounds[2][8], start[2], count[2];
		nnh5_mpi_sharding sh;
		nnh5_dict *back;
		const char *keys[] = { "layer.weight" };
		MPI_Comm_rank(c, &r);
		ok(nnh5_mpi_checkpoints_open(&ck, c, folder, &co));
		ok(nnh5_mpi_checkpoints_latest(&step, ck));
		assert_int_equal(step, 3);
		layout(&sh, L_DIM1, q, r, bounds);
		ok(nnh5_mpi_sharding_box(start, count, &sh));
		ok(nnh5_mpi_checkpoints_load(&back, ck, step, "model", 1, keys, &sh));
		nnh5_tensor *want = box_of(w, start, count);
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "layer.weight"), want));
		nnh5_tensor_free(want);
		nnh5_dict_free(back);
		ok(nnh5_mpi_checkpoints_close(ck));
		MPI_Comm_free(&c);
	}
	MPI_Barrier(MPI_COMM_WORLD);
	nnh5_tensor_free(w);
	nnh5_tensor_free(b);
}

/* The bytes of the file at path (rank 0's test helper); *n its size. */
static unsigned char *file_bytes(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *buf = NULL;
	long len;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	rewind(fp);
	buf = malloc(len > 0 ? (size_t)len : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	*n = (size_t)len;
	return buf;
}

/*
 * Async collective saves: the same files as synchronous saves, byte for
 * byte; the caller may overwrite its shards as soon as the save returns; a
 * failure of one rank's background write comes back, the same on every
 * rank, from the wait, and commits nothing.
 */
static void test_async_checkpoints(void **state)
{
	char sync_dir[4096], async_dir[4096];
	int64_t bshape[1] = { 5 }, step;
	nnh5_tensor *w = global_tensor(NNH5_FLOAT32, 2, gshape, 41);
	nnh5_tensor *b = global_tensor(NNH5_BFLOAT16, 1, bshape, 42);
	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_mpi_checkpoints *sync, *as;
	(void)state;

	snprintf(sync_dir, sizeof sync_dir, "%s/ckpt-sync", dir);
	snprintf(async_dir, sizeof async_dir, "%s/ckpt-async", dir);
	co.durable = false;
	ok(nnh5_mpi_checkpoints_open(&sync, MPI_COMM_WORLD, sync_dir, &co));
	co.async = true;
	ok(nnh5_mpi_checkpoints_open(&as, MPI_COMM_WORLD, async_dir, &co));
	/*
	 * Synchronous saves first: no HDF5 call may be made by this thread
	 * while a background save is in flight. save_step frees its shards
	 * right after the save returns; each async save waits for the previous.
	 */
	for (int64_t s = 1; s <= 3; s++)
		ok(save_step(sync, s, w, b));
	for (int64_t s = 1; s <= 3; s++)
		ok(save_step(as, s, w, b));
	ok(nnh5_mpi_checkpoints_wait(as));
	ok(nnh5_mpi_checkpoints_wait(as)); /* nothing in flight */
	if (world_rank == 0)
		for (int s = 1; s <= 3; s++) {
			char p1[4200], p2[4200];
			size_t n1, n2;
			snprintf(p1, sizeof p1, "%s/ckpt-%012d.h5", sync_dir, s);
			snprintf(p2, sizeof p2, "%s/ckpt-%012d.h5", async_dir, s);
			unsigned char *a1 = file_bytes(p1, &n1), *a2 = file_bytes(p2, &n2);
			assert_int_equal(n1, n2);
			assert_memory_equal(a1, a2, n1);
			free(a1);
			free(a2);
		}

	/* The caller overwrites its shard as soon as the save returns. */
	int64_t bounds[2][8], start[2], count[2];
	nnh5_mpi_sharding sh;
	nnh5_dict *local, *back;
	nnh5_checkpoint *summary;
	layout(&sh, L_DIM0, world_size, world_rank, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &sh));
	nnh5_tensor *piece = box_of(w, start, count);
	ok(nnh5_dict_new(&local));
	ok(nnh5_dict_set(local, "layer.weight", piece));
	ok(nnh5_checkpoint_new(&summary, 10));
	nnh5_mpi_section sec = { "model", local, &sh };
	ok(nnh5_mpi_checkpoints_save(as, summary, 1, &sec));
	memset(nnh5_tensor_mutable_data(piece), 0xA5, nnh5_tensor_nbytes(piece));
	nnh5_checkpoint_free(summary);
	ok(nnh5_mpi_checkpoints_latest(&step, as)); /* waits first */
	assert_int_equal(step, 10);
	const char *keys[] = { "layer.weight" };
	ok(nnh5_mpi_checkpoints_load(&back, as, 10, "model", 1, keys, &sh));
	nnh5_tensor *want = box_of(w, start, count);
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "layer.weight"), want));
	nnh5_tensor_free(want);
	nnh5_dict_free(back);
	nnh5_dict_free(local);

	/*
	 * Staging reuses one buffer: a second save of the same shapes allocates
	 * far less than the shard's bytes in the caller's thread (a copy per
	 * tensor allocated them all again).
	 */
	{
		int64_t bshape2[1] = { 16384 };
		nnh5_tensor *big;
		nnh5_dict *d2;
		nnh5_mpi_sharding rs;
		nnh5_checkpoint *s2;
		ok(nnh5_tensor_full(&big, NNH5_FLOAT32, 1, bshape2, 3.0));
		ok(nnh5_dict_new(&d2));
		ok(nnh5_dict_set(d2, "big", big));
		ok(nnh5_mpi_sharding_init(&rs, 1, bshape2));
		rs.replica = world_rank;
		nnh5_mpi_section sec2 = { "model", d2, &rs };
		nnh5_set_allocator(counting_malloc, counting_realloc, counting_free);
		for (int64_t s = 5; s <= 6; s++) {
			ok(nnh5_checkpoint_new(&s2, s));
			ok(nnh5_mpi_checkpoints_wait(as));
			counted_bytes = 0;
			counting = true;
			ok(nnh5_mpi_checkpoints_save(as, s2, 1, &sec2));
			counting = false;
			nnh5_checkpoint_free(s2);
			ok(nnh5_mpi_checkpoints_wait(as));
			if (s == 6)
				assert_true(counted_bytes < nnh5_tensor_nbytes(big) / 4);
		}
		nnh5_set_allocator(NULL, NULL, NULL);
		nnh5_dict_free(d2);
	}

	/* The last rank's background write fails: the save returned, the wait reports it everywhere. */
	char rank_text[32];
	snprintf(rank_text, sizeof rank_text, "rank %d:", world_size - 1);
	if (world_rank == world_size - 1)
		nnh5__mpi_fail_transfer = 1;
	ok(save_step(as, 11, w, b));
	fails(NNH5_ERR_IO, nnh5_mpi_checkpoints_wait(as), "background save of step 11 failed",
	      rank_text, "writing dataset");
	nnh5__mpi_fail_transfer = 0;
	ok(nnh5_mpi_checkpoints_wait(as)); /* reported once */
	ok(nnh5_mpi_checkpoints_latest(&step, as));
	assert_int_equal(step, 10);
	/* Reported by the next save instead of saving. */
	if (world_rank == world_size - 1)
		nnh5__mpi_fail_transfer = 1;
	ok(save_step(as, 12, w, b));
	/* The hook is consumed by the background thread: reset only once it is done. */
	fails(NNH5_ERR_IO, save_step(as, 13, w, b), "background save of step 12 failed",
	      rank_text);
	nnh5__mpi_fail_transfer = 0;
	ok(nnh5_mpi_checkpoints_latest(&step, as));
	assert_int_equal(step, 10);
	if (world_rank == 0) {
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q -e nnh5-tmp -e 'ckpt-0*1[123].h5'",
			 async_dir);
		assert_int_not_equal(system(cmd), 0);
	}
	/* A failure still in flight at the close is the close's. */
	if (world_rank == world_size - 1)
		nnh5__mpi_fail_transfer = 1;
	ok(save_step(as, 14, w, b));
	fails(NNH5_ERR_IO, nnh5_mpi_checkpoints_close(as), "background save of step 14 failed");
	nnh5__mpi_fail_transfer = 0;
	ok(nnh5_mpi_checkpoints_close(sync));
	nnh5_tensor_free(w);
	nnh5_tensor_free(b);
}

/* Async saves need MPI_THREAD_MULTIPLE: refused on every rank without it. */
static void test_async_needs_thread_multiple(void **state)
{
	char folder[4096];
	int provided;
	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_mpi_checkpoints *ck = NULL;
	(void)state;

	MPI_Query_thread(&provided);
	snprintf(folder, sizeof folder, "%s/ckpt-single", dir);
	co.async = true;
	if (provided < MPI_THREAD_MULTIPLE) {
		fails(NNH5_ERR_INVALID, nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, folder, &co),
		      "MPI_THREAD_MULTIPLE");
		assert_null(ck);
		co.async = false;
	}
	/* The run with NNH5_MPI_THREAD=single must have been refused above. */
	const char *mode = getenv("NNH5_MPI_THREAD");
	assert_true(!(mode && strcmp(mode, "single") == 0) || !co.async);
	ok(nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, folder, &co));
	ok(nnh5_mpi_checkpoints_close(ck));
}

/* ------------------------------------------------------------------ */
/* Block checksums (doc/FORMAT.md, "Block checksums")                 */

/*
 * int32 tensors of BLK_ROWS x BLK_COLS (both prime: 4084-byte rows, so
 * block boundaries at multiples of 16 MiB fall inside rows and inside the
 * ranks' pieces): 36.8 MB, three blocks, the last one short.
 */
#define BLK_ROWS 9007
#define BLK_COLS 1021
#define BLK_B ((uint64_t)16 << 20)

/* Rows [row0, row0 + rows) of the block test tensor of seed. */
static nnh5_tensor *blk_rows(int64_t row0, int64_t rows, uint32_t seed)
{
	nnh5_tensor *t;
	int64_t shape[2] = { rows, BLK_COLS };

	ok(nnh5_tensor_zeros(&t, NNH5_INT32, 2, shape));
	uint32_t *p = nnh5_tensor_mutable_data(t);
	for (int64_t i = 0; i < rows * BLK_COLS; i++)
		p[i] = (uint32_t)mix((uint64_t)seed << 40 | (uint64_t)(row0 * BLK_COLS + i));
	return t;
}

enum { BL_EVEN, BL_UNEVEN, BL_EMPTY, BL_WHOLE, BL_COUNT };
static const char *const blk_layouts[BL_COUNT] = { "even", "uneven", "empty", "whole" };

/* Rank r of p's sharding of the block tensor in layout l (bounds: room for p + 1). */
static void blk_sharding(nnh5_mpi_sharding *s, int l, int p, int r, int64_t *bounds)
{
	int64_t shape[2] = { BLK_ROWS, BLK_COLS };

	ok(nnh5_mpi_sharding_init(s, 2, shape));
	if (l == BL_WHOLE) {
		s->replica = r; /* rank 0 writes it whole */
		return;
	}
	s->parts[0] = p;
	s->coord[0] = r;
	if (l == BL_EVEN || p == 1)
		return;
	/* Prime cuts (uneven), or piece 1 empty and even pieces of the rest. */
	static const int64_t primes[] = { 0, 1013, 4999, 7001, BLK_ROWS };
	bounds[0] = 0;
	for (int i = 1; i < p; i++)
		bounds[i] = l == BL_UNEVEN ? primes[i * 4 / p] : BLK_ROWS * (int64_t)(i - 1) / (p - 1);
	if (l == BL_EMPTY)
		bounds[1] = 0;
	bounds[p] = BLK_ROWS;
	s->bounds[0] = bounds;
}

/* Write the block tensor of seed over comm in layout l; path on every rank. */
static void blk_write(MPI_Comm comm, const char *path, int l, uint32_t seed)
{
	int64_t bounds[8], start[2], count[2];
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	int p, r;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;

	o.durable = false;
	MPI_Comm_size(comm, &p);
	MPI_Comm_rank(comm, &r);
	blk_sharding(&s, l, p, r, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	nnh5_tensor *local = blk_rows(start[0], count[0], seed);
	ok(nnh5_mpi_file_create(&f, comm, path, &o));
	ok(nnh5_mpi_write_sharded(f, "tensor", local, &s));
	ok(nnh5_mpi_file_close(f));
	nnh5_tensor_free(local);
}

/* The block test file has no block table (blk_read()'s expected ways of reading). */
static bool blk_no_table;

/* Read path in layout l over comm (verified); the status every rank got. */
static int blk_read(MPI_Comm comm, const char *path, int l, uint32_t seed)
{
	int64_t bounds[8], start[2], count[2];
	nnh5_mpi_sharding s;
	nnh5_mpi_file *f;
	nnh5_tensor *t = NULL;
	int p, r, rc;

	MPI_Comm_size(comm, &p);
	MPI_Comm_rank(comm, &r);
	blk_sharding(&s, l, p, r, bounds);
	ok(nnh5_mpi_sharding_box(start, count, &s));
	ok(nnh5_mpi_file_open(&f, comm, path, NULL));
	rc = nnh5_mpi_read_sharded(&t, f, "tensor", &s);
	nnh5_mpi_io_stats st;
	/*
	 * A tiling with a block table (even a malformed one): independent
	 * reads, hashed as they come in; without one, one collective read.
	 */
	nnh5_mpi_file_io_stats(&st, f);
	if (st.independent != (blk_no_table ? 0 : 1) || st.transfers != (blk_no_table ? 1 : 0))
		fail_msg("%s: rank %d: %llu independent reads, %llu transfers", path, r,
			 (unsigned long long)st.independent, (unsigned long long)st.transfers);
	nnh5_tensor *want = blk_rows(start[0], count[0], seed);
	if (rc == NNH5_OK && !nnh5_tensor_bitwise_equal(t, want))
		fail_msg("%s: rank %d read other bytes", path, r);
	nnh5_tensor_free(t);
	/* Keep the read's message for the caller past the close. */
	char msg[1024];
	snprintf(msg, sizeof msg, "%s", nnh5_error_message());
	/*
	 * The same read into the caller's memory: each rank reads its run in
	 * pieces and hashes its inner blocks as they come in (file_mpi.c,
	 * read_run): the same status and message.
	 */
	nnh5_tensor *into;
	ok(nnh5_tensor_full(&into, NNH5_INT32, 2, count, -1.0));
	int rc_into = nnh5_mpi_read_sharded_into(into, f, "tensor", &s);
	if (rc_into != rc || (rc && strcmp(msg, nnh5_error_message()) != 0))
		fail_msg("%s: rank %d: into the caller's memory: %s (%s), into a new tensor: %s (%s)",
			 path, r, nnh5_status_name(rc_into), nnh5_error_message(),
			 nnh5_status_name(rc), msg);
	if (rc == NNH5_OK && !nnh5_tensor_bitwise_equal(into, want))
		fail_msg("%s: rank %d read other bytes into the caller's memory", path, r);
	nnh5_mpi_file_io_stats(&st, f);
	if (st.independent != (blk_no_table ? 1 : 2) || st.transfers != (blk_no_table ? 1 : 0))
		fail_msg("%s: rank %d: %llu independent reads, %llu transfers", path, r,
			 (unsigned long long)st.independent, (unsigned long long)st.transfers);
	nnh5_tensor_free(into);
	nnh5_tensor_free(want);
	ok(nnh5_mpi_file_close(f));
	if (rc)
		nnh5__error(rc, "%s", msg);
	return rc;
}

/* The dataset's data offset and the two block attributes, with serial HDF5 calls (rank 0). */
static uint64_t blk_offset(const char *path)
{
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t did = H5Dopen2(fid, "tensor", H5P_DEFAULT);
	haddr_t off = H5Dget_offset(did);
	H5Dclose(did);
	H5Fclose(fid);
	assert_true(off != HADDR_UNDEF);
	return (uint64_t)off;
}

/* Rank 0: the table as stored, checked against libxxhash over the data read serially. */
static void blk_check_table(const char *path, uint32_t seed)
{
	uint64_t want[4] = { 0 }, got[4] = { 0 }, b = 0;
	nnh5_tensor *t = blk_rows(0, BLK_ROWS, seed);
	const unsigned char *d = nnh5_tensor_data(t);
	uint64_t n = nnh5_tensor_nbytes(t), nb = (n + BLK_B - 1) / BLK_B;

	assert_int_equal(nb, 3);
	for (uint64_t i = 0; i < nb; i++)
		want[i] = XXH3_64bits(d + i * BLK_B, (size_t)(n - i * BLK_B < BLK_B ? n - i * BLK_B : BLK_B));
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t did = H5Dopen2(fid, "tensor", H5P_DEFAULT);
	hid_t a = H5Aopen(did, "nnh5_xxh3_block_bytes", H5P_DEFAULT);
	assert_true(a >= 0);
	assert_true(H5Aread(a, H5T_NATIVE_UINT64, &b) >= 0);
	H5Aclose(a);
	a = H5Aopen(did, "nnh5_xxh3_blocks", H5P_DEFAULT);
	assert_true(a >= 0);
	hid_t sp = H5Aget_space(a);
	hsize_t dim = 0;
	assert_int_equal(H5Sget_simple_extent_dims(sp, &dim, NULL), 1);
	assert_int_equal(dim, nb);
	assert_true(H5Aread(a, H5T_NATIVE_UINT64, got) >= 0);
	H5Sclose(sp);
	H5Aclose(a);
	uint64_t whole = 0;
	a = H5Aopen(did, "nnh5_xxh3", H5P_DEFAULT);
	assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &whole) >= 0);
	H5Aclose(a);
	H5Dclose(did);
	H5Fclose(fid);
	assert_int_equal(b, BLK_B);
	for (uint64_t i = 0; i < nb; i++)
		if (got[i] != want[i])
			fail_msg("%s: block %llu is %016llx, libxxhash says %016llx", path,
				 (unsigned long long)i, (unsigned long long)got[i],
				 (unsigned long long)want[i]);
	assert_true(whole == XXH3_64bits(d, (size_t)n)); /* the whole-tensor checksum as before */
	/* The serial direct reader takes the file (it does not fall back to HDF5's API). */
	bool done = false;
	nnh5_tensor *back = NULL;
	ok(nnh5__load_direct(&done, &back, path, NULL, NNH5__DIRECT_TENSOR));
	assert_true(done);
	nnh5_tensor_free(back);
	nnh5_file *f;
	bool present = false;
	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_check_blocks(&present, f, "tensor", t));
	assert_true(present);
	nnh5_file_close(f);
	nnh5_tensor_free(t);
}

/*
 * Collective saves write the block table of a tensor split by rows
 * (evenly, at prime bounds, with an empty piece) or written whole by one
 * rank, on 1 to 4 ranks, direct and through Parallel HDF5: equal to
 * libxxhash over the data; tiled loads on every rank count verify it.
 * Files blk-*.h5 stay for mpi_run.py (h5py + Python xxhash, nnh5 verify).
 */
static void test_block_checksums(void **state)
{
	char path[4096];
	(void)state;

	for (int p = 1; p <= world_size && p <= 4; p++) {
		MPI_Comm c = first_ranks(p);
		for (int l = 0; l < BL_COUNT; l++) {
			for (int api = 0; api < 2; api++) {
				/* Through Parallel HDF5: the largest communicator only. */
				if (api && (p != (world_size < 4 ? world_size : 4) || l == BL_EMPTY))
					continue;
				snprintf(path, sizeof path, "%s/blk-%d-%s%s.h5", dir, p, blk_layouts[l],
					 api ? "-api" : "");
				if (c != MPI_COMM_NULL) {
					if (api)
						setenv("NNH5_DIRECT_WRITE", "0", 1);
					blk_write(c, path, l, (uint32_t)(p * 10 + l));
					unsetenv("NNH5_DIRECT_WRITE");
					if (world_rank == 0)
						blk_check_table(path, (uint32_t)(p * 10 + l));
				}
				MPI_Barrier(MPI_COMM_WORLD);
				/* Read back over all ranks, split by rows (even, uneven) */
				ok(blk_read(MPI_COMM_WORLD, path, BL_EVEN, (uint32_t)(p * 10 + l)));
				ok(blk_read(MPI_COMM_WORLD, path, BL_EMPTY, (uint32_t)(p * 10 + l)));
				/* Only a sample of the files stays (each is 37 MB). */
				if (world_rank == 0 && !(p == world_size && l == BL_UNEVEN))
					unlink(path);
			}
		}
		if (c != MPI_COMM_NULL)
			MPI_Comm_free(&c);
	}
}

/* Rank 0 xors byte at (offset) of path with x. */
static void blk_flip(const char *path, uint64_t at, int x)
{
	/* Every rank's reads before the flip are over: none may see it half-way. */
	MPI_Barrier(MPI_COMM_WORLD);
	if (world_rank == 0) {
		FILE *fp = fopen(path, "r+b");
		assert_non_null(fp);
		fseek(fp, (long)at, SEEK_SET);
		int c = fgetc(fp);
		fseek(fp, (long)at, SEEK_SET);
		fputc(c ^ x, fp);
		fclose(fp);
	}
	MPI_Barrier(MPI_COMM_WORLD);
}

/* Rank 0 replaces the block attributes: B of type btype (or none), a table of n entries (or none). */
static void blk_set_attrs(const char *path, hid_t btype, uint64_t b, const uint64_t *table,
			  hsize_t n)
{
	if (world_rank == 0) {
		H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* deleting what is not there is fine */
		hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
		hid_t did = H5Dopen2(fid, "tensor", H5P_DEFAULT);
		H5Adelete(did, "nnh5_xxh3_block_bytes");
		H5Adelete(did, "nnh5_xxh3_blocks");
		if (btype >= 0) {
			hid_t sp = H5Screate(H5S_SCALAR);
			hid_t a = H5Acreate2(did, "nnh5_xxh3_block_bytes", btype, sp, H5P_DEFAULT,
					     H5P_DEFAULT);
			double d = (double)b;
			assert_true(H5Awrite(a, H5Tget_class(btype) == H5T_FLOAT ? H5T_NATIVE_DOUBLE
										 : H5T_NATIVE_UINT64,
					     H5Tget_class(btype) == H5T_FLOAT ? (void *)&d
									      : (void *)&b) >= 0);
			H5Aclose(a);
			H5Sclose(sp);
		}
		if (table) {
			hid_t sp = H5Screate_simple(1, &n, NULL);
			hid_t a = H5Acreate2(did, "nnh5_xxh3_blocks", H5T_STD_U64LE, sp, H5P_DEFAULT,
					     H5P_DEFAULT);
			assert_true(H5Awrite(a, H5T_NATIVE_UINT64, table) >= 0);
			H5Aclose(a);
			H5Sclose(sp);
		}
		H5Dclose(did);
		H5Fclose(fid);
	}
	MPI_Barrier(MPI_COMM_WORLD);
}

/*
 * One damaged byte in the first block, in a block straddling two ranks'
 * pieces, or in the last block fails a tiled load with NNH5_ERR_CHECKSUM
 * on every rank, naming the block; so does a damaged table entry. A
 * malformed table (wrong length, B = 0, B not 16 MiB times a power of two,
 * B not an integer, one attribute without the other) is NNH5_ERR_FORMAT on
 * every rank; serial loads, which do not read the table, still load.
 */
static void test_block_damage(void **state)
{
	char path[4096], bad[4096];
	uint64_t table[4] = { 0 }, n = (uint64_t)BLK_ROWS * BLK_COLS * 4;
	(void)state;

	snprintf(path, sizeof path, "%s/blkdamage.h5", dir);
	blk_write(MPI_COMM_WORLD, path, BL_EVEN, 7);
	uint64_t off = world_rank == 0 ? blk_offset(path) : 0;
	const uint64_t at[3] = { 100, BLK_B + 5000000, n - 100 };
	const char *const which[3] = { "block 0 ", "block 1 ", "block 2 " };
	/*
	 * Pairs of ranks in the empty layout (one rank holds the whole tensor)
	 * and one rank alone: slabs spanning all three blocks, whose inner
	 * block the rank checks by itself, outside any chain; the other
	 * layouts at np 4 have none.
	 */
	MPI_Comm pair;
	MPI_Comm_split(MPI_COMM_WORLD, world_rank / 2, world_rank, &pair);
	ok(blk_read(pair, path, BL_EMPTY, 7));
	ok(blk_read(MPI_COMM_SELF, path, BL_EVEN, 7));
	for (int i = 0; i < 3; i++) {
		blk_flip(path, off + at[i], 0x10);
		for (int l = BL_EVEN; l <= BL_EMPTY; l++)
			fails(NNH5_ERR_CHECKSUM, blk_read(MPI_COMM_WORLD, path, l, 7), "damaged",
			      which[i]);
		fails(NNH5_ERR_CHECKSUM, blk_read(pair, path, BL_EMPTY, 7), "damaged", which[i]);
		fails(NNH5_ERR_CHECKSUM, blk_read(MPI_COMM_SELF, path, BL_EVEN, 7), "damaged",
		      which[i]);
		MPI_Barrier(MPI_COMM_WORLD);
		blk_flip(path, off + at[i], 0x10);
	}
	MPI_Comm_free(&pair);
	ok(blk_read(MPI_COMM_WORLD, path, BL_UNEVEN, 7));

	/* The table's entries, then one of them flipped (a file for nnh5 verify too). */
	if (world_rank == 0) {
		hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
		hid_t did = H5Dopen2(fid, "tensor", H5P_DEFAULT);
		hid_t a = H5Aopen(did, "nnh5_xxh3_blocks", H5P_DEFAULT);
		assert_true(H5Aread(a, H5T_NATIVE_UINT64, table) >= 0);
		H5Aclose(a);
		H5Dclose(did);
		H5Fclose(fid);
	}
	MPI_Bcast(table, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	table[1] ^= 1;
	blk_set_attrs(path, H5T_STD_U64LE, BLK_B, table, 3);
	fails(NNH5_ERR_CHECKSUM, blk_read(MPI_COMM_WORLD, path, BL_EVEN, 7), "block 1 ");
	if (world_rank == 0) {
		snprintf(bad, sizeof bad, "%s/blkbad-entry.h5", dir);
		char *bytes;
		size_t len;
		bytes = tu_slurp(path, &len);
		FILE *fp = fopen(bad, "wb");
		assert_non_null(fp);
		assert_int_equal(fwrite(bytes, 1, len, fp), len);
		fclose(fp);
		free(bytes);
		/* Serial loads do not read the table; nnh5_file_check_blocks names the block. */
		nnh5_tensor *t = NULL;
		nnh5_file *f;
		bool present = false;
		ok(nnh5_load_tensor(&t, path));
		ok(nnh5_file_open(&f, path, NNH5_READ));
		fails(NNH5_ERR_CHECKSUM, nnh5_file_check_blocks(&present, f, "tensor", t), "tensor'",
		      "block 1 ");
		nnh5_file_close(f);
		nnh5_tensor_free(t);
	}
	table[1] ^= 1;

	/* Malformed tables: a damaged file, never trusted. */
	struct {
		hid_t btype;
		uint64_t b;
		bool table;
		hsize_t n;
		const char *needle;
	} m[] = {
		{ H5T_STD_U64LE, BLK_B, true, 4, "one entry per block" },
		{ H5T_STD_U64LE, BLK_B, true, 2, "one entry per block" },
		{ H5T_STD_U64LE, 0, true, 3, "power of two" },
		{ H5T_STD_U64LE, 24 << 20, true, 3, "power of two" },
		{ H5T_STD_U64LE, (uint64_t)1 << 62, true, 3, "power of two" },
		{ H5T_IEEE_F64LE, BLK_B, true, 3, "uint64" },
		{ -1, 0, true, 3, "missing" },
		{ H5T_STD_U64LE, BLK_B, false, 0, "missing" },
	};
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		blk_set_attrs(path, m[i].btype, m[i].b, m[i].table ? table : NULL, m[i].n);
		fails(NNH5_ERR_FORMAT, blk_read(MPI_COMM_WORLD, path, BL_EVEN, 7), "tensor'",
		      "block checksum attribute", m[i].needle);
		if (world_rank == 0) {
			nnh5_tensor *t = NULL;
			ok(nnh5_load_tensor(&t, path));
			nnh5_tensor_free(t);
		}
	}
	/* Without a table, the tiling goes back to the whole-tensor chain. */
	blk_set_attrs(path, -1, 0, NULL, 0);
	blk_no_table = true;
	ok(blk_read(MPI_COMM_WORLD, path, BL_EVEN, 7));
	blk_flip(path, off + at[1], 0x10);
	fails(NNH5_ERR_CHECKSUM, blk_read(MPI_COMM_WORLD, path, BL_EVEN, 7), "damaged",
	      "stored checksum");
	blk_no_table = false;
	if (world_rank == 0)
		unlink(path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hashchain),
		cmocka_unit_test(test_reshard_matrix),
		cmocka_unit_test(test_serial_file_reads_sharded),
		cmocka_unit_test(test_whole_read_checks_checksum),
		cmocka_unit_test(test_block_checksums),
		cmocka_unit_test(test_block_damage),
		cmocka_unit_test(test_read_into),
		cmocka_unit_test(test_h5py_file),
		cmocka_unit_test(test_state_dict),
		cmocka_unit_test(test_tied_state_dict),
		cmocka_unit_test(test_no_compression),
		cmocka_unit_test(test_error_agreement),
		cmocka_unit_test(test_agreements_per_save),
		cmocka_unit_test(test_direct_vs_api),
		cmocka_unit_test(test_shared_open),
		cmocka_unit_test(test_shared_state_dict),
		cmocka_unit_test(test_checkpoints),
		cmocka_unit_test(test_checkpoint_sections_direct),
		cmocka_unit_test(test_async_checkpoints),
		cmocka_unit_test(test_async_needs_thread_multiple),
		cmocka_unit_test(test_no_serial_hdf5),
	};
	int rc;

	/* Async checkpoints need MPI_THREAD_MULTIPLE; NNH5_MPI_THREAD=single checks the refusal. */
	const char *thread = getenv("NNH5_MPI_THREAD");
	if (thread && strcmp(thread, "single") == 0) {
		MPI_Init(&argc, &argv);
	} else {
		int provided;
		MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world_size);
	/* One scratch folder for the job, named by rank 0. */
	if (world_rank == 0) {
		const char *keep = getenv("NNH5_MPI_DIR");
		if (keep && *keep) {
			snprintf(dir, sizeof dir, "%s", keep);
			mkdir(dir, 0777);
		} else {
			const char *base = getenv("NNH5_TEST_TMP");
			if (!base)
				base = "/tmp";
			mkdir(base, 0777);
			snprintf(dir, sizeof dir, "%s/nnh5-mpi-XXXXXX", base);
			if (!mkdtemp(dir))
				MPI_Abort(MPI_COMM_WORLD, 2);
		}
	}
	MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
	if (world_rank != 0) /* only rank 0 prints cmocka's report */
		cmocka_set_message_output(CM_OUTPUT_SUBUNIT);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	MPI_Finalize();
	return rc;
}
