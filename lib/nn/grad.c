/*
 * lib/nn/grad.c - training: the forward pass that keeps what the backward
 * pass needs (a tape holding the input, every layer's output and every
 * Dropout's mask), the backward pass on cblas_?gemm / ?gemv / ?ger, and the
 * parameter gradients it accumulates. The tape and the gradient buffers
 * only grow, so a repeated input shape allocates nothing.
 *
 * The element-wise derivatives are written as PyTorch 1.13 writes them
 * (threshold_backward, sigmoid_backward, tanh_backward, GeluBackward), in
 * the model's dtype.
 */
#include "nn/nn_internal.h"
#include "nnh5/rng.h"
#include "nnh5/file.h"
#include "nnh5/nn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

struct nnh5__tape {
	void *buf;          /* the input, each layer's output, each Dropout's mask */
	size_t buf_bytes;
	void *g[2];         /* ping-pong gradients of the layers' outputs */
	size_t g_bytes;
	void *ones;         /* a column of ones for the bias gradient */
	size_t n_ones;
	bool ready;         /* forward_train has filled buf and no backward consumed it */
	size_t n_layers;    /* the model's children when it did */
	size_t in_numel;
	size_t in_ndim;
	int64_t in_shape[NNH5_MAX_NDIM];
	size_t out_ndim;
	int64_t out_shape[NNH5_MAX_NDIM];
};

void nnh5__tape_free(nnh5__tape *t)
{
	if (!t)
		return;
	nnh5__free(t->buf);
	nnh5__free(t->g[0]);
	nnh5__free(t->g[1]);
	nnh5__free(t->ones);
	nnh5__free(t);
}

int nnh5__model_ensure_grads(nnh5_model *m)
{
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__layer *l = &m->layers[i];
		int rc = NNH5_OK;
		if (l->weight && !l->grad_weight)
			rc = nnh5_tensor_new(&l->grad_weight, m->dtype, 2, nnh5_tensor_shape(l->weight));
		if (rc == NNH5_OK && l->bias && !l->grad_bias)
			rc = nnh5_tensor_new(&l->grad_bias, m->dtype, 1, nnh5_tensor_shape(l->bias));
		if (rc)
			return nnh5__error_wrap(rc, "gradients of layer '%s'", l->name);
	}
	return NNH5_OK;
}

int nnh5_model_zero_grad(nnh5_model *m)
{
	int rc = nnh5__model_ensure_grads(m);
	if (rc)
		return rc;
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__layer *l = &m->layers[i];
		if (l->grad_weight)
			memset(nnh5_tensor_mutable_data(l->grad_weight), 0, nnh5_tensor_nbytes(l->grad_weight));
		if (l->grad_bias)
			memset(nnh5_tensor_mutable_data(l->grad_bias), 0, nnh5_tensor_nbytes(l->grad_bias));
	}
	return NNH5_OK;
}

/*
 * Make *p hold at least need bytes (at least one, so that offsets into it
 * are never taken from NULL); the old contents are not kept.
 */
static int grow(void **p, size_t *have, size_t need)
{
	if (need == 0)
		need = 1;
	if (need <= *have)
		return NNH5_OK;
	void *n = nnh5__malloc(need);
	if (!n)
		return nnh5__nomem();
	nnh5__free(*p);
	*p = n;
	*have = need;
	return NNH5_OK;
}

/*
 * Lay the tape out for an input of x's shape (checked by nnh5__model_plan()
 * and materialised): each layer's output offset and size; a Flatten shares
 * its input's place. Then make every buffer big enough.
 */
