/*
 * tests/test_tensor.c - tensor creation, views, conversion, comparison and
 * the seeded generator.
 */
#include "testutil.h"

#include <math.h>
#include <string.h>

static void new_zeros_ones_full(void **state)
{
	int64_t shape[] = { 2, 3, 4 };
	nnh5_tensor *z, *o, *f;
	(void)state;
	for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
		ok(nnh5_tensor_zeros(&z, (nnh5_dtype)d, 3, shape));
		ok(nnh5_tensor_ones(&o, (nnh5_dtype)d, 3, shape));
		ok(nnh5_tensor_full(&f, (nnh5_dtype)d, 3, shape, 7.0));
		assert_int_equal(nnh5_tensor_numel(z), 24);
		assert_int_equal(nnh5_tensor_nbytes(z), 24 * nnh5_dtype_size(d));
		assert_int_equal(nnh5_tensor_ndim(z), 3);
		assert_int_equal(nnh5_tensor_dim(z, 2), 4);
		assert_true(nnh5_tensor_owns_data(z));
		for (size_t i = 0; i < 24; i++) {
			assert_true(nnh5_tensor_get(z, i) == 0.0);
			assert_true(nnh5_tensor_get(o, i) == 1.0);
			assert_true(nnh5_tensor_get(f, i) == (d == NNH5_BOOL ? 1.0 : 7.0));
		}
		nnh5_tensor_free(z);
		nnh5_tensor_free(o);
		nnh5_tensor_free(f);
	}
}

static void scalar_and_empty(void **state)
{
	nnh5_tensor *s, *e;
	int64_t shape[] = { 3, 0, 5 };
	(void)state;
	ok(nnh5_tensor_full(&s, NNH5_INT32, 0, NULL, -5));
	assert_int_equal(nnh5_tensor_ndim(s), 0);
	assert_int_equal(nnh5_tensor_numel(s), 1);
	assert_true(nnh5_tensor_get(s, 0) == -5.0);
	ok(nnh5_tensor_new(&e, NNH5_FLOAT32, 3, shape));
	assert_int_equal(nnh5_tensor_numel(e), 0);
	assert_int_equal(nnh5_tensor_nbytes(e), 0);
	nnh5_tensor_free(s);
	nnh5_tensor_free(e);
}

static void bad_shapes(void **state)
{
	nnh5_tensor *t = (nnh5_tensor *)1;
	int64_t neg[] = { 2, -1 };
	int64_t huge[] = { INT64_MAX, INT64_MAX };
	int64_t big[] = { (int64_t)1 << 61, 2 }; /* 2^62 elements fit, 2^65 bytes do not */
	int64_t dims[NNH5_MAX_NDIM + 1];
	(void)state;
	for (size_t i = 0; i <= NNH5_MAX_NDIM; i++)
		dims[i] = 1;
	fails(NNH5_ERR_INVALID, nnh5_tensor_new(&t, NNH5_FLOAT32, 2, neg), "negative");
	assert_null(t);
	fails(NNH5_ERR_OVERFLOW, nnh5_tensor_new(&t, NNH5_FLOAT32, 2, huge), "overflow");
	fails(NNH5_ERR_OVERFLOW, nnh5_tensor_new(&t, NNH5_FLOAT64, 2, big), "byte size");
	fails(NNH5_ERR_INVALID, nnh5_tensor_new(&t, NNH5_FLOAT32, NNH5_MAX_NDIM + 1, dims),
	      "rank 33");
	ok(nnh5_tensor_new(&t, NNH5_UINT8, NNH5_MAX_NDIM, dims));
	nnh5_tensor_free(t);
	fails(NNH5_ERR_INVALID, nnh5_tensor_new(&t, (nnh5_dtype)77, 1, dims), "dtype");
}

static void arange_like_torch(void **state)
{
	nnh5_tensor *t;
	(void)state;
	ok(nnh5_tensor_arange(&t, NNH5_FLOAT32, 0, 4, 1));
	assert_int_equal(nnh5_tensor_numel(t), 4);
	for (size_t i = 0; i < 4; i++)
		assert_true(nnh5_tensor_get(t, i) == (double)i);
	nnh5_tensor_free(t);
	/* torch.arange(1, 2.5, 0.5) -> [1.0, 1.5, 2.0] */
	ok(nnh5_tensor_arange(&t, NNH5_FLOAT64, 1, 2.5, 0.5));
	assert_int_equal(nnh5_tensor_numel(t), 3);
	assert_true(nnh5_tensor_get(t, 2) == 2.0);
	nnh5_tensor_free(t);
	/* descending and empty ranges */
	ok(nnh5_tensor_arange(&t, NNH5_INT64, 5, 0, -2));
	assert_int_equal(nnh5_tensor_numel(t), 3);
	assert_true(nnh5_tensor_get(t, 2) == 1.0);
	nnh5_tensor_free(t);
	ok(nnh5_tensor_arange(&t, NNH5_INT64, 5, 0, 1));
	assert_int_equal(nnh5_tensor_numel(t), 0);
	nnh5_tensor_free(t);
	fails(NNH5_ERR_INVALID, nnh5_tensor_arange(&t, NNH5_FLOAT32, 0, 1, 0), "step");
	fails(NNH5_ERR_INVALID, nnh5_tensor_arange(&t, NNH5_FLOAT32, 0, INFINITY, 1), "finite");
}

