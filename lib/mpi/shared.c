/*
 * lib/mpi/shared.c - one open for N ranks. When every rank of a simulation
 * needs the same model or state dict, N opens of one file (each reading
 * the superblock, every object header, every attribute) are the metadata
 * storm a parallel file system falls over under. Here one rank opens the
 * file, reads its bytes with pread and broadcasts them; every rank reads
 * the bytes as a load from disk reads the file, so every object is still
 * described and judged by the load policy on every rank: a state dict
 * nnh5 wrote by the direct reader (lib/file/load_direct.c), anything else
 * through HDF5's API on an in-memory image and the walk (lib/file/walk.c).
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

/*
 * Root reads the file at path (at most cap bytes) and broadcasts its bytes:
 * every rank gets them in *out (the caller frees them) or the same error.
 */
static int bcast_whole(unsigned char **out, uint64_t *size, MPI_Comm comm, int root,
		       const char *path, uint64_t cap)
{
	/* MPI counts are int: broadcast 1 GiB at a time. */
	const uint64_t piece = (uint64_t)1 << 30;
	unsigned char *buf = NULL;
	int rank, nranks, rc = NNH5_OK;

	*out = NULL;
	*size = 0;
	MPI_Comm_rank(comm, &rank);
	MPI_Comm_size(comm, &nranks);
	if (root < 0 || root >= nranks)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': root %d is not a rank of the %d",
				   path ? path : "(null)", root, nranks);
	if (!path || !*path)
		return nnh5__error(NNH5_ERR_INVALID, "open: empty path");
	if (rank == root)
		rc = read_whole(&buf, size, path, cap);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc)
		return rc;
	MPI_Bcast(size, 1, MPI_UINT64_T, root, comm);
	if (rank != root && *size > 0 && !(buf = nnh5__malloc((size_t)*size)))
		rc = nnh5__nomem();
	rc = nnh5__mpi_agree(comm, rc);
	for (uint64_t done = 0; !rc && done < *size; done += piece) {
		uint64_t n = *size - done < piece ? *size - done : piece;
		if (MPI_Bcast(buf + done, (int)n, MPI_BYTE, root, comm) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO, "open '%s': MPI_Bcast failed", path);
	}
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

int nnh5_mpi_load_state_dict(nnh5_dict **out, MPI_Comm comm, int root, const char *path,
			     const char *name)
{
	unsigned char *buf;
	uint64_t size;
	nnh5_file *f;
	bool done = false;
	int rc;

	*out = NULL;
	rc = bcast_whole(&buf, &size, comm, root, path, load_cap(NULL));
	if (rc)
		return rc;
	/*
	 * A whole file nnh5 wrote is read from the image as nnh5_load_state_dict
	 * reads it from disk (lib/file/load_direct.c), with the same policy;
	 * anything else, or a group in it, goes through HDF5's API.
	 */
	if (!name || strcmp(name, "/") == 0)
		nnh5__load_direct_image(&done, out, buf, (size_t)size, path, NULL,
					NNH5__DIRECT_STATE_DICT);
	if (!done) {
		rc = nnh5_file_open_image(&f, buf, (size_t)size, path, NULL);
		if (!rc) {
			rc = nnh5_file_read_state_dict(out, f, name ? name : "/");
			nnh5_file_close(f);
		}
	}
	nnh5__free(buf);
	rc = nnh5__mpi_agree(comm, rc);
	if (rc) {
		nnh5_dict_free(*out);
		*out = NULL;
	}
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
