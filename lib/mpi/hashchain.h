/*
 * lib/mpi/hashchain.h - the serial checksum of tensors whose bytes are
 * spread over ranks: XXH3-64 of the whole tensor (nnh5_tensor_checksum(),
 * the nnh5_xxh3 attribute) computed over pieces that follow each other in
 * the file and sit on different ranks, by passing XXH3's streaming state
 * from the rank holding one piece to the rank holding the next. No piece
 * is read back from the file and no rank holds more than its own bytes.
 *
 * Many tensors go in one call: every rank walks its links in the same
 * tensor order, so one tensor's messages follow the last one's and the
 * ranks work as a pipeline (a rank hashes tensor t while the next hashes
 * tensor t - 1), not one round of P messages per tensor.
 */
#ifndef NNH5_MPI_HASHCHAIN_H
#define NNH5_MPI_HASHCHAIN_H

#include "core/internal.h"

#include <mpi.h>

/* This rank's place in one tensor's chain. */
typedef struct nnh5__hashlink {
	const void *data; /* this rank's bytes of the tensor (borrowed), or NULL */
	uint64_t nbytes;  /* their length */
	size_t elsize;    /* element size: the byte order of big-endian hosts */
	bool in;          /* this rank takes part in the tensor's chain */
	int prev;         /* the rank hashing the bytes just before, -1 for the first */
	int next;         /* the rank hashing the bytes just after, -1 for the last */
	/* out, on the last rank of the chain: XXH3-64 of the whole tensor */
	bool last;
	uint64_t sum;
} nnh5__hashlink;

/*
 * Place this rank (rank) in a tensor's chain from every piece of it, in
 * file order: piece i of len[i] bytes held by rank holder[i]. Empty pieces
 * are skipped; a tensor with no bytes at all has the chain of its first
 * piece's holder alone (it hashes nothing). A rank must hold at most one
 * piece of a tensor. Sets l->in, prev, next; data, nbytes and elsize are
 * the caller's.
 */
void nnh5__hashchain_place(nnh5__hashlink *l, int rank, size_t npieces, const int *holder,
			   const uint64_t *len);

/*
 * Collective over comm (every rank, the same n, links placed from the
 * same pieces): hash the n tensors. On return l[i].last and l[i].sum are
 * set on the rank ending tensor i's chain; with sums non-NULL, one
 * MPI_Allreduce more gives every rank sums[0..n) (a tensor whose chain
 * included no rank gets 0). Uses point-to-point messages on comm with tag
 * NNH5__HASHCHAIN_TAG: give it a communicator no other traffic uses at
 * the same time with that tag. Blocking sends are safe: every rank walks
 * the tensors in the same order, so the chain of tensor t waits only on
 * chains of earlier tensors. Returns NNH5_ERR_IO when an MPI call fails
 * (with MPI's default error handler, MPI aborts the job first).
 */
#define NNH5__HASHCHAIN_TAG 0x6e68
int nnh5__hashchain_run(uint64_t *sums, nnh5__hashlink *l, size_t n, MPI_Comm comm);

#endif /* NNH5_MPI_HASHCHAIN_H */
