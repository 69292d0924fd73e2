/*
 * nnh5/file.h - an open nnh5 (HDF5) file holding many named objects.
 *
 * A file opened with NNH5_CREATE is written to a temporary file beside the
 * target; nnh5_file_close() flushes it, fsyncs it, renames it over the target
 * and fsyncs the folder. Until then the target is untouched, and a crash at
 * any moment leaves either the old file or the new one, never a torn one.
 * nnh5_file_discard() abandons the writes.
 *
 * Objects are named by paths inside the file ("x", "mydict", "models/net");
 * missing intermediate groups are created. Containers (lists, dicts, state
 * dicts) may be written at the root with the name "/".
 *
 * Reading accepts files nnh5 did not write: a plain HDF5 file made by h5py,
 * with any nesting of groups and big- or little-endian numbers, loads as
 * tensors, dicts and state dicts by walking its groups (doc/FORMAT.md).
 *
 * A handle must not be used by two threads at once; different handles may.
 */
#ifndef NNH5_FILE_H
#define NNH5_FILE_H

#include "dict.h"
#include "list.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_file nnh5_file;

typedef enum nnh5_mode {
	NNH5_READ = 0,   /* read an existing file */
	NNH5_CREATE = 1, /* write a new file that atomically replaces the target on close */
} nnh5_mode;

/* What an object in a file is (the nnh5_kind attribute, or inferred). Pinned values. */
typedef enum nnh5_kind {
	NNH5_KIND_TENSOR = 1,     /* a dataset */
	NNH5_KIND_LIST = 2,       /* a group of datasets "0", "1", ... */
	NNH5_KIND_DICT = 3,       /* a group of datasets keyed by name */
	NNH5_KIND_STATE_DICT = 4, /* a group of nested groups keyed by layer name */
	NNH5_KIND_GROUP = 5,      /* a group without an nnh5 kind (e.g. written by h5py) */
	NNH5_KIND_MODEL = 6,      /* a state dict with its architecture (nnh5/nn.h) */
	NNH5_KIND_CHECKPOINT = 7, /* a training checkpoint */
} nnh5_kind;

/* "tensor", "list", "dict", "state_dict", "group", "model", "checkpoint"; "unknown". */
NNH5_API const char *nnh5_kind_name(int kind);

#define NNH5_OPEN_OPTIONS_VERSION 1

/*
 * Compression profiles of a save (doc/FORMATS.md, "Compression"). Values
 * are pinned. Every profile is lossless; a file written with any of them
 * loads with the default options.
 */
typedef enum nnh5_compression {
	NNH5_COMPRESSION_NONE = 0,    /* contiguous, uncompressed: mappable (the default) */
	/* byte shuffle + LZ4 (plugin 32004); shuffle + deflate level 1 without the plugin */
	NNH5_COMPRESSION_FAST = 1,
	/* blosc with zstd, level 5, byte shuffle (plugin 32001); shuffle + deflate 6 without it */
	NNH5_COMPRESSION_ARCHIVE = 2,
} nnh5_compression;

/* "none", "fast", "archive"; "unknown" for other values. Static storage. */
NNH5_API const char *nnh5_compression_name(int profile);

/*
 * The filters profile writes on this machine: "none", "shuffle+lz4",
 * "shuffle+deflate(1)" (fast without the LZ4 plugin),
 * "blosc(zstd,5,shuffle)", "shuffle+deflate(6)" (archive without the blosc
 * plugin); "unknown" for other values. Static storage.
 */
NNH5_API const char *nnh5_compression_filters(int profile);

