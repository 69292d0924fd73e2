/*
 * nnh5/nn.h - a small sequential network on BLAS that saves, reloads and
 * verifies itself.
 *
 * An nnh5_model is torch.nn.Sequential for inference: an ordered list of
 * named children (Linear, LazyLinear, ReLU, Sigmoid, Tanh, GELU, Flatten,
 * Dropout). Its parameters use PyTorch's layout and keys ("hidden.weight" is
 * (out_features, in_features), "hidden.bias" is (out_features)), so a
 * PyTorch state dict loads unchanged and the other way round.
 *
 * The forward pass runs in float32 or float64 on cblas_?gemm: the bias
 * enters through the gemm itself (beta = 1 over bias rows) and the
 * activations that follow a Linear are applied in one pass over its output. Intermediate results live in a workspace owned by the model that
 * only grows, so nnh5_model_forward_into() allocates nothing once it has
 * seen a batch size.
 *
 * A saved model (nnh5_file_write_model(), nnh5_save_model()) is a state dict
 * group that h5py users read as usual (f["hidden/weight"]) plus its
 * architecture as plain attributes, so nnh5_load_model() rebuilds it from the
 * file alone; an optional probe (an input and the output the model gave for
 * it) lets nnh5_verify_model() check a file bit for bit. The layout is in
 * doc/FORMAT.md, "Models". Only the built-in layer set can be rebuilt.
 *
 * Training (the backward pass, losses and optimizers) is in nnh5/train.h.
 *
 * Threads. A model's own calls (nnh5_model_forward(), loading, training,
 * adding layers) must not run on two threads at once. To run one model on
 * many threads, give each thread an nnh5_model_ctx (nnh5_model_ctx_new()):
 * nnh5_model_forward_ctx() and _ctx_into() only read the model and write
 * the context's own workspace, so any number of threads, each with its own
 * context, share one copy of the parameters, and each thread's output is
 * bitwise what a single-threaded call gives for the same input. Nothing may
 * change the model (load, train, forward without a context) while a context
 * call runs. OpenBLAS's own threads: the forward pass calls BLAS on the
 * calling thread, and OpenBLAS adds its threads inside each call
 * (nnh5_nn_set_num_threads()); when the callers are already many threads
 * (an OpenMP loop), set it to 1 first, or threads times BLAS threads
 * oversubscribe the cores. doc/FORTRAN.md, "Threads".
 */
#ifndef NNH5_NN_H
#define NNH5_NN_H

#include "dict.h"
#include "file.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_model nnh5_model;

/* The layer types. Pinned values: new types are only ever appended. */
typedef enum nnh5_layer_type {
	NNH5_LAYER_LINEAR = 1,      /* y = x W^T + b, W (out, in), b (out) */
	NNH5_LAYER_LAZY_LINEAR = 2, /* Linear whose in_features comes from the first input or load */
	NNH5_LAYER_RELU = 3,        /* max(x, 0); NaN stays NaN */
	NNH5_LAYER_SIGMOID = 4,     /* 1 / (1 + exp(-x)) */
	NNH5_LAYER_TANH = 5,        /* tanh(x) */
	NNH5_LAYER_GELU = 6,        /* x * Phi(x), the exact erf form (torch's default) */
	NNH5_LAYER_FLATTEN = 7,     /* merge dimensions start_dim..end_dim */
	NNH5_LAYER_DROPOUT = 8,     /* identity at inference; p is kept */
} nnh5_layer_type;

/*
 * The type's name as written in files and as PyTorch calls the class:
 * "Linear", "LazyLinear", "ReLU", "Sigmoid", "Tanh", "GELU", "Flatten",
 * "Dropout"; "unknown" for another value. Static storage.
 */
NNH5_API const char *nnh5_layer_type_name(int type);

/*
 * Parse a name as returned by nnh5_layer_type_name() into *out.
 * Errors: NNH5_ERR_INVALID (unknown name; *out untouched).
 */