static int layout(nnh5_model *m, nnh5__tape *t, const nnh5_tensor *x)
{
	int64_t cur[NNH5_MAX_NDIM];
	size_t nd = nnh5_tensor_ndim(x);
	size_t es = nnh5_dtype_size(m->dtype);
	size_t n = nnh5_tensor_numel(x);
	size_t pos = 0, off = n, max_n = n, max_rows = 0;
	memcpy(cur, nnh5_tensor_shape(x), nd * sizeof(int64_t));
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__layer *l = &m->layers[i];
		size_t extra = n;
		if (nnh5__layer_has_params(l)) {
			size_t rows = n / (size_t)l->in_features;
			n = rows * (size_t)l->out_features;
			cur[nd - 1] = l->out_features;
			extra = n;
			if (rows > max_rows)
				max_rows = rows;
		} else if (l->type == NNH5_LAYER_FLATTEN) {
			nnh5__flatten_shape(l, &nd, cur);
			extra = 0;
		} else if (l->type == NNH5_LAYER_DROPOUT) {
			l->tape_mask = off;
			if (__builtin_add_overflow(off, n, &off))
				goto overflow;
		}
		l->tape_out = extra ? off : pos;
		l->tape_numel = n;
		if (__builtin_add_overflow(off, extra, &off))
			goto overflow;
		pos = l->tape_out;
		if (n > max_n)
			max_n = n;
	}
	size_t buf_bytes, g_bytes;
	if (!nnh5__mul_size(off, es, &buf_bytes) || !nnh5__mul_size(max_n, es, &g_bytes))
		goto overflow;
	int rc = grow(&t->buf, &t->buf_bytes, buf_bytes);
	if (rc == NNH5_OK && g_bytes > t->g_bytes) {
		size_t have = t->g_bytes;
		rc = grow(&t->g[0], &have, g_bytes);
		if (rc == NNH5_OK)
			rc = grow(&t->g[1], &t->g_bytes, g_bytes);
	}
	if (rc == NNH5_OK && max_rows > t->n_ones) {
		size_t have = t->n_ones * es;
		rc = grow(&t->ones, &have, max_rows * es);
		if (rc == NNH5_OK) {
			for (size_t k = 0; k < max_rows; k++) {
				if (m->dtype == NNH5_FLOAT32)
					((float *)t->ones)[k] = 1.0f;
				else
					((double *)t->ones)[k] = 1.0;
			}
			t->n_ones = max_rows;
		}
	}
	return rc;
overflow:
	return nnh5__error(NNH5_ERR_OVERFLOW, "forward_train: the tape for input of %zu elements overflows",
			   nnh5_tensor_numel(x));
}

/* Dropout's mask: 0 with probability p, else 1/(1-p) in the model's dtype (torch's noise.div_(1 - p)). */
#define DEFINE_MASK(T, SUF)                                                                    \
	static void dropout_##SUF(T *restrict y, T *restrict mask, const T *restrict x, size_t n,  \
				  double p, nnh5_rng *rng)                                         \
	{                                                                                      \
		T scale = p < 1.0 ? (T)1 / (T)(1.0 - p) : (T)0;                                    \
		for (size_t k = 0; k < n; k++) {                                                   \
			bool keep = p == 0.0 || (p < 1.0 && nnh5_rng_uniform(rng) < 1.0 - p);      \
			mask[k] = keep ? scale : (T)0;                                             \
			y[k] = x[k] * mask[k];                                                     \
		}                                                                                  \
	}

DEFINE_MASK(float, f)
DEFINE_MASK(double, d)

/* Check x, plan, materialise, create gradients and size the tape. Nothing is kept on failure. */
static int train_prepare(nnh5_model *m, const nnh5_tensor *x, nnh5_rng *rng, size_t *out_ndim,
			 int64_t *out_shape)
{
	if (m->tape)
		m->tape->ready = false;
	if (nnh5_tensor_dtype(x) != m->dtype)
		return nnh5__error(NNH5_ERR_INVALID,
				   "forward_train: input dtype %s, the model computes in %s",
				   nnh5_dtype_name(nnh5_tensor_dtype(x)), nnh5_dtype_name(m->dtype));
	int rc = nnh5__model_plan(m, nnh5_tensor_ndim(x), nnh5_tensor_shape(x), out_ndim, out_shape,
				  NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < m->n_layers && !rng; i++) {
		const nnh5__layer *l = &m->layers[i];
		if (l->type == NNH5_LAYER_DROPOUT && l->p > 0.0 && l->p < 1.0)
			return nnh5__error(NNH5_ERR_INVALID,
					   "forward_train: layer '%s' (Dropout, p=%g) draws its mask from a generator, and rng is NULL",
					   l->name, l->p);
	}
	if (!m->tape) {
		m->tape = nnh5__calloc(1, sizeof(*m->tape));
		if (!m->tape)
			return nnh5__nomem();
	}
	rc = nnh5__model_materialise(m, nnh5_tensor_ndim(x), nnh5_tensor_shape(x));
	if (rc == NNH5_OK)
		rc = nnh5__model_ensure_grads(m);
	if (rc == NNH5_OK)
		rc = layout(m, m->tape, x);
	if (rc == NNH5_OK) {
		m->tape->out_ndim = *out_ndim;
		memcpy(m->tape->out_shape, out_shape, *out_ndim * sizeof(int64_t));
	}
	return rc;
}

