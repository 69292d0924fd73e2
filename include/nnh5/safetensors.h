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
 * Write the tensors of sd to path as the reference writer does: tensors
 * ordered by dtype alignment (descending, the reference's dtype order), then
 * by name; the header padded with spaces to a multiple of 8; n_meta metadata
 * entries (meta_keys[i] -> meta_values[i], may be 0 and NULL) as
 * "__metadata__". The file is replaced atomically (doc/SAVING.md).
 * Errors: NNH5_ERR_TYPE (complex128: no safetensors dtype), NNH5_ERR_INVALID
 * (a key "__metadata__", NULL metadata strings), NNH5_ERR_IO, NNH5_ERR_NOMEM.
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
 * with no index, as save_pretrained does. Each file is replaced atomically,
 * the index last; shards of an earlier save that the new index does not
 * name are left in place. Errors as nnh5_safetensors_save().
 */
NNH5_API int nnh5_safetensors_save_folder(const char *dir, const nnh5_dict *sd,
					  uint64_t max_shard_bytes, size_t n_meta,
					  const char *const *meta_keys,
					  const char *const *meta_values);

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
