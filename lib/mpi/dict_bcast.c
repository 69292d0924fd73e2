/*
 * lib/mpi/dict_bcast.c - a dict root holds, given to every rank. Root
 * broadcasts a description of its dict (keys, dtypes, shapes, ties), every
 * other rank allocates the same tensors from it, and the elements go from
 * root's tensors into theirs by MPI_Bcast with an indexed datatype: no
 * rank parses a file again, and no rank copies the bytes through a buffer
 * of its own. The ranks of one job trust each other: root has judged the
 * file (the load policy, the checksums); the others take its result.
 */
#include "mpi/mpi_internal.h"
#include "file/file_internal.h"
#include "nnh5/dict.h"

#include <stdint.h>
#include <string.h>

/* MPI counts are int: every broadcast moves at most this many bytes. */
uint64_t nnh5__mpi_bcast_piece = (uint64_t)1 << 30;
#define PIECE nnh5__mpi_bcast_piece

/*
 * One entry of the description, followed by its shape (ndim int64) and
 * its key (key_len bytes, no NUL). Host byte order: the ranks of one job
 * share it.
 */
struct head {
	uint32_t key_len;
	uint32_t tie; /* 0, or 1 + the index of the earlier entry this one is tied to */
	uint8_t dtype;
	uint8_t ndim;
	uint8_t null; /* the dict holds NULL under this key */
	uint8_t pad[5];
};

int nnh5__mpi_bcast_bytes(void *buf, uint64_t size, MPI_Comm comm, int root)
{
	for (uint64_t done = 0; done < size; done += PIECE) {
		uint64_t n = size - done < PIECE ? size - done : PIECE;
		if (MPI_Bcast((char *)buf + done, (int)n, MPI_BYTE, root, comm) != MPI_SUCCESS)
			return nnh5__error(NNH5_ERR_IO, "MPI_Bcast failed");
	}
	return NNH5_OK;
}

/* Root: tie[i] = 1 + the first entry entry i is tied to (nnh5__dict_ties()), else 0. */
static int find_ties(uint32_t *tie, const nnh5_dict *d, size_t n)
{
	size_t *first;
	int rc = nnh5__dict_ties(&first, d);

	for (size_t i = 0; !rc && i < n; i++)
		tie[i] = first && first[i] != SIZE_MAX ? (uint32_t)(first[i] + 1) : 0;
	nnh5__free(first);
	return rc;
}

/*
 * Root: the description of d in *out (*size bytes) and its ties in *ties
 * (find_ties()); the caller frees both.
 */
static int describe(unsigned char **out, uint64_t *size, uint32_t **ties, const nnh5_dict *d)
{
	size_t n = nnh5_dict_len(d), bytes = sizeof(uint64_t);
	uint32_t *tie = nnh5__malloc((n ? n : 1) * sizeof *tie);
	unsigned char *buf, *p;
	int rc;

	*out = NULL;
	*size = 0;
	*ties = NULL;
	if (!tie)
		return nnh5__nomem();
	if (n > UINT32_MAX - 1) {
		nnh5__free(tie);
		return nnh5__error(NNH5_ERR_OVERFLOW, "MPI: %zu keys, too many to broadcast", n);
	}
	rc = find_ties(tie, d, n);
	for (size_t i = 0; !rc && i < n; i++) {
		const nnh5_tensor *t = nnh5_dict_value(d, i);
		size_t len = strlen(nnh5_dict_key(d, i));
		if (len > UINT32_MAX)
			rc = nnh5__error(NNH5_ERR_OVERFLOW, "MPI: key %zu is too long to broadcast", i);
		bytes += sizeof(struct head) + len + (t ? t->ndim * sizeof(int64_t) : 0);
	}
	if (!rc && !(buf = nnh5__malloc(bytes)))
		rc = nnh5__nomem();
	if (rc) {
		nnh5__free(tie);
		return rc;
	}
	uint64_t count = n;
	memcpy(buf, &count, sizeof count);
	p = buf + sizeof count;
	for (size_t i = 0; i < n; i++) {
		const nnh5_tensor *t = nnh5_dict_value(d, i);
		const char *key = nnh5_dict_key(d, i);
		struct head h = { (uint32_t)strlen(key), tie[i], t ? t->dtype : 0, t ? t->ndim : 0,
				  !t, { 0 } };
		memcpy(p, &h, sizeof h);
		p += sizeof h;
		if (h.ndim) {
			memcpy(p, t->shape, h.ndim * sizeof(int64_t));
			p += h.ndim * sizeof(int64_t);
		}
		memcpy(p, key, h.key_len);
		p += h.key_len;
	}
	*ties = tie;
	*out = buf;
	*size = bytes;
	return NNH5_OK;
}