/* The training forward pass proper, into y; everything is checked and sized. */
static void train_run(nnh5_model *m, const nnh5_tensor *x, void *y, nnh5_rng *rng)
{
	nnh5__tape *t = m->tape;
	nnh5_dtype dt = m->dtype;
	size_t es = nnh5_dtype_size(dt);
	char *base = t->buf;
	size_t n = nnh5_tensor_numel(x);
	const char *in = base;
	if (n)
		memcpy(base, nnh5_tensor_data(x), n * es);
	for (size_t i = 0; i < m->n_layers; i++) {
		const nnh5__layer *l = &m->layers[i];
		char *out = base + l->tape_out * es;
		if (nnh5__layer_has_params(l)) {
			size_t rows = n / (size_t)l->in_features;
			nnh5__linear_forward(dt, out, in, nnh5_tensor_data(l->weight),
					     l->bias ? nnh5_tensor_data(l->bias) : NULL, rows,
					     (size_t)l->in_features, (size_t)l->out_features);
		} else if (nnh5__layer_is_activation(l->type)) {
			nnh5__activations(dt, out, in, 1, n, NULL, &l->type, 1);
		} else if (l->type == NNH5_LAYER_DROPOUT) {
			void *mask = base + l->tape_mask * es;
			if (dt == NNH5_FLOAT32)
				dropout_f((float *)out, mask, (const float *)in, n, l->p, rng);
			else
				dropout_d((double *)out, mask, (const double *)in, n, l->p, rng);
		}
		in = out;
		n = l->tape_numel;
	}
	if (n)
		memcpy(y, in, n * es);
	t->in_numel = nnh5_tensor_numel(x);
	t->in_ndim = nnh5_tensor_ndim(x);
	memcpy(t->in_shape, nnh5_tensor_shape(x), t->in_ndim * sizeof(int64_t));
	t->n_layers = m->n_layers;
	t->ready = true;
}

int nnh5_model_forward_train(nnh5_tensor **out, nnh5_model *m, const nnh5_tensor *x,
			     nnh5_rng *rng)
{
	size_t nd;
	int64_t shape[NNH5_MAX_NDIM];
	*out = NULL;
	int rc = train_prepare(m, x, rng, &nd, shape);
	if (rc == NNH5_OK)
		rc = nnh5_tensor_new(out, m->dtype, nd, shape);
	if (rc == NNH5_OK)
		train_run(m, x, nnh5_tensor_mutable_data(*out), rng);
	return rc;
}

int nnh5_model_forward_train_into(nnh5_model *m, const nnh5_tensor *x, nnh5_tensor *y,
				  nnh5_rng *rng)
{
	size_t nd;
	int64_t shape[NNH5_MAX_NDIM];
	char a[256], b[256];
	if (m->tape)
		m->tape->ready = false;
	if (nnh5_tensor_dtype(y) != m->dtype)
		return nnh5__error(NNH5_ERR_INVALID,
				   "forward_train: output dtype %s, the model computes in %s",
				   nnh5_dtype_name(nnh5_tensor_dtype(y)), nnh5_dtype_name(m->dtype));
	void *yd = nnh5_tensor_mutable_data(y);
	if (!yd && nnh5_tensor_nbytes(y))
		return nnh5__error(NNH5_ERR_INVALID,
				   "forward_train: the output tensor is a read-only view");
	int rc = nnh5__model_plan(m, nnh5_tensor_ndim(x), nnh5_tensor_shape(x), &nd, shape, NULL);
	if (rc)
		return rc;
	if (nd != nnh5_tensor_ndim(y) || memcmp(shape, nnh5_tensor_shape(y), nd * sizeof(int64_t)))
		return nnh5__error(NNH5_ERR_SHAPE,
				   "forward_train: output tensor shape %s, the model gives %s",
				   nnh5__shape_str(a, sizeof(a), nnh5_tensor_ndim(y), nnh5_tensor_shape(y)),
				   nnh5__shape_str(b, sizeof(b), nd, shape));
	rc = train_prepare(m, x, rng, &nd, shape);
	if (rc == NNH5_OK)
		train_run(m, x, yd, rng);
	return rc;
}

