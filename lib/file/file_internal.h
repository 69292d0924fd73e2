/*
 * lib/file/file_internal.h - what other library modules (models, checkpoints,
 * tools) may use of an open file beyond the public API: attributes with
 * reserved "nnh5_" names, string-array attributes, plain groups, and state
 * dicts stored under another kind.
 */
#ifndef NNH5_FILE_INTERNAL_H
#define NNH5_FILE_INTERNAL_H

#include "core/internal.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"

#include <hdf5.h>

/* The HDF5 file id (borrowed; valid until the file is closed). */
hid_t nnh5__file_hid(nnh5_file *f);

/* true if f was opened with NNH5_CREATE and is still writable. */
bool nnh5__file_writable(const nnh5_file *f);

/* Create the group name (and missing parents), tracking creation order. */
int nnh5__file_create_group(nnh5_file *f, const char *name);

/*
 * Write sd as a state dict at name with nnh5_kind = kind ("state_dict",
 * "model", "checkpoint"): the layout of nnh5_file_write_state_dict().
 */
int nnh5__file_write_state_dict_kind(nnh5_file *f, const char *name, const nnh5_dict *sd,
				     const char *kind);

/*
 * Tied values of d (nnh5_tensor_tied()): for each of its values, the index
 * of the first earlier one it is tied to, or SIZE_MAX; *out NULL when none
 * is tied (free with nnh5__free). Errors: NNH5_ERR_NOMEM.
 */
int nnh5__dict_ties(size_t **out, const nnh5_dict *d);

/*
 * A hard link at path (from the root; missing parent groups created) to
 * the dataset at target, written before: a tie stored once, as the savers
 * store one. Errors: those of the write checks, NNH5_ERR_HDF5 naming both.
 */
int nnh5__file_link_tie(nnh5_file *f, const char *path, const char *target);

/* Attribute setters without the reserved-name check (for "nnh5_" names). */
int nnh5__file_set_attr_string(nnh5_file *f, const char *obj, const char *name,
			       const char *value);
int nnh5__file_set_attr_int(nnh5_file *f, const char *obj, const char *name, int64_t value);
int nnh5__file_set_attr_float(nnh5_file *f, const char *obj, const char *name, double value);

/* A 1-d attribute of n variable-length UTF-8 strings. */
int nnh5__file_set_attr_strings(nnh5_file *f, const char *obj, const char *name,
				const char *const *values, size_t n);
/*
 * Read a 1-d (or scalar) string attribute into a new array of n new strings;
 * free with nnh5__strings_free(*out, *n).
 */
int nnh5__file_get_attr_strings(char ***out, size_t *n, nnh5_file *f, const char *obj,
				const char *name);
void nnh5__strings_free(char **strings, size_t n);

/* true if the object at obj has an attribute called name. */
bool nnh5__file_has_attr(nnh5_file *f, const char *obj, const char *name);

/* ------------------------------------------------------------------ */
/* The handle's internals: for the files of lib/file/ (and, through    */
/* file/walk.h, the untrusted check's walk in lib/inspect/).           */

#include "store/atomic.h"
#include "store/h5util.h"
#include "store/policy.h"

#define FORMAT_VERSION 1
/* Datasets of at least this size start on this boundary, so they can be mapped from disk. */
#define ALIGNMENT 4096
/* The most memory HDF5's metadata cache may take per file open for reading, and for writing. */
#define METADATA_CACHE ((size_t)2 << 20)
#define WRITE_METADATA_CACHE ((size_t)256 << 10)
/* Groups keep up to this many links in their object header (compact storage). */
#define LINKS_COMPACT 32
/* Deepest group nesting a writer creates (readers: the policy's max_depth). */
#define MAX_DEPTH 64

struct nnh5_file {
	hid_t fid;
	char *path;
	nnh5_mode mode;
	nnh5__atomic atomic;
	hid_t lcpl;         /* every link created: names marked UTF-8 */
	hid_t gcpl;         /* groups: creation order tracked and indexed */
	hid_t dcpl_contig;  /* every dataset: contiguous, no fill (doc/FORMAT.md) */
	int compression;    /* the profile of tensors written (nnh5_compression) */
	hid_t ftype[NNH5_DTYPE_COUNT];
	/*
	 * A write failed part-way: the file may hold a half-written object, so
	 * it must never be committed, even if later calls succeed.
	 */
	bool failed;
	/* Reading: check stored checksums; refuse tensors without one. */
	bool verify_checksums;
	bool require_checksums;
	/* Reading: the load policy's limits and what this handle has read. */
	nnh5__policy policy;
	/*
	 * Fast data transfer (lib/store/rawio.c): HDF5's own descriptor of the file
	 * (sec2 driver), through which contiguous data is written and read
	 * with pwrite/pread straight from and into tensors; -1 if unavailable.
	 */
	int raw_fd;
	hid_t scalar_space; /* for the checksum attribute of every dataset written */
	/*
	 * Link access for every by-name open: refuses external links unless the
	 * options allow them (0 until first used: nnh5__file_lapl()).
	 */
	hid_t lapl;
	/*
	 * Reading a group: the arena its tensors are loaded into
	 * (nnh5__file_read_group()); NULL otherwise, so tensors read one by one
	 * never share a block.
	 */
	nnh5__arena *arena;
};

