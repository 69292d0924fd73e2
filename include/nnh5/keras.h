/*
 * nnh5/keras.h - import Keras weights files and Sequential models.
 *
 * Three layouts are read (doc/FORMATS.md, "Keras"):
 *   - a legacy full model (model.save("m.h5")): root attribute model_config
 *     (JSON) and the weights under /model_weights;
 *   - a legacy weights-only file (model.save_weights("w.h5") in Keras 2,
 *     "w.weights.h5" through the legacy path): the same weights at the root;
 *   - a Keras 3 weights file (model.save_weights("w.weights.h5")):
 *     /layers/<name>/vars/<i>.
 * In the legacy layouts the layers come from the attribute layer_names (or
 * layer_names0, layer_names1, ... when Keras split it), each layer's
 * weights from its attribute weight_names, in every naming Keras used:
 * Keras 2 "dense/kernel:0", Keras 3 "kernel" or the variable's path
 * "sequential/dense/kernel" (a '/' in a name is a subgroup). Strings may be
 * fixed- or variable-length.
 *
 * Weights become PyTorch-style keys: a Dense layer "dense" gives
 * "dense.weight", its kernel transposed from Keras' (in, units) to
 * (units, in), and "dense.bias". A weight that is not a Dense kernel or bias
 * is refused, naming the layer and (when the file says) its class.
 *
 * Every object is read through the library's one read path (nnh5/walk.h),
 * under the handle's open options: external links, external storage,
 * unknown filters, hostile names and sizes beyond the caps are refused as
 * by any nnh5 load.
 */
#ifndef NNH5_KERAS_H
#define NNH5_KERAS_H

#include "common.h"
#include "dict.h"
#include "file.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which Keras layout a file is. Pinned values. */
typedef enum nnh5_keras_layout {
	NNH5_KERAS_LEGACY_MODEL = 1,   /* legacy .h5 full model: model_config + model_weights */
	NNH5_KERAS_LEGACY_WEIGHTS = 2, /* legacy .h5 weights only: layer_names at the root */
	NNH5_KERAS_V3_WEIGHTS = 3,     /* Keras 3 .weights.h5: layers/<name>/vars/<i> */
} nnh5_keras_layout;

/*
 * The layout of the open file f (read mode), without reading any tensor.
 * Errors: NNH5_ERR_FORMAT (none of the three layouts), and the refusals of
 * the read path (NNH5_ERR_UNSAFE, NNH5_ERR_OVERFLOW, ...).
 */
NNH5_API int nnh5_keras_layout_of(nnh5_keras_layout *out, nnh5_file *f);

/*
 * Read the Keras weights of f (any of the three layouts) as a new state dict
 * with PyTorch-style keys, in layer order (legacy files: layer_names order;
 * Keras 3 files: the stored order of /layers), tensors in the file's dtypes
 * (Keras 3 bfloat16 variables as NNH5_BFLOAT16). Layers without weights
 * contribute nothing. Free with nnh5_dict_free().
 * Errors: NNH5_ERR_FORMAT (not a Keras file; a layer listed but missing; a
 * weight_names entry naming no dataset; a layer whose weights are not a
 * Dense kernel (rank 2) and bias (rank 1, units long): the message names the
 * layer, its class when known, and the weight), NNH5_ERR_TYPE (a weight of
 * a type nnh5 does not load), the refusals of nnh5_file_read_tensor()
 * (NNH5_ERR_UNSAFE for external links and storage, NNH5_ERR_OVERFLOW for
 * the caps), NNH5_ERR_NOMEM. *out is NULL on failure.
 */
NNH5_API int nnh5_keras_read_state_dict(nnh5_dict **out, nnh5_file *f);

/*
 * Rebuild the Sequential model of a legacy full-model file f as a new
 * nnh5_model computing in dtype (NNH5_FLOAT32 or NNH5_FLOAT64; weights are
 * converted to it): InputLayer is skipped, Dense becomes a Linear named as
 * the layer followed, for activation relu, sigmoid, tanh or gelu, by that
 * activation named "<layer>_<activation>" (linear adds nothing), Flatten
 * (channels_last) becomes Flatten(1, -1) and Dropout a Dropout. Free with
 * nnh5_model_free().
 * Errors: NNH5_ERR_FORMAT (no model_config, as in weights-only files;
 * malformed JSON; a model class other than Sequential; a layer class or
 * activation not listed above, naming the layer and its class; a kernel
 * whose shape does not follow from units and the previous layer; missing
 * or extra weights), NNH5_ERR_INVALID (another dtype), and those of
 * nnh5_keras_read_state_dict(). *out is NULL on failure.
 */
NNH5_API int nnh5_keras_read_model(nnh5_model **out, nnh5_file *f, nnh5_dtype dtype);

/* nnh5_keras_read_state_dict() on path opened for reading with default options. */
NNH5_API int nnh5_keras_load_state_dict(nnh5_dict **out, const char *path);

/* nnh5_keras_read_model() on path opened for reading with default options. */
NNH5_API int nnh5_keras_load_model(nnh5_model **out, const char *path, nnh5_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_KERAS_H */
