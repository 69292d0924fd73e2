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
#include "file/file_internal.h"
#include "file/walk.h"
#include "store/atomic.h"
#include "store/h5util.h"
#include "store/regular.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

/* A tensor split over ranks: its checksum is taken from the file at close. */
struct pending {
	char *name;
	uint64_t offset; /* of its contiguous data in the file */
	uint64_t nbytes;
};

/* A piece of a small tensor written whole by this rank: bytes at offset in the file. */
struct agg_piece {
	uint64_t offset;
	const void *data;
	uint64_t nbytes;
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
};

static void free_file(nnh5_mpi_file *m)
{
	if (m->dxpl > 0)
		H5Pclose(m->dxpl);
	for (size_t i = 0; i < m->npend; i++)
		nnh5__free(m->pend[i].name);
	nnh5__free(m->pend);
	nnh5__free(m->agg);
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
	m->dxpl = -1;
	if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS) {
		nnh5__free(m);
		return nnh5__error(NNH5_ERR_INVALID, "MPI_Comm_dup failed");
	}
	MPI_Comm_rank(m->comm, &m->rank);
	MPI_Comm_size(m->comm, &m->size);
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
	m->f->fid = H5Fcreate(m->tmp, prepared ? H5F_ACC_TRUNC : H5F_ACC_EXCL, fcpl, fapl);
	if (m->f->fid < 0)
		rc = nnh5__h5_error(NNH5_ERR_IO, "save '%s': cannot create temporary file '%s'",
				    path, m->tmp);
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
	if (!rc)
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
	rc = new_handle(&m, comm);
	if (rc)
		return rc;
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
	uint64_t digest;
	uint64_t cover[4]; /* writers, sum of piece indices, of their squares, whole checksum */
	char *record;
	char *owned_name; /* a state dict key's dataset path */
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
	uint64_t dig[2] = { 0, 0 };
	uint64_t *cover = NULL;
	XXH64_state_t st;

	if (!rc)
		rc = nnh5__file_check_writable(m->f, "write");
	for (size_t i = 0; !rc && i < n; i++)
		rc = check_local(&p[i], m);
	if (!rc && !(cover = nnh5__calloc(4 * (n ? n : 1), sizeof *cover)))
		rc = nnh5__nomem();
	if (!rc) {
		XXH64_reset(&st, n);
		for (size_t i = 0; i < n; i++)
			XXH64_update(&st, &p[i].digest, sizeof p[i].digest);
		dig[0] = XXH64_digest(&st);
		dig[1] = ~dig[0];
	}
	rc = nnh5__mpi_agree_max(m->comm, rc, dig, 2);
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
	m->agg[m->nagg++] = (struct agg_piece){ offset, t->data, t->nbytes };
	return NNH5_OK;
}

static int cmp_agg(const void *a, const void *b)
{
	const struct agg_piece *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * Collective: write every rank's waiting pieces in one MPI_File_write_at_all.
 * A rank that failed before (rc) takes part with nothing. Returns this
 * rank's outcome (the write's final agreement shares it).
 */
