/*
 * lib/nn/forward.c - the forward pass: shapes checked first, then each Linear
 * on cblas_?gemm (?gemv for one row) with its bias entering through the
 * gemm (beta = 1 over bias rows) and the activations that follow it applied
 * in one pass over the output, through a grow-only ping-pong workspace so
 * that a repeated batch size allocates nothing.
 */
/*
 * The bias-and-activation loops must be vectorised: at -O2 GCC leaves
 * ReLU's compare as a branch that mispredicts on half the elements, which
 * cost more than the seed MLP's whole sgemm (measured: 3.7 ms vs 0.5 ms at
 * batch 1024). -O3 turns the loops into vector blends.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "nn/nn_internal.h"
#include "nnh5/file.h"
#include "nnh5/nn.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* At most this many activations in a row are fused into one pass; more are applied in further passes. */
#define MAX_FUSED 8

bool nnh5__flatten_shape(const nnh5__layer *l, size_t *nd, int64_t *cur)
{
	/* torch treats a scalar as having one dimension here */
	int64_t r = *nd == 0 ? 1 : (int64_t)*nd;
	int64_t s = l->start_dim < 0 ? l->start_dim + r : l->start_dim;
	int64_t e = l->end_dim < 0 ? l->end_dim + r : l->end_dim;
	int64_t prod = 1;

	if (s < 0 || s >= r || e < 0 || e >= r || s > e)
		return false;
	if (*nd == 0) {
		cur[0] = 1;
		*nd = 1;
		return true;
	}
	for (int64_t k = s; k <= e; k++)
		prod *= cur[k];
	cur[s] = prod;
	memmove(&cur[s + 1], &cur[e + 1], (*nd - (size_t)e - 1) * sizeof(int64_t));
	*nd -= (size_t)(e - s);
	return true;
}

int nnh5__model_plan(const nnh5_model *m, size_t ndim, const int64_t *shape, size_t *out_ndim,
		     int64_t *out_shape, size_t *max_numel)
{
	int64_t cur[NNH5_MAX_NDIM];
	size_t nd = ndim;
	size_t maxn = 0;
	if (ndim > NNH5_MAX_NDIM)
		return nnh5__error(NNH5_ERR_INVALID, "forward: input rank %zu > %d", ndim,
				   NNH5_MAX_NDIM);
	memcpy(cur, shape, ndim * sizeof(int64_t));
	for (size_t i = 0; i < m->n_layers; i++) {
		const nnh5__layer *l = &m->layers[i];
		char sbuf[64 * 4];
		if (nnh5__layer_has_params(l)) {
			if (nd == 0)
				return nnh5__error(NNH5_ERR_SHAPE,
						   "forward: layer '%s' (%s): input is a scalar, needs at least one dimension",
						   l->name, nnh5_layer_type_name(l->type));
			if (l->in_features >= 0 && cur[nd - 1] != l->in_features)
				return nnh5__error(NNH5_ERR_SHAPE,
						   "forward: layer '%s' (%s): input shape %s has %lld features, expected in_features %lld",
						   l->name, nnh5_layer_type_name(l->type),
						   nnh5__shape_str(sbuf, sizeof(sbuf), nd, cur),
						   (long long)cur[nd - 1], (long long)l->in_features);
			if (cur[nd - 1] < 1)
				return nnh5__error(NNH5_ERR_SHAPE,
						   "forward: layer '%s' (%s): input shape %s has no features",
						   l->name, nnh5_layer_type_name(l->type),
						   nnh5__shape_str(sbuf, sizeof(sbuf), nd, cur));
			if (cur[nd - 1] > INT_MAX)
				return nnh5__error(NNH5_ERR_OVERFLOW,
						   "forward: layer '%s': %lld input features exceed BLAS's int",
						   l->name, (long long)cur[nd - 1]);
			cur[nd - 1] = l->out_features;
		} else if (l->type == NNH5_LAYER_FLATTEN) {
			if (!nnh5__flatten_shape(l, &nd, cur))
				return nnh5__error(NNH5_ERR_SHAPE,
						   "forward: layer '%s' (Flatten): start_dim %lld, end_dim %lld do not fit input shape %s",
						   l->name, (long long)l->start_dim, (long long)l->end_dim,
						   nnh5__shape_str(sbuf, sizeof(sbuf), nd, cur));
		}
		size_t numel, nbytes;
		int rc = nnh5__shape_size(m->dtype, nd, cur, &numel, &nbytes);
		if (rc)
			return nnh5__error_wrap(rc, "forward: layer '%s'", l->name);
		if (numel > maxn)
			maxn = numel;
	}
	*out_ndim = nd;
	memcpy(out_shape, cur, nd * sizeof(int64_t));
	if (max_numel)
		*max_numel = maxn;
	return NNH5_OK;
}

