/*
 * lib/formats/safetensors.c - safetensors files: a read-only mapped open
 * that hands out tensors as views of the mapping, and the writer.
 *
 * The header is parsed with jansson (integers kept exact as int64, reals
 * apart; its depth and size bounded before it allocates), and every size is
 * bounded by the input's length. Validation follows the reference reader
 * (huggingface/safetensors, safetensors/src/tensor.rs; doc/FORMATS.md).
 */
#include "core/internal.h"
#include "store/atomic.h"
#include "store/regular.h"
#include "nnh5/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER 100000000u
/* serde_json's recursion limit: the 128th nested array or object is refused. */
#define MAX_DEPTH 128
/*
 * Members of arrays and objects in a header or index: jansson allocates
 * every value (48 bytes for an integer, 240 for an empty object, measured
 * with jansson 2.14), so this bounds the tree a hostile header can cost to
 * about 500 MB. No real header comes near (~12 members a tensor).
 */
#define MAX_MEMBERS 2000000u

/* ------------------------------------------------------------ dtypes */

/* The reference's dtype enum, in its order (the writer sorts by it). */
static const struct {
	const char *name;
	int dtype; /* nnh5 dtype, or -1: not representable */
} st_dtypes[] = {
	{ "BOOL", NNH5_BOOL },	   { "F4", -1 },		{ "F6_E2M3", -1 },
	{ "F6_E3M2", -1 },	   { "U8", NNH5_UINT8 },	{ "I8", NNH5_INT8 },
	{ "F8_E5M2", NNH5_FLOAT8_E5M2 }, { "F8_E4M3", NNH5_FLOAT8_E4M3FN }, { "F8_E8M0", -1 },
	{ "F8_E4M3FNUZ", -1 },	   { "F8_E5M2FNUZ", -1 },	{ "I16", NNH5_INT16 },
	{ "U16", NNH5_UINT16 },	   { "F16", NNH5_FLOAT16 },	{ "BF16", NNH5_BFLOAT16 },
	{ "I32", NNH5_INT32 },	   { "U32", NNH5_UINT32 },	{ "F32", NNH5_FLOAT32 },
	{ "C64", NNH5_COMPLEX64 }, { "F64", NNH5_FLOAT64 },	{ "I64", NNH5_INT64 },
	{ "U64", NNH5_UINT64 },
};
#define N_ST_DTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static int st_dtype_index(const char *name)
{
	for (size_t i = 0; i < N_ST_DTYPES; i++)
		if (strcmp(st_dtypes[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int st_index_of_nnh5(nnh5_dtype d)
{
	for (size_t i = 0; i < N_ST_DTYPES; i++)
		if (st_dtypes[i].dtype == (int)d)
			return (int)i;
	return -1;
}

/* ------------------------------------------------------------ reading */

struct st_tensor {
	char *name;
	nnh5_dtype dtype;
	size_t ndim;
	int64_t shape[NNH5_MAX_NDIM];
	uint64_t begin, end;
};

struct nnh5_safetensors {
	char *path;
	const unsigned char *base; /* the file (mapped, or the caller's buffer) */
	size_t size;
	bool mapped;
	uint64_t data_start; /* 8 + N */
	struct st_tensor *t;
	size_t n;
	char **meta_k, **meta_v;
	size_t n_meta;
	size_t copies;
};

static bool has_nul(const char *s, size_t n)
{
	return memchr(s, '\0', n) != NULL;
}

static int cmp_offsets(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Whether the n bytes of JSON at s stay within MAX_DEPTH and MAX_MEMBERS,
 * counted before jansson builds anything (its own depth limit is 2048 and
 * it has no size limit). Exact for valid JSON; on invalid JSON either
 * answer ends in a refusal. Returns NULL, or what is wrong with *at the
 * byte offset.
 */
static const char *json_bounds(const char *s, size_t n, size_t *at)
{
	size_t members = 0;
	int depth = 0;
	bool opened = false, in_string = false;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		/* A container's members: its first one, then one per comma. */
		if ((opened && c != ']' && c != '}') || c == ',')
			members++;
		opened = false;
		if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			opened = true;
			if (++depth >= MAX_DEPTH) {
				*at = i;
				return "nested too deeply";
			}
		} else if (c == ']' || c == '}') {
			depth--;
		}
		if (members > MAX_MEMBERS) {
			*at = i;
			return "more than 2,000,000 values";
		}
	}
	return NULL;
}

/*
 * The JSON text at s (n bytes) into *out (json_decref() it), as serde_json
 * reads it: valid UTF-8, strings without raw control characters or lone
 * surrogates, nothing after the value but whitespace. Stricter: a name
 * given twice in any object, a NUL character in a name (NNH5_ERR_TYPE),
 * an integer outside int64 and a real beyond double's range anywhere are
 * refused. what and path name the input in messages.
 */
static int json_parse(json_t **out, const char *s, size_t n, const char *what, const char *path)
{
	json_error_t e;
	size_t at;
	const char *why = json_bounds(s, n, &at);

	*out = NULL;
	if (why)
		return nnh5__error(NNH5_ERR_FORMAT, "%s '%s': not valid JSON: %s at byte %zu", what,
				   path, why, at);
	/* JSON_ALLOW_NUL: "\u0000" in a value is the readers' to judge (ignored fields keep it). */
	*out = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
	if (*out)
		return NNH5_OK;
	switch (json_error_code(&e)) {
	case json_error_out_of_memory:
		return nnh5__nomem();
	case json_error_invalid_utf8:
		return nnh5__error(NNH5_ERR_FORMAT, "%s '%s': not valid UTF-8 (byte %d)", what, path,
				   e.position);
	case json_error_null_byte_in_key:
		return nnh5__error(NNH5_ERR_TYPE, "%s '%s': a name holds a NUL character", what,
				   path);
	default:
		return nnh5__error(NNH5_ERR_FORMAT, "%s '%s': not valid JSON: %s at byte %d", what,
				   path, e.text, e.position);
	}
}

/* v is an integer in [0, 2^63) (reals such as 1.0 or 1e0 are not), put in *u. */
static bool json_u64(uint64_t *u, const json_t *v)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*u = (uint64_t)json_integer_value(v);
	return true;
}

/* One tensor entry (name already checked); fills t. */
static int parse_entry(nnh5_safetensors *st, struct st_tensor *t, const json_t *v)
{
	const json_t *dt, *shape, *offs;
	size_t ndim;
	int k;

	if (!json_is_object(v))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': not an object",
				   st->path, t->name);
	/* A field given twice was refused by the parse (JSON_REJECT_DUPLICATES). */
	dt = json_object_get(v, "dtype");
	shape = json_object_get(v, "shape");
	offs = json_object_get(v, "data_offsets");
	if (!dt || !shape || !offs)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': tensor '%s': missing dtype, shape or data_offsets",
				   st->path, t->name);
	if (!json_is_string(dt) || (k = st_dtype_index(json_string_value(dt))) < 0 ||
	    has_nul(json_string_value(dt), json_string_length(dt)))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': unknown dtype",
				   st->path, t->name);
	if (!json_is_array(shape))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': shape is not a list",
				   st->path, t->name);
	ndim = json_array_size(shape);
	for (size_t i = 0; i < ndim; i++) {
		uint64_t d;
		if (!json_u64(&d, json_array_get(shape, i)))
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': shape entry %zu is not a "
					   "non-negative integer", st->path, t->name, i);
		/* Below 2^63: jansson keeps int64 only (a larger integer refused the parse). */
		if (i < NNH5_MAX_NDIM)
			t->shape[i] = (int64_t)d;
	}
	if (!json_is_array(offs) || json_array_size(offs) != 2 ||
	    !json_u64(&t->begin, json_array_get(offs, 0)) ||
	    !json_u64(&t->end, json_array_get(offs, 1)))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': tensor '%s': data_offsets is not two "
				   "non-negative integers", st->path, t->name);
	/* Stash what the offset check needs; representability is judged after it. */
	t->dtype = (nnh5_dtype)k; /* the reference's index for now */
	t->ndim = ndim;
	/*
	 * The byte count as the reference computes it, on u64 (its usize):
	 * elements (the first overflow refuses, even if a later dimension is 0),
	 * times the dtype's bits, which must make whole bytes.
	 */
	{
		static const unsigned bits[N_ST_DTYPES] = { 8,  4,  6,  6,  8,	8,  8,	8,  8,	8,  8,
							    16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64 };
		uint64_t ne = 1, nbits;
		for (size_t i = 0; i < ndim; i++) {
			uint64_t d = (uint64_t)json_integer_value(json_array_get(shape, i));
			if (d && ne > UINT64_MAX / d)
				return nnh5__error(NNH5_ERR_FORMAT,
						   "safetensors '%s': tensor '%s': element count overflows",
						   st->path, t->name);
			ne *= d;
		}
		if (ne > UINT64_MAX / bits[k])
			return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': size overflows",
					   st->path, t->name);
		nbits = ne * bits[k];
		if (nbits % 8)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': %llu elements of %s are not "
					   "whole bytes", st->path, t->name, (unsigned long long)ne,
					   st_dtypes[k].name);
		if (t->end < t->begin || t->end - t->begin != nbits / 8)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': data_offsets [%llu, %llu] "
					   "do not hold its %llu bytes", st->path, t->name,
					   (unsigned long long)t->begin, (unsigned long long)t->end,
					   (unsigned long long)(nbits / 8));
	}
	return NNH5_OK;
}

