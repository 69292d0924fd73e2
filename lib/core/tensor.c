/*
 * lib/core/tensor.c - creating, viewing, converting and comparing tensors.
 */
#include "core/internal.h"
#include "nnh5/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int nnh5__shape_size(nnh5_dtype dtype, size_t ndim, const int64_t *shape, size_t *numel,
		     size_t *nbytes)
{
	size_t n = 1;

	if (!nnh5_dtype_valid((int)dtype))
		return nnh5__error(NNH5_ERR_INVALID, "invalid dtype %d", (int)dtype);
	if (ndim > NNH5_MAX_NDIM)
		return nnh5__error(NNH5_ERR_INVALID, "rank %zu exceeds the maximum of %d", ndim,
				   NNH5_MAX_NDIM);
	if (ndim > 0 && !shape)
		return nnh5__error(NNH5_ERR_INVALID, "shape is NULL for rank %zu", ndim);
	for (size_t i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return nnh5__error(NNH5_ERR_INVALID, "dimension %zu is negative (%lld)", i,
					   (long long)shape[i]);
		if ((uint64_t)shape[i] > SIZE_MAX || !nnh5__mul_size(n, (size_t)shape[i], &n)) {
			char buf[256];
			return nnh5__error(NNH5_ERR_OVERFLOW, "shape %s: element count overflows",
					   nnh5__shape_str(buf, sizeof buf, ndim, shape));
		}
	}
	/* Also keep n * size within PTRDIFF_MAX so pointer arithmetic stays defined. */
	if (!nnh5__mul_size(n, nnh5_dtype_size((int)dtype), nbytes) || *nbytes > PTRDIFF_MAX) {
		char buf[256];
		return nnh5__error(NNH5_ERR_OVERFLOW, "shape %s of %s: byte size overflows",
				   nnh5__shape_str(buf, sizeof buf, ndim, shape),
				   nnh5_dtype_name((int)dtype));
	}
	*numel = n;
	return NNH5_OK;
}

const char *nnh5__shape_str(char *buf, size_t n, size_t ndim, const int64_t *shape)
{
	size_t used = 0;
	int w;

	w = snprintf(buf, n, "(");
	used = w > 0 ? (size_t)w : 0;
	for (size_t i = 0; i < ndim && used < n; i++) {
		w = snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
		if (w < 0)
			break;
		used += (size_t)w;
	}
	if (used < n)
		snprintf(buf + used, n - used, ndim == 1 ? ",)" : ")");
	return buf;
}

void nnh5__tensor_header_init(nnh5_tensor *t, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
			      size_t numel, size_t nbytes)
{
	memset(t, 0, nnh5__tensor_header_bytes(ndim));
	t->dtype = (uint8_t)dtype;
	t->ndim = (uint8_t)ndim;
	if (ndim)
		memcpy(t->shape, shape, ndim * sizeof *shape);
	t->numel = numel;
	t->nbytes = nbytes;
}

int nnh5__tensor_alloc_header(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			      const int64_t *shape)
{
	nnh5_tensor *t;
	size_t numel, nbytes;
	int rc;

	*out = NULL;
	rc = nnh5__shape_size(dtype, ndim, shape, &numel, &nbytes);
	if (rc)
		return rc;
	t = nnh5__malloc(nnh5__tensor_header_bytes(ndim));
	if (!t)
		return nnh5__nomem();
	nnh5__tensor_header_init(t, dtype, ndim, shape, numel, nbytes);
	*out = t;
	return NNH5_OK;
}

int nnh5_tensor_new(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape)
{
	nnh5_tensor *t;
	int rc = nnh5__tensor_alloc_header(&t, dtype, ndim, shape);

	*out = NULL;
	if (rc)
		return rc;
	if (t->nbytes) {
		/* Large ones page-aligned: copies into them run faster (nnh5__malloc_large). */
		t->data = nnh5__calloc_large(t->nbytes);
		if (!t->data) {
			nnh5__free(t);
			return nnh5__nomem();
		}
	}
	t->owns = true;
	*out = t;
	return NNH5_OK;
}