/* Options of nnh5_file_open_ext(). Initialise with NNH5_OPEN_OPTIONS_INIT. */
typedef struct nnh5_open_options {
	unsigned int version; /* NNH5_OPEN_OPTIONS_VERSION */
	/*
	 * NNH5_CREATE: fsync the file and its folder on close (default true).
	 * Turning it off keeps the temporary-file-and-rename protocol (no torn
	 * file after a process crash) but not durability across a power cut.
	 */
	bool durable;
	/*
	 * NNH5_READ: compare every tensor read against the checksum stored with
	 * it (default true); a mismatch fails the read with NNH5_ERR_CHECKSUM.
	 * Hashing runs at memory speed (XXH3); turning it off saves that pass.
	 */
	bool verify_checksums;
	/*
	 * NNH5_READ: refuse tensors stored without a checksum (default false,
	 * so files from h5py or other writers load; checkpoints turn it on).
	 */
	bool require_checksums;
	/*
	 * The load policy (NNH5_READ; doc/SECURITY.md).
	 * Safe by default: every check below runs before any data of a dataset
	 * is read, and a refusal names the file and the object.
	 *
	 * allow_external: follow external links and read external raw storage
	 * and virtual datasets, all of which make HDF5 open other files chosen
	 * by the file's author (default false: refused with NNH5_ERR_UNSAFE).
	 * Data found in other files is not checked against this file's size
	 * nor for overlaps.
	 */
	bool allow_external;
	/*
	 * allow_filter_plugins: read datasets whose filters are not those nnh5
	 * writes (deflate, shuffle, fletcher32, and the LZ4 and blosc plugins
	 * nnh5 loads itself from HDF5's plugin folder, with the parameters nnh5
	 * writes: doc/SECURITY.md, "Trusted filters"), letting HDF5 load filter plugins (shared
	 * libraries from HDF5_PLUGIN_PATH) to decode them. Default false: such
	 * datasets are refused with NNH5_ERR_UNSAFE, and while nnh5 reads a
	 * dataset it turns HDF5's plugin loading off with
	 * H5PLset_loading_state(0) and restores the previous state right after.
	 * That state is process-wide: another thread that needs a plugin
	 * during that read is refused by HDF5.
	 */
	bool allow_filter_plugins;
	/*
	 * Limits (0 means the default). A dataset's logical size (elements x
	 * element size, computed with overflow checks) is compared with them
	 * before its memory is allocated.
	 * max_tensor_bytes: one tensor (default 16 GiB).
	 * max_load_bytes: every tensor materialised through this handle
	 * (default 64 GiB). A load that meets a dataset under a second name (an
	 * alias: a hard link, as nnh5 writes tied tensors, or a soft link)
	 * gives it back tied to the first (nnh5_tensor_share(): one buffer),
	 * which counts once; with copy_aliases each further name is a copy
	 * that counts again, and the copies of aliases in one load may not
	 * exceed the file's size. Reading a name again in a later call does
	 * not count again (doc/FORMAT.md, "Aliases").
	 * max_compression_ratio: chunked data may declare at most this many
	 * times the bytes it stores, plus 64 KiB (default 100; deflate can pack
	 * zeros about 1000:1).
	 * max_groups, max_tensors, max_depth: what one walk (read_dict,
	 * read_state_dict, read_list, models, the map, nnh5_file_walk())
	 * visits: groups (default 10,000),
	 * datasets (default 100,000), nesting (default 64, at most 256).
	 * max_name_length: bytes in one link name (default 1024).
	 */
	uint64_t max_tensor_bytes;
	uint64_t max_load_bytes;
	uint64_t max_compression_ratio;
	uint64_t max_groups;
	uint64_t max_tensors;
	uint64_t max_depth;
	uint64_t max_name_length;
	/*
	 * NNH5_READ: load every name of a dataset met twice in one load as its
	 * own copy instead of a tensor tied to the first (default false).
	 */
	bool copy_aliases;
	/*
	 * NNH5_CREATE: the compression profile (nnh5_compression) of every
	 * tensor written through this handle (default NNH5_COMPRESSION_NONE).
	 * Compressed tensors are chunked (chunks of whole rows, at most 1 MiB)
	 * with their filters marked optional; scalars, empty tensors and
	 * tensors under 1 KiB stay contiguous. Checksums are over the tensor's
	 * elements, as always. Compressed tensors are read, not mapped, by
	 * nnh5/map.h. Unknown values: NNH5_ERR_INVALID at the open.
	 */
	int compression;
} nnh5_open_options;

#define NNH5_OPEN_OPTIONS_INIT                                                         \
	{ NNH5_OPEN_OPTIONS_VERSION, true, true, false, false, false, 0, 0, 0, 0, 0, 0, 0, false, \
	  NNH5_COMPRESSION_NONE }