/*
 * The other ranks: a dict of the tensors desc describes, their elements
 * uninitialised (the broadcast fills them), small ones packed as a load
 * packs them (lib/core/arena.c), and its ties in *ties (the caller frees
 * them, even on failure).
 */
static int build(nnh5_dict **out, uint32_t **ties, const unsigned char *desc, uint64_t size,
		 const char *name)
{
	const unsigned char *p = desc, *end = desc + size;
	nnh5__arena arena = NNH5__ARENA_INIT;
	uint64_t n = 0;
	nnh5_dict *d;
	int rc;

	*out = NULL;
	if (size < sizeof n)
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': MPI: the broadcast description is cut",
				   name);
	memcpy(&n, p, sizeof n);
	p += sizeof n;
	if (n > (size - sizeof n) / sizeof(struct head))
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': MPI: the broadcast description is cut",
				   name);
	if (!(*ties = nnh5__malloc((size_t)(n ? n : 1) * sizeof **ties)))
		return nnh5__nomem();
	rc = nnh5_dict_new(&d);
	if (!rc)
		rc = nnh5__dict_reserve(d, (size_t)n);
	for (uint64_t i = 0; !rc && i < n; i++) {
		struct head h;
		int64_t shape[NNH5_MAX_NDIM];
		nnh5_tensor *t = NULL;
		char *key;

		if ((size_t)(end - p) < sizeof h) {
			rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': MPI: the broadcast description is cut",
					 name);
			break;
		}
		memcpy(&h, p, sizeof h);
		p += sizeof h;
		(*ties)[i] = h.tie;
		if (h.ndim > NNH5_MAX_NDIM || h.tie > i ||
		    (size_t)(end - p) < h.ndim * sizeof(int64_t) + h.key_len) {
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': MPI: entry %llu of the broadcast description is malformed",
					 name, (unsigned long long)i);
			break;
		}
		memcpy(shape, p, h.ndim * sizeof(int64_t));
		p += h.ndim * sizeof(int64_t);
		if (!(key = nnh5__malloc((size_t)h.key_len + 1))) {
			rc = nnh5__nomem();
			break;
		}
		memcpy(key, p, h.key_len);
		key[h.key_len] = '\0';
		p += h.key_len;
		if (h.null)
			rc = NNH5_OK;
		else if (h.tie && !nnh5_dict_value(d, h.tie - 1))
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': MPI: entry %llu of the broadcast description is tied to "
					 "nothing", name, (unsigned long long)i);
		else if (h.tie)
			rc = nnh5_tensor_share(&t, nnh5_dict_value(d, h.tie - 1));
		else
			rc = nnh5__tensor_alloc_loaded(&t, &arena, (nnh5_dtype)h.dtype, h.ndim, shape);
		if (!rc)
			rc = nnh5__dict_adopt(d, key, t);
		if (rc) {
			nnh5__free(key);
			nnh5_tensor_free(t);
		}
	}
	nnh5__arena_end(&arena);
	if (!rc && p != end)
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': MPI: the broadcast description has bytes past its end", name);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