int nnh5_model_output_shape(size_t *out_ndim, int64_t *out_shape, const nnh5_model *m,
			    size_t ndim, const int64_t *shape)
{
	return nnh5__model_plan(m, ndim, shape, out_ndim, out_shape, NULL);
}

/* The element-wise functions, as torch computes them. relu keeps NaN (NaN < 0 is false). */
static inline float relu_f(float x)
{
	return x < 0.0f ? 0.0f : x;
}
static inline double relu_d(double x)
{
	return x < 0.0 ? 0.0 : x;
}
static inline float sigmoid_f(float x)
{
	return 1.0f / (1.0f + expf(-x));
}
static inline double sigmoid_d(double x)
{
	return 1.0 / (1.0 + exp(-x));
}
static inline float gelu_f(float x)
{
	return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}
static inline double gelu_d(double x)
{
	return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
}
static inline float ident_f(float x)
{
	return x;
}
static inline double ident_d(double x)
{
	return x;
}

/*
 * y[r][c] = act(y[r][c] + bias[c]) in place over rows x cols (bias may be
 * NULL). One loop per activation, on restrict pointers, so that each
 * vectorises (ReLU becomes a compare-and-mask: no branch to mispredict).
 */
#define APPLY_LOOP(T, F)                                                                       \
	do {                                                                                       \
		if (bias) {                                                                        \
			for (size_t r = 0; r < rows; r++) {                                        \
				T *restrict yr = y + r * cols;                                     \
				for (size_t c = 0; c < cols; c++)                                  \
					yr[c] = F(yr[c] + bias[c]);                                \
			}                                                                          \
		} else {                                                                           \
			size_t n = rows * cols;                                                    \
			for (size_t k = 0; k < n; k++)                                             \
				y[k] = F(y[k]);                                                    \
		}                                                                                  \
	} while (0)