/* root is not const: jansson's iteration takes a json_t *. */
static int parse_header(nnh5_safetensors *st, json_t *root)
{
	json_t *meta, *v;
	const char *key;
	size_t nt;
	int rc;

	if (!json_is_object(root))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': the header is not a JSON object",
				   st->path);
	/* Names given twice and NUL characters in names were refused by the parse. */
	meta = json_object_get(root, "__metadata__");
	nt = json_object_size(root) - (meta != NULL);
	if (json_is_object(meta)) {
		size_t n = json_object_size(meta);
		st->meta_k = nnh5__calloc(n + 1, sizeof(char *));
		st->meta_v = nnh5__calloc(n + 1, sizeof(char *));
		if (!st->meta_k || !st->meta_v)
			return nnh5__nomem();
		/* jansson keeps the file's order. */
		json_object_foreach(meta, key, v) {
			size_t i = st->n_meta;
			if (!json_is_string(v))
				return nnh5__error(NNH5_ERR_FORMAT,
						   "safetensors '%s': __metadata__ value of '%s' is "
						   "not a string", st->path, key);
			if (has_nul(json_string_value(v), json_string_length(v)))
				return nnh5__error(NNH5_ERR_TYPE,
						   "safetensors '%s': __metadata__ holds a NUL character",
						   st->path);
			st->meta_k[i] = nnh5__strdup(key);
			st->meta_v[i] = nnh5__strdup(json_string_value(v));
			st->n_meta++;
			if (!st->meta_k[i] || !st->meta_v[i])
				return nnh5__nomem();
		}
	} else if (meta && !json_is_null(meta)) {
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': __metadata__ is not an object",
				   st->path);
	}
	st->t = nnh5__calloc(nt ? nt : 1, sizeof *st->t);
	if (!st->t)
		return nnh5__nomem();
	json_object_foreach(root, key, v) {
		struct st_tensor *t;
		if (v == meta)
			continue;
		t = &st->t[st->n++];
		t->name = nnh5__strdup(key);
		if (!t->name)
			return nnh5__nomem();
		rc = parse_entry(st, t, v);
		if (rc)
			return rc;
	}
	return NNH5_OK;
}

