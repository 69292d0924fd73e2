/*
 * lib/nn/optim.c - SGD and Adam with PyTorch 1.13's update rules, element
 * by element in the model's dtype, and their state dicts: hyperparameters
 * and the step count as scalars, the per-parameter buffers as views, loaded
 * back strictly (every key, dtype and shape checked before anything
 * changes) so that a resumed run continues bit for bit.
 */
#include "nn/nn_internal.h"
#include "nnh5/train.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/nn.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One parameter the optimizer updates. */
typedef struct param {
	char *key;           /* its state-dict key, "hidden.weight" */
	nnh5_tensor *p;      /* the model's parameter (borrowed) */
	nnh5_tensor *g;      /* its gradient (borrowed) */
	nnh5_tensor *buf[2]; /* SGD: momentum buffer (NULL without momentum); Adam: exp_avg, exp_avg_sq */
} param;

/* The hyperparameters of either kind. */
typedef struct hyper {
	double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
	bool nesterov;
} hyper;

struct nnh5_optim {
	nnh5_optim_kind kind;
	nnh5_dtype dtype;
	hyper h;
	int64_t step;
	param *params;
	size_t n_params;
};

/* The scalar keys of each kind's state dict, in order, and its per-parameter buffers. */
static const char *const sgd_keys[] = { "lr", "momentum", "dampening", "weight_decay",
					"nesterov", "step" };
static const char *const adam_keys[] = { "lr", "betas", "eps", "weight_decay", "step" };
static const char *const sgd_bufs[] = { "momentum_buffer" };
static const char *const adam_bufs[] = { "exp_avg", "exp_avg_sq" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *kind_name(nnh5_optim_kind k)
{
	return k == NNH5_OPTIM_ADAM ? "Adam" : "SGD";
}

static const char *const *scalar_keys(nnh5_optim_kind k, size_t *n)
{
	*n = k == NNH5_OPTIM_ADAM ? COUNT(adam_keys) : COUNT(sgd_keys);
	return k == NNH5_OPTIM_ADAM ? adam_keys : sgd_keys;
}

/* The buffer names kept per parameter with these hyperparameters. */
static const char *const *buffer_names(nnh5_optim_kind k, const hyper *h, size_t *n)
{
	if (k == NNH5_OPTIM_ADAM) {
		*n = COUNT(adam_bufs);
		return adam_bufs;
	}
	*n = h->momentum != 0.0 ? COUNT(sgd_bufs) : 0;
	return sgd_bufs;
}

/* The hyperparameters' ranges, as torch.optim checks them (and finiteness). */
static int check_hyper(nnh5_optim_kind k, const hyper *h, const char *what)
{
	if (!(h->lr >= 0.0 && isfinite(h->lr)))
		return nnh5__error(NNH5_ERR_INVALID, "%s: lr %g must be >= 0 and finite", what, h->lr);
	if (!(h->weight_decay >= 0.0 && isfinite(h->weight_decay)))
		return nnh5__error(NNH5_ERR_INVALID, "%s: weight_decay %g must be >= 0 and finite",
				   what, h->weight_decay);
	if (k == NNH5_OPTIM_SGD) {
		if (!(h->momentum >= 0.0 && isfinite(h->momentum)))
			return nnh5__error(NNH5_ERR_INVALID, "%s: momentum %g must be >= 0 and finite",
					   what, h->momentum);
		if (!isfinite(h->dampening))
			return nnh5__error(NNH5_ERR_INVALID, "%s: dampening %g must be finite", what,
					   h->dampening);
		if (h->nesterov && (h->momentum <= 0.0 || h->dampening != 0.0))
			return nnh5__error(NNH5_ERR_INVALID,
					   "%s: nesterov needs momentum > 0 and dampening 0 (momentum %g, dampening %g)",
					   what, h->momentum, h->dampening);
		return NNH5_OK;
	}
	if (!(h->beta1 >= 0.0 && h->beta1 < 1.0))
		return nnh5__error(NNH5_ERR_INVALID, "%s: beta1 %g must be in [0, 1)", what, h->beta1);
	if (!(h->beta2 >= 0.0 && h->beta2 < 1.0))
		return nnh5__error(NNH5_ERR_INVALID, "%s: beta2 %g must be in [0, 1)", what, h->beta2);
	if (!(h->eps >= 0.0 && isfinite(h->eps)))
		return nnh5__error(NNH5_ERR_INVALID, "%s: eps %g must be >= 0 and finite", what, h->eps);
	return NNH5_OK;
}

/* New zero buffers, nb per parameter, into bufs[i * nb + j]; all or nothing. */
static int new_buffers(nnh5_tensor **bufs, const nnh5_optim *o, size_t nb)
{
	for (size_t i = 0; i < o->n_params * nb; i++) {
		const nnh5_tensor *p = o->params[i / nb].p;
		int rc = nnh5_tensor_new(&bufs[i], o->dtype, nnh5_tensor_ndim(p), nnh5_tensor_shape(p));
		if (rc) {
			while (i-- > 0)
				nnh5_tensor_free(bufs[i]);
			return rc;
		}
	}
	return NNH5_OK;
}

void nnh5_optim_free(nnh5_optim *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_params; i++) {
		nnh5__free(o->params[i].key);
		nnh5_tensor_free(o->params[i].buf[0]);
		nnh5_tensor_free(o->params[i].buf[1]);
	}
	nnh5__free(o->params);
	nnh5__free(o);
}

