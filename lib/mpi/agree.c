/*
 * lib/mpi/agree.c - the same outcome on every rank. A collective call can
 * fail on one rank only (its shard is malformed, its write hit EIO); the
 * others must not go on into the next collective HDF5 call, which would
 * wait forever for the one that left. Every collective function of
 * lib/mpi ends its steps with nnh5__mpi_agree().
 */
#include "mpi/mpi_internal.h"

#include <stdio.h>
#include <string.h>

int nnh5__mpi_fail_transfer;
_Atomic unsigned long nnh5__mpi_agreements;

int nnh5__mpi_agree_max(MPI_Comm comm, int rc, uint64_t *vals, int n)
{
	struct {
		int status;
		char msg[1024];
	} m;
	uint64_t buf[9];
	int rank, size, first;

	if (n < 0 || n > 8)
		return nnh5__error(NNH5_ERR_INVALID, "MPI: %d values to agree on (at most 8)", n);
	if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
		return nnh5__error(NNH5_ERR_INVALID, "MPI: not a valid communicator");
	/*
	 * The lowest failing rank has the largest key: size - rank; a rank
	 * whose failure is not a checksum mismatch comes before every rank
	 * whose failure is (key + size): a mismatch is often the consequence of
	 * another rank's failure (its short read fed a shared checksum chain),
	 * never its cause.
	 */
	for (int i = 0; i < n; i++)
		buf[i] = vals[i];
	buf[n] = rc ? (uint64_t)(size - rank) + (rc == NNH5_ERR_CHECKSUM ? 0 : (uint64_t)size) : 0;
	nnh5__mpi_agreements++;
	if (MPI_Allreduce(MPI_IN_PLACE, buf, n + 1, MPI_UINT64_T, MPI_MAX, comm) != MPI_SUCCESS)
		return nnh5__error(NNH5_ERR_IO, "MPI_Allreduce failed");
	for (int i = 0; i < n; i++)
		vals[i] = buf[i];
	if (buf[n] == 0)
		return NNH5_OK;
	first = size - (int)(buf[n] > (uint64_t)size ? buf[n] - (uint64_t)size : buf[n]);
	memset(&m, 0, sizeof m);
	if (rank == first) {
		m.status = rc;
		snprintf(m.msg, sizeof m.msg, "%s", nnh5_error_message());
	}
	if (MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, first, comm) != MPI_SUCCESS)
		return nnh5__error(rc ? rc : NNH5_ERR_IO, "MPI_Bcast failed");
	m.msg[sizeof m.msg - 1] = '\0';
	/* A message agreed before already names its rank. */
	if (strncmp(m.msg, "rank ", 5) == 0)
		return nnh5__error(m.status, "%s", m.msg);
	return nnh5__error(m.status, "rank %d: %s", first, m.msg);
}

int nnh5__mpi_agree(MPI_Comm comm, int rc)
{
	return nnh5__mpi_agree_max(comm, rc, NULL, 0);
}
