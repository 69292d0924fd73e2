/*
 * lib/nn/model.c - building a sequential model, initialising its parameters
 * as PyTorch does, printing it as PyTorch prints it, and its state dict (and
 * gradients) as views.
 */
#include "nn/nn_internal.h"
#include "nnh5/dict.h"
#include "nnh5/rng.h"
#include "nnh5/file.h"
#include "nnh5/nn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const layer_names[] = {
	[NNH5_LAYER_LINEAR] = "Linear",
	[NNH5_LAYER_LAZY_LINEAR] = "LazyLinear",
	[NNH5_LAYER_RELU] = "ReLU",
	[NNH5_LAYER_SIGMOID] = "Sigmoid",
	[NNH5_LAYER_TANH] = "Tanh",
	[NNH5_LAYER_GELU] = "GELU",
	[NNH5_LAYER_FLATTEN] = "Flatten",
	[NNH5_LAYER_DROPOUT] = "Dropout",
};

#define N_LAYER_NAMES (sizeof(layer_names) / sizeof(layer_names[0]))

const char *nnh5_layer_type_name(int type)
{
	if (type <= 0 || (size_t)type >= N_LAYER_NAMES || !layer_names[type])
		return "unknown";
	return layer_names[type];
}

int nnh5_layer_type_from_name(nnh5_layer_type *out, const char *name)
{
	if (name) {
		for (size_t i = 1; i < N_LAYER_NAMES; i++) {
			if (layer_names[i] && strcmp(layer_names[i], name) == 0) {
				*out = (nnh5_layer_type)i;
				return NNH5_OK;
			}
		}
	}
	return nnh5__error(NNH5_ERR_INVALID, "unknown layer type '%s'", name ? name : "(null)");
}

bool nnh5__layer_is_activation(nnh5_layer_type t)
{
	return t == NNH5_LAYER_RELU || t == NNH5_LAYER_SIGMOID || t == NNH5_LAYER_TANH ||
	       t == NNH5_LAYER_GELU;
}

bool nnh5__layer_has_params(const nnh5__layer *l)
{
	return l->type == NNH5_LAYER_LINEAR || l->type == NNH5_LAYER_LAZY_LINEAR;
}

char *nnh5__path_join(const char *group, const char *child)
{
	size_t g = strlen(group), c = strlen(child);
	bool slash = g > 0 && group[g - 1] != '/';
	char *s = nnh5__malloc(g + c + 2);
	if (!s)
		return NULL;
	memcpy(s, group, g);
	if (slash)
		s[g++] = '/';
	memcpy(s + g, child, c + 1);
	return s;
}

int nnh5_model_new(nnh5_model **out, nnh5_dtype dtype, uint64_t seed)
{
	*out = NULL;
	if (dtype != NNH5_FLOAT32 && dtype != NNH5_FLOAT64)
		return nnh5__error(NNH5_ERR_INVALID,
				   "new model: dtype %s: a model computes in float32 or float64",
				   nnh5_dtype_name(dtype));
	nnh5_model *m = nnh5__calloc(1, sizeof(*m));
	if (!m)
		return nnh5__nomem();
	m->dtype = dtype;
	nnh5_rng_seed(&m->rng, seed);
	*out = m;
	return NNH5_OK;
}

void nnh5_model_free(nnh5_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__free(m->layers[i].name);
		nnh5_tensor_free(m->layers[i].weight);
		nnh5_tensor_free(m->layers[i].bias);
		nnh5_tensor_free(m->layers[i].grad_weight);
		nnh5_tensor_free(m->layers[i].grad_bias);
	}
	nnh5__tape_free(m->tape);
	nnh5__free(m->layers);
	nnh5__workspace_release(&m->ws);
	nnh5__free(m);
}

int nnh5__layer_alloc_params(nnh5_tensor **w, nnh5_tensor **b, const nnh5_model *m,
			     const nnh5__layer *l, int64_t in)
{
	int64_t wshape[2] = { l->out_features, in };
	*w = NULL;
	*b = NULL;
	int rc = nnh5_tensor_new(w, m->dtype, 2, wshape);
	if (rc)
		return nnh5__error_wrap(rc, "layer '%s'", l->name);
	if (l->has_bias) {
		rc = nnh5_tensor_new(b, m->dtype, 1, &l->out_features);
		if (rc) {
			nnh5_tensor_free(*w);
			*w = NULL;
			return nnh5__error_wrap(rc, "layer '%s'", l->name);
		}
	}
	return NNH5_OK;
}