/* Check the model can be optimised by kind and count its parameters. */
static int check_model(size_t *n_params, const nnh5_model *m, nnh5_optim_kind kind)
{
	const char *what = kind_name(kind);
	size_t nk, n = 0;
	const char *const *keys = scalar_keys(kind, &nk);
	for (size_t i = 0; i < m->n_layers; i++) {
		const nnh5__layer *l = &m->layers[i];
		if (!nnh5__layer_has_params(l))
			continue;
		if (!l->weight)
			return nnh5__error(NNH5_ERR_INVALID,
					   "%s: layer '%s' (LazyLinear) has no parameters yet: run a forward pass or load its weights before creating the optimizer",
					   what, l->name);
		for (size_t k = 0; k < nk; k++)
			if (strcmp(l->name, keys[k]) == 0)
				return nnh5__error(NNH5_ERR_INVALID,
						   "%s: the model's child '%s' has the name of the optimizer's state key '%s' ('%s.weight.*' and '%s' could not be saved together)",
						   what, l->name, keys[k], l->name, keys[k]);
		n += l->bias ? 2 : 1;
	}
	if (n == 0)
		return nnh5__error(NNH5_ERR_INVALID, "%s: the model has no parameters to optimise", what);
	*n_params = n;
	return NNH5_OK;
}

static int optim_new(nnh5_optim **out, nnh5_model *m, nnh5_optim_kind kind, const hyper *h)
{
	size_t n = 0;
	*out = NULL;
	int rc = check_hyper(kind, h, kind_name(kind));
	if (rc == NNH5_OK)
		rc = check_model(&n, m, kind);
	if (rc == NNH5_OK)
		rc = nnh5__model_ensure_grads(m);
	if (rc)
		return rc;
	nnh5_optim *o = nnh5__calloc(1, sizeof(*o));
	if (!o || !(o->params = nnh5__calloc(n, sizeof(*o->params)))) {
		nnh5__free(o);
		return nnh5__nomem();
	}
	o->kind = kind;
	o->dtype = m->dtype;
	o->h = *h;
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__layer *l = &m->layers[i];
		for (int b = 0; b < 2 && l->weight; b++) {
			nnh5_tensor *p = b ? l->bias : l->weight;
			if (!p)
				continue;
			param *q = &o->params[o->n_params++];
			q->p = p;
			q->g = b ? l->grad_bias : l->grad_weight;
			q->key = nnh5__malloc(strlen(l->name) + 8);
			if (!q->key) {
				nnh5_optim_free(o);
				return nnh5__nomem();
			}
			sprintf(q->key, "%s.%s", l->name, b ? "bias" : "weight");
		}
	}
	size_t nb;
	buffer_names(kind, h, &nb);
	nnh5_tensor **all = nnh5__calloc(n * nb + 1, sizeof(*all));
	rc = all ? new_buffers(all, o, nb) : nnh5__nomem();
	for (size_t i = 0; rc == NNH5_OK && i < n * nb; i++)
		o->params[i / nb].buf[i % nb] = all[i];
	nnh5__free(all);
	if (rc) {
		nnh5_optim_free(o);
		return rc;
	}
	*out = o;
	return NNH5_OK;
}