NNH5_API int nnh5_layer_type_from_name(nnh5_layer_type *out, const char *name);

/*
 * A new empty model computing in dtype (NNH5_FLOAT32 or NNH5_FLOAT64).
 * Its parameters are initialised from a generator seeded with seed, drawn in
 * the order the layers are added (a LazyLinear draws when it materialises),
 * so the same seed and the same code give the same parameters.
 * Free with nnh5_model_free().
 * Errors: NNH5_ERR_INVALID (another dtype), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_new(nnh5_model **out, nnh5_dtype dtype, uint64_t seed);

/* Free the model, its parameters and its workspace. NULL is a no-op. */
NNH5_API void nnh5_model_free(nnh5_model *m);

/*
 * Adding children. name is the child's name ("hidden") or NULL for its
 * position ("0", "1", ... as torch.nn.Sequential names them). A name must be
 * non-empty, contain no '.' or '/', not start with "nnh5_" (reserved by the
 * file format) and be unique in the model. The name is copied.
 * Errors: NNH5_ERR_INVALID (bad name or hyperparameter: the message says
 * which), NNH5_ERR_EXISTS (name taken), NNH5_ERR_NOMEM. On failure the model
 * is unchanged.
 */

/*
 * A Linear layer (torch.nn.Linear): weight (out_features, in_features) and,
 * if bias, bias (out_features), initialised as PyTorch does: weight and bias
 * uniform in [-1/sqrt(in_features), 1/sqrt(in_features)) (the weight's
 * kaiming_uniform_ with a = sqrt(5) gives this bound). Features in [1, 2^31).
 */
NNH5_API int nnh5_model_add_linear(nnh5_model *m, const char *name, int64_t in_features,
				   int64_t out_features, bool bias);

/*
 * A LazyLinear layer (torch.nn.LazyLinear): in_features is taken from the
 * last dimension of the first input given to the forward pass, or from the
 * weight loaded into it, and its parameters are created (and initialised as
 * Linear's) then; from then on it is a Linear (nnh5_model_child_type(),
 * nnh5_model_format() and saved files say so), as PyTorch's LazyLinear
 * becomes a Linear. Until then it has no parameters in the state dict.
 */
NNH5_API int nnh5_model_add_lazy_linear(nnh5_model *m, const char *name, int64_t out_features,
					bool bias);

/* Element-wise activations (no parameters). */
NNH5_API int nnh5_model_add_relu(nnh5_model *m, const char *name);
NNH5_API int nnh5_model_add_sigmoid(nnh5_model *m, const char *name);
NNH5_API int nnh5_model_add_tanh(nnh5_model *m, const char *name);
NNH5_API int nnh5_model_add_gelu(nnh5_model *m, const char *name);

/*
 * Flatten dimensions start_dim..end_dim (inclusive; negative counts from the
 * end) into one, as torch.nn.Flatten (defaults 1 and -1).
 */
NNH5_API int nnh5_model_add_flatten(nnh5_model *m, const char *name, int64_t start_dim,
				    int64_t end_dim);

/* Dropout with probability p in [0, 1]: the identity at inference. */
NNH5_API int nnh5_model_add_dropout(nnh5_model *m, const char *name, double p);

/* The model's compute dtype (NNH5_FLOAT32 or NNH5_FLOAT64). */
NNH5_API nnh5_dtype nnh5_model_dtype(const nnh5_model *m);

/* The number of children. */
NNH5_API size_t nnh5_model_len(const nnh5_model *m);

/* Child i's name (borrowed, lives as long as the model); NULL if i >= len. */
NNH5_API const char *nnh5_model_child_name(const nnh5_model *m, size_t i);

/* Child i's type; 0 if i >= len. */
NNH5_API nnh5_layer_type nnh5_model_child_type(const nnh5_model *m, size_t i);

