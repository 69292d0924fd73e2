/*
 * tests/nn/test_train.c - unit tests of training (nnh5/train.h): every
 * layer's and both losses' gradients against central finite differences in
 * float64 (several shapes, batch 1 included, multi-layer models, Dropout
 * with a fixed mask), float32 gradients against float64 ones, Dropout's
 * semantics, optimizer steps against updates worked out by hand and a
 * textbook reference, a model that learns, the bitwise save/resume round
 * trip (in memory and through files), no stale buffer contents reaching a
 * result, a training step that allocates nothing, and the error cases.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static nnh5_tensor *randn(nnh5_dtype dt, size_t nd, const int64_t *shape, uint64_t seed)
{
	nnh5_rng rng;
	nnh5_tensor *t;
	nnh5_rng_seed(&rng, seed);
	ok(nnh5_tensor_randn(&t, dt, nd, shape, &rng));
	return t;
}

/* int64 class indices in [0, classes), drawn from seed. */
static nnh5_tensor *classes_of(size_t nd, const int64_t *shape, int64_t classes, uint64_t seed)
{
	nnh5_rng rng;
	nnh5_tensor *t;
	nnh5_rng_seed(&rng, seed);
	ok(nnh5_tensor_new(&t, NNH5_INT64, nd, shape));
	int64_t *d = nnh5_tensor_mutable_data(t);
	for (size_t i = 0; i < nnh5_tensor_numel(t); i++)
		d[i] = (int64_t)(nnh5_rng_u64(&rng) % (uint64_t)classes);
	return t;
}

/* A model, its input, its loss target and the seed of its Dropout masks. */
typedef struct fd_case {
	const char *name;
	nnh5_model *m;
	nnh5_tensor *x;
	nnh5_tensor *target; /* int64 indices: cross-entropy; float: MSE */
	uint64_t drop_seed;
} fd_case;

static double loss_of(nnh5_tensor **grad, const nnh5_tensor *y, const nnh5_tensor *target)
{
	double loss;
	if (nnh5_tensor_dtype(target) == NNH5_INT64)
		ok(nnh5_loss_cross_entropy(&loss, grad, y, target));
	else
		ok(nnh5_loss_mse(&loss, grad, y, target));
	return loss;
}

/* The loss of one training forward pass, with the same Dropout mask every time. */
static double eval_loss(const fd_case *c)
{
	nnh5_rng rng;
	nnh5_tensor *y;
	nnh5_rng_seed(&rng, c->drop_seed);
	ok(nnh5_model_forward_train(&y, c->m, c->x, &rng));
	double loss = loss_of(NULL, y, c->target);
	nnh5_tensor_free(y);
	return loss;
}

/*
 * max |analytic - numeric| / max(|numeric|, |analytic|) over the elements
 * of t (a float64 parameter view or the input), the numeric derivative by
 * central differences with step 1e-6. *scale gets max |numeric|.
 */
static double fd_rel_error(const fd_case *c, nnh5_tensor *t, const nnh5_tensor *analytic,
			   double *scale)
{
	const double h = 1e-6;
	double *d = nnh5_tensor_mutable_data(t);
	const double *a = nnh5_tensor_data(analytic);
	double maxdiff = 0.0, maxval = 0.0;
	assert_int_equal(nnh5_tensor_numel(t), nnh5_tensor_numel(analytic));
	for (size_t i = 0; i < nnh5_tensor_numel(t); i++) {
		double keep = d[i];
		d[i] = keep + h;
		double lp = eval_loss(c);
		d[i] = keep - h;
		double lm = eval_loss(c);
		d[i] = keep;
		double num = (lp - lm) / (2.0 * h);
		maxdiff = fmax(maxdiff, fabs(a[i] - num));
		maxval = fmax(maxval, fmax(fabs(num), fabs(a[i])));
	}
	*scale = maxval;
	return maxval > 0.0 ? maxdiff / maxval : maxdiff;
}

/*
 * The analytic gradients of every parameter and of the input against
 * finite differences: relative error below 1e-6, and no gradient that is
 * zero throughout (that would compare zero with zero).
 */
static void check_fd(const fd_case *c)
{
	nnh5_rng rng;
	nnh5_tensor *y, *dy, *dx;
	nnh5_dict *grads, *params;

	ok(nnh5_model_zero_grad(c->m));
	nnh5_rng_seed(&rng, c->drop_seed);
	ok(nnh5_model_forward_train(&y, c->m, c->x, &rng));
	loss_of(&dy, y, c->target);
	ok(nnh5_model_backward(&dx, c->m, dy));
	ok(nnh5_model_grads(&grads, c->m));
	ok(nnh5_model_state_dict(&params, c->m));
	assert_int_equal(nnh5_dict_len(grads), nnh5_dict_len(params));
	for (size_t i = 0; i < nnh5_dict_len(params); i++) {
		const char *key = nnh5_dict_key(params, i);
		double scale, e;
		assert_string_equal(key, nnh5_dict_key(grads, i));
		e = fd_rel_error(c, nnh5_dict_value(params, i), nnh5_dict_get(grads, key), &scale);
		if (!(e < 1e-6) || !(scale > 1e-8))
			fail_msg("%s: gradient of %s: relative error %.3g (scale %.3g)", c->name, key, e,
				 scale);
	}
	double scale, e = fd_rel_error(c, c->x, dx, &scale);
	if (!(e < 1e-6) || !(scale > 1e-8))
		fail_msg("%s: gradient of the input: relative error %.3g (scale %.3g)", c->name, e,
			 scale);
	nnh5_dict_free(grads);
	nnh5_dict_free(params);
	nnh5_tensor_free(y);
	nnh5_tensor_free(dy);
	nnh5_tensor_free(dx);
}

static void fd_case_free(fd_case *c)
{
	nnh5_model_free(c->m);
	nnh5_tensor_free(c->x);
	nnh5_tensor_free(c->target);
}

/* ---- gradients against finite differences ---- */

/* Linear + ReLU + Linear with cross-entropy, batch 1 and 4. */
static void test_fd_mlp_relu(void **state)
{
	(void)state;
	for (int64_t batch = 1; batch <= 4; batch += 3) {
		fd_case c = { "mlp-relu", NULL, NULL, NULL, 0 };
		ok(nnh5_model_new(&c.m, NNH5_FLOAT64, 1));
		ok(nnh5_model_add_linear(c.m, "hidden", 5, 8, true));
		ok(nnh5_model_add_relu(c.m, "relu"));
		ok(nnh5_model_add_linear(c.m, "output", 8, 3, true));
		c.x = randn(NNH5_FLOAT64, 2, (int64_t[]){ batch, 5 }, 2);
		c.target = classes_of(1, &batch, 3, 3);
		check_fd(&c);
		fd_case_free(&c);
	}
}

/* Flatten, Sigmoid, Tanh, GELU, a Linear without bias, MSE; batch 3 and 1. */
static void test_fd_activations(void **state)
{
	(void)state;
	for (int64_t batch = 3; batch >= 1; batch -= 2) {
		fd_case c = { "activations", NULL, NULL, NULL, 0 };
		ok(nnh5_model_new(&c.m, NNH5_FLOAT64, 4));
		ok(nnh5_model_add_flatten(c.m, "flat", 1, -1));
		ok(nnh5_model_add_linear(c.m, "l1", 6, 7, true));
		ok(nnh5_model_add_sigmoid(c.m, "sig"));
		ok(nnh5_model_add_linear(c.m, "l2", 7, 5, true));
		ok(nnh5_model_add_tanh(c.m, "tanh"));
		ok(nnh5_model_add_linear(c.m, "l3", 5, 4, false));
		ok(nnh5_model_add_gelu(c.m, "gelu"));
		ok(nnh5_model_add_linear(c.m, "l4", 4, 2, true));
		c.x = randn(NNH5_FLOAT64, 3, (int64_t[]){ batch, 2, 3 }, 5);
		c.target = randn(NNH5_FLOAT64, 2, (int64_t[]){ batch, 2 }, 6);
		check_fd(&c);
		fd_case_free(&c);
	}
}

/*
 * LazyLinear on an input with two batch dimensions, two activations in a
 * row, and a Flatten of dimensions 0..1 feeding cross-entropy.
 */
static void test_fd_lazy_batch_dims(void **state)
{
	(void)state;
	fd_case c = { "lazy", NULL, NULL, NULL, 0 };
	ok(nnh5_model_new(&c.m, NNH5_FLOAT64, 7));
	ok(nnh5_model_add_lazy_linear(c.m, "a", 6, true));
	ok(nnh5_model_add_gelu(c.m, "g"));
	ok(nnh5_model_add_tanh(c.m, "t"));
	ok(nnh5_model_add_lazy_linear(c.m, "b", 4, true));
	ok(nnh5_model_add_flatten(c.m, "f", 0, 1));
	ok(nnh5_model_add_linear(c.m, "c", 4, 3, true));
	c.x = randn(NNH5_FLOAT64, 3, (int64_t[]){ 2, 3, 5 }, 8);
	c.target = classes_of(1, (int64_t[]){ 6 }, 3, 9);
	check_fd(&c);
	assert_int_equal(nnh5_model_child_type(c.m, 0), NNH5_LAYER_LINEAR);
	fd_case_free(&c);
}

