/*
 * nnh5/tensor.h - n-dimensional arrays: owning tensors and borrowed views.
 *
 * A tensor has a dtype, a rank (0 for a scalar, at most NNH5_MAX_NDIM), a
 * shape (any dimension may be 0) and its elements in row-major (C) order.
 *
 * An owning tensor allocated its elements and frees them in
 * nnh5_tensor_free(). A view borrows the caller's memory: nothing is copied
 * when a view is saved, and the caller keeps that memory alive and unchanged
 * for as long as the view is used. A read-only view (nnh5_tensor_view_const)
 * gives NULL from nnh5_tensor_mutable_data().
 *
 * nnh5_tensor is opaque; read it through the accessors.
 */
#ifndef NNH5_TENSOR_H
#define NNH5_TENSOR_H

#include "common.h"
#include "dtype.h"
#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest rank a tensor may have (HDF5's own limit). */
#define NNH5_MAX_NDIM 32

typedef struct nnh5_tensor nnh5_tensor;

/*
 * A new owning tensor of the given dtype and shape, all elements zero.
 * shape may be NULL when ndim is 0 (a scalar). Data of 4 MiB and more
 * starts on a 2 MiB boundary and is zeroed at once, so all of it is
 * resident on return (smaller data comes from calloc).
 * Errors: NNH5_ERR_INVALID (unknown dtype, ndim > NNH5_MAX_NDIM, negative
 * dimension), NNH5_ERR_OVERFLOW (element count or byte size overflows),
 * NNH5_ERR_NOMEM. *out is set to NULL on failure.
 */
NNH5_API int nnh5_tensor_new(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			     const int64_t *shape);

/* Same as nnh5_tensor_new(): all elements zero (torch.zeros). */
NNH5_API int nnh5_tensor_zeros(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			       const int64_t *shape);

/* All elements one (torch.ones). Errors as nnh5_tensor_new(). */
NNH5_API int nnh5_tensor_ones(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			      const int64_t *shape);

/*
 * All elements set to value, converted to dtype as by nnh5_tensor_set().
 * Errors as nnh5_tensor_new().
 */
NNH5_API int nnh5_tensor_full(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			      const int64_t *shape, double value);

/*
 * A 1-d tensor of start, start+step, ... up to but excluding stop
 * (torch.arange(start, stop, step)); ceil((stop-start)/step) elements.
 * Errors: NNH5_ERR_INVALID (step 0 or not finite, bool dtype),
 * NNH5_ERR_OVERFLOW, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_tensor_arange(nnh5_tensor **out, nnh5_dtype dtype, double start,
				double stop, double step);

/*
 * Standard normal values drawn from rng (torch.randn), in row-major order.
 * Float dtypes only. Errors: NNH5_ERR_INVALID (non-float dtype) and those of
 * nnh5_tensor_new().
 */
NNH5_API int nnh5_tensor_randn(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			       const int64_t *shape, nnh5_rng *rng);

/*
 * Uniform values in [low, high) drawn from rng (torch.rand scaled).
 * Float dtypes only. Errors as nnh5_tensor_randn().
 */
NNH5_API int nnh5_tensor_uniform(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
				 const int64_t *shape, double low, double high,
				 nnh5_rng *rng);

/*
 * A view of the caller's memory as a tensor. data must hold at least
 * nbytes bytes, and nbytes must equal the shape's byte size exactly; data may
 * be NULL only if that size is 0. The caller keeps data alive while the view
 * (or anything that holds it) is in use. Free the view with
 * nnh5_tensor_free(): data is not freed.
 * Errors: NNH5_ERR_SHAPE (nbytes does not match the shape), and those of
 * nnh5_tensor_new().
 */
NNH5_API int nnh5_tensor_view(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			      const int64_t *shape, void *data, size_t nbytes);

/* As nnh5_tensor_view() for memory the library must not write. */
NNH5_API int nnh5_tensor_view_const(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
				    const int64_t *shape, const void *data, size_t nbytes);

/* A deep copy that owns its elements. Errors: NNH5_ERR_NOMEM. */
NNH5_API int nnh5_tensor_clone(nnh5_tensor **out, const nnh5_tensor *t);

/*
 * A copy with the elements converted to dtype (torch's .to(dtype)): floats
 * to integers truncate toward zero, out-of-range values saturate, NaN becomes
 * 0, anything non-zero becomes true. Complex to real keeps the real part,
 * real to complex has imaginary part 0. Errors: NNH5_ERR_INVALID, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_tensor_convert(nnh5_tensor **out, const nnh5_tensor *t, nnh5_dtype dtype);

/*
 * The same elements under another shape with the same element count: a view
 * of t's data (t must outlive it). Errors: NNH5_ERR_SHAPE, NNH5_ERR_INVALID.
 */
NNH5_API int nnh5_tensor_reshape(nnh5_tensor **out, const nnh5_tensor *t, size_t ndim,
				 const int64_t *shape);

/*
 * A second tensor with t's dtype, shape and elements, sharing them: a write
 * through either shows in both (two names of one tensor, like GPT-2's
 * tied "wte.weight" and "lm_head.weight"; doc/FORMATS.md, "Tied weights").
 * If t owns its elements, both own them jointly and they are freed with
 * the last of the two (either may be freed first, from any thread); if t
 * is a view, the new tensor is a view of the same memory under the same
 * rules. Saving a dict, state dict or list that holds tied tensors
 * (nnh5_tensor_tied()) stores the elements once and the other names as
 * HDF5 hard links; loading restores the tie. *out is set to NULL on
 * failure. Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_tensor_share(nnh5_tensor **out, nnh5_tensor *t);

/*
 * true if a and b are tied: both non-empty, with the same dtype and shape
 * and the same element memory (the same data pointer), as
 * nnh5_tensor_share() makes them. Tensors that overlap in any other way
 * (another offset, shape or dtype) are not tied and are saved as copies.
 * false if either is NULL.
 */
