/*
 * nnh5/safetensors.h - read and write safetensors files (Hugging Face).
 *
 * The format (huggingface/safetensors): bytes [0, 8) hold N, a little-endian
 * u64; bytes [8, 8 + N) a UTF-8 JSON object
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32",
 *    "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * and the rest is the data buffer; offsets are relative to it. Validation
 * follows the reference reader (doc/FORMATS.md, "safetensors"): N at most
 * 100,000,000; the header valid UTF-8 and valid JSON starting with '{';
 * every tensor's offsets, taken in offset order, start where the previous
 * one ended, its byte count equals the product of its shape times the
 * element size (checked for overflow), and the last one ends at the end of
 * the file; duplicate names are refused; rank 0 and zero-size tensors are
 * fine. A lenient open also accepts whitespace before the '{' and bytes
 * after the last tensor, which real files carry.
 *
 * dtypes: BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64,
 * C64, F8_E4M3 (float8_e4m3fn) and F8_E5M2 map onto nnh5 dtypes; F8_E8M0,
 * F8_E4M3FNUZ, F8_E5M2FNUZ, F6_E2M3, F6_E3M2 and F4 are refused with a
 * message naming the dtype, the tensor and the file.
 */
#ifndef NNH5_SAFETENSORS_H
#define NNH5_SAFETENSORS_H

#include "common.h"
#include "dict.h"
#include "file.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An open safetensors file (read-only, memory-mapped). */
typedef struct nnh5_safetensors nnh5_safetensors;

#define NNH5_SAFETENSORS_OPTIONS_VERSION 1

typedef struct nnh5_safetensors_options {
	unsigned version; /* NNH5_SAFETENSORS_OPTIONS_VERSION */
	/* Accept whitespace before the header's '{' and bytes after the data. */
	bool lenient;
} nnh5_safetensors_options;

#define NNH5_SAFETENSORS_OPTIONS_INIT { NNH5_SAFETENSORS_OPTIONS_VERSION, false }

/*
 * Open path read-only: map it and validate the header (nothing else is read
 * until a tensor is asked for). opts may be NULL (the defaults). The file
 * must not be truncated by anyone while it is open (the mapping would fault).
 * Close with nnh5_safetensors_close(). Errors: NNH5_ERR_NOT_FOUND,
 * NNH5_ERR_INVALID (not a regular file, bad options), NNH5_ERR_IO,
 * NNH5_ERR_FORMAT (anything the validation refuses), NNH5_ERR_TYPE (a dtype
 * nnh5 cannot represent, or a rank above NNH5_MAX_NDIM), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_safetensors_open(nnh5_safetensors **out, const char *path,
				   const nnh5_safetensors_options *opts);

/*
 * The same over size bytes at data (borrowed: they must stay valid and
 * unchanged until the handle is closed); name is used in messages.
 */
NNH5_API int nnh5_safetensors_open_buffer(nnh5_safetensors **out, const void *data, size_t size,
					  const char *name, const nnh5_safetensors_options *opts);

/* Unmap and free. Tensors handed out as views must not be used after. NULL is a no-op. */
NNH5_API void nnh5_safetensors_close(nnh5_safetensors *st);

/* Number of tensors. */
NNH5_API size_t nnh5_safetensors_len(const nnh5_safetensors *st);

/* Name of tensor i (i < len), in data-offset order; borrowed from st. */
NNH5_API const char *nnh5_safetensors_name(const nnh5_safetensors *st, size_t i);

/*
 * Tensor name as a read-only view of the mapping (no copy), valid while st
 * is open; free it with nnh5_tensor_free(). A tensor whose offset is not a
 * multiple of its element size is copied instead (counted by
 * nnh5_safetensors_copies()). Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_safetensors_get(nnh5_tensor **out, nnh5_safetensors *st, const char *name);

/* How many tensors nnh5_safetensors_get() had to copy because they were not aligned. */
NNH5_API size_t nnh5_safetensors_copies(const nnh5_safetensors *st);