/* Dropout between layers and on the input, with a fixed mask (the same seed for every pass). */
static void test_fd_dropout(void **state)
{
	(void)state;
	fd_case c = { "dropout", NULL, NULL, NULL, 99 };
	ok(nnh5_model_new(&c.m, NNH5_FLOAT64, 10));
	ok(nnh5_model_add_dropout(c.m, "in_drop", 0.25));
	ok(nnh5_model_add_linear(c.m, "l1", 6, 10, true));
	ok(nnh5_model_add_tanh(c.m, "tanh"));
	ok(nnh5_model_add_dropout(c.m, "drop", 0.4));
	ok(nnh5_model_add_linear(c.m, "l2", 10, 3, true));
	c.x = randn(NNH5_FLOAT64, 2, (int64_t[]){ 5, 6 }, 11);
	c.target = classes_of(1, (int64_t[]){ 5 }, 3, 12);
	check_fd(&c);

	/* the mask did drop something: some input gradients are exactly zero, not all */
	nnh5_rng rng;
	nnh5_tensor *y, *dy, *dx;
	nnh5_rng_seed(&rng, c.drop_seed);
	ok(nnh5_model_forward_train(&y, c.m, c.x, &rng));
	loss_of(&dy, y, c.target);
	ok(nnh5_model_backward(&dx, c.m, dy));
	size_t zeros = 0;
	for (size_t i = 0; i < nnh5_tensor_numel(dx); i++)
		zeros += nnh5_tensor_get(dx, i) == 0.0;
	assert_true(zeros > 0 && zeros < nnh5_tensor_numel(dx));
	nnh5_tensor_free(y);
	nnh5_tensor_free(dy);
	nnh5_tensor_free(dx);
	fd_case_free(&c);
}

/* The losses alone (a model without children passes its input through). */
static void test_fd_losses(void **state)
{
	(void)state;
	struct {
		size_t nd;
		int64_t shape[2];
		bool ce;
	} cases[] = {
		{ 2, { 4, 5 }, true },  /* (N, C) */
		{ 2, { 1, 3 }, true },  /* batch 1 */
		{ 1, { 7 }, true },     /* (C,) with a scalar target */
		{ 2, { 3, 4 }, false }, /* MSE */
		{ 1, { 1 }, false },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		fd_case c = { cases[k].ce ? "cross-entropy" : "mse", NULL, NULL, NULL, 0 };
		ok(nnh5_model_new(&c.m, NNH5_FLOAT64, 0));
		c.x = randn(NNH5_FLOAT64, cases[k].nd, cases[k].shape, 20 + k);
		if (cases[k].ce)
			c.target = classes_of(cases[k].nd - 1, cases[k].shape, cases[k].shape[cases[k].nd - 1],
					      30 + k);
		else
			c.target = randn(NNH5_FLOAT64, cases[k].nd, cases[k].shape, 30 + k);
		check_fd(&c);
		fd_case_free(&c);
	}
}

/* Cross-entropy's value against its definition, and its stability for huge logits. */
static void test_cross_entropy_values(void **state)
{
	(void)state;
	nnh5_tensor *logits, *targets, *g;
	double loss;
	double v[6] = { 1.0, 2.0, 3.0, -1.0, 0.0, 1.0 };
	ok(nnh5_tensor_view(&logits, NNH5_FLOAT64, 2, (int64_t[]){ 2, 3 }, v, sizeof(v)));
	int64_t t[2] = { 2, 0 };
	ok(nnh5_tensor_view(&targets, NNH5_INT64, 1, (int64_t[]){ 2 }, t, sizeof(t)));
	ok(nnh5_loss_cross_entropy(&loss, &g, logits, targets));
	double l0 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3.0;
	double l1 = log(exp(-1.0) + exp(0.0) + exp(1.0)) + 1.0;
	assert_true(fabs(loss - (l0 + l1) / 2.0) < 1e-15);
	/* each gradient row sums to zero */
	for (int r = 0; r < 2; r++)
		assert_true(fabs(nnh5_tensor_get(g, 3 * r) + nnh5_tensor_get(g, 3 * r + 1) +
				 nnh5_tensor_get(g, 3 * r + 2)) < 1e-16);
	nnh5_tensor_free(g);

	/* shifting by 1000 would overflow exp() without the log-sum-exp shift */
	for (int i = 0; i < 6; i++)
		v[i] += 1000.0;
	double shifted;
	ok(nnh5_loss_cross_entropy(&shifted, NULL, logits, targets));
	assert_true(isfinite(shifted) && fabs(shifted - loss) < 1e-12);
	v[1] = NAN;
	ok(nnh5_loss_cross_entropy(&shifted, NULL, logits, targets));
	assert_true(isnan(shifted));
	nnh5_tensor_free(logits);
	nnh5_tensor_free(targets);
}

/* float32 gradients agree with float64 ones of the same model within float32 precision. */
static void test_float32_grads(void **state)
{
	(void)state;
	nnh5_model *m[2];
	nnh5_tensor *x[2], *y[2], *dy[2], *dx[2];
	nnh5_dict *g[2];
	nnh5_dtype dts[2] = { NNH5_FLOAT32, NNH5_FLOAT64 };
	nnh5_tensor *xd = randn(NNH5_FLOAT64, 2, (int64_t[]){ 9, 12 }, 40);
	nnh5_tensor *tg = classes_of(1, (int64_t[]){ 9 }, 4, 41);
	for (int k = 0; k < 2; k++) {
		nnh5_rng rng;
		ok(nnh5_model_new(&m[k], dts[k], 42));
		ok(nnh5_model_add_linear(m[k], "l1", 12, 16, true));
		ok(nnh5_model_add_gelu(m[k], "gelu"));
		ok(nnh5_model_add_dropout(m[k], "drop", 0.3));
		ok(nnh5_model_add_linear(m[k], "l2", 16, 8, true));
		ok(nnh5_model_add_sigmoid(m[k], "sig"));
		ok(nnh5_model_add_linear(m[k], "l3", 8, 4, true));
		ok(nnh5_tensor_convert(&x[k], xd, dts[k]));
		nnh5_rng_seed(&rng, 43);
		ok(nnh5_model_forward_train(&y[k], m[k], x[k], &rng));
		loss_of(&dy[k], y[k], tg);
		ok(nnh5_model_backward(&dx[k], m[k], dy[k]));
		ok(nnh5_model_grads(&g[k], m[k]));
	}
	/* same seed, same draws: the float64 model starts from the float32 model's values widened */
	nnh5_dict *sd32;
	ok(nnh5_model_state_dict(&sd32, m[0]));
	ok(nnh5_model_load_state_dict(NULL, m[1], sd32, NULL));
	nnh5_dict_free(sd32);
	nnh5_rng rng;
	nnh5_tensor_free(y[1]);
	nnh5_tensor_free(dy[1]);
	nnh5_tensor_free(dx[1]);
	ok(nnh5_model_zero_grad(m[1]));
	nnh5_rng_seed(&rng, 43);
	ok(nnh5_model_forward_train(&y[1], m[1], x[1], &rng));
	loss_of(&dy[1], y[1], tg);
	ok(nnh5_model_backward(&dx[1], m[1], dy[1]));
	for (size_t i = 0; i <= nnh5_dict_len(g[0]); i++) {
		const nnh5_tensor *a = i < nnh5_dict_len(g[0]) ? nnh5_dict_value(g[0], i) : dx[0];
		const nnh5_tensor *b = i < nnh5_dict_len(g[0]) ? nnh5_dict_value(g[1], i) : dx[1];
		double maxdiff = 0.0, maxval = 0.0;
		assert_int_equal(nnh5_tensor_dtype(a), NNH5_FLOAT32);
		for (size_t j = 0; j < nnh5_tensor_numel(a); j++) {
			maxdiff = fmax(maxdiff, fabs(nnh5_tensor_get(a, j) - nnh5_tensor_get(b, j)));
			maxval = fmax(maxval, fabs(nnh5_tensor_get(b, j)));
		}
		if (!(maxval > 0.0 && maxdiff / maxval < 1e-5))
			fail_msg("float32 gradient %zu: relative error %.3g", i, maxdiff / maxval);
	}
	for (int k = 0; k < 2; k++) {
		nnh5_dict_free(g[k]);
		nnh5_tensor_free(x[k]);
		nnh5_tensor_free(y[k]);
		nnh5_tensor_free(dy[k]);
		nnh5_tensor_free(dx[k]);
		nnh5_model_free(m[k]);
	}
	nnh5_tensor_free(xd);
	nnh5_tensor_free(tg);
}

