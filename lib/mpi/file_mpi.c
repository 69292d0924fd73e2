/*
 * lib/mpi/file_mpi.c - one nnh5 file shared by the ranks of a communicator:
 * collective create and open through the MPI-IO driver, sharded writes into
 * global datasets, slab reads for any rank count, and the collective commit
 * (doc/MPI.md).
 *
 * The HDF5 file is an ordinary nnh5_file of lib/file whose fid was opened
 * with the MPI-IO driver: groups, datasets and attributes are created by
 * lib/file's functions with the serial writer's property lists, and reads
 * go through its walk and load policy. What is MPI's here is who writes
 * which bytes, the agreement after every step (lib/mpi/agree.c), and the
 * commit: flush with MPI_File_sync on every rank, agree, then rank 0 alone
 * runs lib/store/atomic.c's fsync and rename.
 */
#include "mpi/mpi_internal.h"
#include "mpi/hashchain.h"
#include "file/file_internal.h"
#include "file/walk.h"
#include "store/atomic.h"
#include "store/h5format.h"
#include "store/h5util.h"
#include "store/regular.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/xxh.h"

/* A tensor split over ranks: its checksum is taken from the file at close. */
struct pending {
	char *name;
	uint64_t offset; /* of its contiguous data in the file */
	uint64_t nbytes;
	size_t attr;     /* direct metadata: its checksum attribute in the tree */
};

struct plan;

/*
 * A piece of a tensor written by this rank: nbytes at offset in the file,
 * or, for a block of a tensor split along another dimension than the
 * first (block != NULL), its box of the global tensor whose data starts
 * at offset.
 */
struct agg_piece {
	uint64_t offset;
	const void *data;
	uint64_t nbytes;
	const struct plan *block;
};

/*
 * What every rank learns of every other rank's slab before a read, in one
 * MPI_Allgather: whether the bytes can move in plain MPI-IO reads, how many
 * bytes each rank reads (so the count of rounds), whether the slabs tile
 * the tensor along dimension 0 (so the stored checksum can be verified by
 * a hash chain although no rank holds the whole tensor, and the ranks can
 * read their runs independently), and into whose memory.
 */
struct slab_info {
	int64_t fine;   /* no failure so far */
	int64_t ok;     /* no failure so far, and this rank wants checksums verified */
	int64_t run;    /* the slab's bytes are one run in the file (or it is empty) */
	int64_t rows;   /* the slab holds whole rows: every dimension past 0 is full */
	int64_t start0; /* its first row */
	int64_t count0; /* its rows (0: an empty slab) */
	int64_t nbytes; /* its bytes (0: an empty slab or a failure) */
	int64_t into;   /* read into the caller's memory (decides the way of the read) */
};

struct nnh5_mpi_file {
	nnh5_file *f;
	MPI_Comm comm;
	int rank, size;
	nnh5__atomic atomic; /* rank 0 of a file being written */
	char *tmp;           /* every rank: the temporary file being written */
	hid_t dxpl;          /* collective transfers */
	struct pending *pend;
	size_t npend, cappend;
	/* Small whole tensors waiting for the write that moves them all at once (below). */
	struct agg_piece *agg;
	size_t nagg, capagg;
	uint64_t agg_bytes;   /* of every rank's waiting pieces: the same on every rank */
	uint64_t agg_tensors; /* how many tensors that is, on every rank */
	nnh5_mpi_io_stats stats;
	/* Every rank's slab of a read (one MPI_Allgather), and the checksum chain's scratch: m->size each. */
	struct slab_info *infos;
	const struct slab_info **order;
	int *holder;
	uint64_t *len;
	/*
	 * Direct metadata (below): the file is an MPI file, not yet an HDF5
	 * one; every rank keeps the same tree of groups, datasets and
	 * attributes, and rank 0 encodes it at the close.
	 */
	bool direct;
	MPI_File fh;
	nnh5__h5w *w;
	uint64_t cursor;   /* the next free byte for data */
	char **strs;       /* strings the tree borrows */
	size_t nstrs, capstrs;
	bool root_kind;    /* the root group has its nnh5_kind */
};

static void free_tree(nnh5_mpi_file *m)
{
	nnh5__h5w_free(m->w);
	m->w = NULL;
	for (size_t i = 0; i < m->nstrs; i++)
		nnh5__free(m->strs[i]);
	nnh5__free(m->strs);
	m->strs = NULL;
	m->nstrs = m->capstrs = 0;
}

static void free_file(nnh5_mpi_file *m)
{
	free_tree(m);
	if (m->fh != MPI_FILE_NULL)
		MPI_File_close(&m->fh);
	if (m->dxpl > 0)
		H5Pclose(m->dxpl);
	for (size_t i = 0; i < m->npend; i++)
		nnh5__free(m->pend[i].name);
	nnh5__free(m->pend);
	nnh5__free(m->agg);
	nnh5__free(m->infos);
	nnh5__free(m->order);
	nnh5__free(m->holder);
	nnh5__free(m->len);
	nnh5__free(m->tmp);
	if (m->f)
		nnh5__file_release(m->f);
	if (m->comm != MPI_COMM_NULL)
		MPI_Comm_free(&m->comm);
	nnh5__free(m);
}

/* Close the HDF5 file (collective) and free m; the temporary file stays for the caller. */
static int close_hdf5(nnh5_mpi_file *m)
{
	int rc = NNH5_OK;

	if (m->f && m->f->fid >= 0 && H5Fclose(m->f->fid) < 0)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': closing the file failed", m->f->path);
	if (m->f)
		m->f->fid = -1;
	return rc;
}

static int new_handle(nnh5_mpi_file **out, MPI_Comm comm)
{
	nnh5_mpi_file *m = nnh5__calloc(1, sizeof *m);

	*out = NULL;
	if (!m)
		return nnh5__nomem();
	m->comm = MPI_COMM_NULL;
	m->fh = MPI_FILE_NULL;
	m->dxpl = -1;
	if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS) {
		nnh5__free(m);
		return nnh5__error(NNH5_ERR_INVALID, "MPI_Comm_dup failed");
	}
	MPI_Comm_rank(m->comm, &m->rank);
	MPI_Comm_size(m->comm, &m->size);
	/*
	 * Allocated here, where a failure is agreed on by the open: a read must
	 * never fail alone between two collective calls it shares.
	 */
	m->infos = nnh5__calloc((size_t)m->size, sizeof *m->infos);
	m->order = nnh5__calloc((size_t)m->size, sizeof *m->order);
	m->holder = nnh5__calloc((size_t)m->size, sizeof *m->holder);
	m->len = nnh5__calloc((size_t)m->size, sizeof *m->len);
	if (!m->infos || !m->order || !m->holder || !m->len) {
		free_file(m);
		return nnh5__nomem();
	}
	*out = m;
	return NNH5_OK;
}

/*
 * A file access list for the MPI-IO driver: every metadata read made once
 * and broadcast, metadata written collectively (else every rank reads every
 * object header: the metadata storm of N ranks).
 */
static hid_t mpio_fapl(nnh5_mpi_file *m, nnh5_mode mode)
{
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);

	if (fapl < 0)
		return -1;
	if (nnh5__file_fapl_setup(fapl, mode) < 0 ||
	    H5Pset_fapl_mpio(fapl, m->comm, MPI_INFO_NULL) < 0 ||
	    H5Pset_all_coll_metadata_ops(fapl, true) < 0 ||
	    H5Pset_coll_metadata_write(fapl, true) < 0) {
		H5Pclose(fapl);
		return -1;
	}
	return fapl;
}

/* The same string on every rank, from rank 0 (*s is replaced on the others). */
static int bcast_string(char **s, MPI_Comm comm, int rank)
{
	unsigned long long n = rank == 0 && *s ? strlen(*s) + 1 : 0;

	MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
	if (rank != 0) {
		nnh5__free(*s);
		*s = n ? nnh5__malloc(n) : NULL;
	}
	int ok = n == 0 || *s != NULL, all;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
	if (!all)
		return nnh5__nomem();
	if (n)
		MPI_Bcast(*s, (int)n, MPI_CHAR, 0, comm);
	return NNH5_OK;
}

static bool direct_enabled(void);
static int direct_create(nnh5_mpi_file *m, int prepared);

int nnh5_mpi_file_create(nnh5_mpi_file **out, MPI_Comm comm, const char *path,
			 const nnh5_open_options *opts)
{
	nnh5_mpi_file *m;
	hid_t fcpl = -1, fapl = -1;
	int rc;

	*out = NULL;
	rc = new_handle(&m, comm);
	if (rc)
		return rc;
	ENTER;
	rc = nnh5__file_new(&m->f, path, NNH5_CREATE, opts);
	/*
	 * Filters need chunked datasets written through Parallel HDF5; the
	 * collective writers store contiguous ones: refused, not ignored.
	 */
	if (!rc && opts && opts->compression != NNH5_COMPRESSION_NONE)
		rc = nnh5__error(NNH5_ERR_INVALID,
				 "save '%s': compression '%s' is not available for collective "
				 "writes (they store contiguous datasets); save without it, or "
				 "load the file and save it serially with compression",
				 path, nnh5_compression_name(opts->compression));
	if (!rc && m->rank == 0) {
		rc = nnh5__atomic_begin(&m->atomic, path, opts ? opts->durable : true);
		if (!rc && !(m->tmp = nnh5__strdup(m->atomic.tmp)))
			rc = nnh5__nomem();
	}
	/*
	 * As a serial save (lib/file/file.c, open_create): the placeholder that
	 * reserved the name is replaced by a file the ranks create exclusively,
	 * so a new file gets the mode a new file gets; a prepared placeholder
	 * (the replaced file's owner and a narrower mode) is truncated instead.
	 */
	if (!rc && m->rank == 0 && !m->atomic.prepared && unlink(m->atomic.tmp) < 0)
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': cannot replace the temporary file '%s': %s",
				 path, m->atomic.tmp, strerror(errno));
	rc = nnh5__mpi_agree(m->comm, rc);
	if (!rc)
		rc = bcast_string(&m->tmp, m->comm, m->rank);
	int prepared = m->rank == 0 && m->atomic.prepared;
	if (!rc)
		MPI_Bcast(&prepared, 1, MPI_INT, 0, m->comm);
	if (rc)
		goto fail;
	fcpl = nnh5__file_fcpl();
	fapl = mpio_fapl(m, NNH5_CREATE);
	m->dxpl = H5Pcreate(H5P_DATASET_XFER);
	if (fcpl < 0 || fapl < 0 || m->dxpl < 0 ||
	    H5Pset_dxpl_mpio(m->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "save '%s': cannot set up MPI-IO file properties",
				    path);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc)
		goto fail;
	m->direct = direct_enabled();
	if (m->direct) {
		rc = direct_create(m, prepared);
	} else {
		m->f->fid = H5Fcreate(m->tmp, prepared ? H5F_ACC_TRUNC : H5F_ACC_EXCL, fcpl, fapl);
		if (m->f->fid < 0)
			rc = nnh5__h5_error(NNH5_ERR_IO,
					    "save '%s': cannot create temporary file '%s'", path,
					    m->tmp);
	}
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc)
		goto fail;
	if (m->rank == 0 && m->atomic.existed && !m->atomic.prepared) {
		int fd = open(m->tmp, O_RDONLY | O_CLOEXEC);
		rc = fd < 0 ? nnh5__error(NNH5_ERR_IO, "save '%s': cannot open '%s': %s", path,
					  m->tmp, strerror(errno))
			    : nnh5__atomic_adopt(&m->atomic, fd);
		if (fd >= 0)
			close(fd);
	}
	rc = nnh5__mpi_agree(m->comm, rc);
	if (!rc && !m->direct)
		rc = nnh5__mpi_agree(m->comm, nnh5__file_started(m->f));
	if (rc)
		goto fail;
	H5Pclose(fcpl);
	H5Pclose(fapl);
	*out = m;
	LEAVE(NNH5_OK);
fail:
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (fapl >= 0)
		H5Pclose(fapl);
	close_hdf5(m);
	H5Eclear2(H5E_DEFAULT);
	if (m->rank == 0)
		nnh5__atomic_abort(&m->atomic);
	free_file(m);
	LEAVE(rc);
}

int nnh5_mpi_file_open(nnh5_mpi_file **out, MPI_Comm comm, const char *path,
		       const nnh5_open_options *opts)
{
	nnh5_mpi_file *m;
	hid_t fapl = -1;
	int rc;

	*out = NULL;
	/* Agreed: a rank that could not make its handle leaves with the others. */
	rc = nnh5__mpi_agree(comm, new_handle(&m, comm));
	if (rc) {
		if (m)
			free_file(m);
		return rc;
	}
	ENTER;
	rc = nnh5__file_new(&m->f, path, NNH5_READ, opts);
	/* Rank 0 judges the path: a FIFO or device would block or stream. */
	if (!rc && m->rank == 0) {
		nnh5__regular reg;
		rc = nnh5__regular_open(&reg, path, "open");
		if (!rc)
			nnh5__regular_close(&reg);
	}
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc)
		goto fail;
	fapl = mpio_fapl(m, NNH5_READ);
	m->dxpl = H5Pcreate(H5P_DATASET_XFER);
	if (fapl < 0 || m->dxpl < 0 || H5Pset_dxpl_mpio(m->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "open '%s': cannot set up MPI-IO file properties",
				    path);
	if (!rc) {
		m->f->fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
		if (m->f->fid < 0)
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "open '%s': not an HDF5 file (or damaged)",
					    path);
	}
	rc = nnh5__mpi_agree(m->comm, rc);
	if (!rc)
		rc = nnh5__mpi_agree(m->comm, nnh5__file_started(m->f));
	if (fapl >= 0)
		H5Pclose(fapl);
	if (rc)
		goto fail;
	*out = m;
	LEAVE(NNH5_OK);
fail:
	close_hdf5(m);
	H5Eclear2(H5E_DEFAULT);
	free_file(m);
	LEAVE(rc);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

