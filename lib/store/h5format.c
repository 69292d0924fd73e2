/*
 * lib/store/h5format.c - HDF5 file-format encoder for new files (h5format.h).
 *
 * Every structure is encoded as HDF5 1.10.8 encodes it with nnh5's property
 * lists (checked against its files with h5debug); the differential test
 * (tests/direct_write_test.py) compares whole files of both writers with
 * h5dump, h5py, jsfive and h5wasm. Field layouts follow the HDF5 File
 * Format Specification 3.0: superblock v2 (II.A), object header v2 (IV.A.1.b),
 * dataspace v2, datatype, fill value v3, layout v3, link info, group info,
 * link v1, attribute v3, attribute info messages (IV.A.2), global heap
 * collections (III.E).
 */
#include "store/h5format.h"
#include "store/h5read.h"

#include <string.h>

#define UNDEF UINT64_MAX
/* Global heap collections: HDF5's smallest, and objects per collection (16-bit indexes). */
#define HEAP_MIN 4096u
#define HEAP_OBJECTS 8192u
/* HDF5's metadata cache refuses entries above 32 MiB; stay well below. */
#define MAX_HEADER ((uint64_t)16 << 20)

enum { A_I64, A_U64, A_STR, A_STRS, A_U64S };

struct attr {
	const char *name;
	const char *const *strs; /* A_STRS; A_STR uses str */
	const char *str;
	const uint64_t *vals; /* A_U64S */
	uint64_t bits;
	size_t n;
	size_t heap; /* first heap object (ordinal over the file) */
	uint32_t next;
	uint8_t type;
};

struct obj {
	const char *name;
	uint64_t addr, size, msize; /* object header; its messages' bytes */
	uint64_t nbytes, data;
	size_t dims; /* into w->dims */
	uint32_t namelen, parent;
	uint32_t first_child, last_child, next_sibling, nchildren;
	uint32_t first_attr, last_attr, nattrs;
	uint8_t group, dtype, ndim;
};

struct nnh5__h5w {
	struct obj *o;
	size_t n, cap;
	struct attr *a;
	size_t na, acap;
	uint64_t *dims;
	size_t nd, dcap;
	uint32_t *table; /* children by (parent, name): object index + 1, 0 empty */
	size_t tcap;
	size_t nheap;       /* heap objects (strings) */
	uint64_t *heap_addr; /* per collection */
	uint64_t *heap_size;
	size_t ncoll;
	uint64_t meta_size, file_size;
	uint64_t meta_base; /* address of the image's first byte after the superblock's (0: one image) */
};

/* ------------------------------------------------------------------ */
/* lookup3 (Bob Jenkins, public domain), as HDF5's H5_checksum_lookup3 */

#define ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

uint32_t nnh5__h5_checksum(const void *data, size_t n)
{
	const uint8_t *k = data;
	uint32_t a, b, c;

	a = b = c = 0xdeadbeefu + (uint32_t)n;
	while (n > 12) {
		a += k[0] + ((uint32_t)k[1] << 8) + ((uint32_t)k[2] << 16) + ((uint32_t)k[3] << 24);
		b += k[4] + ((uint32_t)k[5] << 8) + ((uint32_t)k[6] << 16) + ((uint32_t)k[7] << 24);
		c += k[8] + ((uint32_t)k[9] << 8) + ((uint32_t)k[10] << 16) + ((uint32_t)k[11] << 24);
		a -= c; a ^= ROT(c, 4);  c += b;
		b -= a; b ^= ROT(a, 6);  a += c;
		c -= b; c ^= ROT(b, 8);  b += a;
		a -= c; a ^= ROT(c, 16); c += b;
		b -= a; b ^= ROT(a, 19); a += c;
		c -= b; c ^= ROT(b, 4);  b += a;
		n -= 12;
		k += 12;
	}
	switch (n) {
	case 12: c += (uint32_t)k[11] << 24; /* fall through */
	case 11: c += (uint32_t)k[10] << 16; /* fall through */
	case 10: c += (uint32_t)k[9] << 8;   /* fall through */
	case 9: c += k[8];                   /* fall through */
	case 8: b += (uint32_t)k[7] << 24;   /* fall through */
	case 7: b += (uint32_t)k[6] << 16;   /* fall through */
	case 6: b += (uint32_t)k[5] << 8;    /* fall through */
	case 5: b += k[4];                   /* fall through */
	case 4: a += (uint32_t)k[3] << 24;   /* fall through */
	case 3: a += (uint32_t)k[2] << 16;   /* fall through */
	case 2: a += (uint32_t)k[1] << 8;    /* fall through */
	case 1: a += k[0]; break;
	case 0: return c;
	}
	c ^= b; c -= ROT(b, 14);
	a ^= c; a -= ROT(c, 11);
	b ^= a; b -= ROT(a, 25);
	c ^= b; c -= ROT(b, 16);
	a ^= c; a -= ROT(c, 4);
	b ^= a; b -= ROT(a, 14);
	c ^= b; c -= ROT(b, 24);
	return c;
}

