/*
 * tests/test_dtype.c - dtype names, sizes, parsing and 8- and 16-bit float conversions.
 */
#include "testutil.h"

#include <math.h>
#include <string.h>

static void names_and_sizes(void **state)
{
	static const struct { nnh5_dtype d; const char *name; size_t size; bool fl; } want[] = {
		{ NNH5_BOOL, "bool", 1, false },      { NNH5_INT8, "int8", 1, false },
		{ NNH5_INT16, "int16", 2, false },    { NNH5_INT32, "int32", 4, false },
		{ NNH5_INT64, "int64", 8, false },    { NNH5_UINT8, "uint8", 1, false },
		{ NNH5_UINT16, "uint16", 2, false },  { NNH5_UINT32, "uint32", 4, false },
		{ NNH5_UINT64, "uint64", 8, false },  { NNH5_FLOAT16, "float16", 2, true },
		{ NNH5_BFLOAT16, "bfloat16", 2, true }, { NNH5_FLOAT32, "float32", 4, true },
		{ NNH5_FLOAT64, "float64", 8, true },
		{ NNH5_FLOAT8_E4M3FN, "float8_e4m3fn", 1, true },
		{ NNH5_FLOAT8_E5M2, "float8_e5m2", 1, true },
		{ NNH5_COMPLEX64, "complex64", 8, false },
		{ NNH5_COMPLEX128, "complex128", 16, false },
	};
	(void)state;
	assert_int_equal(NNH5_DTYPE_COUNT, sizeof want / sizeof want[0]);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		nnh5_dtype parsed;
		/* The values are pinned: they must stay in this order. */
		assert_int_equal(want[i].d, (int)i);
		assert_string_equal(nnh5_dtype_name(want[i].d), want[i].name);
		assert_int_equal(nnh5_dtype_size(want[i].d), want[i].size);
		assert_int_equal(nnh5_dtype_is_float(want[i].d), want[i].fl);
		assert_int_equal(nnh5_dtype_is_complex(want[i].d),
				 want[i].d == NNH5_COMPLEX64 || want[i].d == NNH5_COMPLEX128);
		ok(nnh5_dtype_from_name(&parsed, want[i].name));
		assert_int_equal(parsed, want[i].d);
	}
	assert_string_equal(nnh5_dtype_name(-1), "invalid");
	assert_string_equal(nnh5_dtype_name(NNH5_DTYPE_COUNT), "invalid");
	assert_int_equal(nnh5_dtype_size(99), 0);
	assert_false(nnh5_dtype_valid(NNH5_DTYPE_COUNT));
}

static void parse_unknown(void **state)
{
	nnh5_dtype d = NNH5_INT8;
	(void)state;
	fails(NNH5_ERR_INVALID, nnh5_dtype_from_name(&d, "float128"), "float128");
	assert_int_equal(d, NNH5_INT8);
	fails(NNH5_ERR_INVALID, nnh5_dtype_from_name(&d, NULL), "unknown dtype");
}

/* Every half value survives half -> float -> half (NaNs stay NaN). */
static void half_roundtrip_exhaustive(void **state)
{
	(void)state;
	for (uint32_t h = 0; h <= 0xffff; h++) {
		float f = nnh5_half_to_float((uint16_t)h);
		uint16_t back = nnh5_float_to_half(f);
		bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		if (is_nan)
			assert_true(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff));
		else
			assert_int_equal(back, h);
	}
}