#define DEFINE_APPLY(T, SUF)                                                                   \
	static void apply_##SUF(T *restrict y, size_t rows, size_t cols, const T *restrict bias,   \
				nnh5_layer_type act)                                               \
	{                                                                                          \
		switch (act) {                                                                     \
		case NNH5_LAYER_RELU:                                                              \
			APPLY_LOOP(T, relu_##SUF);                                                 \
			break;                                                                     \
		case NNH5_LAYER_SIGMOID:                                                           \
			APPLY_LOOP(T, sigmoid_##SUF);                                              \
			break;                                                                     \
		case NNH5_LAYER_TANH:                                                              \
			APPLY_LOOP(T, TANH_##SUF);                                                 \
			break;                                                                     \
		case NNH5_LAYER_GELU:                                                              \
			APPLY_LOOP(T, gelu_##SUF);                                                 \
			break;                                                                     \
		default:                                                                           \
			if (bias)                                                                  \
				APPLY_LOOP(T, ident_##SUF);                                        \
			break;                                                                     \
		}                                                                                  \
	}

#define TANH_f tanhf
#define TANH_d tanh

DEFINE_APPLY(float, f)
DEFINE_APPLY(double, d)

void nnh5__activations(nnh5_dtype dt, void *dst, const void *src, size_t rows, size_t cols,
		     const void *bias, const nnh5_layer_type *acts, size_t nacts)
{
	if (dst != src)
		memcpy(dst, src, rows * cols * nnh5_dtype_size(dt));
	if (!bias && nacts == 0)
		return;
	nnh5_layer_type first = nacts ? acts[0] : (nnh5_layer_type)0;
	if (dt == NNH5_FLOAT32)
		apply_f(dst, rows, cols, bias, first);
	else
		apply_d(dst, rows, cols, bias, first);
	for (size_t k = 1; k < nacts; k++) {
		if (dt == NNH5_FLOAT32)
			apply_f(dst, rows, cols, NULL, acts[k]);
		else
			apply_d(dst, rows, cols, NULL, acts[k]);
	}
}

/*
 * The bias goes in through BLAS: y starts as bias rows and the gemm runs
 * with beta = 1, which costs what BLAS's own zeroing of y (beta = 0) costs,
 * so the bias is free and only activations need a pass of their own.
 */
void nnh5__linear_forward(nnh5_dtype dt, void *y, const void *x, const void *w, const void *bias,
			  size_t rows, size_t in, size_t out)
{
	if (rows == 0 || out == 0)
		return;
	size_t es = nnh5_dtype_size(dt);
	if (bias)
		for (size_t r = 0; r < rows; r++)
			memcpy((char *)y + r * out * es, bias, out * es);
	int M = (int)rows, N = (int)out, K = (int)in;
	if (dt == NNH5_FLOAT32) {
		float beta = bias ? 1.0f : 0.0f;
		if (rows == 1)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, w, K, x, 1, beta, y, 1);
		else
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K,
				    beta, y, N);
	} else {
		double beta = bias ? 1.0 : 0.0;
		if (rows == 1)
			cblas_dgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0, w, K, x, 1, beta, y, 1);
		else
			cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, x, K, w, K,
				    beta, y, N);
	}
}

int nnh5__model_materialise(nnh5_model *m, size_t ndim, const int64_t *shape)
{
	int64_t cur[NNH5_MAX_NDIM];
	size_t nd = ndim;
	bool need = false;
	for (size_t i = 0; i < m->n_layers; i++)
		need |= m->layers[i].type == NNH5_LAYER_LAZY_LINEAR && !m->layers[i].weight;
	if (!need)
		return NNH5_OK;
	/* nnh5__model_plan() succeeded already, so the walk below only tracks the width of each LazyLinear's input */
	memcpy(cur, shape, ndim * sizeof(int64_t));
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__layer *l = &m->layers[i];
		if (nnh5__layer_has_params(l)) {
			if (!l->weight) {
				nnh5_tensor *w, *b;
				int rc = nnh5__layer_alloc_params(&w, &b, m, l, cur[nd - 1]);
				if (rc)
					return rc;
				nnh5__layer_install_params(m, l, cur[nd - 1], w, b);
			}
			cur[nd - 1] = l->out_features;
		} else if (l->type == NNH5_LAYER_FLATTEN) {
			nnh5__flatten_shape(l, &nd, cur);
		}
	}
	return NNH5_OK;
}

/*
 * A context: a workspace of its own over a model it only reads. The model
 * pointer is const on purpose: nothing reached from a context may write to
 * the model, so any number of contexts can run on one model at once.
 */
struct nnh5_model_ctx {
	const nnh5_model *m;
	nnh5__workspace ws;
};

void nnh5__workspace_release(nnh5__workspace *ws)
{
	nnh5__free(ws->buf[0]);
	nnh5__free(ws->buf[1]);
	ws->buf[0] = ws->buf[1] = NULL;
	ws->bytes = 0;
}

/* Make sure both workspace buffers hold bytes. */
static int reserve(nnh5__workspace *ws, size_t bytes)
{
	if (bytes <= ws->bytes)
		return NNH5_OK;
	void *a = nnh5__malloc(bytes);
	void *b = nnh5__malloc(bytes);
	if (!a || !b) {
		nnh5__free(a);
		nnh5__free(b);
		return nnh5__nomem();
	}
	nnh5__workspace_release(ws);
	ws->buf[0] = a;
	ws->buf[1] = b;
	ws->bytes = bytes;
	return NNH5_OK;
}

/*
 * The forward pass proper; x and y are checked, the model materialised.
 * It reads the model and writes only ws and ydata.
 */