/* ---- forward in training mode, Dropout ---- */

/* Without Dropout forward_train gives bitwise what forward gives, both dtypes, batch 1 and 33. */
static void test_forward_train_matches_forward(void **state)
{
	(void)state;
	nnh5_dtype dts[2] = { NNH5_FLOAT32, NNH5_FLOAT64 };
	for (int k = 0; k < 2; k++) {
		for (int64_t batch = 1; batch <= 33; batch += 32) {
			nnh5_model *m;
			nnh5_tensor *x, *y, *yt;
			ok(nnh5_model_new(&m, dts[k], 3));
			ok(nnh5_model_add_linear(m, NULL, 10, 20, true));
			ok(nnh5_model_add_relu(m, NULL));
			ok(nnh5_model_add_gelu(m, NULL));
			ok(nnh5_model_add_dropout(m, NULL, 0.0));
			ok(nnh5_model_add_linear(m, NULL, 20, 7, false));
			ok(nnh5_model_add_tanh(m, NULL));
			ok(nnh5_model_add_sigmoid(m, NULL));
			x = randn(dts[k], 2, (int64_t[]){ batch, 10 }, 4);
			ok(nnh5_model_forward(&y, m, x));
			ok(nnh5_model_forward_train(&yt, m, x, NULL)); /* p = 0 draws nothing */
			assert_true(nnh5_tensor_bitwise_equal(y, yt));
			nnh5_tensor_free(y);
			nnh5_tensor_free(yt);
			nnh5_tensor_free(x);
			nnh5_model_free(m);
		}
	}
}

/* Inverted dropout: about p dropped, the rest scaled by 1/(1-p); p = 1 gives zeros. */
static void test_dropout_semantics(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_tensor *x, *y, *dx;
	nnh5_rng rng;
	const double p = 0.3;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 0));
	ok(nnh5_model_add_dropout(m, "drop", p));
	x = randn(NNH5_FLOAT32, 2, (int64_t[]){ 200, 500 }, 50);
	nnh5_rng_seed(&rng, 51);
	ok(nnh5_model_forward_train(&y, m, x, &rng));
	const float *xv = nnh5_tensor_data(x), *yv = nnh5_tensor_data(y);
	const float scale = 1.0f / (float)(1.0 - p);
	size_t kept = 0, n = nnh5_tensor_numel(x);
	for (size_t i = 0; i < n; i++) {
		if (yv[i] != 0.0f) {
			assert_true(yv[i] == xv[i] * scale);
			kept++;
		}
	}
	/* 100000 Bernoulli(0.7) draws: the standard deviation of the fraction is 0.0014 */
	assert_true(fabs((double)kept / (double)n - (1.0 - p)) < 0.01);
	/* the backward pass applies the same mask: with grad_output = x, dx = y */
	ok(nnh5_model_backward(&dx, m, x));
	assert_true(nnh5_tensor_bitwise_equal(dx, y));
	nnh5_tensor_free(dx);
	nnh5_tensor_free(y);
	/* the same generator state gives the same mask; the next state another */
	nnh5_tensor *y1, *y2, *y3;
	nnh5_rng_seed(&rng, 51);
	ok(nnh5_model_forward_train(&y1, m, x, &rng));
	ok(nnh5_model_forward_train(&y3, m, x, &rng));
	nnh5_rng_seed(&rng, 51);
	ok(nnh5_model_forward_train(&y2, m, x, &rng));
	assert_true(nnh5_tensor_bitwise_equal(y1, y2));
	assert_false(nnh5_tensor_bitwise_equal(y1, y3));
	/* evaluation mode (nnh5_model_forward) is the identity */
	nnh5_tensor_free(y1);
	ok(nnh5_model_forward(&y1, m, x));
	assert_true(nnh5_tensor_bitwise_equal(y1, x));
	nnh5_tensor_free(y1);
	nnh5_tensor_free(y2);
	nnh5_tensor_free(y3);
	nnh5_model_free(m);

	/* p = 1: zeros, and no generator needed */
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 0));
	ok(nnh5_model_add_dropout(m, "drop", 1.0));
	ok(nnh5_model_forward_train(&y, m, x, NULL));
	for (size_t i = 0; i < n; i++)
		assert_true(((const float *)nnh5_tensor_data(y))[i] == 0.0f);
	nnh5_tensor_free(y);
	nnh5_model_free(m);
	nnh5_tensor_free(x);
}

/* Gradients accumulate over backward passes until zero_grad; grads are keyed as the state dict. */
static void test_grad_accumulation(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_tensor *x, *y, *dy;
	nnh5_dict *g, *sd;
	ok(nnh5_model_new(&m, NNH5_FLOAT64, 5));
	ok(nnh5_model_add_linear(m, "hidden", 3, 4, true));
	ok(nnh5_model_add_relu(m, "relu"));
	ok(nnh5_model_add_linear(m, "output", 4, 2, false));
	ok(nnh5_model_grads(&g, m));
	ok(nnh5_model_state_dict(&sd, m));
	assert_int_equal(nnh5_dict_len(g), 3);
	for (size_t i = 0; i < nnh5_dict_len(g); i++) {
		assert_string_equal(nnh5_dict_key(g, i), nnh5_dict_key(sd, i));
		assert_int_equal(nnh5_tensor_ndim(nnh5_dict_value(g, i)),
				 nnh5_tensor_ndim(nnh5_dict_value(sd, i)));
		for (size_t j = 0; j < nnh5_tensor_numel(nnh5_dict_value(g, i)); j++)
			assert_true(nnh5_tensor_get(nnh5_dict_value(g, i), j) == 0.0);
	}
	x = randn(NNH5_FLOAT64, 2, (int64_t[]){ 4, 3 }, 6);
	dy = randn(NNH5_FLOAT64, 2, (int64_t[]){ 4, 2 }, 7);
	ok(nnh5_model_forward_train(&y, m, x, NULL));
	ok(nnh5_model_backward(NULL, m, dy));
	nnh5_tensor *once;
	ok(nnh5_tensor_clone(&once, nnh5_dict_get(g, "hidden.weight")));
	nnh5_tensor_free(y);
	ok(nnh5_model_forward_train(&y, m, x, NULL));
	ok(nnh5_model_backward(NULL, m, dy));
	const nnh5_tensor *twice = nnh5_dict_get(g, "hidden.weight");
	double norm = 0.0;
	for (size_t j = 0; j < nnh5_tensor_numel(once); j++) {
		double a = nnh5_tensor_get(once, j);
		assert_true(fabs(nnh5_tensor_get(twice, j) - 2.0 * a) <= 1e-15 * fabs(a));
		norm += fabs(a);
	}
	assert_true(norm > 0.0);
	ok(nnh5_model_zero_grad(m));
	for (size_t j = 0; j < nnh5_tensor_numel(once); j++)
		assert_true(nnh5_tensor_get(twice, j) == 0.0);
	nnh5_tensor_free(once);
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	nnh5_tensor_free(dy);
	nnh5_dict_free(g);
	nnh5_dict_free(sd);
	nnh5_model_free(m);
}

/* ---- optimizers ---- */

/* A float64 model with one scalar weight w (Linear(1, 1), no bias) and its gradient view. */
static nnh5_model *scalar_model(double w, double **wp, double **gp)
{
	nnh5_model *m;
	nnh5_dict *sd, *g;
	ok(nnh5_model_new(&m, NNH5_FLOAT64, 0));
	ok(nnh5_model_add_linear(m, "w", 1, 1, false));
	ok(nnh5_model_state_dict(&sd, m));
	ok(nnh5_model_grads(&g, m));
	*wp = nnh5_tensor_mutable_data(nnh5_dict_get(sd, "w.weight"));
	*gp = nnh5_tensor_mutable_data(nnh5_dict_get(g, "w.weight"));
	**wp = w;
	nnh5_dict_free(sd);
	nnh5_dict_free(g);
	return m;
}