static int validate(nnh5_safetensors *st, bool lenient)
{
	uint64_t start = 0, data_len = st->size - st->data_start;

	qsort(st->t, st->n, sizeof *st->t, cmp_offsets);
	for (size_t i = 0; i < st->n; i++) {
		struct st_tensor *t = &st->t[i];
		if (t->begin != start || t->end < t->begin)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': data_offsets [%llu, %llu] "
					   "leave a gap or overlap (expected to start at %llu)", st->path,
					   t->name, (unsigned long long)t->begin,
					   (unsigned long long)t->end, (unsigned long long)start);
		start = t->end;
	}
	if (start > data_len || (!lenient && start != data_len))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': the tensors cover %llu bytes of data but the file "
				   "holds %llu after the header", st->path, (unsigned long long)start,
				   (unsigned long long)data_len);
	/* Valid safetensors; now what nnh5 cannot represent. */
	for (size_t i = 0; i < st->n; i++) {
		struct st_tensor *t = &st->t[i];
		int k = (int)t->dtype;
		if (st_dtypes[k].dtype < 0)
			return nnh5__error(NNH5_ERR_TYPE,
					   "safetensors '%s': tensor '%s' has dtype %s, which nnh5 "
					   "does not represent", st->path, t->name, st_dtypes[k].name);
		t->dtype = (nnh5_dtype)st_dtypes[k].dtype;
		if (t->ndim > NNH5_MAX_NDIM)
			return nnh5__error(NNH5_ERR_TYPE,
					   "safetensors '%s': tensor '%s' has rank %zu, above nnh5's %d",
					   st->path, t->name, t->ndim, NNH5_MAX_NDIM);
	}
	return NNH5_OK;
}

static int open_bytes(nnh5_safetensors *st, const nnh5_safetensors_options *opts)
{
	nnh5_safetensors_options def = NNH5_SAFETENSORS_OPTIONS_INIT;
	json_t *root;
	uint64_t n;
	const char *h;
	int rc;

	if (!opts)
		opts = &def;
	if (opts->version != NNH5_SAFETENSORS_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "safetensors '%s': options version %u, expected %u",
				   st->path, opts->version, NNH5_SAFETENSORS_OPTIONS_VERSION);
	if (st->size < 8)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': %zu bytes, too small for the header length",
				   st->path, st->size);
	n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | st->base[i];
	if (n > MAX_HEADER)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': header of %llu bytes, above the 100,000,000 limit",
				   st->path, (unsigned long long)n);
	if (n > st->size - 8)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': header of %llu bytes, but the file has %zu",
				   st->path, (unsigned long long)n, st->size - 8);
	st->data_start = 8 + n;
	h = (const char *)st->base + 8;
	if (!opts->lenient && (n == 0 || h[0] != '{'))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': the header does not start with '{' (a lenient "
				   "open accepts whitespace before it)", st->path);
	/* jansson checks UTF-8 as strictly as the reference (no overlongs or surrogates). */
	rc = json_parse(&root, h, (size_t)n, "safetensors header", st->path);
	if (rc)
		return rc;
	rc = parse_header(st, root);
	json_decref(root);
	if (!rc)
		rc = validate(st, opts->lenient);
	return rc;
}

