/*
 * tests/nn/test_nn.c - unit tests of the network layer (nnh5/nn.h): the
 * forward pass against a naive reference loop (every activation, with and
 * without bias, float32 and float64, batch 1, 7 and 64), LazyLinear,
 * strict / non-strict / renaming loads and their single error message, the
 * model left unchanged on failure, model files (save, rebuild, verify, an
 * unknown layer type, a missing parameter, architectures larger than the
 * stored parameters refused before allocating), bad inputs, NaN propagation,
 * float16 / bfloat16 parameters, and a forward pass that allocates nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn_internal.h"
#include "file/file_internal.h"
#include "nnh5.h"

/*
 * Every allocation the library makes goes through here, so a test can count
 * them and the bytes held: each block carries its size in a header in front.
 */
static size_t n_allocs;
/* when non-zero, the allocation with this count fails (out-of-memory injection) */
static size_t fail_at;
/* bytes held now, the most held since peak_reset(), the largest single request */
static size_t live_bytes, peak_bytes, largest_request;
/* requests above this fail, so a regression cannot take the machine's memory */
#define REQUEST_LIMIT ((size_t)256 << 20)
#define HEADER 16

static void *hold(unsigned char *base, size_t n)
{
	memcpy(base, &n, sizeof(n));
	live_bytes += n;
	if (live_bytes > peak_bytes)
		peak_bytes = live_bytes;
	return base + HEADER;
}

static size_t held(void *p, unsigned char **base)
{
	size_t n = 0;
	*base = p ? (unsigned char *)p - HEADER : NULL;
	if (p)
		memcpy(&n, *base, sizeof(n));
	return n;
}

static void *count_malloc(size_t n)
{
	if (n > largest_request)
		largest_request = n;
	if (++n_allocs == fail_at || n > REQUEST_LIMIT)
		return NULL;
	unsigned char *base = malloc(n + HEADER);
	return base ? hold(base, n) : NULL;
}

static void *count_realloc(void *p, size_t n)
{
	if (n > largest_request)
		largest_request = n;
	if (++n_allocs == fail_at || n > REQUEST_LIMIT)
		return NULL;
	unsigned char *base;
	size_t old = held(p, &base);
	unsigned char *q = realloc(base, n + HEADER);
	if (!q)
		return NULL;
	live_bytes -= old;
	return hold(q, n);
}

static void count_free(void *p)
{
	unsigned char *base;
	live_bytes -= held(p, &base);
	free(base);
}

static void peak_reset(void)
{
	peak_bytes = live_bytes;
	largest_request = 0;
}

static char tmpdir[512];

static const char *tmp_path(const char *name)
{
	static char buf[2][700];
	static int k;
	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
	return buf[k];
}

#define OK(call) assert_int_equal((call), NNH5_OK)

static nnh5_tensor *randn(nnh5_dtype dt, size_t nd, const int64_t *shape, uint64_t seed)
{
	nnh5_rng rng;
	nnh5_tensor *t;
	nnh5_rng_seed(&rng, seed);
	OK(nnh5_tensor_randn(&t, dt, nd, shape, &rng));
	return t;
}

/* The reference: y = act(x W^T + b) in long double, one element at a time. */
static double act_ref(nnh5_layer_type a, double v)
{
	switch (a) {
	case NNH5_LAYER_RELU:
		return v < 0 ? 0 : v;
	case NNH5_LAYER_SIGMOID:
		return 1.0 / (1.0 + exp(-v));
	case NNH5_LAYER_TANH:
		return tanh(v);
	case NNH5_LAYER_GELU:
		return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
	default:
		return v;
	}
}

/* Run x through the model's layers naively, reading parameters through the state dict. */
static double *reference(nnh5_model *m, const nnh5_tensor *x, size_t *out_n)
{
	nnh5_dict *sd;
	OK(nnh5_model_state_dict(&sd, m));
	size_t nd = nnh5_tensor_ndim(x);
	size_t width = (size_t)nnh5_tensor_dim(x, nd - 1);
	size_t n = nnh5_tensor_numel(x);
	double *cur = malloc(n * sizeof(double));
	for (size_t i = 0; i < n; i++)
		cur[i] = nnh5_tensor_get(x, i);
	for (size_t li = 0; li < nnh5_model_len(m); li++) {
		nnh5_layer_type t = nnh5_model_child_type(m, li);
		const char *name = nnh5_model_child_name(m, li);
		if (t == NNH5_LAYER_LINEAR || t == NNH5_LAYER_LAZY_LINEAR) {
			char key[128];
			snprintf(key, sizeof(key), "%s.weight", name);
			const nnh5_tensor *w = nnh5_dict_get(sd, key);
			snprintf(key, sizeof(key), "%s.bias", name);
			const nnh5_tensor *b = nnh5_dict_get(sd, key);
			assert_non_null(w);
			size_t out = (size_t)nnh5_tensor_dim(w, 0), in = (size_t)nnh5_tensor_dim(w, 1);
			assert_int_equal(in, width);
			size_t rows = n / width;
			double *next = malloc(rows * out * sizeof(double) + 1);
			for (size_t r = 0; r < rows; r++)
				for (size_t o = 0; o < out; o++) {
					long double s = b ? nnh5_tensor_get(b, o) : 0.0;
					for (size_t k = 0; k < in; k++)
						s += (long double)cur[r * in + k] *
						     nnh5_tensor_get(w, o * in + k);
					next[r * out + o] = (double)s;
				}
			free(cur);
			cur = next;
			n = rows * out;
			width = out;
		} else if (t == NNH5_LAYER_FLATTEN) {
			/* only the default Flatten(1, -1) is used with the reference */
			width = n / (size_t)nnh5_tensor_dim(x, 0);
		} else {
			for (size_t i = 0; i < n; i++)
				cur[i] = act_ref(t, cur[i]);
		}
	}
	nnh5_dict_free(sd);
	*out_n = n;
	return cur;
}

static void check_against_reference(nnh5_model *m, const nnh5_tensor *x, double tol)
{
	nnh5_tensor *y;
	size_t n;
	OK(nnh5_model_forward(&y, m, x));
	double *ref = reference(m, x, &n);
	assert_int_equal(nnh5_tensor_numel(y), n);
	double maxref = 1e-30;
	for (size_t i = 0; i < n; i++)
		maxref = fmax(maxref, fabs(ref[i]));
	for (size_t i = 0; i < n; i++) {
		double d = fabs(nnh5_tensor_get(y, i) - ref[i]);
		if (d > tol * maxref)
			fail_msg("element %zu: got %.9g, reference %.9g", i, nnh5_tensor_get(y, i), ref[i]);
	}
	free(ref);
	nnh5_tensor_free(y);
}