int nnh5_tensor_zeros(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape)
{
	return nnh5_tensor_new(out, dtype, ndim, shape);
}

int nnh5_tensor_full(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
		     double value)
{
	int rc = nnh5_tensor_new(out, dtype, ndim, shape);

	if (rc || (*out)->numel == 0)
		return rc;
	/* Convert once, then replicate the element's bytes. */
	nnh5_tensor_set(*out, 0, value);
	size_t es = nnh5_dtype_size((int)dtype);
	char *p = (*out)->data;
	for (size_t i = 1; i < (*out)->numel; i++)
		memcpy(p + i * es, p, es);
	return NNH5_OK;
}

int nnh5_tensor_ones(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape)
{
	return nnh5_tensor_full(out, dtype, ndim, shape, 1.0);
}

int nnh5_tensor_arange(nnh5_tensor **out, nnh5_dtype dtype, double start, double stop,
		       double step)
{
	double count;
	int64_t n;
	int rc;

	*out = NULL;
	if (!isfinite(start) || !isfinite(stop) || !isfinite(step) || step == 0.0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "arange(%g, %g, %g): bounds must be finite and step non-zero",
				   start, stop, step);
	if (dtype == NNH5_BOOL)
		return nnh5__error(NNH5_ERR_INVALID, "arange: bool is not a numeric dtype");
	count = ceil((stop - start) / step);
	if (count < 0)
		count = 0;
	if (count > 9.0e18)
		return nnh5__error(NNH5_ERR_OVERFLOW, "arange(%g, %g, %g): too many elements",
				   start, stop, step);
	n = (int64_t)count;
	rc = nnh5_tensor_new(out, dtype, 1, &n);
	if (rc)
		return rc;
	for (int64_t i = 0; i < n; i++)
		nnh5_tensor_set(*out, (size_t)i, start + (double)i * step);
	return NNH5_OK;
}

static int random_fill(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
		       nnh5_rng *rng, bool normal, double low, double high)
{
	int rc;

	*out = NULL;
	if (!nnh5_dtype_is_float((int)dtype))
		return nnh5__error(NNH5_ERR_INVALID, "random values need a float dtype, not %s",
				   nnh5_dtype_name((int)dtype));
	rc = nnh5_tensor_new(out, dtype, ndim, shape);
	if (rc)
		return rc;
	for (size_t i = 0; i < (*out)->numel; i++) {
		double v = normal ? nnh5_rng_normal(rng)
				  : low + (high - low) * nnh5_rng_uniform(rng);
		nnh5_tensor_set(*out, i, v);
	}
	return NNH5_OK;
}

int nnh5_tensor_randn(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
		      nnh5_rng *rng)
{
	return random_fill(out, dtype, ndim, shape, rng, true, 0.0, 0.0);
}

int nnh5_tensor_uniform(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			const int64_t *shape, double low, double high, nnh5_rng *rng)
{
	return random_fill(out, dtype, ndim, shape, rng, false, low, high);
}

static int make_view(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
		     const void *data, size_t nbytes, bool readonly)
{
	nnh5_tensor *t;
	int rc = nnh5__tensor_alloc_header(&t, dtype, ndim, shape);

	if (rc)
		return rc;
	if (t->nbytes != nbytes || (!data && nbytes)) {
		char buf[256];
		rc = nnh5__error(NNH5_ERR_SHAPE,
				 "view of %zu bytes does not match shape %s of %s (%zu bytes)",
				 nbytes, nnh5__shape_str(buf, sizeof buf, ndim, shape),
				 nnh5_dtype_name((int)dtype), t->nbytes);
		nnh5__free(t);
		*out = NULL;
		return rc;
	}
	/* The library never writes through a read-only view: readonly guards it. */
	memcpy(&t->data, &data, sizeof data);
	t->owns = false;
	t->readonly = readonly;
	*out = t;
	return NNH5_OK;
}