static void run(const nnh5_model *m, nnh5__workspace *ws, const nnh5_tensor *x, void *ydata)
{
	nnh5_dtype dt = m->dtype;
	size_t es = nnh5_dtype_size(dt);
	const void *src = nnh5_tensor_data(x);
	size_t numel = nnh5_tensor_numel(x);
	int src_ws = -1; /* which workspace buffer src is, -1 for x */

	/* the index of the last group that computes something writes into y */
	size_t last = SIZE_MAX;
	for (size_t i = 0; i < m->n_layers; i++)
		if (nnh5__layer_has_params(&m->layers[i]) ||
		    nnh5__layer_is_activation(m->layers[i].type))
			last = i;

	size_t i = 0;
	bool wrote_y = false;
	while (i < m->n_layers) {
		const nnh5__layer *lin = nnh5__layer_has_params(&m->layers[i]) ? &m->layers[i] : NULL;
		size_t j = lin ? i + 1 : i;
		nnh5_layer_type acts[MAX_FUSED];
		size_t nacts = 0;
		bool is_last = false;
		/* the run of activations, Dropouts and Flattens that follows: nothing there moves data */
		while (j < m->n_layers && !nnh5__layer_has_params(&m->layers[j]) &&
		       (nacts < MAX_FUSED || !nnh5__layer_is_activation(m->layers[j].type))) {
			if (nnh5__layer_is_activation(m->layers[j].type))
				acts[nacts++] = m->layers[j].type;
			j++;
		}
		for (size_t k = i; k < j; k++)
			is_last |= k == last;
		if (!lin && nacts == 0) {
			i = j;
			continue;
		}
		void *dst;
		int dst_ws;
		if (is_last) {
			dst = ydata;
			dst_ws = -1;
		} else if (!lin && src_ws >= 0) {
			dst = ws->buf[src_ws]; /* activations alone work in place */
			dst_ws = src_ws;
		} else {
			dst_ws = src_ws == 0 ? 1 : 0;
			dst = ws->buf[dst_ws];
		}
		if (lin) {
			/* in_features >= 1 (checked when adding or planning), so the row count is exact */
			size_t width = (size_t)lin->in_features, out = (size_t)lin->out_features;
			size_t rows = numel / width;
			nnh5__linear_forward(dt, dst, src, nnh5_tensor_data(lin->weight),
			       lin->bias ? nnh5_tensor_data(lin->bias) : NULL, rows, width, out);
			nnh5__activations(dt, dst, dst, rows, out, NULL, acts, nacts);
			numel = rows * out;
		} else {
			nnh5__activations(dt, dst, src, 1, numel, NULL, acts, nacts);
		}
		src = dst;
		src_ws = dst_ws;
		wrote_y |= is_last;
		i = j;
	}
	if (!wrote_y && numel)
		memcpy(ydata, src, numel * es);
}

/* Check x's dtype and plan its shapes through the model (which is not changed). */
static int plan_input(const nnh5_model *m, const nnh5_tensor *x, size_t *out_ndim,
		      int64_t *out_shape, size_t *maxn)
{
	if (nnh5_tensor_dtype(x) != m->dtype)
		return nnh5__error(NNH5_ERR_INVALID,
				   "forward: input dtype %s, the model computes in %s",
				   nnh5_dtype_name(nnh5_tensor_dtype(x)), nnh5_dtype_name(m->dtype));
	return nnh5__model_plan(m, nnh5_tensor_ndim(x), nnh5_tensor_shape(x), out_ndim, out_shape,
				maxn);
}

/* Check y against the dtype and the shape the model gives. */
static int check_output(const nnh5_model *m, nnh5_tensor *y, size_t nd,
			const int64_t *shape)
{
	char a[256], b[256];
	if (nnh5_tensor_dtype(y) != m->dtype)
		return nnh5__error(NNH5_ERR_INVALID, "forward: output dtype %s, the model computes in %s",
				   nnh5_dtype_name(nnh5_tensor_dtype(y)), nnh5_dtype_name(m->dtype));
	if (!nnh5_tensor_mutable_data(y) && nnh5_tensor_nbytes(y))
		return nnh5__error(NNH5_ERR_INVALID, "forward: the output tensor is a read-only view");
	if (nd != nnh5_tensor_ndim(y) || memcmp(shape, nnh5_tensor_shape(y), nd * sizeof(int64_t)))
		return nnh5__error(NNH5_ERR_SHAPE, "forward: output tensor shape %s, the model gives %s",
				   nnh5__shape_str(a, sizeof(a), nnh5_tensor_ndim(y), nnh5_tensor_shape(y)),
				   nnh5__shape_str(b, sizeof(b), nd, shape));
	return NNH5_OK;
}