/* ------------------------------------------------------------------ */
/* Datatypes: the bytes HDF5 1.10.8 writes for nnh5's file types       */

static const uint8_t DT_BOOL[] = { 0x38, 0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10, 0x08,
				   0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
				   'F',  'A',  'L',  'S',  'E',  0x00, 'T',  'R',  'U',  'E',
				   0x00, 0x00, 0x01 };
#define INT(sign, size) { 0x10, (sign) ? 0x08 : 0x00, 0x00, 0x00, size, 0, 0, 0, 0, 0, (size) * 8, 0 }
static const uint8_t DT_I8[] = INT(1, 1), DT_I16[] = INT(1, 2), DT_I32[] = INT(1, 4),
		     DT_I64[] = INT(1, 8), DT_U8[] = INT(0, 1), DT_U16[] = INT(0, 2),
		     DT_U32[] = INT(0, 4), DT_U64[] = INT(0, 8);
#define F32_BODY 0x11, 0x20, 0x1f, 0x00, 0x04, 0, 0, 0, 0, 0, 0x20, 0x00, 0x17, 0x08, 0x00, 0x17, 0x7f, 0, 0, 0
#define F64_BODY 0x11, 0x20, 0x3f, 0x00, 0x08, 0, 0, 0, 0, 0, 0x40, 0x00, 0x34, 0x0b, 0x00, 0x34, 0xff, 0x03, 0, 0
static const uint8_t DT_F16[] = { 0x11, 0x20, 0x0f, 0x00, 0x02, 0, 0, 0, 0, 0, 0x10, 0x00,
				  0x0a, 0x05, 0x00, 0x0a, 0x0f, 0, 0, 0 };
static const uint8_t DT_BF16[] = { 0x11, 0x20, 0x0f, 0x00, 0x02, 0, 0, 0, 0, 0, 0x10, 0x00,
				   0x07, 0x08, 0x00, 0x07, 0x7f, 0, 0, 0 };
static const uint8_t DT_F32[] = { F32_BODY }, DT_F64[] = { F64_BODY };
static const uint8_t DT_F8E4M3[] = { 0x11, 0x20, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0x08, 0x00,
				     0x03, 0x04, 0x00, 0x03, 0x07, 0, 0, 0 };
static const uint8_t DT_F8E5M2[] = { 0x11, 0x20, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0x08, 0x00,
				     0x02, 0x05, 0x00, 0x02, 0x0f, 0, 0, 0 };
static const uint8_t DT_C64[] = { 0x36, 0x02, 0x00, 0x00, 0x08, 0, 0, 0, 'r', 0, 0x00, F32_BODY,
				  'i', 0, 0x04, F32_BODY };
static const uint8_t DT_C128[] = { 0x36, 0x02, 0x00, 0x00, 0x10, 0, 0, 0, 'r', 0, 0x00, F64_BODY,
				   'i', 0, 0x08, F64_BODY };
/* Variable-length UTF-8 string, null-terminated padding, base type an unsigned byte. */
static const uint8_t DT_VSTR[] = { 0x19, 0x01, 0x01, 0x00, 0x10, 0, 0, 0, 0x10, 0x00, 0x00, 0x00,
				   0x01, 0, 0, 0, 0, 0, 0x08, 0x00 };