/* Uniform values in [-bound, bound) from the model's generator, as torch's uniform_. */
static void fill_uniform(nnh5_model *m, nnh5_tensor *t, double bound)
{
	size_t n = nnh5_tensor_numel(t);
	void *d = nnh5_tensor_mutable_data(t);
	for (size_t i = 0; i < n; i++) {
		double v = -bound + 2.0 * bound * nnh5_rng_uniform(&m->rng);
		if (m->dtype == NNH5_FLOAT32)
			((float *)d)[i] = (float)v;
		else
			((double *)d)[i] = v;
	}
}

void nnh5__layer_install_params(nnh5_model *m, nnh5__layer *l, int64_t in, nnh5_tensor *w,
				nnh5_tensor *b)
{
	/*
	 * torch.nn.Linear.reset_parameters: kaiming_uniform_(a=sqrt(5)) gives
	 * gain sqrt(2/(1+5)) and bound gain*sqrt(3/fan_in) = 1/sqrt(fan_in);
	 * the bias bound is 1/sqrt(fan_in) as well (0 when fan_in is 0).
	 */
	double bound = in > 0 ? 1.0 / sqrt((double)in) : 0.0;
	fill_uniform(m, w, bound);
	if (b)
		fill_uniform(m, b, bound);
	l->in_features = in;
	l->weight = w;
	l->bias = b;
	/* as torch's LazyLinear becomes a Linear (cls_to_become) once it knows its input */
	l->type = NNH5_LAYER_LINEAR;
}

/* Check name (or make the positional one) and append a layer; on success *out is the new layer. */
static int add_layer(nnh5__layer **out, nnh5_model *m, const char *name, nnh5_layer_type type)
{
	char pos[32];
	if (!name) {
		snprintf(pos, sizeof(pos), "%zu", m->n_layers);
		name = pos;
	}
	if (name[0] == '\0' || strchr(name, '.') || strchr(name, '/'))
		return nnh5__error(NNH5_ERR_INVALID,
				   "add %s '%s': a child name must be non-empty without '.' or '/'",
				   nnh5_layer_type_name(type), name);
	if (strncmp(name, "nnh5_", 5) == 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "add %s '%s': names starting with 'nnh5_' are reserved",
				   nnh5_layer_type_name(type), name);
	for (size_t i = 0; i < m->n_layers; i++)
		if (strcmp(m->layers[i].name, name) == 0)
			return nnh5__error(NNH5_ERR_EXISTS, "add %s '%s': the model has a child '%s'",
					   nnh5_layer_type_name(type), name, name);
	if (m->n_layers == m->cap_layers) {
		size_t cap = m->cap_layers ? 2 * m->cap_layers : 8;
		nnh5__layer *l = nnh5__realloc(m->layers, cap * sizeof(*l));
		if (!l)
			return nnh5__nomem();
		m->layers = l;
		m->cap_layers = cap;
	}
	char *copy = nnh5__strdup(name);
	if (!copy)
		return nnh5__nomem();
	nnh5__layer *l = &m->layers[m->n_layers];
	memset(l, 0, sizeof(*l));
	l->type = type;
	l->name = copy;
	l->in_features = -1;
	*out = l;
	return NNH5_OK;
}

static void drop_last_layer(nnh5_model *m)
{
	nnh5__free(m->layers[m->n_layers].name);
}

int nnh5_model_add_linear(nnh5_model *m, const char *name, int64_t in_features,
			  int64_t out_features, bool bias)
{
	if (in_features < 1 || out_features < 1 || in_features > INT32_MAX ||
	    out_features > INT32_MAX)
		return nnh5__error(NNH5_ERR_INVALID,
				   "add Linear '%s': in_features %lld and out_features %lld must be in [1, 2^31)",
				   name ? name : "", (long long)in_features, (long long)out_features);
	nnh5__layer *l;
	int rc = add_layer(&l, m, name, NNH5_LAYER_LINEAR);
	if (rc)
		return rc;
	l->out_features = out_features;
	l->has_bias = bias;
	nnh5_tensor *w, *b;
	rc = nnh5__layer_alloc_params(&w, &b, m, l, in_features);
	if (rc) {
		drop_last_layer(m);
		return rc;
	}
	nnh5__layer_install_params(m, l, in_features, w, b);
	m->n_layers++;
	return NNH5_OK;
}