/* After a collective transfer: did HDF5 really run it collectively? */
static void count_transfer(nnh5_mpi_file *m)
{
	H5D_mpio_actual_io_mode_t mode = H5D_MPIO_NO_COLLECTIVE;
	uint32_t local = 0, global = 0;

	m->stats.transfers++;
	if (H5Pget_mpio_actual_io_mode(m->dxpl, &mode) >= 0 && mode != H5D_MPIO_NO_COLLECTIVE) {
		m->stats.collective++;
		return;
	}
	if (H5Pget_mpio_no_collective_cause(m->dxpl, &local, &global) >= 0)
		m->stats.last_cause = global;
	H5Eclear2(H5E_DEFAULT);
}

/* The test hook (mpi_internal.h): does this transfer fail on this rank? */
static bool injected_failure(void)
{
	return nnh5__mpi_fail_transfer > 0 && --nnh5__mpi_fail_transfer == 0;
}

/* A dataspace selecting this rank's piece of space (or nothing). */
static int select_piece(hid_t space, size_t ndim, const int64_t *start, const int64_t *count,
			bool any)
{
	hsize_t st[NNH5_MAX_NDIM], ct[NNH5_MAX_NDIM];

	if (!any || ndim == 0)
		return any ? H5Sselect_all(space) : H5Sselect_none(space);
	for (size_t d = 0; d < ndim; d++) {
		st[d] = (hsize_t)start[d];
		ct[d] = (hsize_t)count[d];
	}
	return H5Sselect_hyperslab(space, H5S_SELECT_SET, st, NULL, ct, NULL);
}

/* The memory dataspace of a piece of count (one element selected nowhere when any is false). */
static hid_t memory_space(size_t ndim, const int64_t *count, bool any)
{
	hsize_t ct[NNH5_MAX_NDIM], one = 1;
	hid_t s;

	if (!any) {
		s = H5Screate_simple(1, &one, NULL);
		if (s >= 0 && H5Sselect_none(s) < 0) {
			H5Sclose(s);
			return -1;
		}
		return s;
	}
	if (ndim == 0)
		return H5Screate(H5S_SCALAR);
	for (size_t d = 0; d < ndim; d++)
		ct[d] = (hsize_t)count[d];
	return H5Screate_simple((int)ndim, ct, NULL);
}

static bool nonempty(size_t ndim, const int64_t *count)
{
	for (size_t d = 0; d < ndim; d++)
		if (count[d] == 0)
			return false;
	return true;
}

/*
 * 0 + 1 + ... + (n-1), or the sum of their squares, modulo 2^64 as the
 * ranks' sums wrap: each factor is divided before the product is taken.
 */
static uint64_t sum_below(uint64_t n, bool squares)
{
	uint64_t a = n ? n - 1 : 0, b = n, c = 2 * n - 1;

	if (!squares)
		return a % 2 == 0 ? a / 2 * b : b / 2 * a;
	if (n == 0)
		return 0;
	/* (n-1) n (2n-1) / 6: one of n-1, n is even; one of the three is a multiple of 3 */
	if (a % 2 == 0)
		a /= 2;
	else
		b /= 2;
	if (a % 3 == 0)
		a /= 3;
	else if (b % 3 == 0)
		b /= 3;
	else
		c /= 3;
	return a * b * c;
}

/* One tensor of a write: this rank's piece and what the ranks agreed on. */
struct plan {
	const char *name;
	const nnh5_tensor *local;
	const nnh5_mpi_sharding *s;
	int64_t start[NNH5_MAX_NDIM], count[NNH5_MAX_NDIM];
	bool whole;
	bool summed; /* cover[3] holds the checksum of the whole tensor (not taken at close) */
	/* Its block checksums (doc/FORMAT.md), when it gets a table: nblocks entries, borrowed. */
	const uint64_t *blocks;
	uint64_t nblocks, block_bytes;
	uint64_t digest;
	uint64_t cover[4]; /* writers, sum of piece indices, of their squares, whole checksum */
	char *record;
	char *owned_name; /* a state dict key's dataset path */
	/*
	 * Ties of a state dict (nnh5_tensor_tied() locally, the same split):
	 * this rank's vote, 1 + the index of the plan it is tied to (0: not
	 * tied), or none (abstain: its piece is empty here); then what every
	 * rank agreed (check_writes()): tied != 0 makes it a hard link to plan
	 * tied - 1, no dataset of its own.
	 */
	size_t tie_of;
	bool abstain;
	size_t tied;
};

/*
 * This rank's own checks of one tensor (no communication): the local shard
 * fits its piece, bool values are 0 or 1; and what the ranks will compare:
 * the digest of the split and this rank's share of the coverage sums.
 */
static int check_local(struct plan *p, nnh5_mpi_file *m)
{
	const char *path = m->f->path, *name = p->name;
	const nnh5_mpi_sharding *s = p->s;
	const nnh5_tensor *local = p->local;
	int rc = nnh5__file_check_write_path(m->f, name);

	if (!rc && nnh5__file_is_root(name))
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': a tensor cannot be the root group", path);
	if (!rc && !local)
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': tensor '%s': no local shard", path, name);
	if (!rc && !s)
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': tensor '%s': no sharding", path, name);
	if (!rc)
		rc = nnh5__mpi_box(p->start, p->count, &p->whole, s, path, name);
	if (!rc && local->ndim != s->ndim)
		rc = nnh5__error(NNH5_ERR_SHAPE,
				 "'%s': tensor '%s': the local shard has %zu dimensions, the "
				 "sharding %zu",
				 path, name, (size_t)local->ndim, s->ndim);
	for (size_t d = 0; !rc && d < s->ndim; d++)
		if (local->shape[d] != p->count[d])
			rc = nnh5__error(NNH5_ERR_SHAPE,
					 "'%s': tensor '%s': the local shard is %lld long in "
					 "dimension %zu, its piece %lld",
					 path, name, (long long)local->shape[d], d,
					 (long long)p->count[d]);
	if (!rc && s->replica == 0)
		rc = nnh5__check_bool(local, NNH5_ERR_INVALID, path, "tensor", name);
	if (!rc && !(p->record = nnh5__mpi_sharding_record(s, m->size)))
		rc = nnh5__nomem();
	if (rc)
		return rc;
	p->digest = nnh5__mpi_sharding_digest(s, local->dtype, name);
	uint64_t lin = 0;
	for (size_t d = 0; d < s->ndim; d++)
		lin = lin * (uint64_t)s->parts[d] + (uint64_t)s->coord[d];
	if (s->replica == 0) {
		p->cover[0] = 1;
		p->cover[1] = lin;
		p->cover[2] = lin * lin;
		p->cover[3] = p->whole ? nnh5_tensor_checksum(local) : 0;
	}
	return NNH5_OK;
}

/*
 * a and b put a rank's shard at the same place of the same global tensor
 * (a tie of two shards is a tie of the tensors only then).
 */
static bool same_split(const nnh5_mpi_sharding *a, const nnh5_mpi_sharding *b, nnh5_dtype dtype)
{
	if (a->ndim != b->ndim || a->replica != b->replica || a->ndim > NNH5_MAX_NDIM)
		return false;
	for (size_t d = 0; d < a->ndim; d++)
		if (a->shape[d] != b->shape[d] || a->parts[d] != b->parts[d] ||
		    a->coord[d] != b->coord[d])
			return false;
	return nnh5__mpi_sharding_digest(a, dtype, "") == nnh5__mpi_sharding_digest(b, dtype, "");
}

/*
 * The ties every rank votes for alike (check_writes(), when a rank holds
 * one): one MPI_Allreduce (MAX) of each plan's vote and of its complement.
 * A plan is tied when every rank that votes names the same plan: a rank
 * that holds the two apart, or splits them differently, keeps both as
 * datasets of their own. The verdict comes from reduced values: the same
 * on every rank.
 */
static int agree_ties(struct plan *p, size_t n, nnh5_mpi_file *m, uint64_t *v)
{
	for (size_t i = 0; i < n; i++) {
		v[i] = p[i].abstain ? 0 : (uint64_t)p[i].tie_of;
		v[n + i] = p[i].abstain ? 0 : UINT64_MAX - (uint64_t)p[i].tie_of;
	}
	nnh5__mpi_agreements++;
	if (MPI_Allreduce(MPI_IN_PLACE, v, (int)(2 * n), MPI_UINT64_T, MPI_MAX, m->comm) !=
	    MPI_SUCCESS)
		return nnh5__error(NNH5_ERR_IO, "'%s': MPI_Allreduce of ties failed", m->f->path);
	for (size_t i = 0; i < n; i++) {
		uint64_t hi = v[i], lo = UINT64_MAX - v[n + i];
		p[i].tied = hi != 0 && hi == lo && hi - 1 < i && !p[hi - 1].tied ? (size_t)hi : 0;
	}
	return NNH5_OK;
}

/*
 * The checks every rank must pass before anything is created, for all n
 * tensors of a write at once, in two collective calls whatever n is: an
 * agreement carrying every rank's local outcome and the largest digest of
 * all n splits (and of its complement: equal iff every rank describes the
 * same names, dtypes, shapes and splits), then one MPI_Allreduce (SUM) of
 * the coverage of every tensor: its writers must number its pieces, with
 * the sums of their piece indices and squares those of 0 .. pieces-1 (each
 * piece written exactly once). That reduction also gives every rank the
 * checksum of each tensor written whole by one rank (the others add 0).
 * The verdict is computed from reduced values, so it is the same on every
 * rank without a further agreement.
 */
static int check_writes(struct plan *p, size_t n, nnh5_mpi_file *m, int rc)
{
	const char *path = m->f->path;
	uint64_t dig[3] = { 0, 0, 0 };
	uint64_t *cover = NULL;
	XXH64_state_t st;

	if (!rc && !m->direct)
		rc = nnh5__file_check_writable(m->f, "write");
	for (size_t i = 0; !rc && i < n; i++)
		rc = check_local(&p[i], m);
	/* A local tie votes only when both shards, checked now, sit alike. */
	for (size_t i = 0; !rc && i < n; i++)
		if (p[i].tie_of && !same_split(p[i].s, p[p[i].tie_of - 1].s, p[i].local->dtype))
			p[i].tie_of = 0;
	/* The coverage sums, then room for the ties' votes: allocated before the agreement. */
	if (!rc && !(cover = nnh5__calloc(6 * (n ? n : 1), sizeof *cover)))
		rc = nnh5__nomem();
	if (!rc) {
		XXH64_reset(&st, n);
		for (size_t i = 0; i < n; i++)
			XXH64_update(&st, &p[i].digest, sizeof p[i].digest);
		dig[0] = XXH64_digest(&st);
		dig[1] = ~dig[0];
		for (size_t i = 0; i < n && !dig[2]; i++)
			dig[2] = p[i].tie_of != 0;
	}
	/* dig[2]: a rank holds a tie (the votes are then compared below). */
	rc = nnh5__mpi_agree_max(m->comm, rc, dig, 3);
	if (!rc && dig[0] != ~dig[1])
		rc = nnh5__error(NNH5_ERR_INVALID,
				 "'%s': %s%s%s: the ranks describe %s differently (names, dtypes, "
				 "shapes, parts or bounds)",
				 path, n == 1 ? "tensor '" : "", n == 1 ? p[0].name : "the tensors",
				 n == 1 ? "'" : "", n == 1 ? "it" : "them");
	if (rc) {
		nnh5__free(cover);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(&cover[4 * i], p[i].cover, sizeof p[i].cover);
	nnh5__mpi_agreements++;
	if (MPI_Allreduce(MPI_IN_PLACE, cover, (int)(4 * n), MPI_UINT64_T, MPI_SUM, m->comm) !=
	    MPI_SUCCESS)
		rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_Allreduce failed", path);
	for (size_t i = 0; !rc && i < n; i++) {
		uint64_t npieces = 1, *c = &cover[4 * i];
		for (size_t d = 0; d < p[i].s->ndim; d++)
			npieces *= (uint64_t)p[i].s->parts[d];
		if (c[0] != npieces || c[1] != sum_below(npieces, false) ||
		    c[2] != sum_below(npieces, true))
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "'%s': tensor '%s': %llu ranks write its %llu pieces: each "
					 "piece needs exactly one rank with replica 0",
					 path, p[i].name, (unsigned long long)c[0],
					 (unsigned long long)npieces);
		p[i].cover[3] = c[3];
	}
	if (!rc && dig[2])
		rc = agree_ties(p, n, m, cover + 4 * n);
	nnh5__free(cover);
	return rc;
}

/* Room for one more element of size elem in *arr of *cap elements, n used. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return NNH5_OK;
	size_t c = *cap ? 2 * *cap : 64;
	void *p = nnh5__realloc(*arr, c * elem);
	if (!p)
		return nnh5__nomem();
	*arr = p;
	*cap = c;
	return NNH5_OK;
}

static int remember_pending(nnh5_mpi_file *m, const char *name, uint64_t offset, uint64_t nbytes)
{
	void *arr = m->pend;
	int rc = grow(&arr, &m->cappend, m->npend, sizeof *m->pend);

	m->pend = arr;
	if (rc)
		return rc;
	m->pend[m->npend].name = nnh5__strdup(name);
	if (!m->pend[m->npend].name)
		return nnh5__nomem();
	m->pend[m->npend].offset = offset;
	m->pend[m->npend].nbytes = nbytes;
	m->npend++;
	return NNH5_OK;
}

/*
 * Small tensors written whole by one rank (replicated ones, biases, norms)
 * do not get a collective H5Dwrite each: HDF5 1.10 has no multi-dataset
 * write, and each H5Dwrite costs every rank a collective round (an
 * MPI_Allreduce and an MPI_File_write_at_all), which made a save of
 * thousands of small tensors tens of times slower than a serial save.
 * Their datasets are created as any other (contiguous, allocated at
 * creation, so their place in the file is known); their bytes wait in a
 * list of (offset, memory, length) and move in one MPI_File_write_at_all of
 * every rank through HDF5's own MPI-IO file handle, with a file view
 * selecting exactly those places, at the end of the write (or when 256 MiB
 * are waiting). The write is still collective I/O; HDF5 caches no raw data
 * of contiguous datasets under the MPI-IO driver, and the flush at close
 * (MPI_File_sync) makes these bytes durable with the rest.
 */