int nnh5_optim_sgd_new(nnh5_optim **out, nnh5_model *m, const nnh5_sgd_options *opts)
{
	nnh5_sgd_options d = NNH5_SGD_OPTIONS_INIT;
	const nnh5_sgd_options *s = opts ? opts : &d;
	*out = NULL;
	if (s->version != NNH5_SGD_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "SGD: options version %u, expected %d", s->version,
				   NNH5_SGD_OPTIONS_VERSION);
	hyper h = { .lr = s->lr, .momentum = s->momentum, .dampening = s->dampening,
		    .weight_decay = s->weight_decay, .nesterov = s->nesterov };
	return optim_new(out, m, NNH5_OPTIM_SGD, &h);
}

int nnh5_optim_adam_new(nnh5_optim **out, nnh5_model *m, const nnh5_adam_options *opts)
{
	nnh5_adam_options d = NNH5_ADAM_OPTIONS_INIT;
	const nnh5_adam_options *a = opts ? opts : &d;
	*out = NULL;
	if (a->version != NNH5_ADAM_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "Adam: options version %u, expected %d",
				   a->version, NNH5_ADAM_OPTIONS_VERSION);
	hyper h = { .lr = a->lr, .beta1 = a->beta1, .beta2 = a->beta2, .eps = a->eps,
		    .weight_decay = a->weight_decay };
	return optim_new(out, m, NNH5_OPTIM_ADAM, &h);
}

nnh5_optim_kind nnh5_optim_get_kind(const nnh5_optim *o)
{
	return o->kind;
}

int64_t nnh5_optim_steps(const nnh5_optim *o)
{
	return o->step;
}

double nnh5_optim_get_lr(const nnh5_optim *o)
{
	return o->h.lr;
}

int nnh5_optim_set_lr(nnh5_optim *o, double lr)
{
	if (!(lr >= 0.0 && isfinite(lr)))
		return nnh5__error(NNH5_ERR_INVALID, "%s: set_lr: lr %g must be >= 0 and finite",
				   kind_name(o->kind), lr);
	o->h.lr = lr;
	return NNH5_OK;
}

/*
 * The updates, as torch 1.13's _single_tensor_sgd and _single_tensor_adam
 * compute them: hyperparameters converted to T as torch converts a Python
 * float for a tensor of T, a + alpha * b for add(b, alpha), a + v * b * c
 * for addcmul, a + v * b / c for addcdiv, left to right.
 */