static const uint8_t *dtype_bytes(int dtype, size_t *n)
{
#define R(x) do { *n = sizeof x; return x; } while (0)
	switch (dtype) {
	case NNH5_BOOL: R(DT_BOOL);
	case NNH5_INT8: R(DT_I8);
	case NNH5_INT16: R(DT_I16);
	case NNH5_INT32: R(DT_I32);
	case NNH5_INT64: R(DT_I64);
	case NNH5_UINT8: R(DT_U8);
	case NNH5_UINT16: R(DT_U16);
	case NNH5_UINT32: R(DT_U32);
	case NNH5_UINT64: R(DT_U64);
	case NNH5_FLOAT16: R(DT_F16);
	case NNH5_BFLOAT16: R(DT_BF16);
	case NNH5_FLOAT32: R(DT_F32);
	case NNH5_FLOAT64: R(DT_F64);
	case NNH5_FLOAT8_E4M3FN: R(DT_F8E4M3);
	case NNH5_FLOAT8_E5M2: R(DT_F8E5M2);
	case NNH5_COMPLEX64: R(DT_C64);
	case NNH5_COMPLEX128: R(DT_C128);
	default: *n = 0; return NULL;
	}
#undef R
}

int nnh5__h5_dtype_of_bytes(const unsigned char *b, size_t n)
{
	for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
		size_t len;
		const uint8_t *x = dtype_bytes(d, &len);
		if (x && len == n && memcmp(x, b, n) == 0)
			return d;
	}
	return -1;
}

bool nnh5__h5_is_vlen_utf8(const unsigned char *b, size_t n)
{
	return n == sizeof DT_VSTR && memcmp(b, DT_VSTR, n) == 0;
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 16, bytes;
	void *q;

	if (need <= *cap)
		return NNH5_OK;
	while (c < need)
		c *= 2;
	if (!nnh5__mul_size(c, elem, &bytes) || !(q = nnh5__realloc(*p, bytes)))
		return nnh5__nomem();
	*p = q;
	*cap = c;
	return NNH5_OK;
}

static uint64_t name_hash(uint32_t parent, const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull ^ parent;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int table_put(nnh5__h5w *w, uint32_t idx);

static int table_grow(nnh5__h5w *w)
{
	size_t cap = w->tcap ? w->tcap * 2 : 64, bytes;
	uint32_t *old = w->table;
	size_t oldcap = w->tcap;

	if (!nnh5__mul_size(cap, sizeof *w->table, &bytes) || !(w->table = nnh5__calloc(cap, sizeof *w->table))) {
		w->table = old;
		return nnh5__nomem();
	}
	w->tcap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i])
			table_put(w, old[i] - 1);
	nnh5__free(old);
	return NNH5_OK;
}

static int table_put(nnh5__h5w *w, uint32_t idx)
{
	const struct obj *o = &w->o[idx];
	size_t i;

	if ((w->n + 1) * 2 > w->tcap) {
		int rc = table_grow(w);
		if (rc)
			return rc;
	}
	i = name_hash(o->parent, o->name, o->namelen) & (w->tcap - 1);
	while (w->table[i])
		i = (i + 1) & (w->tcap - 1);
	w->table[i] = idx + 1;
	return NNH5_OK;
}

uint32_t nnh5__h5w_child(const nnh5__h5w *w, uint32_t parent, const char *name, size_t len,
			 bool *is_group)
{
	if (!w->tcap)
		return NNH5__H5W_NONE;
	for (size_t i = name_hash(parent, name, len) & (w->tcap - 1); w->table[i];
	     i = (i + 1) & (w->tcap - 1)) {
		const struct obj *o = &w->o[w->table[i] - 1];
		if (o->parent == parent && o->namelen == len && memcmp(o->name, name, len) == 0) {
			*is_group = o->group;
			return w->table[i] - 1;
		}
	}
	return NNH5__H5W_NONE;
}

int nnh5__h5w_new(nnh5__h5w **out)
{
	nnh5__h5w *w = nnh5__calloc(1, sizeof *w);

	*out = NULL;
	if (!w || grow((void **)&w->o, &w->cap, 1, sizeof *w->o)) {
		nnh5__free(w);
		return nnh5__nomem();
	}
	memset(&w->o[0], 0, sizeof w->o[0]);
	w->o[0].group = 1;
	w->o[0].parent = NNH5__H5W_NONE;
	w->o[0].first_child = w->o[0].first_attr = NNH5__H5W_NONE;
	w->n = 1;
	*out = w;
	return NNH5_OK;
}

void nnh5__h5w_free(nnh5__h5w *w)
{
	if (!w)
		return;
	nnh5__free(w->o);
	nnh5__free(w->a);
	nnh5__free(w->dims);
	nnh5__free(w->table);
	nnh5__free(w->heap_addr);
	nnh5__free(w->heap_size);
	nnh5__free(w);
}