static int new_handle(nnh5_safetensors **out, const char *name)
{
	nnh5_safetensors *st = nnh5__calloc(1, sizeof *st);

	*out = NULL;
	if (!st)
		return nnh5__nomem();
	st->path = nnh5__strdup(name ? name : "(buffer)");
	if (!st->path) {
		nnh5__free(st);
		return nnh5__nomem();
	}
	*out = st;
	return NNH5_OK;
}

int nnh5_safetensors_open_buffer(nnh5_safetensors **out, const void *data, size_t size,
				 const char *name, const nnh5_safetensors_options *opts)
{
	int rc = new_handle(out, name);

	if (rc)
		return rc;
	(*out)->base = data;
	(*out)->size = size;
	rc = open_bytes(*out, opts);
	if (rc) {
		nnh5_safetensors_close(*out);
		*out = NULL;
	}
	return rc;
}

int nnh5_safetensors_open(nnh5_safetensors **out, const char *path,
			  const nnh5_safetensors_options *opts)
{
	nnh5__regular r;
	struct stat sb;
	void *m;
	int rc = new_handle(out, path);

	if (rc)
		return rc;
	rc = nnh5__regular_open(&r, path, "safetensors open");
	if (rc)
		goto fail;
	if (fstat(r.fd, &sb) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "safetensors '%s': stat: %s", path, strerror(errno));
		nnh5__regular_close(&r);
		goto fail;
	}
	(*out)->size = (size_t)sb.st_size;
	if (sb.st_size > 0) {
		m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, r.fd, 0);
		if (m == MAP_FAILED) {
			rc = nnh5__error(NNH5_ERR_IO, "safetensors '%s': mmap: %s", path,
					 strerror(errno));
			nnh5__regular_close(&r);
			goto fail;
		}
		(*out)->base = m;
		(*out)->mapped = true;
	}
	nnh5__regular_close(&r);
	rc = open_bytes(*out, opts);
	if (!rc)
		return NNH5_OK;
fail:
	nnh5_safetensors_close(*out);
	*out = NULL;
	return rc;
}

void nnh5_safetensors_close(nnh5_safetensors *st)
{
	if (!st)
		return;
	if (st->mapped)
		munmap((void *)(uintptr_t)st->base, st->size);
	for (size_t i = 0; i < st->n; i++)
		nnh5__free(st->t[i].name);
	for (size_t i = 0; i < st->n_meta; i++) {
		nnh5__free(st->meta_k[i]);
		nnh5__free(st->meta_v[i]);
	}
	nnh5__free(st->meta_k);
	nnh5__free(st->meta_v);
	nnh5__free(st->t);
	nnh5__free(st->path);
	nnh5__free(st);
}

size_t nnh5_safetensors_len(const nnh5_safetensors *st) { return st->n; }
const char *nnh5_safetensors_name(const nnh5_safetensors *st, size_t i)
{
	return i < st->n ? st->t[i].name : NULL;
}
size_t nnh5_safetensors_copies(const nnh5_safetensors *st) { return st->copies; }
size_t nnh5_safetensors_metadata_len(const nnh5_safetensors *st) { return st->n_meta; }
const char *nnh5_safetensors_metadata_key(const nnh5_safetensors *st, size_t i)
{
	return i < st->n_meta ? st->meta_k[i] : NULL;
}
const char *nnh5_safetensors_metadata_value(const nnh5_safetensors *st, size_t i)
{
	return i < st->n_meta ? st->meta_v[i] : NULL;
}

const char *nnh5_safetensors_metadata_get(const nnh5_safetensors *st, const char *key)
{
	for (size_t i = 0; i < st->n_meta; i++)
		if (strcmp(st->meta_k[i], key) == 0)
			return st->meta_v[i];
	return NULL;
}

/* Tensor i as a view of the mapping, or a counted copy when it is not aligned. */
static int get_at(nnh5_tensor **out, nnh5_safetensors *st, size_t i)
{
	const struct st_tensor *t = &st->t[i];
	const unsigned char *p = st->base + st->data_start + t->begin;
	size_t nbytes = (size_t)(t->end - t->begin);
	int rc;

	/* An empty tensor has no elements to align: a view (of nothing) too. */
	if (nbytes == 0 || (uintptr_t)p % nnh5_dtype_size((int)t->dtype) == 0)
		return nnh5_tensor_view_const(out, t->dtype, t->ndim, t->shape, nbytes ? p : NULL,
					      nbytes);
	/* Element accessors need aligned data: a copy, counted. */
	rc = nnh5_tensor_new(out, t->dtype, t->ndim, t->shape);
	if (rc)
		return rc;
	memcpy(nnh5_tensor_mutable_data(*out), p, nbytes);
	st->copies++;
	return NNH5_OK;
}

int nnh5_safetensors_get(nnh5_tensor **out, nnh5_safetensors *st, const char *name)
{
	*out = NULL;
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->t[i].name, name) == 0)
			return get_at(out, st, i);
	return nnh5__error(NNH5_ERR_NOT_FOUND, "safetensors '%s': no tensor '%s'", st->path, name);
}