#define DEFINE_UPDATES(T, SUF, SQRT)                                                           \
	static void sgd_##SUF(const hyper *h, bool first, param *q)                                \
	{                                                                                      \
		size_t n = nnh5_tensor_numel(q->p);                                                \
		T *restrict p = nnh5_tensor_mutable_data(q->p);                                    \
		const T *restrict g = nnh5_tensor_data(q->g);                                      \
		T *restrict b = q->buf[0] ? nnh5_tensor_mutable_data(q->buf[0]) : NULL;            \
		const T wd = (T)h->weight_decay, mom = (T)h->momentum;                             \
		const T damp = (T)(1.0 - h->dampening), neg_lr = (T)-h->lr;                        \
		for (size_t i = 0; i < n; i++) {                                                   \
			T d = g[i];                                                                \
			if (h->weight_decay != 0.0)                                                \
				d = d + wd * p[i];                                                 \
			if (b) {                                                                   \
				/* torch clones d into a new buffer at the first step */            \
				b[i] = first ? d : b[i] * mom + damp * d;                          \
				d = h->nesterov ? d + mom * b[i] : b[i];                           \
			}                                                                          \
			p[i] = p[i] + neg_lr * d;                                                  \
		}                                                                                  \
	}                                                                                      \
	static void adam_##SUF(const hyper *h, int64_t step, param *q)                             \
	{                                                                                      \
		size_t n = nnh5_tensor_numel(q->p);                                                \
		T *restrict p = nnh5_tensor_mutable_data(q->p);                                    \
		const T *restrict g = nnh5_tensor_data(q->g);                                      \
		T *restrict m1 = nnh5_tensor_mutable_data(q->buf[0]);                              \
		T *restrict m2 = nnh5_tensor_mutable_data(q->buf[1]);                              \
		double bc1 = 1.0 - pow(h->beta1, (double)step);                                    \
		double bc2 = 1.0 - pow(h->beta2, (double)step);                                    \
		const T wd = (T)h->weight_decay, eps = (T)h->eps;                                  \
		const T b1 = (T)h->beta1, c1 = (T)(1.0 - h->beta1);                                \
		const T b2 = (T)h->beta2, c2 = (T)(1.0 - h->beta2);                                \
		const T bc2_sqrt = (T)sqrt(bc2), neg_step = (T)(-(h->lr / bc1));                   \
		for (size_t i = 0; i < n; i++) {                                                   \
			T d = g[i];                                                                \
			if (h->weight_decay != 0.0)                                                \
				d = d + wd * p[i];                                                 \
			m1[i] = m1[i] * b1 + c1 * d;                                               \
			m2[i] = m2[i] * b2 + c2 * d * d;                                           \
			T denom = SQRT(m2[i]) / bc2_sqrt + eps;                                    \
			p[i] = p[i] + neg_step * m1[i] / denom;                                    \
		}                                                                                  \
	}

DEFINE_UPDATES(float, f, sqrtf)
DEFINE_UPDATES(double, d, sqrt)

int nnh5_optim_step(nnh5_optim *o)
{
	bool first = o->step == 0;
	o->step++;
	for (size_t i = 0; i < o->n_params; i++) {
		param *q = &o->params[i];
		if (o->kind == NNH5_OPTIM_SGD && o->dtype == NNH5_FLOAT32)
			sgd_f(&o->h, first, q);
		else if (o->kind == NNH5_OPTIM_SGD)
			sgd_d(&o->h, first, q);
		else if (o->dtype == NNH5_FLOAT32)
			adam_f(&o->h, o->step, q);
		else
			adam_d(&o->h, o->step, q);
	}
	return NNH5_OK;
}

/* A new float64 scalar (n 0) or vector (n > 0) of v under key. */
static int put_f64(nnh5_dict *sd, const char *key, const double *v, size_t n)
{
	nnh5_tensor *t;
	int64_t shape = (int64_t)n;
	int rc = nnh5_tensor_new(&t, NNH5_FLOAT64, n ? 1 : 0, &shape);
	if (rc)
		return rc;
	memcpy(nnh5_tensor_mutable_data(t), v, (n ? n : 1) * sizeof(double));
	rc = nnh5_dict_set(sd, key, t);
	if (rc)
		nnh5_tensor_free(t);
	return rc;
}

static int put_i64(nnh5_dict *sd, const char *key, int64_t v)
{
	nnh5_tensor *t;
	int rc = nnh5_tensor_new(&t, NNH5_INT64, 0, NULL);
	if (rc)
		return rc;
	*(int64_t *)nnh5_tensor_mutable_data(t) = v;
	rc = nnh5_dict_set(sd, key, t);
	if (rc)
		nnh5_tensor_free(t);
	return rc;
}