int nnh5_model_add_lazy_linear(nnh5_model *m, const char *name, int64_t out_features, bool bias)
{
	if (out_features < 1 || out_features > INT32_MAX)
		return nnh5__error(NNH5_ERR_INVALID,
				   "add LazyLinear '%s': out_features %lld must be in [1, 2^31)",
				   name ? name : "", (long long)out_features);
	nnh5__layer *l;
	int rc = add_layer(&l, m, name, NNH5_LAYER_LAZY_LINEAR);
	if (rc)
		return rc;
	l->out_features = out_features;
	l->has_bias = bias;
	m->n_layers++;
	return NNH5_OK;
}

static int add_simple(nnh5_model *m, const char *name, nnh5_layer_type type)
{
	nnh5__layer *l;
	int rc = add_layer(&l, m, name, type);
	if (rc)
		return rc;
	m->n_layers++;
	return NNH5_OK;
}

int nnh5_model_add_relu(nnh5_model *m, const char *name)
{
	return add_simple(m, name, NNH5_LAYER_RELU);
}

int nnh5_model_add_sigmoid(nnh5_model *m, const char *name)
{
	return add_simple(m, name, NNH5_LAYER_SIGMOID);
}

int nnh5_model_add_tanh(nnh5_model *m, const char *name)
{
	return add_simple(m, name, NNH5_LAYER_TANH);
}

int nnh5_model_add_gelu(nnh5_model *m, const char *name)
{
	return add_simple(m, name, NNH5_LAYER_GELU);
}

int nnh5_model_add_flatten(nnh5_model *m, const char *name, int64_t start_dim, int64_t end_dim)
{
	if (start_dim < -NNH5_MAX_NDIM || start_dim >= NNH5_MAX_NDIM ||
	    end_dim < -NNH5_MAX_NDIM || end_dim >= NNH5_MAX_NDIM)
		return nnh5__error(NNH5_ERR_INVALID,
				   "add Flatten '%s': start_dim %lld, end_dim %lld out of range",
				   name ? name : "", (long long)start_dim, (long long)end_dim);
	nnh5__layer *l;
	int rc = add_layer(&l, m, name, NNH5_LAYER_FLATTEN);
	if (rc)
		return rc;
	l->start_dim = start_dim;
	l->end_dim = end_dim;
	m->n_layers++;
	return NNH5_OK;
}

int nnh5_model_add_dropout(nnh5_model *m, const char *name, double p)
{
	if (!(p >= 0.0 && p <= 1.0))
		return nnh5__error(NNH5_ERR_INVALID,
				   "add Dropout '%s': p %g must be in [0, 1]", name ? name : "", p);
	nnh5__layer *l;
	int rc = add_layer(&l, m, name, NNH5_LAYER_DROPOUT);
	if (rc)
		return rc;
	l->p = p;
	m->n_layers++;
	return NNH5_OK;
}

nnh5_dtype nnh5_model_dtype(const nnh5_model *m)
{
	return m->dtype;
}

size_t nnh5_model_len(const nnh5_model *m)
{
	return m->n_layers;
}

const char *nnh5_model_child_name(const nnh5_model *m, size_t i)
{
	return i < m->n_layers ? m->layers[i].name : NULL;
}

nnh5_layer_type nnh5_model_child_type(const nnh5_model *m, size_t i)
{
	return i < m->n_layers ? m->layers[i].type : (nnh5_layer_type)0;
}

void nnh5_nn_set_num_threads(int n)
{
	openblas_set_num_threads(n < 1 ? 1 : n);
}

int nnh5_nn_get_num_threads(void)
{
	return openblas_get_num_threads();
}