/*
 * dx = g * f'(...) for an element-wise layer, from its input x or output y
 * as torch's derivative formulas use them. dx may be g (in place).
 */
#define DEFINE_ACT_BACKWARD(T, SUF, ERF, EXP)                                                  \
	static void act_backward_##SUF(nnh5_layer_type type, T *dx, const T *g, const T *x,       \
				       const T *y, size_t n)                                      \
	{                                                                                      \
		switch (type) {                                                                    \
		case NNH5_LAYER_RELU: /* threshold_backward(grad, result, 0) */                    \
			for (size_t k = 0; k < n; k++)                                             \
				dx[k] = y[k] <= (T)0 ? (T)0 : g[k];                                \
			break;                                                                     \
		case NNH5_LAYER_SIGMOID:                                                           \
			for (size_t k = 0; k < n; k++)                                             \
				dx[k] = g[k] * ((T)1 - y[k]) * y[k];                               \
			break;                                                                     \
		case NNH5_LAYER_TANH:                                                              \
			for (size_t k = 0; k < n; k++)                                             \
				dx[k] = g[k] * ((T)1 - y[k] * y[k]);                               \
			break;                                                                     \
		case NNH5_LAYER_GELU: {                                                            \
			const T alpha = (T)0.70710678118654752440;   /* 1/sqrt(2) */               \
			const T beta = (T)0.39894228040143267794;    /* 1/sqrt(2 pi) */            \
			for (size_t k = 0; k < n; k++) {                                           \
				T cdf = (T)0.5 * ((T)1 + ERF(x[k] * alpha));                       \
				T pdf = beta * EXP(x[k] * x[k] * (T)-0.5);                         \
				dx[k] = g[k] * (cdf + x[k] * pdf);                                 \
			}                                                                          \
			break;                                                                     \
		}                                                                                  \
		default: /* Dropout: y is the mask */                                              \
			for (size_t k = 0; k < n; k++)                                             \
				dx[k] = g[k] * y[k];                                               \
			break;                                                                     \
		}                                                                                  \
	}

DEFINE_ACT_BACKWARD(float, f, erff, expf)
DEFINE_ACT_BACKWARD(double, d, erf, exp)

/*
 * A Linear's backward over rows: dW += g^T x, db += g^T 1, and, if dx is
 * not NULL, dx = g W. One row takes the level-2 routines (?ger, ?gemv),
 * which OpenBLAS runs several times faster than a gemm with one row.
 */
#define DEFINE_LINEAR_BACKWARD(T, SUF, GER, GEMV, GEMM)                                        \
	static void linear_backward_##SUF(const nnh5__layer *l, T *dx, const T *g, const T *x,    \
					  const T *ones, size_t rows)                             \
	{                                                                                      \
		int M = (int)rows, N = (int)l->out_features, K = (int)l->in_features;              \
		const T *w = nnh5_tensor_data(l->weight);                                          \
		T *dw = nnh5_tensor_mutable_data(l->grad_weight);                                  \
		T *db = l->grad_bias ? nnh5_tensor_mutable_data(l->grad_bias) : NULL;              \
		if (rows == 0)                                                                     \
			return;                                                                    \
		if (rows == 1)                                                                     \
			GER(CblasRowMajor, N, K, 1, g, 1, x, 1, dw, K);                            \
		else                                                                               \
			GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1, g, N, x, K, 1,   \
			     dw, K);                                                               \
		if (db)                                                                            \
			GEMV(CblasRowMajor, CblasTrans, M, N, 1, g, N, ones, 1, 1, db, 1);         \
		if (dx && rows == 1)                                                               \
			GEMV(CblasRowMajor, CblasTrans, N, K, 1, w, K, g, 1, 0, dx, 1);            \
		else if (dx)                                                                       \
			GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1, g, N, w, K, 0, \
			     dx, K);                                                               \
	}

