/*
 * tests/test_dtype.c - dtype names, sizes, parsing and 16-bit float conversions.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_and_sizes),
		cmocka_unit_test(parse_unknown),
		cmocka_unit_test(half_roundtrip_exhaustive),
		cmocka_unit_test(half_known_values),
		cmocka_unit_test(bfloat16_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
