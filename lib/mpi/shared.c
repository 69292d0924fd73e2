/*
 * lib/mpi/shared.c - one open for N ranks. When every rank of a simulation
 * needs the same model or state dict, N opens of one file (each reading
 * the superblock, every object header, every attribute) are the metadata
 * storm a parallel file system falls over under. Here one rank opens the
 * file. For a shared handle or a model it reads the file's bytes with
 * pread and broadcasts them, and every rank opens them as an HDF5 image,
 * described and judged by the walk (lib/file/walk.c) and the load policy
 * on every rank. A state dict is loaded by root alone, as
 * nnh5_load_state_dict() loads it, and given to the others
 * (lib/mpi/dict_bcast.c): no rank parses the file a second time.
 */
#include "mpi/mpi_internal.h"
#include "file/load_direct.h"
#include "store/policy.h"
#include "store/regular.h"
#include "nnh5/save.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Root: the bytes of the regular file at path, at most cap of them. */
static int read_whole(unsigned char **out, uint64_t *size, const char *path, uint64_t cap)
{
	nnh5__regular reg;
	struct stat st;
	unsigned char *buf = NULL;
	int rc = nnh5__regular_open(&reg, path, "open");

	*out = NULL;
	*size = 0;
	if (rc)
		return rc;
	if (fstat(reg.fd, &st) < 0)
		rc = nnh5__error(NNH5_ERR_IO, "open '%s': %s", path, strerror(errno));
	else if ((uint64_t)st.st_size > cap)
		rc = nnh5__error(NNH5_ERR_OVERFLOW,
				 "open '%s': %llu bytes, more than the %llu one shared open may "
				 "read (max_load_bytes)",
				 path, (unsigned long long)st.st_size, (unsigned long long)cap);
	else if (st.st_size > 0 && !(buf = nnh5__malloc((size_t)st.st_size)))
		rc = nnh5__nomem();
	for (uint64_t done = 0; !rc && done < (uint64_t)st.st_size;) {
		ssize_t got = pread(reg.fd, buf + done, (size_t)st.st_size - done, (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			rc = nnh5__error(NNH5_ERR_IO, "open '%s': reading failed: %s", path,
					 got < 0 ? strerror(errno) : "the file shrank");
		else
			done += (uint64_t)got;
	}
	nnh5__regular_close(&reg);
	if (rc) {
		nnh5__free(buf);
		return rc;
	}
	*out = buf;
	*size = (uint64_t)st.st_size;
	return NNH5_OK;
}

/* The arguments every shared load checks first: a root of comm, a path. */
static int check_root(MPI_Comm comm, int root, const char *path)
{
	int nranks;

	MPI_Comm_size(comm, &nranks);
	if (root < 0 || root >= nranks)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': root %d is not a rank of the %d",
				   path ? path : "(null)", root, nranks);
	if (!path || !*path)
		return nnh5__error(NNH5_ERR_INVALID, "open: empty path");
	return NNH5_OK;
}

/*
 * Root reads the file at path (at most cap bytes) and broadcasts its bytes:
 * every rank gets them in *out (the caller frees them) or the same error.
 */
static int bcast_whole(unsigned char **out, uint64_t *size, MPI_Comm comm, int root,
		       const char *path, uint64_t cap)
{
	unsigned char *buf = NULL;
	int rank, rc;

	*out = NULL;
	*size = 0;
	rc = check_root(comm, root, path);
	if (rc)
		return rc;
	MPI_Comm_rank(comm, &rank);
	if (rank == root)
		rc = read_whole(&buf, size, path, cap);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc)
		return rc;
	MPI_Bcast(size, 1, MPI_UINT64_T, root, comm);
	if (rank != root && *size > 0 && !(buf = nnh5__malloc((size_t)*size)))
		rc = nnh5__nomem();
	rc = nnh5__mpi_agree(comm, rc);
	if (!rc && nnh5__mpi_bcast_bytes(buf, *size, comm, root))
		rc = nnh5__error(NNH5_ERR_IO, "open '%s': MPI_Bcast failed", path);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc) {
		nnh5__free(buf);
		*size = 0;
		return rc;
	}
	*out = buf;
	return NNH5_OK;
}

static uint64_t load_cap(const nnh5_open_options *opts)
{
	return opts && opts->max_load_bytes ? opts->max_load_bytes : NNH5__DEFAULT_MAX_LOAD_BYTES;
}

int nnh5_mpi_file_open_shared(nnh5_file **out, MPI_Comm comm, int root, const char *path,
			      const nnh5_open_options *opts)
{
	unsigned char *buf;
	uint64_t size;
	int rc;

	*out = NULL;
	rc = bcast_whole(&buf, &size, comm, root, path, load_cap(opts));
	if (rc)
		return rc;
	rc = nnh5_file_open_image(out, buf, (size_t)size, path, opts);
	nnh5__free(buf);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc) {
		nnh5_file_discard(*out);
		*out = NULL;
	}
	return rc;
}

/*
 * Root: the state dict at name ("/" or NULL: the root) of path, from one
 * read of the file: a whole file nnh5 wrote by the direct reader
 * (lib/file/load_direct.c), as nnh5_load_state_dict() reads it from disk;
 * anything else, or a group in it, through HDF5's API on the bytes.
 */
static int root_load(nnh5_dict **out, const char *path, const char *name)
{
	unsigned char *buf;
	uint64_t size;
	nnh5_file *f;
	bool done = false;
	int rc;

	if (!name || strcmp(name, "/") == 0)
		nnh5__load_direct(&done, out, path, NULL, NNH5__DIRECT_STATE_DICT);
	if (done)
		return NNH5_OK;
	rc = read_whole(&buf, &size, path, load_cap(NULL));
	if (rc)
		return rc;
	rc = nnh5_file_open_image(&f, buf, (size_t)size, path, NULL);
	if (!rc) {
		rc = nnh5_file_read_state_dict(out, f, name ? name : "/");
		nnh5_file_close(f);
	}
	nnh5__free(buf);
	return rc;
}

int nnh5_mpi_load_state_dict(nnh5_dict **out, MPI_Comm comm, int root, const char *path,
			     const char *name)
{
	nnh5_dict *d = NULL;
	int rank, rc;

	*out = NULL;
	rc = check_root(comm, root, path);
	if (rc)
		return rc;
	/*
	 * Root alone reads and judges the file; the others get its result
	 * (lib/mpi/dict_bcast.c), not the file's bytes to parse again: N ranks
	 * walking one image cost N loads of CPU time.
	 */
	MPI_Comm_rank(comm, &rank);
	if (rank == root)
		rc = root_load(&d, path, name);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	rc = nnh5__mpi_bcast_dict(&d, comm, root, path);
	*out = d;
	return rc;
}

int nnh5_mpi_load_model(nnh5_model **out, MPI_Comm comm, int root, const char *path)
{
	nnh5_file *f;
	int rc;

	*out = NULL;
	rc = nnh5_mpi_file_open_shared(&f, comm, root, path, NULL);
	if (rc)
		return rc;
	rc = nnh5_file_read_model(out, f, "/");
	nnh5_file_close(f);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc) {
		nnh5_model_free(*out);
		*out = NULL;
	}
	return rc;
}
