/*
 * lib/store/h5util.c - HDF5 error handling and datatype mapping (doc/FORMAT.md,
 * "Tensors").
 */
#include "store/h5util.h"

#include <stdio.h>
#include <string.h>

void nnh5__h5_quiet_begin(nnh5__h5quiet *q)
{
	if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) {
		q->func = NULL;
		q->data = NULL;
	}
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void nnh5__h5_quiet_end(const nnh5__h5quiet *q)
{
	H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

struct walk_ctx {
	char *buf;
	size_t n;
};

static herr_t walk_cb(unsigned int depth, const H5E_error2_t *e, void *data)
{
	struct walk_ctx *ctx = data;

	(void)depth;
	/* Walking upward, the first entry is the innermost (the real cause). */
	if (ctx->buf[0] == '\0')
		snprintf(ctx->buf, ctx->n, "%s: %s", e->func_name ? e->func_name : "?",
			 e->desc ? e->desc : "?");
	return 0;
}

void nnh5__h5_last_error(char *buf, size_t n)
{
	struct walk_ctx ctx = { buf, n };

	buf[0] = '\0';
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &ctx);
}

int nnh5__h5_error(int status, const char *fmt, ...)
{
	char msg[1536], cause[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	nnh5__h5_last_error(cause, sizeof cause);
	H5Eclear2(H5E_DEFAULT);
	/* Messages are one line; some HDF5 descriptions embed newlines. */
	for (char *c = cause; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	if (cause[0])
		return nnh5__error(status, "%s (HDF5: %s)", msg, cause);
	return nnh5__error(status, "%s", msg);
}

static hid_t make_half(void)
{
	hid_t t = H5Tcopy(H5T_IEEE_F32LE);

	if (t < 0)
		return t;
	/* IEEE binary16, the way h5py defines numpy float16. */
	if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
	    H5Tset_ebias(t, 15) < 0) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

static hid_t make_bfloat16(void)
{
	hid_t t = H5Tcopy(H5T_IEEE_F32LE);

	if (t < 0)
		return t;
	/* The top half of a binary32: sign 15, exponent 7..14, mantissa 0..6. */
	if (H5Tset_fields(t, 15, 7, 8, 0, 7) < 0 || H5Tset_size(t, 2) < 0 ||
	    H5Tset_ebias(t, 127) < 0) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

static hid_t make_bool(void)
{
	hid_t t = H5Tenum_create(H5T_STD_I8LE);
	int8_t v;

	if (t < 0)
		return t;
	v = 0;
	if (H5Tenum_insert(t, "FALSE", &v) < 0)
		goto fail;
	v = 1;
	if (H5Tenum_insert(t, "TRUE", &v) < 0)
		goto fail;
	return t;
fail:
	H5Tclose(t);
	return -1;
}

hid_t nnh5__h5_file_type(nnh5_dtype dtype)
{
	switch (dtype) {
	case NNH5_BOOL: return make_bool();
	case NNH5_INT8: return H5Tcopy(H5T_STD_I8LE);
	case NNH5_INT16: return H5Tcopy(H5T_STD_I16LE);
	case NNH5_INT32: return H5Tcopy(H5T_STD_I32LE);
	case NNH5_INT64: return H5Tcopy(H5T_STD_I64LE);
	case NNH5_UINT8: return H5Tcopy(H5T_STD_U8LE);
	case NNH5_UINT16: return H5Tcopy(H5T_STD_U16LE);
	case NNH5_UINT32: return H5Tcopy(H5T_STD_U32LE);
	case NNH5_UINT64: return H5Tcopy(H5T_STD_U64LE);
	case NNH5_FLOAT16: return make_half();
	case NNH5_BFLOAT16: return make_bfloat16();
	case NNH5_FLOAT32: return H5Tcopy(H5T_IEEE_F32LE);
	case NNH5_FLOAT64: return H5Tcopy(H5T_IEEE_F64LE);
	default: return -1;
	}
}

hid_t nnh5__h5_mem_type(nnh5_dtype dtype)
{
	/* nnh5 targets little-endian hosts (checked at build time in meson). */
	return nnh5__h5_file_type(dtype);
}

static const char *class_name(H5T_class_t c)
{
	switch (c) {
	case H5T_INTEGER: return "integer";
	case H5T_FLOAT: return "float";
	case H5T_TIME: return "time";
	case H5T_STRING: return "string";
	case H5T_BITFIELD: return "bitfield";
	case H5T_OPAQUE: return "opaque";
	case H5T_COMPOUND: return "compound";
	case H5T_REFERENCE: return "reference";
	case H5T_ENUM: return "enum";
	case H5T_VLEN: return "variable-length sequence";
	case H5T_ARRAY: return "array";
	default: return "unknown class";
	}
}

static int int_dtype(nnh5_dtype *out, size_t size, H5T_sign_t sign)
{
	bool u = sign == H5T_SGN_NONE;

	switch (size) {
	case 1: *out = u ? NNH5_UINT8 : NNH5_INT8; return NNH5_OK;
	case 2: *out = u ? NNH5_UINT16 : NNH5_INT16; return NNH5_OK;
	case 4: *out = u ? NNH5_UINT32 : NNH5_INT32; return NNH5_OK;
	case 8: *out = u ? NNH5_UINT64 : NNH5_INT64; return NNH5_OK;
	default: return NNH5_ERR_TYPE;
	}
}

/*
 * The types that load as bool (doc/FORMAT.md, "bool"): h5py's bool, an enum
 * over a signed 8-bit integer (1 byte, all 8 bits) with exactly two members,
 * FALSE = 0 and TRUE = 1. Other enums, unsigned bases included, are not bool.
 */
static bool is_bool_enum(hid_t t)
{
	hid_t base;
	int nmemb = H5Tget_nmembers(t);
	bool ok = false;

	if (nmemb != 2)
		return false;
	base = H5Tget_super(t);
	if (base < 0)
		return false;
	if (H5Tget_class(base) == H5T_INTEGER && H5Tget_size(base) == 1 &&
	    H5Tget_sign(base) == H5T_SGN_2 && H5Tget_precision(base) == 8 &&
	    H5Tget_offset(base) == 0) {
		int8_t vf = -1, vt = -1;
		ok = H5Tenum_valueof(t, "FALSE", &vf) >= 0 && H5Tenum_valueof(t, "TRUE", &vt) >= 0 &&
		     vf == 0 && vt == 1;
	}
	H5Tclose(base);
	H5Eclear2(H5E_DEFAULT);
	return ok;
}

int nnh5__h5_dtype_of(nnh5_dtype *out, hid_t *mem, hid_t ftype, char *desc, size_t n)
{
	H5T_class_t cls = H5Tget_class(ftype);
	size_t size = H5Tget_size(ftype);

	*mem = -1;
	switch (cls) {
	case H5T_INTEGER:
		if (int_dtype(out, size, H5Tget_sign(ftype)) == NNH5_OK)
			goto ok;
		break;
	case H5T_FLOAT:
		if (size == 4) {
			*out = NNH5_FLOAT32;
			goto ok;
		}
		if (size == 8) {
			*out = NNH5_FLOAT64;
			goto ok;
		}
		if (size == 2) {
			size_t spos, epos, esize, mpos, msize;
			size_t ebias = H5Tget_ebias(ftype);
			if (H5Tget_fields(ftype, &spos, &epos, &esize, &mpos, &msize) >= 0) {
				if (spos == 15 && epos == 10 && esize == 5 && mpos == 0 &&
				    msize == 10 && ebias == 15) {
					*out = NNH5_FLOAT16;
					goto ok;
				}
				if (spos == 15 && epos == 7 && esize == 8 && mpos == 0 &&
				    msize == 7 && ebias == 127) {
					*out = NNH5_BFLOAT16;
					goto ok;
				}
			}
		}
		break;
	case H5T_ENUM:
		if (is_bool_enum(ftype)) {
			*out = NNH5_BOOL;
			goto ok;
		}
		break;
	default:
		break;
	}
	/* Not loadable: describe it for the error message. */
	if (cls == H5T_STRING)
		snprintf(desc, n, "string (%s)",
			 H5Tis_variable_str(ftype) > 0 ? "variable-length" : "fixed-length");
	else if (cls == H5T_COMPOUND || cls == H5T_ENUM)
		snprintf(desc, n, "%s of %d members, %zu bytes", class_name(cls),
			 H5Tget_nmembers(ftype), size);
	else
		snprintf(desc, n, "%s of %zu bytes", class_name(cls), size);
	H5Eclear2(H5E_DEFAULT);
	return NNH5_ERR_TYPE;
ok:
	*mem = nnh5__h5_mem_type(*out);
	if (*mem < 0) {
		snprintf(desc, n, "%s (no memory type)", class_name(cls));
		return NNH5_ERR_TYPE;
	}
	return NNH5_OK;
}

bool nnh5__utf8_valid(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		if (*s < 0x80) {
			s++;
			continue;
		}
		int len;
		uint32_t cp;
		if ((*s & 0xe0) == 0xc0) {
			len = 2;
			cp = *s & 0x1fu;
		} else if ((*s & 0xf0) == 0xe0) {
			len = 3;
			cp = *s & 0x0fu;
		} else if ((*s & 0xf8) == 0xf0) {
			len = 4;
			cp = *s & 0x07u;
		} else {
			return false;
		}
		for (int i = 1; i < len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3fu);
		}
		/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += len;
	}
	return true;
}

hid_t nnh5__h5_vlen_utf8(void)
{
	hid_t t = H5Tcopy(H5T_C_S1);

	if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

/* Write a scalar (n == 0) or 1-d attribute on loc, replacing an existing one. */
int nnh5__h5_attr_write(hid_t loc, const char *name, hid_t type, const void *buf, size_t n,
		      bool array)
{
	hsize_t dim = n;
	hid_t space, attr;
	herr_t st;

	if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
		return -1;
	space = array ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_SCALAR);
	if (space < 0)
		return -1;
	attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
	H5Sclose(space);
	if (attr < 0)
		return -1;
	st = (array && n == 0) ? 0 : H5Awrite(attr, type, buf);
	H5Aclose(attr);
	return st < 0 ? -1 : 0;
}
