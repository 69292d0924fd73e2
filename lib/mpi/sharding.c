/*
 * lib/mpi/sharding.c - the sharding description (nnh5/mpi.h): which piece
 * of a global tensor a rank holds, the checks that make a malformed one an
 * error rather than a torn tensor, and the compact record kept in the file.
 */
#include "mpi/mpi_internal.h"
#include "store/h5util.h"

#include <stdio.h>
#include <string.h>
#include "core/xxh.h"

int nnh5_mpi_sharding_init(nnh5_mpi_sharding *s, size_t ndim, const int64_t *shape)
{
	memset(s, 0, sizeof *s);
	s->version = NNH5_MPI_SHARDING_VERSION;
	if (ndim > NNH5_MAX_NDIM)
		return nnh5__error(NNH5_ERR_INVALID, "sharding: %zu dimensions (at most %d)", ndim,
				   NNH5_MAX_NDIM);
	s->ndim = ndim;
	for (size_t d = 0; d < ndim; d++) {
		if (shape[d] < 0)
			return nnh5__error(NNH5_ERR_INVALID, "sharding: size %lld of dimension %zu",
					   (long long)shape[d], d);
		s->shape[d] = shape[d];
		s->parts[d] = 1;
	}
	return NNH5_OK;
}

/* Start of piece i of n elements cut into p even pieces (the first n % p hold one more). */
static int64_t even_start(int64_t n, int p, int i)
{
	int64_t q = n / p, r = n % p;

	return i * q + (i < r ? i : r);
}

int64_t nnh5__mpi_piece_start(const nnh5_mpi_sharding *s, size_t d, int i)
{
	return s->bounds[d] ? s->bounds[d][i] : even_start(s->shape[d], s->parts[d], i);
}

int nnh5__mpi_box(int64_t *start, int64_t *count, bool *whole, const nnh5_mpi_sharding *s,
		  const char *file, const char *name)
{
	if (s->version != NNH5_MPI_SHARDING_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': tensor '%s': unknown sharding version %u",
				   file, name, s->version);
	if (s->ndim > NNH5_MAX_NDIM)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': tensor '%s': sharding of %zu dimensions",
				   file, name, s->ndim);
	*whole = true;
	for (size_t d = 0; d < s->ndim; d++) {
		int p = s->parts[d], c = s->coord[d];
		int64_t n = s->shape[d];
		const int64_t *b = s->bounds[d];
		if (n < 0 || p < 1 || c < 0 || c >= p)
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': tensor '%s': dimension %zu: size %lld in %d parts, "
					   "coordinate %d",
					   file, name, d, (long long)n, p, c);
		if (p > 1)
			*whole = false;
		if (!b) {
			start[d] = even_start(n, p, c);
			count[d] = even_start(n, p, c + 1) - start[d];
			continue;
		}
		if (b[0] != 0 || b[p] != n)
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': tensor '%s': dimension %zu: bounds run from %lld to "
					   "%lld, not from 0 to %lld",
					   file, name, d, (long long)b[0], (long long)b[p],
					   (long long)n);
		for (int i = 0; i < p; i++)
			if (b[i + 1] < b[i])
				return nnh5__error(NNH5_ERR_INVALID,
						   "'%s': tensor '%s': dimension %zu: bounds decrease "
						   "at part %d",
						   file, name, d, i);
		start[d] = b[c];
		count[d] = b[c + 1] - b[c];
	}
	return NNH5_OK;
}

int nnh5_mpi_sharding_box(int64_t *start, int64_t *count, const nnh5_mpi_sharding *s)
{
	bool whole;

	return nnh5__mpi_box(start, count, &whole, s, "(sharding)", "(tensor)");
}

uint64_t nnh5__mpi_sharding_digest(const nnh5_mpi_sharding *s, nnh5_dtype dtype,
				   const char *name)
{
	XXH64_state_t *st = XXH64_createState();
	int64_t head[2] = { (int64_t)dtype, (int64_t)s->ndim };
	uint64_t h;

	if (!st)
		return 0;
	XXH64_reset(st, 0);
	XXH64_update(st, head, sizeof head);
	XXH64_update(st, name, strlen(name) + 1);
	for (size_t d = 0; d < s->ndim && d < NNH5_MAX_NDIM; d++) {
		int64_t v[2] = { s->shape[d], s->parts[d] };
		XXH64_update(st, v, sizeof v);
		/* Bounds given explicitly or by the even rule: the same pieces, the same digest. */
		for (int i = 0; i <= s->parts[d] && s->parts[d] > 0; i++) {
			int64_t b = s->bounds[d] ? s->bounds[d][i]
						 : even_start(s->shape[d], s->parts[d], i);
			XXH64_update(st, &b, sizeof b);
		}
	}
	h = XXH64_digest(st);
	XXH64_freeState(st);
	return h;
}

/*
 * {"ranks":P,"parts":[2,3],"bounds":[null,[0,5,7,9]]}: the grid and, for
 * uneven dimensions only, their bounds; O(sum of parts), never a box per
 * rank.
 */
/* sep, then v in decimal: the record is made for every tensor of a save, printf costs. */
static void put_int(nnh5__strbuf *sb, const char *sep, long long v)
{
	char buf[24], *p = buf + sizeof buf;
	unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

	*--p = '\0';
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	nnh5__strbuf_puts(sb, sep);
	nnh5__strbuf_puts(sb, p);
}

char *nnh5__mpi_sharding_record(const nnh5_mpi_sharding *s, int nranks)
{
	nnh5__strbuf sb = { 0 };

	put_int(&sb, "{\"ranks\":", nranks);
	nnh5__strbuf_puts(&sb, ",\"parts\":[");
	for (size_t d = 0; d < s->ndim; d++)
		put_int(&sb, d ? "," : "", s->parts[d]);
	nnh5__strbuf_puts(&sb, "],\"bounds\":[");
	for (size_t d = 0; d < s->ndim; d++) {
		bool even = true;
		for (int i = 0; s->bounds[d] && i <= s->parts[d]; i++)
			even = even && s->bounds[d][i] == even_start(s->shape[d], s->parts[d], i);
		nnh5__strbuf_puts(&sb, d ? "," : "");
		if (even) {
			nnh5__strbuf_puts(&sb, "null");
			continue;
		}
		for (int i = 0; i <= s->parts[d]; i++)
			put_int(&sb, i ? "," : "[", (long long)s->bounds[d][i]);
		nnh5__strbuf_puts(&sb, "]");
	}
	nnh5__strbuf_puts(&sb, "]}");
	if (sb.oom) {
		nnh5__free(sb.p);
		return NULL;
	}
	return sb.p;
}