/* The "__metadata__" entries (string to string), in file order; borrowed from st. */
NNH5_API size_t nnh5_safetensors_metadata_len(const nnh5_safetensors *st);
NNH5_API const char *nnh5_safetensors_metadata_key(const nnh5_safetensors *st, size_t i);
NNH5_API const char *nnh5_safetensors_metadata_value(const nnh5_safetensors *st, size_t i);
/* The value of key, or NULL. */
NNH5_API const char *nnh5_safetensors_metadata_get(const nnh5_safetensors *st, const char *key);

/*
 * Load every tensor of path into a new dict (owned copies, in data-offset
 * order). Errors as nnh5_safetensors_open().
 */
NNH5_API int nnh5_safetensors_load(nnh5_dict **out, const char *path,
				   const nnh5_safetensors_options *opts);

/*
 * A safetensors file being written, one tensor at a time, so that memory
 * stays near the largest tensor (nnh5_safetensors_save() is a loop over it).
 * Every tensor is declared at the open (name, dtype, shape: no data), which
 * fixes the file's layout as the reference writer makes it: tensors ordered
 * by dtype alignment (descending, the reference's dtype order), then by
 * name; data offsets that tile the buffer; the header compact JSON padded
 * with spaces to a multiple of 8. Tensors are then put in any order, each
 * written at its own offset; the commit puts the file in place atomically
 * (doc/SAVING.md) once every declared tensor was put. Until the commit the
 * target is untouched; a discard or a failed commit leaves it as it was and
 * removes the temporary file.
 */
typedef struct nnh5_safetensors_writer nnh5_safetensors_writer;

/*
 * Declare n tensors (names[i] of dtypes[i] with ndims[i] dimensions
 * shapes[i][0..ndims[i]-1]; arrays may be NULL when n is 0) and n_meta
 * metadata entries (meta_keys[i] -> meta_values[i], written as
 * "__metadata__"; may be 0 and NULL), and start replacing path: its header
 * is written to a temporary file beside it. Everything is copied: the
 * arrays may be freed once this returns. Finish with
 * nnh5_safetensors_writer_commit() or nnh5_safetensors_writer_discard().
 * Errors: NNH5_ERR_TYPE (a dtype safetensors has none for: complex128),
 * NNH5_ERR_SHAPE (a bad shape: the message names the tensor),
 * NNH5_ERR_INVALID (a NULL name or metadata string, a name "__metadata__",
 * a name declared twice, names or metadata not UTF-8, a header above the
 * format's 100,000,000 bytes; a target that is a folder or device),
 * NNH5_ERR_OVERFLOW, NNH5_ERR_IO, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_safetensors_writer_open(nnh5_safetensors_writer **out, const char *path,
					  size_t n, const char *const *names,
					  const nnh5_dtype *dtypes, const size_t *ndims,
					  const int64_t *const *shapes, size_t n_meta,
					  const char *const *meta_keys,
					  const char *const *meta_values);

/*
 * Write the data of the declared tensor name from t (borrowed: it may be
 * freed once this returns), at the tensor's offset in the file. Any order;
 * each tensor once. A refused put writes nothing and the writer stays
 * usable. Errors: NNH5_ERR_NOT_FOUND (name was not declared),
 * NNH5_ERR_INVALID (put twice; NULL name or t), NNH5_ERR_TYPE (t's dtype is
 * not the declared one), NNH5_ERR_SHAPE (nor its shape); each message names
 * the tensor. NNH5_ERR_IO (the write failed: the writer can only be
 * discarded, every later put and the commit fail).
 */
NNH5_API int nnh5_safetensors_writer_put(nnh5_safetensors_writer *w, const char *name,
					 const nnh5_tensor *t);

/*
 * Put the file in place of the target (fsync, rename, fsync of the folder)
 * if every declared tensor was put, and free w in every case: on failure
 * the target is untouched and the temporary file removed. Errors:
 * NNH5_ERR_INVALID (a declared tensor was never put: the message names one;
 * w NULL), NNH5_ERR_IO (an earlier put failed, or the commit itself).
 */
