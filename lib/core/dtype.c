/*
 * lib/core/dtype.c - names, sizes and 8- and 16-bit float conversions of the dtypes.
 */
#include "core/internal.h"

#include <math.h>
#include <string.h>

static const struct {
	const char *name;
	size_t size;
	bool is_float;
	bool is_complex;
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
	[NNH5_FLOAT8_E4M3FN] = { "float8_e4m3fn", 1, true },
	[NNH5_FLOAT8_E5M2] = { "float8_e5m2", 1, true },
	[NNH5_COMPLEX64] = { "complex64", 8, false, true },
	[NNH5_COMPLEX128] = { "complex128", 16, false, true },
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

bool nnh5_dtype_is_complex(int dtype)
{
	return nnh5_dtype_valid(dtype) && dtype_info[dtype].is_complex;
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

/*
 * The 8-bit floats. Both have an implicit leading bit and subnormals at
 * exponent 0; they differ in what the top exponent means (e5m2: inf and NaN
 * as in IEEE; e4m3fn: finite except the all-ones mantissa, which is NaN).
 */
struct f8_format {
	unsigned ebits, mbits;
	int bias;
	uint8_t nan;       /* the positive NaN produced */
	uint8_t overflow;  /* what values past the largest finite round to (pos.) */
	uint8_t max_code;  /* the largest finite positive code */
};

static const struct f8_format E4M3FN = { 4, 3, 7, 0x7f, 0x7f, 0x7e };
static const struct f8_format E5M2 = { 5, 2, 15, 0x7e, 0x7c, 0x7b };

/* The value of a positive code up to max_code + 1, decoded as if finite. */
static double f8_magnitude(const struct f8_format *f, unsigned code)
{
	unsigned e = code >> f->mbits, m = code & ((1u << f->mbits) - 1);
	double frac = (double)m / (double)(1u << f->mbits);

	if (e == 0)
		return ldexp(frac, 1 - f->bias);
	return ldexp(1.0 + frac, (int)e - f->bias);
}

static double f8_to_double(const struct f8_format *f, uint8_t b)
{
	unsigned code = b & 0x7fu;
	double v;

	if (f == &E4M3FN && code == 0x7f)
		return (double)NAN;
	if (f == &E5M2 && code >= 0x7c)
		v = code == 0x7c ? (double)INFINITY : (double)NAN;
	else
		v = f8_magnitude(f, code);
	return (b & 0x80u) ? -v : v;
}

static uint8_t f8_from_double(const struct f8_format *f, double v)
{
	uint8_t sign = signbit(v) ? 0x80u : 0;
	double a = fabs(v);
	unsigned lo = 0, hi = f->max_code + 1u;

	if (isnan(v))
		return (uint8_t)(sign | f->nan);
	/*
	 * Codes are ordered like their magnitudes: find the neighbours of a by
	 * bisection, the code past the largest finite one standing for the next
	 * power step, which rounds to the overflow value.
	 */
	if (a >= f8_magnitude(f, hi))
		return (uint8_t)(sign | f->overflow);
	while (hi - lo > 1) {
		unsigned mid = (lo + hi) / 2;
		if (f8_magnitude(f, mid) <= a)
			lo = mid;
		else
			hi = mid;
	}
	double dl = a - f8_magnitude(f, lo), dh = f8_magnitude(f, hi) - a;
	unsigned code = dl < dh ? lo : dh < dl ? hi : (lo & 1u) ? hi : lo;
	if (code > f->max_code)
		return (uint8_t)(sign | f->overflow);
	return (uint8_t)(sign | code);
}

double nnh5_float8_e4m3fn_to_double(uint8_t b) { return f8_to_double(&E4M3FN, b); }
uint8_t nnh5_double_to_float8_e4m3fn(double v) { return f8_from_double(&E4M3FN, v); }
double nnh5_float8_e5m2_to_double(uint8_t b) { return f8_to_double(&E5M2, b); }
uint8_t nnh5_double_to_float8_e5m2(double v) { return f8_from_double(&E5M2, v); }