int nnh5_tensor_view(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
		     void *data, size_t nbytes)
{
	return make_view(out, dtype, ndim, shape, data, nbytes, false);
}

int nnh5_tensor_view_const(nnh5_tensor **out, nnh5_dtype dtype, size_t ndim,
			   const int64_t *shape, const void *data, size_t nbytes)
{
	return make_view(out, dtype, ndim, shape, data, nbytes, true);
}

int nnh5_tensor_clone(nnh5_tensor **out, const nnh5_tensor *t)
{
	int rc = nnh5_tensor_new(out, t->dtype, t->ndim, t->shape);

	if (rc)
		return rc;
	if (t->nbytes)
		memcpy((*out)->data, t->data, t->nbytes);
	return NNH5_OK;
}

int nnh5_tensor_reshape(nnh5_tensor **out, const nnh5_tensor *t, size_t ndim,
			const int64_t *shape)
{
	nnh5_tensor *v;
	int rc = nnh5__tensor_alloc_header(&v, t->dtype, ndim, shape);

	if (rc)
		return rc;
	if (v->numel != t->numel) {
		char a[256], b[256];
		rc = nnh5__error(NNH5_ERR_SHAPE, "cannot reshape %s into %s",
				 nnh5__shape_str(a, sizeof a, t->ndim, t->shape),
				 nnh5__shape_str(b, sizeof b, ndim, shape));
		nnh5__free(v);
		*out = NULL;
		return rc;
	}
	v->data = t->data;
	v->owns = false;
	v->readonly = t->readonly;
	*out = v;
	return NNH5_OK;
}

void nnh5_tensor_free(nnh5_tensor *t)
{
	if (!t)
		return;
	bool header_in_arena = t->header_in_arena;

	/*
	 * Tied tensors, and the tensors of one arena block, may be freed from
	 * different threads: the count is atomic. A header inside the block is
	 * freed with it, so it is read before the count drops.
	 */
	if (t->owns && (!t->refs || __atomic_sub_fetch(t->refs, 1, __ATOMIC_ACQ_REL) == 0)) {
		if (!t->in_arena)
			nnh5__free(t->data);
		nnh5__free(t->refs);
	}
	if (!header_in_arena)
		nnh5__free(t);
}

int nnh5_tensor_share(nnh5_tensor **out, nnh5_tensor *t)
{
	nnh5_tensor *s;
	int rc = nnh5__tensor_alloc_header(&s, t->dtype, t->ndim, t->shape);

	if (rc)
		return rc;
	if (t->owns && t->nbytes && !t->refs) {
		t->refs = nnh5__malloc(sizeof *t->refs);
		if (!t->refs) {
			nnh5__free(s);
			*out = NULL;
			return nnh5__nomem();
		}
		*t->refs = 1;
	}
	if (t->refs)
		__atomic_add_fetch(t->refs, 1, __ATOMIC_RELAXED);
	s->data = t->data;
	s->owns = t->owns && t->refs;
	s->refs = t->refs;
	s->in_arena = t->in_arena;
	s->readonly = t->readonly;
	*out = s;
	return NNH5_OK;
}

int nnh5__tensor_export(nnh5_tensor_export *e, nnh5_tensor *t, const char *key)
{
	e->key = key;
	e->data = t->nbytes ? t->data : NULL;
	e->nbytes = t->nbytes;
	e->dtype = t->dtype;
	e->ndim = t->ndim;
	memset(e->shape, 0, sizeof e->shape);
	memcpy(e->shape, t->shape, t->ndim * sizeof t->shape[0]);
	return nnh5_tensor_share(&e->tensor, t);
}

size_t nnh5__tensor_export_check(int *rc, nnh5_tensor_export *out, size_t n, size_t len,
				 size_t first)
{
	for (size_t i = 0; i < n; i++)
		out[i].tensor = NULL;
	if (first > len) {
		*rc = nnh5__error(NNH5_ERR_INVALID, "export from value %zu of %zu", first, len);
		return 0;
	}
	*rc = NNH5_OK;
	return len - first < n ? len - first : n;
}