NNH5_API bool nnh5_tensor_tied(const nnh5_tensor *a, const nnh5_tensor *b);

/* Free a tensor (and its elements if it owns them). NULL is a no-op. */
NNH5_API void nnh5_tensor_free(nnh5_tensor *t);

/*
 * One tensor of a dict or list as nnh5_dict_export() and nnh5_list_export()
 * hand it to a binding (the Python module gives numpy the memory at data):
 * everything it needs in one record, so that it makes one call per container
 * instead of several per tensor.
 */
typedef struct nnh5_tensor_export {
	nnh5_tensor *tensor; /* nnh5_tensor_share() of the value: the caller's to free */
	const char *key;     /* the dict's key (borrowed, lives as long as the dict); NULL in a list */
	void *data;          /* the elements, as nnh5_tensor_data(); NULL when nbytes is 0 */
	uint64_t nbytes;
	int32_t dtype;       /* nnh5_dtype */
	uint32_t ndim;
	int64_t shape[NNH5_MAX_NDIM]; /* ndim entries set, the rest 0 */
} nnh5_tensor_export;

NNH5_API nnh5_dtype nnh5_tensor_dtype(const nnh5_tensor *t);
NNH5_API size_t nnh5_tensor_ndim(const nnh5_tensor *t);
/* The shape, ndim entries, borrowed from t (NULL-free pointer even for ndim 0). */
NNH5_API const int64_t *nnh5_tensor_shape(const nnh5_tensor *t);
/* Dimension i; i must be < ndim. */
NNH5_API int64_t nnh5_tensor_dim(const nnh5_tensor *t, size_t i);
/* Number of elements (1 for a scalar, 0 if any dimension is 0). */
NNH5_API size_t nnh5_tensor_numel(const nnh5_tensor *t);
/* numel * dtype size. */
NNH5_API size_t nnh5_tensor_nbytes(const nnh5_tensor *t);
/* The elements (borrowed). May be NULL when nbytes is 0. */
NNH5_API const void *nnh5_tensor_data(const nnh5_tensor *t);
/* The elements for writing; NULL for a read-only view. */
NNH5_API void *nnh5_tensor_mutable_data(nnh5_tensor *t);
/* true if t owns its elements, false for a view. */
NNH5_API bool nnh5_tensor_owns_data(const nnh5_tensor *t);
/*
 * The checksum nnh5 stores with a tensor (doc/FORMAT.md, "Checksums"):
 * XXH3-64, seed 0, of its elements' little-endian bytes in row-major order.
 * 0 for t NULL. Equal tensors of equal dtype and shape have equal checksums.
 */
NNH5_API uint64_t nnh5_tensor_checksum(const nnh5_tensor *t);

/*
 * Element i (row-major flat index, i < numel) as a double. Exact for every
 * dtype except int64/uint64 values beyond 2^53; the real part for complex.
 */
NNH5_API double nnh5_tensor_get(const nnh5_tensor *t, size_t i);

/*
 * Set element i from a double, converting as nnh5_tensor_convert() does.
 * Errors: NNH5_ERR_INVALID (i out of range, read-only view).
 */
NNH5_API int nnh5_tensor_set(nnh5_tensor *t, size_t i, double value);

/*
 * Element-wise equality (the seed chapter's Y_clone == Y): a new bool tensor
 * of the common shape, true where the values are equal (NaN equals nothing,
 * -0.0 equals 0.0). Values of different dtypes compare as numbers.
 * Errors: NNH5_ERR_SHAPE (different shapes), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_tensor_eq(nnh5_tensor **out, const nnh5_tensor *a, const nnh5_tensor *b);

/*
 * Check that t holds dtype with ndim dimensions, for a caller that copies
 * it into a typed array of its own (the Fortran module does). what names
 * where t came from in the message, e.g. "load 'x.h5'": "load 'x.h5':
 * stored int32 of shape (3, 4), expected float32 with 1 dimension". t may
 * be NULL, what a lookup that found nothing gives (nnh5_dict_get()):
 * NNH5_ERR_NOT_FOUND, "<what>: not found".
 * Errors: NNH5_ERR_TYPE (other dtype), NNH5_ERR_SHAPE (other rank),
 * NNH5_ERR_NOT_FOUND (t NULL).
 */
NNH5_API int nnh5_tensor_expect(const nnh5_tensor *t, nnh5_dtype dtype, size_t ndim,
				const char *what);

/* true if a and b have the same dtype, shape and values (torch.equal). */
NNH5_API bool nnh5_tensor_equal(const nnh5_tensor *a, const nnh5_tensor *b);

/* true if a and b have the same dtype, shape and bytes (NaN payloads included). */
NNH5_API bool nnh5_tensor_bitwise_equal(const nnh5_tensor *a, const nnh5_tensor *b);

/*
 * The tensor as PyTorch prints it, e.g. "tensor([0., 1., 2., 3.])" or
 * "tensor([[ True, False]])" or "tensor([1, 2], dtype=torch.int32)":
 * same number formatting, alignment, line wrapping at 80 columns and
 * summarisation ("...") of tensors with more than 1000 elements.
 * *out is a NUL-terminated string the caller frees with nnh5_free().
 * Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_tensor_format(char **out, const nnh5_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_TENSOR_H */
