/*
 * lib/core/internal.h - what the library's modules share and callers never see:
 * the tensor struct, error reporting, the allocator and checked arithmetic.
 */
#ifndef NNH5_INTERNAL_H
#define NNH5_INTERNAL_H

/* Only the public headers every layer needs; a file includes the rest itself. */
#include "nnh5/common.h"
#include "nnh5/dtype.h"
#include "nnh5/tensor.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define NNH5_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NNH5_PRINTF(a, b)
#endif

/*
 * A tensor is this header and, unless it is a view, its data. The shape is
 * stored inline at its exact rank (a flexible array member: 8 bytes a
 * dimension, 48 bytes for a 1-d tensor), so a header is never declared as
 * an object or copied by value: it comes from nnh5__tensor_alloc_header()
 * or nnh5__tensor_alloc_loaded() (lib/core/arena.c), the only allocators
 * that know its size.
 */
struct nnh5_tensor {
	void *data;    /* NULL only when nbytes == 0 */
	size_t numel;
	size_t nbytes;
	/*
	 * Owned data shared by tied tensors (nnh5_tensor_share()): the number
	 * of tensors that own it, freed with the last; NULL while only one does.
	 * For a tensor in a load's arena (in_arena) it is the count at the
	 * start of the arena block holding its data, and the block is what the
	 * last owner frees.
	 */
	size_t *refs;
	uint8_t dtype; /* nnh5_dtype */
	uint8_t ndim;  /* <= NNH5_MAX_NDIM */
	bool owns;     /* data was allocated with nnh5__malloc and is freed with the tensor */
	bool readonly; /* a const view */
	/*
	 * Held by a dict or a list, which frees it: a second container taking
	 * it would free it twice, so nnh5_dict_set() and nnh5_list_append()
	 * refuse a tensor that is held already; nnh5_dict_take() releases it.
	 */
	bool held;
	bool in_arena;      /* the data lies in an arena block (refs is the block) */
	bool header_in_arena; /* this header too: freed with the block, not alone */
	int64_t shape[];    /* ndim entries */
};

/* The bytes of a tensor header of rank ndim (<= NNH5_MAX_NDIM). */
static inline size_t nnh5__tensor_header_bytes(size_t ndim)
{
	return sizeof(struct nnh5_tensor) + ndim * sizeof(int64_t);
}

/* Allocation through the allocator chosen with nnh5_set_allocator(). */
void *nnh5__malloc(size_t size);
void *nnh5__calloc(size_t n, size_t size);
void *nnh5__realloc(void *ptr, size_t size);
void nnh5__free(void *ptr);
char *nnh5__strdup(const char *s);

/*
 * Memory for at least size bytes that will be overwritten whole (a loaded
 * tensor's data), released with nnh5__free(). From NNH5__LARGE_BYTES up,
 * and with the default allocator, it starts on a 2 MiB boundary (a copy
 * into page-aligned memory is faster than into malloc's, 16 bytes past a
 * page) and is advised MADV_HUGEPAGE as nnh5_set_huge_pages() says. From
 * NNH5__POPULATE_BYTES up, with the default allocator, its whole pages are
 * mapped before it is returned (MADV_POPULATE_WRITE, where the kernel has
 * it): one call instead of a page fault per page.
 */
#define NNH5__HUGE_PAGE ((size_t)2 << 20)
#define NNH5__LARGE_BYTES ((size_t)4 << 20)
#define NNH5__POPULATE_BYTES ((size_t)64 << 10)
void *nnh5__malloc_large(size_t size);
/* The same, zeroed: a new tensor's data (nnh5_tensor_new()). */
void *nnh5__calloc_large(size_t size);

/*
 * Whether a virtio-balloon device under driver_dir (sysfs's
 * /sys/bus/virtio/drivers/virtio_balloon) offers free page reporting:
 * NNH5_HUGE_PAGES_AUTO's test. False when nothing can be read.
 */
bool nnh5__free_page_reporting(const char *driver_dir);

/*
 * nnh5_dict_export() and nnh5_list_export(): _check clears out (room for n),
 * sets *rc (NNH5_ERR_INVALID for first > len) and returns how many values
 * from first go into out; _export fills e with t and key and a share of t;
 * _undo frees the shares of out[0 .. len - 1] after a failure.
 */