/*
 * Handles whose HDF5 file another module opens (lib/mpi/ opens it with the
 * MPI-IO driver), made of the same parts as nnh5_file_open_ext()'s:
 * nnh5__file_new() makes the handle (and, for NNH5_CREATE, its property
 * lists) without opening anything; the caller creates or opens f->fid with
 * nnh5__file_fcpl() and a file access list given nnh5__file_fapl_setup(),
 * then calls nnh5__file_started() (the header of a new file; the checks and
 * the policy of a file read). nnh5__file_release() frees a handle whose fid
 * the caller has closed.
 */
int nnh5__file_new(nnh5_file **out, const char *path, nnh5_mode mode,
		   const nnh5_open_options *opts);
hid_t nnh5__file_fcpl(void);
int nnh5__file_fapl_setup(hid_t fapl, nnh5_mode mode);
int nnh5__file_started(nnh5_file *f);
void nnh5__file_release(nnh5_file *f);

/* The dataset attribute holding nnh5_tensor_checksum() of its data. */
#define NNH5__CHECKSUM_ATTR "nnh5_xxh3"

/*
 * Pieces of the writer (lib/file/file_write.c) a collective writer reuses
 * so its datasets are the serial writer's: the group at path (created with
 * its missing parents; "" or "/" is the root) into *out; the HDF5 file type
 * of dtype (borrowed from f); the scalar checksum attribute of a dataset
 * that has none yet (0 or -1 with HDF5's error stack set); the attribute
 * saying a dataset holds bfloat16 (a no-op for other dtypes).
 */
int nnh5__file_open_group(hid_t *out, nnh5_file *f, const char *path);
hid_t nnh5__file_type(nnh5_file *f, nnh5_dtype dtype);
int nnh5__file_put_checksum(nnh5_file *f, hid_t did, uint64_t sum);
/* The block checksum table of a dataset: its block size, then count entries (0 or -1 as above). */
int nnh5__file_put_block_table(nnh5_file *f, hid_t did, const uint64_t *table, uint64_t count,
			       uint64_t block_bytes);
int nnh5__file_put_dtype_attr(nnh5_file *f, hid_t did, nnh5_dtype dtype, const char *display);
/* Split the object path name into its parent path (into buf of n bytes) and leaf (returned). */
const char *nnh5__file_split_leaf(char *buf, size_t n, const char *name);

#define ENTER nnh5__h5quiet quiet_; nnh5__h5_quiet_begin(&quiet_)
#define LEAVE(rc) do { int rc_ = (rc); nnh5__h5_quiet_end(&quiet_); return rc_; } while (0)


/* "" or "/": the root group. */
bool nnh5__file_is_root(const char *name);
/* Object paths: optional leading '/', components neither empty, "." nor "..". */
int nnh5__file_check_path(const nnh5_file *f, const char *name);

/*
 * A name about to be written (the len bytes at name): refused with
 * NNH5_ERR_INVALID, naming what it is and why, unless it obeys the rule a
 * load applies (store/policy.h, nnh5__name_problem()).
 */
int nnh5__file_check_new_name(const nnh5_file *f, const char *what, const char *name,
			      size_t len);

/* nnh5__file_check_path(), and every component of name through nnh5__file_check_new_name(). */
int nnh5__file_check_write_path(const nnh5_file *f, const char *name);
/* NNH5_ERR_INVALID unless f is open for writing; what names the refused action. */
int nnh5__file_check_writable(const nnh5_file *f, const char *what);
/*
 * Pass rc through, remembering a failure that may have left partial data in
 * a file being written (refusals before anything was written do not count).
 */
int nnh5__file_note_write(nnh5_file *f, int rc);
/*
 * Does every component of name exist, reached as the walk resolves links
 * (lib/file/walk.c)? Reports the first that does not, or the link refused.
 */
int nnh5__file_check_exists(nnh5_file *f, const char *name);
/* "group/rel" (or "/rel" under the root), for messages. */
void nnh5__file_display_name(char *buf, size_t n, const char *group, const char *rel);
/* The nnh5_kind value of a kind name, or -1. */
int nnh5__kind_from_name(const char *s);

/* ------------------------------------------------------------------ */
/* Reading datasets: walk.c describes them, file_read.c and map.c read */

/*
 * A dataset met by the walk (lib/file/walk.c), described once: what the
 * policy judged (st) and what a reader needs. Filled by the walk; readers
 * never fetch its properties again.
 */