int nnh5_optim_state_dict(nnh5_dict **out, const nnh5_optim *o)
{
	nnh5_dict *sd;
	const hyper *h = &o->h;
	*out = NULL;
	int rc = nnh5_dict_new(&sd);
	if (rc)
		return rc;
	rc = put_f64(sd, "lr", &h->lr, 0);
	if (o->kind == NNH5_OPTIM_SGD) {
		if (rc == NNH5_OK)
			rc = put_f64(sd, "momentum", &h->momentum, 0);
		if (rc == NNH5_OK)
			rc = put_f64(sd, "dampening", &h->dampening, 0);
		if (rc == NNH5_OK)
			rc = put_f64(sd, "weight_decay", &h->weight_decay, 0);
		if (rc == NNH5_OK)
			rc = put_i64(sd, "nesterov", h->nesterov ? 1 : 0);
	} else {
		double betas[2] = { h->beta1, h->beta2 };
		if (rc == NNH5_OK)
			rc = put_f64(sd, "betas", betas, 2);
		if (rc == NNH5_OK)
			rc = put_f64(sd, "eps", &h->eps, 0);
		if (rc == NNH5_OK)
			rc = put_f64(sd, "weight_decay", &h->weight_decay, 0);
	}
	if (rc == NNH5_OK)
		rc = put_i64(sd, "step", o->step);
	size_t nb;
	const char *const *names = buffer_names(o->kind, h, &nb);
	for (size_t i = 0; i < o->n_params && rc == NNH5_OK; i++)
		for (size_t j = 0; j < nb && rc == NNH5_OK; j++)
			rc = nnh5__dict_add_view(sd, o->params[i].key, names[j], o->params[i].buf[j]);
	if (rc) {
		nnh5_dict_free(sd);
		return rc;
	}
	*out = sd;
	return NNH5_OK;
}

/* One key load_state_dict expects: its dtype and shape, and what the source holds. */
typedef struct expect {
	char *key;
	nnh5_dtype dtype;
	size_t ndim;
	int64_t shape[2];
	const nnh5_tensor *src;
} expect;

/* A problem list of the one load_state_dict message. */
typedef struct problems {
	nnh5__strbuf missing, unexpected, size, dtype;
} problems;

static void note(nnh5__strbuf *b, const char *fmt, const char *key)
{
	nnh5__strbuf_printf(b, b->len ? ", " : "");
	nnh5__strbuf_printf(b, fmt, key);
}

/* The value of a hyperparameter the checks have passed. */
static double f64(const nnh5_dict *sd, const char *key, size_t i)
{
	return ((const double *)nnh5_tensor_data(nnh5_dict_get(sd, key)))[i];
}

static int64_t i64(const nnh5_dict *sd, const char *key)
{
	return *(const int64_t *)nnh5_tensor_data(nnh5_dict_get(sd, key));
}

/* Fill the expected keys of o's kind for sd: the scalars, then the buffers of momentum's choice. */
static int expected_keys(expect **out, size_t *n, const nnh5_optim *o, const nnh5_dict *sd)
{
	size_t nk, nb;
	const char *const *keys = scalar_keys(o->kind, &nk);
	hyper h = o->h;
	const nnh5_tensor *mom = nnh5_dict_get(sd, "momentum");
	/* which buffers the source should have follows its own momentum, when that is readable */
	if (o->kind == NNH5_OPTIM_SGD && mom && nnh5_tensor_dtype(mom) == NNH5_FLOAT64 &&
	    nnh5_tensor_ndim(mom) == 0)
		h.momentum = f64(sd, "momentum", 0);
	const char *const *bufs = buffer_names(o->kind, &h, &nb);
	size_t total = nk + o->n_params * nb;
	expect *e = nnh5__calloc(total, sizeof(*e));
	if (!e)
		return nnh5__nomem();
	for (size_t k = 0; k < total; k++) {
		if (k < nk) {
			bool is_int = strcmp(keys[k], "step") == 0 || strcmp(keys[k], "nesterov") == 0;
			e[k].key = nnh5__strdup(keys[k]);
			e[k].dtype = is_int ? NNH5_INT64 : NNH5_FLOAT64;
			e[k].ndim = strcmp(keys[k], "betas") == 0;
			e[k].shape[0] = 2;
		} else {
			const param *q = &o->params[(k - nk) / nb];
			const char *b = bufs[(k - nk) % nb];
			e[k].key = nnh5__malloc(strlen(q->key) + strlen(b) + 2);
			if (e[k].key)
				sprintf(e[k].key, "%s.%s", q->key, b);
			e[k].dtype = o->dtype;
			e[k].ndim = nnh5_tensor_ndim(q->p);
			memcpy(e[k].shape, nnh5_tensor_shape(q->p), e[k].ndim * sizeof(int64_t));
		}
		if (!e[k].key) {
			while (k-- > 0)
				nnh5__free(e[k].key);
			nnh5__free(e);
			return nnh5__nomem();
		}
		e[k].src = nnh5_dict_get(sd, e[k].key);
	}
	*out = e;
	*n = total;
	return NNH5_OK;
}