static void half_known_values(void **state)
{
	(void)state;
	assert_true(nnh5_half_to_float(0x3c00) == 1.0f);
	assert_true(nnh5_half_to_float(0xc000) == -2.0f);
	assert_true(nnh5_half_to_float(0x7bff) == 65504.0f);
	assert_true(nnh5_half_to_float(0x0001) == 0x1p-24f);
	assert_true(isinf(nnh5_half_to_float(0x7c00)));
	/* Rounding: ties to even, overflow to inf, underflow to zero. */
	assert_int_equal(nnh5_float_to_half(1.0f + 0x1p-11f), 0x3c00); /* tie, even stays */
	assert_int_equal(nnh5_float_to_half(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	assert_int_equal(nnh5_float_to_half(65520.0f), 0x7c00);
	assert_int_equal(nnh5_float_to_half(0x1p-26f), 0x0000);
	assert_int_equal(nnh5_float_to_half(0x1p-25f + 0x1p-30f), 0x0001);
	assert_int_equal(nnh5_float_to_half(-0.0f), 0x8000);
}

static void bfloat16_values(void **state)
{
	(void)state;
	for (uint32_t b = 0; b <= 0xffff; b++) {
		float f = nnh5_bfloat16_to_float((uint16_t)b);
		uint16_t back = nnh5_float_to_bfloat16(f);
		if (isnan(f))
			assert_true(isnan(nnh5_bfloat16_to_float(back)));
		else
			assert_int_equal(back, b);
	}
	assert_int_equal(nnh5_float_to_bfloat16(1.0f), 0x3f80);
	/* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1). */
	assert_int_equal(nnh5_float_to_bfloat16(1.0f + 0x1p-8f), 0x3f80);
	assert_int_equal(nnh5_float_to_bfloat16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
}

/*
 * An independent decoder from the definitions (OCP 8-bit floats): value =
 * (-1)^s * 2^(e - bias) * (1 + m / 2^mbits), subnormal at e = 0.
 */
static double f8_ref(unsigned b, int ebits, int mbits, int bias, bool fn)
{
	unsigned s = b >> 7, e = (b >> mbits) & ((1u << ebits) - 1), m = b & ((1u << mbits) - 1);
	double v;

	if (fn && e == (1u << ebits) - 1 && m == (1u << mbits) - 1)
		return NAN;
	if (!fn && e == (1u << ebits) - 1)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = m * pow(2.0, 1 - bias - mbits);
	else
		v = (1.0 + m / (double)(1u << mbits)) * pow(2.0, (int)e - bias);
	return s ? -v : v;
}

/* All 256 codes of both formats decode as the definition says and encode back. */
static void float8_exhaustive(void **state)
{
	(void)state;
	for (unsigned b = 0; b < 256; b++) {
		double x = nnh5_float8_e4m3fn_to_double((uint8_t)b), rx = f8_ref(b, 4, 3, 7, true);
		double y = nnh5_float8_e5m2_to_double((uint8_t)b), ry = f8_ref(b, 5, 2, 15, false);
		if (isnan(rx)) {
			assert_true(isnan(x));
			assert_int_equal(nnh5_double_to_float8_e4m3fn(x) & 0x7f, 0x7f);
		} else {
			assert_true(x == rx && signbit(x) == signbit(rx));
			assert_int_equal(nnh5_double_to_float8_e4m3fn(x), b);
		}
		if (isnan(ry)) {
			assert_true(isnan(y));
			uint8_t back = nnh5_double_to_float8_e5m2(y);
			assert_true((back & 0x7c) == 0x7c && (back & 3));
		} else {
			assert_true(y == ry && signbit(y) == signbit(ry));
			assert_int_equal(nnh5_double_to_float8_e5m2(y), b);
		}
	}
}

/* Rounding to nearest even, the largest values and what lies past them (as torch). */
static void float8_rounding(void **state)
{
	(void)state;
	assert_true(nnh5_float8_e4m3fn_to_double(0x7e) == 448.0);
	assert_true(nnh5_float8_e5m2_to_double(0x7b) == 57344.0);
	assert_true(nnh5_float8_e4m3fn_to_double(0x01) == 0x1p-9);
	assert_true(nnh5_float8_e5m2_to_double(0x01) == 0x1p-16);
	/* 1.0 = 0x38 (e4m3fn), next 1.125 = 0x39: the tie 1.0625 stays even. */
	assert_int_equal(nnh5_double_to_float8_e4m3fn(1.0625), 0x38);
	assert_int_equal(nnh5_double_to_float8_e4m3fn(1.0625 + 1e-9), 0x39);
	/* 1.125 = 0x39 odd, 1.25 = 0x3a: the tie 1.1875 goes up to even. */
	assert_int_equal(nnh5_double_to_float8_e4m3fn(1.1875), 0x3a);
	assert_int_equal(nnh5_double_to_float8_e4m3fn(464.0), 0x7e);  /* tie to 448 (even) */
	assert_int_equal(nnh5_double_to_float8_e4m3fn(464.5), 0x7f);  /* past: NaN */
	assert_int_equal(nnh5_double_to_float8_e4m3fn(-1e9), 0xff);
	assert_int_equal(nnh5_double_to_float8_e4m3fn(INFINITY), 0x7f);
	assert_int_equal(nnh5_double_to_float8_e5m2(61439.0), 0x7b);
	assert_int_equal(nnh5_double_to_float8_e5m2(61440.0), 0x7c); /* tie to even: inf */
	assert_int_equal(nnh5_double_to_float8_e5m2(-INFINITY), 0xfc);
	assert_int_equal(nnh5_double_to_float8_e5m2(0x1p-17), 0x00);   /* tie to zero */
	assert_int_equal(nnh5_double_to_float8_e5m2(0x1p-17 + 0x1p-30), 0x01);
	assert_int_equal(nnh5_double_to_float8_e5m2(-0.0), 0x80);
}

/* Complex: get reads the real part, set writes a real value, convert keeps both parts. */
static void complex_elements(void **state)
{
	float c64[4] = { 1.5f, -2.0f, 0.25f, 3.0f };
	nnh5_tensor *v, *w, *back, *re;
	(void)state;
	ok(nnh5_tensor_view(&v, NNH5_COMPLEX64, 1, (int64_t[]){ 2 }, c64, sizeof c64));
	assert_true(nnh5_tensor_get(v, 1) == 0.25);
	ok(nnh5_tensor_convert(&w, v, NNH5_COMPLEX128));
	const double *d = nnh5_tensor_data(w);
	assert_true(d[0] == 1.5 && d[1] == -2.0 && d[2] == 0.25 && d[3] == 3.0);
	ok(nnh5_tensor_convert(&back, w, NNH5_COMPLEX64));
	assert_true(nnh5_tensor_bitwise_equal(v, back));
	ok(nnh5_tensor_convert(&re, v, NNH5_FLOAT32));
	assert_true(((const float *)nnh5_tensor_data(re))[1] == 0.25f);
	ok(nnh5_tensor_set(v, 0, 7.0));
	assert_true(c64[0] == 7.0f && c64[1] == 0.0f);
	nnh5_tensor_free(v);
	nnh5_tensor_free(w);
	nnh5_tensor_free(back);
	nnh5_tensor_free(re);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_and_sizes),
		cmocka_unit_test(float8_exhaustive),
		cmocka_unit_test(float8_rounding),
		cmocka_unit_test(complex_elements),
		cmocka_unit_test(parse_unknown),
		cmocka_unit_test(half_roundtrip_exhaustive),
		cmocka_unit_test(half_known_values),
		cmocka_unit_test(bfloat16_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