/*
 * Open path. With NNH5_READ the file must exist, be a regular file (a
 * symbolic link to one is fine) and be HDF5: a FIFO, device, folder or
 * socket is refused before HDF5 opens it, without blocking, and the file
 * HDF5 opened must be the one judged (same device and inode). With
 * NNH5_CREATE its folder must exist and be writable (an existing file at
 * path is replaced only when nnh5_file_close() succeeds): a symbolic link
 * at path is followed and the file it leads to replaced, keeping its mode
 * and owner; a folder, device, FIFO or socket there is refused
 * (NNH5_ERR_INVALID), and so is a file this process could not write in
 * place (NNH5_ERR_IO) (doc/SAVING.md, "What a save replaces").
 * *out is freed by nnh5_file_close() or nnh5_file_discard().
 * Errors: NNH5_ERR_NOT_FOUND (no such file), NNH5_ERR_INVALID (not a regular
 * file: the message says what it is), NNH5_ERR_FORMAT (not HDF5 or
 * damaged), NNH5_ERR_IO (cannot create the temporary file; the file was
 * replaced while being opened), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_file_open(nnh5_file **out, const char *path, nnh5_mode mode);

/* nnh5_file_open() with options; opts NULL means defaults. Errors: as above,
 * NNH5_ERR_INVALID for an unknown options version. */
NNH5_API int nnh5_file_open_ext(nnh5_file **out, const char *path, nnh5_mode mode,
				const nnh5_open_options *opts);

/*
 * Open an HDF5 file held in memory (size bytes at data) for reading, with
 * HDF5's core driver: nothing is read from or written to disk. The bytes
 * are copied; the caller keeps data. name is used in messages only
 * (NULL: "(memory)"). The load policy applies as for files on disk;
 * opts NULL means defaults (durable is ignored).
 * *out is freed by nnh5_file_close().
 * Errors: NNH5_ERR_INVALID (data NULL with size > 0), NNH5_ERR_FORMAT (not
 * HDF5 or damaged), NNH5_ERR_NOMEM, NNH5_ERR_HDF5.
 */
NNH5_API int nnh5_file_open_image(nnh5_file **out, const void *data, size_t size,
				  const char *name, const nnh5_open_options *opts);

/*
 * Close f and free it. For NNH5_CREATE, commit: the new file replaces the
 * target atomically. If committing fails, the target keeps its previous
 * content and no temporary file remains. If any earlier write on f failed
 * part-way (an I/O or HDF5 error, out of memory), close does not commit:
 * the target is left unchanged and NNH5_ERR_IO is returned. Refusals that
 * write nothing (an invalid name, an existing object) do not prevent the
 * commit. NULL is a no-op returning NNH5_OK.
 * Errors: NNH5_ERR_IO (an earlier write failed; flush, fsync or rename
 * failed), NNH5_ERR_HDF5.
 */
NNH5_API int nnh5_file_close(nnh5_file *f);

/* Close f without committing: the target is untouched. NULL is a no-op. */
NNH5_API void nnh5_file_discard(nnh5_file *f);

/* The target path f was opened with (borrowed). */
NNH5_API const char *nnh5_file_path(const nnh5_file *f);

/* true if an object (group or dataset) exists at name. */
NNH5_API bool nnh5_file_has(nnh5_file *f, const char *name);

/*
 * What the object at name is: its nnh5_kind attribute if it has one, else
 * NNH5_KIND_TENSOR for a dataset and NNH5_KIND_GROUP for a group.
 * Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_FORMAT (unknown nnh5_kind value).
 */
NNH5_API int nnh5_file_kind(nnh5_kind *out, nnh5_file *f, const char *name);

/*
 * Write t as the dataset name. t's elements are written straight from its
 * memory (no copy).
 * Errors: NNH5_ERR_INVALID (bad name, file opened for reading, a bool
 * tensor whose memory holds a byte other than 0 or 1: doc/FORMAT.md, "bool";
 * nothing is written then), NNH5_ERR_EXISTS (name taken), NNH5_ERR_HDF5,
 * NNH5_ERR_IO.
 */
NNH5_API int nnh5_file_write_tensor(nnh5_file *f, const char *name, const nnh5_tensor *t);