static void test_forward_reference(void **state)
{
	(void)state;
	const nnh5_dtype dts[] = { NNH5_FLOAT32, NNH5_FLOAT64 };
	const size_t batches[] = { 1, 7, 64 };
	const nnh5_layer_type acts[] = { 0, NNH5_LAYER_RELU, NNH5_LAYER_SIGMOID, NNH5_LAYER_TANH,
					 NNH5_LAYER_GELU };
	for (size_t di = 0; di < 2; di++)
		for (size_t bi = 0; bi < 3; bi++)
			for (size_t ai = 0; ai < 5; ai++)
				for (int bias = 0; bias < 2; bias++) {
					nnh5_model *m;
					OK(nnh5_model_new(&m, dts[di], 11 + ai));
					OK(nnh5_model_add_linear(m, NULL, 20, 33, bias));
					switch (acts[ai]) {
					case NNH5_LAYER_RELU:
						OK(nnh5_model_add_relu(m, NULL));
						break;
					case NNH5_LAYER_SIGMOID:
						OK(nnh5_model_add_sigmoid(m, NULL));
						break;
					case NNH5_LAYER_TANH:
						OK(nnh5_model_add_tanh(m, NULL));
						break;
					case NNH5_LAYER_GELU:
						OK(nnh5_model_add_gelu(m, NULL));
						break;
					default:
						break;
					}
					OK(nnh5_model_add_dropout(m, NULL, 0.5));
					OK(nnh5_model_add_linear(m, NULL, 33, 5, true));
					int64_t shape[2] = { (int64_t)batches[bi], 20 };
					nnh5_tensor *x = randn(dts[di], 2, shape, 100 + bi);
					check_against_reference(m, x, dts[di] == NNH5_FLOAT32 ? 2e-6 : 1e-13);
					nnh5_tensor_free(x);
					nnh5_model_free(m);
				}
}

/* Activations first, chained, after a Flatten, and a 3-d input. */
static void test_forward_shapes(void **state)
{
	(void)state;
	nnh5_model *m;
	OK(nnh5_model_new(&m, NNH5_FLOAT32, 5));
	OK(nnh5_model_add_tanh(m, NULL));
	OK(nnh5_model_add_flatten(m, NULL, 1, -1));
	OK(nnh5_model_add_linear(m, NULL, 12, 8, true));
	OK(nnh5_model_add_gelu(m, NULL));
	OK(nnh5_model_add_sigmoid(m, NULL));
	OK(nnh5_model_add_linear(m, NULL, 8, 3, false));
	OK(nnh5_model_add_relu(m, NULL));
	int64_t shape[3] = { 9, 3, 4 };
	nnh5_tensor *x = randn(NNH5_FLOAT32, 3, shape, 3);
	check_against_reference(m, x, 2e-6);
	size_t nd;
	int64_t os[NNH5_MAX_NDIM];
	OK(nnh5_model_output_shape(&nd, os, m, 3, shape));
	assert_int_equal(nd, 2);
	assert_int_equal(os[0], 9);
	assert_int_equal(os[1], 3);
	/* the input is not touched by a leading activation */
	nnh5_tensor *x0;
	OK(nnh5_tensor_clone(&x0, x));
	nnh5_tensor *y;
	OK(nnh5_model_forward(&y, m, x));
	assert_true(nnh5_tensor_bitwise_equal(x, x0));
	nnh5_tensor_free(y);
	nnh5_tensor_free(x0);
	nnh5_tensor_free(x);
	nnh5_model_free(m);

	/* Linear on the last dimension of a 3-d input keeps the batch dimensions */
	OK(nnh5_model_new(&m, NNH5_FLOAT64, 5));
	OK(nnh5_model_add_linear(m, "a", 4, 6, true));
	x = randn(NNH5_FLOAT64, 3, shape, 4);
	OK(nnh5_model_forward(&y, m, x));
	assert_int_equal(nnh5_tensor_ndim(y), 3);
	assert_int_equal(nnh5_tensor_dim(y, 2), 6);
	check_against_reference(m, x, 1e-13);
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);

	/* a model without computing layers copies */
	nnh5_model_free(m);
	OK(nnh5_model_new(&m, NNH5_FLOAT32, 5));
	OK(nnh5_model_add_dropout(m, NULL, 0.2));
	x = randn(NNH5_FLOAT32, 3, shape, 4);
	OK(nnh5_model_forward(&y, m, x));
	assert_true(nnh5_tensor_bitwise_equal(x, y));
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	nnh5_model_free(m);
}

static nnh5_model *seed_mlp(uint64_t seed, bool lazy)
{
	nnh5_model *m;
	OK(nnh5_model_new(&m, NNH5_FLOAT32, seed));
	if (lazy) {
		OK(nnh5_model_add_lazy_linear(m, "hidden", 256, true));
		OK(nnh5_model_add_relu(m, "relu"));
		OK(nnh5_model_add_lazy_linear(m, "output", 10, true));
	} else {
		OK(nnh5_model_add_linear(m, "hidden", 20, 256, true));
		OK(nnh5_model_add_relu(m, "relu"));
		OK(nnh5_model_add_linear(m, "output", 256, 10, true));
	}
	return m;
}