/*
 * The model as PyTorch prints an nn.Sequential, for example
 *   Sequential(
 *     (hidden): Linear(in_features=20, out_features=256, bias=True)
 *     (relu): ReLU()
 *     (output): Linear(in_features=256, out_features=10, bias=True)
 *   )
 * (a LazyLinear that has not inferred its input shows in_features=0, as
 * PyTorch does). *out is a new string the caller frees with nnh5_free().
 * Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_format(char **out, const nnh5_model *m);

/*
 * The number of OpenBLAS threads used by every model's forward pass
 * (openblas_set_num_threads(); process-wide). n < 1 is taken as 1.
 * Set it to 1 before calling the forward pass from many threads of your
 * own (an OpenMP parallel region): see "Threads" at the top of this file.
 * Not to be called while a forward pass runs on another thread.
 */
NNH5_API void nnh5_nn_set_num_threads(int n);

/* The current number of OpenBLAS threads. */
NNH5_API int nnh5_nn_get_num_threads(void);

/*
 * The forward pass of x (the model's dtype; rank >= 1; Linear layers act on
 * the last dimension, all others are batch dimensions, as in PyTorch) into
 * a new owning tensor *out the caller frees with nnh5_tensor_free().
 * A LazyLinear that has not inferred its input does so now. NaN and Inf in
 * x propagate as in PyTorch. The model is not changed except for that and
 * its workspace.
 * Errors: NNH5_ERR_INVALID (x of another dtype), NNH5_ERR_SHAPE (x's last
 * dimension differs from a Linear's in_features, or Flatten's dimensions do
 * not exist: the message names the layer, expected and actual sizes),
 * NNH5_ERR_OVERFLOW, NNH5_ERR_NOMEM. *out is NULL on failure.
 */
NNH5_API int nnh5_model_forward(nnh5_tensor **out, nnh5_model *m, const nnh5_tensor *x);

/*
 * The shape the forward pass of an input of shape (ndim, shape) produces:
 * *out_ndim and out_shape (room for NNH5_MAX_NDIM entries).
 * Errors: as nnh5_model_forward() (a LazyLinear is not materialised).
 */
NNH5_API int nnh5_model_output_shape(size_t *out_ndim, int64_t *out_shape,
				     const nnh5_model *m, size_t ndim, const int64_t *shape);

/*
 * The forward pass of x into y, a tensor the caller owns of the model's
 * dtype and exactly the output shape (nnh5_model_output_shape()); y must not
 * share memory with x. Once the model has seen this batch size this call
 * allocates nothing. Errors: as nnh5_model_forward(), and NNH5_ERR_SHAPE or
 * NNH5_ERR_INVALID for a wrong or read-only y (y is then untouched).
 */
NNH5_API int nnh5_model_forward_into(nnh5_model *m, const nnh5_tensor *x, nnh5_tensor *y);

/*
 * A forward-pass context: a workspace of its own over a model it only
 * reads, for one thread at a time. See "Threads" at the top of this file.
 */
typedef struct nnh5_model_ctx nnh5_model_ctx;

/*
 * A new context over m into *out, freed with nnh5_model_ctx_free() before
 * m is. m is borrowed: the context never changes it. Creating a context
 * allocates only the context; its workspace grows on first use with a
 * batch size, as the model's own does.
 * Errors: NNH5_ERR_NOMEM (*out NULL).
 */
NNH5_API int nnh5_model_ctx_new(nnh5_model_ctx **out, const nnh5_model *m);

/* Free a context and its workspace (not the model). NULL is a no-op. */
NNH5_API void nnh5_model_ctx_free(nnh5_model_ctx *c);

/* The model a context reads (borrowed). */
NNH5_API const nnh5_model *nnh5_model_ctx_model(const nnh5_model_ctx *c);

/*
 * nnh5_model_forward() and nnh5_model_forward_into() through a context:
 * the same checks, errors and results, bit for bit, but the model is only
 * read, so threads with one context each may call these at once on one
 * model. A LazyLinear that has not inferred its input is refused with
 * NNH5_ERR_INVALID (inferring it would change the shared model): run
 * nnh5_model_forward() once, or load its parameters, first. The
 * per-thread error message is the calling thread's, as always.
 */