/*
 * The generator's first outputs for seed 42, computed independently by a
 * Python implementation of splitmix64 + xoshiro256**: the sequence must never
 * change between versions or machines.
 */
static void rng_reference_sequence(void **state)
{
	nnh5_rng r;
	(void)state;
	nnh5_rng_seed(&r, 42);
	assert_true(nnh5_rng_u64(&r) == 0x15780b2e0c2ec716ULL);
	assert_true(nnh5_rng_u64(&r) == 0x6104d9866d113a7eULL);
	assert_true(nnh5_rng_u64(&r) == 0xae17533239e499a1ULL);
}

static void randn_reproducible_and_normal(void **state)
{
	nnh5_rng a, b;
	nnh5_tensor *x, *y;
	int64_t shape[] = { 200, 100 };
	double sum = 0, sq = 0;
	(void)state;
	nnh5_rng_seed(&a, 7);
	nnh5_rng_seed(&b, 7);
	ok(nnh5_tensor_randn(&x, NNH5_FLOAT64, 2, shape, &a));
	ok(nnh5_tensor_randn(&y, NNH5_FLOAT64, 2, shape, &b));
	assert_true(nnh5_tensor_bitwise_equal(x, y));
	for (size_t i = 0; i < 20000; i++) {
		double v = nnh5_tensor_get(x, i);
		sum += v;
		sq += v * v;
	}
	/* mean within 5 standard errors of 0, variance near 1 */
	assert_true(fabs(sum / 20000) < 5.0 / sqrt(20000.0));
	assert_true(fabs(sq / 20000 - 1.0) < 0.05);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	/* a state restored from a copy continues identically (checkpointing) */
	nnh5_rng_seed(&a, 9);
	nnh5_rng_normal(&a);
	b = a;
	assert_true(nnh5_rng_normal(&a) == nnh5_rng_normal(&b));
	fails(NNH5_ERR_INVALID, nnh5_tensor_randn(&x, NNH5_INT32, 2, shape, &a), "float dtype");
	ok(nnh5_tensor_uniform(&x, NNH5_FLOAT32, 2, shape, -2, 3, &a));
	for (size_t i = 0; i < 20000; i++) {
		double v = nnh5_tensor_get(x, i);
		assert_true(v >= -2 && v < 3);
	}
	nnh5_tensor_free(x);
}

static void views_share_memory(void **state)
{
	float buf[6] = { 1, 2, 3, 4, 5, 6 };
	const double cbuf[2] = { 1, 2 };
	int64_t shape[] = { 2, 3 };
	nnh5_tensor *v, *c, *r;
	(void)state;
	ok(nnh5_tensor_view(&v, NNH5_FLOAT32, 2, shape, buf, sizeof buf));
	assert_ptr_equal(nnh5_tensor_data(v), buf);
	assert_false(nnh5_tensor_owns_data(v));
	ok(nnh5_tensor_set(v, 5, 60));
	assert_true(buf[5] == 60.0f);
	fails(NNH5_ERR_SHAPE, nnh5_tensor_view(&c, NNH5_FLOAT32, 2, shape, buf, 20), "20 bytes",
	      "24 bytes");
	ok(nnh5_tensor_view_const(&c, NNH5_FLOAT64, 1, (int64_t[]){ 2 }, cbuf, sizeof cbuf));
	assert_null(nnh5_tensor_mutable_data(c));
	fails(NNH5_ERR_INVALID, nnh5_tensor_set(c, 0, 3), "read-only");
	ok(nnh5_tensor_reshape(&r, v, 1, (int64_t[]){ 6 }));
	assert_ptr_equal(nnh5_tensor_data(r), buf);
	nnh5_tensor_free(r);
	fails(NNH5_ERR_SHAPE, nnh5_tensor_reshape(&r, v, 1, (int64_t[]){ 5 }), "reshape");
	assert_null(r);
	nnh5_tensor_free(v);
	nnh5_tensor_free(c);
	assert_true(buf[0] == 1.0f); /* freeing a view leaves the memory alone */
}