NNH5_API int nnh5_safetensors_writer_commit(nnh5_safetensors_writer *w);

/* Abandon the file: the temporary file is removed, the target untouched, w freed. NULL is a no-op. */
NNH5_API void nnh5_safetensors_writer_discard(nnh5_safetensors_writer *w);

/*
 * Write the tensors of sd to path as the reference writer does (see
 * nnh5_safetensors_writer above: one writer, one layout) with n_meta
 * metadata entries (may be 0 and NULL). The file is replaced atomically
 * (doc/SAVING.md). Errors as nnh5_safetensors_writer_open().
 */
NNH5_API int nnh5_safetensors_save(const char *path, const nnh5_dict *sd, size_t n_meta,
				   const char *const *meta_keys, const char *const *meta_values);

/*
 * Write sd as a Hugging Face folder dir (created if missing): shards
 * "model-0000k-of-0000N.safetensors" of at most max_shard_bytes of tensor
 * data each (0: 5,000,000,000, Hugging Face's default), split as
 * huggingface_hub splits a state dict (in sd's order; a tensor that would
 * tip a shard over the limit starts the next; a larger tensor is a shard of
 * its own), each written as nnh5_safetensors_save() writes (the metadata in
 * every shard), then "model.safetensors.index.json" as transformers writes
 * it ({"metadata": {"total_size": bytes}, "weight_map": {name: shard}},
 * sorted keys, indent 2). A single shard is written as "model.safetensors"
 * with no index, as save_pretrained does. Every tensor is checked before
 * anything is written; each file is replaced atomically, the index last;
 * shards of an earlier save that the new index does not name are left in
 * place. Errors as nnh5_safetensors_save().
 */
NNH5_API int nnh5_safetensors_save_folder(const char *dir, const nnh5_dict *sd,
					  uint64_t max_shard_bytes, size_t n_meta,
					  const char *const *meta_keys,
					  const char *const *meta_values);

/*
 * nnh5_safetensors_save_folder() with the n tensors declared as
 * nnh5_safetensors_writer_open() declares them (in the order that decides
 * the shards) and their data fetched one at a time: shard by shard, one
 * writer open at a time, fetch(&t, i, ctx) is called for each tensor of the
 * shard in increasing i, and t (owning or a view) is written and freed
 * before the next fetch, so memory stays near the largest tensor. The
 * shards need the sizes only. Errors as nnh5_safetensors_writer_open() and
 * _put() (a fetched tensor unlike its declaration: NNH5_ERR_TYPE,
 * NNH5_ERR_SHAPE), NNH5_ERR_INVALID (a fetch that gives no tensor), and
 * fetch's own status, which stops the save (shards already written stay).
 */
NNH5_API int nnh5_safetensors_save_folder_stream(const char *dir, size_t n,
						 const char *const *names,
						 const nnh5_dtype *dtypes, const size_t *ndims,
						 const int64_t *const *shapes,
						 uint64_t max_shard_bytes, size_t n_meta,
						 const char *const *meta_keys,
						 const char *const *meta_values,
						 nnh5_tensor_source_fn fetch, void *ctx);

/*
 * Load a Hugging Face folder: with "model.safetensors.index.json", every
 * shard its weight_map names (file names in dir only), each tensor checked
 * against the index (a tensor the index puts in another shard or nowhere,
 * or an index entry no shard holds, is refused); without an index,
 * "model.safetensors". Tensors are copies, in shard-name then offset order.
 * metadata.total_size is not checked (real indexes disagree with it).
 * Errors as nnh5_safetensors_open(); NNH5_ERR_FORMAT for a bad index.
 */
NNH5_API int nnh5_safetensors_load_folder(nnh5_dict **out, const char *dir,
					  const nnh5_safetensors_options *opts);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_SAFETENSORS_H */
