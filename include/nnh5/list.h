/*
 * nnh5/list.h - an ordered list of tensors (torch.save([x, y])).
 */
#ifndef NNH5_LIST_H
#define NNH5_LIST_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_list nnh5_list;

/* A new empty list. Errors: NNH5_ERR_NOMEM. */
NNH5_API int nnh5_list_new(nnh5_list **out);

/* Free the list and every tensor in it. NULL is a no-op. */
NNH5_API void nnh5_list_free(nnh5_list *list);

/*
 * Append t. On success the list owns t (free the list, not t); on failure
 * the caller still owns t. A tensor held by a dict or a list (this one
 * included) is refused: both would free it.
 * Errors: NNH5_ERR_INVALID (t held elsewhere), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_list_append(nnh5_list *list, nnh5_tensor *t);

NNH5_API size_t nnh5_list_len(const nnh5_list *list);

/* Element i (borrowed, lives as long as the list); NULL if i >= len. */
NNH5_API nnh5_tensor *nnh5_list_get(const nnh5_list *list, size_t i);

/* nnh5_dict_export() for a list: keys are NULL. Errors: those of nnh5_dict_export(). */
NNH5_API int nnh5_list_export(nnh5_tensor_export *out, size_t n, nnh5_list *list,
			      size_t first);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_LIST_H */