static int add_obj(uint32_t *out, nnh5__h5w *w, uint32_t parent, const char *name, size_t len)
{
	struct obj *o, *p;
	int rc;

	if (w->n >= INT32_MAX)
		return nnh5__error(NNH5_ERR_OVERFLOW, "too many objects for one file");
	rc = grow((void **)&w->o, &w->cap, w->n + 1, sizeof *w->o);
	if (rc)
		return rc;
	o = &w->o[w->n];
	memset(o, 0, sizeof *o);
	o->name = name;
	o->namelen = (uint32_t)len;
	o->parent = parent;
	o->first_child = o->first_attr = o->next_sibling = NNH5__H5W_NONE;
	rc = table_put(w, (uint32_t)w->n);
	if (rc)
		return rc;
	p = &w->o[parent];
	if (p->first_child == NNH5__H5W_NONE)
		p->first_child = (uint32_t)w->n;
	else
		w->o[p->last_child].next_sibling = (uint32_t)w->n;
	p->last_child = (uint32_t)w->n;
	p->nchildren++;
	*out = (uint32_t)w->n++;
	return NNH5_OK;
}

int nnh5__h5w_group(uint32_t *out, nnh5__h5w *w, uint32_t parent, const char *name, size_t len)
{
	int rc = add_obj(out, w, parent, name, len);
	if (!rc)
		w->o[*out].group = 1;
	return rc;
}

int nnh5__h5w_dataset(uint32_t *out, nnh5__h5w *w, uint32_t parent, const char *name, size_t len,
		      nnh5_dtype dtype, size_t ndim, const int64_t *shape, uint64_t nbytes)
{
	int rc = grow((void **)&w->dims, &w->dcap, w->nd + ndim, sizeof *w->dims);

	if (!rc)
		rc = add_obj(out, w, parent, name, len);
	if (rc)
		return rc;
	struct obj *o = &w->o[*out];
	o->dtype = (uint8_t)dtype;
	o->ndim = (uint8_t)ndim;
	o->nbytes = nbytes;
	o->dims = w->nd;
	for (size_t i = 0; i < ndim; i++)
		w->dims[w->nd++] = (uint64_t)shape[i];
	return NNH5_OK;
}

static int add_attr(struct attr **out, nnh5__h5w *w, uint32_t obj, const char *name, int type)
{
	int rc = grow((void **)&w->a, &w->acap, w->na + 1, sizeof *w->a);
	struct obj *o = &w->o[obj];

	if (rc)
		return rc;
	*out = &w->a[w->na];
	memset(*out, 0, sizeof **out);
	(*out)->name = name;
	(*out)->type = (uint8_t)type;
	(*out)->next = NNH5__H5W_NONE;
	if (o->first_attr == NNH5__H5W_NONE)
		o->first_attr = (uint32_t)w->na;
	else
		w->a[o->last_attr].next = (uint32_t)w->na;
	o->last_attr = (uint32_t)w->na++;
	o->nattrs++;
	return NNH5_OK;
}

int nnh5__h5w_attr_i64(nnh5__h5w *w, uint32_t obj, const char *name, int64_t v)
{
	struct attr *a;
	int rc = add_attr(&a, w, obj, name, A_I64);
	if (!rc)
		a->bits = (uint64_t)v;
	return rc;
}

int nnh5__h5w_attr_u64(size_t *index, nnh5__h5w *w, uint32_t obj, const char *name, uint64_t v)
{
	struct attr *a;
	int rc = add_attr(&a, w, obj, name, A_U64);
	if (!rc) {
		a->bits = v;
		if (index)
			*index = w->na - 1;
	}
	return rc;
}

void nnh5__h5w_set_u64(nnh5__h5w *w, size_t index, uint64_t v)
{
	w->a[index].bits = v;
}

int nnh5__h5w_attr_str(nnh5__h5w *w, uint32_t obj, const char *name, const char *v)
{
	struct attr *a;
	int rc = add_attr(&a, w, obj, name, A_STR);
	if (!rc) {
		a->str = v;
		a->n = 1;
	}
	return rc;
}

int nnh5__h5w_attr_u64s(nnh5__h5w *w, uint32_t obj, const char *name, const uint64_t *v, size_t n)
{
	struct attr *a;
	int rc = add_attr(&a, w, obj, name, A_U64S);
	if (!rc) {
		a->vals = v;
		a->n = n;
	}
	return rc;
}

