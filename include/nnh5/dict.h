/*
 * nnh5/dict.h - an ordered dictionary of name -> tensor.
 *
 * Keys keep their insertion order (as Python dicts do); lookups are hashed.
 * The same type holds a plain dict ({'x': x, 'y': y}) and a model's state
 * dict ({'hidden.weight': ..., 'hidden.bias': ...}); what differs is how it
 * is stored (see nnh5/file.h and doc/FORMAT.md).
 */
#ifndef NNH5_DICT_H
#define NNH5_DICT_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_dict nnh5_dict;

/* A new empty dict. Errors: NNH5_ERR_NOMEM. */
NNH5_API int nnh5_dict_new(nnh5_dict **out);

/* Free the dict, its keys and every tensor in it. NULL is a no-op. */
NNH5_API void nnh5_dict_free(nnh5_dict *dict);

/*
 * Set key to t. A new key goes to the end; an existing key keeps its place
 * and its old tensor is freed. On success the dict owns t; on failure the
 * caller still owns t. The key is copied. A tensor held by another dict or a
 * list (or by this dict under another key) is refused: both would free it.
 * Errors: NNH5_ERR_INVALID (key NULL, t held elsewhere), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_dict_set(nnh5_dict *dict, const char *key, nnh5_tensor *t);

/*
 * Tie key to target: set key to nnh5_tensor_share() of target's tensor, so
 * both keys name one tensor (GPT-2's nnh5_dict_tie(sd, "lm_head.weight",
 * "transformer.wte.weight")). A save stores target's elements once and key
 * as a hard link to them; a load gives the tie back. Removing or replacing
 * either key later leaves the other with the elements. Errors:
 * NNH5_ERR_NOT_FOUND (target absent), NNH5_ERR_INVALID (key NULL or equal
 * to target, target holds an empty tensor), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_dict_tie(nnh5_dict *dict, const char *key, const char *target);

/*
 * Remove key and free its tensor; the others keep their order.
 * Errors: NNH5_ERR_NOT_FOUND.
 */
NNH5_API int nnh5_dict_remove(nnh5_dict *dict, const char *key);

/*
 * Remove key and hand its tensor to the caller through *out.
 * Errors: NNH5_ERR_NOT_FOUND (*out NULL).
 */
NNH5_API int nnh5_dict_take(nnh5_tensor **out, nnh5_dict *dict, const char *key);

NNH5_API size_t nnh5_dict_len(const nnh5_dict *dict);

/* The tensor of key (borrowed, lives until it is replaced or removed); NULL if absent. */
NNH5_API nnh5_tensor *nnh5_dict_get(const nnh5_dict *dict, const char *key);

/* The i-th key in order (borrowed); NULL if i >= len. */
NNH5_API const char *nnh5_dict_key(const nnh5_dict *dict, size_t i);

/* The i-th tensor in order (borrowed); NULL if i >= len. */
NNH5_API nnh5_tensor *nnh5_dict_value(const nnh5_dict *dict, size_t i);

/*
 * Fill out[0 .. k - 1] with the keys and values first .. first + k - 1 in
 * order, k = min(n, nnh5_dict_len(dict) - first) (a binding pages through a
 * large dict with a small out), each value as a new nnh5_tensor_share() the
 * caller frees with nnh5_tensor_free(): its memory stays alive after the
 * dict is freed, until its last share is freed. Tied values export their
 * one memory (the same data). out[k .. n - 1].tensor is NULL, and so is
 * every out[i].tensor on failure (no share is left).
 * Errors: NNH5_ERR_INVALID (first > nnh5_dict_len(dict)), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_dict_export(nnh5_tensor_export *out, size_t n, nnh5_dict *dict,
			      size_t first);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_DICT_H */