DEFINE_LINEAR_BACKWARD(float, f, cblas_sger, cblas_sgemv, cblas_sgemm)
DEFINE_LINEAR_BACKWARD(double, d, cblas_dger, cblas_dgemv, cblas_dgemm)

int nnh5_model_backward(nnh5_tensor **grad_input, nnh5_model *m, const nnh5_tensor *grad_output)
{
	nnh5__tape *t = m->tape;
	nnh5_dtype dt = m->dtype;
	size_t es = nnh5_dtype_size(dt);
	char a[256], b[256];
	nnh5_tensor *gi = NULL;
	if (grad_input)
		*grad_input = NULL;
	if (!t || !t->ready)
		return nnh5__error(NNH5_ERR_INVALID,
				   "backward: no forward_train to go back through (each backward needs its own nnh5_model_forward_train())");
	if (t->n_layers != m->n_layers)
		return nnh5__error(NNH5_ERR_INVALID,
				   "backward: the model had %zu children at forward_train and has %zu now",
				   t->n_layers, m->n_layers);
	if (nnh5_tensor_dtype(grad_output) != dt)
		return nnh5__error(NNH5_ERR_INVALID,
				   "backward: grad_output dtype %s, the model computes in %s",
				   nnh5_dtype_name(nnh5_tensor_dtype(grad_output)), nnh5_dtype_name(dt));
	if (nnh5_tensor_ndim(grad_output) != t->out_ndim ||
	    memcmp(nnh5_tensor_shape(grad_output), t->out_shape, t->out_ndim * sizeof(int64_t)))
		return nnh5__error(NNH5_ERR_SHAPE,
				   "backward: grad_output shape %s, the forward_train output was %s",
				   nnh5__shape_str(a, sizeof(a), nnh5_tensor_ndim(grad_output),
						   nnh5_tensor_shape(grad_output)),
				   nnh5__shape_str(b, sizeof(b), t->out_ndim, t->out_shape));
	if (grad_input) {
		int rc = nnh5_tensor_new(&gi, dt, t->in_ndim, t->in_shape);
		if (rc)
			return rc;
	}

	/* without grad_input, nothing below the first Linear needs a gradient */
	size_t first = m->n_layers;
	for (size_t i = m->n_layers; i-- > 0;)
		if (nnh5__layer_has_params(&m->layers[i]))
			first = i;
	size_t stop = gi ? 0 : first;
	const char *base = t->buf;
	const void *g = nnh5_tensor_data(grad_output);
	int g_ws = -1; /* which buffer g is; -1 for the caller's grad_output */
	for (size_t i = m->n_layers; i-- > stop;) {
		const nnh5__layer *l = &m->layers[i];
		const char *x = base + (i ? m->layers[i - 1].tape_out : 0) * es;
		size_t n = i ? m->layers[i - 1].tape_numel : t->in_numel;
		/* element-wise gradients work in place once g is one of ours */
		void *dst = t->g[g_ws == 0 ? 1 : 0];
		if (nnh5__layer_has_params(l)) {
			bool need_dx = gi || i > first;
			size_t rows = n / (size_t)l->in_features;
			if (dt == NNH5_FLOAT32)
				linear_backward_f(l, need_dx ? dst : NULL, g, (const float *)x, t->ones,
						  rows);
			else
				linear_backward_d(l, need_dx ? dst : NULL, g, (const double *)x, t->ones,
						  rows);
			if (!need_dx)
				break;
		} else if (l->type == NNH5_LAYER_FLATTEN) {
			continue;
		} else {
			const char *y = base + (l->type == NNH5_LAYER_DROPOUT ? l->tape_mask : l->tape_out) * es;
			if (g_ws >= 0)
				dst = t->g[g_ws];
			if (dt == NNH5_FLOAT32)
				act_backward_f(l->type, dst, g, (const float *)x, (const float *)y, n);
			else
				act_backward_d(l->type, dst, g, (const double *)x, (const double *)y, n);
		}
		g = dst;
		g_ws = dst == t->g[0] ? 0 : 1;
	}
	t->ready = false;
	if (gi) {
		if (t->in_numel)
			memcpy(nnh5_tensor_mutable_data(gi), g, t->in_numel * es);
		*grad_input = gi;
	}
	return NNH5_OK;
}
