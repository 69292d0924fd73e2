/*
 * lib/store/h5read.h - read the metadata of an HDF5 file in bulk, without
 * HDF5's object layer, when it is exactly what nnh5's writers produce
 * (doc/FORMAT.md, "Direct HDF5 reader"): the mirror of store/h5format.h.
 *
 * Accepted, and nothing else: superblock version 2 or 3 (8-byte offsets and
 * lengths, no extension, flags 0, end-of-file address equal to the file's
 * size); version-2 object headers with valid lookup3 checksums and no
 * times, in one chunk or with continuation chunks; groups whose links are
 * hard links stored compactly as link messages (listed in creation order); contiguous datasets of
 * nnh5's dtypes (the exact datatype bytes h5format.c writes) with a version-2
 * dataspace; compact attributes (version 3) that are scalar 64-bit integers
 * or variable-length UTF-8 strings held in global heap collections (the
 * root's may be in dense storage: see nnh5__h5r_root). Every
 * length, count, offset and address is checked against what was read and
 * the file's size; object headers, heaps and data must not overlap; an
 * object reached twice (an alias or a cycle) is refused.
 *
 * Anything else makes nnh5__h5r_open() return 1 ("not this reader's file"):
 * its caller then reads the file through HDF5's API, which gives the
 * file's real result or error. This module never reports a file's problems.
 */
#ifndef NNH5_H5READ_H
#define NNH5_H5READ_H

#include "core/internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NNH5__H5R_NONE ((uint32_t)-1)

/* A string in a global heap collection (nnh5__h5r_string()). */
typedef struct nnh5__h5r_str {
	uint64_t coll;
	uint32_t index, len;
} nnh5__h5r_str;

/* One object of the tree, in pre-order (the walk's order): the root is object 0. */
typedef struct nnh5__h5r_obj {
	uint64_t addr;           /* object header */
	uint32_t parent;         /* NNH5__H5R_NONE for the root */
	uint32_t depth;          /* 0 for the root */
	size_t name;             /* offset of its link name (NUL-terminated) in names */
	size_t namelen;
	bool group;
	/* datasets */
	int dtype;
	unsigned ndim;
	size_t dims;             /* offset of its shape in shapes */
	uint64_t data_addr;      /* UINT64_MAX: not allocated */
	uint64_t data_size;      /* the layout's size */
	bool has_sum;
	uint64_t sum;            /* nnh5_xxh3 */
} nnh5__h5r_obj;

/*
 * The root group's nnh5 attributes. With dense_attrs they are in dense
 * storage (a fractal heap and B-trees: a key list too large for an object
 * header), which this reader does not parse: the caller reads them through
 * HDF5's API, and the other fields are unset.
 */
typedef struct nnh5__h5r_root {
	bool dense_attrs;
	bool has_version, has_kind, has_keys;
	int64_t version;
	nnh5__h5r_str kind;
	size_t keys;   /* first of its strings in strs */
	size_t nkeys;
} nnh5__h5r_root;

typedef struct nnh5__h5r {
	int fd;
	uint64_t file_size;
	nnh5__h5r_obj *o;
	size_t n, cap;
	char *names;
	size_t names_len, names_cap;
	int64_t *shapes;
	size_t nshapes, shapes_cap;
	nnh5__h5r_str *strs;
	size_t nstrs, strs_cap;
	nnh5__h5r_root root;
	/* private: reading */
	unsigned char *pre;      /* bytes [0, pre_len) of the file */
	size_t pre_len, pre_cap;
	unsigned char *far;      /* bytes [far_at, far_at + far_len) */
	uint64_t far_at;
	size_t far_len, far_cap;
	uint64_t *seen;          /* object header addresses met (open addressing) */
	size_t seen_cap, nseen;
	struct nnh5__h5r_ext *ext; /* extents of metadata and data */
	size_t next, ext_cap;
	struct nnh5__h5r_heap *heaps;
	size_t nheaps, heaps_cap;
	uint64_t heap_bytes;
	size_t moves;            /* times pre or far were reallocated or refilled */
	size_t max_depth;
} nnh5__h5r;

/*
 * Parse the file open as fd (file_size bytes) into r (zero it first).
 * max_depth bounds the nesting of groups the parse follows (the walk's
 * recursion). Returns NNH5_OK, or 1 when the file is not one this reader
 * takes (or memory ran out): the error state is left untouched. Free r
 * with nnh5__h5r_free() in every case.
 */
int nnh5__h5r_open(nnh5__h5r *r, int fd, uint64_t file_size, size_t max_depth);

void nnh5__h5r_free(nnh5__h5r *r);

/*
 * Free what only the parse and nnh5__h5r_string() need (the file's bytes
 * read so far, the heaps, the extent and address tables), keeping the
 * objects, names and shapes: a load drops them before it allocates its
 * tensors. nnh5__h5r_string() declines afterwards.
 */
void nnh5__h5r_release(nnh5__h5r *r);

/*
 * The bytes of a heap string (not NUL-terminated, without NUL bytes),
 * borrowed from r. Returns 1 when the string is not there as
 * this reader takes it (a missing object, a length that differs, ...).
 */
int nnh5__h5r_string(const char **out, nnh5__h5r *r, const nnh5__h5r_str *s);

/* Object i's link name (the root's is ""), and shape. */
const char *nnh5__h5r_name(const nnh5__h5r *r, uint32_t i);
const int64_t *nnh5__h5r_shape(const nnh5__h5r *r, uint32_t i);

/* The nnh5 dtype of the datatype message body b[0..n), or -1 (store/h5format.c's bytes). */
int nnh5__h5_dtype_of_bytes(const unsigned char *b, size_t n);

/* Whether b[0..n) is the variable-length UTF-8 string type h5format.c writes. */
bool nnh5__h5_is_vlen_utf8(const unsigned char *b, size_t n);

#endif /* NNH5_H5READ_H */