/* Python's repr of a float as torch prints p (0.5, 0.1, 1.0). */
static void format_float(char *buf, size_t n, double v)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	if (!strchr(buf, '.') && !strchr(buf, 'e') && !strchr(buf, 'n') && !strchr(buf, 'i')) {
		size_t len = strlen(buf);
		if (len + 2 < n)
			memcpy(buf + len, ".0", 3);
	}
}

int nnh5_model_format(char **out, const nnh5_model *m)
{
	nnh5__strbuf b = { 0 };
	*out = NULL;
	if (m->n_layers == 0) {
		nnh5__strbuf_printf(&b, "Sequential()");
	} else {
		nnh5__strbuf_printf(&b, "Sequential(\n");
		for (size_t i = 0; i < m->n_layers; i++) {
			const nnh5__layer *l = &m->layers[i];
			char p[40];
			nnh5__strbuf_printf(&b, "  (%s): %s(", l->name, nnh5_layer_type_name(l->type));
			switch (l->type) {
			case NNH5_LAYER_LINEAR:
			case NNH5_LAYER_LAZY_LINEAR:
				nnh5__strbuf_printf(&b, "in_features=%lld, out_features=%lld, bias=%s",
					    (long long)(l->in_features < 0 ? 0 : l->in_features),
					    (long long)l->out_features, l->has_bias ? "True" : "False");
				break;
			case NNH5_LAYER_GELU:
				nnh5__strbuf_printf(&b, "approximate='none'");
				break;
			case NNH5_LAYER_FLATTEN:
				nnh5__strbuf_printf(&b, "start_dim=%lld, end_dim=%lld", (long long)l->start_dim,
					    (long long)l->end_dim);
				break;
			case NNH5_LAYER_DROPOUT:
				format_float(p, sizeof(p), l->p);
				nnh5__strbuf_printf(&b, "p=%s, inplace=False", p);
				break;
			default:
				break;
			}
			nnh5__strbuf_printf(&b, ")\n");
		}
		nnh5__strbuf_printf(&b, ")");
	}
	if (b.oom) {
		nnh5__free(b.p);
		return nnh5__nomem();
	}
	*out = b.p;
	return NNH5_OK;
}

int nnh5__dict_add_view(nnh5_dict *sd, const char *prefix, const char *suffix, nnh5_tensor *t)
{
	char *key = nnh5__malloc(strlen(prefix) + strlen(suffix) + 2);
	if (!key)
		return nnh5__nomem();
	sprintf(key, "%s.%s", prefix, suffix);
	nnh5_tensor *v;
	int rc = nnh5_tensor_view(&v, nnh5_tensor_dtype(t), nnh5_tensor_ndim(t),
				  nnh5_tensor_shape(t), nnh5_tensor_mutable_data(t),
				  nnh5_tensor_nbytes(t));
	if (rc == NNH5_OK) {
		rc = nnh5_dict_set(sd, key, v);
		if (rc)
			nnh5_tensor_free(v);
	}
	nnh5__free(key);
	return rc;
}

/* Views of every parameter (grads false) or of every parameter's gradient, keyed as the state dict. */
static int param_views(nnh5_dict **out, nnh5_model *m, bool grads)
{
	nnh5_dict *sd;
	*out = NULL;
	int rc = nnh5_dict_new(&sd);
	if (rc)
		return rc;
	for (size_t i = 0; i < m->n_layers && rc == NNH5_OK; i++) {
		nnh5__layer *l = &m->layers[i];
		nnh5_tensor *w = grads ? l->grad_weight : l->weight;
		nnh5_tensor *b = grads ? l->grad_bias : l->bias;
		if (w)
			rc = nnh5__dict_add_view(sd, l->name, "weight", w);
		if (rc == NNH5_OK && b)
			rc = nnh5__dict_add_view(sd, l->name, "bias", b);
	}
	if (rc) {
		nnh5_dict_free(sd);
		return rc;
	}
	*out = sd;
	return NNH5_OK;
}

int nnh5_model_state_dict(nnh5_dict **out, nnh5_model *m)
{
	return param_views(out, m, false);
}

int nnh5_model_grads(nnh5_dict **out, nnh5_model *m)
{
	*out = NULL;
	int rc = nnh5__model_ensure_grads(m);
	return rc ? rc : param_views(out, m, true);
}
