/*
 * nnh5/dtype.h - the element types a tensor can hold.
 *
 * The enum values are pinned (they travel in checkpoints and through the
 * ABI): new types are only ever appended. How each type is encoded in HDF5
 * is described in doc/FORMAT.md.
 */
#ifndef NNH5_DTYPE_H
#define NNH5_DTYPE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nnh5_dtype {
	NNH5_BOOL = 0,
	NNH5_INT8 = 1,
	NNH5_INT16 = 2,
	NNH5_INT32 = 3,
	NNH5_INT64 = 4,
	NNH5_UINT8 = 5,
	NNH5_UINT16 = 6,
	NNH5_UINT32 = 7,
	NNH5_UINT64 = 8,
	NNH5_FLOAT16 = 9,  /* IEEE 754 binary16 */
	NNH5_BFLOAT16 = 10, /* the upper 16 bits of a binary32 */
	NNH5_FLOAT32 = 11,
	NNH5_FLOAT64 = 12,
	NNH5_FLOAT8_E4M3FN = 13, /* sign, 4 exponent bits (bias 7), 3 mantissa bits; no inf */
	NNH5_FLOAT8_E5M2 = 14,   /* sign, 5 exponent bits (bias 15), 2 mantissa bits; IEEE-like */
	NNH5_COMPLEX64 = 15,     /* two float32: real, imaginary */
	NNH5_COMPLEX128 = 16,    /* two float64: real, imaginary */
	NNH5_DTYPE_COUNT /* not a type: the number of types */
} nnh5_dtype;

/* true if dtype is one of the values above (excluding NNH5_DTYPE_COUNT). */
NNH5_API bool nnh5_dtype_valid(int dtype);

/* "bool", "int8", ..., "bfloat16", "float32"; "invalid" for an unknown value. */
NNH5_API const char *nnh5_dtype_name(int dtype);

/* Bytes per element (bool is one byte); 0 for an unknown value. */
NNH5_API size_t nnh5_dtype_size(int dtype);

/* true for the real floating types: float8_e4m3fn, float8_e5m2, float16, bfloat16, float32, float64. */
NNH5_API bool nnh5_dtype_is_float(int dtype);

/* true for complex64 and complex128. */
NNH5_API bool nnh5_dtype_is_complex(int dtype);

/*
 * Parse a name as printed by nnh5_dtype_name() into *out.
 * Errors: NNH5_ERR_INVALID for an unknown name (*out untouched).
 */
NNH5_API int nnh5_dtype_from_name(nnh5_dtype *out, const char *name);

/* Conversions between the 16-bit float formats and float, round to nearest even. */
NNH5_API float nnh5_half_to_float(uint16_t h);
NNH5_API uint16_t nnh5_float_to_half(float f);
NNH5_API float nnh5_bfloat16_to_float(uint16_t b);
NNH5_API uint16_t nnh5_float_to_bfloat16(float f);

/*
 * Conversions between the 8-bit float formats and double (every float8 value
 * is exact in double). From double: round to nearest even; float8_e4m3fn has
 * no infinity, so infinities and values past its largest (448) by half a step
 * or more become NaN (0x7f with the sign), as in PyTorch; float8_e5m2
 * overflows to infinity. NaN stays NaN (sign kept).
 */
NNH5_API double nnh5_float8_e4m3fn_to_double(uint8_t b);
NNH5_API uint8_t nnh5_double_to_float8_e4m3fn(double v);
NNH5_API double nnh5_float8_e5m2_to_double(uint8_t b);
NNH5_API uint8_t nnh5_double_to_float8_e5m2(double v);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_DTYPE_H */