size_t nnh5__tensor_export_check(int *rc, nnh5_tensor_export *out, size_t n, size_t len,
				 size_t first);
int nnh5__tensor_export(nnh5_tensor_export *e, nnh5_tensor *t, const char *key);
void nnh5__tensor_export_undo(nnh5_tensor_export *out, size_t len);

/*
 * Record a failure for the calling thread and return status, so that
 * callers write: return nnh5__error(NNH5_ERR_INVALID, "...", ...);
 */
int nnh5__error(int status, const char *fmt, ...) NNH5_PRINTF(2, 3);
int nnh5__verror(int status, const char *fmt, va_list ap) NNH5_PRINTF(2, 0);
/* Record out of memory without allocating; returns NNH5_ERR_NOMEM. */
int nnh5__nomem(void);

/*
 * NNH5_ERR_INVALID for a tensor given to a container (what: "dict key",
 * "list item"; key may be NULL) while another container holds it.
 */
int nnh5__held_error(const char *what, const char *key);
/*
 * Prefix the calling thread's current message with "context: " (used to say
 * which file or key a lower-level failure belongs to). Returns status.
 */
int nnh5__error_wrap(int status, const char *fmt, ...) NNH5_PRINTF(2, 3);

/* a * b into *out; false (and *out untouched) on overflow. */
static inline bool nnh5__mul_size(size_t a, size_t b, size_t *out)
{
	size_t r;
	if (__builtin_mul_overflow(a, b, &r))
		return false;
	*out = r;
	return true;
}

/*
 * Validate dtype/ndim/shape and compute numel and nbytes with overflow
 * checks. On failure records the error and returns its status.
 */
int nnh5__shape_size(nnh5_dtype dtype, size_t ndim, const int64_t *shape, size_t *numel,
		     size_t *nbytes);

/* Format "(2, 3)" / "()" into buf of size n; returns buf. */
const char *nnh5__shape_str(char *buf, size_t n, size_t ndim, const int64_t *shape);

/* A growable string (lib/core/strbuf.c); zero-initialise, free p with nnh5__free. */
typedef struct nnh5__strbuf {
	char *p;      /* NUL-terminated once anything was added; NULL before */
	size_t len;
	size_t cap;
	bool oom;     /* an allocation failed: the content is incomplete */
} nnh5__strbuf;

bool nnh5__strbuf_reserve(nnh5__strbuf *sb, size_t extra);
void nnh5__strbuf_putn(nnh5__strbuf *sb, const char *s, size_t n);
void nnh5__strbuf_puts(nnh5__strbuf *sb, const char *s);
void nnh5__strbuf_printf(nnh5__strbuf *sb, const char *fmt, ...) NNH5_PRINTF(2, 3);

/* Fill a header of rank ndim (shape validated, sizes computed): no data, nothing owned. */
void nnh5__tensor_header_init(nnh5_tensor *t, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
			      size_t numel, size_t nbytes);
/* A tensor struct without data yet (shape validated); data set by the caller. */
int nnh5__tensor_alloc_header(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			      const int64_t *shape);

/*
 * For loaders that know how many keys come (lib/file/file_read.c): room
 * for n entries in all, so the dict holds no spare capacity; and
 * nnh5_dict_set() of a new key (not in d) that d takes over instead of
 * copying (allocated with nnh5__malloc(); the caller's again on failure).
 * Errors: NNH5_ERR_NOMEM, d unchanged.
 */
struct nnh5_dict;
int nnh5__dict_reserve(struct nnh5_dict *d, size_t n);
int nnh5__dict_adopt(struct nnh5_dict *d, char *key, nnh5_tensor *t);

/*
 * Loaded tensors packed into shared blocks (lib/core/arena.c). A load of
 * many small tensors would otherwise make two allocations per tensor, its
 * header and its data, each paying the allocator's header and rounding: a
 * load's arena carves both from blocks of up to NNH5__ARENA_BLOCK bytes
 * instead. A block counts the tensors in it (and the arena, while it is
 * filling it); each tensor still frees on its own (nnh5_tensor_free(),
 * from any thread, in any order), and the last one frees the block. Tied
 * copies (nnh5_tensor_share()) count as holders too. Every data pointer
 * is aligned as malloc's are (alignof(max_align_t)). The blocks come from
 * the allocator set with nnh5_set_allocator() and go back to it.
 * Zero-initialise (NNH5__ARENA_INIT); nnh5__arena_end() drops the arena's
 * hold when the load is over (the tensors keep theirs).
 */
