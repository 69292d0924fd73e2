/*
 * lib/mpi/hashchain.h - the serial checksum of tensors whose bytes are
 * spread over ranks: XXH3-64 of the whole tensor (nnh5_tensor_checksum(),
 * the nnh5_xxh3 attribute) computed over pieces that follow each other in
 * the file and sit on different ranks, by passing XXH3's streaming state
 * from the rank holding one piece to the rank holding the next. No piece
 * is read back from the file and no rank holds more than its own bytes.
 *
 * The same chains, restricted to one block of a tensor, give its block
 * checksums (doc/FORMAT.md, "Block checksums"): a block inside one rank's
 * piece is a chain of that rank alone, and the state travels only across
 * the blocks that straddle a boundary between pieces.
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
	bool from_start;  /* prev began the chain (it sends in its first pass, below) */
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
 * Place this rank in the chains of count blocks of block_bytes bytes of
 * one tensor, from block first on (into l[0..count)), from its pieces in
 * file order as nnh5__hashchain_place() takes them: block b's chain is the
 * parts of the pieces that overlap it. data is this rank's piece (its
 * elements of elsize bytes), NULL when it holds none; block boundaries
 * must fall on element boundaries. Blocks past the tensor's end are left
 * out.
 */
void nnh5__hashchain_place_blocks(nnh5__hashlink *l, uint64_t first, uint64_t count,
				  uint64_t block_bytes, int rank, size_t npieces, const int *holder,
				  const uint64_t *len, const void *data, size_t elsize);

/*
 * Collective over comm (links placed from the same pieces on every rank;
 * with sums non-NULL, the same n): hash the n tensors (or blocks). On
 * return l[i].last and l[i].sum are set on the rank ending chain i; with
 * sums non-NULL, one MPI_Allreduce more gives every rank sums[0..n) (a
 * chain that included no rank gets 0). With sums NULL a rank may pass only
 * the links it takes part in, in the order the others place them. Uses
 * point-to-point messages on comm with tags NNH5__HASHCHAIN_TAG and the
 * next one (states from a chain's first rank, states from a later one:
 * each tag's messages between two ranks are sent and received in link
 * order): give it a communicator no other traffic uses at the same time
 * with those tags. Each rank first starts the chains it
 * begins and passes on (sent without blocking), then hashes the links it
 * holds alone, then continues the chains it receives, in link order: so
 * a rank never waits for another's bytes before hashing its own, and the
 * blocks of a tensor are hashed on all ranks at once. Receives wait only
 * on sends already posted or on receives of earlier links, so nothing
 * deadlocks. Without memory for the pending sends a rank walks its links
 * in order with blocking sends instead (every rank walks the links in the
 * same order, so link t waits only on earlier links): slower, as correct.
 * Returns NNH5_ERR_IO when an MPI call fails (with MPI's default error
 * handler, MPI aborts the job first).
 */
#define NNH5__HASHCHAIN_TAG 0x6e68
int nnh5__hashchain_run(uint64_t *sums, nnh5__hashlink *l, size_t n, MPI_Comm comm);

#endif /* NNH5_MPI_HASHCHAIN_H */