#define AGG_PIECE_MAX ((uint64_t)1 << 20)
#define AGG_FLUSH ((uint64_t)256 << 20)

static bool small_whole(const nnh5_tensor *t)
{
	return t->nbytes > 0 && t->nbytes <= AGG_PIECE_MAX;
}

static int add_agg(nnh5_mpi_file *m, uint64_t offset, const nnh5_tensor *t)
{
	void *arr = m->agg;
	int rc = grow(&arr, &m->capagg, m->nagg, sizeof *m->agg);

	m->agg = arr;
	if (rc)
		return rc;
	m->agg[m->nagg++] = (struct agg_piece){ offset, t->data, t->nbytes, NULL };
	return NNH5_OK;
}

static int cmp_agg(const void *a, const void *b)
{
	const struct agg_piece *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* n bytes as one datatype (counts are int: larger pieces are built of 1 GiB blocks). */
static int bytes_type(MPI_Datatype *t, uint64_t n)
{
	const uint64_t giga = (uint64_t)1 << 30;
	MPI_Datatype g, big, ts[2];
	int bl[2], rc;
	MPI_Aint d[2];

	if (n <= (uint64_t)INT_MAX)
		return MPI_Type_contiguous((int)n, MPI_BYTE, t);
	if (n / giga > (uint64_t)INT_MAX)
		return MPI_ERR_COUNT;
	MPI_Type_contiguous((int)giga, MPI_BYTE, &g);
	MPI_Type_contiguous((int)(n / giga), g, &big);
	ts[0] = big;
	ts[1] = MPI_BYTE;
	bl[0] = 1;
	bl[1] = (int)(n % giga);
	d[0] = 0;
	d[1] = (MPI_Aint)(n / giga * giga);
	rc = MPI_Type_create_struct(2, bl, d, ts, t);
	MPI_Type_free(&g);
	MPI_Type_free(&big);
	return rc;
}

/* The file places of one piece, from its tensor's data address on. */
static int file_type(MPI_Datatype *t, const struct agg_piece *pc);

/*
 * Collective: every rank's pieces in one MPI_File_write_at_all on h, with a
 * file view of exactly their places (pieces of tensors split along another
 * dimension than the first as MPI subarrays of their global tensor), then
 * the byte view again. A rank that failed before (rc) takes part with
 * nothing. Returns this rank's outcome.
 */
static int write_pieces(MPI_File h, struct agg_piece *pc, size_t n, int rc, const char *path)
{
	MPI_Datatype ftype = MPI_BYTE, mtype = MPI_BYTE, *ft = NULL, *mt = NULL;
	MPI_Aint *fd = NULL, *md = NULL;
	int *bl = NULL, mrc, vrc;
	size_t made = 0;
	bool typed = false;
	char native[] = "native";

	bool sorted = true, plain = true;
	for (size_t i = 0; i < n; i++) {
		sorted = sorted && (i == 0 || pc[i - 1].offset <= pc[i].offset);
		plain = plain && !pc[i].block && pc[i].nbytes <= (uint64_t)INT_MAX;
	}
	/* Direct writes give addresses in order: usually sorted already. */
	if (!rc && n > 0 && !sorted)
		qsort(pc, n, sizeof *pc, cmp_agg);
	if (!rc && n > 0 && plain) {
		/* Byte ranges only: one indexed type each way, no type per piece. */
		fd = nnh5__calloc(n, sizeof *fd);
		md = nnh5__calloc(n, sizeof *md);
		bl = nnh5__calloc(n, sizeof *bl);
		if (!fd || !md || !bl)
			rc = nnh5__nomem();
		for (size_t i = 0; !rc && i < n; i++) {
			fd[i] = (MPI_Aint)pc[i].offset;
			bl[i] = (int)pc[i].nbytes;
			MPI_Get_address(pc[i].data, &md[i]);
		}
		if (!rc && (MPI_Type_create_hindexed((int)n, bl, fd, MPI_BYTE, &ftype) !=
				    MPI_SUCCESS ||
			    MPI_Type_create_hindexed((int)n, bl, md, MPI_BYTE, &mtype) !=
				    MPI_SUCCESS ||
			    MPI_Type_commit(&ftype) != MPI_SUCCESS ||
			    MPI_Type_commit(&mtype) != MPI_SUCCESS))
			rc = nnh5__error(NNH5_ERR_IO, "'%s': cannot describe the tensors' places",
					 path);
		typed = !rc;
	} else if (!rc && n > 0) {
		ft = nnh5__calloc(n, sizeof *ft);
		mt = nnh5__calloc(n, sizeof *mt);
		fd = nnh5__calloc(n, sizeof *fd);
		md = nnh5__calloc(n, sizeof *md);
		bl = nnh5__calloc(n, sizeof *bl);
		if (!ft || !mt || !fd || !md || !bl)
			rc = nnh5__nomem();
		for (; !rc && made < n; made++) {
			fd[made] = (MPI_Aint)pc[made].offset;
			bl[made] = 1;
			MPI_Get_address(pc[made].data, &md[made]);
			if (file_type(&ft[made], &pc[made]) != MPI_SUCCESS)
				break;
			if (bytes_type(&mt[made], pc[made].nbytes) != MPI_SUCCESS) {
				MPI_Type_free(&ft[made]);
				break;
			}
		}
		if (!rc && (made < n ||
			    MPI_Type_create_struct((int)n, bl, fd, ft, &ftype) != MPI_SUCCESS ||
			    MPI_Type_create_struct((int)n, bl, md, mt, &mtype) != MPI_SUCCESS ||
			    MPI_Type_commit(&ftype) != MPI_SUCCESS ||
			    MPI_Type_commit(&mtype) != MPI_SUCCESS))
			rc = nnh5__error(NNH5_ERR_IO, "'%s': cannot describe the tensors' places",
					 path);
		typed = !rc;
	}
	mrc = MPI_File_set_view(h, 0, MPI_BYTE, typed ? ftype : MPI_BYTE, native, MPI_INFO_NULL);
	if (mrc == MPI_SUCCESS)
		mrc = MPI_File_write_at_all(h, 0, typed ? MPI_BOTTOM : NULL, typed ? 1 : 0,
					    typed ? mtype : MPI_BYTE, MPI_STATUS_IGNORE);
	vrc = MPI_File_set_view(h, 0, MPI_BYTE, MPI_BYTE, native, MPI_INFO_NULL);
	if (!rc && (mrc != MPI_SUCCESS || vrc != MPI_SUCCESS))
		rc = nnh5__error(NNH5_ERR_IO,
				 "'%s': writing %zu tensors' data with MPI_File_write_at_all failed",
				 path, n);
	for (size_t i = 0; i < made; i++) {
		MPI_Type_free(&ft[i]);
		MPI_Type_free(&mt[i]);
	}
	if (typed) {
		MPI_Type_free(&ftype);
		MPI_Type_free(&mtype);
	}
	nnh5__free(ft);
	nnh5__free(mt);
	nnh5__free(fd);
	nnh5__free(md);
	nnh5__free(bl);
	return rc;
}

/*
 * Collective: write every rank's waiting pieces in one MPI_File_write_at_all
 * on HDF5's own MPI-IO handle. A rank that failed before (rc) takes part
 * with nothing. Returns this rank's outcome (the write's final agreement
 * shares it).
 */
static int flush_agg(nnh5_mpi_file *m, int rc)
{
	MPI_File *fh = NULL;

	if (m->agg_tensors == 0)
		return rc;
	/* Fetched by every rank whatever happened before: all must take part below. */
	if (H5Fget_vfd_handle(m->f->fid, H5P_DEFAULT, (void **)&fh) < 0 || !fh)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': no MPI-IO file handle", m->f->path);
	rc = write_pieces(*fh, m->agg, m->nagg, rc, m->f->path);
	m->stats.transfers += m->agg_tensors;
	if (!rc)
		m->stats.collective += m->agg_tensors;
	m->nagg = 0;
	m->agg_bytes = 0;
	m->agg_tensors = 0;
	return rc;
}

/*
 * The collective part of one tensor's write, once every rank passed
 * check_writes(). The return value is a failure after which this rank
 * cannot go on with the others' collective calls (the dataset could not be
 * made); *lrc keeps the first failure of this rank's own transfer, after
 * which it goes on taking part in every later write, selecting nothing,
 * until the write's final agreement reports it.
 */
static int write_dataset(int *lrc, nnh5_mpi_file *m, const struct plan *p)
{
	nnh5_file *f = m->f;
	const char *name = p->name, *record = p->record;
	const nnh5_tensor *local = p->local;
	const nnh5_mpi_sharding *s = p->s;
	const int64_t *start = p->start, *count = p->count;
	bool whole = p->whole;
	uint64_t whole_sum = p->cover[3];
	char parent[4096];
	hsize_t dims[NNH5_MAX_NDIM];
	hid_t g = -1, space = -1, did = -1, mspace = -1, fspace = -1, str = -1;
	const char *leaf;
	bool any = s->replica == 0 && nonempty(s->ndim, count);
	int rc = NNH5_OK, local_rc = NNH5_OK;
	const char dummy = 0;

	if (strlen(name) >= sizeof parent)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object name too long", f->path);
	leaf = nnh5__file_split_leaf(parent, sizeof parent, name);
	rc = nnh5__file_open_group(&g, f, parent);
	if (rc)
		return rc;
	if (H5Lexists(g, leaf, nnh5__file_lapl(f)) > 0) {
		H5Gclose(g);
		return nnh5__error(NNH5_ERR_EXISTS, "'%s': object '%s' already exists", f->path, name);
	}
	for (size_t d = 0; d < s->ndim; d++)
		dims[d] = (hsize_t)s->shape[d];
	space = s->ndim ? H5Screate_simple((int)s->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
	hid_t type = nnh5__file_type(f, local->dtype);
	if (space >= 0 && type >= 0)
		did = H5Dcreate2(g, leaf, type, space, f->lcpl, f->dcpl_contig, H5P_DEFAULT);
	if (did < 0) {
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create dataset '%s'", f->path, name);
		goto done;
	}
	local_rc = nnh5__file_put_dtype_attr(f, did, local->dtype, name);
	str = nnh5__h5_vlen_utf8();
	if (!local_rc && (str < 0 || nnh5__h5_attr_write(did, "nnh5_sharding", str, &record, 0,
							  false) < 0))
		local_rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': sharding attribute",
					  f->path, name);
	if (!local_rc && (whole || p->summed) && nnh5__file_put_checksum(f, did, whole_sum) < 0)
		local_rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': checksum attribute",
					  f->path, name);
	if (!local_rc && p->blocks &&
	    nnh5__file_put_block_table(f, did, p->blocks, p->nblocks, p->block_bytes) < 0)
		local_rc = nnh5__h5_error(NNH5_ERR_HDF5,
					  "'%s': dataset '%s': block checksum attributes", f->path,
					  name);
	if (!local_rc && injected_failure())
		local_rc = nnh5__error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed: %s",
				       f->path, name, strerror(EIO));
	/*
	 * Once the dataset exists every rank takes part in the transfer, those
	 * with nothing to write and those that already failed too (selecting
	 * nothing): a rank that left would leave the others waiting in it.
	 */
	if (local_rc || *lrc)
		any = false;
	fspace = H5Dget_space(did);
	mspace = memory_space(s->ndim, count, any);
	if (fspace < 0 || mspace < 0 || select_piece(fspace, s->ndim, start, count, any) < 0) {
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': selection", f->path, name);
		goto done;
	}
	if (whole && small_whole(local)) {
		/* Every rank decides alike: whole and the size are agreed properties. */
		haddr_t off = H5Dget_offset(did);
		if (off == HADDR_UNDEF)
			rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': no offset", f->path,
					    name);
		else if (any && !local_rc)
			local_rc = add_agg(m, (uint64_t)off, local);
		m->agg_bytes += local->nbytes;
		m->agg_tensors++;
		if (!*lrc)
			*lrc = local_rc;
		goto done;
	}
	/*
	 * A tensor of no elements has no storage: HDF5 1.10's collective write
	 * of nothing to its undefined address fails. Every rank skips alike
	 * (the shape is agreed); there is no transfer to count.
	 */
	if (nonempty(s->ndim, s->shape)) {
		if (H5Dwrite(did, type, mspace, fspace, m->dxpl,
			     any && local->data ? local->data : &dummy) < 0 && !local_rc)
			local_rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed",
						  f->path, name);
		count_transfer(m);
	}
	if (!whole && !p->summed) {
		haddr_t off = H5Dget_offset(did);
		hsize_t nbytes = H5Dget_storage_size(did);
		rc = off == HADDR_UNDEF && nbytes > 0
			     ? nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': no offset",
					      f->path, name)
			     : remember_pending(m, name, off == HADDR_UNDEF ? 0 : (uint64_t)off,
						(uint64_t)nbytes);
	}
	if (!*lrc)
		*lrc = local_rc;
done:
	if (str >= 0)
		H5Tclose(str);
	if (mspace >= 0)
		H5Sclose(mspace);
	if (fspace >= 0)
		H5Sclose(fspace);
	if (did >= 0 && H5Dclose(did) < 0 && !rc)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': closing dataset '%s' failed", f->path, name);
	if (space >= 0)
		H5Sclose(space);
	H5Gclose(g);
	return rc;
}

/*
 * Split along dimension 0 only: piece i's bytes follow piece i - 1's in
 * the file, so the checksum chain (hashchain.h) hashes the tensor from the
 * ranks' memory in file order; no read-back at close.
 */