int nnh5_safetensors_load(nnh5_dict **out, const char *path, const nnh5_safetensors_options *opts)
{
	nnh5_safetensors *st;
	nnh5_dict *d = NULL;
	int rc;

	*out = NULL;
	rc = nnh5_safetensors_open(&st, path, opts);
	if (rc)
		return rc;
	rc = nnh5_dict_new(&d);
	for (size_t i = 0; !rc && i < st->n; i++) {
		nnh5_tensor *v, *c = NULL;
		rc = get_at(&v, st, i);
		if (!rc) {
			rc = nnh5_tensor_clone(&c, v);
			nnh5_tensor_free(v);
		}
		if (!rc) {
			rc = nnh5_dict_set(d, st->t[i].name, c);
			if (rc)
				nnh5_tensor_free(c);
		}
	}
	nnh5_safetensors_close(st);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

/* ------------------------------------------------------------ writing */

/* s's characters escaped as serde_json escapes them (no quotes around). */
static void json_str_tail(nnh5__strbuf *sb, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char *shortf = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
				   : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
				   : c == '\f' ? "\\f" : NULL;
		if (shortf)
			nnh5__strbuf_puts(sb, shortf);
		else if (c < 0x20)
			nnh5__strbuf_printf(sb, "\\u%04x", c);
		else
			nnh5__strbuf_putn(sb, (const char *)&c, 1);
	}
}

static void json_str(nnh5__strbuf *sb, const char *s)
{
	nnh5__strbuf_putn(sb, "\"", 1);
	json_str_tail(sb, s);
	nnh5__strbuf_putn(sb, "\"", 1);
}

struct wentry {
	const char *name;
	const nnh5_tensor *t;
	int k; /* reference dtype index */
};

static int cmp_wentry(const void *a, const void *b)
{
	const struct wentry *x = a, *y = b;

	if (x->k != y->k)
		return x->k > y->k ? -1 : 1; /* descending dtype order */
	return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Replace path atomically (store/atomic.c) with the nhead bytes at head
 * followed by the data of the n tensors e.
 */
static int atomic_write(const char *path, const char *head, size_t nhead, const struct wentry *e,
			size_t n)
{
	nnh5__atomic a;
	int fd, rc;

	rc = nnh5__atomic_begin(&a, path, true);
	if (rc)
		return rc;
	fd = open(a.tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': %s", path, strerror(errno));
		goto abort;
	}
	rc = nnh5__atomic_adopt(&a, fd);
	if (rc)
		goto abort;
	if (write_all(fd, head, nhead) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': write: %s", path, strerror(errno));
		goto abort;
	}
	for (size_t i = 0; i < n; i++) {
		size_t nb = nnh5_tensor_nbytes(e[i].t);
		if (nb && write_all(fd, nnh5_tensor_data(e[i].t), nb) < 0) {
			rc = nnh5__error(NNH5_ERR_IO, "save '%s': writing tensor '%s': %s", path,
					 e[i].name, strerror(errno));
			goto abort;
		}
	}
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': close: %s", path, strerror(errno));
		goto abort;
	}
	return nnh5__atomic_commit(&a);
abort:
	if (fd >= 0)
		close(fd);
	nnh5__atomic_abort(&a);
	return rc;
}

/* The entries of sd, checked: every dtype has a safetensors name, no tensor is called __metadata__. */
static int collect(struct wentry **out, const nnh5_dict *sd, const char *path, size_t n_meta,
		   const char *const *meta_keys, const char *const *meta_values)
{
	size_t n = nnh5_dict_len(sd);
	struct wentry *e;
	int rc = NNH5_OK;

	*out = NULL;
	for (size_t i = 0; i < n_meta; i++)
		if (!meta_keys || !meta_values || !meta_keys[i] || !meta_values[i])
			return nnh5__error(NNH5_ERR_INVALID, "safetensors save '%s': metadata entry %zu is NULL",
					   path, i);
	e = nnh5__calloc(n ? n : 1, sizeof *e);
	if (!e)
		return nnh5__nomem();
	for (size_t i = 0; i < n; i++) {
		e[i].name = nnh5_dict_key(sd, i);
		e[i].t = nnh5_dict_value(sd, i);
		e[i].k = st_index_of_nnh5(nnh5_tensor_dtype(e[i].t));
		if (e[i].k < 0) {
			rc = nnh5__error(NNH5_ERR_TYPE,
					 "safetensors save '%s': tensor '%s' is %s, which safetensors "
					 "has no dtype for", path, e[i].name,
					 nnh5_dtype_name((int)nnh5_tensor_dtype(e[i].t)));
			break;
		}
		if (strcmp(e[i].name, "__metadata__") == 0) {
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "safetensors save '%s': a tensor cannot be named __metadata__",
					 path);
			break;
		}
	}
	if (rc) {
		nnh5__free(e);
		return rc;
	}
	*out = e;
	return NNH5_OK;
}