static void convert_saturates_and_truncates(void **state)
{
	double vals[] = { -3.7, 0.5, 300.0, NAN, -1e30, 2.0 };
	nnh5_tensor *src, *dst;
	(void)state;
	ok(nnh5_tensor_view(&src, NNH5_FLOAT64, 1, (int64_t[]){ 6 }, vals, sizeof vals));
	ok(nnh5_tensor_convert(&dst, src, NNH5_UINT8));
	const double want_u8[] = { 0, 0, 255, 0, 0, 2 };
	for (size_t i = 0; i < 6; i++)
		assert_true(nnh5_tensor_get(dst, i) == want_u8[i]);
	nnh5_tensor_free(dst);
	ok(nnh5_tensor_convert(&dst, src, NNH5_INT8));
	const double want_i8[] = { -3, 0, 127, 0, -128, 2 };
	for (size_t i = 0; i < 6; i++)
		assert_true(nnh5_tensor_get(dst, i) == want_i8[i]);
	nnh5_tensor_free(dst);
	ok(nnh5_tensor_convert(&dst, src, NNH5_BOOL));
	const double want_b[] = { 1, 1, 1, 1, 1, 1 };
	for (size_t i = 0; i < 6; i++)
		assert_true(nnh5_tensor_get(dst, i) == want_b[i]);
	nnh5_tensor_free(dst);
	nnh5_tensor_free(src);
	/* int64 <-> uint64 does not round through double */
	int64_t big[] = { INT64_MAX, -1 };
	ok(nnh5_tensor_view(&src, NNH5_INT64, 1, (int64_t[]){ 2 }, big, sizeof big));
	ok(nnh5_tensor_convert(&dst, src, NNH5_UINT64));
	const uint64_t *u = nnh5_tensor_data(dst);
	assert_true(u[0] == (uint64_t)INT64_MAX && u[1] == 0);
	nnh5_tensor_free(dst);
	nnh5_tensor_free(src);
}

/* nnh5_tensor_expect: the dtype and rank a typed caller needs, or a message naming both. */
static void expect_dtype_and_rank(void **state)
{
	(void)state;
	nnh5_tensor *t;
	int64_t shape[2] = { 3, 4 };
	assert_int_equal(nnh5_tensor_zeros(&t, NNH5_INT32, 2, shape), NNH5_OK);
	assert_int_equal(nnh5_tensor_expect(t, NNH5_INT32, 2, "x"), NNH5_OK);
	assert_int_equal(nnh5_tensor_expect(t, NNH5_FLOAT32, 2, "load 'x.h5'"), NNH5_ERR_TYPE);
	assert_string_equal(nnh5_error_message(),
			    "load 'x.h5': stored int32 of shape (3, 4), expected float32 with 2 dimensions");
	assert_int_equal(nnh5_tensor_expect(t, NNH5_INT32, 1, "y"), NNH5_ERR_SHAPE);
	assert_string_equal(nnh5_error_message(),
			    "y: stored int32 of shape (3, 4), expected int32 with 1 dimension");
	assert_int_equal(nnh5_tensor_expect(NULL, NNH5_INT32, 2, "key 'k'"), NNH5_ERR_NOT_FOUND);
	assert_string_equal(nnh5_error_message(), "key 'k': not found");
	nnh5_tensor_free(t);
}

static void equality(void **state)
{
	int64_t shape[] = { 2, 2 };
	float a[] = { 1, NAN, -0.0f, 4 }, b[] = { 1, NAN, 0.0f, 5 };
	nnh5_tensor *ta, *tb, *eq, *tc;
	(void)state;
	ok(nnh5_tensor_view(&ta, NNH5_FLOAT32, 2, shape, a, sizeof a));
	ok(nnh5_tensor_view(&tb, NNH5_FLOAT32, 2, shape, b, sizeof b));
	ok(nnh5_tensor_eq(&eq, ta, tb));
	assert_int_equal(nnh5_tensor_dtype(eq), NNH5_BOOL);
	const unsigned char *e = nnh5_tensor_data(eq);
	assert_int_equal(e[0], 1);
	assert_int_equal(e[1], 0); /* NaN != NaN */
	assert_int_equal(e[2], 1); /* -0 == 0 */
	assert_int_equal(e[3], 0);
	assert_false(nnh5_tensor_equal(ta, tb));
	assert_false(nnh5_tensor_equal(ta, ta)); /* NaN: torch.equal is false too */
	assert_true(nnh5_tensor_bitwise_equal(ta, ta));
	nnh5_tensor_free(eq);
	ok(nnh5_tensor_view(&tc, NNH5_FLOAT32, 1, (int64_t[]){ 4 }, a, sizeof a));
	fails(NNH5_ERR_SHAPE, nnh5_tensor_eq(&eq, ta, tc), "(2, 2)", "(4,)");
	assert_false(nnh5_tensor_bitwise_equal(ta, tc));
	nnh5_tensor_free(ta);
	nnh5_tensor_free(tb);
	nnh5_tensor_free(tc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_zeros_ones_full),
		cmocka_unit_test(scalar_and_empty),
		cmocka_unit_test(bad_shapes),
		cmocka_unit_test(arange_like_torch),
		cmocka_unit_test(rng_reference_sequence),
		cmocka_unit_test(randn_reproducible_and_normal),
		cmocka_unit_test(views_share_memory),
		cmocka_unit_test(convert_saturates_and_truncates),
		cmocka_unit_test(equality),
		cmocka_unit_test(expect_dtype_and_rank),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