/*
 * Read the dataset name into a new owning tensor. The load policy (see
 * nnh5_open_options) checks the dataset before any of its data is read;
 * contiguous data is then read straight into the tensor (nnh5/map.h maps it
 * instead, without reading).
 * Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_FORMAT (a group, a null dataspace,
 * stored size unlike the declared one, data outside the file, bool data
 * holding a byte other than 0 or 1: doc/FORMAT.md, "bool"),
 * NNH5_ERR_TYPE (a datatype nnh5 does not load: the message names it),
 * NNH5_ERR_CHECKSUM (the data does not match its stored checksum, or it has
 * none and the file was opened with require_checksums), NNH5_ERR_UNSAFE
 * (an external link on the way, storage that reads other files, a filter
 * nnh5 does not allow, compressed beyond max_compression_ratio, data
 * overlapping another dataset's), NNH5_ERR_OVERFLOW (a size that overflows
 * or exceeds max_tensor_bytes or max_load_bytes), NNH5_ERR_NOMEM,
 * NNH5_ERR_HDF5.
 */
NNH5_API int nnh5_file_read_tensor(nnh5_tensor **out, nnh5_file *f, const char *name);

/*
 * Check the stored key order of the group at name (its nnh5_keys attribute:
 * dicts, lists, state dicts, models, checkpoint sections; doc/FORMAT.md)
 * against the tensors below it, as nnh5_file_read_dict() and
 * nnh5_file_read_state_dict() do before they order what they loaded, but
 * without reading any tensor data and without counting anything against
 * the handle's load limits. *listed tells whether the group has a list; a
 * group without one passes.
 * Errors: NNH5_ERR_FORMAT (a key listed twice, or a listed key missing while
 * a tensor goes unlisted: a damaged list; a list that is not UTF-8 strings;
 * not a group), and those of the walk (nnh5/walk.h) that a load of the
 * group would meet first.
 */
NNH5_API int nnh5_file_check_keys(bool *listed, nnh5_file *f, const char *name);

/*
 * The checksum stored with the dataset at name (doc/FORMAT.md, "Checksums"):
 * *present is false (and *sum 0) for a dataset written without one.
 * Reading the tensor with verify_checksums on compares its data with it.
 * Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_FORMAT (not a dataset, or a
 * malformed checksum attribute).
 */
NNH5_API int nnh5_file_stored_checksum(uint64_t *sum, bool *present, nnh5_file *f,
				       const char *name);

/*
 * Check t, the tensor read from the dataset at name, against the
 * dataset's block checksums (doc/FORMAT.md, "Block checksums"), which
 * serial reads do not consult: *present is false for a dataset without a
 * table (nothing is compared). t is borrowed.
 * Errors: NNH5_ERR_CHECKSUM (a block of t does not match its entry; the
 * message names the dataset and the block index), NNH5_ERR_FORMAT (a
 * malformed table, not a dataset), NNH5_ERR_INVALID (t does not have the
 * dataset's dtype and size), NNH5_ERR_NOT_FOUND.
 */
NNH5_API int nnh5_file_check_blocks(bool *present, nnh5_file *f, const char *name,
				    const nnh5_tensor *t);

/* Write list as the group name: datasets "0", "1", ... Errors as write_tensor. */
NNH5_API int nnh5_file_write_list(nnh5_file *f, const char *name, const nnh5_list *list);

/*
 * Read the group name as a list: its datasets must be named 0..n-1 (read in
 * numeric order: "10" after "9").
 * Errors: NNH5_ERR_FORMAT (other members, gaps), and those of read_tensor.
 */
NNH5_API int nnh5_file_read_list(nnh5_list **out, nnh5_file *f, const char *name);

/*
 * Write dict as the group name, one dataset per key, insertion order kept.
 * Keys must be non-empty, contain no '/' and not be "." or "..".
 * Errors: NNH5_ERR_INVALID (the message names the key), and those of write_tensor.
 */
NNH5_API int nnh5_file_write_dict(nnh5_file *f, const char *name, const nnh5_dict *dict);