/* One safetensors file of the n tensors e (sorted here, as the reference writer sorts). */
static int write_file(const char *path, struct wentry *e, size_t n, size_t n_meta,
		      const char *const *meta_keys, const char *const *meta_values)
{
	nnh5__strbuf sb = { 0 };
	uint64_t off = 0, hlen;
	int rc;

	qsort(e, n, sizeof *e, cmp_wentry);
	nnh5__strbuf_putn(&sb, "01234567{", 9); /* the length is filled in below */
	if (n_meta) {
		nnh5__strbuf_puts(&sb, "\"__metadata__\":{");
		for (size_t i = 0; i < n_meta; i++) {
			if (i)
				nnh5__strbuf_putn(&sb, ",", 1);
			json_str(&sb, meta_keys[i]);
			nnh5__strbuf_putn(&sb, ":", 1);
			json_str(&sb, meta_values[i]);
		}
		nnh5__strbuf_putn(&sb, "}", 1);
	}
	for (size_t i = 0; i < n; i++) {
		size_t nd = nnh5_tensor_ndim(e[i].t), nb = nnh5_tensor_nbytes(e[i].t);
		if (i || n_meta)
			nnh5__strbuf_putn(&sb, ",", 1);
		json_str(&sb, e[i].name);
		nnh5__strbuf_printf(&sb, ":{\"dtype\":\"%s\",\"shape\":[", st_dtypes[e[i].k].name);
		for (size_t d = 0; d < nd; d++)
			nnh5__strbuf_printf(&sb, "%s%lld", d ? "," : "",
					    (long long)nnh5_tensor_dim(e[i].t, d));
		nnh5__strbuf_printf(&sb, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
				    (unsigned long long)(off + nb));
		off += nb;
	}
	nnh5__strbuf_putn(&sb, "}", 1);
	while (sb.len % 8) /* 8 + the header: the data starts 8-aligned */
		nnh5__strbuf_putn(&sb, " ", 1);
	if (sb.oom) {
		nnh5__free(sb.p);
		return nnh5__nomem();
	}
	hlen = sb.len - 8;
	if (hlen > MAX_HEADER) {
		nnh5__free(sb.p);
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': a header of %llu bytes is above the format's "
				   "100,000,000", path, (unsigned long long)hlen);
	}
	for (int i = 0; i < 8; i++)
		sb.p[i] = (char)(unsigned char)(hlen >> (8 * i));
	rc = atomic_write(path, sb.p, sb.len, e, n);
	nnh5__free(sb.p);
	return rc;
}

int nnh5_safetensors_save(const char *path, const nnh5_dict *sd, size_t n_meta,
			  const char *const *meta_keys, const char *const *meta_values)
{
	struct wentry *e;
	int rc = collect(&e, sd, path, n_meta, meta_keys, meta_values);

	if (rc)
		return rc;
	rc = write_file(path, e, nnh5_dict_len(sd), n_meta, meta_keys, meta_values);
	nnh5__free(e);
	return rc;
}

/* ------------------------------------------------------------ folders */

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define DEFAULT_SHARD ((uint64_t)5000000000u) /* Hugging Face's default, 5 GB */

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = nnh5__malloc(n);

	if (p)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Python's json.dumps string (ensure_ascii): what transformers writes in the index. */