/* SGD on one number, worked out by hand (the comments show the arithmetic). */
static void test_sgd_by_hand(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *o;
	double *w, *g;

	/* plain: w = 1 - 0.1 * 0.5 = 0.95, then 0.9 */
	m = scalar_model(1.0, &w, &g);
	*g = 0.5;
	nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
	so.lr = 0.1;
	ok(nnh5_optim_sgd_new(&o, m, &so));
	ok(nnh5_optim_step(o));
	assert_true(fabs(*w - 0.95) < 1e-15);
	ok(nnh5_optim_step(o));
	assert_true(fabs(*w - 0.9) < 1e-15);
	assert_int_equal(nnh5_optim_steps(o), 2);
	nnh5_optim_free(o);
	nnh5_model_free(m);

	/*
	 * momentum 0.9, dampening 0.5, gradient 0.5, lr 0.1:
	 *   step 1: b = 0.5 (a clone: dampening not applied), w = 1 - 0.05 = 0.95
	 *   step 2: b = 0.9*0.5 + 0.5*0.5 = 0.7, w = 0.95 - 0.07 = 0.88
	 *   step 3: b = 0.9*0.7 + 0.25 = 0.88, w = 0.88 - 0.088 = 0.792
	 */
	m = scalar_model(1.0, &w, &g);
	*g = 0.5;
	so.momentum = 0.9;
	so.dampening = 0.5;
	ok(nnh5_optim_sgd_new(&o, m, &so));
	double want[3] = { 0.95, 0.88, 0.792 };
	for (int k = 0; k < 3; k++) {
		ok(nnh5_optim_step(o));
		assert_true(fabs(*w - want[k]) < 1e-15);
	}
	nnh5_optim_free(o);
	nnh5_model_free(m);

	/*
	 * nesterov, momentum 0.5, weight_decay 0.1, lr 0.1, gradient 1, w = 2:
	 *   step 1: d = 1 + 0.1*2 = 1.2; b = 1.2; d = 1.2 + 0.5*1.2 = 1.8; w = 2 - 0.18 = 1.82
	 *   step 2: d = 1 + 0.182 = 1.182; b = 0.6 + 1.182 = 1.782;
	 *           d = 1.182 + 0.891 = 2.073; w = 1.82 - 0.2073 = 1.6127
	 */
	m = scalar_model(2.0, &w, &g);
	*g = 1.0;
	so = (nnh5_sgd_options)NNH5_SGD_OPTIONS_INIT;
	so.lr = 0.1;
	so.momentum = 0.5;
	so.weight_decay = 0.1;
	so.nesterov = true;
	ok(nnh5_optim_sgd_new(&o, m, &so));
	ok(nnh5_optim_step(o));
	assert_true(fabs(*w - 1.82) < 1e-15);
	ok(nnh5_optim_step(o));
	assert_true(fabs(*w - 1.6127) < 1e-15);
	/* a schedule: lr 0 freezes the weight */
	ok(nnh5_optim_set_lr(o, 0.0));
	assert_true(nnh5_optim_get_lr(o) == 0.0);
	ok(nnh5_optim_step(o));
	assert_true(fabs(*w - 1.6127) < 1e-15);
	nnh5_optim_free(o);
	nnh5_model_free(m);
}

/*
 * Adam, by hand: with a constant gradient g the bias-corrected moments
 * are exactly g and g^2, so every step moves w by lr * g / (|g| + eps).
 * With weight decay, against the textbook form (m_hat = m / (1 - b1^t),
 * v_hat = v / (1 - b2^t), w -= lr m_hat / (sqrt(v_hat) + eps)), which
 * differs from torch's arrangement only in rounding.
 */
static void test_adam_by_hand(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *o;
	double *w, *g;
	nnh5_adam_options ao = NNH5_ADAM_OPTIONS_INIT;
	ao.lr = 0.01;
	ao.eps = 1e-3;
	m = scalar_model(1.0, &w, &g);
	*g = -0.25;
	ok(nnh5_optim_adam_new(&o, m, &ao));
	for (int k = 1; k <= 5; k++) {
		ok(nnh5_optim_step(o));
		double want = 1.0 + k * 0.01 * 0.25 / (0.25 + 1e-3);
		assert_true(fabs(*w - want) < 1e-14);
	}
	nnh5_optim_free(o);
	nnh5_model_free(m);

	ao = (nnh5_adam_options)NNH5_ADAM_OPTIONS_INIT;
	ao.lr = 0.05;
	ao.beta1 = 0.8;
	ao.beta2 = 0.95;
	ao.weight_decay = 0.1;
	m = scalar_model(0.5, &w, &g);
	ok(nnh5_optim_adam_new(&o, m, &ao));
	double rw = 0.5, rm = 0.0, rv = 0.0;
	for (int t = 1; t <= 6; t++) {
		*g = 0.3 * t - 1.0; /* changes sign along the way */
		ok(nnh5_optim_step(o));
		double d = (0.3 * t - 1.0) + 0.1 * rw;
		rm = 0.8 * rm + 0.2 * d;
		rv = 0.95 * rv + 0.05 * d * d;
		double mh = rm / (1.0 - pow(0.8, t)), vh = rv / (1.0 - pow(0.95, t));
		rw -= 0.05 * mh / (sqrt(vh) + 1e-8);
		assert_true(fabs(*w - rw) < 1e-12);
	}
	nnh5_optim_free(o);
	nnh5_model_free(m);
}

/* Optimizer state: keys, dtypes, shapes, views; SGD without momentum keeps no buffer. */
static void test_optim_state_dict_layout(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *o;
	nnh5_dict *sd;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	ok(nnh5_model_add_linear(m, "hidden", 3, 4, true));
	ok(nnh5_model_add_relu(m, "relu"));
	ok(nnh5_model_add_linear(m, "out", 4, 2, false));

	ok(nnh5_optim_adam_new(&o, m, NULL));
	assert_int_equal(nnh5_optim_get_kind(o), NNH5_OPTIM_ADAM);
	ok(nnh5_optim_state_dict(&sd, o));
	const char *adam_keys[] = { "lr", "betas", "eps", "weight_decay", "step",
				    "hidden.weight.exp_avg", "hidden.weight.exp_avg_sq",
				    "hidden.bias.exp_avg", "hidden.bias.exp_avg_sq",
				    "out.weight.exp_avg", "out.weight.exp_avg_sq" };
	assert_int_equal(nnh5_dict_len(sd), 11);
	for (size_t i = 0; i < 11; i++)
		assert_string_equal(nnh5_dict_key(sd, i), adam_keys[i]);
	assert_int_equal(nnh5_tensor_dtype(nnh5_dict_get(sd, "lr")), NNH5_FLOAT64);
	assert_int_equal(nnh5_tensor_ndim(nnh5_dict_get(sd, "lr")), 0);
	assert_true(nnh5_tensor_get(nnh5_dict_get(sd, "lr"), 0) == 1e-3);
	assert_true(nnh5_tensor_get(nnh5_dict_get(sd, "betas"), 1) == 0.999);
	assert_int_equal(nnh5_tensor_dtype(nnh5_dict_get(sd, "step")), NNH5_INT64);
	const nnh5_tensor *ea = nnh5_dict_get(sd, "hidden.weight.exp_avg");
	assert_int_equal(nnh5_tensor_dtype(ea), NNH5_FLOAT32);
	assert_int_equal(nnh5_tensor_dim(ea, 0), 4);
	assert_int_equal(nnh5_tensor_dim(ea, 1), 3);
	assert_false(nnh5_tensor_owns_data(ea));
	assert_true(nnh5_tensor_owns_data(nnh5_dict_get(sd, "step")));
	/* a view follows the optimizer: set a gradient, step, and the moment moved */
	nnh5_dict *g;
	ok(nnh5_model_grads(&g, m));
	ok(nnh5_tensor_set(nnh5_dict_get(g, "hidden.weight"), 0, 1.0));
	ok(nnh5_optim_step(o));
	assert_true(fabs(nnh5_tensor_get(ea, 0) - 0.1) < 1e-7);
	nnh5_dict_free(sd);
	nnh5_optim_free(o);

	nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
	ok(nnh5_optim_sgd_new(&o, m, &so));
	ok(nnh5_optim_state_dict(&sd, o));
	const char *sgd_keys[] = { "lr", "momentum", "dampening", "weight_decay", "nesterov", "step" };
	assert_int_equal(nnh5_dict_len(sd), 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(nnh5_dict_key(sd, i), sgd_keys[i]);
	nnh5_dict_free(sd);
	nnh5_optim_free(o);
	so.momentum = 0.9;
	ok(nnh5_optim_sgd_new(&o, m, &so));
	ok(nnh5_optim_state_dict(&sd, o));
	/* momentum buffers from the start, zero before the first step */
	assert_int_equal(nnh5_dict_len(sd), 9);
	assert_string_equal(nnh5_dict_key(sd, 6), "hidden.weight.momentum_buffer");
	assert_string_equal(nnh5_dict_key(sd, 8), "out.weight.momentum_buffer");
	assert_true(nnh5_tensor_get(nnh5_dict_get(sd, "step"), 0) == 0.0);
	nnh5_dict_free(sd);
	nnh5_optim_free(o);
	nnh5_dict_free(g);
	nnh5_model_free(m);
}

/* ---- learning ---- */

/* Three Gaussian blobs in the plane, n points, labels 0..2, float32. */
static void blobs(nnh5_tensor **x, nnh5_tensor **y, int64_t n, uint64_t seed)
{
	nnh5_rng rng;
	nnh5_rng_seed(&rng, seed);
	ok(nnh5_tensor_new(x, NNH5_FLOAT32, 2, (int64_t[]){ n, 2 }));
	ok(nnh5_tensor_new(y, NNH5_INT64, 1, &n));
	float *xv = nnh5_tensor_mutable_data(*x);
	int64_t *yv = nnh5_tensor_mutable_data(*y);
	for (int64_t i = 0; i < n; i++) {
		int64_t c = i % 3;
		double a = 2.0943951023931953 * (double)c;
		xv[2 * i] = (float)(2.0 * cos(a) + 0.6 * nnh5_rng_normal(&rng));
		xv[2 * i + 1] = (float)(2.0 * sin(a) + 0.6 * nnh5_rng_normal(&rng));
		yv[i] = c;
	}
}

/* An MLP with Dropout learns three blobs with Adam: loss falls below a fifth, accuracy above 90%. */
static void test_learns_classification(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *o;
	nnh5_tensor *x, *y, *out, *g;
	nnh5_rng rng;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 17));
	ok(nnh5_model_add_linear(m, "hidden", 2, 32, true));
	ok(nnh5_model_add_relu(m, "relu"));
	ok(nnh5_model_add_dropout(m, "drop", 0.1));
	ok(nnh5_model_add_linear(m, "hidden2", 32, 32, true));
	ok(nnh5_model_add_tanh(m, "tanh"));
	ok(nnh5_model_add_linear(m, "output", 32, 3, true));
	nnh5_adam_options ao = NNH5_ADAM_OPTIONS_INIT;
	ao.lr = 0.01;
	ok(nnh5_optim_adam_new(&o, m, &ao));
	blobs(&x, &y, 300, 18);
	nnh5_rng_seed(&rng, 19);
	double first = 0.0, loss = 0.0;
	for (int step = 0; step < 200; step++) {
		ok(nnh5_model_zero_grad(m));
		ok(nnh5_model_forward_train(&out, m, x, &rng));
		ok(nnh5_loss_cross_entropy(&loss, &g, out, y));
		ok(nnh5_model_backward(NULL, m, g));
		ok(nnh5_optim_step(o));
		if (step == 0)
			first = loss;
		nnh5_tensor_free(out);
		nnh5_tensor_free(g);
	}
	/* evaluate on fresh points, in evaluation mode */
	nnh5_tensor *xt, *yt;
	blobs(&xt, &yt, 300, 20);
	ok(nnh5_model_forward(&out, m, xt));
	double test_loss;
	ok(nnh5_loss_cross_entropy(&test_loss, NULL, out, yt));
	size_t right = 0;
	const float *o3 = nnh5_tensor_data(out);
	const int64_t *lab = nnh5_tensor_data(yt);
	for (size_t i = 0; i < 300; i++) {
		int best = 0;
		for (int c = 1; c < 3; c++)
			if (o3[3 * i + c] > o3[3 * i + best])
				best = c;
		right += best == lab[i];
	}
	if (!(loss < 0.2 * first && test_loss < 0.2 * first && right > 270))
		fail_msg("initial loss %.4f, final %.4f, test %.4f, accuracy %zu/300", first, loss,
			 test_loss, right);
	nnh5_tensor_free(out);
	nnh5_tensor_free(xt);
	nnh5_tensor_free(yt);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_optim_free(o);
	nnh5_model_free(m);
}