void nnh5__tensor_export_undo(nnh5_tensor_export *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		nnh5_tensor_free(out[i].tensor);
		out[i].tensor = NULL;
	}
}

bool nnh5_tensor_tied(const nnh5_tensor *a, const nnh5_tensor *b)
{
	return a && b && a->nbytes && a->data == b->data && a->dtype == b->dtype &&
	       a->ndim == b->ndim && memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0;
}

nnh5_dtype nnh5_tensor_dtype(const nnh5_tensor *t) { return t->dtype; }
size_t nnh5_tensor_ndim(const nnh5_tensor *t) { return t->ndim; }
const int64_t *nnh5_tensor_shape(const nnh5_tensor *t) { return t->shape; }
int64_t nnh5_tensor_dim(const nnh5_tensor *t, size_t i) { return i < t->ndim ? t->shape[i] : 0; }
size_t nnh5_tensor_numel(const nnh5_tensor *t) { return t->numel; }
size_t nnh5_tensor_nbytes(const nnh5_tensor *t) { return t->nbytes; }
const void *nnh5_tensor_data(const nnh5_tensor *t) { return t->data; }
void *nnh5_tensor_mutable_data(nnh5_tensor *t) { return t->readonly ? NULL : t->data; }
bool nnh5_tensor_owns_data(const nnh5_tensor *t) { return t->owns; }

double nnh5_tensor_get(const nnh5_tensor *t, size_t i)
{
	const unsigned char *p = t->data;

	if (i >= t->numel)
		return (double)NAN;
	p += i * nnh5_dtype_size((int)t->dtype);
	switch (t->dtype) {
	case NNH5_BOOL: return *p ? 1.0 : 0.0;
	case NNH5_INT8: { int8_t v; memcpy(&v, p, 1); return v; }
	case NNH5_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
	case NNH5_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
	case NNH5_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
	case NNH5_UINT8: return *p;
	case NNH5_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
	case NNH5_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
	case NNH5_UINT64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
	case NNH5_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return (double)nnh5_half_to_float(v); }
	case NNH5_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return (double)nnh5_bfloat16_to_float(v); }
	case NNH5_FLOAT32: { float v; memcpy(&v, p, 4); return (double)v; }
	case NNH5_FLOAT64: { double v; memcpy(&v, p, 8); return v; }
	case NNH5_FLOAT8_E4M3FN: return nnh5_float8_e4m3fn_to_double(*p);
	case NNH5_FLOAT8_E5M2: return nnh5_float8_e5m2_to_double(*p);
	/* The real part, as torch's .real (and its .to(float) that drops the imaginary part). */
	case NNH5_COMPLEX64: { float v; memcpy(&v, p, 4); return (double)v; }
	case NNH5_COMPLEX128: { double v; memcpy(&v, p, 8); return v; }
	default: return (double)NAN;
	}
}

/* Saturating double -> integer conversion with truncation toward zero. */
static int64_t to_i64(double v, int64_t lo, int64_t hi)
{
	if (isnan(v))
		return 0;
	if (v <= (double)lo)
		return lo;
	if (v >= (double)hi)
		return hi;
	return (int64_t)v;
}

static uint64_t to_u64(double v, uint64_t hi)
{
	if (isnan(v) || v <= 0.0)
		return 0;
	if (v >= (double)hi)
		return hi;
	return (uint64_t)v;
}