static bool rows_split(const struct plan *p)
{
	const nnh5_mpi_sharding *s = p->s;

	if (!s || s->ndim == 0 || s->ndim > NNH5_MAX_NDIM || s->parts[0] < 2)
		return false;
	for (size_t d = 1; d < s->ndim; d++)
		if (s->parts[d] != 1)
			return false;
	return true;
}

/*
 * The checksum chain's memory for the tensors split by rows of one write,
 * and the chains of the block checksums of every tensor of 32 MiB or more.
 */
struct chain_work {
	size_t n;               /* tensors split by rows */
	size_t nb;              /* blocks of the tensors large enough for a table */
	nnh5__hashlink *links;  /* n, then nb */
	uint64_t *sums;         /* n, then nb */
	int *mine;              /* n: this rank's piece index of each, -1 for a replica */
	int *all;               /* n x ranks: every rank's */
	int *holder;            /* ranks: which rank writes piece i of one tensor */
	uint64_t *len;          /* ranks: piece i's bytes */
};

static void chain_free(struct chain_work *w)
{
	nnh5__free(w->links);
	nnh5__free(w->sums);
	nnh5__free(w->mine);
	nnh5__free(w->all);
	nnh5__free(w->holder);
	nnh5__free(w->len);
}

/*
 * Allocated before the write's checks, so a rank without the memory fails
 * in their agreement instead of leaving the others in the chain. A split of
 * more pieces than ranks fails those checks, so ranks entries suffice.
 */
/*
 * The blocks of p's table and their size (0: none), from its global shape
 * and dtype: agreed by check_writes(), so alike on every rank after it.
 */
static uint64_t plan_blocks(uint64_t *block_bytes, const struct plan *p)
{
	const nnh5_mpi_sharding *s = p->s;
	uint64_t nbytes, count = 0;

	*block_bytes = 0;
	if (!s || !p->local || s->ndim > NNH5_MAX_NDIM)
		return 0;
	nbytes = nnh5_dtype_size(p->local->dtype);
	for (size_t d = 0; d < s->ndim; d++) {
		if (s->shape[d] < 0 || (s->shape[d] && nbytes > UINT64_MAX / (uint64_t)s->shape[d]))
			return 0;
		nbytes *= (uint64_t)s->shape[d];
	}
	*block_bytes = nnh5__block_bytes(&count, nbytes);
	return count;
}

static int chain_alloc(struct chain_work *w, const struct plan *p, size_t n, int ranks)
{
	uint64_t b;

	memset(w, 0, sizeof *w);
	for (size_t i = 0; i < n; i++) {
		w->n += rows_split(&p[i]);
		w->nb += (size_t)plan_blocks(&b, &p[i]);
	}
	if (w->n + w->nb == 0)
		return NNH5_OK;
	w->links = nnh5__calloc(w->n + w->nb, sizeof *w->links);
	w->sums = nnh5__calloc(w->n + w->nb, sizeof *w->sums);
	w->mine = nnh5__calloc(w->n ? w->n : 1, sizeof *w->mine);
	w->all = nnh5__calloc((w->n ? w->n : 1) * (size_t)ranks, sizeof *w->all);
	w->holder = nnh5__calloc((size_t)ranks, sizeof *w->holder);
	w->len = nnh5__calloc((size_t)ranks, sizeof *w->len);
	if (!w->links || !w->sums || !w->mine || !w->all || !w->holder || !w->len)
		return nnh5__nomem();
	return NNH5_OK;
}

/*
 * Collective, once every rank passed check_writes(): the checksums of the
 * tensors split by rows, and the block checksums of the tensors of at
 * least two blocks written whole by one rank or split by rows, all in one
 * chain pass. One MPI_Allgather tells every rank which rank writes which
 * piece (the sharding gives only this rank's coordinate); the chain's
 * final MPI_Allreduce gives every rank every checksum, written with the
 * dataset as a whole tensor's is. Each rank hashes the blocks inside its
 * piece while the whole tensor's state travels; blocks straddling two
 * pieces are chains of their own. Tensors of other splits get no table.
 */