int nnh5__h5w_attr_strs(nnh5__h5w *w, uint32_t obj, const char *name, const char *const *v,
			size_t n)
{
	struct attr *a;
	int rc = add_attr(&a, w, obj, name, A_STRS);
	if (!rc) {
		a->strs = v;
		a->n = n;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sizes                                                               */

static const char *attr_string(const struct attr *a, size_t i)
{
	return a->type == A_STR ? a->str : a->strs[i];
}

static size_t attr_body(const struct attr *a)
{
	bool num = a->type == A_I64 || a->type == A_U64 || a->type == A_U64S;
	size_t dt = num ? sizeof DT_I64 : sizeof DT_VSTR;
	size_t ds = a->type == A_STRS || a->type == A_U64S ? 20 : 4;
	size_t data = a->type == A_I64 || a->type == A_U64 ? 8 : a->type == A_U64S ? 8 * a->n : 16 * a->n;
	return 9 + strlen(a->name) + 1 + dt + ds + data;
}

uint32_t nnh5__h5w_links(const nnh5__h5w *w, uint32_t obj)
{
	return w->o[obj].nchildren;
}

uint32_t nnh5__h5w_most_links(const nnh5__h5w *w)
{
	uint32_t most = 0;
	for (size_t i = 0; i < w->n; i++)
		if (w->o[i].nchildren > most)
			most = w->o[i].nchildren;
	return most;
}

size_t nnh5__h5w_strs_message_size(const char *name, size_t n)
{
	struct attr a = { .name = name, .type = A_STRS, .n = n };
	return attr_body(&a);
}

static size_t link_body(const struct obj *c)
{
	return 2 + 8 + 1 + (c->namelen < 256 ? 1 : 2) + c->namelen + 8;
}

/* Bytes of the messages (with their headers) of object i. */
static uint64_t messages_size(const nnh5__h5w *w, uint32_t i)
{
	const struct obj *o = &w->o[i];
	uint64_t s = 0;
	size_t dt;

	if (o->group) {
		/* 6-byte message headers: attribute creation order is tracked */
		s += 6 + 34 + 6 + (i == NNH5__H5W_ROOT ? 2 : 6);
		if (o->nattrs)
			s += 6 + 28;
		for (uint32_t a = o->first_attr; a != NNH5__H5W_NONE; a = w->a[a].next)
			s += 6 + attr_body(&w->a[a]);
		for (uint32_t c = o->first_child; c != NNH5__H5W_NONE; c = w->o[c].next_sibling)
			s += 6 + link_body(&w->o[c]);
		return s;
	}
	dtype_bytes(o->dtype, &dt);
	s += 4 + 4 + 16 * (uint64_t)o->ndim; /* dataspace */
	s += 4 + dt + 4 + 2 + 4 + 18 + 4 + 18; /* datatype, fill value, layout, attribute info */
	for (uint32_t a = o->first_attr; a != NNH5__H5W_NONE; a = w->a[a].next)
		s += 4 + attr_body(&w->a[a]);
	return s;
}

static unsigned size_bytes(uint64_t chunk)
{
	return chunk < 256 ? 1 : chunk < 65536 ? 2 : chunk < ((uint64_t)1 << 32) ? 4 : 8;
}

/* Object headers and global heaps from address at on; returns where they end. */
static int layout_meta(uint64_t *end, nnh5__h5w *w, uint64_t at)
{
	size_t nstr = 0, coll;

	/* Object headers in creation order: the root first. */
	for (uint32_t i = 0; i < w->n; i++) {
		uint64_t m = messages_size(w, i);
		if (m > MAX_HEADER)
			return nnh5__error(NNH5_ERR_OVERFLOW, "an object header of %llu bytes",
					   (unsigned long long)m);
		w->o[i].addr = at;
		w->o[i].msize = m;
		w->o[i].size = 4 + 2 + size_bytes(m) + m + 4;
		at += w->o[i].size;
	}
	for (size_t i = 0; i < w->na; i++) {
		if (w->a[i].type == A_STR || w->a[i].type == A_STRS) {
			w->a[i].heap = nstr;
			nstr += w->a[i].n;
		}
	}
	w->nheap = nstr;
	w->ncoll = (nstr + HEAP_OBJECTS - 1) / HEAP_OBJECTS;
	nnh5__free(w->heap_addr);
	nnh5__free(w->heap_size);
	w->heap_addr = w->heap_size = NULL;
	if (w->ncoll) {
		w->heap_addr = nnh5__calloc(w->ncoll, sizeof *w->heap_addr);
		w->heap_size = nnh5__calloc(w->ncoll, sizeof *w->heap_size);
		if (!w->heap_addr || !w->heap_size)
			return nnh5__nomem();
		/* 16-byte collection header, each object's 16-byte header and data padded to 8. */
		for (size_t i = 0; i < w->ncoll; i++)
			w->heap_size[i] = 16;
		for (size_t i = 0; i < w->na; i++) {
			const struct attr *a = &w->a[i];
			if (a->type != A_STR && a->type != A_STRS)
				continue;
			for (size_t k = 0; k < a->n; k++) {
				coll = (a->heap + k) / HEAP_OBJECTS;
				w->heap_size[coll] += 16 + ((strlen(attr_string(a, k)) + 7) & ~(uint64_t)7);
			}
		}
		for (size_t i = 0; i < w->ncoll; i++) {
			w->heap_size[i] += 16; /* the free-space object */
			if (w->heap_size[i] < HEAP_MIN)
				w->heap_size[i] = HEAP_MIN;
			w->heap_addr[i] = at;
			at += w->heap_size[i];
		}
	}
	*end = at;
	return NNH5_OK;
}

int nnh5__h5w_layout(uint64_t *meta_size, uint64_t *file_size, nnh5__h5w *w, uint64_t align)
{
	uint64_t at;
	int rc = layout_meta(&at, w, 48); /* after the superblock */

	if (rc)
		return rc;
	w->meta_base = 0;
	w->meta_size = at;
	*meta_size = at;
	for (uint32_t i = 0; i < w->n; i++) {
		struct obj *o = &w->o[i];
		if (o->group)
			continue;
		if (!o->nbytes) {
			o->data = UNDEF;
			continue;
		}
		/* Small data starts on a multiple of its element size, so a map can view it. */
		uint64_t to = o->nbytes >= align ? align : (uint64_t)nnh5_dtype_size(o->dtype);
		at = (at + to - 1) / to * to;
		o->data = at;
		at += o->nbytes;
	}
	*file_size = w->file_size = at;
	return NNH5_OK;
}

uint64_t nnh5__h5w_data_addr(const nnh5__h5w *w, uint32_t obj)
{
	return w->o[obj].data;
}

void nnh5__h5w_set_data_addr(nnh5__h5w *w, uint32_t obj, uint64_t addr)
{
	w->o[obj].data = w->o[obj].nbytes ? addr : UNDEF;
}

int nnh5__h5w_layout_after(uint64_t *meta_size, nnh5__h5w *w, uint64_t base)
{
	uint64_t at;
	int rc = layout_meta(&at, w, base);

	if (rc)
		return rc;
	w->meta_base = base;
	w->meta_size = at - base;
	*meta_size = at - base;
	w->file_size = at;
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

static uint8_t *put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put_bytes(uint8_t *p, const void *b, size_t n)
{
	memcpy(p, b, n);
	return p + n;
}

/* A message header: type, body size, flags, and the creation order when tracked. */
static uint8_t *msg(uint8_t *p, unsigned type, size_t size, unsigned flags, bool corder,
		    unsigned crt)
{
	*p++ = (uint8_t)type;
	p = put(p, size, 2);
	*p++ = (uint8_t)flags;
	if (corder)
		p = put(p, crt, 2);
	return p;
}

static uint8_t *attr_msg(uint8_t *p, const nnh5__h5w *w, const struct attr *a, bool corder,
			 unsigned crt)
{
	size_t nl = strlen(a->name) + 1;
	bool num = a->type == A_I64 || a->type == A_U64 || a->type == A_U64S;
	const uint8_t *dt = a->type == A_I64 ? DT_I64 : num ? DT_U64 : DT_VSTR;
	size_t dtn = num ? sizeof DT_I64 : sizeof DT_VSTR;

	p = msg(p, 0x0c, attr_body(a), 0, corder, crt);
	*p++ = 3; /* version */
	*p++ = 0;
	p = put(p, nl, 2);
	p = put(p, dtn, 2);
	p = put(p, a->type == A_STRS || a->type == A_U64S ? 20 : 4, 2);
	*p++ = 0; /* the name is ASCII */
	p = put_bytes(p, a->name, nl);
	p = put_bytes(p, dt, dtn);
	if (a->type == A_STRS || a->type == A_U64S) {
		*p++ = 2;
		*p++ = 1;
		*p++ = 1; /* maximum dimensions present */
		*p++ = 1; /* simple */
		p = put(p, a->n, 8);
		p = put(p, a->n, 8);
	} else {
		p = put(p, 2, 4); /* version 2, scalar */
	}
	if (a->type == A_U64S) {
		for (size_t k = 0; k < a->n; k++)
			p = put(p, a->vals[k], 8);
		return p;
	}
	if (num)
		return put(p, a->bits, 8);
	for (size_t k = 0; k < a->n; k++) {
		size_t g = a->heap + k;
		p = put(p, strlen(attr_string(a, k)), 4);
		p = put(p, w->heap_addr[g / HEAP_OBJECTS], 8);
		p = put(p, g % HEAP_OBJECTS + 1, 4);
	}
	return p;
}

static uint8_t *encode_group(uint8_t *p, const nnh5__h5w *w, uint32_t i)
{
	const struct obj *o = &w->o[i];
	unsigned crt = 0;

	p = msg(p, 0x02, 34, 0, true, 0); /* link info: creation order tracked and indexed */
	*p++ = 0;
	*p++ = 3;
	p = put(p, o->nchildren, 8);
	p = put(p, UNDEF, 8);
	p = put(p, UNDEF, 8);
	p = put(p, UNDEF, 8);
	if (i == NNH5__H5W_ROOT) {
		/* The root is made by the file creation list: HDF5's default phase change. */
		p = msg(p, 0x0a, 2, 0x01, true, 0);
		*p++ = 0;
		*p++ = 0;
	} else {
		p = msg(p, 0x0a, 6, 0x01, true, 0);
		*p++ = 0;
		*p++ = 1;
		p = put(p, 32, 2); /* LINKS_COMPACT */
		p = put(p, 30, 2);
	}
	if (o->nattrs) {
		p = msg(p, 0x15, 28, 0x04, true, 0); /* attribute info */
		*p++ = 0;
		*p++ = 3;
		p = put(p, o->nattrs, 2);
		p = put(p, UNDEF, 8);
		p = put(p, UNDEF, 8);
		p = put(p, UNDEF, 8);
	}
	for (uint32_t a = o->first_attr; a != NNH5__H5W_NONE; a = w->a[a].next)
		p = attr_msg(p, w, &w->a[a], true, crt++);
	crt = 0;
	for (uint32_t c = o->first_child; c != NNH5__H5W_NONE; c = w->o[c].next_sibling) {
		const struct obj *k = &w->o[c];
		bool wide = k->namelen >= 256;
		p = msg(p, 0x06, link_body(k), 0, true, 0);
		*p++ = 1;
		*p++ = (uint8_t)(0x14 | (wide ? 1 : 0)); /* creation order, character set */
		p = put(p, crt++, 8);
		*p++ = 1; /* UTF-8 */
		p = put(p, k->namelen, wide ? 2 : 1);
		p = put_bytes(p, k->name, k->namelen);
		p = put(p, k->addr, 8);
	}
	return p;
}

static uint8_t *encode_dataset(uint8_t *p, const nnh5__h5w *w, uint32_t i)
{
	const struct obj *o = &w->o[i];
	size_t dtn;
	const uint8_t *dt = dtype_bytes(o->dtype, &dtn);

	p = msg(p, 0x01, 4 + 16 * (size_t)o->ndim, 0, false, 0);
	*p++ = 2;
	*p++ = o->ndim;
	*p++ = o->ndim ? 1 : 0;
	*p++ = o->ndim ? 1 : 0;
	for (int r = 0; r < 2; r++)
		for (size_t d = 0; d < o->ndim; d++)
			p = put(p, w->dims[o->dims + d], 8);
	p = msg(p, 0x03, dtn, 0x01, false, 0);
	p = put_bytes(p, dt, dtn);
	p = msg(p, 0x05, 2, 0x01, false, 0); /* fill value: allocated early, never filled */
	*p++ = 3;
	*p++ = 0x05;
	p = msg(p, 0x08, 18, 0x01, false, 0); /* contiguous layout */
	*p++ = 3;
	*p++ = 1;
	p = put(p, o->data, 8);
	p = put(p, o->nbytes, 8);
	p = msg(p, 0x15, 18, 0x04, false, 0); /* attribute info, creation order not tracked */
	*p++ = 0;
	*p++ = 0;
	p = put(p, UNDEF, 8);
	p = put(p, UNDEF, 8);
	for (uint32_t a = o->first_attr; a != NNH5__H5W_NONE; a = w->a[a].next)
		p = attr_msg(p, w, &w->a[a], false, 0);
	return p;
}

/* The global heaps into buf, whose first byte is at address origin. */
static void encode_heaps(uint8_t *buf, uint64_t origin, const nnh5__h5w *w)
{
	uint8_t *p = NULL, *end = NULL;
	size_t coll = SIZE_MAX;

	for (size_t i = 0; i < w->na; i++) {
		const struct attr *a = &w->a[i];
		if (a->type != A_STR && a->type != A_STRS)
			continue;
		for (size_t k = 0; k < a->n; k++) {
			size_t g = a->heap + k, len = strlen(attr_string(a, k));
			if (g / HEAP_OBJECTS != coll) {
				if (p)
					put(put(p, 0, 8), (uint64_t)(end - p), 8);
				coll = g / HEAP_OBJECTS;
				p = buf + (w->heap_addr[coll] - origin);
				end = p + w->heap_size[coll];
				memset(p, 0, w->heap_size[coll]);
				p = put_bytes(p, "GCOL", 4);
				*p = 1; /* version; 3 reserved bytes */
				p += 4;
				p = put(p, w->heap_size[coll], 8);
			}
			p = put(p, g % HEAP_OBJECTS + 1, 2);
			p = put(p, 0, 6); /* reference count, reserved */
			p = put(p, len, 8);
			memcpy(p, attr_string(a, k), len);
			p += (len + 7) & ~(size_t)7;
		}
	}
	/* The free space that is left, as heap object 0 (its size includes its header). */
	if (p)
		put(put(p, 0, 8), (uint64_t)(end - p), 8);
}

/* The superblock (48 bytes). */
static void encode_superblock(uint8_t *buf, const nnh5__h5w *w)
{
	uint8_t *p = buf;

	/* Superblock version 2: 8-byte offsets and lengths, no extension. */
	p = put_bytes(p, "\211HDF\r\n\032\n", 8);
	*p++ = 2;
	*p++ = 8;
	*p++ = 8;
	*p++ = 0;
	p = put(p, 0, 8);
	p = put(p, UNDEF, 8);
	p = put(p, w->file_size, 8);
	p = put(p, w->o[0].addr, 8);
	put(p, nnh5__h5_checksum(buf, (size_t)(p - buf)), 4);
}

/* Object headers and heaps into buf, whose first byte is at address origin. */
static void encode_meta(uint8_t *buf, uint64_t origin, const nnh5__h5w *w)
{
	uint8_t *p;

	for (uint32_t i = 0; i < w->n; i++) {
		const struct obj *o = &w->o[i];
		uint8_t *start = buf + (o->addr - origin);
		uint64_t m = o->msize;
		unsigned sb = size_bytes(m);

		p = put_bytes(start, "OHDR", 4);
		*p++ = 2;
		/* flags: size of the chunk size field; groups track and index attribute order */
		*p++ = (uint8_t)((sb == 1 ? 0 : sb == 2 ? 1 : sb == 4 ? 2 : 3) | (o->group ? 0x0c : 0));
		p = put(p, m, sb);
		p = o->group ? encode_group(p, w, i) : encode_dataset(p, w, i);
		put(p, nnh5__h5_checksum(start, (size_t)(p - start)), 4);
	}
	encode_heaps(buf, origin, w);
}

int nnh5__h5w_encode(const nnh5__h5w *w, unsigned char *buf, size_t cap)
{
	if (cap < w->meta_size || w->meta_base != 0)
		return nnh5__error(NNH5_ERR_INVALID, "metadata buffer too small");
	encode_superblock(buf, w);
	encode_meta(buf, 0, w);
	return NNH5_OK;
}

int nnh5__h5w_encode_after(const nnh5__h5w *w, unsigned char *superblock, unsigned char *buf,
			   size_t cap)
{
	if (cap < w->meta_size || w->meta_base == 0)
		return nnh5__error(NNH5_ERR_INVALID, "metadata buffer too small");
	encode_superblock(superblock, w);
	encode_meta(buf, w->meta_base, w);
	return NNH5_OK;
}
