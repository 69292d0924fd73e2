/*
 * lib/mpi/mpi_internal.h - what the files of lib/mpi share: agreeing on an
 * outcome across a communicator, the sharding description's pieces, and
 * the test hook that makes one rank's data transfer fail.
 */
#ifndef NNH5_MPI_INTERNAL_H
#define NNH5_MPI_INTERNAL_H

#include "core/internal.h"
#include "nnh5/mpi.h"

/*
 * Collective: every rank passes its own status; all return the status of
 * the lowest rank that failed (a rank whose status is not
 * NNH5_ERR_CHECKSUM before any whose is), with that rank's message prefixed by
 * "rank R: " on every rank (NNH5_OK when none failed). One MPI_Allreduce;
 * one MPI_Bcast more when a rank failed.
 */
int nnh5__mpi_agree(MPI_Comm comm, int rc);

/*
 * nnh5__mpi_agree() that also reduces vals[0..n) (n <= 8) to their maximum
 * over the ranks in the same MPI_Allreduce.
 */
int nnh5__mpi_agree_max(MPI_Comm comm, int rc, uint64_t *vals, int n);

/*
 * Check s and compute this rank's piece (start, count) and whether the
 * whole tensor is one piece. Records NNH5_ERR_INVALID naming file and name.
 */
int nnh5__mpi_box(int64_t *start, int64_t *count, bool *whole, const nnh5_mpi_sharding *s,
		  const char *file, const char *name);

/*
 * Where piece i (0 <= i <= parts[d]) of dimension d starts under s, which
 * nnh5__mpi_box() accepted: parts[d] gives the dimension's size.
 */
int64_t nnh5__mpi_piece_start(const nnh5_mpi_sharding *s, size_t d, int i);

/*
 * A digest of what every rank must agree on for one write (the name, dtype,
 * global shape, parts, every piece's bounds): equal on two ranks iff they describe
 * the same split (up to XXH64 collisions).
 */
uint64_t nnh5__mpi_sharding_digest(const nnh5_mpi_sharding *s, nnh5_dtype dtype,
				   const char *name);

/* The nnh5_sharding attribute's text for s written by nranks ranks (caller frees). */
char *nnh5__mpi_sharding_record(const nnh5_mpi_sharding *s, int nranks);

/*
 * Collective: root's dict *d on every rank. Root passes its dict (it keeps
 * it); the others get in *d a dict of the same keys, in the same order,
 * of tensors with the same dtypes, shapes, elements and ties (their own,
 * packed as a load packs them), NULL on failure. name names the dict's
 * source in errors. Every rank returns the same status; on failure root's
 * dict is freed too and *d is NULL everywhere. Errors: NNH5_ERR_NOMEM,
 * NNH5_ERR_OVERFLOW (more than 2^32 - 1 keys), NNH5_ERR_IO (MPI failed).
 */
struct nnh5_dict;
int nnh5__mpi_bcast_dict(struct nnh5_dict **d, MPI_Comm comm, int root, const char *name);

/*
 * Collective: size bytes at buf broadcast from root (lib/mpi/dict_bcast.c),
 * nnh5__mpi_bcast_piece at a time. NNH5_ERR_IO, unagreed, when MPI fails.
 */
int nnh5__mpi_bcast_bytes(void *buf, uint64_t size, MPI_Comm comm, int root);

/*
 * The most bytes one broadcast of nnh5__mpi_bcast_dict() or
 * nnh5__mpi_bcast_bytes() moves (1 GiB: MPI counts are int). Lowered by
 * tests/mpi only, to split tensors and groups.
 */
extern uint64_t nnh5__mpi_bcast_piece;

/* The nnh5_file inside a collective file (borrowed), for lib/file's writers. */
nnh5_file *nnh5__mpi_file_handle(nnh5_mpi_file *f);

/*
 * Test hook: when > 0, this rank's n-th data transfer from now fails (it
 * selects nothing, so the collective call completes, and reports
 * NNH5_ERR_IO as a failed write would). Set by tests/mpi only.
 */
extern int nnh5__mpi_fail_transfer;

/*
 * The most links a group of a collectively created file may hold in the
 * direct metadata tree (file_mpi.c); a write that would pass it goes on
 * through Parallel HDF5. Lowered by tests/mpi only.
 */
extern int nnh5__mpi_direct_max_links;

/*
 * How many agreements this process made (nnh5__mpi_agree*() calls and the
 * coverage reduction of a write): tests/mpi checks that a write of T
 * tensors needs a number independent of T. Atomic: a background saving
 * thread counts too.
 */
extern _Atomic unsigned long nnh5__mpi_agreements;

#endif /* NNH5_MPI_INTERNAL_H */