typedef struct nnh5__dataset {
	hid_t id;        /* borrowed: the walk opened it and closes it */
	nnh5__storage st;
	bool tensor;     /* loads as a tensor (dtype, mtype, shape) */
	nnh5_dtype dtype;
	hid_t mtype;     /* the memory type H5Dread converts to (owned) */
	char type_desc[96]; /* "float32", or what the type is when not a tensor */
	size_t ndim;
	int64_t shape[NNH5_MAX_NDIM];
	size_t nbytes;   /* the tensor's bytes in memory */
	/* The stored bytes are the tensor's bytes (same type, same order): no conversion. */
	bool raw;
	/* File offset of contiguous data; UINT64_MAX when the data is not one
	 * allocated block in this file (compact, chunked, external, never written). */
	uint64_t offset;
	/* The nnh5_xxh3 attribute: 1 present (checksum), 0 absent, -1 not looked at. */
	int has_checksum;
	uint64_t checksum;
} nnh5__dataset;

/*
 * Read ds (a tensor) into a new owning tensor, verifying its checksum as
 * f's options say. display names it in messages.
 */
int nnh5__dataset_read(nnh5_tensor **out, nnh5_file *f, nnh5__dataset *ds, const char *display);

/*
 * The stored checksum of ds as f's options ask for it: 1 and *sum when
 * present, 0 when absent, < 0 when malformed or absent while f requires
 * checksums.
 */
int nnh5__dataset_expected_checksum(uint64_t *sum, nnh5_file *f, nnh5__dataset *ds,
				    const char *display);

/*
 * The block checksum table of ds (doc/FORMAT.md, "Block checksums"): 1
 * with *table (count entries, freed by the caller with nnh5__free) and
 * *block_bytes; 0 when ds has neither attribute; NNH5_ERR_FORMAT naming
 * the file, the dataset and the problem when it is malformed (one
 * attribute without the other, not uint64, a block size other than the
 * one nnh5__block_bytes() gives for ds's bytes, a length other than
 * the blocks of ds's bytes). Nothing is allocated before the length
 * passed these checks.
 */
int nnh5__dataset_block_table(uint64_t **table, uint64_t *count, uint64_t *block_bytes,
			      nnh5_file *f, const nnh5__dataset *ds, const char *display);

/*
 * NNH5_ERR_FORMAT unless ds's contiguous data lies inside the file as it is
 * now and below limit (a mapping's length).
 */
int nnh5__dataset_check_bounds(nnh5_file *f, const nnh5__dataset *ds, uint64_t limit,
			       const char *display);

/*
 * Load one tensor dataset met by a walk (ds described, judged and counted;
 * display its path for messages).
 */
typedef int (*nnh5__load_fn)(nnh5_tensor **out, nnh5_file *f, nnh5__dataset *ds,
			     const char *display, void *ctx);

/*
 * Every tensor below the group name, loaded with load, keys joined with
 * sep ('/' for dicts, '.' for state dicts), in stored order: what
 * nnh5_file_read_dict() and nnh5_file_read_state_dict() return.
 */
int nnh5__file_read_group(nnh5_dict **out, nnh5_file *f, const char *name, char sep,
			  nnh5__load_fn load, void *ctx);

/* The tensor at name, loaded with load (nnh5_file_read_tensor(), nnh5_map_tensor()). */
int nnh5__file_read_one(nnh5_tensor **out, nnh5_file *f, const char *name, nnh5__load_fn load,
			void *ctx);

/* The file's size in bytes now (bounds checks of maps). */
int nnh5__file_size(uint64_t *out, nnh5_file *f);

/* Set attribute name on obj (scalar, or 1-d of n values when array). */
int nnh5__file_attr_set(nnh5_file *f, const char *obj, const char *name, hid_t type,
			const void *buf, size_t n, bool array);
/* Set a scalar UTF-8 string attribute (value checked for UTF-8). */
int nnh5__file_attr_put_string(nnh5_file *f, const char *obj, const char *name,
			       const char *value);
/* Read a numeric attribute as int64 (want_int) or double. */
int nnh5__file_attr_get_number(void *out, bool want_int, nnh5_file *f, const char *obj,
			       const char *name);
/*
 * Read a string attribute; with want_scalar, it must hold exactly one string.
 * A list of length 0 of any element type is an empty list (*out non-NULL).
 */
int nnh5__file_attr_get_strings(char ***out, size_t *n, nnh5_file *f, const char *obj,
				const char *name, bool want_scalar);

/* nnh5__file_attr_get_strings() on the open object oid (display names it). */
int nnh5__attr_get_strings_on(char ***out, size_t *n, nnh5_file *f, hid_t oid,
			      const char *display, const char *name, bool want_scalar);

/* "12" -> 12; false for anything but a canonical decimal number (a list's member names). */
bool nnh5__parse_index(const char *s, size_t *out);

#endif /* NNH5_FILE_INTERNAL_H */
