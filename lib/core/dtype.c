/*
 * lib/core/dtype.c - names, sizes and 16-bit float conversions of the dtypes.
 */
#include "core/internal.h"

#include <string.h>

static const struct {
	const char *name;
	size_t size;
	bool is_float;
} dtype_info[NNH5_DTYPE_COUNT] = {
	[NNH5_BOOL] = { "bool", 1, false },
	[NNH5_INT8] = { "int8", 1, false },
	[NNH5_INT16] = { "int16", 2, false },
	[NNH5_INT32] = { "int32", 4, false },
	[NNH5_INT64] = { "int64", 8, false },
	[NNH5_UINT8] = { "uint8", 1, false },
	[NNH5_UINT16] = { "uint16", 2, false },
	[NNH5_UINT32] = { "uint32", 4, false },
	[NNH5_UINT64] = { "uint64", 8, false },
	[NNH5_FLOAT16] = { "float16", 2, true },
	[NNH5_BFLOAT16] = { "bfloat16", 2, true },
	[NNH5_FLOAT32] = { "float32", 4, true },
	[NNH5_FLOAT64] = { "float64", 8, true },
};

bool nnh5_dtype_valid(int dtype)
{
	return dtype >= 0 && dtype < NNH5_DTYPE_COUNT;
}

const char *nnh5_dtype_name(int dtype)
{
	return nnh5_dtype_valid(dtype) ? dtype_info[dtype].name : "invalid";
}

size_t nnh5_dtype_size(int dtype)
{
	return nnh5_dtype_valid(dtype) ? dtype_info[dtype].size : 0;
}

bool nnh5_dtype_is_float(int dtype)
{
	return nnh5_dtype_valid(dtype) && dtype_info[dtype].is_float;
}

int nnh5_dtype_from_name(nnh5_dtype *out, const char *name)
{
	if (name) {
		for (int i = 0; i < NNH5_DTYPE_COUNT; i++) {
			if (strcmp(name, dtype_info[i].name) == 0) {
				*out = (nnh5_dtype)i;
				return NNH5_OK;
			}
		}
	}
	return nnh5__error(NNH5_ERR_INVALID, "unknown dtype '%s'", name ? name : "(null)");
}

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

float nnh5_half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu;
	uint32_t man = h & 0x3ffu;

	if (exp == 0x1f) /* inf or nan; keep the payload */
		return bits_f32(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		if (man == 0)
			return bits_f32(sign);
		/* subnormal: value = man * 2^-24, exact in float */
		float v = (float)man * 0x1p-24f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t nnh5_float_to_half(float f)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t exp = (u >> 23) & 0xffu;
	uint32_t man = u & 0x7fffffu;

	if (exp == 0xff) /* inf stays inf; nan keeps a quiet payload */
		return (uint16_t)(sign | 0x7c00u | (man ? (0x200u | (man >> 13)) : 0));
	int32_t e = (int32_t)exp - 127 + 15;
	if (e >= 0x1f)
		return (uint16_t)(sign | 0x7c00u);
	if (e <= 0) {
		if (e < -10)
			return sign; /* underflows to zero even after rounding */
		man |= 0x800000u;
		uint32_t shift = (uint32_t)(14 - e);
		uint32_t half_man = man >> shift;
		uint32_t rem = man & ((1u << shift) - 1);
		uint32_t halfway = 1u << (shift - 1);
		if (rem > halfway || (rem == halfway && (half_man & 1u)))
			half_man++;
		return (uint16_t)(sign | half_man);
	}
	uint32_t out = ((uint32_t)e << 10) | (man >> 13);
	uint32_t rem = man & 0x1fffu;
	if (rem > 0x1000u || (rem == 0x1000u && (out & 1u)))
		out++; /* may carry into the exponent, up to inf: correct */
	return (uint16_t)(sign | out);
}

float nnh5_bfloat16_to_float(uint16_t b)
{
	return bits_f32((uint32_t)b << 16);
}

uint16_t nnh5_float_to_bfloat16(float f)
{
	uint32_t u = f32_bits(f);

	if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu))
		return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}