static void test_init_and_names(void **state)
{
	(void)state;
	nnh5_model *a = seed_mlp(1, false), *b = seed_mlp(1, false), *c = seed_mlp(2, false);
	nnh5_dict *sa, *sb, *sc;
	OK(nnh5_model_state_dict(&sa, a));
	OK(nnh5_model_state_dict(&sb, b));
	OK(nnh5_model_state_dict(&sc, c));
	assert_int_equal(nnh5_dict_len(sa), 4);
	assert_string_equal(nnh5_dict_key(sa, 0), "hidden.weight");
	assert_string_equal(nnh5_dict_key(sa, 1), "hidden.bias");
	assert_string_equal(nnh5_dict_key(sa, 2), "output.weight");
	assert_string_equal(nnh5_dict_key(sa, 3), "output.bias");
	for (size_t i = 0; i < 4; i++) {
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(sa, i), nnh5_dict_value(sb, i)));
		assert_false(nnh5_tensor_equal(nnh5_dict_value(sa, i), nnh5_dict_value(sc, i)));
	}
	/* torch's bound 1/sqrt(fan_in), and the values fill it */
	const nnh5_tensor *w = nnh5_dict_get(sa, "hidden.weight");
	double bound = 1.0 / sqrt(20.0), lo = 1, hi = -1;
	for (size_t i = 0; i < nnh5_tensor_numel(w); i++) {
		double v = nnh5_tensor_get(w, i);
		assert_true(v >= -bound && v <= bound);
		lo = fmin(lo, v);
		hi = fmax(hi, v);
	}
	assert_true(lo < -0.9 * bound && hi > 0.9 * bound);
	const nnh5_tensor *ob = nnh5_dict_get(sa, "output.bias");
	for (size_t i = 0; i < nnh5_tensor_numel(ob); i++)
		assert_true(fabs(nnh5_tensor_get(ob, i)) <= 1.0 / 16.0);
	/* views: writing through the state dict changes the model */
	nnh5_tensor *x;
	int64_t shape[2] = { 2, 20 };
	x = randn(NNH5_FLOAT32, 2, shape, 9);
	nnh5_tensor *y1, *y2;
	OK(nnh5_model_forward(&y1, a, x));
	nnh5_tensor *bias0 = nnh5_dict_get(sa, "output.bias");
	OK(nnh5_tensor_set(bias0, 0, nnh5_tensor_get(bias0, 0) + 100.0));
	OK(nnh5_model_forward(&y2, a, x));
	assert_true(fabs(nnh5_tensor_get(y2, 0) - nnh5_tensor_get(y1, 0) - 100.0) < 1e-3);
	assert_false(nnh5_tensor_owns_data(nnh5_dict_value(sa, 0)));
	nnh5_tensor_free(y1);
	nnh5_tensor_free(y2);
	nnh5_tensor_free(x);
	nnh5_dict_free(sa);
	nnh5_dict_free(sb);
	nnh5_dict_free(sc);
	nnh5_model_free(a);
	nnh5_model_free(b);
	nnh5_model_free(c);

	/* automatic names are positions, as in nn.Sequential */
	nnh5_model *m;
	OK(nnh5_model_new(&m, NNH5_FLOAT32, 0));
	OK(nnh5_model_add_linear(m, NULL, 3, 4, true));
	OK(nnh5_model_add_relu(m, NULL));
	OK(nnh5_model_add_linear(m, NULL, 4, 2, false));
	assert_string_equal(nnh5_model_child_name(m, 1), "1");
	nnh5_dict *sd;
	OK(nnh5_model_state_dict(&sd, m));
	assert_int_equal(nnh5_dict_len(sd), 3);
	assert_string_equal(nnh5_dict_key(sd, 2), "2.weight");
	nnh5_dict_free(sd);
	assert_int_equal(nnh5_model_add_relu(m, "1"), NNH5_ERR_EXISTS);
	assert_int_equal(nnh5_model_add_relu(m, "a.b"), NNH5_ERR_INVALID);
	assert_int_equal(nnh5_model_add_relu(m, "nnh5_probe"), NNH5_ERR_INVALID);
	assert_int_equal(nnh5_model_add_linear(m, "z", 0, 3, true), NNH5_ERR_INVALID);
	assert_int_equal(nnh5_model_add_dropout(m, "d", 1.5), NNH5_ERR_INVALID);
	assert_int_equal(nnh5_model_len(m), 3);
	char *s;
	OK(nnh5_model_format(&s, m));
	assert_string_equal(s, "Sequential(\n"
			       "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
			       "  (1): ReLU()\n"
			       "  (2): Linear(in_features=4, out_features=2, bias=False)\n"
			       ")");
	nnh5_free(s);
	nnh5_model_free(m);
	nnh5_model *bad;
	assert_int_equal(nnh5_model_new(&bad, NNH5_INT32, 0), NNH5_ERR_INVALID);
	assert_null(bad);
}

static void test_lazy(void **state)
{
	(void)state;
	nnh5_model *m = seed_mlp(3, true);
	nnh5_dict *sd;
	OK(nnh5_model_state_dict(&sd, m));
	assert_int_equal(nnh5_dict_len(sd), 0);
	nnh5_dict_free(sd);
	int64_t shape[2] = { 7, 20 };
	nnh5_tensor *x = randn(NNH5_FLOAT32, 2, shape, 1), *y;
	assert_int_equal(nnh5_model_child_type(m, 0), NNH5_LAYER_LAZY_LINEAR);
	check_against_reference(m, x, 2e-6); /* materialises on the first forward */
	assert_int_equal(nnh5_model_child_type(m, 0), NNH5_LAYER_LINEAR); /* as torch's cls_to_become */
	OK(nnh5_model_state_dict(&sd, m));
	assert_int_equal(nnh5_dict_len(sd), 4);
	assert_int_equal(nnh5_tensor_dim(nnh5_dict_get(sd, "hidden.weight"), 1), 20);
	assert_int_equal(nnh5_tensor_dim(nnh5_dict_get(sd, "output.weight"), 1), 256);
	/* the width is fixed now */
	int64_t shape2[2] = { 7, 21 };
	nnh5_tensor *x2 = randn(NNH5_FLOAT32, 2, shape2, 1);
	assert_int_equal(nnh5_model_forward(&y, m, x2), NNH5_ERR_SHAPE);
	assert_null(y);
	assert_non_null(strstr(nnh5_error_message(), "expected in_features 20"));

	/* a lazy clone takes its width from loaded parameters */
	nnh5_model *c = seed_mlp(4, true);
	OK(nnh5_model_load_state_dict(NULL, c, sd, NULL));
	nnh5_tensor *y1, *y2;
	OK(nnh5_model_forward(&y1, m, x));
	OK(nnh5_model_forward(&y2, c, x));
	assert_true(nnh5_tensor_bitwise_equal(y1, y2));
	nnh5_tensor_free(y1);
	nnh5_tensor_free(y2);
	nnh5_model_free(c);

	/* a lazy layer's out_features must still match */
	OK(nnh5_model_new(&c, NNH5_FLOAT32, 0));
	OK(nnh5_model_add_lazy_linear(c, "hidden", 255, true));
	assert_int_equal(nnh5_model_load_state_dict(NULL, c, sd, NULL), NNH5_ERR_SHAPE);
	assert_non_null(strstr(nnh5_error_message(), "'hidden.weight': model (255, any), source (256, 20)"));
	nnh5_dict *sd2;
	OK(nnh5_model_state_dict(&sd2, c));
	assert_int_equal(nnh5_dict_len(sd2), 0); /* unchanged: still lazy */
	nnh5_dict_free(sd2);
	nnh5_model_free(c);

	nnh5_dict_free(sd);
	nnh5_tensor_free(x);
	nnh5_tensor_free(x2);
	nnh5_model_free(m);
}