/* A small regression (sin on [-3, 3]) with SGD + momentum and MSE: loss below a fifth. */
static void test_learns_regression(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *o;
	nnh5_tensor *x, *t, *out, *g;
	const int64_t n = 128;
	ok(nnh5_model_new(&m, NNH5_FLOAT64, 3));
	ok(nnh5_model_add_linear(m, NULL, 1, 32, true));
	ok(nnh5_model_add_tanh(m, NULL));
	ok(nnh5_model_add_linear(m, NULL, 32, 1, true));
	nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
	so.lr = 0.05;
	so.momentum = 0.9;
	ok(nnh5_optim_sgd_new(&o, m, &so));
	ok(nnh5_tensor_new(&x, NNH5_FLOAT64, 2, (int64_t[]){ n, 1 }));
	ok(nnh5_tensor_new(&t, NNH5_FLOAT64, 2, (int64_t[]){ n, 1 }));
	for (int64_t i = 0; i < n; i++) {
		double v = -3.0 + 6.0 * (double)i / (double)(n - 1);
		ok(nnh5_tensor_set(x, (size_t)i, v));
		ok(nnh5_tensor_set(t, (size_t)i, sin(v)));
	}
	double first = 0.0, loss = 0.0;
	for (int step = 0; step < 500; step++) {
		ok(nnh5_model_zero_grad(m));
		ok(nnh5_model_forward_train(&out, m, x, NULL));
		ok(nnh5_loss_mse(&loss, &g, out, t));
		ok(nnh5_model_backward(NULL, m, g));
		ok(nnh5_optim_step(o));
		if (step == 0)
			first = loss;
		nnh5_tensor_free(out);
		nnh5_tensor_free(g);
	}
	if (!(loss < 0.2 * first))
		fail_msg("initial loss %.4f, final %.4f", first, loss);
	nnh5_tensor_free(x);
	nnh5_tensor_free(t);
	nnh5_optim_free(o);
	nnh5_model_free(m);
}

/* ---- determinism: save and resume ---- */

typedef struct run {
	nnh5_model *m;
	nnh5_optim *o;
	nnh5_rng rng; /* the caller's generator: Dropout masks */
} run;

static void run_new(run *r, nnh5_dtype dt, bool adam, uint64_t seed)
{
	ok(nnh5_model_new(&r->m, dt, seed));
	ok(nnh5_model_add_lazy_linear(r->m, "hidden", 16, true));
	ok(nnh5_model_add_gelu(r->m, "act"));
	ok(nnh5_model_add_dropout(r->m, "drop", 0.2));
	ok(nnh5_model_add_linear(r->m, "output", 16, 3, true));
	/* the lazy layer must know its input before the optimizer sees it */
	nnh5_tensor *probe = randn(dt, 2, (int64_t[]){ 1, 6 }, 0), *y;
	ok(nnh5_model_forward(&y, r->m, probe));
	nnh5_tensor_free(probe);
	nnh5_tensor_free(y);
	if (adam) {
		nnh5_adam_options ao = NNH5_ADAM_OPTIONS_INIT;
		ao.lr = 0.01;
		ao.weight_decay = 0.01;
		ok(nnh5_optim_adam_new(&r->o, r->m, &ao));
	} else {
		nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
		so.lr = 0.05;
		so.momentum = 0.9;
		so.nesterov = true;
		so.weight_decay = 1e-3;
		ok(nnh5_optim_sgd_new(&r->o, r->m, &so));
	}
	nnh5_rng_seed(&r->rng, seed + 1000);
}

static void run_free(run *r)
{
	nnh5_optim_free(r->o);
	nnh5_model_free(r->m);
}

/* Training steps from..to-1; batch k is drawn from seed k, so any run sees the same data. */
static void run_steps(run *r, int from, int to)
{
	nnh5_dtype dt = nnh5_model_dtype(r->m);
	for (int k = from; k < to; k++) {
		nnh5_tensor *x = randn(dt, 2, (int64_t[]){ 8, 6 }, 500 + (uint64_t)k);
		nnh5_tensor *t = classes_of(1, (int64_t[]){ 8 }, 3, 700 + (uint64_t)k);
		nnh5_tensor *y, *g;
		double loss;
		ok(nnh5_model_zero_grad(r->m));
		ok(nnh5_model_forward_train(&y, r->m, x, &r->rng));
		ok(nnh5_loss_cross_entropy(&loss, &g, y, t));
		ok(nnh5_model_backward(NULL, r->m, g));
		ok(nnh5_optim_step(r->o));
		if (k == to - 1 && k % 3 == 0)
			ok(nnh5_optim_set_lr(r->o, nnh5_optim_get_lr(r->o) * 0.5));
		nnh5_tensor_free(x);
		nnh5_tensor_free(t);
		nnh5_tensor_free(y);
		nnh5_tensor_free(g);
	}
}

/* true if the two dicts hold the same keys in order with bitwise-equal tensors. */
static bool dicts_bitwise_equal(const nnh5_dict *a, const nnh5_dict *b)
{
	if (nnh5_dict_len(a) != nnh5_dict_len(b))
		return false;
	for (size_t i = 0; i < nnh5_dict_len(a); i++)
		if (strcmp(nnh5_dict_key(a, i), nnh5_dict_key(b, i)) ||
		    !nnh5_tensor_bitwise_equal(nnh5_dict_value(a, i), nnh5_dict_value(b, i)))
			return false;
	return true;
}

