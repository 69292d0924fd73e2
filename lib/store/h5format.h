/*
 * lib/store/h5format.h - encode the metadata of a new HDF5 file directly in
 * the HDF5 file format (specification version 3.0), without HDF5's object
 * layer, for the simple layout nnh5 saves (doc/FORMAT.md, "Direct HDF5
 * writer"): groups and contiguous datasets, scalar numeric attributes, 1-d
 * uint64 array attributes and variable-length UTF-8 string attributes.
 *
 * What is encoded is what HDF5 1.10 writes with libver bounds (V18, V18)
 * and nnh5's property lists: superblock version 2, version-2 object headers
 * with lookup3 checksums and no times, links tracked and indexed in
 * creation order (stored compactly as link messages, each marked UTF-8),
 * attributes tracked and indexed in creation order on groups, version-3
 * attribute messages, and the strings of string attributes in global heap
 * collections. A caller builds the tree (root first), calls
 * nnh5__h5w_layout() for the addresses, writes the datasets' data at
 * nnh5__h5w_data_addr(), sets their checksum attributes, and writes the
 * image of nnh5__h5w_encode() at offset 0.
 *
 * Strings and names given to the builder are borrowed: they must outlive it.
 */
#ifndef NNH5_H5FORMAT_H
#define NNH5_H5FORMAT_H

#include "core/internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nnh5__h5w nnh5__h5w;

/* Largest attribute message HDF5 keeps in an object header (H5O_MESG_MAX_SIZE). */
#define NNH5__H5W_MESG_MAX 65536u
/* The root group's object index. */
#define NNH5__H5W_ROOT 0u
/* No such child (nnh5__h5w_child()). */
#define NNH5__H5W_NONE ((uint32_t)-1)

/*
 * A builder holding only the root group. Errors: NNH5_ERR_NOMEM.
 * Free with nnh5__h5w_free() (NULL-safe).
 */
int nnh5__h5w_new(nnh5__h5w **out);
void nnh5__h5w_free(nnh5__h5w *w);

/*
 * A new group (or dataset) named name[0..len) as the next link of the
 * group parent; *out is its object index. The name must not be a child of
 * parent yet (the caller checks with nnh5__h5w_child()). A dataset's shape
 * is copied; nbytes is its data's size. Errors: NNH5_ERR_NOMEM,
 * NNH5_ERR_OVERFLOW (more than 2^31 objects).
 */
int nnh5__h5w_group(uint32_t *out, nnh5__h5w *w, uint32_t parent, const char *name, size_t len);
int nnh5__h5w_dataset(uint32_t *out, nnh5__h5w *w, uint32_t parent, const char *name, size_t len,
		      nnh5_dtype dtype, size_t ndim, const int64_t *shape, uint64_t nbytes);

/* The child of parent named name[0..len), or NNH5__H5W_NONE; *is_group says its kind. */
uint32_t nnh5__h5w_child(const nnh5__h5w *w, uint32_t parent, const char *name, size_t len,
			 bool *is_group);

/*
 * Attributes of object obj, in creation order: a scalar int64, uint64
 * (*index receives its handle for nnh5__h5w_set_u64(); may be NULL), a
 * scalar variable-length UTF-8 string, or a 1-d array of n of them; a
 * 1-d array of n uint64 (v borrowed, as strings are).
 * Errors: NNH5_ERR_NOMEM.
 */
int nnh5__h5w_attr_u64s(nnh5__h5w *w, uint32_t obj, const char *name, const uint64_t *v, size_t n);
int nnh5__h5w_attr_i64(nnh5__h5w *w, uint32_t obj, const char *name, int64_t v);
int nnh5__h5w_attr_u64(size_t *index, nnh5__h5w *w, uint32_t obj, const char *name, uint64_t v);
int nnh5__h5w_attr_str(nnh5__h5w *w, uint32_t obj, const char *name, const char *v);
int nnh5__h5w_attr_strs(nnh5__h5w *w, uint32_t obj, const char *name, const char *const *v,
			size_t n);
void nnh5__h5w_set_u64(nnh5__h5w *w, size_t index, uint64_t v);

/* The number of links of group obj, and the most links any group has. */
uint32_t nnh5__h5w_links(const nnh5__h5w *w, uint32_t obj);
uint32_t nnh5__h5w_most_links(const nnh5__h5w *w);

/* Bytes of the attribute message of n strings named name (HDF5 stores it dense from 64 KiB). */
size_t nnh5__h5w_strs_message_size(const char *name, size_t n);

/*
 * Give every object, heap and dataset its address: the metadata (superblock,
 * object headers, global heaps) first, then the data, datasets of at least
 * align bytes aligned to align, smaller ones to their element size (a lazy
 * map views them in place). *meta_size is the bytes of the metadata image,
 * *file_size the whole file's. Errors: NNH5_ERR_OVERFLOW (an object header
 * larger than HDF5's metadata cache takes).
 */
int nnh5__h5w_layout(uint64_t *meta_size, uint64_t *file_size, nnh5__h5w *w, uint64_t align);

/* Where dataset obj's data goes (after nnh5__h5w_layout()); UINT64_MAX when it has none. */
uint64_t nnh5__h5w_data_addr(const nnh5__h5w *w, uint32_t obj);

/*
 * The metadata image (meta_size bytes from offset 0 of the file), into buf
 * of cap bytes. Errors: NNH5_ERR_INVALID (cap too small).
 */
int nnh5__h5w_encode(const nnh5__h5w *w, unsigned char *buf, size_t cap);

/*
 * The other layout, for files whose data is written before their metadata
 * is known (collective saves, lib/mpi): the caller gives each dataset's
 * data address (nnh5__h5w_set_data_addr(), any time before the layout),
 * leaving bytes [0, 48) of the file for the superblock;
 * nnh5__h5w_layout_after() places the object headers and global heaps from
 * base on (base >= 48, past all data), *meta_size bytes, the file ending at
 * base + *meta_size. nnh5__h5w_encode_after() encodes the 48 superblock
 * bytes (for offset 0) and the rest (for offset base, cap >= *meta_size).
 * A builder may be laid out more than once (each layout replaces the last).
 * Errors as nnh5__h5w_layout() and nnh5__h5w_encode().
 */
#define NNH5__H5W_SUPERBLOCK 48u
void nnh5__h5w_set_data_addr(nnh5__h5w *w, uint32_t obj, uint64_t addr);
int nnh5__h5w_layout_after(uint64_t *meta_size, nnh5__h5w *w, uint64_t base);
int nnh5__h5w_encode_after(const nnh5__h5w *w, unsigned char *superblock, unsigned char *buf,
			   size_t cap);

/* HDF5's metadata checksum (Jenkins lookup3, H5_checksum_metadata with seed 0). */
uint32_t nnh5__h5_checksum(const void *data, size_t n);

#endif /* NNH5_H5FORMAT_H */