static int chain_rows(nnh5_mpi_file *m, struct plan *p, size_t n, struct chain_work *w)
{
	size_t j = 0, at = w->n;

	if (w->n + w->nb == 0)
		return NNH5_OK;
	for (size_t i = 0; i < n; i++)
		if (rows_split(&p[i]))
			w->mine[j++] = p[i].s->replica == 0 ? p[i].s->coord[0] : -1;
	if (w->n && MPI_Allgather(w->mine, (int)w->n, MPI_INT, w->all, (int)w->n, MPI_INT,
				  m->comm) != MPI_SUCCESS)
		return nnh5__error(NNH5_ERR_IO, "'%s': MPI_Allgather failed", m->f->path);
	j = 0;
	for (size_t i = 0; i < n; i++) {
		const nnh5_mpi_sharding *s = p[i].s;
		const nnh5_tensor *local = p[i].local;
		uint64_t bb, nblocks = plan_blocks(&bb, &p[i]);
		if (nblocks && p[i].whole) {
			/* One piece: its writer alone hashes every block. */
			w->holder[0] = s->replica == 0 ? m->rank : -1;
			w->len[0] = local->nbytes;
			nnh5__hashchain_place_blocks(&w->links[at], 0, nblocks, bb, m->rank, 1, w->holder,
						     w->len, s->replica == 0 ? local->data : NULL,
						     nnh5_dtype_size(local->dtype));
		}
		if (nblocks && (p[i].whole || rows_split(&p[i]))) {
			p[i].blocks = &w->sums[at];
			p[i].nblocks = nblocks;
			p[i].block_bytes = bb;
		}
		at += (size_t)nblocks;
		if (!rows_split(&p[i]))
			continue;
		int parts = s->parts[0];
		uint64_t row = nnh5_dtype_size(local->dtype);
		for (size_t d = 1; d < s->ndim; d++)
			row *= (uint64_t)s->shape[d];
		for (int k = 0; k < parts; k++) {
			w->holder[k] = -1;
			w->len[k] = (uint64_t)(nnh5__mpi_piece_start(s, 0, k + 1) -
					       nnh5__mpi_piece_start(s, 0, k)) *
				    row;
		}
		for (int r = 0; r < m->size; r++) {
			int c = w->all[(size_t)r * w->n + j];
			if (c >= 0 && c < parts)
				w->holder[c] = r;
		}
		nnh5__hashlink *l = &w->links[j++];
		nnh5__hashchain_place(l, m->rank, (size_t)parts, w->holder, w->len);
		l->data = s->replica == 0 ? local->data : NULL;
		l->nbytes = s->replica == 0 ? local->nbytes : 0;
		l->elsize = nnh5_dtype_size(local->dtype);
		if (nblocks)
			nnh5__hashchain_place_blocks(&w->links[at - (size_t)nblocks], 0, nblocks, bb, m->rank,
						     (size_t)parts, w->holder, w->len, l->data,
						     l->elsize);
	}
	int rc = nnh5__hashchain_run(w->sums, w->links, w->n + w->nb, m->comm);
	j = 0;
	for (size_t i = 0; !rc && i < n; i++)
		if (rows_split(&p[i])) {
			p[i].cover[3] = w->sums[j++];
			p[i].summed = true;
		}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Direct metadata                                                     */

/*
 * A collective save of HDF5 1.10 spends most of its time in Parallel
 * HDF5's collective metadata work (a dataset create costs every rank
 * collective rounds) and in one collective H5Dwrite per split dataset. As
 * the serial direct writer (lib/file/save_direct.c), a created file is
 * instead written in the HDF5 format by nnh5: every rank keeps the same
 * tree of groups, datasets and attributes (store/h5format.h: the shapes,
 * dtypes and names are agreed by check_writes(), so the trees are equal),
 * data addresses are given out as tensors are written, each write moves
 * every rank's pieces with one MPI_File_write_at_all on a plain MPI file,
 * and at the close rank 0 encodes the metadata after the data and writes
 * it and the superblock. What the tree does not take (big groups, names it
 * does not write, objects that exist, state dicts written into an existing
 * group), and any use of the file through lib/file (checkpoints' summary
 * attributes, reads), switch the file to Parallel HDF5 first (to_hdf5()):
 * the tree so far is written and synced, and every rank reopens the file
 * with H5Fopen and goes on through the API path. NNH5_DIRECT_WRITE=0 keeps
 * every file on the API path from its creation.
 */
int nnh5__mpi_direct_max_links = 4096;

static int hash_pending(uint64_t *sums, nnh5_mpi_file *m);

static bool direct_enabled(void)
{
	const char *e = getenv("NNH5_DIRECT_WRITE");
	return !e || strcmp(e, "0") != 0;
}

static const char writer_name[] = "nnh5 " NNH5_VERSION_STRING;

/* A copy of s that lives as long as the tree (NULL when out of memory). */
static const char *keep(nnh5_mpi_file *m, const char *s)
{
	void *arr = m->strs;
	char *c;

	if (grow(&arr, &m->capstrs, m->nstrs, sizeof *m->strs))
		return NULL;
	m->strs = arr;
	if (!(c = nnh5__strdup(s)))
		return NULL;
	m->strs[m->nstrs++] = c;
	return c;
}

/* Collective: the temporary file opened as a plain MPI file, and the tree's root. */
static int direct_create(nnh5_mpi_file *m, int prepared)
{
	int amode = MPI_MODE_WRONLY | MPI_MODE_CREATE | (prepared ? 0 : MPI_MODE_EXCL);
	int rc = NNH5_OK;

	if (MPI_File_open(m->comm, m->tmp, amode, MPI_INFO_NULL, &m->fh) != MPI_SUCCESS) {
		m->fh = MPI_FILE_NULL;
		return nnh5__error(NNH5_ERR_IO, "save '%s': cannot create temporary file '%s'",
				   m->f->path, m->tmp);
	}
	if (prepared && MPI_File_set_size(m->fh, 0) != MPI_SUCCESS)
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': cannot truncate '%s'", m->f->path, m->tmp);
	if (!rc)
		rc = nnh5__h5w_new(&m->w);
	/* The root's attributes, as nnh5__file_started() writes them. */
	if (!rc)
		rc = nnh5__h5w_attr_i64(m->w, NNH5__H5W_ROOT, "nnh5_format_version", FORMAT_VERSION);
	if (!rc)
		rc = nnh5__h5w_attr_str(m->w, NNH5__H5W_ROOT, "nnh5_writer", writer_name);
	m->cursor = NNH5__H5W_SUPERBLOCK;
	return rc;
}

/* The object at path (components separated by '/'), or NNH5__H5W_NONE; *is_group its kind. */
static uint32_t tree_find(const nnh5__h5w *w, const char *path, bool *is_group)
{
	uint32_t g = NNH5__H5W_ROOT;

	*is_group = true;
	for (const char *p = path; *p;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len) {
			if (!*is_group)
				return NNH5__H5W_NONE;
			g = nnh5__h5w_child(w, g, p, len, is_group);
			if (g == NNH5__H5W_NONE)
				return g;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return g;
}

/* The group at path (kept: the tree borrows its names), made with its missing parents. */
static int tree_group(uint32_t *out, nnh5_mpi_file *m, const char *path)
{
	uint32_t g = NNH5__H5W_ROOT;

	for (const char *p = path; *p;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool is_group = true;
		if (len) {
			uint32_t c = nnh5__h5w_child(m->w, g, p, len, &is_group);
			if (c != NNH5__H5W_NONE && !is_group)
				return nnh5__error(NNH5_ERR_EXISTS, "'%s': '%.*s' in '%s' exists and is "
						   "not a group", m->f->path, (int)len, p, path);
			if (c == NNH5__H5W_NONE) {
				int rc = nnh5__h5w_group(&c, m->w, g, p, len);
				if (rc)
					return rc;
			}
			g = c;
		}
		if (!end)
			break;
		p = end + 1;
	}
	*out = g;
	return NNH5_OK;
}

/* strcmp with '/' below every other byte: "a" sorts just before "a/...". */
static int cmp_path(const void *x, const void *y)
{
	const unsigned char *a = *(const unsigned char *const *)x;
	const unsigned char *b = *(const unsigned char *const *)y;

	while (*a == '/')
		a++;
	while (*b == '/')
		b++;
	for (; *a && *a == *b; a++, b++)
		;
	int ca = *a == '/' ? 1 : *a, cb = *b == '/' ? 1 : *b;
	return ca - cb;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * At most how many links the write adds to any one group: the most tensors
 * sharing a parent, plus one per distinct parent (each may be a new group
 * under the same parent). n + 1 when memory runs out (no direct write).
 */
static uint64_t write_links_bound(const struct plan *p, size_t n)
{
	char **parents = nnh5__calloc(n ? n : 1, sizeof *parents);
	uint64_t most = 0, distinct = 0, run = 0;
	bool ok = parents != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		const char *slash = strrchr(p[i].name, '/');
		size_t len = slash ? (size_t)(slash - p[i].name) : 0;
		ok = (parents[i] = nnh5__malloc(len + 1)) != NULL;
		if (ok) {
			memcpy(parents[i], p[i].name, len);
			parents[i][len] = '\0';
		}
	}
	if (ok)
		qsort(parents, n, sizeof *parents, cmp_str);
	for (size_t i = 0; ok && i < n; i++) {
		if (i == 0 || strcmp(parents[i], parents[i - 1]) != 0) {
			distinct++;
			run = 0;
		}
		if (++run > most)
			most = run;
	}
	for (size_t i = 0; parents && i < n; i++)
		nnh5__free(parents[i]);
	nnh5__free(parents);
	return ok ? most + distinct : (uint64_t)n + 1 + (uint64_t)nnh5__mpi_direct_max_links;
}

/*
 * Can the tree take this write as the API path would write it? Decided
 * from agreed values only (names, shapes, the tree), so alike on every
 * rank. No: the write goes to the API path, which also reports objects
 * that exist.
 */
static bool direct_accepts(nnh5_mpi_file *m, const struct plan *p, size_t n, const char *group,
			   size_t nkeys)
{
	const char **names;
	bool ok = true, is_group;

	if (nnh5__h5w_most_links(m->w) + write_links_bound(p, n) + 2 >
	    (uint64_t)nnh5__mpi_direct_max_links)
		return false;
	if (group) {
		uint32_t g = tree_find(m->w, group, &is_group);
		if (g != NNH5__H5W_NONE && (!is_group || g != NNH5__H5W_ROOT || m->root_kind))
			return false;
		if (nnh5__h5w_strs_message_size("nnh5_keys", nkeys) >= NNH5__H5W_MESG_MAX)
			return false;
	}
	for (size_t i = 0; ok && i < n; i++) {
		const nnh5_mpi_sharding *s = p[i].s;
		for (size_t d = 0; d < s->ndim; d++)
			ok = ok && s->shape[d] <= INT_MAX;
		/* Names the serial direct writer writes; no object in the way. */
		for (const char *c = p[i].name; ok && *c;) {
			const char *end = strchr(c, '/');
			size_t len = end ? (size_t)(end - c) : strlen(c);
			ok = len < 256;
			c = end ? end + 1 : c + len;
		}
		char parent[4096];
		if (ok && strlen(p[i].name) < sizeof parent) {
			const char *leaf = nnh5__file_split_leaf(parent, sizeof parent, p[i].name);
			uint32_t g = tree_find(m->w, parent, &is_group);
			ok = !(g != NNH5__H5W_NONE && !is_group) &&
			     (g == NNH5__H5W_NONE ||
			      nnh5__h5w_child(m->w, g, leaf, strlen(leaf), &is_group) ==
				      NNH5__H5W_NONE);
			/* A dataset where a parent group would go, further up. */
			ok = ok && !(g == NNH5__H5W_NONE && tree_find(m->w, parent, &is_group) ==
							      NNH5__H5W_NONE &&
				     !is_group);
		} else {
			ok = false;
		}
	}
	if (!ok || n < 2)
		return ok;
	/* Within the write: no name twice, none inside another. */
	if (!(names = nnh5__malloc(n * sizeof *names))) {
		nnh5_error_clear();
		return false;
	}
	for (size_t i = 0; i < n; i++)
		names[i] = p[i].name;
	qsort(names, n, sizeof *names, cmp_path);
	for (size_t i = 1; ok && i < n; i++) {
		const char *a = names[i - 1], *b = names[i];
		while (*a == '/')
			a++;
		while (*b == '/')
			b++;
		size_t la = strlen(a);
		ok = strcmp(a, b) != 0 && !(strncmp(a, b, la) == 0 && b[la] == '/');
	}
	nnh5__free(names);
	return ok;
}

static int file_type(MPI_Datatype *t, const struct agg_piece *pc)
{
	const struct plan *p = pc->block;
	int sizes[NNH5_MAX_NDIM], sub[NNH5_MAX_NDIM], st[NNH5_MAX_NDIM], rc;
	MPI_Datatype el;

	if (!p)
		return bytes_type(t, pc->nbytes);
	for (size_t d = 0; d < p->s->ndim; d++) {
		sizes[d] = (int)p->s->shape[d];
		sub[d] = (int)p->count[d];
		st[d] = (int)p->start[d];
	}
	MPI_Type_contiguous((int)nnh5_dtype_size(p->local->dtype), MPI_BYTE, &el);
	rc = MPI_Type_create_subarray((int)p->s->ndim, sizes, sub, st, MPI_ORDER_C, el, t);
	MPI_Type_free(&el);
	return rc;
}

/*
 * One tensor into the tree (every rank alike), its data address given out,
 * and this rank's piece queued. Returns a failure of the tree (out of
 * memory); *lrc keeps this rank's own failure.
 */
static int direct_dataset(int *lrc, nnh5_mpi_file *m, const struct plan *p)
{
	const nnh5_mpi_sharding *s = p->s;
	const nnh5_tensor *local = p->local;
	const char *name = keep(m, p->name), *rec = keep(m, p->record);
	char parent[4096];
	uint32_t g, ds;
	size_t sum_attr;
	uint64_t es = nnh5_dtype_size(local->dtype), nbytes = es;
	int rc;

	if (!name || !rec)
		return nnh5__nomem();
	for (size_t d = 0; d < s->ndim; d++)
		nbytes *= (uint64_t)s->shape[d];
	const char *leaf = nnh5__file_split_leaf(parent, sizeof parent, name);
	const char *kept_parent = keep(m, parent);
	rc = kept_parent ? tree_group(&g, m, kept_parent) : nnh5__nomem();
	if (!rc)
		rc = nnh5__h5w_dataset(&ds, m->w, g, leaf, strlen(leaf), local->dtype, s->ndim,
				       s->shape, nbytes);
	/* In the API path's order: the dtype's name, the sharding, the checksum. */
	if (!rc && (local->dtype == NNH5_BFLOAT16 || local->dtype == NNH5_FLOAT8_E4M3FN ||
		    local->dtype == NNH5_FLOAT8_E5M2))
		rc = nnh5__h5w_attr_str(m->w, ds, "nnh5_dtype", nnh5_dtype_name((int)local->dtype));
	if (!rc)
		rc = nnh5__h5w_attr_str(m->w, ds, "nnh5_sharding", rec);
	if (!rc)
		rc = nnh5__h5w_attr_u64(&sum_attr, m->w, ds, NNH5__CHECKSUM_ATTR,
					p->whole || p->summed ? p->cover[3] : 0);
	if (!rc && p->blocks) {
		/* The tree borrows the table: kept with the strings, as the chain's memory goes. */
		uint64_t *table = nnh5__malloc((size_t)p->nblocks * sizeof *table);
		if (!table || grow((void **)&m->strs, &m->capstrs, m->nstrs, sizeof *m->strs)) {
			nnh5__free(table);
			return nnh5__nomem();
		}
		memcpy(table, p->blocks, (size_t)p->nblocks * sizeof *table);
		m->strs[m->nstrs++] = (char *)table;
		rc = nnh5__h5w_attr_u64(NULL, m->w, ds, NNH5__BLOCK_BYTES_ATTR, p->block_bytes);
		if (!rc)
			rc = nnh5__h5w_attr_u64s(m->w, ds, NNH5__BLOCKS_ATTR, table,
						 (size_t)p->nblocks);
	}
	if (rc)
		return rc;
	/* As the serial direct writer: large data aligned to 4 KiB, small to its element. */
	uint64_t to = nbytes >= ALIGNMENT ? ALIGNMENT : es, addr;
	addr = m->cursor = (m->cursor + to - 1) / to * to;
	m->cursor += nbytes;
	nnh5__h5w_set_data_addr(m->w, ds, addr);
	if (!p->whole && !p->summed) {
		rc = remember_pending(m, name, addr, nbytes);
		if (rc)
			return rc;
		m->pend[m->npend - 1].attr = sum_attr;
	}
	if (!*lrc && injected_failure())
		*lrc = nnh5__error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed: %s", m->f->path,
				   name, strerror(EIO));
	if (*lrc || s->replica != 0 || !nonempty(s->ndim, p->count) || local->nbytes == 0)
		return NNH5_OK;
	uint64_t off = addr;
	if (!p->whole && p->summed) { /* rows: contiguous from its first row */
		off += (uint64_t)p->start[0] * (local->nbytes / (uint64_t)p->count[0]);
	}
	void *arr = m->agg;
	rc = grow(&arr, &m->capagg, m->nagg, sizeof *m->agg);
	m->agg = arr;
	if (!rc)
		m->agg[m->nagg++] = (struct agg_piece){ off, local->data, local->nbytes,
							p->whole || p->summed ? NULL : p };
	if (rc && !*lrc)
		*lrc = rc;
	return NNH5_OK;
}

/*
 * Collective: the write's tensors into the tree, their data in one
 * MPI_File_write_at_all. keys NULL: the group's key list is left to the
 * caller (written through HDF5 after the switch).
 */
static int direct_write(int *lrc, nnh5_mpi_file *m, struct plan *p, size_t n, const char *group,
			const char **keys)
{
	uint32_t g = NNH5__H5W_ROOT;
	const char *kept = group ? keep(m, group) : NULL;
	int rc = group && !kept ? nnh5__nomem() : kept ? tree_group(&g, m, kept) : NNH5_OK;

	for (size_t i = 0; !rc && i < n; i++)
		if (!p[i].tied) /* a tie is a hard link, made after the switch (link_ties()) */
			rc = direct_dataset(lrc, m, &p[i]);
	if (!rc && group && !keys)
		rc = nnh5__h5w_attr_str(m->w, g, "nnh5_kind", "state_dict");
	if (!rc && group && keys) {
		const char **kk = nnh5__calloc(n ? n : 1, sizeof *kk);
		if (!kk)
			rc = nnh5__nomem();
		for (size_t i = 0; !rc && i < n; i++)
			if (!(kk[i] = keep(m, keys[i])))
				rc = nnh5__nomem();
		if (!rc)
			rc = nnh5__h5w_attr_str(m->w, g, "nnh5_kind", "state_dict");
		/* The tree borrows the array too: kept as the strings are. */
		if (!rc && grow((void **)&m->strs, &m->capstrs, m->nstrs, sizeof *m->strs))
			rc = nnh5__nomem();
		if (!rc) {
			m->strs[m->nstrs++] = (char *)kk;
			rc = nnh5__h5w_attr_strs(m->w, g, "nnh5_keys", kk, n);
		} else {
			nnh5__free(kk);
		}
		if (!rc && g == NNH5__H5W_ROOT)
			m->root_kind = true;
	}
	/* Every rank takes part in the data's write, those that failed too. */
	int wrc = write_pieces(m->fh, m->agg, m->nagg, rc ? rc : *lrc, m->f->path);
	m->nagg = 0;
	/* As the API path counts: each tensor with elements is one collective transfer. */
	uint64_t moved = 0;
	for (size_t i = 0; i < n; i++)
		moved += !p[i].tied && nonempty(p[i].s->ndim, p[i].s->shape);
	m->stats.transfers += moved;
	if (!wrc)
		m->stats.collective += moved;
	if (!*lrc)
		*lrc = wrc;
	return rc;
}

/*
 * Collective: the checksums of tensors split along other dimensions than
 * the first (read back from the synced file, as hash_pending() does for
 * the API path), rank 0's encoding of the metadata after the data, its
 * writes of it and of the superblock, MPI_File_sync on every rank, and
 * the MPI file's close. rc: an earlier failure (nothing is encoded; the
 * file is still closed).
 */
static int direct_finish(nnh5_mpi_file *m, int rc)
{
	unsigned char sb[NNH5__H5W_SUPERBLOCK], *meta = NULL;
	uint64_t *sums = NULL, meta_size = 0;

	if (!rc && m->npend) {
		sums = nnh5__calloc(m->npend, sizeof *sums);
		rc = nnh5__mpi_agree(m->comm, sums ? NNH5_OK : nnh5__nomem());
		if (!rc && MPI_File_sync(m->fh) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_File_sync failed", m->f->path);
		rc = nnh5__mpi_agree(m->comm, rc);
		if (!rc)
			rc = nnh5__mpi_agree(m->comm, hash_pending(sums, m));
		if (!rc && MPI_Allreduce(MPI_IN_PLACE, sums, (int)m->npend, MPI_UINT64_T, MPI_BOR,
					 m->comm) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_Allreduce of checksums failed",
					 m->f->path);
		for (size_t i = 0; !rc && i < m->npend; i++)
			nnh5__h5w_set_u64(m->w, m->pend[i].attr, sums[i]);
		nnh5__free(sums);
	}
	for (size_t i = 0; i < m->npend; i++)
		nnh5__free(m->pend[i].name);
	m->npend = 0;
	if (!rc && m->rank == 0) {
		uint64_t base = (m->cursor + 7) / 8 * 8;
		rc = nnh5__h5w_layout_after(&meta_size, m->w, base);
		if (!rc && meta_size > (uint64_t)INT_MAX)
			rc = nnh5__error(NNH5_ERR_OVERFLOW, "'%s': %llu bytes of metadata", m->f->path,
					 (unsigned long long)meta_size);
		if (!rc && !(meta = nnh5__calloc(meta_size, 1)))
			rc = nnh5__nomem();
		if (!rc)
			rc = nnh5__h5w_encode_after(m->w, sb, meta, meta_size);
		if (!rc && (MPI_File_write_at(m->fh, 0, sb, (int)sizeof sb, MPI_BYTE,
					      MPI_STATUS_IGNORE) != MPI_SUCCESS ||
			    MPI_File_write_at(m->fh, (MPI_Offset)base, meta, (int)meta_size,
					      MPI_BYTE, MPI_STATUS_IGNORE) != MPI_SUCCESS))
			rc = nnh5__error(NNH5_ERR_IO, "'%s': writing the metadata failed", m->f->path);
		nnh5__free(meta);
	}
	/* Every rank's data and rank 0's metadata durable before any commit. */
	if (MPI_File_sync(m->fh) != MPI_SUCCESS && !rc)
		rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_File_sync failed", m->f->path);
	if (MPI_File_close(&m->fh) != MPI_SUCCESS && !rc)
		rc = nnh5__error(NNH5_ERR_IO, "'%s': closing the file failed", m->f->path);
	m->fh = MPI_FILE_NULL;
	m->direct = false;
	free_tree(m);
	return rc;
}

/*
 * Collective: go on with Parallel HDF5 (the tree is written, synced and
 * closed; every rank opens the file with H5Fopen). A failure marks the
 * file failed: nothing will be committed.
 */
static int to_hdf5(nnh5_mpi_file *m)
{
	hid_t fapl = -1;
	int rc = nnh5__mpi_agree(m->comm, direct_finish(m, NNH5_OK));

	if (!rc) {
		fapl = mpio_fapl(m, NNH5_CREATE);
		m->f->fid = fapl < 0 ? -1 : H5Fopen(m->tmp, H5F_ACC_RDWR, fapl);
		if (m->f->fid < 0)
			rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': cannot reopen '%s' with HDF5",
					    m->f->path, m->tmp);
		if (fapl >= 0)
			H5Pclose(fapl);
	}
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc)
		m->f->failed = true;
	return rc;
}