int nnh5_tensor_set(nnh5_tensor *t, size_t i, double v)
{
	unsigned char *p = t->data;

	if (i >= t->numel)
		return nnh5__error(NNH5_ERR_INVALID, "index %zu out of range for %zu elements", i,
				   t->numel);
	if (t->readonly)
		return nnh5__error(NNH5_ERR_INVALID, "cannot write into a read-only view");
	p += i * nnh5_dtype_size((int)t->dtype);
	switch (t->dtype) {
	case NNH5_BOOL: *p = v != 0.0; break; /* NaN is non-zero: true, as in torch */
	case NNH5_INT8: { int8_t x = (int8_t)to_i64(v, INT8_MIN, INT8_MAX); memcpy(p, &x, 1); break; }
	case NNH5_INT16: { int16_t x = (int16_t)to_i64(v, INT16_MIN, INT16_MAX); memcpy(p, &x, 2); break; }
	case NNH5_INT32: { int32_t x = (int32_t)to_i64(v, INT32_MIN, INT32_MAX); memcpy(p, &x, 4); break; }
	case NNH5_INT64: { int64_t x = to_i64(v, INT64_MIN, INT64_MAX); memcpy(p, &x, 8); break; }
	case NNH5_UINT8: *p = (uint8_t)to_u64(v, UINT8_MAX); break;
	case NNH5_UINT16: { uint16_t x = (uint16_t)to_u64(v, UINT16_MAX); memcpy(p, &x, 2); break; }
	case NNH5_UINT32: { uint32_t x = (uint32_t)to_u64(v, UINT32_MAX); memcpy(p, &x, 4); break; }
	case NNH5_UINT64: { uint64_t x = to_u64(v, UINT64_MAX); memcpy(p, &x, 8); break; }
	case NNH5_FLOAT16: { uint16_t x = nnh5_float_to_half((float)v); memcpy(p, &x, 2); break; }
	case NNH5_BFLOAT16: { uint16_t x = nnh5_float_to_bfloat16((float)v); memcpy(p, &x, 2); break; }
	case NNH5_FLOAT32: { float x = (float)v; memcpy(p, &x, 4); break; }
	case NNH5_FLOAT64: memcpy(p, &v, 8); break;
	case NNH5_FLOAT8_E4M3FN: *p = nnh5_double_to_float8_e4m3fn(v); break;
	case NNH5_FLOAT8_E5M2: *p = nnh5_double_to_float8_e5m2(v); break;
	/* A real value: imaginary part zero. */
	case NNH5_COMPLEX64: { float x[2] = { (float)v, 0.0f }; memcpy(p, x, 8); break; }
	case NNH5_COMPLEX128: { double x[2] = { v, 0.0 }; memcpy(p, x, 16); break; }
	default: return nnh5__error(NNH5_ERR_INVALID, "invalid dtype");
	}
	return NNH5_OK;
}

int nnh5_tensor_convert(nnh5_tensor **out, const nnh5_tensor *t, nnh5_dtype dtype)
{
	int rc = nnh5_tensor_new(out, dtype, t->ndim, t->shape);

	if (rc)
		return rc;
	if (dtype == t->dtype) {
		if (t->nbytes)
			memcpy((*out)->data, t->data, t->nbytes);
		return NNH5_OK;
	}
	/* 64-bit integers between each other must not round through double. */
	if ((t->dtype == NNH5_INT64 || t->dtype == NNH5_UINT64) &&
	    (dtype == NNH5_INT64 || dtype == NNH5_UINT64)) {
		const unsigned char *src = t->data;
		unsigned char *dst = (*out)->data;
		for (size_t i = 0; i < t->numel; i++) {
			uint64_t u;
			memcpy(&u, src + 8 * i, 8);
			if (t->dtype == NNH5_INT64 && (int64_t)u < 0)
				u = 0;
			else if (t->dtype == NNH5_UINT64 && u > (uint64_t)INT64_MAX)
				u = (uint64_t)INT64_MAX;
			memcpy(dst + 8 * i, &u, 8);
		}
		return NNH5_OK;
	}
	/* Between complex types both parts carry over (complex to real keeps the real part). */
	if (nnh5_dtype_is_complex((int)t->dtype) && nnh5_dtype_is_complex((int)dtype)) {
		for (size_t i = 0; i < 2 * t->numel; i++) {
			if (t->dtype == NNH5_COMPLEX64)
				((double *)(*out)->data)[i] = (double)((const float *)t->data)[i];
			else
				((float *)(*out)->data)[i] = (float)((const double *)t->data)[i];
		}
		return NNH5_OK;
	}
	for (size_t i = 0; i < t->numel; i++)
		nnh5_tensor_set(*out, i, nnh5_tensor_get(t, i));
	return NNH5_OK;
}