/* Compare sd with the expected keys into p; true if all is well. */
static bool compare(problems *p, const expect *e, size_t n, const nnh5_dict *sd)
{
	for (size_t k = 0; k < n; k++) {
		const nnh5_tensor *t = e[k].src;
		char a[256], b[256];
		if (!t) {
			note(&p->missing, "'%s'", e[k].key);
		} else if (nnh5_tensor_ndim(t) != e[k].ndim ||
			   memcmp(nnh5_tensor_shape(t), e[k].shape, e[k].ndim * sizeof(int64_t))) {
			nnh5__strbuf_printf(&p->size, "%s'%s': expected %s, source %s",
					    p->size.len ? ", " : "", e[k].key,
					    nnh5__shape_str(a, sizeof(a), e[k].ndim, e[k].shape),
					    nnh5__shape_str(b, sizeof(b), nnh5_tensor_ndim(t),
							    nnh5_tensor_shape(t)));
		} else if (nnh5_tensor_dtype(t) != e[k].dtype) {
			nnh5__strbuf_printf(&p->dtype, "%s'%s': expected %s, source %s",
					    p->dtype.len ? ", " : "", e[k].key,
					    nnh5_dtype_name(e[k].dtype),
					    nnh5_dtype_name(nnh5_tensor_dtype(t)));
		}
	}
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		const char *key = nnh5_dict_key(sd, i);
		bool known = false;
		for (size_t k = 0; k < n && !known; k++)
			known = strcmp(e[k].key, key) == 0;
		if (!known)
			note(&p->unexpected, "'%s'", key);
	}
	return !p->missing.len && !p->unexpected.len && !p->size.len && !p->dtype.len;
}

/* The one message for p; returns its status. */
static int report(problems *p)
{
	nnh5__strbuf b = { 0 };
	const char *sep = "";
	const struct {
		const char *label;
		nnh5__strbuf *list;
	} parts[] = { { "missing keys", &p->missing }, { "unexpected keys", &p->unexpected },
		      { "size mismatch", &p->size }, { "dtype mismatch", &p->dtype } };
	nnh5__strbuf_printf(&b, "optimizer load_state_dict: ");
	for (size_t i = 0; i < COUNT(parts); i++) {
		if (!parts[i].list->len)
			continue;
		nnh5__strbuf_printf(&b, "%s%s: %s", sep, parts[i].label, parts[i].list->p);
		sep = "; ";
	}
	bool oom = b.oom || p->missing.oom || p->unexpected.oom || p->size.oom || p->dtype.oom;
	int status = p->missing.len || p->unexpected.len || p->size.len ? NNH5_ERR_SHAPE
									  : NNH5_ERR_TYPE;
	int rc = oom ? nnh5__nomem() : nnh5__error(status, "%s", b.p);
	nnh5__free(b.p);
	return rc;
}