static void json_str_ascii(nnh5__strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	nnh5__strbuf_putn(sb, "\"", 1);
	while (*p) {
		unsigned cp = *p;
		size_t len = 1;
		if (cp >= 0x80) {
			/* valid UTF-8 (dict keys are checked on insertion) */
			len = cp >= 0xf0 ? 4 : cp >= 0xe0 ? 3 : 2;
			cp &= len == 4 ? 0x07u : len == 3 ? 0x0fu : 0x1fu;
			for (size_t i = 1; i < len; i++)
				cp = (cp << 6) | (p[i] & 0x3fu);
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			nnh5__strbuf_printf(sb, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
		} else if (cp >= 0x80) {
			nnh5__strbuf_printf(sb, "\\u%04x", cp);
		} else {
			char c[2] = { (char)cp, 0 };
			json_str_tail(sb, c);
		}
		p += len;
	}
	nnh5__strbuf_putn(sb, "\"", 1);
}

int nnh5_safetensors_save_folder(const char *dir, const nnh5_dict *sd, uint64_t max_shard_bytes,
				 size_t n_meta, const char *const *meta_keys,
				 const char *const *meta_values)
{
	size_t n = nnh5_dict_len(sd), ngroups = 0, nshards = 0, open_group = SIZE_MAX;
	struct wentry *e = NULL, *part = NULL;
	size_t *group = NULL, *final = NULL, *sorted = NULL;
	uint64_t cur = 0, total = 0;
	nnh5__strbuf sb = { 0 };
	char name[64], *path = NULL;
	int rc;

	if (max_shard_bytes == 0)
		max_shard_bytes = DEFAULT_SHARD;
	rc = collect(&e, sd, dir, n_meta, meta_keys, meta_values);
	if (rc)
		return rc;
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		rc = nnh5__error(NNH5_ERR_IO, "safetensors save '%s': cannot create the folder: %s",
				 dir, strerror(errno));
		goto done;
	}
	group = nnh5__calloc(n + 1, sizeof *group);
	final = nnh5__calloc(n + 1, sizeof *final);
	sorted = nnh5__calloc(n + 1, sizeof *sorted);
	part = nnh5__calloc(n + 1, sizeof *part);
	if (!group || !final || !sorted || !part) {
		rc = nnh5__nomem();
		goto done;
	}
	/*
	 * Shards as huggingface_hub splits a state dict: in the dict's order, a
	 * tensor that would tip the open shard over the limit closes it and
	 * opens another; a tensor larger than the limit is a shard of its own at
	 * once. Shards are numbered in the order they are closed.
	 */
	for (size_t i = 0; i < n; i++) {
		uint64_t nb = nnh5_tensor_nbytes(e[i].t);
		total += nb;
		if (nb > max_shard_bytes) {
			group[i] = ngroups;
			final[ngroups++] = nshards++;
			continue;
		}
		if (open_group != SIZE_MAX && cur + nb > max_shard_bytes) {
			final[open_group] = nshards++;
			open_group = SIZE_MAX;
		}
		if (open_group == SIZE_MAX) {
			open_group = ngroups++;
			cur = 0;
		}
		group[i] = open_group;
		cur += nb;
	}
	if (open_group != SIZE_MAX)
		final[open_group] = nshards++;
	if (nshards <= 1) {
		/* One shard: model.safetensors and no index, as save_pretrained does. */
		path = join(dir, SINGLE_NAME);
		rc = path ? write_file(path, e, n, n_meta, meta_keys, meta_values) : nnh5__nomem();
		goto done;
	}
	for (size_t s = 0; s < nshards; s++) {
		size_t np = 0;
		for (size_t i = 0; i < n; i++)
			if (final[group[i]] == s)
				part[np++] = e[i];
		snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, nshards);
		nnh5__free(path);
		path = join(dir, name);
		rc = path ? write_file(path, part, np, n_meta, meta_keys, meta_values) : nnh5__nomem();
		if (rc)
			goto done;
	}
	/* The index as transformers writes it: json.dumps(indent=2, sort_keys=True) + "\n". */
	for (size_t i = 0; i < n; i++)
		sorted[i] = i;
	for (size_t i = 1; i < n; i++) /* insertion sort by name: n is a model's tensor count */
		for (size_t j = i; j > 0 && strcmp(e[sorted[j - 1]].name, e[sorted[j]].name) > 0; j--) {
			size_t t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	nnh5__strbuf_printf(&sb, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
				 "  \"weight_map\": {", (unsigned long long)total);
	for (size_t k = 0; k < n; k++) {
		size_t i = sorted[k];
		nnh5__strbuf_puts(&sb, k ? ",\n    " : "\n    ");
		json_str_ascii(&sb, e[i].name);
		nnh5__strbuf_printf(&sb, ": \"model-%05zu-of-%05zu.safetensors\"", final[group[i]] + 1,
				    nshards);
	}
	nnh5__strbuf_puts(&sb, n ? "\n  }\n}\n" : "}\n}\n");
	nnh5__free(path);
	path = join(dir, INDEX_NAME);
	if (!path || sb.oom)
		rc = nnh5__nomem();
	else
		rc = atomic_write(path, sb.p, sb.len, NULL, 0);
done:
	nnh5__free(sb.p);
	nnh5__free(path);
	nnh5__free(group);
	nnh5__free(final);
	nnh5__free(sorted);
	nnh5__free(part);
	nnh5__free(e);
	return rc;
}

/* A shard's name from the index: a plain file name in the folder, nothing that leaves it. */
static bool plain_name(const json_t *v)
{
	const char *s = json_string_value(v);

	return s && s[0] && !has_nul(s, json_string_length(v)) && !strchr(s, '/') && s[0] != '.';
}