NNH5_API int nnh5_model_forward_ctx(nnh5_tensor **out, nnh5_model_ctx *c, const nnh5_tensor *x);
NNH5_API int nnh5_model_forward_ctx_into(nnh5_model_ctx *c, const nnh5_tensor *x,
					 nnh5_tensor *y);

/*
 * The model's parameters as a new dict of views onto them (no copy), with
 * PyTorch's keys in order ("hidden.weight", "hidden.bias", "output.weight",
 * ...). Writing through a view changes the model. The caller frees the dict
 * with nnh5_dict_free() (that frees the views, not the parameters) and must
 * not use it after the model is freed. A LazyLinear that has not inferred
 * its input contributes no keys. Errors: NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_state_dict(nnh5_dict **out, nnh5_model *m);

/* Renaming while loading: source keys starting with from are loaded as to + the rest. */
typedef struct nnh5_key_rename {
	const char *from; /* a prefix of source keys, e.g. "hidden." ("" matches every key) */
	const char *to;   /* what replaces it, e.g. "encoder." ("" strips it) */
} nnh5_key_rename;

#define NNH5_LOAD_OPTIONS_VERSION 1

/* Options of nnh5_model_load_state_dict(). Initialise with NNH5_LOAD_OPTIONS_INIT. */
typedef struct nnh5_load_options {
	unsigned int version; /* NNH5_LOAD_OPTIONS_VERSION */
	/*
	 * true (default): every model parameter must be loaded, every selected
	 * source key must be a model parameter of the same shape, or nothing
	 * is loaded. false: load what matches, report the rest.
	 */
	bool strict;
	/*
	 * Key selection and renaming (exercise 2 of the chapter). With
	 * n_renames 0 every source key is taken as it is. Otherwise only
	 * source keys matching some entry's from are taken (the others are
	 * ignored, not "unexpected"), renamed by the first entry that matches:
	 * {"hidden.", "encoder."} loads the file's hidden layer into the
	 * model's encoder; {"0.", "0."} selects layer 0 unchanged.
	 */
	const nnh5_key_rename *renames;
	size_t n_renames;
} nnh5_load_options;

#define NNH5_LOAD_OPTIONS_INIT { NNH5_LOAD_OPTIONS_VERSION, true, NULL, 0 }

/* A key whose shapes differ between the model and the source. */
typedef struct nnh5_shape_mismatch {
	char *key; /* the model's key */
	size_t model_ndim;
	int64_t model_shape[NNH5_MAX_NDIM];
	size_t source_ndim;
	int64_t source_shape[NNH5_MAX_NDIM];
} nnh5_shape_mismatch;

/* What nnh5_model_load_state_dict() did. Free with nnh5_load_result_free(). */
typedef struct nnh5_load_result {
	size_t n_loaded;           /* parameters copied into the model */
	char **missing;            /* model keys the source did not provide */
	size_t n_missing;
	char **unexpected;         /* selected source keys (after renaming) the model lacks */
	size_t n_unexpected;
	nnh5_shape_mismatch *mismatched; /* keys present in both with different shapes */
	size_t n_mismatched;
} nnh5_load_result;

/* Free a load result and its strings. NULL is a no-op. */
NNH5_API void nnh5_load_result_free(nnh5_load_result *r);