/* The other kind's state dict, recognised by a key only it has. */
static int check_kind(const nnh5_optim *o, const nnh5_dict *sd)
{
	bool sgd = nnh5_dict_get(sd, "momentum") != NULL;
	bool adam = nnh5_dict_get(sd, "betas") != NULL;
	if (o->kind == NNH5_OPTIM_SGD && adam && !sgd)
		return nnh5__error(NNH5_ERR_INVALID,
				   "optimizer load_state_dict: the state dict is Adam's (it has 'betas'), this optimizer is SGD");
	if (o->kind == NNH5_OPTIM_ADAM && sgd && !adam)
		return nnh5__error(NNH5_ERR_INVALID,
				   "optimizer load_state_dict: the state dict is SGD's (it has 'momentum'), this optimizer is Adam");
	return NNH5_OK;
}

/* The hyperparameters and step sd holds (keys, dtypes and shapes checked), validated. */
static int read_hyper(hyper *h, int64_t *step, const nnh5_optim *o, const nnh5_dict *sd)
{
	const char *what = "optimizer load_state_dict";
	*h = o->h;
	h->lr = f64(sd, "lr", 0);
	h->weight_decay = f64(sd, "weight_decay", 0);
	if (o->kind == NNH5_OPTIM_SGD) {
		int64_t nesterov = i64(sd, "nesterov");
		h->momentum = f64(sd, "momentum", 0);
		h->dampening = f64(sd, "dampening", 0);
		if (nesterov != 0 && nesterov != 1)
			return nnh5__error(NNH5_ERR_INVALID, "%s: nesterov %lld must be 0 or 1", what,
					   (long long)nesterov);
		h->nesterov = nesterov == 1;
	} else {
		h->beta1 = f64(sd, "betas", 0);
		h->beta2 = f64(sd, "betas", 1);
		h->eps = f64(sd, "eps", 0);
	}
	*step = i64(sd, "step");
	if (*step < 0)
		return nnh5__error(NNH5_ERR_INVALID, "%s: step %lld must be >= 0", what,
				   (long long)*step);
	return check_hyper(o->kind, h, what);
}

int nnh5_optim_load_state_dict(nnh5_optim *o, const nnh5_dict *sd)
{
	expect *e = NULL;
	size_t n = 0, nk, nb;
	problems p = { { 0 }, { 0 }, { 0 }, { 0 } };
	nnh5_tensor **bufs = NULL;
	hyper h;
	int64_t step = 0;

	int rc = check_kind(o, sd);
	if (rc == NNH5_OK)
		rc = expected_keys(&e, &n, o, sd);
	if (rc)
		return rc;
	if (!compare(&p, e, n, sd)) {
		rc = report(&p);
		goto done;
	}
	rc = read_hyper(&h, &step, o, sd);
	if (rc)
		goto done;
	/* SGD gaining momentum needs buffers: made before anything changes */
	scalar_keys(o->kind, &nk);
	buffer_names(o->kind, &h, &nb);
	bool need = nb && !o->params[0].buf[0];
	if (need) {
		bufs = nnh5__calloc(o->n_params * nb, sizeof(*bufs));
		rc = bufs ? new_buffers(bufs, o, nb) : nnh5__nomem();
		if (rc)
			goto done;
	}

	o->h = h;
	o->step = step;
	for (size_t i = 0; i < o->n_params; i++) {
		param *q = &o->params[i];
		for (size_t j = 0; j < 2; j++) {
			if (need && j < nb) {
				q->buf[j] = bufs[i * nb + j];
			} else if (j >= nb) {
				/* SGD without momentum keeps no buffer */
				nnh5_tensor_free(q->buf[j]);
				q->buf[j] = NULL;
			}
			/* memmove: the source may be a view of this very buffer */
			if (q->buf[j])
				memmove(nnh5_tensor_mutable_data(q->buf[j]),
					nnh5_tensor_data(e[nk + i * nb + j].src),
					nnh5_tensor_nbytes(q->buf[j]));
		}
	}
done:
	for (size_t k = 0; k < n; k++)
		nnh5__free(e[k].key);
	nnh5__free(e);
	nnh5__free(p.missing.p);
	nnh5__free(p.unexpected.p);
	nnh5__free(p.size.p);
	nnh5__free(p.dtype.p);
	nnh5__free(bufs);
	return rc;
}
