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

static herr_t desc_cb(unsigned int depth, const H5E_error2_t *e, void *data)
{
	(void)depth;
	*(const char **)data = e->desc;
	return 1; /* the innermost entry is enough */
}

/* Does an HDF5 error description name a version (or kind) this HDF5 does not know? */
static bool is_newer_format(const char *d)
{
	static const char *const unknown[] = {
		"unknown message with 'fail if unknown' flag",
		"unknown datatype class",
	};
	/*
	 * Structures that have had one version since HDF5 1.0 and carry no
	 * checksum: another number there is damage, not a newer writer.
	 */
	static const char *const single_version[] = { "global heap", "local heap",
						       "symbol table node" };

	if (!d)
		return false;
	for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++)
		if (strncmp(d, unknown[i], strlen(unknown[i])) == 0)
			return true;
	for (size_t i = 0; i < sizeof single_version / sizeof *single_version; i++)
		if (strstr(d, single_version[i]))
			return false;
	/*
	 * HDF5 1.10 words a version it cannot decode as "bad ... version ...",
	 * "wrong ... version ..." or "unknown ... version ..." (superblock,
	 * object header, every message, B-trees, heaps, fixed and extensible
	 * arrays, encoded datatypes and dataspaces). Its other version messages
	 * ("Unknown config version", "invalid config (version number
	 * mismatch)") are about the caller's structures, not a file.
	 */
	return (strncmp(d, "bad ", 4) == 0 || strncmp(d, "wrong ", 6) == 0 ||
		strncmp(d, "unknown ", 8) == 0) &&
	       strstr(d, "version") != NULL;
}

bool nnh5__h5_newer_format(void)
{
	const char *desc = NULL;

	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, desc_cb, &desc);
	return is_newer_format(desc);
}

int nnh5__h5_error(int status, const char *fmt, ...)
{
	char msg[1536], cause[512], newer[128] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	nnh5__h5_last_error(cause, sizeof cause);
	if (nnh5__h5_newer_format()) {
		unsigned maj = 0, min = 0, rel = 0;
		H5get_libversion(&maj, &min, &rel);
		snprintf(newer, sizeof newer,
			 ": written by a newer HDF5 than HDF5 %u.%u.%u, which this nnh5 uses", maj,
			 min, rel);
	}
	H5Eclear2(H5E_DEFAULT);
	/* Messages are one line; some HDF5 descriptions embed newlines. */
	for (char *c = cause; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	if (cause[0])
		return nnh5__error(status, "%s%s (HDF5: %s)", msg, newer, cause);
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

/*
 * The 8-bit floats with the bit fields HDF5 2.0 predefines as
 * H5T_FLOAT_F8E4M3 and H5T_FLOAT_F8E5M2 (byte order irrelevant at one byte).
 */
static hid_t make_float8(size_t esize, size_t msize, size_t ebias)
{
	hid_t t = H5Tcopy(H5T_IEEE_F32LE);

	if (t < 0)
		return t;
	if (H5Tset_fields(t, 7, msize, esize, 0, msize) < 0 || H5Tset_size(t, 1) < 0 ||
	    H5Tset_ebias(t, ebias) < 0) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

/* h5py's complex: a compound {r, i} of two IEEE floats of part bytes each, no padding. */
static hid_t make_complex(hid_t part, size_t part_size)
{
	hid_t t = H5Tcreate(H5T_COMPOUND, 2 * part_size);

	if (t < 0)
		return t;
	if (H5Tinsert(t, "r", 0, part) < 0 || H5Tinsert(t, "i", part_size, part) < 0) {
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
	case NNH5_FLOAT8_E4M3FN: return make_float8(4, 3, 7);
	case NNH5_FLOAT8_E5M2: return make_float8(5, 2, 15);
	case NNH5_COMPLEX64: return make_complex(H5T_IEEE_F32LE, 4);
	case NNH5_COMPLEX128: return make_complex(H5T_IEEE_F64LE, 8);
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

/*
 * The float types that load (doc/FORMAT.md): 4 and 8 bytes as float32 and
 * float64, 2 bytes with the binary16 or bfloat16 fields, 1 byte with the
 * float8 fields. Anything else (other field layouts) is not loadable.
 */
static bool float_dtype(nnh5_dtype *out, hid_t t)
{
	size_t size = H5Tget_size(t);
	size_t spos, epos, esize, mpos, msize, ebias;
	static const struct {
		nnh5_dtype dtype;
		size_t size, spos, epos, esize, mpos, msize, ebias;
	} small[] = {
		{ NNH5_FLOAT16, 2, 15, 10, 5, 0, 10, 15 },
		{ NNH5_BFLOAT16, 2, 15, 7, 8, 0, 7, 127 },
		{ NNH5_FLOAT8_E4M3FN, 1, 7, 3, 4, 0, 3, 7 },
		{ NNH5_FLOAT8_E5M2, 1, 7, 2, 5, 0, 2, 15 },
	};

	if (size == 4 || size == 8) {
		*out = size == 4 ? NNH5_FLOAT32 : NNH5_FLOAT64;
		return true;
	}
	if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0)
		return false;
	ebias = H5Tget_ebias(t);
	for (size_t k = 0; k < sizeof small / sizeof small[0]; k++) {
		if (small[k].size == size && small[k].spos == spos && small[k].epos == epos &&
		    small[k].esize == esize && small[k].mpos == mpos && small[k].msize == msize &&
		    small[k].ebias == ebias) {
			*out = small[k].dtype;
			return true;
		}
	}
	return false;
}

/*
 * h5py's complex (doc/FORMAT.md, "complex"): a compound of exactly two
 * members named r and i, both float32 or both float64. HDF5 converts by
 * member name, so the read is right for any offsets and byte order.
 */
static bool complex_dtype(nnh5_dtype *out, hid_t t)
{
	nnh5_dtype part[2] = { NNH5_BOOL, NNH5_BOOL };
	bool ok = H5Tget_nmembers(t) == 2;

	for (unsigned k = 0; ok && k < 2; k++) {
		char *name = H5Tget_member_name(t, k);
		hid_t m = H5Tget_member_type(t, k);
		ok = name && m >= 0 && strcmp(name, k ? "i" : "r") == 0 &&
		     H5Tget_class(m) == H5T_FLOAT && float_dtype(&part[k], m) &&
		     (part[k] == NNH5_FLOAT32 || part[k] == NNH5_FLOAT64);
		if (name)
			H5free_memory(name);
		if (m >= 0)
			H5Tclose(m);
	}
	H5Eclear2(H5E_DEFAULT);
	if (!ok || part[0] != part[1])
		return false;
	*out = part[0] == NNH5_FLOAT32 ? NNH5_COMPLEX64 : NNH5_COMPLEX128;
	return true;
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
		if (float_dtype(out, ftype))
			goto ok;
		break;
	case H5T_COMPOUND:
		if (complex_dtype(out, ftype))
			goto ok;
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

int nnh5__h5_attr_read_int64(int64_t *out, hid_t loc, const char *name)
{
	hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
	hid_t type = attr >= 0 ? H5Aget_type(attr) : -1;
	hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
	int rc = -1;

	if (type >= 0 && space >= 0) {
		if (H5Tget_class(type) != H5T_INTEGER || H5Sget_simple_extent_npoints(space) != 1)
			rc = 1;
		else
			rc = H5Aread(attr, H5T_NATIVE_INT64, out) < 0 ? -1 : 0;
	}
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
	return rc;
}