static void assert_same_run(run *a, run *b)
{
	nnh5_dict *pa, *pb, *oa, *ob;
	ok(nnh5_model_state_dict(&pa, a->m));
	ok(nnh5_model_state_dict(&pb, b->m));
	ok(nnh5_optim_state_dict(&oa, a->o));
	ok(nnh5_optim_state_dict(&ob, b->o));
	assert_true(dicts_bitwise_equal(pa, pb));
	assert_true(dicts_bitwise_equal(oa, ob));
	assert_memory_equal(&a->rng, &b->rng, sizeof(nnh5_rng));
	nnh5_dict_free(pa);
	nnh5_dict_free(pb);
	nnh5_dict_free(oa);
	nnh5_dict_free(ob);
}

/*
 * Train N steps; train k steps, save model + optimizer + generator, load
 * them into a fresh model (another seed: nothing of it may survive) and
 * optimizer, train the rest: bitwise the same parameters, optimizer state
 * and generator. In memory (the state dicts' views, straight from the
 * stopped run) and through files, float32 and float64, SGD and Adam,
 * resumed at step 0 (SGD's momentum buffers still unused) and at step 3.
 */
static void test_resume_bitwise(void **state)
{
	(void)state;
	const int N = 7;
	nnh5_dtype dts[2] = { NNH5_FLOAT32, NNH5_FLOAT64 };
	for (int d = 0; d < 2; d++) {
		for (int adam = 0; adam < 2; adam++) {
			run full;
			run_new(&full, dts[d], adam, 1);
			run_steps(&full, 0, N);
			for (int k = 0; k <= 3; k += 3) {
				for (int via_file = 0; via_file < 2; via_file++) {
					run first, second;
					nnh5_dict *msd, *osd;
					run_new(&first, dts[d], adam, 1);
					run_steps(&first, 0, k);
					ok(nnh5_model_state_dict(&msd, first.m));
					ok(nnh5_optim_state_dict(&osd, first.o));
					nnh5_rng saved = first.rng;
					if (via_file) {
						nnh5_tensor *rb;
						ok(nnh5_tensor_view(&rb, NNH5_UINT8, 1,
								    (int64_t[]){ (int64_t)sizeof(saved) },
								    &saved, sizeof(saved)));
						ok(nnh5_dict_set(osd, "rng", rb));
						ok(nnh5_save_state_dict(tu_path("model.h5"), msd));
						ok(nnh5_save_state_dict(tu_path("optim.h5"), osd));
						nnh5_dict_free(msd);
						nnh5_dict_free(osd);
						run_free(&first);
						ok(nnh5_load_state_dict(&msd, tu_path("model.h5")));
						ok(nnh5_load_state_dict(&osd, tu_path("optim.h5")));
						ok(nnh5_dict_take(&rb, osd, "rng"));
						assert_int_equal(nnh5_tensor_nbytes(rb), sizeof(saved));
						memset(&saved, 0, sizeof(saved));
						memcpy(&saved, nnh5_tensor_data(rb), sizeof(saved));
						nnh5_tensor_free(rb);
					}
					run_new(&second, dts[d], adam, 12345);
					ok(nnh5_model_load_state_dict(NULL, second.m, msd, NULL));
					ok(nnh5_optim_load_state_dict(second.o, osd));
					second.rng = saved;
					nnh5_dict_free(msd);
					nnh5_dict_free(osd);
					if (!via_file)
						run_free(&first);
					run_steps(&second, k, N);
					assert_same_run(&full, &second);
					run_free(&second);
				}
			}
			run_free(&full);
		}
	}
}

/*
 * Nothing a pass leaves in the model's buffers reaches a later result: after
 * a pass whose input was all NaN (tape and gradient buffers full of NaN),
 * a clean pass gives bitwise the gradients of a fresh model. Batch 1 (the
 * gemv / ger path) and batch 5 (gemm).
 */
static void test_no_stale_state(void **state)
{
	(void)state;
	for (int64_t batch = 1; batch <= 5; batch += 4) {
		nnh5_model *m[2];
		nnh5_dict *g[2];
		nnh5_tensor *dx[2];
		nnh5_tensor *x = randn(NNH5_FLOAT32, 2, (int64_t[]){ batch, 6 }, 60);
		nnh5_tensor *dy = randn(NNH5_FLOAT32, 2, (int64_t[]){ batch, 2 }, 61);
		nnh5_tensor *bad, *y;
		ok(nnh5_tensor_full(&bad, NNH5_FLOAT32, 2, (int64_t[]){ batch, 6 }, NAN));
		for (int k = 0; k < 2; k++) {
			ok(nnh5_model_new(&m[k], NNH5_FLOAT32, 62));
			ok(nnh5_model_add_linear(m[k], NULL, 6, 5, true));
			ok(nnh5_model_add_gelu(m[k], NULL));
			ok(nnh5_model_add_linear(m[k], NULL, 5, 4, true));
			ok(nnh5_model_add_sigmoid(m[k], NULL));
			ok(nnh5_model_add_linear(m[k], NULL, 4, 2, true));
			if (k == 1) {
				ok(nnh5_model_forward_train(&y, m[k], bad, NULL));
				ok(nnh5_model_backward(&dx[k], m[k], y));
				assert_true(isnan(nnh5_tensor_get(dx[k], 0)));
				nnh5_tensor_free(y);
				nnh5_tensor_free(dx[k]);
				ok(nnh5_model_zero_grad(m[k]));
			}
			ok(nnh5_model_forward_train(&y, m[k], x, NULL));
			ok(nnh5_model_backward(&dx[k], m[k], dy));
			ok(nnh5_model_grads(&g[k], m[k]));
			nnh5_tensor_free(y);
		}
		assert_true(dicts_bitwise_equal(g[0], g[1]));
		assert_true(nnh5_tensor_bitwise_equal(dx[0], dx[1]));
		for (int k = 0; k < 2; k++) {
			nnh5_dict_free(g[k]);
			nnh5_tensor_free(dx[k]);
			nnh5_model_free(m[k]);
		}
		nnh5_tensor_free(x);
		nnh5_tensor_free(dy);
		nnh5_tensor_free(bad);
	}
}

/* ---- allocation ---- */

static size_t n_allocs;

static void *count_malloc(size_t n)
{
	n_allocs++;
	return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
	n_allocs++;
	return realloc(p, n);
}

/* Once a batch shape has been seen, a training step allocates nothing. */
static void test_step_allocates_nothing(void **state)
{
	(void)state;
	nnh5_set_allocator(count_malloc, count_realloc, free);
	nnh5_model *m;
	nnh5_optim *o;
	nnh5_tensor *x, *y, *g;
	nnh5_rng rng;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	ok(nnh5_model_add_linear(m, NULL, 20, 64, true));
	ok(nnh5_model_add_relu(m, NULL));
	ok(nnh5_model_add_dropout(m, NULL, 0.5));
	ok(nnh5_model_add_lazy_linear(m, NULL, 10, true));
	x = randn(NNH5_FLOAT32, 2, (int64_t[]){ 16, 20 }, 1);
	g = randn(NNH5_FLOAT32, 2, (int64_t[]){ 16, 10 }, 2);
	ok(nnh5_tensor_new(&y, NNH5_FLOAT32, 2, (int64_t[]){ 16, 10 }));
	nnh5_rng_seed(&rng, 3);
	ok(nnh5_model_forward_train_into(m, x, y, &rng));
	ok(nnh5_optim_adam_new(&o, m, NULL));
	ok(nnh5_model_backward(NULL, m, g));
	ok(nnh5_optim_step(o));
	size_t before = n_allocs;
	for (int k = 0; k < 3; k++) {
		ok(nnh5_model_zero_grad(m));
		ok(nnh5_model_forward_train_into(m, x, y, &rng));
		ok(nnh5_model_backward(NULL, m, g));
		ok(nnh5_optim_step(o));
	}
	assert_int_equal(n_allocs, before);
	nnh5_optim_free(o);
	nnh5_model_free(m);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_tensor_free(g);
	nnh5_set_allocator(NULL, NULL, NULL);
}

/* ---- errors ---- */

