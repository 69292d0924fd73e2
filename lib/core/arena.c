/*
 * lib/core/arena.c - the allocator of loaded tensors (lib/core/internal.h,
 * "Loaded tensors packed into shared blocks"): a load of 12,000 small
 * tensors made 24,000 allocations, each with malloc's header and
 * rounding; blocks shared by the tensors of a load carry none of that.
 */
#include "core/internal.h"

#include <stddef.h>
#include <string.h>

/* What malloc guarantees, so a tensor's data is aligned as it was before. */
#define ALIGN ((size_t)_Alignof(max_align_t))
/* The block's count sits at its start; the first tensor follows, aligned. */
#define BLOCK_HEAD ((sizeof(size_t) + ALIGN - 1) / ALIGN * ALIGN)
#define FIRST_BLOCK ((size_t)32 << 10) /* > NNH5__ARENA_MAX + BLOCK_HEAD */

static size_t round_up(size_t n)
{
	return (n + ALIGN - 1) / ALIGN * ALIGN;
}

void nnh5__arena_end(nnh5__arena *arena)
{
	if (!arena || !arena->block)
		return;
	if (__atomic_sub_fetch((size_t *)(void *)arena->block, 1, __ATOMIC_ACQ_REL) == 0)
		nnh5__free(arena->block);
	arena->block = NULL;
	arena->used = arena->cap = 0;
}

/* Room for size bytes in arena's block, starting a new block if needed. */
static char *arena_take(nnh5__arena *arena, size_t size)
{
	char *p;

	if (!arena->block || arena->cap - arena->used < size) {
		/* Each block twice the last, so a small load keeps a small block. */
		size_t cap = arena->cap ? 2 * arena->cap : FIRST_BLOCK;
		if (cap > NNH5__ARENA_BLOCK)
			cap = NNH5__ARENA_BLOCK;
		char *b = nnh5__malloc(cap);
		if (!b)
			return NULL;
		nnh5__arena_end(arena);
		*(size_t *)(void *)b = 1; /* the arena's own hold */
		arena->block = b;
		arena->used = BLOCK_HEAD;
		arena->cap = cap;
	}
	p = arena->block + arena->used;
	arena->used += size;
	__atomic_add_fetch((size_t *)(void *)arena->block, 1, __ATOMIC_RELAXED);
	return p;
}

int nnh5__tensor_alloc_loaded(nnh5_tensor **out, nnh5__arena *arena, nnh5_dtype dtype,
			      size_t ndim, const int64_t *shape)
{
	size_t numel, nbytes, head;
	nnh5_tensor *t;
	int rc;

	*out = NULL;
	rc = nnh5__shape_size(dtype, ndim, shape, &numel, &nbytes);
	if (rc)
		return rc;
	head = round_up(nnh5__tensor_header_bytes(ndim));
	if (!arena || nbytes > NNH5__ARENA_MAX - head) {
		rc = nnh5__tensor_alloc_header(&t, dtype, ndim, shape);
		if (rc)
			return rc;
		/* No zeroing: the read overwrites every byte. */
		if (t->nbytes && !(t->data = nnh5__malloc_large(t->nbytes))) {
			nnh5__free(t);
			return nnh5__nomem();
		}
		t->owns = true;
		*out = t;
		return NNH5_OK;
	}
	t = (nnh5_tensor *)(void *)arena_take(arena, head + round_up(nbytes));
	if (!t)
		return nnh5__nomem();
	nnh5__tensor_header_init(t, dtype, ndim, shape, numel, nbytes);
	t->data = nbytes ? (char *)t + head : NULL;
	t->refs = (size_t *)(void *)arena->block;
	t->owns = t->in_arena = t->header_in_arena = true;
	*out = t;
	return NNH5_OK;
}