typedef struct nnh5__arena {
	char *block;       /* the block being filled; NULL before the first */
	size_t used, cap;  /* bytes of block handed out, and its size */
} nnh5__arena;
#define NNH5__ARENA_INIT { NULL, 0, 0 }
/* Blocks grow from 32 KiB (a load of a few tensors keeps little) to this. */
#define NNH5__ARENA_BLOCK ((size_t)256 << 10)
/* A tensor whose header and data take more than this is allocated alone. */
#define NNH5__ARENA_MAX ((size_t)16 << 10)

/*
 * An owning tensor of this shape whose data (uninitialised: a read
 * overwrites every byte) comes from arena (NULL: no arena): the one
 * allocator of loaded tensors, for every reader. Small tensors lie in
 * arena's block, header and data together; larger ones, or any without an
 * arena, get a header of their own and data from nnh5__malloc_large().
 * Errors: those of nnh5__shape_size(), NNH5_ERR_NOMEM.
 */
int nnh5__tensor_alloc_loaded(nnh5_tensor **out, nnh5__arena *arena, nnh5_dtype dtype,
			      size_t ndim, const int64_t *shape);
/* Drop arena's hold on its block (freed now if no tensor lies in it). NULL-safe. */
void nnh5__arena_end(nnh5__arena *arena);

/*
 * The bool rule (doc/FORMAT.md, "bool"), the one place it is checked: every
 * element of a bool tensor is the byte 0 or 1, in memory and in files. A
 * reader cannot normalise other bytes (a mapped tensor is a view of the
 * file), so readers refuse them and writers never store them. NNH5_OK for
 * other dtypes and for conforming data; otherwise records status with
 * "'<file>': <kind> '<object>' is bool but element <i> holds the byte 0x<nn>
 * (a bool is 0 or 1)", the first such element, and returns status.
 */
int nnh5__check_bool(const nnh5_tensor *t, int status, const char *file, const char *kind,
		     const char *object);

/*
 * XXH3-64 (seed 0) of nbytes of elements of elsize bytes, taken in their
 * little-endian encoding whatever the host (lib/core/checksum.c).
 */
uint64_t nnh5__checksum(const void *data, size_t nbytes, size_t elsize);

/*
 * Add nbytes of elements of elsize bytes to an XXH3-64 streaming state
 * (an XXH3_state_t *, reset with XXH3_64bits_reset) in their stored
 * little-endian order: the pieces of one tensor hashed in order give
 * nnh5__checksum() of the whole.
 */
void nnh5__checksum_update(void *state, const void *data, size_t nbytes, size_t elsize);

/*
 * Block checksums (doc/FORMAT.md, "Block checksums"): XXH3-64 of each
 * block of B bytes of a tensor's stored bytes, B a power-of-two multiple
 * of 16 MiB giving at most 4096 blocks, so that ranks holding different
 * parts of a tensor can verify them in parallel.
 */
#define NNH5__BLOCKS_ATTR "nnh5_xxh3_blocks"
#define NNH5__BLOCK_BYTES_ATTR "nnh5_xxh3_block_bytes"
#define NNH5__BLOCK_MIN ((uint64_t)16 << 20)
#define NNH5__BLOCKS_MAX 4096u

/*
 * The one block size B a table of a tensor of nbytes has (writers use it,
 * readers accept no other), and in *count its number of blocks; 0 (and
 * *count 0) when the tensor has fewer than 2 blocks: no table.
 */
uint64_t nnh5__block_bytes(uint64_t *count, uint64_t nbytes);

/*
 * The index of the first block of data (nbytes of elements of elsize, in
 * blocks of block_bytes) whose checksum differs from table[0..count), or
 * -1 when all match. count must be ceil(nbytes / block_bytes).
 */
int64_t nnh5__blocks_mismatch(const uint64_t *table, uint64_t count, uint64_t block_bytes,
			      const void *data, uint64_t nbytes, size_t elsize);

#endif /* NNH5_INTERNAL_H */
