/*
 * lib/nn/nn_internal.h - what the network layer's source files share: the
 * model and layer structs and the helpers that build, check and fill them.
 * Nothing here is public API.
 */
#ifndef NNH5_NN_INTERNAL_H
#define NNH5_NN_INTERNAL_H

#include "../internal.h"
#include "nnh5/nn.h"

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
} nnh5__layer;

struct nnh5_model {
	nnh5_dtype dtype;
	nnh5_rng rng;
	nnh5__layer *layers;
	size_t n_layers;
	size_t cap_layers;
	/* ping-pong workspace for intermediate results; only grows */
	void *ws[2];
	size_t ws_bytes;
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

/* Join a group name and a child name into a new string ("/" + "x" = "/x"). */
char *nnh5__path_join(const char *group, const char *child);

#endif /* NNH5_NN_INTERNAL_H */
