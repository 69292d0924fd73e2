/*
 * lib/mpi/hashchain.c - XXH3-64 of a tensor from pieces on several ranks,
 * by passing the streaming state along (hashchain.h).
 *
 * XXH3's state is a plain structure that holds one pointer: the secret,
 * which for seed 0 is libxxhash's own default secret, at an address that
 * differs between processes. The state travels as bytes and the receiver
 * points it at its own copy of that secret again, taken from a state it
 * resets itself. The ranks of one job run the same library on the same
 * architecture (MPI_BYTE transfers assume it), so the rest of the bytes
 * mean the same on both sides.
 */
#include "mpi/hashchain.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t's layout */
#include <xxhash.h>

void nnh5__hashchain_place(nnh5__hashlink *l, int rank, size_t npieces, const int *holder,
			   const uint64_t *len)
{
	size_t mine = npieces, first = npieces;

	l->in = false;
	l->prev = l->next = -1;
	l->last = false;
	l->sum = 0;
	for (size_t i = 0; i < npieces; i++) {
		if (len[i] > 0 && first == npieces)
			first = i;
		if (holder[i] == rank)
			mine = i;
	}
	if (first == npieces) {
		/* No bytes at all: the first holder alone hashes nothing. */
		l->in = npieces > 0 && holder[0] == rank;
		return;
	}
	if (mine == npieces || len[mine] == 0)
		return;
	l->in = true;
	for (size_t i = mine; i-- > 0;)
		if (len[i] > 0) {
			l->prev = holder[i];
			break;
		}
	for (size_t i = mine + 1; i < npieces; i++)
		if (len[i] > 0) {
			l->next = holder[i];
			break;
		}
}

int nnh5__hashchain_run(uint64_t *sums, nnh5__hashlink *l, size_t n, MPI_Comm comm)
{
	XXH3_state_t st, fresh;
	int rc = NNH5_OK;

	XXH3_64bits_reset(&fresh);
	for (size_t i = 0; i < n; i++) {
		if (!l[i].in)
			continue;
		if (l[i].prev < 0) {
			XXH3_64bits_reset(&st);
		} else {
			if (MPI_Recv(&st, (int)sizeof st, MPI_BYTE, l[i].prev, NNH5__HASHCHAIN_TAG,
				     comm, MPI_STATUS_IGNORE) != MPI_SUCCESS)
				rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Recv failed");
			st.extSecret = fresh.extSecret;
		}
		/* Pieces larger than size_t (32-bit hosts) go in parts. */
		const unsigned char *p = l[i].data;
		for (uint64_t done = 0; done < l[i].nbytes;) {
			uint64_t left = l[i].nbytes - done;
			size_t k = left > (SIZE_MAX >> 1) ? (SIZE_MAX >> 1) / l[i].elsize * l[i].elsize
							   : (size_t)left;
			nnh5__checksum_update(&st, p + done, k, l[i].elsize);
			done += k;
		}
		if (l[i].next < 0) {
			l[i].last = true;
			l[i].sum = XXH3_64bits_digest(&st);
		} else if (MPI_Send(&st, (int)sizeof st, MPI_BYTE, l[i].next, NNH5__HASHCHAIN_TAG,
				    comm) != MPI_SUCCESS) {
			rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Send failed");
		}
	}
	if (!sums)
		return rc;
	for (size_t i = 0; i < n; i++)
		sums[i] = l[i].last ? l[i].sum : 0;
	/* int counts: reduce in slices of at most 2^30 values. */
	for (size_t off = 0; off < n;) {
		size_t k = n - off < ((size_t)1 << 30) ? n - off : ((size_t)1 << 30);
		if (MPI_Allreduce(MPI_IN_PLACE, sums + off, (int)k, MPI_UINT64_T, MPI_BOR, comm) !=
		    MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Allreduce failed");
		off += k;
	}
	return rc;
}
