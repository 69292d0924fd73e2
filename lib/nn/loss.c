/*
 * lib/nn/loss.c - the losses training needs, with their gradients:
 * softmax cross-entropy over class indices (a log-sum-exp shifted by each
 * row's maximum, so large logits do not overflow) and mean-squared error,
 * both with mean reduction as torch.nn's defaults. Sums are taken in
 * double; the gradient comes back in the input's dtype.
 */
#include "nn/nn_internal.h"
#include "nnh5/train.h"

#include <math.h>
#include <string.h>

static bool is_compute_dtype(nnh5_dtype dt)
{
	return dt == NNH5_FLOAT32 || dt == NNH5_FLOAT64;
}

static double get(nnh5_dtype dt, const void *p, size_t i)
{
	return dt == NNH5_FLOAT32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void put(nnh5_dtype dt, void *p, size_t i, double v)
{
	if (dt == NNH5_FLOAT32)
		((float *)p)[i] = (float)v;
	else
		((double *)p)[i] = v;
}

/* *grad, if grad is not NULL, a new zero tensor shaped and typed as like; *data its elements. */
static int new_grad(void **data, nnh5_tensor **grad, const nnh5_tensor *like)
{
	*data = NULL;
	if (!grad)
		return NNH5_OK;
	int rc = nnh5_tensor_new(grad, nnh5_tensor_dtype(like), nnh5_tensor_ndim(like),
				 nnh5_tensor_shape(like));
	if (rc == NNH5_OK)
		*data = nnh5_tensor_mutable_data(*grad);
	return rc;
}

int nnh5_loss_cross_entropy(double *loss, nnh5_tensor **grad, const nnh5_tensor *logits,
			    const nnh5_tensor *targets)
{
	nnh5_dtype dt = nnh5_tensor_dtype(logits);
	size_t nd = nnh5_tensor_ndim(logits);
	char a[256], b[256];
	if (grad)
		*grad = NULL;
	if (!is_compute_dtype(dt))
		return nnh5__error(NNH5_ERR_INVALID,
				   "cross_entropy: logits dtype %s, expected float32 or float64",
				   nnh5_dtype_name(dt));
	if (nnh5_tensor_dtype(targets) != NNH5_INT64)
		return nnh5__error(NNH5_ERR_INVALID,
				   "cross_entropy: targets dtype %s, expected int64 class indices",
				   nnh5_dtype_name(nnh5_tensor_dtype(targets)));
	nnh5__shape_str(a, sizeof(a), nd, nnh5_tensor_shape(logits));
	nnh5__shape_str(b, sizeof(b), nnh5_tensor_ndim(targets), nnh5_tensor_shape(targets));
	if (nd != 1 && nd != 2)
		return nnh5__error(NNH5_ERR_SHAPE,
				   "cross_entropy: logits shape %s, expected (N, C) or (C,)", a);
	if (nnh5_tensor_ndim(targets) != nd - 1 ||
	    (nd == 2 && nnh5_tensor_dim(targets, 0) != nnh5_tensor_dim(logits, 0)))
		return nnh5__error(NNH5_ERR_SHAPE,
				   "cross_entropy: targets shape %s does not match logits shape %s (expected %s)",
				   b, a, nd == 2 ? "(N,) for logits (N, C)" : "() for logits (C,)");
	size_t rows = nd == 2 ? (size_t)nnh5_tensor_dim(logits, 0) : 1;
	size_t classes = (size_t)nnh5_tensor_dim(logits, nd - 1);
	if (rows == 0 || classes == 0)
		return nnh5__error(NNH5_ERR_SHAPE,
				   "cross_entropy: logits shape %s: %s", a,
				   rows == 0 ? "the batch is empty" : "there are no classes");
	const int64_t *tg = nnh5_tensor_data(targets);
	for (size_t r = 0; r < rows; r++)
		if (tg[r] < 0 || (uint64_t)tg[r] >= classes)
			return nnh5__error(NNH5_ERR_INVALID,
					   "cross_entropy: target %lld at index %zu is out of range for %zu classes",
					   (long long)tg[r], r, classes);

	void *gd;
	int rc = new_grad(&gd, grad, logits);
	if (rc)
		return rc;
	const void *x = nnh5_tensor_data(logits);
	double total = 0.0;
	for (size_t r = 0; r < rows; r++) {
		size_t o = r * classes;
		double mx = get(dt, x, o);
		for (size_t c = 1; c < classes; c++) {
			double v = get(dt, x, o + c);
			if (v > mx || isnan(v))
				mx = v;
		}
		/* all -inf (or +inf somewhere): torch gives NaN or inf the same way */
		double s = 0.0;
		for (size_t c = 0; c < classes; c++)
			s += exp(get(dt, x, o + c) - mx);
		double lse = mx + log(s);
		total += lse - get(dt, x, o + (size_t)tg[r]);
		if (gd) {
			for (size_t c = 0; c < classes; c++) {
				double p = exp(get(dt, x, o + c) - mx) / s;
				put(dt, gd, o + c, (p - (c == (size_t)tg[r] ? 1.0 : 0.0)) / (double)rows);
			}
		}
	}
	*loss = total / (double)rows;
	return NNH5_OK;
}

int nnh5_loss_mse(double *loss, nnh5_tensor **grad, const nnh5_tensor *input,
		  const nnh5_tensor *target)
{
	nnh5_dtype dt = nnh5_tensor_dtype(input);
	char a[256], b[256];
	if (grad)
		*grad = NULL;
	if (!is_compute_dtype(dt) || nnh5_tensor_dtype(target) != dt)
		return nnh5__error(NNH5_ERR_INVALID,
				   "mse: input dtype %s and target dtype %s, expected both float32 or both float64",
				   nnh5_dtype_name(dt), nnh5_dtype_name(nnh5_tensor_dtype(target)));
	size_t nd = nnh5_tensor_ndim(input);
	if (nd != nnh5_tensor_ndim(target) ||
	    memcmp(nnh5_tensor_shape(input), nnh5_tensor_shape(target), nd * sizeof(int64_t)))
		return nnh5__error(NNH5_ERR_SHAPE, "mse: input shape %s, target shape %s: they must be equal",
				   nnh5__shape_str(a, sizeof(a), nd, nnh5_tensor_shape(input)),
				   nnh5__shape_str(b, sizeof(b), nnh5_tensor_ndim(target),
						   nnh5_tensor_shape(target)));
	size_t n = nnh5_tensor_numel(input);
	if (n == 0)
		return nnh5__error(NNH5_ERR_SHAPE, "mse: input shape %s has no elements",
				   nnh5__shape_str(a, sizeof(a), nd, nnh5_tensor_shape(input)));
	void *gd;
	int rc = new_grad(&gd, grad, input);
	if (rc)
		return rc;
	const void *x = nnh5_tensor_data(input), *y = nnh5_tensor_data(target);
	double total = 0.0;
	for (size_t i = 0; i < n; i++) {
		double d = get(dt, x, i) - get(dt, y, i);
		total += d * d;
		if (gd)
			put(dt, gd, i, 2.0 * d / (double)n);
	}
	*loss = total / (double)n;
	return NNH5_OK;
}