static void test_errors_forward_backward(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_tensor *x, *x32, *y, *g, *gbad, *g32, *dx;
	nnh5_rng rng;
	nnh5_rng_seed(&rng, 1);
	ok(nnh5_model_new(&m, NNH5_FLOAT64, 1));
	ok(nnh5_model_add_linear(m, "hidden", 4, 5, true));
	ok(nnh5_model_add_dropout(m, "drop", 0.5));
	ok(nnh5_model_add_linear(m, "output", 5, 2, true));
	x = randn(NNH5_FLOAT64, 2, (int64_t[]){ 3, 4 }, 2);
	g = randn(NNH5_FLOAT64, 2, (int64_t[]){ 3, 2 }, 3);

	fails(NNH5_ERR_INVALID, nnh5_model_backward(NULL, m, g), "backward", "no forward_train");
	x32 = randn(NNH5_FLOAT32, 2, (int64_t[]){ 3, 4 }, 2);
	fails(NNH5_ERR_INVALID, nnh5_model_forward_train(&y, m, x32, &rng), "float32", "float64");
	assert_null(y);
	nnh5_tensor *wide = randn(NNH5_FLOAT64, 2, (int64_t[]){ 3, 7 }, 2);
	fails(NNH5_ERR_SHAPE, nnh5_model_forward_train(&y, m, wide, &rng), "'hidden'", "7", "4");
	fails(NNH5_ERR_INVALID, nnh5_model_forward_train(&y, m, x, NULL), "'drop'", "rng is NULL");

	ok(nnh5_model_forward_train(&y, m, x, &rng));
	gbad = randn(NNH5_FLOAT64, 2, (int64_t[]){ 3, 3 }, 3);
	fails(NNH5_ERR_SHAPE, nnh5_model_backward(NULL, m, gbad), "(3, 3)", "(3, 2)");
	g32 = randn(NNH5_FLOAT32, 2, (int64_t[]){ 3, 2 }, 3);
	fails(NNH5_ERR_INVALID, nnh5_model_backward(NULL, m, g32), "grad_output dtype float32");
	/* failed calls did not consume the forward pass */
	ok(nnh5_model_backward(&dx, m, g));
	assert_int_equal(nnh5_tensor_dim(dx, 1), 4);
	nnh5_tensor_free(dx);
	fails(NNH5_ERR_INVALID, nnh5_model_backward(NULL, m, g), "no forward_train");

	/* a failed forward_train leaves nothing to go back through */
	nnh5_tensor_free(y);
	ok(nnh5_model_forward_train(&y, m, x, &rng));
	fails(NNH5_ERR_SHAPE, nnh5_model_forward_train_into(m, x, gbad, &rng), "output tensor shape");
	fails(NNH5_ERR_INVALID, nnh5_model_backward(NULL, m, g), "no forward_train");

	/* an empty batch goes through and leaves the gradients alone */
	nnh5_tensor *x0, *y0, *dx0;
	nnh5_dict *grads;
	ok(nnh5_model_zero_grad(m));
	ok(nnh5_tensor_new(&x0, NNH5_FLOAT64, 2, (int64_t[]){ 0, 4 }));
	ok(nnh5_model_forward_train(&y0, m, x0, &rng));
	assert_int_equal(nnh5_tensor_numel(y0), 0);
	ok(nnh5_model_backward(&dx0, m, y0));
	assert_int_equal(nnh5_tensor_dim(dx0, 1), 4);
	ok(nnh5_model_grads(&grads, m));
	for (size_t j = 0; j < nnh5_tensor_numel(nnh5_dict_get(grads, "hidden.weight")); j++)
		assert_true(nnh5_tensor_get(nnh5_dict_get(grads, "hidden.weight"), j) == 0.0);
	nnh5_dict_free(grads);
	nnh5_tensor_free(x0);
	nnh5_tensor_free(y0);
	nnh5_tensor_free(dx0);

	/* the model changed between forward_train and backward */
	ok(nnh5_model_forward_train_into(m, x, y, &rng));
	ok(nnh5_model_add_relu(m, "late"));
	fails(NNH5_ERR_INVALID, nnh5_model_backward(NULL, m, g), "3 children", "4 now");

	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	nnh5_tensor_free(x32);
	nnh5_tensor_free(wide);
	nnh5_tensor_free(g);
	nnh5_tensor_free(gbad);
	nnh5_tensor_free(g32);
	nnh5_model_free(m);
}

static void test_errors_losses(void **state)
{
	(void)state;
	double loss = -1.0;
	nnh5_tensor *logits = randn(NNH5_FLOAT32, 2, (int64_t[]){ 4, 3 }, 1), *g;
	nnh5_tensor *t = classes_of(1, (int64_t[]){ 4 }, 3, 2);
	nnh5_tensor *t5 = classes_of(1, (int64_t[]){ 5 }, 3, 2);
	nnh5_tensor *tf, *ti32, *li;
	ok(nnh5_tensor_convert(&tf, t, NNH5_FLOAT32));
	ok(nnh5_tensor_convert(&ti32, t, NNH5_INT32));
	ok(nnh5_tensor_convert(&li, logits, NNH5_INT64));

	fails(NNH5_ERR_INVALID, nnh5_loss_cross_entropy(&loss, &g, logits, tf), "targets dtype float32",
	      "int64");
	assert_null(g);
	fails(NNH5_ERR_INVALID, nnh5_loss_cross_entropy(&loss, &g, logits, ti32), "int32");
	fails(NNH5_ERR_INVALID, nnh5_loss_cross_entropy(&loss, &g, li, t), "logits dtype int64");
	fails(NNH5_ERR_SHAPE, nnh5_loss_cross_entropy(&loss, &g, logits, t5), "(5,)", "(4, 3)");
	ok(nnh5_tensor_set(t, 2, 3.0));
	fails(NNH5_ERR_INVALID, nnh5_loss_cross_entropy(&loss, &g, logits, t), "target 3 at index 2",
	      "3 classes");
	ok(nnh5_tensor_set(t, 2, -100.0));
	fails(NNH5_ERR_INVALID, nnh5_loss_cross_entropy(&loss, &g, logits, t), "target -100");
	assert_true(loss == -1.0);
	nnh5_tensor *l3 = randn(NNH5_FLOAT32, 3, (int64_t[]){ 2, 2, 3 }, 1);
	fails(NNH5_ERR_SHAPE, nnh5_loss_cross_entropy(&loss, &g, l3, t), "(2, 2, 3)");
	nnh5_tensor *empty, *tempty;
	ok(nnh5_tensor_new(&empty, NNH5_FLOAT32, 2, (int64_t[]){ 0, 3 }));
	ok(nnh5_tensor_new(&tempty, NNH5_INT64, 1, (int64_t[]){ 0 }));
	fails(NNH5_ERR_SHAPE, nnh5_loss_cross_entropy(&loss, &g, empty, tempty), "empty");

	nnh5_tensor *a = randn(NNH5_FLOAT32, 2, (int64_t[]){ 4, 3 }, 3);
	nnh5_tensor *b64 = randn(NNH5_FLOAT64, 2, (int64_t[]){ 4, 3 }, 3);
	nnh5_tensor *b43 = randn(NNH5_FLOAT32, 2, (int64_t[]){ 3, 4 }, 3);
	fails(NNH5_ERR_INVALID, nnh5_loss_mse(&loss, &g, a, b64), "float32", "float64");
	fails(NNH5_ERR_SHAPE, nnh5_loss_mse(&loss, &g, a, b43), "(4, 3)", "(3, 4)");
	fails(NNH5_ERR_SHAPE, nnh5_loss_mse(&loss, &g, empty, empty), "no elements");
	assert_null(g);

	nnh5_tensor_free(logits);
	nnh5_tensor_free(t);
	nnh5_tensor_free(t5);
	nnh5_tensor_free(tf);
	nnh5_tensor_free(ti32);
	nnh5_tensor_free(li);
	nnh5_tensor_free(l3);
	nnh5_tensor_free(empty);
	nnh5_tensor_free(tempty);
	nnh5_tensor_free(a);
	nnh5_tensor_free(b64);
	nnh5_tensor_free(b43);
}