/*
 * n tensors written collectively with three collective agreements whatever
 * n is (check_writes()' two, one at the end; tensors split by rows add the
 * checksum chain's MPI_Allgather and MPI_Allreduce): a failure on one rank gives
 * the same status on every rank, and marks the file failed (nothing is
 * committed) once anything may have been written. in_rc: this rank's
 * failure before the write (it still takes part in the agreement).
 * group: a state dict's group, created first (NULL: none).
 */
static int write_checked(nnh5_mpi_file *m, struct plan *p, size_t n, int rc, const char *group,
			 const char **keys);

static int write_all(nnh5_mpi_file *m, struct plan *p, size_t n, int in_rc, const char *group,
		     const char **keys)
{
	struct chain_work w;
	int rc = chain_alloc(&w, p, n, m->size);

	rc = check_writes(p, n, m, in_rc ? in_rc : rc);
	if (rc == NNH5_ERR_INVALID || rc == NNH5_ERR_SHAPE) {
		chain_free(&w);
		return rc; /* refused before anything was written */
	}
	if (!rc)
		rc = chain_rows(m, p, n, &w);
	/* The plans borrow their block tables from the chain's memory. */
	rc = write_checked(m, p, n, rc, group, keys);
	chain_free(&w);
	return rc;
}

/*
 * Collective, once a write's datasets are written (rc: its agreed outcome):
 * each agreed tie as a hard link to its dataset, through HDF5 (the tree
 * holds no hard links: a file still written direct switches first). Every
 * rank makes the same calls, as Parallel HDF5's metadata operations
 * require. A failure marks the file failed: nothing will be committed.
 */
static int link_ties(nnh5_mpi_file *m, const struct plan *p, size_t n, int rc)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any = any || p[i].tied;
	if (rc || !any)
		return rc;
	if (m->direct && (rc = to_hdf5(m)) != NNH5_OK)
		return rc;
	for (size_t i = 0; !rc && i < n; i++)
		if (p[i].tied)
			rc = nnh5__file_link_tie(m->f, p[i].name, p[p[i].tied - 1].name);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc)
		m->f->failed = true;
	return rc;
}

/* write_all() once the checks and the chain are done (rc: their outcome). */
static int write_checked(nnh5_mpi_file *m, struct plan *p, size_t n, int rc, const char *group,
			 const char **keys)
{
	int lrc = NNH5_OK;

	/*
	 * A key list too large for an object header (HDF5 keeps it in dense
	 * storage, which the tree does not encode): the tensors still go
	 * direct, and the list is written through HDF5 after the switch, as
	 * the serial direct writer leaves such a root's attributes to HDF5.
	 */
	bool defer_keys = !rc && m->direct && group &&
			  nnh5__h5w_strs_message_size("nnh5_keys", n) >= NNH5__H5W_MESG_MAX;
	if (!rc && m->direct && !direct_accepts(m, p, n, group, defer_keys ? 0 : n))
		rc = to_hdf5(m);
	if (!rc && m->direct) {
		rc = direct_write(&lrc, m, p, n, group, defer_keys ? NULL : keys);
		rc = nnh5__mpi_agree(m->comm, rc ? rc : lrc);
		if (!rc && defer_keys && (rc = to_hdf5(m)) == NNH5_OK)
			rc = nnh5__mpi_agree(m->comm, nnh5__file_set_attr_strings(m->f, group,
										  "nnh5_keys", keys, n));
		return nnh5__file_note_write(m->f, link_ties(m, p, n, rc));
	}
	if (!rc && group)
		rc = nnh5__file_create_group(m->f, group);
	for (size_t i = 0; !rc && i < n; i++) {
		if (p[i].tied)
			continue;
		rc = write_dataset(&lrc, m, &p[i]);
		if (!rc && m->agg_bytes >= AGG_FLUSH)
			lrc = flush_agg(m, lrc);
	}
	if (!rc)
		lrc = flush_agg(m, lrc);
	if (!rc && group)
		rc = nnh5__file_set_attr_string(m->f, group, "nnh5_kind", "state_dict");
	if (!rc && group)
		rc = nnh5__file_set_attr_strings(m->f, group, "nnh5_keys", keys, n);
	rc = nnh5__mpi_agree(m->comm, rc ? rc : lrc);
	/* An object that already exists is refused on every rank at the same name: nothing of it was written. */
	if (rc == NNH5_ERR_EXISTS && n > 1)
		m->f->failed = true;
	return nnh5__file_note_write(m->f, link_ties(m, p, n, rc));
}

static void free_plans(struct plan *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		nnh5__free(p[i].record);
		nnh5__free(p[i].owned_name);
	}
	nnh5__free(p);
}

int nnh5_mpi_write_sharded(nnh5_mpi_file *m, const char *name, const nnh5_tensor *local,
			   const nnh5_mpi_sharding *s)
{
	struct plan p = { .name = name, .local = local, .s = s };
	int rc;

	ENTER;
	rc = write_all(m, &p, 1, name ? NNH5_OK : nnh5__error(NNH5_ERR_INVALID, "'%s': no name",
								m->f->path),
		       NULL, NULL);
	nnh5__free(p.record);
	LEAVE(rc);
}

/* The dataset of state dict key "a.b" in the group name: "name/a/b". */
#define KEY_PATH_MAX 4200
static int key_path(char *buf, size_t n, const nnh5_mpi_file *m, const char *name,
		    const char *key)
{
	/* "%s/%s" built by hand: printf costs on every tensor of a save. */
	const char *group = nnh5__file_is_root(name) ? "" : name;
	size_t glen = strlen(group), klen = key ? strlen(key) : 0;

	if (!key || !*key)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': state dict '%s': key '%s' is empty",
				   m->f->path, name, key ? key : "(null)");
	/* The key's start only: the reason must survive an agreement's 1 KiB message. */
	if (glen + 1 + klen >= n)
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': state dict '%s': key '%.64s%s' is too long (%zu bytes; "
				   "its dataset path may hold %zu)",
				   m->f->path, name, key, klen > 64 ? "..." : "", klen, n - 1);
	memcpy(buf, group, glen);
	buf[glen] = '/';
	for (size_t i = 0; i <= klen; i++) /* the NUL too */
		buf[glen + 1 + i] = key[i] == '.' ? '/' : key[i];
	return NNH5_OK;
}

int nnh5_mpi_write_state_dict(nnh5_mpi_file *m, const char *name, const nnh5_dict *local,
			      const nnh5_mpi_sharding *shardings)
{
	size_t n = nnh5_dict_len(local);
	const char **keys = NULL;
	struct plan *p = NULL;
	int rc = NNH5_OK;

	ENTER;
	if (!name || nnh5__file_is_root(name))
		name = "/";
	rc = nnh5__file_check_write_path(m->f, name);
	if (!rc && n && !shardings)
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': state dict '%s': no shardings", m->f->path,
				 name);
	if (!rc && (!(keys = nnh5__calloc(n ? n : 1, sizeof *keys)) ||
		    !(p = nnh5__calloc(n ? n : 1, sizeof *p))))
		rc = nnh5__nomem();
	for (size_t i = 0; !rc && i < n; i++) {
		char path[KEY_PATH_MAX];
		keys[i] = nnh5_dict_key(local, i);
		rc = key_path(path, sizeof path, m, name, keys[i]);
		if (!rc && !(p[i].owned_name = nnh5__strdup(path)))
			rc = nnh5__nomem();
		p[i].name = p[i].owned_name;
		p[i].local = nnh5_dict_value(local, i);
		p[i].s = &shardings[i];
		p[i].abstain = !p[i].local || p[i].local->nbytes == 0;
	}
	/* This rank's votes for ties (check_writes() compares every rank's). */
	size_t *first = NULL;
	if (!rc)
		rc = nnh5__dict_ties(&first, local);
	for (size_t i = 0; !rc && first && i < n; i++)
		if (first[i] != SIZE_MAX)
			p[i].tie_of = first[i] + 1; /* kept if the splits match (check_writes()) */
	nnh5__free(first);
	rc = write_all(m, p, rc ? 0 : n, rc, name, keys);
	free_plans(p, n);
	nnh5__free(keys);
	LEAVE(rc);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

struct slab {
	nnh5_mpi_file *m;
	size_t ndim;
	const int64_t *start, *count;
	const int64_t *shape; /* the stored shape the caller expects, or NULL */
	nnh5_tensor *into;    /* the caller's tensor to fill, or NULL: a new one */
};

#define SLAB_INFO_WORDS (sizeof(struct slab_info) / sizeof(int64_t))
#define READ_ROUND ((uint64_t)1 << 30)
/*
 * The independent reads of a verified tiling read into the caller's memory:
 * small enough that the bytes of one read are still in the cache when they
 * are hashed (the 32 MiB L3 here is shared by the ranks of a node), large
 * enough that the calls cost little (doc/MPI.md, "Hashed while read").
 */
#define HASH_ROUND ((uint64_t)4 << 20)

/*
 * The byte offset of slab (start, count) from the start of a C-order array
 * of shape, when its bytes are one run there: dimensions of count 1, then
 * one of any count, then only full ones. An empty slab is a run of nothing.
 */
static bool slab_run(uint64_t *elem_offset, size_t ndim, const int64_t *shape,
		     const int64_t *start, const int64_t *count)
{
	size_t d = 0;
	uint64_t at = 0;

	*elem_offset = 0;
	if (!nonempty(ndim, count))
		return true;
	while (d < ndim && count[d] == 1)
		d++;
	for (size_t e = d + 1; e < ndim; e++)
		if (count[e] != shape[e])
			return false;
	for (size_t e = 0; e < ndim; e++)
		at = at * (uint64_t)shape[e] + (uint64_t)start[e];
	*elem_offset = at;
	return true;
}

static int cmp_rows(const void *a, const void *b)
{
	const struct slab_info *x = *(const struct slab_info *const *)a;
	const struct slab_info *y = *(const struct slab_info *const *)b;
	return x->start0 < y->start0 ? -1 : x->start0 > y->start0;
}

/*
 * Do the ranks' slabs tile the tensor along dimension 0: whole rows, every
 * rank's rows following the previous piece's, nothing missing or read
 * twice, and no rank failed so far (*tiled)? And is every rank asking for
 * checksums to be verified (the result)? Then place this rank in the hash
 * chain over the pieces in file order. Decided from the gathered infos
 * only (m->infos), so alike on every rank.
 */
static bool tile_rows(bool *tiled, nnh5__hashlink *link, size_t *npieces, nnh5_mpi_file *m,
		      const nnh5__dataset *ds)
{
	const struct slab_info *all = m->infos;
	size_t n = 0;
	int64_t next = 0;
	uint64_t row = nnh5_dtype_size(ds->dtype);
	bool ok = ds->ndim > 0, verify = true;

	*tiled = false;
	for (size_t d = 1; d < ds->ndim; d++)
		row *= (uint64_t)ds->shape[d];
	for (int r = 0; ok && r < m->size; r++) {
		ok = all[r].fine && all[r].rows;
		verify = verify && all[r].ok;
		if (all[r].count0 > 0)
			m->order[n++] = &all[r];
	}
	if (!ok || n == 0)
		return false;
	qsort(m->order, n, sizeof *m->order, cmp_rows);
	for (size_t i = 0; i < n; i++) {
		if (m->order[i]->start0 != next)
			return false;
		next = m->order[i]->start0 + m->order[i]->count0;
		m->holder[i] = (int)(m->order[i] - all);
		m->len[i] = (uint64_t)m->order[i]->count0 * row;
	}
	if (next != ds->shape[0])
		return false;
	*tiled = true;
	*npieces = n;
	if (!verify)
		return false;
	nnh5__hashchain_place(link, m->rank, n, m->holder, m->len);
	return true;
}

/*
 * The blocks inside this rank's slab of a tiling with a block table (all
 * but the first and the last block it touches, which verify_blocks()
 * hashes with the chains shared with the ranks beside it), hashed as
 * read_run()'s independent reads bring their bytes, while those are still
 * in the cache: a second pass over the slab after the read ran at memory
 * speed.
 */
struct inner_hash {
	bool read;                 /* block_table() ran: hb, table and bb are the dataset's */
	int hb;                    /* nnh5__dataset_block_table()'s result */
	bool on;                   /* a tiling with a table, and this rank has inner blocks */
	uint64_t *table, bb;       /* the block table (owned) and its block bytes */
	const unsigned char *data; /* the slab's bytes */
	uint64_t lo, hi;           /* the inner blocks' bytes in the slab */
	uint64_t block;            /* the block being hashed */
	uint64_t fed;              /* its bytes hashed so far */
	size_t es;
	int64_t bad;               /* the first inner block that did not match, or -1 */
	XXH3_state_t st;
};

/* This rank's bytes [*start, *end) of a tiling's npieces pieces, of *total; false: none. */
static bool my_bytes(uint64_t *start, uint64_t *end, uint64_t *total, const nnh5_mpi_file *m,
		     size_t npieces)
{
	bool mine = false;

	*start = *end = *total = 0;
	for (size_t i = 0; i < npieces; i++) {
		if (!mine && m->holder[i] == m->rank) {
			mine = true;
			*end = *start + m->len[i];
		} else if (!mine) {
			*start += m->len[i];
		}
		*total += m->len[i];
	}
	return mine && *end > *start;
}

/* The dataset's block table into h, once (on every rank of a tiling: HDF5 reads metadata collectively). */
static void block_table(struct inner_hash *h, nnh5_mpi_file *m, nnh5__dataset *ds,
			const char *display)
{
	uint64_t count;

	if (h->read)
		return;
	h->read = true;
	h->hb = nnh5__dataset_block_table(&h->table, &count, &h->bb, m->f, ds, display);
}

/*
 * Before the read, on every rank of the tiling: the dataset's block table,
 * and where this rank's inner blocks lie in its slab t (NULL: this rank
 * failed before the read). verify_slab() reports a missing or malformed
 * table.
 */