/* Copy every parameter of m into a new dict of owning tensors. */
static nnh5_dict *snapshot(nnh5_model *m)
{
	nnh5_dict *sd, *copy;
	OK(nnh5_model_state_dict(&sd, m));
	OK(nnh5_dict_new(&copy));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		nnh5_tensor *t;
		OK(nnh5_tensor_clone(&t, nnh5_dict_value(sd, i)));
		OK(nnh5_dict_set(copy, nnh5_dict_key(sd, i), t));
	}
	nnh5_dict_free(sd);
	return copy;
}

static void assert_same_params(nnh5_model *m, const nnh5_dict *snap)
{
	nnh5_dict *now = snapshot(m);
	assert_int_equal(nnh5_dict_len(now), nnh5_dict_len(snap));
	for (size_t i = 0; i < nnh5_dict_len(now); i++) {
		assert_string_equal(nnh5_dict_key(now, i), nnh5_dict_key(snap, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(now, i), nnh5_dict_value(snap, i)));
	}
	nnh5_dict_free(now);
}

static void test_strict_load(void **state)
{
	(void)state;
	nnh5_model *src = seed_mlp(1, false);
	nnh5_dict *sd = snapshot(src);
	/* the source gets an extra key, and the target differs in a name and a shape */
	nnh5_tensor *extra;
	int64_t three = 3;
	OK(nnh5_tensor_zeros(&extra, NNH5_FLOAT32, 1, &three));
	OK(nnh5_dict_set(sd, "extra.bias", extra));
	nnh5_model *m;
	OK(nnh5_model_new(&m, NNH5_FLOAT32, 2));
	OK(nnh5_model_add_linear(m, "hidden", 30, 256, true));
	OK(nnh5_model_add_relu(m, "relu"));
	OK(nnh5_model_add_linear(m, "out", 256, 10, true));
	nnh5_dict *before = snapshot(m);
	nnh5_load_result *r;
	assert_int_equal(nnh5_model_load_state_dict(&r, m, sd, NULL), NNH5_ERR_SHAPE);
	assert_string_equal(nnh5_error_message(),
			    "load_state_dict: missing keys: 'out.weight', 'out.bias'; "
			    "unexpected keys: 'output.weight', 'output.bias', 'extra.bias'; "
			    "size mismatch: 'hidden.weight': model (256, 30), source (256, 20)");
	assert_non_null(r);
	assert_int_equal(r->n_missing, 2);
	assert_int_equal(r->n_unexpected, 3);
	assert_int_equal(r->n_mismatched, 1);
	assert_int_equal(r->n_loaded, 0);
	assert_string_equal(r->mismatched[0].key, "hidden.weight");
	assert_int_equal(r->mismatched[0].model_shape[1], 30);
	assert_int_equal(r->mismatched[0].source_shape[1], 20);
	nnh5_load_result_free(r);
	/* hidden.bias matched, but nothing was copied */
	assert_same_params(m, before);

	/* non-strict: what matches is loaded, the lists come back */
	nnh5_load_options o = NNH5_LOAD_OPTIONS_INIT;
	o.strict = false;
	OK(nnh5_model_load_state_dict(&r, m, sd, &o));
	assert_int_equal(r->n_loaded, 1);
	assert_int_equal(r->n_missing, 2);
	assert_string_equal(r->missing[0], "out.weight");
	assert_int_equal(r->n_unexpected, 3);
	assert_string_equal(r->unexpected[2], "extra.bias");
	assert_int_equal(r->n_mismatched, 1);
	nnh5_load_result_free(r);
	nnh5_dict *after;
	OK(nnh5_model_state_dict(&after, m));
	assert_true(nnh5_tensor_equal(nnh5_dict_get(after, "hidden.bias"),
				      nnh5_dict_get(sd, "hidden.bias")));
	assert_true(nnh5_tensor_equal(nnh5_dict_get(after, "out.bias"),
				      nnh5_dict_get(before, "out.bias")));
	nnh5_dict_free(after);

	/* bad options */
	o.version = 99;
	assert_int_equal(nnh5_model_load_state_dict(&r, m, sd, &o), NNH5_ERR_INVALID);
	assert_null(r);

	/* an integer tensor is refused, nothing changes */
	nnh5_dict_free(before);
	before = snapshot(m);
	nnh5_tensor *it;
	OK(nnh5_tensor_zeros(&it, NNH5_INT64, 1, (int64_t[]){ 256 }));
	OK(nnh5_dict_set(sd, "hidden.bias", it));
	o = (nnh5_load_options)NNH5_LOAD_OPTIONS_INIT;
	o.strict = false;
	assert_int_equal(nnh5_model_load_state_dict(NULL, m, sd, &o), NNH5_ERR_TYPE);
	assert_same_params(m, before);

	nnh5_dict_free(before);
	nnh5_dict_free(sd);
	nnh5_model_free(m);
	nnh5_model_free(src);
}

static void test_rename_load(void **state)
{
	(void)state;
	nnh5_model *src = seed_mlp(1, false);
	nnh5_dict *sd = snapshot(src);
	/* the first two layers (hidden + its ReLU) into another architecture, renamed */
	nnh5_model *m;
	OK(nnh5_model_new(&m, NNH5_FLOAT32, 8));
	OK(nnh5_model_add_linear(m, "encoder", 20, 256, true));
	OK(nnh5_model_add_relu(m, NULL));
	OK(nnh5_model_add_linear(m, "head", 256, 2, true));
	nnh5_key_rename ren[] = { { "hidden.", "encoder." } };
	nnh5_load_options o = NNH5_LOAD_OPTIONS_INIT;
	o.renames = ren;
	o.n_renames = 1;
	/* strict still demands the head */
	assert_int_equal(nnh5_model_load_state_dict(NULL, m, sd, &o), NNH5_ERR_SHAPE);
	assert_string_equal(nnh5_error_message(),
			    "load_state_dict: missing keys: 'head.weight', 'head.bias'");
	o.strict = false;
	nnh5_load_result *r;
	OK(nnh5_model_load_state_dict(&r, m, sd, &o));
	assert_int_equal(r->n_loaded, 2);
	assert_int_equal(r->n_unexpected, 0); /* output.* was not selected */
	nnh5_load_result_free(r);
	nnh5_dict *now;
	OK(nnh5_model_state_dict(&now, m));
	assert_true(nnh5_tensor_equal(nnh5_dict_get(now, "encoder.weight"),
				      nnh5_dict_get(sd, "hidden.weight")));
	nnh5_dict_free(now);

	/* the encoder alone loads strictly with the selection */
	nnh5_model *enc;
	OK(nnh5_model_new(&enc, NNH5_FLOAT32, 8));
	OK(nnh5_model_add_linear(enc, "encoder", 20, 256, true));
	OK(nnh5_model_add_relu(enc, "relu"));
	o.strict = true;
	OK(nnh5_model_load_state_dict(NULL, enc, sd, &o));
	/* and its output is the source's hidden activations */
	nnh5_model *h;
	OK(nnh5_model_new(&h, NNH5_FLOAT32, 9));
	OK(nnh5_model_add_linear(h, "hidden", 20, 256, true));
	OK(nnh5_model_add_relu(h, "relu"));
	nnh5_key_rename sel = { "hidden.", "hidden." };
	o.renames = &sel;
	OK(nnh5_model_load_state_dict(NULL, h, sd, &o));
	int64_t shape[2] = { 3, 20 };
	nnh5_tensor *x = randn(NNH5_FLOAT32, 2, shape, 1), *y1, *y2;
	OK(nnh5_model_forward(&y1, enc, x));
	OK(nnh5_model_forward(&y2, h, x));
	assert_true(nnh5_tensor_bitwise_equal(y1, y2));
	/* two source keys into one model key is an error */
	nnh5_key_rename two[] = { { "hidden.", "hidden." }, { "output.", "hidden." } };
	o.renames = two;
	o.n_renames = 2;
	o.strict = false;
	assert_int_equal(nnh5_model_load_state_dict(NULL, h, sd, &o), NNH5_ERR_INVALID);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y1);
	nnh5_tensor_free(y2);
	nnh5_model_free(h);
	nnh5_model_free(enc);
	nnh5_model_free(m);
	nnh5_dict_free(sd);
	nnh5_model_free(src);
}