/* The most blocks bcast_elements() makes for d (a bound: tensors and PIECE boundaries). */
static size_t max_blocks(const nnh5_dict *d, const uint32_t *tie)
{
	size_t n = nnh5_dict_len(d), blocks = 1;
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		const nnh5_tensor *t = nnh5_dict_value(d, i);
		if (!tie[i] && t && t->nbytes) {
			blocks++;
			total += t->nbytes;
		}
	}
	return blocks + 2 * (size_t)(total / PIECE) + 2;
}

/*
 * Every rank: the elements of d's tensors but the later names of tied ones
 * (tie[i] != 0), in dict order, broadcast from root's tensors into the
 * others' with hindexed datatypes of at most PIECE bytes each (a tensor
 * larger than that goes in several blocks). lens and disps hold
 * max_blocks() entries, allocated before: nothing here can fail on one
 * rank alone but MPI itself.
 */
static int bcast_elements(const nnh5_dict *d, const uint32_t *tie, int *lens, MPI_Aint *disps,
			  MPI_Comm comm, int root, const char *name)
{
	size_t n = nnh5_dict_len(d), k = 0;
	uint64_t in_group = 0;
	int rc = NNH5_OK;

	for (size_t i = 0; i <= n; i++) {
		const nnh5_tensor *t = i < n && !tie[i] ? nnh5_dict_value(d, i) : NULL;
		uint64_t left = t ? t->nbytes : 0;
		const char *at = t ? t->data : NULL;

		while (left || (i == n && k)) {
			uint64_t take = left < PIECE - in_group ? left : PIECE - in_group;
			if (take) {
				lens[k] = (int)take;
				MPI_Get_address(at, &disps[k]);
				k++;
				in_group += take;
				at += take;
				left -= take;
			}
			if (in_group == PIECE || (i == n && k)) {
				MPI_Datatype type;
				if (MPI_Type_create_hindexed((int)k, lens, disps, MPI_BYTE, &type) !=
					    MPI_SUCCESS ||
				    MPI_Type_commit(&type) != MPI_SUCCESS)
					return nnh5__error(NNH5_ERR_IO, "'%s': MPI: a datatype failed",
							   name);
				if (MPI_Bcast(MPI_BOTTOM, 1, type, root, comm) != MPI_SUCCESS && !rc)
					rc = nnh5__error(NNH5_ERR_IO, "'%s': MPI_Bcast failed", name);
				MPI_Type_free(&type);
				k = 0;
				in_group = 0;
			}
		}
	}
	return rc;
}

int nnh5__mpi_bcast_dict(nnh5_dict **d, MPI_Comm comm, int root, const char *name)
{
	unsigned char *desc = NULL;
	uint32_t *tie = NULL;
	int *lens = NULL;
	MPI_Aint *disps = NULL;
	uint64_t size = 0;
	int rank, rc = NNH5_OK;

	MPI_Comm_rank(comm, &rank);
	if (rank == root)
		rc = describe(&desc, &size, &tie, *d);
	else
		*d = NULL;
	rc = nnh5__mpi_agree_max(comm, rc, &size, 1);
	if (!rc && rank != root && !(desc = nnh5__malloc(size ? size : 1)))
		rc = nnh5__nomem();
	rc = nnh5__mpi_agree(comm, rc);
	if (!rc)
		rc = nnh5__mpi_agree(comm, nnh5__mpi_bcast_bytes(desc, size, comm, root));
	if (!rc && rank != root)
		rc = build(d, &tie, desc, size, name);
	nnh5__free(desc);
	if (!rc) {
		size_t m = max_blocks(*d, tie);
		lens = nnh5__malloc(m * sizeof *lens);
		disps = nnh5__malloc(m * sizeof *disps);
		if (!lens || !disps)
			rc = nnh5__nomem();
	}
	rc = nnh5__mpi_agree(comm, rc);
	if (!rc)
		rc = nnh5__mpi_agree(comm, bcast_elements(*d, tie, lens, disps, comm, root, name));
	nnh5__free(lens);
	nnh5__free(disps);
	nnh5__free(tie);
	if (rc) {
		nnh5_dict_free(*d);
		*d = NULL;
	}
	return rc;
}