static void test_errors_optim_new(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *o;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	fails(NNH5_ERR_INVALID, nnh5_optim_sgd_new(&o, m, NULL), "no parameters");
	assert_null(o);
	ok(nnh5_model_add_lazy_linear(m, "enc", 4, true));
	fails(NNH5_ERR_INVALID, nnh5_optim_adam_new(&o, m, NULL), "'enc'", "LazyLinear",
	      "no parameters yet");
	nnh5_model_free(m);

	ok(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	ok(nnh5_model_add_linear(m, "step", 2, 2, true));
	fails(NNH5_ERR_INVALID, nnh5_optim_adam_new(&o, m, NULL), "'step'");
	nnh5_model_free(m);

	ok(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	ok(nnh5_model_add_linear(m, "l", 2, 2, true));
	nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
	so.lr = -0.1;
	fails(NNH5_ERR_INVALID, nnh5_optim_sgd_new(&o, m, &so), "lr -0.1");
	so = (nnh5_sgd_options)NNH5_SGD_OPTIONS_INIT;
	so.nesterov = true;
	fails(NNH5_ERR_INVALID, nnh5_optim_sgd_new(&o, m, &so), "nesterov needs momentum > 0");
	so.momentum = 0.9;
	so.dampening = 0.1;
	fails(NNH5_ERR_INVALID, nnh5_optim_sgd_new(&o, m, &so), "dampening 0.1");
	so = (nnh5_sgd_options)NNH5_SGD_OPTIONS_INIT;
	so.momentum = NAN;
	fails(NNH5_ERR_INVALID, nnh5_optim_sgd_new(&o, m, &so), "momentum nan");
	so = (nnh5_sgd_options)NNH5_SGD_OPTIONS_INIT;
	so.version = 99;
	fails(NNH5_ERR_INVALID, nnh5_optim_sgd_new(&o, m, &so), "version 99");
	nnh5_adam_options ao = NNH5_ADAM_OPTIONS_INIT;
	ao.beta1 = 1.0;
	fails(NNH5_ERR_INVALID, nnh5_optim_adam_new(&o, m, &ao), "beta1 1", "[0, 1)");
	ao = (nnh5_adam_options)NNH5_ADAM_OPTIONS_INIT;
	ao.eps = -1e-8;
	fails(NNH5_ERR_INVALID, nnh5_optim_adam_new(&o, m, &ao), "eps");
	ao = (nnh5_adam_options)NNH5_ADAM_OPTIONS_INIT;
	ao.weight_decay = -1.0;
	fails(NNH5_ERR_INVALID, nnh5_optim_adam_new(&o, m, &ao), "weight_decay -1");

	ok(nnh5_optim_adam_new(&o, m, NULL));
	fails(NNH5_ERR_INVALID, nnh5_optim_set_lr(o, -1.0), "lr -1");
	fails(NNH5_ERR_INVALID, nnh5_optim_set_lr(o, INFINITY), "lr inf");
	assert_true(nnh5_optim_get_lr(o) == 1e-3);
	nnh5_optim_free(o);
	nnh5_model_free(m);
}

/* A two-layer float32 model and an optimizer of each kind that has taken two steps. */
static void two_optims(nnh5_model **m, nnh5_optim **sgd, nnh5_optim **adam)
{
	nnh5_dict *g;
	ok(nnh5_model_new(m, NNH5_FLOAT32, 1));
	ok(nnh5_model_add_linear(*m, "hidden", 3, 4, true));
	ok(nnh5_model_add_linear(*m, "out", 4, 2, false));
	nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
	so.momentum = 0.5;
	ok(nnh5_optim_sgd_new(sgd, *m, &so));
	ok(nnh5_optim_adam_new(adam, *m, NULL));
	ok(nnh5_model_grads(&g, *m));
	for (size_t i = 0; i < nnh5_dict_len(g); i++)
		for (size_t j = 0; j < nnh5_tensor_numel(nnh5_dict_value(g, i)); j++)
			ok(nnh5_tensor_set(nnh5_dict_value(g, i), j, 0.1 * (double)(j + 1)));
	for (int k = 0; k < 2; k++) {
		ok(nnh5_optim_step(*sgd));
		ok(nnh5_optim_step(*adam));
	}
	nnh5_dict_free(g);
}

/* A deep copy of a dict (the optimizer's views would follow the optimizer). */
static nnh5_dict *copy_dict(const nnh5_dict *d)
{
	nnh5_dict *c;
	ok(nnh5_dict_new(&c));
	for (size_t i = 0; i < nnh5_dict_len(d); i++) {
		nnh5_tensor *t;
		ok(nnh5_tensor_clone(&t, nnh5_dict_value(d, i)));
		ok(nnh5_dict_set(c, nnh5_dict_key(d, i), t));
	}
	return c;
}

static void test_errors_optim_load(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_optim *sgd, *adam;
	nnh5_dict *views, *sd, *before, *after;
	two_optims(&m, &sgd, &adam);
	ok(nnh5_optim_state_dict(&views, adam));
	before = copy_dict(views);
	nnh5_dict_free(views);

	/* missing, extra and mis-shaped keys: one message lists them all */
	sd = copy_dict(before);
	ok(nnh5_dict_remove(sd, "step"));
	ok(nnh5_dict_remove(sd, "out.weight.exp_avg_sq"));
	nnh5_tensor *t;
	ok(nnh5_tensor_new(&t, NNH5_FLOAT32, 2, (int64_t[]){ 4, 2 }));
	ok(nnh5_dict_set(sd, "out.weight.exp_avg", t));
	ok(nnh5_tensor_new(&t, NNH5_FLOAT32, 1, (int64_t[]){ 2 }));
	ok(nnh5_dict_set(sd, "out.bias.exp_avg", t));
	fails(NNH5_ERR_SHAPE, nnh5_optim_load_state_dict(adam, sd),
	      "missing keys: 'step', 'out.weight.exp_avg_sq'", "unexpected keys: 'out.bias.exp_avg'",
	      "size mismatch: 'out.weight.exp_avg': expected (2, 4), source (4, 2)");
	nnh5_dict_free(sd);

	/* dtypes */
	sd = copy_dict(before);
	nnh5_tensor *lr32, *buf64;
	ok(nnh5_tensor_convert(&lr32, nnh5_dict_get(sd, "lr"), NNH5_FLOAT32));
	ok(nnh5_dict_set(sd, "lr", lr32));
	ok(nnh5_tensor_convert(&buf64, nnh5_dict_get(sd, "hidden.bias.exp_avg"), NNH5_FLOAT64));
	ok(nnh5_dict_set(sd, "hidden.bias.exp_avg", buf64));
	fails(NNH5_ERR_TYPE, nnh5_optim_load_state_dict(adam, sd),
	      "dtype mismatch: 'lr': expected float64, source float32",
	      "'hidden.bias.exp_avg': expected float32, source float64");
	nnh5_dict_free(sd);

	/* values out of range */
	sd = copy_dict(before);
	ok(nnh5_tensor_set(nnh5_dict_get(sd, "step"), 0, -3.0));
	fails(NNH5_ERR_INVALID, nnh5_optim_load_state_dict(adam, sd), "step -3");
	ok(nnh5_tensor_set(nnh5_dict_get(sd, "step"), 0, 3.0));
	ok(nnh5_tensor_set(nnh5_dict_get(sd, "betas"), 1, 1.5));
	fails(NNH5_ERR_INVALID, nnh5_optim_load_state_dict(adam, sd), "beta2 1.5");
	nnh5_dict_free(sd);

	/* the other kind's state */
	ok(nnh5_optim_state_dict(&views, sgd));
	fails(NNH5_ERR_INVALID, nnh5_optim_load_state_dict(adam, views), "SGD's", "this optimizer is Adam");
	fails(NNH5_ERR_INVALID, nnh5_optim_load_state_dict(sgd, before), "Adam's", "this optimizer is SGD");
	nnh5_dict_free(views);

	/* every failure left the optimizer as it was */
	ok(nnh5_optim_state_dict(&after, adam));
	assert_true(dicts_bitwise_equal(before, after));
	nnh5_dict_free(after);
	nnh5_dict_free(before);

	/* SGD: the buffers follow the source's momentum; a model with momentum 0 gains them */
	ok(nnh5_optim_state_dict(&views, sgd));
	before = copy_dict(views);
	nnh5_dict_free(views);
	nnh5_optim *plain;
	ok(nnh5_optim_sgd_new(&plain, m, NULL));
	ok(nnh5_optim_load_state_dict(plain, before));
	ok(nnh5_optim_state_dict(&after, plain));
	assert_true(dicts_bitwise_equal(before, after));
	nnh5_dict_free(after);
	ok(nnh5_dict_remove(before, "hidden.bias.momentum_buffer"));
	fails(NNH5_ERR_SHAPE, nnh5_optim_load_state_dict(plain, before),
	      "missing keys: 'hidden.bias.momentum_buffer'");
	ok(nnh5_tensor_set(nnh5_dict_get(before, "momentum"), 0, 0.0));
	fails(NNH5_ERR_SHAPE, nnh5_optim_load_state_dict(plain, before),
	      "unexpected keys: 'hidden.weight.momentum_buffer', 'out.weight.momentum_buffer'");
	nnh5_dict_free(before);
	nnh5_optim_free(plain);

	nnh5_optim_free(sgd);
	nnh5_optim_free(adam);
	nnh5_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_mlp_relu),
		cmocka_unit_test(test_fd_activations),
		cmocka_unit_test(test_fd_lazy_batch_dims),
		cmocka_unit_test(test_fd_dropout),
		cmocka_unit_test(test_fd_losses),
		cmocka_unit_test(test_cross_entropy_values),
		cmocka_unit_test(test_float32_grads),
		cmocka_unit_test(test_forward_train_matches_forward),
		cmocka_unit_test(test_dropout_semantics),
		cmocka_unit_test(test_grad_accumulation),
		cmocka_unit_test(test_sgd_by_hand),
		cmocka_unit_test(test_adam_by_hand),
		cmocka_unit_test(test_optim_state_dict_layout),
		cmocka_unit_test(test_learns_classification),
		cmocka_unit_test(test_learns_regression),
		cmocka_unit_test(test_resume_bitwise),
		cmocka_unit_test(test_no_stale_state),
		cmocka_unit_test(test_step_allocates_nothing),
		cmocka_unit_test(test_errors_forward_backward),
		cmocka_unit_test(test_errors_losses),
		cmocka_unit_test(test_errors_optim_new),
		cmocka_unit_test(test_errors_optim_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