static void test_model_file(void **state)
{
	(void)state;
	nnh5_model *m;
	OK(nnh5_model_new(&m, NNH5_FLOAT64, 21));
	OK(nnh5_model_add_flatten(m, "flat", 1, -1));
	OK(nnh5_model_add_linear(m, "hidden", 12, 16, true));
	OK(nnh5_model_add_gelu(m, "gelu"));
	OK(nnh5_model_add_dropout(m, "drop", 0.25));
	OK(nnh5_model_add_lazy_linear(m, "lazy", 5, false));
	OK(nnh5_model_add_tanh(m, NULL));
	OK(nnh5_model_add_lazy_linear(m, "never", 4, true));
	OK(nnh5_model_add_sigmoid(m, NULL));
	int64_t shape[3] = { 6, 3, 4 };
	nnh5_tensor *x = randn(NNH5_FLOAT64, 3, shape, 2);
	const char *path = tmp_path("model.h5");
	/* the probe materialises both lazy layers */
	OK(nnh5_save_model(path, m, x));
	nnh5_model *r;
	OK(nnh5_load_model(&r, path));
	char *s1, *s2;
	OK(nnh5_model_format(&s1, m));
	OK(nnh5_model_format(&s2, r));
	assert_string_equal(s1, s2);
	assert_non_null(strstr(s1, "(drop): Dropout(p=0.25, inplace=False)"));
	assert_non_null(strstr(s1, "(flat): Flatten(start_dim=1, end_dim=-1)"));
	assert_non_null(strstr(s1, "(gelu): GELU(approximate='none')"));
	nnh5_free(s1);
	nnh5_free(s2);
	assert_int_equal(nnh5_model_dtype(r), NNH5_FLOAT64);
	nnh5_tensor *y1, *y2;
	OK(nnh5_model_forward(&y1, m, x));
	OK(nnh5_model_forward(&y2, r, x));
	assert_true(nnh5_tensor_bitwise_equal(y1, y2));
	nnh5_tensor_free(y1);
	nnh5_tensor_free(y2);
	nnh5_verify_result v;
	OK(nnh5_verify_model(&v, path));
	assert_true(v.bitwise_equal);
	assert_true(v.max_abs_diff == 0.0);
	assert_int_equal(v.numel, 6 * 4);
	nnh5_model_free(r);

	/* the file is a state dict to other readers, without the probe */
	nnh5_dict *sd;
	OK(nnh5_load_state_dict(&sd, path));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++)
		assert_null(strstr(nnh5_dict_key(sd, i), "nnh5_"));
	nnh5_dict_free(sd);

	/* a model with a LazyLinear not inferred yet saves and rebuilds lazy, without a probe */
	nnh5_model *lz;
	OK(nnh5_model_new(&lz, NNH5_FLOAT32, 0));
	OK(nnh5_model_add_lazy_linear(lz, "l", 3, true));
	OK(nnh5_save_model(tmp_path("lazy.h5"), lz, NULL));
	nnh5_model_free(lz);
	OK(nnh5_load_model(&lz, tmp_path("lazy.h5")));
	assert_int_equal(nnh5_model_child_type(lz, 0), NNH5_LAYER_LAZY_LINEAR);
	OK(nnh5_model_format(&s1, lz));
	assert_non_null(strstr(s1, "LazyLinear(in_features=0, out_features=3, bias=True)"));
	nnh5_free(s1);
	assert_int_equal(nnh5_verify_model(&v, tmp_path("lazy.h5")), NNH5_ERR_NOT_FOUND);
	nnh5_model_free(lz);

	/* a different stored output is reported, not an error */
	nnh5_file *f;
	OK(nnh5_file_open(&f, tmp_path("changed.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "models/net", m, x));
	hid_t h = nnh5__file_hid(f);
	assert_true(H5Ldelete(h, "/models/net/nnh5_probe/output", H5P_DEFAULT) >= 0);
	OK(nnh5_model_forward(&y1, m, x));
	OK(nnh5_tensor_set(y1, 3, nnh5_tensor_get(y1, 3) + 0.5));
	OK(nnh5_file_write_tensor(f, "models/net/nnh5_probe/output", y1));
	nnh5_tensor_free(y1);
	OK(nnh5_file_close(f));
	OK(nnh5_file_open(&f, tmp_path("changed.h5"), NNH5_READ));
	OK(nnh5_file_verify_model(&v, f, "models/net"));
	assert_false(v.bitwise_equal);
	assert_true(fabs(v.max_abs_diff - 0.5) < 1e-12);
	/* a state dict is not a model */
	nnh5_model *none;
	assert_int_equal(nnh5_file_read_model(&none, f, "models/net/hidden"), NNH5_ERR_FORMAT);
	assert_null(none);
	OK(nnh5_file_close(f));

	nnh5_tensor_free(x);
	nnh5_model_free(m);
}

static void test_bad_model_files(void **state)
{
	(void)state;
	nnh5_model *m = seed_mlp(1, false), *r;
	nnh5_file *f;

	/* an unknown layer type is named */
	OK(nnh5_file_open(&f, tmp_path("unknown.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	OK(nnh5__file_set_attr_string(f, "/relu", "nnh5_layer_type", "Swish"));
	OK(nnh5_file_close(f));
	assert_int_equal(nnh5_load_model(&r, tmp_path("unknown.h5")), NNH5_ERR_FORMAT);
	assert_null(r);
	assert_non_null(strstr(nnh5_error_message(), "unknown layer type 'Swish'"));
	assert_non_null(strstr(nnh5_error_message(), "child 'relu'"));

	/* a missing parameter is named */
	OK(nnh5_file_open(&f, tmp_path("missing.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	assert_true(H5Ldelete(nnh5__file_hid(f), "/output/bias", H5P_DEFAULT) >= 0);
	OK(nnh5_file_close(f));
	assert_int_equal(nnh5_load_model(&r, tmp_path("missing.h5")), NNH5_ERR_SHAPE);
	assert_null(r);
	assert_non_null(strstr(nnh5_error_message(), "missing keys: 'output.bias'"));

	/* a missing hyperparameter is named */
	OK(nnh5_file_open(&f, tmp_path("nohyper.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	assert_true(H5Adelete_by_name(nnh5__file_hid(f), "/hidden", "out_features", H5P_DEFAULT) >= 0);
	OK(nnh5_file_close(f));
	assert_int_equal(nnh5_load_model(&r, tmp_path("nohyper.h5")), NNH5_ERR_FORMAT);
	assert_non_null(strstr(nnh5_error_message(), "out_features"));

	/* a plain state dict has no architecture */
	nnh5_dict *sd;
	OK(nnh5_model_state_dict(&sd, m));
	OK(nnh5_save_state_dict(tmp_path("plain.h5"), sd));
	nnh5_dict_free(sd);
	assert_int_equal(nnh5_load_model(&r, tmp_path("plain.h5")), NNH5_ERR_FORMAT);
	assert_int_equal(nnh5_load_model(&r, tmp_path("does-not-exist.h5")), NNH5_ERR_NOT_FOUND);
	nnh5_model_free(m);
}

/* Load path expecting status, with the bytes the library held meanwhile under 1 MiB. */
static void load_small(const char *path, int status)
{
	nnh5_model *r = (nnh5_model *)1;
	size_t before = live_bytes;
	peak_reset();
	assert_int_equal(nnh5_load_model(&r, path), status);
	assert_null(r);
	assert_true(peak_bytes - before < ((size_t)1 << 20));
	assert_true(largest_request < ((size_t)1 << 20));
	assert_int_equal(live_bytes, before);
	assert_non_null(strstr(nnh5_error_message(), path));
}

/* A file of tens of KB declaring layers of GBs: refused before allocating them. */
static void test_forged_architecture(void **state)
{
	(void)state;
	nnh5_model *m = seed_mlp(1, false);
	nnh5_file *f;
	const char *msg;

	/* Linear(20000, 20000) over a stored (10, 256) weight: 1.6 GB before the fix */
	OK(nnh5_file_open(&f, tmp_path("forged.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	OK(nnh5__file_set_attr_int(f, "/output", "in_features", 20000));
	OK(nnh5__file_set_attr_int(f, "/output", "out_features", 20000));
	OK(nnh5_file_close(f));
	load_small(tmp_path("forged.h5"), NNH5_ERR_SHAPE);
	msg = nnh5_error_message();
	assert_non_null(strstr(msg, "child 'output' declares Linear(in_features=20000, out_features=20000)"));
	assert_non_null(strstr(msg, "stores 'output.weight' as (10, 256)"));

	/* the same without any stored weight */
	OK(nnh5_file_open(&f, tmp_path("forged-noweight.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	OK(nnh5__file_set_attr_int(f, "/hidden", "in_features", 20000));
	OK(nnh5__file_set_attr_int(f, "/hidden", "out_features", 20000));
	assert_true(H5Ldelete(nnh5__file_hid(f), "/hidden/weight", H5P_DEFAULT) >= 0);
	OK(nnh5_file_close(f));
	load_small(tmp_path("forged-noweight.h5"), NNH5_ERR_SHAPE);
	assert_non_null(strstr(nnh5_error_message(), "has no parameter 'hidden.weight'"));

	/* a declared size whose bytes overflow */
	OK(nnh5_file_open(&f, tmp_path("forged-overflow.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	OK(nnh5__file_set_attr_int(f, "/output", "in_features", INT32_MAX));
	OK(nnh5__file_set_attr_int(f, "/output", "out_features", INT32_MAX));
	OK(nnh5_file_close(f));
	load_small(tmp_path("forged-overflow.h5"), NNH5_ERR_SHAPE);
	assert_non_null(strstr(nnh5_error_message(), "in_features=2147483647, out_features=2147483647"));

	/* a LazyLinear declaring other rows than its stored weight */
	OK(nnh5_file_open(&f, tmp_path("forged-lazy.h5"), NNH5_CREATE));
	OK(nnh5_file_write_model(f, "/", m, NULL));
	OK(nnh5__file_set_attr_string(f, "/output", "nnh5_layer_type", "LazyLinear"));
	OK(nnh5__file_set_attr_int(f, "/output", "out_features", 2000000000));
	OK(nnh5_file_close(f));
	load_small(tmp_path("forged-lazy.h5"), NNH5_ERR_SHAPE);
	assert_non_null(strstr(nnh5_error_message(), "LazyLinear(out_features=2000000000)"));

	/* the open options' caps bound the stored weights, and so what is built from them */
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	o.max_tensor_bytes = 4096; /* hidden.weight, (256, 20) float32, is 20480 bytes */
	nnh5_model *r = (nnh5_model *)1;
	OK(nnh5_save_model(tmp_path("honest.h5"), m, NULL));
	OK(nnh5_file_open_ext(&f, tmp_path("honest.h5"), NNH5_READ, &o));
	size_t before = live_bytes;
	peak_reset();
	assert_int_equal(nnh5_file_read_model(&r, f, "/"), NNH5_ERR_OVERFLOW);
	assert_null(r);
	assert_true(peak_bytes - before < 4096 * 4);
	assert_non_null(strstr(nnh5_error_message(), "max_tensor_bytes"));
	OK(nnh5_file_close(f));

	/* the untouched model still loads */
	OK(nnh5_load_model(&r, tmp_path("honest.h5")));
	nnh5_model_free(r);
	nnh5_model_free(m);
}

static void test_bad_input(void **state)
{
	(void)state;
	nnh5_model *m = seed_mlp(1, false);
	nnh5_tensor *x, *y;
	int64_t shape[2] = { 2, 19 };
	x = randn(NNH5_FLOAT32, 2, shape, 1);
	assert_int_equal(nnh5_model_forward(&y, m, x), NNH5_ERR_SHAPE);
	assert_null(y);
	assert_string_equal(nnh5_error_message(),
			    "forward: layer 'hidden' (Linear): input shape (2, 19) has 19 features, expected in_features 20");
	nnh5_tensor_free(x);
	shape[1] = 20;
	x = randn(NNH5_FLOAT64, 2, shape, 1);
	assert_int_equal(nnh5_model_forward(&y, m, x), NNH5_ERR_INVALID);
	assert_non_null(strstr(nnh5_error_message(), "float64"));
	nnh5_tensor_free(x);
	OK(nnh5_tensor_new(&x, NNH5_FLOAT32, 0, NULL));
	assert_int_equal(nnh5_model_forward(&y, m, x), NNH5_ERR_SHAPE);
	nnh5_tensor_free(x);
	/* forward_into refuses a wrong output shape and leaves it alone */
	x = randn(NNH5_FLOAT32, 2, shape, 1);
	OK(nnh5_tensor_full(&y, NNH5_FLOAT32, 2, (int64_t[]){ 2, 11 }, 7.0));
	assert_int_equal(nnh5_model_forward_into(m, x, y), NNH5_ERR_SHAPE);
	assert_true(nnh5_tensor_get(y, 0) == 7.0);
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	/* Flatten of dimensions the input does not have */
	nnh5_model *fl;
	OK(nnh5_model_new(&fl, NNH5_FLOAT32, 0));
	OK(nnh5_model_add_flatten(fl, NULL, 1, -1));
	OK(nnh5_tensor_zeros(&x, NNH5_FLOAT32, 1, (int64_t[]){ 4 }));
	assert_int_equal(nnh5_model_forward(&y, fl, x), NNH5_ERR_SHAPE);
	nnh5_tensor_free(x);
	nnh5_model_free(fl);
	nnh5_model_free(m);
}

static void test_nan_inf(void **state)
{
	(void)state;
	const nnh5_dtype dts[] = { NNH5_FLOAT32, NNH5_FLOAT64 };
	for (size_t d = 0; d < 2; d++) {
		nnh5_model *m;
		OK(nnh5_model_new(&m, dts[d], 1));
		OK(nnh5_model_add_linear(m, "a", 4, 3, true));
		OK(nnh5_model_add_relu(m, NULL));
		OK(nnh5_model_add_sigmoid(m, NULL));
		int64_t shape[2] = { 3, 4 };
		nnh5_tensor *x = randn(dts[d], 2, shape, 1), *y;
		OK(nnh5_tensor_set(x, 1, NAN));      /* row 0 */
		OK(nnh5_tensor_set(x, 6, INFINITY)); /* row 1 */
		OK(nnh5_model_forward(&y, m, x));
		for (size_t c = 0; c < 3; c++) {
			assert_true(isnan(nnh5_tensor_get(y, c)));
			double v = nnh5_tensor_get(y, 3 + c);
			assert_true(v == 0.5 || v == 1.0); /* sigmoid(relu(+-Inf)) */
			assert_true(isfinite(nnh5_tensor_get(y, 6 + c)));
		}
		nnh5_tensor_free(y);
		/* each activation alone keeps NaN */
		nnh5_model *a;
		OK(nnh5_model_new(&a, dts[d], 1));
		OK(nnh5_model_add_relu(a, NULL));
		OK(nnh5_model_add_gelu(a, NULL));
		OK(nnh5_model_add_tanh(a, NULL));
		OK(nnh5_model_forward(&y, a, x));
		assert_true(isnan(nnh5_tensor_get(y, 1)));
		assert_true(nnh5_tensor_get(y, 6) == 1.0); /* tanh(gelu(relu(Inf))) */
		nnh5_tensor_free(y);
		nnh5_model_free(a);
		nnh5_tensor_free(x);
		nnh5_model_free(m);
	}
}

static void test_half_params(void **state)
{
	(void)state;
	const nnh5_dtype halves[] = { NNH5_FLOAT16, NNH5_BFLOAT16, NNH5_FLOAT64 };
	nnh5_model *src = seed_mlp(1, false);
	nnh5_dict *sd = snapshot(src);
	int64_t shape[2] = { 5, 20 };
	nnh5_tensor *x = randn(NNH5_FLOAT32, 2, shape, 1);
	for (size_t h = 0; h < 3; h++) {
		nnh5_dict *conv;
		OK(nnh5_dict_new(&conv));
		for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
			nnh5_tensor *t;
			OK(nnh5_tensor_convert(&t, nnh5_dict_value(sd, i), halves[h]));
			OK(nnh5_dict_set(conv, nnh5_dict_key(sd, i), t));
		}
		/* through a file, as a state dict written in half precision */
		OK(nnh5_save_state_dict(tmp_path("half.h5"), conv));
		nnh5_dict *back;
		OK(nnh5_load_state_dict(&back, tmp_path("half.h5")));
		assert_int_equal(nnh5_tensor_dtype(nnh5_dict_value(back, 0)), halves[h]);
		nnh5_model *m = seed_mlp(5, true);
		OK(nnh5_model_load_state_dict(NULL, m, back, NULL));
		assert_int_equal(nnh5_model_dtype(m), NNH5_FLOAT32);
		/* the parameters are the half values, widened exactly */
		nnh5_dict *now;
		OK(nnh5_model_state_dict(&now, m));
		for (size_t i = 0; i < nnh5_dict_len(now); i++) {
			const nnh5_tensor *a = nnh5_dict_value(now, i), *b = nnh5_dict_value(conv, i);
			assert_int_equal(nnh5_tensor_dtype(a), NNH5_FLOAT32);
			for (size_t k = 0; k < nnh5_tensor_numel(a); k++)
				assert_true((float)nnh5_tensor_get(a, k) == (float)nnh5_tensor_get(b, k));
		}
		nnh5_dict_free(now);
		check_against_reference(m, x, 2e-6);
		nnh5_model_free(m);
		nnh5_dict_free(back);
		nnh5_dict_free(conv);
	}
	nnh5_tensor_free(x);
	nnh5_dict_free(sd);
	nnh5_model_free(src);
}

static void test_no_alloc(void **state)
{
	(void)state;
	nnh5_model *m = seed_mlp(1, false);
	nnh5_nn_set_num_threads(1);
	assert_int_equal(nnh5_nn_get_num_threads(), 1);
	int64_t shape[2] = { 64, 20 };
	nnh5_tensor *x = randn(NNH5_FLOAT32, 2, shape, 1), *y, *y2;
	OK(nnh5_tensor_new(&y, NNH5_FLOAT32, 2, (int64_t[]){ 64, 10 }));
	OK(nnh5_model_forward_into(m, x, y));
	size_t before = n_allocs;
	for (int i = 0; i < 10; i++)
		OK(nnh5_model_forward_into(m, x, y));
	assert_int_equal(n_allocs, before);
	OK(nnh5_model_forward(&y2, m, x));
	assert_true(nnh5_tensor_bitwise_equal(y, y2));
	/* a read-only output is refused */
	nnh5_tensor *ro;
	OK(nnh5_tensor_view_const(&ro, NNH5_FLOAT32, 2, (int64_t[]){ 64, 10 },
				  nnh5_tensor_data(y2), nnh5_tensor_nbytes(y2)));
	assert_int_equal(nnh5_model_forward_into(m, x, ro), NNH5_ERR_INVALID);
	nnh5_tensor_free(ro);
	nnh5_nn_set_num_threads(2);
	nnh5_tensor_free(y2);
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	nnh5_model_free(m);
}

/*
 * Everything the network layer does, start to end; any failure unwinds and
 * returns its status. Used with an allocator that fails the Nth allocation.
 */
static int scenario(void)
{
	nnh5_model *m = NULL, *c = NULL, *r = NULL;
	nnh5_tensor *x = NULL, *y = NULL;
	nnh5_dict *sd = NULL;
	nnh5_load_result *res = NULL;
	nnh5_verify_result v;
	char *s = NULL;
	int64_t shape[2] = { 3, 5 };
	nnh5_rng rng;
	nnh5_rng_seed(&rng, 1);
	int rc = nnh5_model_new(&m, NNH5_FLOAT32, 1);
	if (!rc)
		rc = nnh5_model_add_lazy_linear(m, "hidden", 8, true);
	if (!rc)
		rc = nnh5_model_add_gelu(m, NULL);
	if (!rc)
		rc = nnh5_model_add_linear(m, "output", 8, 2, true);
	if (!rc)
		rc = nnh5_tensor_randn(&x, NNH5_FLOAT32, 2, shape, &rng);
	if (!rc)
		rc = nnh5_model_forward(&y, m, x);
	if (!rc)
		rc = nnh5_model_state_dict(&sd, m);
	if (!rc)
		rc = nnh5_model_new(&c, NNH5_FLOAT32, 2);
	if (!rc)
		rc = nnh5_model_add_lazy_linear(c, "hidden", 8, true);
	if (!rc)
		rc = nnh5_model_add_gelu(c, NULL);
	if (!rc)
		rc = nnh5_model_add_linear(c, "out", 8, 2, true);
	if (!rc) {
		nnh5_load_options o = NNH5_LOAD_OPTIONS_INIT;
		o.strict = false;
		rc = nnh5_model_load_state_dict(&res, c, sd, &o);
	}
	if (!rc) {
		int st = nnh5_model_load_state_dict(NULL, c, sd, NULL);
		rc = st == NNH5_ERR_SHAPE ? NNH5_OK : st;
	}
	if (!rc)
		rc = nnh5_model_format(&s, m);
	if (!rc)
		rc = nnh5_save_model(tmp_path("oom.h5"), m, x);
	if (!rc)
		rc = nnh5_load_model(&r, tmp_path("oom.h5"));
	if (!rc)
		rc = nnh5_verify_model(&v, tmp_path("oom.h5"));
	nnh5_free(s);
	nnh5_load_result_free(res);
	nnh5_dict_free(sd);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(m);
	nnh5_model_free(c);
	nnh5_model_free(r);
	return rc;
}

static void test_out_of_memory(void **state)
{
	(void)state;
	size_t failures = 0;
	for (size_t n = 1; n < 100000; n++) {
		size_t base = n_allocs;
		fail_at = base + n;
		int rc = scenario();
		bool hit = n_allocs >= fail_at;
		fail_at = 0;
		if (!hit) {
			assert_int_equal(rc, NNH5_OK);
			break;
		}
		/* the failure comes back as an error with a message, never a crash */
		if (rc == NNH5_OK)
			fail_msg("allocation %zu failed but the scenario succeeded", n);
		assert_true(nnh5_error_message()[0] != '\0');
		failures++;
	}
	assert_true(failures > 20);
}

static void test_batch_zero(void **state)
{
	(void)state;
	nnh5_model *m = seed_mlp(1, false);
	nnh5_tensor *x, *y;
	OK(nnh5_tensor_zeros(&x, NNH5_FLOAT32, 2, (int64_t[]){ 0, 20 }));
	OK(nnh5_model_forward(&y, m, x));
	assert_int_equal(nnh5_tensor_dim(y, 0), 0);
	assert_int_equal(nnh5_tensor_dim(y, 1), 10);
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	nnh5_model_free(m);
}

static void test_layer_names(void **state)
{
	(void)state;
	nnh5_layer_type t;
	for (int i = 1; i <= 8; i++) {
		OK(nnh5_layer_type_from_name(&t, nnh5_layer_type_name(i)));
		assert_int_equal(t, i);
	}
	assert_string_equal(nnh5_layer_type_name(99), "unknown");
	assert_int_equal(nnh5_layer_type_from_name(&t, "Conv2d"), NNH5_ERR_INVALID);
	nnh5_load_result_free(NULL);
	nnh5_model_free(NULL);
}

int main(void)
{
	nnh5_set_allocator(count_malloc, count_realloc, count_free);
	const char *base = getenv("NNH5_TEST_TMP");
	snprintf(tmpdir, sizeof(tmpdir), "%s/nn-XXXXXX", base ? base : "/tmp");
	if (base)
		mkdir(base, 0777);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layer_names),
		cmocka_unit_test(test_forward_reference),
		cmocka_unit_test(test_forward_shapes),
		cmocka_unit_test(test_init_and_names),
		cmocka_unit_test(test_lazy),
		cmocka_unit_test(test_strict_load),
		cmocka_unit_test(test_rename_load),
		cmocka_unit_test(test_model_file),
		cmocka_unit_test(test_bad_model_files),
		cmocka_unit_test(test_forged_architecture),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_nan_inf),
		cmocka_unit_test(test_half_params),
		cmocka_unit_test(test_no_alloc),
		cmocka_unit_test(test_batch_zero),
		cmocka_unit_test(test_out_of_memory),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (rc == 0 && system(cmd) != 0)
		return 1;
	return rc;
}
