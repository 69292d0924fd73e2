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
#include "core/xxh.h"

void nnh5__hashchain_place(nnh5__hashlink *l, int rank, size_t npieces, const int *holder,
			   const uint64_t *len)
{
	size_t mine = npieces, first = npieces;

	l->in = false;
	l->prev = l->next = -1;
	l->from_start = false;
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
			l->from_start = i == first;
			break;
		}
	for (size_t i = mine + 1; i < npieces; i++)
		if (len[i] > 0) {
			l->next = holder[i];
			break;
		}
}

void nnh5__hashchain_place_blocks(nnh5__hashlink *l, uint64_t first, uint64_t count,
				  uint64_t block_bytes, int rank, size_t npieces, const int *holder,
				  const uint64_t *len, const void *data, size_t elsize)
{
	size_t mine = npieces;
	uint64_t start = 0, at = 0, prev_start = 0;
	int prev = -1, next = -1;

	memset(l, 0, count * sizeof *l);
	for (uint64_t b = 0; b < count; b++)
		l[b].prev = l[b].next = -1;
	for (size_t i = 0; i < npieces; i++) {
		if (len[i] > 0 && mine == npieces && holder[i] == rank) {
			mine = i;
			start = at;
		} else if (len[i] > 0 && mine == npieces) {
			prev = holder[i];
			prev_start = at;
		} else if (len[i] > 0 && next < 0 && mine != npieces) {
			next = holder[i];
		}
		at += len[i];
	}
	if (mine == npieces || !data)
		return;
	uint64_t end = start + len[mine];
	for (uint64_t j = 0; j < count; j++) {
		uint64_t lo = (first + j) * block_bytes, hi = lo + block_bytes;
		if (hi <= start || lo >= end)
			continue;
		nnh5__hashlink *k = &l[j];
		k->in = true;
		k->elsize = elsize;
		k->data = (const unsigned char *)data + (lo > start ? lo - start : 0);
		k->nbytes = (hi < end ? hi : end) - (lo > start ? lo : start);
		/* The pieces are contiguous: a block this piece does not start or end continues on its neighbour. */
		k->prev = lo < start ? prev : -1;
		k->from_start = lo < start && lo >= prev_start;
		k->next = hi > end ? next : -1;
	}
}

/* Hash link l's bytes into st, continuing the state received from l->prev. */
static int hash_link(XXH3_state_t *st, nnh5__hashlink *l, const XXH3_state_t *fresh, MPI_Comm comm)
{
	int rc = NNH5_OK;

	if (l->prev < 0) {
		XXH3_64bits_reset(st);
	} else {
		if (MPI_Recv(st, (int)sizeof *st, MPI_BYTE, l->prev,
			     NNH5__HASHCHAIN_TAG + !l->from_start, comm,
			     MPI_STATUS_IGNORE) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Recv failed");
		st->extSecret = fresh->extSecret;
	}
	/* Pieces larger than size_t (32-bit hosts) go in parts. */
	const unsigned char *p = l->data;
	for (uint64_t done = 0; done < l->nbytes;) {
		uint64_t left = l->nbytes - done;
		size_t k = left > (SIZE_MAX >> 1) ? (SIZE_MAX >> 1) / l->elsize * l->elsize
						   : (size_t)left;
		nnh5__checksum_update(st, p + done, k, l->elsize);
		done += k;
	}
	if (l->next < 0) {
		l->last = true;
		l->sum = XXH3_64bits_digest(st);
	}
	return rc;
}

int nnh5__hashchain_run(uint64_t *sums, nnh5__hashlink *l, size_t n, MPI_Comm comm)
{
	XXH3_state_t st, fresh;
	int rc = NNH5_OK;
	size_t nsend = 0, posted = 0;
	unsigned char *raw = NULL;
	XXH3_state_t *out = NULL;
	MPI_Request *req = NULL;

	XXH3_64bits_reset(&fresh);
	for (size_t i = 0; i < n; i++)
		nsend += l[i].in && l[i].next >= 0;
	/* XXH3_state_t wants 64-byte alignment; the allocator gives less. */
	if (nsend) {
		raw = nnh5__malloc(nsend * sizeof *out + 64);
		req = nnh5__calloc(nsend, sizeof *req);
		if (raw && req)
			out = (XXH3_state_t *)(void *)(raw + (64 - (uintptr_t)raw % 64) % 64);
	}
	if (!nsend || out) {
		/* Chains this rank starts and passes on, those it holds alone, those it continues. */
		for (int pass = 0; pass < 3; pass++)
			for (size_t i = 0; i < n; i++) {
				nnh5__hashlink *x = &l[i];
				int which = !x->in ? -1 : x->prev >= 0 ? 2 : x->next >= 0 ? 0 : 1;
				if (which != pass)
					continue;
				XXH3_state_t *s = x->next >= 0 ? &out[posted] : &st;
				int hrc = hash_link(s, x, &fresh, comm);
				rc = rc ? rc : hrc;
				if (x->next >= 0 && MPI_Isend(s, (int)sizeof *s, MPI_BYTE, x->next,
							      NNH5__HASHCHAIN_TAG + (x->prev >= 0), comm,
							      &req[posted++]) != MPI_SUCCESS)
					rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Isend failed");
			}
		if (posted && MPI_Waitall((int)posted, req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Waitall failed");
	} else {
		for (size_t i = 0; i < n; i++) {
			if (!l[i].in)
				continue;
			int hrc = hash_link(&st, &l[i], &fresh, comm);
			rc = rc ? rc : hrc;
			if (l[i].next >= 0 && MPI_Send(&st, (int)sizeof st, MPI_BYTE, l[i].next,
						       NNH5__HASHCHAIN_TAG + (l[i].prev >= 0),
						       comm) != MPI_SUCCESS)
				rc = nnh5__error(NNH5_ERR_IO, "checksum chain: MPI_Send failed");
		}
	}
	nnh5__free(raw);
	nnh5__free(req);
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