static bool same_shape(const nnh5_tensor *a, const nnh5_tensor *b)
{
	return a->ndim == b->ndim && memcmp(a->shape, b->shape, a->ndim * sizeof a->shape[0]) == 0;
}

/* Element equality as numbers; 64-bit integers compared exactly. */
static bool elem_eq(const nnh5_tensor *a, const nnh5_tensor *b, size_t i)
{
	if (a->dtype == b->dtype && (a->dtype == NNH5_INT64 || a->dtype == NNH5_UINT64))
		return memcmp((const char *)a->data + 8 * i, (const char *)b->data + 8 * i, 8) == 0;
	return nnh5_tensor_get(a, i) == nnh5_tensor_get(b, i);
}

int nnh5_tensor_eq(nnh5_tensor **out, const nnh5_tensor *a, const nnh5_tensor *b)
{
	int rc;

	*out = NULL;
	if (!same_shape(a, b)) {
		char sa[256], sb[256];
		return nnh5__error(NNH5_ERR_SHAPE, "cannot compare shapes %s and %s",
				   nnh5__shape_str(sa, sizeof sa, a->ndim, a->shape),
				   nnh5__shape_str(sb, sizeof sb, b->ndim, b->shape));
	}
	rc = nnh5_tensor_new(out, NNH5_BOOL, a->ndim, a->shape);
	if (rc)
		return rc;
	unsigned char *r = (*out)->data;
	for (size_t i = 0; i < a->numel; i++)
		r[i] = elem_eq(a, b, i);
	return NNH5_OK;
}

bool nnh5_tensor_equal(const nnh5_tensor *a, const nnh5_tensor *b)
{
	if (a->dtype != b->dtype || !same_shape(a, b))
		return false;
	for (size_t i = 0; i < a->numel; i++)
		if (!elem_eq(a, b, i))
			return false;
	return true;
}

bool nnh5_tensor_bitwise_equal(const nnh5_tensor *a, const nnh5_tensor *b)
{
	return a->dtype == b->dtype && same_shape(a, b) &&
	       (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

int nnh5__check_bool(const nnh5_tensor *t, int status, const char *file, const char *kind,
		     const char *object)
{
	const unsigned char *p = t->data;
	size_t n = t->dtype == NNH5_BOOL ? t->nbytes : 0;

	/* Blocks OR-ed together first: the common, conforming case is one cheap pass. */
	for (size_t at = 0; at < n; at += 4096) {
		size_t end = n - at < 4096 ? n : at + 4096;
		unsigned char acc = 0;
		for (size_t i = at; i < end; i++)
			acc |= p[i];
		if (!(acc & 0xfe))
			continue;
		for (size_t i = at; i < end; i++)
			if (p[i] > 1)
				return nnh5__error(status,
						   "'%s': %s '%s' is bool but element %zu holds the byte 0x%02x (a bool is 0 or 1)",
						   file, kind, object, i, p[i]);
	}
	return NNH5_OK;
}

int nnh5_tensor_expect(const nnh5_tensor *t, nnh5_dtype dtype, size_t ndim, const char *what)
{
	char sbuf[256];
	if (!t)
		return nnh5__error(NNH5_ERR_NOT_FOUND, "%s: not found", what);
	if (t->dtype == dtype && t->ndim == ndim)
		return NNH5_OK;
	return nnh5__error(t->dtype != dtype ? NNH5_ERR_TYPE : NNH5_ERR_SHAPE,
			   "%s: stored %s of shape %s, expected %s with %zu dimension%s", what,
			   nnh5_dtype_name(t->dtype),
			   nnh5__shape_str(sbuf, sizeof(sbuf), t->ndim, t->shape),
			   nnh5_dtype_name(dtype), ndim, ndim == 1 ? "" : "s");
}