static void inner_begin(struct inner_hash *h, nnh5_mpi_file *m, nnh5__dataset *ds,
			const nnh5_tensor *t, size_t npieces, const char *display)
{
	uint64_t start, end, total, first, last;

	h->on = false;
	h->bad = -1;
	block_table(h, m, ds, display);
	if (h->hb <= 0 || !t || !my_bytes(&start, &end, &total, m, npieces))
		return;
	first = start / h->bb;
	last = (end - 1) / h->bb;
	if (last < first + 2)
		return; /* no block inside: the table waits for verify_blocks() */
	h->on = true;
	h->data = t->data;
	h->lo = (first + 1) * h->bb - start;
	h->hi = last * h->bb - start;
	h->block = first + 1;
	h->fed = 0;
	h->es = nnh5_dtype_size(t->dtype);
	XXH3_64bits_reset(&h->st);
}

/* The slab's bytes [from, from + n) have just been read (rounds come in order). */
static void inner_feed(struct inner_hash *h, uint64_t from, uint64_t n)
{
	uint64_t a = from > h->lo ? from : h->lo, b = from + n < h->hi ? from + n : h->hi;

	while (a < b) {
		uint64_t take = h->bb - h->fed < b - a ? h->bb - h->fed : b - a;
		nnh5__checksum_update(&h->st, h->data + a, (size_t)take, h->es);
		a += take;
		h->fed += take;
		if (h->fed == h->bb) {
			if (h->bad < 0 && XXH3_64bits_digest(&h->st) != h->table[h->block])
				h->bad = (int64_t)h->block;
			h->block++;
			h->fed = 0;
			XXH3_64bits_reset(&h->st);
		}
	}
}

/*
 * This rank's bytes [off, off + nbytes) of the file into buf, on HDF5's own
 * MPI-IO handle. With rounds >= 0: in the same number of
 * MPI_File_read_at_all calls of at most round bytes as every other rank
 * (rounds, the largest over the ranks; a rank with fewer bytes or that
 * failed reads nothing in the rest). With rounds < 0: independent
 * MPI_File_read_at calls of at most round bytes, each one's bytes handed to
 * h (when on) as soon as they are in, while they are still in the cache.
 * HDF5 keeps no raw data of contiguous datasets under the MPI-IO driver, so
 * nothing it caches can differ from these bytes.
 */
static int read_run(nnh5_mpi_file *m, void *buf, uint64_t off, uint64_t nbytes, uint64_t round,
		    int64_t rounds, bool take_part, struct inner_hash *h, const char *display)
{
	MPI_File *fh = NULL;
	int rc = NNH5_OK;
	bool ended = false;

	if (H5Fget_vfd_handle(m->f->fid, H5P_DEFAULT, (void **)&fh) < 0 || !fh)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': no MPI-IO file handle", m->f->path);
	for (uint64_t done = 0, k; rounds < 0 && take_part && !rc && !ended && done < nbytes;
	     done += k) {
		MPI_Status st;
		int got = 0;
		k = nbytes - done < round ? nbytes - done : round;
		if (MPI_File_read_at(*fh, (MPI_Offset)(off + done), (char *)buf + done, (int)k,
				     MPI_BYTE, &st) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO,
					 "'%s': reading dataset '%s' with MPI_File_read_at failed",
					 m->f->path, display);
		else if (MPI_Get_count(&st, MPI_BYTE, &got) != MPI_SUCCESS || (uint64_t)got != k)
			ended = true;
		else if (h && h->on)
			inner_feed(h, done, k);
	}
	for (int64_t i = 0; i < rounds; i++) {
		uint64_t done = (uint64_t)i * round, k = 0;
		if (take_part && !rc && !ended && done < nbytes)
			k = nbytes - done < round ? nbytes - done : round;
		MPI_Status st;
		int got = 0;
		if (MPI_File_read_at_all(*fh, (MPI_Offset)(off + done),
					 k ? (char *)buf + done : NULL, (int)k, MPI_BYTE,
					 &st) != MPI_SUCCESS) {
			if (!rc)
				rc = nnh5__error(NNH5_ERR_IO,
						 "'%s': reading dataset '%s' with "
						 "MPI_File_read_at_all failed",
						 m->f->path, display);
		} else if (k && (MPI_Get_count(&st, MPI_BYTE, &got) != MPI_SUCCESS ||
				 (uint64_t)got != k)) {
			ended = true;
		}
	}
	/*
	 * Open MPI's MPI-IO reports a read past the end of the file as whole:
	 * the file's size after the read says whether it was cut since the
	 * policy judged it.
	 */
	MPI_Offset size;
	if (!rc && take_part && nbytes &&
	    (MPI_File_get_size(*fh, &size) != MPI_SUCCESS || size < 0 ||
	     (uint64_t)size < off + nbytes))
		ended = true;
	if (ended && !rc)
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': dataset '%s': the file ends before its data does "
				 "(truncated or damaged)",
				 m->f->path, display);
	return rc;
}

/* The caller's tensor for a slab: its dtype and shape, writable. */
static int check_into(const nnh5_tensor *t, nnh5_file *f, const nnh5__dataset *ds,
		      const struct slab *c, const char *display)
{
	if (t->readonly)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': tensor '%s': the destination is read-only",
				   f->path, display);
	if (t->dtype != ds->dtype)
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': tensor '%s' is %s, the destination %s", f->path, display,
				   nnh5_dtype_name(ds->dtype), nnh5_dtype_name(t->dtype));
	if (t->ndim != c->ndim)
		return nnh5__error(NNH5_ERR_SHAPE,
				   "'%s': tensor '%s': the destination has %zu dimensions, the "
				   "piece %zu",
				   f->path, display, (size_t)t->ndim, c->ndim);
	for (size_t d = 0; d < c->ndim; d++)
		if (t->shape[d] != c->count[d])
			return nnh5__error(NNH5_ERR_SHAPE,
					   "'%s': tensor '%s': the destination is %lld long in "
					   "dimension %zu, the piece %lld",
					   f->path, display, (long long)t->shape[d], d,
					   (long long)c->count[d]);
	return NNH5_OK;
}

/*
 * A tiling's blocks (doc/FORMAT.md, "Block checksums"), each rank its own
 * slab's: the blocks inside it hashed here (or already, as they were read:
 * h), the two it shares with the
 * ranks before and after (head, tail) by chains restricted to them. This
 * rank's tail goes first, so the next rank's wait is short; then the
 * blocks inside, then the head. A mismatch is this rank's
 * NNH5_ERR_CHECKSUM naming the block; the read's agreement gives it to
 * every rank.
 */
static int verify_blocks(nnh5_mpi_file *m, const nnh5_tensor *t, size_t npieces,
			 const struct inner_hash *h, const char *display)
{
	nnh5__hashlink l[2];
	const uint64_t *table = h->table, bb = h->bb;
	uint64_t start, end, first, last, total;
	size_t es = nnh5_dtype_size(t->dtype);
	int64_t bad = h->on ? h->bad : -1;
	int rc;

	if (!my_bytes(&start, &end, &total, m, npieces)) /* the chains pass this rank by */
		return NNH5_OK;
	first = start / bb;
	last = (end - 1) / bb;
	nnh5__hashchain_place_blocks(&l[0], last, 1, bb, m->rank, npieces, m->holder, m->len,
				     t->data, es);
	nnh5__hashchain_place_blocks(&l[1], first, 1, bb, m->rank, npieces, m->holder, m->len,
				     t->data, es);
	/* The tail's state leaves in the chain's first pass; the blocks inside come before the head's wait. */
	rc = nnh5__hashchain_run(NULL, &l[0], 1, m->comm);
	for (uint64_t b = first + 1; !h->on && bad < 0 && b < last; b++)
		if (nnh5__checksum((const unsigned char *)t->data + (b * bb - start), (size_t)bb,
				   es) != table[b])
			bad = (int64_t)b;
	if (last != first) {
		int hrc = nnh5__hashchain_run(NULL, &l[1], 1, m->comm);
		rc = rc ? rc : hrc;
	}
	if (l[0].last && l[0].sum != table[last])
		bad = (int64_t)last;
	if (last != first && l[1].last && l[1].sum != table[first])
		bad = (int64_t)first;
	if (rc)
		return rc;
	if (bad >= 0)
		return nnh5__error(NNH5_ERR_CHECKSUM,
				   "'%s': dataset '%s' is damaged: block %lld of its data (bytes "
				   "%llu to %llu) does not match its block checksum",
				   m->f->path, display, (long long)bad,
				   (unsigned long long)((uint64_t)bad * bb),
				   (unsigned long long)((uint64_t)(bad + 1) * bb < total
								? (uint64_t)(bad + 1) * bb
								: total));
	return NNH5_OK;
}

/*
 * After the transfer: the stored checksum, verified when the ranks' slabs
 * tile the tensor along dimension 0 or, otherwise, when this rank read the
 * whole tensor. A tiling of a tensor with a block table checks its blocks
 * (verify_blocks(): each rank its own bytes, at once); without one, the
 * hash chain over the pieces in file order brings the whole tensor's XXH3
 * to every rank, and every rank compares it. A malformed table is a
 * damaged file. Other partial slabs are not verified. Every rank of a
 * tiling calls this, whatever its own read did: the chains need them all.
 */
static int verify_slab(nnh5_mpi_file *m, nnh5__dataset *ds, const nnh5_tensor *t, bool whole,
		       bool tiles, nnh5__hashlink *link, size_t npieces, struct inner_hash *h,
		       const char *display)
{
	nnh5_file *f = m->f;
	MPI_Comm comm = m->comm;
	uint64_t stored, sum;
	int has, rc;

	if (!tiles && !(whole && (f->verify_checksums || f->require_checksums)))
		return NNH5_OK;
	/* The same file on every rank: the ranks of a tiling all get the same answer. */
	has = nnh5__dataset_expected_checksum(&stored, f, ds, display);
	if (has < 0)
		return has;
	if (!f->verify_checksums)
		return NNH5_OK;
	if (tiles) {
		block_table(h, m, ds, display);
		if (h->hb < 0)
			return h->hb;
		if (h->hb > 0)
			return verify_blocks(m, t, npieces, h, display);
	}
	if (has == 0)
		return NNH5_OK;
	if (tiles) {
		link->data = t->data;
		link->nbytes = t->nbytes;
		link->elsize = nnh5_dtype_size(t->dtype);
		rc = nnh5__hashchain_run(&sum, link, 1, comm);
		if (rc)
			return rc;
	} else {
		sum = nnh5_tensor_checksum(t);
	}
	if (sum != stored)
		return nnh5__error(NNH5_ERR_CHECKSUM,
				   "'%s': dataset '%s' is damaged: its data does not match the "
				   "stored checksum",
				   f->path, display);
	return NNH5_OK;
}

/*
 * The load function the walk calls once it has described and judged the
 * dataset (lib/file/walk.c): a collective read of this rank's slab. A rank
 * whose slab is wrong still takes part in the transfer (selecting nothing)
 * and fails afterwards; the caller agrees.
 *
 * Data whose stored bytes are the tensor's bytes (the policy found it
 * contiguous, unfiltered, in this file, of the memory type), read as one
 * run per rank, moves in MPI_File_read_at_all on HDF5's own MPI-IO handle
 * at the offset the policy checked: HDF5 1.10's collective H5Dread builds
 * datatypes and runs its own collective set-up for every call, which cost
 * more than the read itself (doc/MPI.md "Loads"). Everything else goes
 * through H5Dread.
 */