/*
 * Check x against the model and plan, then reserve ws. A LazyLinear that has
 * not inferred its input is materialised when the call may write the model
 * (own is m itself), and refused through a context (own NULL): there the
 * model is shared, and materialising writes its parameters and generator.
 */
static int prepare(const nnh5_model *m, nnh5_model *own, nnh5__workspace *ws,
		   const nnh5_tensor *x, size_t *out_ndim, int64_t *out_shape)
{
	size_t maxn;
	int rc = plan_input(m, x, out_ndim, out_shape, &maxn);
	if (rc)
		return rc;
	if (own) {
		rc = nnh5__model_materialise(own, nnh5_tensor_ndim(x), nnh5_tensor_shape(x));
		if (rc)
			return rc;
	} else {
		for (size_t i = 0; i < m->n_layers; i++)
			if (m->layers[i].type == NNH5_LAYER_LAZY_LINEAR && !m->layers[i].weight)
				return nnh5__error(NNH5_ERR_INVALID,
						   "forward: layer '%s' (LazyLinear) has not inferred its input: run nnh5_model_forward() once, or load its parameters, before sharing the model",
						   m->layers[i].name);
	}
	return reserve(ws, maxn * nnh5_dtype_size(m->dtype));
}

/* The _into calls: y is checked before anything (the model included) changes. */
static int forward_into(const nnh5_model *m, nnh5_model *own, nnh5__workspace *ws,
			const nnh5_tensor *x, nnh5_tensor *y)
{
	size_t nd;
	int64_t shape[NNH5_MAX_NDIM];
	int rc = plan_input(m, x, &nd, shape, NULL);
	if (rc)
		return rc;
	rc = check_output(m, y, nd, shape);
	if (rc)
		return rc;
	rc = prepare(m, own, ws, x, &nd, shape);
	if (rc)
		return rc;
	run(m, ws, x, nnh5_tensor_mutable_data(y));
	return NNH5_OK;
}

/* The calls that return a new output tensor. */
static int forward_new(nnh5_tensor **out, const nnh5_model *m, nnh5_model *own,
		       nnh5__workspace *ws, const nnh5_tensor *x)
{
	size_t nd;
	int64_t shape[NNH5_MAX_NDIM];
	*out = NULL;
	int rc = prepare(m, own, ws, x, &nd, shape);
	if (rc)
		return rc;
	nnh5_tensor *y;
	rc = nnh5_tensor_new(&y, m->dtype, nd, shape);
	if (rc)
		return rc;
	run(m, ws, x, nnh5_tensor_mutable_data(y));
	*out = y;
	return NNH5_OK;
}

int nnh5_model_forward_into(nnh5_model *m, const nnh5_tensor *x, nnh5_tensor *y)
{
	return forward_into(m, m, &m->ws, x, y);
}

int nnh5_model_forward(nnh5_tensor **out, nnh5_model *m, const nnh5_tensor *x)
{
	return forward_new(out, m, m, &m->ws, x);
}

int nnh5_model_ctx_new(nnh5_model_ctx **out, const nnh5_model *m)
{
	*out = NULL;
	nnh5_model_ctx *c = nnh5__calloc(1, sizeof(*c));
	if (!c)
		return nnh5__nomem();
	c->m = m;
	*out = c;
	return NNH5_OK;
}

void nnh5_model_ctx_free(nnh5_model_ctx *c)
{
	if (!c)
		return;
	nnh5__workspace_release(&c->ws);
	nnh5__free(c);
}

const nnh5_model *nnh5_model_ctx_model(const nnh5_model_ctx *c)
{
	return c->m;
}

int nnh5_model_forward_ctx(nnh5_tensor **out, nnh5_model_ctx *c, const nnh5_tensor *x)
{
	return forward_new(out, c->m, NULL, &c->ws, x);
}

int nnh5_model_forward_ctx_into(nnh5_model_ctx *c, const nnh5_tensor *x, nnh5_tensor *y)
{
	return forward_into(c->m, NULL, &c->ws, x, y);
}