static int flush_agg(nnh5_mpi_file *m, int rc)
{
	MPI_Aint *disp = NULL, *mdisp = NULL;
	int *len = NULL, n = 0, mrc;
	MPI_Datatype ftype = MPI_BYTE, mtype = MPI_BYTE;
	MPI_File *fh = NULL;
	bool typed = false;

	if (m->agg_tensors == 0)
		return rc;
	/* Fetched by every rank whatever happened before: all must take part below. */
	if (H5Fget_vfd_handle(m->f->fid, H5P_DEFAULT, (void **)&fh) < 0 || !fh)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': no MPI-IO file handle", m->f->path);
	if (!rc && m->nagg > 0) {
		qsort(m->agg, m->nagg, sizeof *m->agg, cmp_agg);
		disp = nnh5__calloc(m->nagg, sizeof *disp);
		mdisp = nnh5__calloc(m->nagg, sizeof *mdisp);
		len = nnh5__calloc(m->nagg, sizeof *len);
		if (!disp || !mdisp || !len)
			rc = nnh5__nomem();
		for (size_t i = 0; !rc && i < m->nagg; i++) {
			disp[i] = (MPI_Aint)m->agg[i].offset;
			len[i] = (int)m->agg[i].nbytes;
			MPI_Get_address(m->agg[i].data, &mdisp[i]);
		}
		if (!rc && (MPI_Type_create_hindexed((int)m->nagg, len, disp, MPI_BYTE, &ftype) !=
				    MPI_SUCCESS ||
			    MPI_Type_create_hindexed((int)m->nagg, len, mdisp, MPI_BYTE, &mtype) !=
				    MPI_SUCCESS ||
			    MPI_Type_commit(&ftype) != MPI_SUCCESS ||
			    MPI_Type_commit(&mtype) != MPI_SUCCESS))
			rc = nnh5__error(NNH5_ERR_IO, "'%s': cannot describe the small tensors' places",
					 m->f->path);
		typed = !rc;
		n = typed ? 1 : 0;
	}
	/*
	 * Every rank calls the three collectives, those that failed too (with
	 * nothing): HDF5's handle is left with the byte view it had.
	 */
	MPI_File h = *fh;
	{
		char native[] = "native";
		mrc = MPI_File_set_view(h, 0, MPI_BYTE, typed ? ftype : MPI_BYTE, native,
					MPI_INFO_NULL);
		if (mrc == MPI_SUCCESS)
			mrc = MPI_File_write_at_all(h, 0, typed ? MPI_BOTTOM : NULL, n,
						    typed ? mtype : MPI_BYTE, MPI_STATUS_IGNORE);
		int vrc = MPI_File_set_view(h, 0, MPI_BYTE, MPI_BYTE, native, MPI_INFO_NULL);
		if (!rc && (mrc != MPI_SUCCESS || vrc != MPI_SUCCESS))
			rc = nnh5__error(NNH5_ERR_IO,
					 "'%s': writing %zu small tensors with MPI_File_write_at_all "
					 "failed",
					 m->f->path, m->nagg);
	}
	if (typed) {
		MPI_Type_free(&ftype);
		MPI_Type_free(&mtype);
	}
	nnh5__free(disp);
	nnh5__free(mdisp);
	nnh5__free(len);
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
	if (!local_rc && whole && nnh5__file_put_checksum(f, did, whole_sum) < 0)
		local_rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': checksum attribute",
					  f->path, name);
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
	if (H5Dwrite(did, type, mspace, fspace, m->dxpl,
		     any && local->data ? local->data : &dummy) < 0 && !local_rc)
		local_rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed", f->path,
					  name);
	count_transfer(m);
	if (!whole) {
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
 * n tensors written collectively with three collective agreements whatever
 * n is (check_writes()' two, one at the end): a failure on one rank gives
 * the same status on every rank, and marks the file failed (nothing is
 * committed) once anything may have been written. in_rc: this rank's
 * failure before the write (it still takes part in the agreement).
 * group: a state dict's group, created first (NULL: none).
 */
static int write_all(nnh5_mpi_file *m, struct plan *p, size_t n, int in_rc, const char *group,
		     const char **keys)
{
	int rc = check_writes(p, n, m, in_rc), lrc = NNH5_OK;

	if (rc == NNH5_ERR_INVALID || rc == NNH5_ERR_SHAPE)
		return rc; /* refused before anything was written */
	if (!rc && group)
		rc = nnh5__file_create_group(m->f, group);
	for (size_t i = 0; !rc && i < n; i++) {
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
	return nnh5__file_note_write(m->f, rc);
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
	int len = snprintf(buf, n, "%s/%s", nnh5__file_is_root(name) ? "" : name, key ? key : "");

	if (!key || !*key || len < 0 || (size_t)len >= n)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': state dict '%s': key '%s' %s",
				   m->f->path, name, key ? key : "(null)",
				   key && *key ? "is too long" : "is empty");
	for (char *c = buf + len - strlen(key); *c; c++)
		if (*c == '.')
			*c = '/';
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
	}
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
};

/*
 * The load function the walk calls once it has described and judged the
 * dataset (lib/file/walk.c): a collective read of this rank's slab. A rank
 * whose slab is wrong still takes part in the transfer (selecting nothing)
 * and fails afterwards; the caller agrees.
 */
static int load_slab(nnh5_tensor **out, nnh5_file *f, nnh5__dataset *ds, const char *display,
		     void *ctx)
{
	struct slab *c = ctx;
	nnh5_tensor *t = NULL;
	bool any, whole = true;
	int rc = NNH5_OK, lrc = NNH5_OK;
	hid_t fspace = -1, mspace = -1;
	char dummy = 0;

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
	if (!lrc)
		lrc = nnh5__tensor_alloc_header(&t, ds->dtype, c->ndim, c->count);
	if (!lrc && t->nbytes) {
		t->data = nnh5__malloc(t->nbytes);
		t->owns = true;
		if (!t->data)
			lrc = nnh5__nomem();
	}
	any = !lrc && nonempty(c->ndim, c->count);
	fspace = H5Dget_space(ds->id);
	mspace = memory_space(c->ndim, c->count, any);
	if (fspace < 0 || mspace < 0 || select_piece(fspace, c->ndim, c->start, c->count, any) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': selection", f->path, display);
	else if (H5Dread(ds->id, ds->mtype, mspace, fspace, c->m->dxpl,
			 any ? t->data : &dummy) < 0)
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': reading dataset '%s' failed", f->path,
				    display);
	else
		count_transfer(c->m);
	if (!rc)
		rc = lrc;
	if (!rc && whole && (f->verify_checksums || f->require_checksums)) {
		uint64_t stored;
		int has = nnh5__dataset_expected_checksum(&stored, f, ds, display);
		if (has < 0)
			rc = has;
		else if (has && f->verify_checksums && nnh5_tensor_checksum(t) != stored)
			rc = nnh5__error(NNH5_ERR_CHECKSUM,
					 "'%s': dataset '%s' is damaged: its data does not match "
					 "the stored checksum",
					 f->path, display);
	}
	if (!rc)
		rc = nnh5__check_bool(t, NNH5_ERR_FORMAT, f->path, "dataset", display);
	if (mspace >= 0)
		H5Sclose(mspace);
	if (fspace >= 0)
		H5Sclose(fspace);
	if (rc) {
		nnh5_tensor_free(t);
		return rc;
	}
	*out = t;
	return NNH5_OK;
}

static int read_slab(nnh5_tensor **out, nnh5_mpi_file *m, const char *name, size_t ndim,
		     const int64_t *start, const int64_t *count, const int64_t *shape)
{
	struct slab c = { m, ndim, start, count, shape };
	int rc;

	*out = NULL;
	rc = ndim > NNH5_MAX_NDIM ? nnh5__error(NNH5_ERR_SHAPE, "'%s': a slab of %zu dimensions",
						 m->f->path, ndim)
				  : nnh5__file_read_one(out, m->f, name, load_slab, &c);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc) {
		nnh5_tensor_free(*out);
		*out = NULL;
	}
	return rc;
}

int nnh5_mpi_read_slab(nnh5_tensor **out, nnh5_mpi_file *m, const char *name, size_t ndim,
		       const int64_t *start, const int64_t *count)
{
	ENTER;
	LEAVE(read_slab(out, m, name, ndim, start, count, NULL));
}

int nnh5_mpi_read_sharded(nnh5_tensor **out, nnh5_mpi_file *m, const char *name,
			  const nnh5_mpi_sharding *s)
{
	int64_t start[NNH5_MAX_NDIM], count[NNH5_MAX_NDIM];
	bool whole;
	int rc;

	*out = NULL;
	ENTER;
	rc = nnh5__mpi_agree(m->comm, nnh5__mpi_box(start, count, &whole, s, m->f->path, name));
	if (!rc)
		rc = read_slab(out, m, name, s->ndim, start, count, s->shape);
	LEAVE(rc);
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
	if (!rc)
		rc = finish_checksums(m);
	/* The mpio driver syncs (MPI_File_sync) on flush, not on close. */
	if (!rc && H5Fflush(m->f->fid, H5F_SCOPE_GLOBAL) < 0)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing the file failed", m->f->path);
	int crc = close_hdf5(m);
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