static int load_slab(nnh5_tensor **out, nnh5_file *f, nnh5__dataset *ds, const char *display,
		     void *ctx)
{
	struct slab *c = ctx;
	nnh5_mpi_file *m = c->m;
	nnh5_tensor *t = NULL;
	struct slab_info me = { 0 }, *all = m->infos;
	nnh5__hashlink link = { 0 };
	struct inner_hash h = { .read = false, .on = false, .table = NULL, .bad = -1 };
	size_t npieces = 0;
	bool any, whole = true, direct, tiles, tiled;
	int rc = NNH5_OK, lrc = NNH5_OK;
	hid_t fspace = -1, mspace = -1;
	char dummy = 0;
	uint64_t elem_off = 0;

	*out = NULL;
	if (c->ndim != ds->ndim)
		lrc = nnh5__error(NNH5_ERR_SHAPE, "'%s': tensor '%s' has %zu dimensions, not %zu",
				  f->path, display, ds->ndim, c->ndim);
	for (size_t d = 0; !lrc && c->shape && d < c->ndim; d++)
		if (c->shape[d] != ds->shape[d])
			lrc = nnh5__error(NNH5_ERR_SHAPE,
					  "'%s': tensor '%s' is %lld long in dimension %zu, the "
					  "sharding says %lld",
					  f->path, display, (long long)ds->shape[d], d,
					  (long long)c->shape[d]);
	for (size_t d = 0; !lrc && d < c->ndim; d++) {
		if (c->start[d] < 0 || c->count[d] < 0 || c->start[d] > ds->shape[d] ||
		    c->count[d] > ds->shape[d] - c->start[d])
			lrc = nnh5__error(NNH5_ERR_SHAPE,
					  "'%s': tensor '%s': slab [%lld, %lld) leaves dimension %zu "
					  "of size %lld",
					  f->path, display, (long long)c->start[d],
					  (long long)(c->start[d] + c->count[d]), d,
					  (long long)ds->shape[d]);
		whole = whole && c->start[d] == 0 && c->count[d] == ds->shape[d];
	}
	if (!lrc && c->into) {
		lrc = check_into(c->into, f, ds, c, display);
		if (!lrc)
			t = c->into;
	} else if (!lrc) {
		lrc = nnh5__tensor_alloc_header(&t, ds->dtype, c->ndim, c->count);
		/* No zeroing, huge pages: the read overwrites every byte (see nnh5__malloc_large). */
		if (!lrc && t->nbytes) {
			t->data = nnh5__malloc_large(t->nbytes);
			t->owns = true;
			if (!t->data)
				lrc = nnh5__nomem();
		}
	}
	any = !lrc && nonempty(c->ndim, c->count);

	if (!lrc) {
		me.fine = 1;
		me.ok = f->verify_checksums;
		me.run = slab_run(&elem_off, c->ndim, ds->shape, c->start, c->count);
		me.rows = c->ndim > 0;
		for (size_t d = 1; d < c->ndim; d++)
			me.rows = me.rows && c->count[d] == ds->shape[d];
		me.start0 = c->ndim > 0 && any ? c->start[0] : 0;
		me.count0 = c->ndim > 0 && any ? c->count[0] : 0;
		me.nbytes = any ? (int64_t)t->nbytes : 0;
		me.into = c->into != NULL;
	} else {
		me.run = 1; /* takes part in a direct read with nothing */
	}
	if (MPI_Allgather(&me, (int)SLAB_INFO_WORDS, MPI_INT64_T, all, (int)SLAB_INFO_WORDS,
			  MPI_INT64_T, m->comm) != MPI_SUCCESS) {
		rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_Allgather failed", f->path);
		goto done;
	}
	/* Decided from the file's description and the gathered infos: alike on every rank. */
	direct = ds->raw && ds->offset != UINT64_MAX;
	for (int r = 0; r < m->size; r++)
		direct = direct && all[r].run;
	tiles = tile_rows(&tiled, &link, &npieces, m, ds);

	if (direct) {
		size_t es = nnh5_dtype_size(ds->dtype);
		/*
		 * A verified tiling: each rank reads its run independently in
		 * pieces, its inner blocks hashed as they come in (a second pass
		 * over the run after one read ran at memory speed), when every
		 * rank reads into its own memory or the tensor has a block table.
		 * An unverified tiling (no rank verifies): each rank reads its run
		 * independently. Otherwise one collective read, hashed after
		 * (doc/MPI.md, "Hashed while read"). Decided from the file and the
		 * gathered infos: alike on every rank, whatever each one called.
		 */
		bool own = tiled;
		for (int r = 0; r < m->size; r++)
			own = own && !all[r].ok;
		if (tiles && f->verify_checksums) {
			inner_begin(&h, m, ds, any && !lrc ? t : NULL, npieces, display);
			/* A table that failed to read (hb < 0) fails after the read, on every rank. */
			own = h.hb != 0;
			bool every_into = true;
			for (int r = 0; r < m->size; r++)
				every_into = every_into && all[r].into;
			own = own || every_into;
			h.on = h.on && own;
		}
		uint64_t round = own && h.on ? HASH_ROUND : READ_ROUND;
		int64_t rounds = own ? -1 : 0;
		for (int r = 0; !own && r < m->size; r++) {
			int64_t k = (int64_t)(((uint64_t)all[r].nbytes + round - 1) / round);
			rounds = k > rounds ? k : rounds;
		}
		int xrc = read_run(m, any ? t->data : NULL, ds->offset + elem_off * es,
				   any ? t->nbytes : 0, round, rounds, any, &h, display);
		if (!lrc)
			lrc = xrc;
		if (own) {
			m->stats.independent++;
		} else {
			m->stats.transfers++;
			if (!lrc)
				m->stats.collective++;
		}
	} else {
		fspace = H5Dget_space(ds->id);
		mspace = memory_space(c->ndim, c->count, any);
		if (fspace < 0 || mspace < 0 ||
		    select_piece(fspace, c->ndim, c->start, c->count, any) < 0)
			rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': selection", f->path,
					    display);
		else if (H5Dread(ds->id, ds->mtype, mspace, fspace, m->dxpl,
				 any ? t->data : &dummy) < 0)
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': reading dataset '%s' failed",
					    f->path, display);
		else
			count_transfer(m);
	}
	if (tiles || (!rc && !lrc)) {
		/*
		 * A rank whose read failed still runs the chains the tiling shares;
		 * what they report (a mismatch its own short read caused) must not
		 * replace its message.
		 */
		char why[1024];
		if (lrc)
			snprintf(why, sizeof why, "%s", nnh5_error_message());
		int vrc = verify_slab(m, ds, t, whole, tiles, &link, npieces, &h, display);
		if (!lrc)
			lrc = vrc;
		else if (vrc)
			nnh5__error(lrc, "%s", why);
	}
	if (!rc)
		rc = lrc;
	if (!rc)
		rc = nnh5__check_bool(t, NNH5_ERR_FORMAT, f->path, "dataset", display);
done:
	nnh5__free(h.table);
	if (mspace >= 0)
		H5Sclose(mspace);
	if (fspace >= 0)
		H5Sclose(fspace);
	if (t == c->into) {
		*out = rc ? NULL : t;
		return rc;
	}
	if (rc) {
		nnh5_tensor_free(t);
		return rc;
	}
	*out = t;
	return NNH5_OK;
}

static int read_slab(nnh5_tensor **out, nnh5_mpi_file *m, const char *name, size_t ndim,
		     const int64_t *start, const int64_t *count, const int64_t *shape,
		     nnh5_tensor *into)
{
	struct slab c = { m, ndim, start, count, shape, into };
	int rc;

	*out = NULL;
	if (m->direct && (rc = to_hdf5(m)) != NNH5_OK)
		return rc;
	rc = ndim > NNH5_MAX_NDIM ? nnh5__error(NNH5_ERR_SHAPE, "'%s': a slab of %zu dimensions",
						 m->f->path, ndim)
				  : nnh5__file_read_one(out, m->f, name, load_slab, &c);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc) {
		if (*out != into)
			nnh5_tensor_free(*out);
		*out = NULL;
	}
	return rc;
}

int nnh5_mpi_read_slab(nnh5_tensor **out, nnh5_mpi_file *m, const char *name, size_t ndim,
		       const int64_t *start, const int64_t *count)
{
	ENTER;
	LEAVE(read_slab(out, m, name, ndim, start, count, NULL, NULL));
}

static int read_sharded(nnh5_tensor **out, nnh5_mpi_file *m, const char *name,
			const nnh5_mpi_sharding *s, nnh5_tensor *into)
{
	int64_t start[NNH5_MAX_NDIM], count[NNH5_MAX_NDIM];
	bool whole;
	int rc;

	*out = NULL;
	rc = nnh5__mpi_agree(m->comm, nnh5__mpi_box(start, count, &whole, s, m->f->path, name));
	if (!rc)
		rc = read_slab(out, m, name, s->ndim, start, count, s->shape, into);
	return rc;
}

int nnh5_mpi_read_sharded(nnh5_tensor **out, nnh5_mpi_file *m, const char *name,
			  const nnh5_mpi_sharding *s)
{
	ENTER;
	LEAVE(read_sharded(out, m, name, s, NULL));
}

int nnh5_mpi_read_sharded_into(nnh5_tensor *dst, nnh5_mpi_file *m, const char *name,
			       const nnh5_mpi_sharding *s)
{
	nnh5_tensor *got;

	assert(dst);
	ENTER;
	LEAVE(read_sharded(&got, m, name, s, dst));
}

int nnh5_mpi_read_state_dict(nnh5_dict **out, nnh5_mpi_file *m, const char *name, size_t n,
			     const char *const *keys, const nnh5_mpi_sharding *shardings)
{
	nnh5_dict *d = NULL;
	int rc;

	*out = NULL;
	if (!name)
		name = "/";
	rc = nnh5__mpi_agree(m->comm, nnh5_dict_new(&d));
	for (size_t i = 0; !rc && i < n; i++) {
		char path[KEY_PATH_MAX];
		nnh5_tensor *t = NULL;
		rc = nnh5__mpi_agree(m->comm, key_path(path, sizeof path, m, name, keys[i]));
		if (!rc)
			rc = nnh5_mpi_read_sharded(&t, m, path, &shardings[i]);
		if (!rc && (rc = nnh5_dict_set(d, keys[i], t)) != NNH5_OK)
			nnh5_tensor_free(t);
		if (!rc)
			continue;
		rc = nnh5__mpi_agree(m->comm, rc);
	}
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

nnh5_file *nnh5__mpi_file_handle(nnh5_mpi_file *m)
{
	if (m->direct)
		to_hdf5(m);
	return m->f;
}

void nnh5_mpi_file_io_stats(nnh5_mpi_io_stats *out, const nnh5_mpi_file *m)
{
	*out = m->stats;
}

/* ------------------------------------------------------------------ */
/* Closing: checksums of split tensors, flush, agree, commit           */

/*
 * XXH3 of a split tensor cannot be combined from its pieces' hashes: once
 * every rank's data is in the file (H5Fflush: MPI_File_sync everywhere),
 * the tensors are shared out round-robin and each is hashed by one rank
 * reading it back whole in 8 MiB pieces; an MPI_Allreduce gives every rank
 * every checksum, and the attributes are written collectively.
 */
static int hash_pending(uint64_t *sums, nnh5_mpi_file *m)
{
	const size_t piece = (size_t)8 << 20;
	unsigned char *buf = NULL;
	int fd = -1, rc = NNH5_OK;

	for (size_t i = 0; !rc && i < m->npend; i++) {
		if ((int)(i % (size_t)m->size) != m->rank)
			continue;
		XXH3_state_t st;
		if (fd < 0 && (fd = open(m->tmp, O_RDONLY | O_CLOEXEC)) < 0) {
			rc = nnh5__error(NNH5_ERR_IO, "'%s': cannot read back '%s': %s", m->f->path,
					 m->tmp, strerror(errno));
			break;
		}
		if (!buf && !(buf = nnh5__malloc(piece))) {
			rc = nnh5__nomem();
			break;
		}
		XXH3_64bits_reset(&st);
		for (uint64_t done = 0; !rc && done < m->pend[i].nbytes;) {
			uint64_t left = m->pend[i].nbytes - done;
			size_t n = left < piece ? (size_t)left : piece;
			ssize_t got = pread(fd, buf, n, (off_t)(m->pend[i].offset + done));
			if (got <= 0)
				rc = nnh5__error(NNH5_ERR_IO,
						 "'%s': reading back dataset '%s' failed: %s",
						 m->f->path, m->pend[i].name,
						 got < 0 ? strerror(errno) : "short file");
			else {
				XXH3_64bits_update(&st, buf, (size_t)got);
				done += (uint64_t)got;
			}
		}
		sums[i] = XXH3_64bits_digest(&st);
	}
	nnh5__free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int finish_checksums(nnh5_mpi_file *m)
{
	uint64_t *sums, *all;
	int rc = NNH5_OK;

	if (m->npend == 0)
		return NNH5_OK;
	sums = nnh5__calloc(m->npend, sizeof *sums);
	all = nnh5__calloc(m->npend, sizeof *all);
	if (!sums || !all)
		rc = nnh5__nomem();
	if (!rc && H5Fflush(m->f->fid, H5F_SCOPE_GLOBAL) < 0)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing the file failed", m->f->path);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (!rc)
		rc = nnh5__mpi_agree(m->comm, hash_pending(sums, m));
	if (!rc && MPI_Allreduce(sums, all, (int)m->npend, MPI_UINT64_T, MPI_BOR, m->comm) !=
			   MPI_SUCCESS)
		rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_Allreduce of checksums failed", m->f->path);
	for (size_t i = 0; !rc && i < m->npend; i++) {
		hid_t did = H5Dopen2(m->f->fid, m->pend[i].name, H5P_DEFAULT);
		if (did < 0 || nnh5__file_put_checksum(m->f, did, all[i]) < 0)
			rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': checksum attribute",
					    m->f->path, m->pend[i].name);
		if (did >= 0)
			H5Dclose(did);
	}
	nnh5__free(sums);
	nnh5__free(all);
	return nnh5__mpi_agree(m->comm, rc);
}

int nnh5_mpi_file_close(nnh5_mpi_file *m)
{
	int rc = NNH5_OK;

	if (!m)
		return NNH5_OK;
	ENTER;
	if (m->f->mode == NNH5_READ) {
		rc = nnh5__mpi_agree(m->comm, close_hdf5(m));
		free_file(m);
		LEAVE(rc);
	}
	if (m->f->failed) {
		/* Keep the earlier failure's message: it says what went wrong. */
		char why[1024];
		snprintf(why, sizeof why, "%s", nnh5_error_message());
		rc = nnh5__error(NNH5_ERR_IO,
				 "save '%s': not committed because an earlier write failed (the "
				 "previous file is unchanged): %s",
				 m->f->path, why);
	}
	int crc = NNH5_OK;
	if (m->direct) {
		/* Metadata by rank 0, MPI_File_sync on every rank, then the same agreement. */
		crc = direct_finish(m, rc);
	} else {
		if (!rc)
			rc = finish_checksums(m);
		/* The mpio driver syncs (MPI_File_sync) on flush, not on close. */
		if (!rc && H5Fflush(m->f->fid, H5F_SCOPE_GLOBAL) < 0)
			rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing the file failed",
					    m->f->path);
		crc = close_hdf5(m);
	}
	H5Eclear2(H5E_DEFAULT);
	rc = nnh5__mpi_agree(m->comm, rc ? rc : crc);
	if (rc) {
		if (m->rank == 0)
			nnh5__atomic_abort(&m->atomic);
		free_file(m);
		LEAVE(rc);
	}
	/* Rank 0's commit (fsync, rename, fsync of the folder) is everyone's outcome. */
	rc = nnh5__mpi_agree(m->comm, m->rank == 0 ? nnh5__atomic_commit(&m->atomic) : NNH5_OK);
	free_file(m);
	LEAVE(rc);
}

void nnh5_mpi_file_discard(nnh5_mpi_file *m)
{
	if (!m)
		return;
	ENTER;
	close_hdf5(m);
	H5Eclear2(H5E_DEFAULT);
	if (m->f->mode == NNH5_CREATE && m->rank == 0)
		nnh5__atomic_abort(&m->atomic);
	free_file(m);
	nnh5__h5_quiet_end(&quiet_);
}