/*
 * Copy the tensors of sd into the model's parameters (torch's
 * load_state_dict). Values of any float dtype are converted to the model's
 * dtype (float16 and bfloat16 parameters compute in float32). A LazyLinear
 * that has not inferred its input takes in_features from its weight (only
 * out_features must match); if the source has no key for it, it stays lazy
 * and its keys are not missing (its state dict has none). opts NULL means
 * NNH5_LOAD_OPTIONS_INIT.
 *
 * Everything is validated before anything is copied: on failure the model
 * is unchanged. In strict mode any missing key, unexpected key or shape
 * mismatch fails with NNH5_ERR_SHAPE and ONE message listing all of them,
 * e.g. "load_state_dict: missing keys: 'output.weight', 'output.bias';
 * unexpected keys: 'out.weight'; size mismatch: 'hidden.weight': model
 * (256, 20), source (256, 30)" (a very long message is cut at the
 * library's message limit; *result always has the full lists). In
 * non-strict mode what matches is loaded and the lists are only reported.
 *
 * result may be NULL; otherwise *result is a new nnh5_load_result the
 * caller frees with nnh5_load_result_free(), set on success and on the
 * strict-mode NNH5_ERR_SHAPE failure, NULL on any other failure.
 * Errors: NNH5_ERR_SHAPE (strict mismatch), NNH5_ERR_TYPE (a selected
 * tensor that is not a float type), NNH5_ERR_INVALID (bad options),
 * NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_model_load_state_dict(nnh5_load_result **result, nnh5_model *m,
					const nnh5_dict *sd, const nnh5_load_options *opts);

/*
 * Write m as the model group name of f (name "/" for the root): its state
 * dict in the layout of nnh5_file_write_state_dict() with nnh5_kind "model",
 * its architecture as attributes, and, if probe_input is not NULL, the probe
 * datasets name/nnh5_probe/input and name/nnh5_probe/output (the output of
 * m for probe_input, computed now). m is not const because the probe runs
 * it. Errors: those of nnh5_file_write_state_dict() and nnh5_model_forward().
 */
NNH5_API int nnh5_file_write_model(nnh5_file *f, const char *name, nnh5_model *m,
				   const nnh5_tensor *probe_input);

/*
 * Rebuild the model stored at name in f from the file alone: its children
 * from the architecture attributes, its dtype from nnh5_model_dtype (float16
 * and bfloat16 models compute in float32), its parameters loaded strictly.
 * *out is freed with nnh5_model_free().
 * Errors: NNH5_ERR_NOT_FOUND (no object), NNH5_ERR_FORMAT (not a model, or
 * an attribute missing or out of range: the message names the child and the
 * attribute; an unknown layer type: the message names it), NNH5_ERR_SHAPE
 * (parameters missing, unexpected or of the wrong shape: one message lists
 * them), and those of nnh5_file_read_state_dict().
 */
NNH5_API int nnh5_file_read_model(nnh5_model **out, nnh5_file *f, const char *name);

/* What nnh5_verify_model() found. */
typedef struct nnh5_verify_result {
	bool bitwise_equal;   /* same dtype, shape and bytes as the stored output */
	double max_abs_diff;  /* largest |stored - recomputed| (Inf if only one is NaN) */
	size_t numel;         /* elements compared */
} nnh5_verify_result;

/*
 * Rebuild the model at name (nnh5_file_read_model()), run its stored probe
 * input and compare the output with the stored probe output, into *out.
 * A difference is reported in *out, not as an error.
 * Errors: NNH5_ERR_NOT_FOUND (no probe), NNH5_ERR_SHAPE (the stored output's
 * shape or dtype is not what the model produces), and those of
 * nnh5_file_read_model() and nnh5_model_forward().
 */
NNH5_API int nnh5_file_verify_model(nnh5_verify_result *out, nnh5_file *f, const char *name);

/*
 * One call each (nnh5/save.h style): save m as the root group of a new file
 * that atomically replaces path, load the model that is the root group of
 * path, verify its probe. Errors: those of nnh5_file_open(),
 * nnh5_file_close() and the nnh5_file_*_model() functions above.
 */
NNH5_API int nnh5_save_model(const char *path, nnh5_model *m, const nnh5_tensor *probe_input);
NNH5_API int nnh5_load_model(nnh5_model **out, const char *path);
NNH5_API int nnh5_verify_model(nnh5_verify_result *out, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_NN_H */