/*
 * Read the group name as a dict, in the order it was written (or, for files
 * from other writers, creation order when tracked, else name order). Datasets
 * in nested groups get keys joined with '/' ("sub/x").
 * Errors: NNH5_ERR_FORMAT (not a group, a link cycle, a name that is not
 * UTF-8 or holds control characters, a damaged nnh5_keys list),
 * NNH5_ERR_UNSAFE (an external or user-defined link, a soft link to a
 * group), NNH5_ERR_OVERFLOW (more groups, datasets, depth or name bytes
 * than the open options allow), and those of read_tensor.
 */
NNH5_API int nnh5_file_read_dict(nnh5_dict **out, nnh5_file *f, const char *name);

/*
 * Write a state dict as the group name: key "hidden.weight" becomes the
 * dataset name/hidden/weight, one subgroup per module level, order kept.
 * Keys must be non-empty, have no empty component ("a..b", ".a", "a."),
 * contain no '/', and no key may be a prefix module of another ("a" and
 * "a.b"). Errors: NNH5_ERR_INVALID (the message names the key), and those
 * of write_tensor.
 */
NNH5_API int nnh5_file_write_state_dict(nnh5_file *f, const char *name, const nnh5_dict *sd);

/*
 * Supplies the tensor of key i to nnh5_file_write_state_dict_stream(): a new
 * tensor in *out (owning or a view), which the writer frees once written.
 * A non-zero return stops the write and is returned.
 */
typedef int (*nnh5_tensor_source_fn)(nnh5_tensor **out, size_t i, void *ctx);

/*
 * nnh5_file_write_state_dict() with the tensors fetched one at a time:
 * keys[0..n-1] are checked as that function checks a dict's keys (and
 * must be distinct), then fetch is called for i = 0, 1, ... and each
 * tensor is written and freed before the next is fetched, so memory stays
 * near the largest tensor (conversions of files larger than memory).
 * Same layout and key order as nnh5_file_write_state_dict().
 * Errors: those of nnh5_file_write_state_dict(); NNH5_ERR_INVALID for a
 * key given twice or a fetch that gives no tensor; fetch's own status.
 */
NNH5_API int nnh5_file_write_state_dict_stream(nnh5_file *f, const char *name,
					       const char *const *keys, size_t n,
					       nnh5_tensor_source_fn fetch, void *ctx);

/*
 * Read the group name as a state dict: every dataset below it, with keys
 * made of the group path joined with '.', in the order written (or, for
 * other writers, creation order when tracked, else name order, depth first).
 * Errors: as read_dict.
 */
NNH5_API int nnh5_file_read_state_dict(nnh5_dict **out, nnh5_file *f, const char *name);

/*
 * Attributes (metadata) on the object at obj ("/" for the file itself).
 * Strings are stored as variable-length UTF-8 (h5py reads them as str),
 * integers as int64, floats as float64. Setting replaces an existing
 * attribute of that name. Names starting with "nnh5_" are reserved.
 * Errors: NNH5_ERR_NOT_FOUND (no object), NNH5_ERR_INVALID (reserved name,
 * read-only file, string not valid UTF-8), NNH5_ERR_HDF5.
 */
NNH5_API int nnh5_file_set_attr_string(nnh5_file *f, const char *obj, const char *name,
				       const char *value);
NNH5_API int nnh5_file_set_attr_int(nnh5_file *f, const char *obj, const char *name,
				    int64_t value);
NNH5_API int nnh5_file_set_attr_float(nnh5_file *f, const char *obj, const char *name,
				      double value);

/*
 * Read an attribute. Strings may be fixed- or variable-length; *out is a new
 * NUL-terminated string the caller frees with nnh5_free(). Integers of any
 * width and sign convert to int64 when they fit; floats read as double.
 * Errors: NNH5_ERR_NOT_FOUND (no object or attribute), NNH5_ERR_TYPE (the
 * attribute holds another type or more than one value), NNH5_ERR_OVERFLOW.
 */
NNH5_API int nnh5_file_get_attr_string(char **out, nnh5_file *f, const char *obj,
				       const char *name);
NNH5_API int nnh5_file_get_attr_int(int64_t *out, nnh5_file *f, const char *obj,
				    const char *name);
NNH5_API int nnh5_file_get_attr_float(double *out, nnh5_file *f, const char *obj,
				      const char *name);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_FILE_H */
