/*
 * lib/nn/nn_internal.h - what the network layer's source files share: the
 * model and layer structs and the helpers that build, check and fill them.
 * Nothing here is public API.
 */
#ifndef NNH5_NN_INTERNAL_H
#define NNH5_NN_INTERNAL_H

#include "core/internal.h"
#include "nnh5/nn.h"
#include "nnh5/train.h"
#include "nnh5/dict.h"
#include "nnh5/rng.h"
#include "nnh5/file.h"

typedef struct nnh5__layer {
	nnh5_layer_type type;
	char *name;
	/* Linear and LazyLinear; in_features is -1 while a LazyLinear has not inferred it */
	int64_t in_features;
	int64_t out_features;
	bool has_bias;
	nnh5_tensor *weight; /* (out, in), owned; NULL until a LazyLinear materialises */
	nnh5_tensor *bias;   /* (out), owned; NULL without bias or before materialising */
	/* Flatten */
	int64_t start_dim;
	int64_t end_dim;
	/* Dropout */
	double p;
	/* training (lib/nn/grad.c) */
	nnh5_tensor *grad_weight; /* shaped as weight, owned; NULL until first needed */
	nnh5_tensor *grad_bias;   /* shaped as bias, owned; NULL until first needed */
	size_t tape_out;          /* where forward_train left this layer's output, in elements */
	size_t tape_mask;         /* Dropout: where its mask is */
	size_t tape_numel;        /* the output's element count */
} nnh5__layer;

/*
 * A forward-pass workspace: two ping-pong buffers for intermediate results
 * that only grow. The model has one for its own forward calls; each
 * nnh5_model_ctx has its own, which is what lets threads share a model.
 */
typedef struct nnh5__workspace {
	void *buf[2];
	size_t bytes;
} nnh5__workspace;

/* What forward_train keeps for backward (lib/nn/grad.c). */
typedef struct nnh5__tape nnh5__tape;

struct nnh5_model {
	nnh5_dtype dtype;
	nnh5_rng rng;
	nnh5__layer *layers;
	size_t n_layers;
	size_t cap_layers;
	/* the workspace of nnh5_model_forward() and _into() */
	nnh5__workspace ws;
	/* training state, NULL until the first forward_train */
	nnh5__tape *tape;
};

/* true for ReLU, Sigmoid, Tanh, GELU. */
bool nnh5__layer_is_activation(nnh5_layer_type t);

/* true if the layer holds (or will hold) parameters: Linear, LazyLinear. */
bool nnh5__layer_has_params(const nnh5__layer *l);

/*
 * Allocate weight (and bias) for layer l with in_features in, without
 * touching l: *w and *b (NULL without bias) are new zeroed tensors.
 */
int nnh5__layer_alloc_params(nnh5_tensor **w, nnh5_tensor **b, const nnh5_model *m,
			     const nnh5__layer *l, int64_t in);

/*
 * Install w and b (from nnh5__layer_alloc_params) into l with in_features
 * in and draw their initial values from the model's generator. Cannot fail.
 */
void nnh5__layer_install_params(nnh5_model *m, nnh5__layer *l, int64_t in, nnh5_tensor *w,
				nnh5_tensor *b);

/*
 * The shape after a Flatten layer, in place (cur has room for
 * NNH5_MAX_NDIM). false, with the shape untouched, when start_dim/end_dim
 * do not fit the input's rank.
 */
bool nnh5__flatten_shape(const nnh5__layer *l, size_t *nd, int64_t *cur);

/*
 * Walk the layers over an input shape: check every Linear's input width and
 * every Flatten's dimensions, and give the output shape and the largest
 * intermediate element count (max_numel may be NULL). A LazyLinear that has
 * not inferred its input accepts any width.
 */
int nnh5__model_plan(const nnh5_model *m, size_t ndim, const int64_t *shape, size_t *out_ndim,
		     int64_t *out_shape, size_t *max_numel);

/*
 * Materialise every LazyLinear that has not inferred its input, for an
 * input of this shape (already checked by nnh5__model_plan()).
 */
int nnh5__model_materialise(nnh5_model *m, size_t ndim, const int64_t *shape);

/* y (rows x out) = x (rows x in) W^T + bias (bias may be NULL), W (out x in), all row-major. */
void nnh5__linear_forward(nnh5_dtype dt, void *y, const void *x, const void *w, const void *bias,
			  size_t rows, size_t in, size_t out);

/*
 * Apply bias (may be NULL) and the activations acts[0..nacts) to src
 * (rows x cols) into dst (may be src), fusing bias and the first activation.
 */
void nnh5__activations(nnh5_dtype dt, void *dst, const void *src, size_t rows, size_t cols,
		       const void *bias, const nnh5_layer_type *acts, size_t nacts);

/* Allocate the (zero) gradient of every parameter that has none yet. */
int nnh5__model_ensure_grads(nnh5_model *m);

/* Free a workspace's buffers (not the struct). */
void nnh5__workspace_release(nnh5__workspace *ws);

/* Free the training tape. NULL is a no-op. */
void nnh5__tape_free(nnh5__tape *t);

/* Add a view of t (no copy) under the key "<prefix>.<suffix>" to sd. */
int nnh5__dict_add_view(nnh5_dict *sd, const char *prefix, const char *suffix, nnh5_tensor *t);

/* Join a group name and a child name into a new string ("/" + "x" = "/x"). */
char *nnh5__path_join(const char *group, const char *child);

#endif /* NNH5_NN_INTERNAL_H */