/* The index file's bytes (at most MAX_HEADER), NUL-terminated. */
static int read_index(char **out, size_t *len, const char *path)
{
	nnh5__regular r;
	struct stat sb;
	char *buf;
	size_t got = 0;
	int rc = nnh5__regular_open(&r, path, "safetensors folder");

	*out = NULL;
	if (rc)
		return rc;
	if (fstat(r.fd, &sb) < 0 || sb.st_size > (off_t)MAX_HEADER) {
		nnh5__regular_close(&r);
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors index '%s': unreadable or larger than "
				   "100,000,000 bytes", path);
	}
	buf = nnh5__malloc((size_t)sb.st_size + 1);
	if (!buf) {
		nnh5__regular_close(&r);
		return nnh5__nomem();
	}
	while (got < (size_t)sb.st_size) {
		ssize_t k = read(r.fd, buf + got, (size_t)sb.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	nnh5__regular_close(&r);
	if (got != (size_t)sb.st_size) {
		nnh5__free(buf);
		return nnh5__error(NNH5_ERR_IO, "safetensors index '%s': short read", path);
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return NNH5_OK;
}

/* Check the index and list its shards (sorted, distinct) into *shards. */
static int parse_index(json_t *root, const char *path, json_t **wm,
		       const char ***shards, size_t *nshards)
{
	json_t *meta, *v;
	const char **sh, *key;
	size_t ns = 0;

	*shards = NULL;
	*nshards = 0;
	if (!json_is_object(root))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors index '%s': not a JSON object", path);
	/* Names given twice were refused by the parse. */
	*wm = json_object_get(root, "weight_map");
	meta = json_object_get(root, "metadata");
	if (!json_is_object(*wm) || (meta && !json_is_object(meta) && !json_is_null(meta)))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors index '%s': needs one \"weight_map\" object (and "
				   "\"metadata\", if given, an object)", path);
	sh = nnh5__calloc(json_object_size(*wm) + 1, sizeof *sh);
	if (!sh)
		return nnh5__nomem();
	json_object_foreach(*wm, key, v) {
		if (!plain_name(v)) {
			nnh5__free(sh);
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors index '%s': tensor '%s': the shard is not a "
					   "file name in the folder", path, key);
		}
		sh[ns++] = json_string_value(v);
	}
	qsort(sh, ns, sizeof *sh, cmp_names);
	*nshards = 0;
	for (size_t i = 0; i < ns; i++)
		if (i == 0 || strcmp(sh[i], sh[*nshards - 1]) != 0)
			sh[(*nshards)++] = sh[i];
	*shards = sh;
	return NNH5_OK;
}

/* The shard weight_map gives for name, or NULL. */
static const char *shard_of(const json_t *wm, const char *name)
{
	return json_string_value(json_object_get(wm, name));
}

/* Every tensor of the shard at path into d (copies), each checked against the index. */
static int load_shard(nnh5_dict *d, const char *path, const char *shard, const json_t *wm,
		      const char *index, const nnh5_safetensors_options *opts, size_t *found)
{
	nnh5_safetensors *st;
	int rc = nnh5_safetensors_open(&st, path, opts);

	for (size_t i = 0; !rc && i < st->n; i++) {
		const char *name = st->t[i].name, *want = shard_of(wm, name);
		nnh5_tensor *v, *c = NULL;
		if (!want || strcmp(want, shard) != 0) {
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "safetensors folder: tensor '%s' is in '%s' but the index "
					 "'%s' puts it %s%s", name, path, index, want ? "in " : "nowhere",
					 want ? want : "");
			break;
		}
		rc = get_at(&v, st, i);
		if (!rc) {
			rc = nnh5_tensor_clone(&c, v);
			nnh5_tensor_free(v);
		}
		if (!rc) {
			rc = nnh5_dict_set(d, name, c);
			if (rc)
				nnh5_tensor_free(c);
			else
				(*found)++;
		}
	}
	if (st)
		nnh5_safetensors_close(st);
	return rc;
}

int nnh5_safetensors_load_folder(nnh5_dict **out, const char *dir,
				 const nnh5_safetensors_options *opts)
{
	char *index = join(dir, INDEX_NAME), *text = NULL, *path = NULL;
	json_t *root = NULL;
	json_t *wm = NULL, *v;
	const char **shards = NULL, *key;
	size_t len = 0, nshards = 0, found = 0;
	nnh5_dict *d = NULL;
	struct stat sb;
	int rc;

	*out = NULL;
	if (!index)
		return nnh5__nomem();
	if (stat(index, &sb) < 0 && errno == ENOENT) {
		/* No index: one model.safetensors, as save_pretrained writes a single shard. */
		path = join(dir, SINGLE_NAME);
		rc = path ? nnh5_safetensors_load(out, path, opts) : nnh5__nomem();
		goto done;
	}
	rc = read_index(&text, &len, index);
	if (rc)
		goto done;
	rc = json_parse(&root, text, len, "safetensors index", index);
	if (rc)
		goto done;
	rc = parse_index(root, index, &wm, &shards, &nshards);
	if (!rc)
		rc = nnh5_dict_new(&d);
	for (size_t s = 0; !rc && s < nshards; s++) {
		nnh5__free(path);
		path = join(dir, shards[s]);
		rc = path ? load_shard(d, path, shards[s], wm, index, opts, &found) : nnh5__nomem();
	}
	if (!rc && found != json_object_size(wm)) {
		json_object_foreach(wm, key, v) {
			if (!nnh5_dict_get(d, key)) {
				rc = nnh5__error(NNH5_ERR_FORMAT,
						 "safetensors folder: the index '%s' puts tensor '%s' in "
						 "'%s', which does not hold it", index, key,
						 json_string_value(v));
				break;
			}
		}
	}
	if (!rc) {
		*out = d;
		d = NULL;
	}
done:
	nnh5_dict_free(d);
	json_decref(root);
	nnh5__free(shards);
	nnh5__free(text);
	nnh5__free(path);
	nnh5__free(index);
	return rc;
}
