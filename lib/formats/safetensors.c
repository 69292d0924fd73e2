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
#include "store/h5util.h"
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

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;

	while (n) {
		ssize_t w = pwrite(fd, c, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/*
 * Start replacing path atomically (store/atomic.c): *fd is the temporary
 * file, open for writing, with the target's mode and owner.
 */
static int atomic_open(nnh5__atomic *a, int *fd, const char *path)
{
	int rc = nnh5__atomic_begin(a, path, true);

	*fd = -1;
	if (rc)
		return rc;
	*fd = open(a->tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (*fd < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': %s", path, strerror(errno));
		nnh5__atomic_abort(a);
		return rc;
	}
	rc = nnh5__atomic_adopt(a, *fd);
	if (rc) {
		close(*fd);
		*fd = -1;
		nnh5__atomic_abort(a);
	}
	return rc;
}

/* Close fd and put the temporary file in place of the target; on failure nothing is replaced. */
static int atomic_close(nnh5__atomic *a, int fd, const char *path)
{
	if (close(fd) < 0) {
		int rc = nnh5__error(NNH5_ERR_IO, "save '%s': close: %s", path, strerror(errno));
		nnh5__atomic_abort(a);
		return rc;
	}
	return nnh5__atomic_commit(a);
}

/* Replace path atomically with the n bytes at p (the folder index). */
static int atomic_write(const char *path, const char *p, size_t n)
{
	nnh5__atomic a;
	int fd, rc = atomic_open(&a, &fd, path);

	if (rc)
		return rc;
	if (write_all(fd, p, n, 0) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': write: %s", path, strerror(errno));
		close(fd);
		nnh5__atomic_abort(&a);
		return rc;
	}
	return atomic_close(&a, fd, path);
}

/* One declared tensor of a writer. */
struct wslot {
	char *name;
	nnh5_dtype dtype;
	size_t ndim;
	int64_t shape[NNH5_MAX_NDIM];
	int k;          /* reference dtype index */
	uint64_t begin; /* offset in the data buffer */
	uint64_t nbytes;
	bool put;
};

struct nnh5_safetensors_writer {
	char *path;
	nnh5__atomic a;
	int fd;         /* the temporary file; -1 before the atomic save began */
	uint64_t data_start;
	struct wslot *s; /* in the reference order: the file's order */
	struct wslot **by_name;
	size_t n, missing;
	int failed;     /* the status of a failed write: the file is incomplete */
};

static int cmp_wslot(const void *a, const void *b)
{
	const struct wslot *x = a, *y = b;

	if (x->k != y->k)
		return x->k > y->k ? -1 : 1; /* descending dtype order */
	return strcmp(x->name, y->name);
}

static int cmp_wslot_name(const void *a, const void *b)
{
	const struct wslot *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* Check one declared tensor and copy it into s. */
static int declare(struct wslot *s, const char *path, size_t i, const char *name, nnh5_dtype dtype,
		   size_t ndim, const int64_t *shape)
{
	size_t numel, nbytes;
	char msg[512];

	if (!name)
		return nnh5__error(NNH5_ERR_INVALID, "safetensors save '%s': tensor %zu has no name",
				   path, i);
	if (strcmp(name, "__metadata__") == 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': a tensor cannot be named __metadata__", path);
	if (!nnh5__utf8_valid(name))
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': tensor %zu's name is not valid UTF-8", path, i);
	s->k = nnh5_dtype_valid((int)dtype) ? st_index_of_nnh5(dtype) : -1;
	if (s->k < 0)
		return nnh5__error(NNH5_ERR_TYPE,
				   "safetensors save '%s': tensor '%s' is %s, which safetensors has no "
				   "dtype for", path, name, nnh5_dtype_name((int)dtype));
	if (ndim > NNH5_MAX_NDIM || (ndim && !shape) ||
	    nnh5__shape_size(dtype, ndim, shape, &numel, &nbytes)) {
		snprintf(msg, sizeof msg, "%s",
			 ndim > NNH5_MAX_NDIM || (ndim && !shape) ? "no shape"
								  : nnh5_error_message());
		return nnh5__error(NNH5_ERR_SHAPE, "safetensors save '%s': tensor '%s': %s", path,
				   name, msg);
	}
	s->name = nnh5__strdup(name);
	if (!s->name)
		return nnh5__nomem();
	s->dtype = dtype;
	s->ndim = ndim;
	if (ndim)
		memcpy(s->shape, shape, ndim * sizeof *shape);
	s->nbytes = nbytes;
	return NNH5_OK;
}

/* The header as the reference writer makes it: compact JSON, padded with spaces to 8. */
static int make_header(nnh5__strbuf *sb, const nnh5_safetensors_writer *w, size_t n_meta,
		       const char *const *meta_keys, const char *const *meta_values)
{
	uint64_t hlen;

	nnh5__strbuf_putn(sb, "01234567{", 9); /* the length is filled in below */
	if (n_meta) {
		nnh5__strbuf_puts(sb, "\"__metadata__\":{");
		for (size_t i = 0; i < n_meta; i++) {
			if (i)
				nnh5__strbuf_putn(sb, ",", 1);
			json_str(sb, meta_keys[i]);
			nnh5__strbuf_putn(sb, ":", 1);
			json_str(sb, meta_values[i]);
		}
		nnh5__strbuf_putn(sb, "}", 1);
	}
	for (size_t i = 0; i < w->n; i++) {
		const struct wslot *s = &w->s[i];
		if (i || n_meta)
			nnh5__strbuf_putn(sb, ",", 1);
		json_str(sb, s->name);
		nnh5__strbuf_printf(sb, ":{\"dtype\":\"%s\",\"shape\":[", st_dtypes[s->k].name);
		for (size_t d = 0; d < s->ndim; d++)
			nnh5__strbuf_printf(sb, "%s%lld", d ? "," : "", (long long)s->shape[d]);
		nnh5__strbuf_printf(sb, "],\"data_offsets\":[%llu,%llu]}",
				    (unsigned long long)s->begin,
				    (unsigned long long)(s->begin + s->nbytes));
	}
	nnh5__strbuf_putn(sb, "}", 1);
	while (sb->len % 8) /* 8 + the header: the data starts 8-aligned */
		nnh5__strbuf_putn(sb, " ", 1);
	if (sb->oom)
		return nnh5__nomem();
	hlen = sb->len - 8;
	if (hlen > MAX_HEADER)
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': a header of %llu bytes is above the format's "
				   "100,000,000", w->path, (unsigned long long)hlen);
	for (int i = 0; i < 8; i++)
		sb->p[i] = (char)(unsigned char)(hlen >> (8 * i));
	return NNH5_OK;
}

void nnh5_safetensors_writer_discard(nnh5_safetensors_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		nnh5__atomic_abort(&w->a);
	}
	for (size_t i = 0; i < w->n; i++)
		nnh5__free(w->s[i].name);
	nnh5__free(w->s);
	nnh5__free(w->by_name);
	nnh5__free(w->path);
	nnh5__free(w);
}

/*
 * A writer for n declared tensors, every one checked (name, dtype, shape,
 * duplicates) and placed in the reference order, with no file yet.
 */
static int writer_new(nnh5_safetensors_writer **out, const char *path, size_t n,
		      const char *const *names, const nnh5_dtype *dtypes, const size_t *ndims,
		      const int64_t *const *shapes, size_t n_meta, const char *const *meta_keys,
		      const char *const *meta_values)
{
	nnh5_safetensors_writer *w;
	uint64_t off = 0;
	int rc = NNH5_OK;

	*out = NULL;
	if (!path)
		return nnh5__error(NNH5_ERR_INVALID, "safetensors save: no path");
	for (size_t i = 0; i < n_meta; i++) {
		if (!meta_keys || !meta_values || !meta_keys[i] || !meta_values[i])
			return nnh5__error(NNH5_ERR_INVALID,
					   "safetensors save '%s': metadata entry %zu is NULL", path, i);
		if (!nnh5__utf8_valid(meta_keys[i]) || !nnh5__utf8_valid(meta_values[i]))
			return nnh5__error(NNH5_ERR_INVALID,
					   "safetensors save '%s': metadata entry %zu is not valid UTF-8",
					   path, i);
	}
	if (n && (!names || !dtypes || !ndims || !shapes))
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': %zu tensors declared without their names, "
				   "dtypes or shapes", path, n);
	w = nnh5__calloc(1, sizeof *w);
	if (!w)
		return nnh5__nomem();
	w->fd = -1;
	w->path = nnh5__strdup(path);
	w->s = nnh5__calloc(n ? n : 1, sizeof *w->s);
	w->by_name = nnh5__calloc(n ? n : 1, sizeof *w->by_name);
	if (!w->path || !w->s || !w->by_name) {
		rc = nnh5__nomem();
		goto fail;
	}
	for (; w->n < n; w->n++) {
		rc = declare(&w->s[w->n], path, w->n, names[w->n], dtypes[w->n], ndims[w->n],
			     shapes[w->n]);
		if (rc)
			goto fail;
	}
	qsort(w->s, n, sizeof *w->s, cmp_wslot);
	for (size_t i = 0; i < n; i++) {
		if (w->s[i].nbytes > UINT64_MAX - off) {
			rc = nnh5__error(NNH5_ERR_OVERFLOW, "safetensors save '%s': the tensors' "
					 "sizes overflow", path);
			goto fail;
		}
		w->s[i].begin = off;
		off += w->s[i].nbytes;
		w->by_name[i] = &w->s[i];
	}
	qsort(w->by_name, n, sizeof *w->by_name, cmp_wslot_name);
	for (size_t i = 1; i < n; i++)
		if (strcmp(w->by_name[i - 1]->name, w->by_name[i]->name) == 0) {
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "safetensors save '%s': tensor '%s' is declared twice", path,
					 w->by_name[i]->name);
			goto fail;
		}
	w->missing = n;
	*out = w;
	return NNH5_OK;
fail:
	nnh5_safetensors_writer_discard(w);
	return rc;
}

int nnh5_safetensors_writer_open(nnh5_safetensors_writer **out, const char *path, size_t n,
				 const char *const *names, const nnh5_dtype *dtypes,
				 const size_t *ndims, const int64_t *const *shapes, size_t n_meta,
				 const char *const *meta_keys, const char *const *meta_values)
{
	nnh5_safetensors_writer *w;
	nnh5__strbuf sb = { 0 };
	int rc = writer_new(&w, path, n, names, dtypes, ndims, shapes, n_meta, meta_keys,
			    meta_values);

	*out = NULL;
	if (rc)
		return rc;
	rc = make_header(&sb, w, n_meta, meta_keys, meta_values);
	if (rc)
		goto fail;
	w->data_start = sb.len;
	rc = atomic_open(&w->a, &w->fd, path);
	if (rc)
		goto fail;
	if (write_all(w->fd, sb.p, sb.len, 0) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': write: %s", path, strerror(errno));
		goto fail;
	}
	nnh5__free(sb.p);
	*out = w;
	return NNH5_OK;
fail:
	nnh5__free(sb.p);
	nnh5_safetensors_writer_discard(w);
	return rc;
}

int nnh5_safetensors_writer_put(nnh5_safetensors_writer *w, const char *name, const nnh5_tensor *t)
{
	struct wslot key, *kp = &key, **found;
	struct wslot *s;
	char a[128], b[128];

	if (w->failed)
		return nnh5__error(w->failed, "safetensors save '%s': an earlier write failed",
				   w->path);
	if (!name || !t)
		return nnh5__error(NNH5_ERR_INVALID, "safetensors save '%s': put without a %s",
				   w->path, name ? "tensor" : "name");
	key.name = (char *)(uintptr_t)name;
	found = bsearch(&kp, w->by_name, w->n, sizeof *w->by_name, cmp_wslot_name);
	if (!found)
		return nnh5__error(NNH5_ERR_NOT_FOUND,
				   "safetensors save '%s': tensor '%s' was not declared", w->path, name);
	s = *found;
	if (s->put)
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': tensor '%s' was written already", w->path,
				   name);
	if (nnh5_tensor_dtype(t) != s->dtype)
		return nnh5__error(NNH5_ERR_TYPE,
				   "safetensors save '%s': tensor '%s' is %s, declared %s", w->path,
				   name, nnh5_dtype_name((int)nnh5_tensor_dtype(t)),
				   nnh5_dtype_name((int)s->dtype));
	if (nnh5_tensor_ndim(t) != s->ndim ||
	    (s->ndim && memcmp(nnh5_tensor_shape(t), s->shape, s->ndim * sizeof *s->shape)))
		return nnh5__error(NNH5_ERR_SHAPE,
				   "safetensors save '%s': tensor '%s' has shape %s, declared %s",
				   w->path, name,
				   nnh5__shape_str(a, sizeof a, nnh5_tensor_ndim(t), nnh5_tensor_shape(t)),
				   nnh5__shape_str(b, sizeof b, s->ndim, s->shape));
	if (s->nbytes &&
	    write_all(w->fd, nnh5_tensor_data(t), (size_t)s->nbytes, w->data_start + s->begin) < 0) {
		w->failed = NNH5_ERR_IO;
		return nnh5__error(NNH5_ERR_IO, "save '%s': writing tensor '%s': %s", w->path, name,
				   strerror(errno));
	}
	s->put = true;
	w->missing--;
	return NNH5_OK;
}

int nnh5_safetensors_writer_commit(nnh5_safetensors_writer *w)
{
	int rc;

	if (!w)
		return nnh5__error(NNH5_ERR_INVALID, "safetensors save: commit without a writer");
	if (w->failed || w->missing) {
		const char *name = "";
		for (size_t i = 0; i < w->n && !name[0]; i++)
			if (!w->s[i].put)
				name = w->s[i].name;
		rc = w->failed ? nnh5__error(w->failed, "safetensors save '%s': an earlier write "
					     "failed", w->path)
			       : nnh5__error(NNH5_ERR_INVALID,
					     "safetensors save '%s': tensor '%s' was never written "
					     "(%zu missing)", w->path, name, w->missing);
		nnh5_safetensors_writer_discard(w);
		return rc;
	}
	rc = atomic_close(&w->a, w->fd, w->path);
	w->fd = -1; /* closed, and the temporary file renamed or removed */
	nnh5_safetensors_writer_discard(w);
	return rc;
}

/* The dict's keys, dtypes and shapes as the writer's parallel arrays (borrowed from sd). */
struct described {
	const char **names;
	nnh5_dtype *dtypes;
	size_t *ndims;
	const int64_t **shapes;
};

static void described_free(struct described *d)
{
	nnh5__free(d->names);
	nnh5__free(d->dtypes);
	nnh5__free(d->ndims);
	nnh5__free(d->shapes);
}

static int describe(struct described *d, const nnh5_dict *sd)
{
	size_t n = nnh5_dict_len(sd), m = n ? n : 1;

	d->names = nnh5__calloc(m, sizeof *d->names);
	d->dtypes = nnh5__calloc(m, sizeof *d->dtypes);
	d->ndims = nnh5__calloc(m, sizeof *d->ndims);
	d->shapes = nnh5__calloc(m, sizeof *d->shapes);
	if (!d->names || !d->dtypes || !d->ndims || !d->shapes) {
		described_free(d);
		return nnh5__nomem();
	}
	for (size_t i = 0; i < n; i++) {
		const nnh5_tensor *t = nnh5_dict_value(sd, i);
		d->names[i] = nnh5_dict_key(sd, i);
		d->dtypes[i] = nnh5_tensor_dtype(t);
		d->ndims[i] = nnh5_tensor_ndim(t);
		d->shapes[i] = nnh5_tensor_shape(t);
	}
	return NNH5_OK;
}

int nnh5_safetensors_save(const char *path, const nnh5_dict *sd, size_t n_meta,
			  const char *const *meta_keys, const char *const *meta_values)
{
	nnh5_safetensors_writer *w;
	struct described d;
	size_t n = nnh5_dict_len(sd);
	int rc = describe(&d, sd);

	if (rc)
		return rc;
	rc = nnh5_safetensors_writer_open(&w, path, n, d.names, d.dtypes, d.ndims, d.shapes,
					  n_meta, meta_keys, meta_values);
	described_free(&d);
	for (size_t i = 0; !rc && i < n; i++)
		rc = nnh5_safetensors_writer_put(w, nnh5_dict_key(sd, i), nnh5_dict_value(sd, i));
	if (rc) {
		nnh5_safetensors_writer_discard(w);
		return rc;
	}
	return nnh5_safetensors_writer_commit(w);
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

/* Write the tensors of one shard (those i with shard_of[i] == s) through a writer, fetched one at a time. */
static int write_shard(const char *path, size_t s, const size_t *shard_of, size_t n,
		       const char *const *names, const nnh5_dtype *dtypes, const size_t *ndims,
		       const int64_t *const *shapes, size_t n_meta, const char *const *meta_keys,
		       const char *const *meta_values, nnh5_tensor_source_fn fetch, void *ctx)
{
	const char **pn = nnh5__calloc(n ? n : 1, sizeof *pn);
	nnh5_dtype *pd = nnh5__calloc(n ? n : 1, sizeof *pd);
	size_t *pk = nnh5__calloc(n ? n : 1, sizeof *pk);
	const int64_t **ps = nnh5__calloc(n ? n : 1, sizeof *ps);
	size_t *idx = nnh5__calloc(n ? n : 1, sizeof *idx);
	nnh5_safetensors_writer *w = NULL;
	size_t np = 0;
	int rc;

	if (!pn || !pd || !pk || !ps || !idx) {
		rc = nnh5__nomem();
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if (shard_of[i] == s) {
			pn[np] = names[i];
			pd[np] = dtypes[i];
			pk[np] = ndims[i];
			ps[np] = shapes[i];
			idx[np++] = i;
		}
	rc = nnh5_safetensors_writer_open(&w, path, np, pn, pd, pk, ps, n_meta, meta_keys,
					  meta_values);
	/* In the caller's order: a source read front to back stays so. */
	for (size_t j = 0; !rc && j < np; j++) {
		nnh5_tensor *t = NULL;
		rc = fetch(&t, idx[j], ctx);
		if (!rc && !t)
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "safetensors save '%s': no tensor given for '%s'", path,
					 names[idx[j]]);
		if (!rc)
			rc = nnh5_safetensors_writer_put(w, names[idx[j]], t);
		nnh5_tensor_free(t);
	}
	if (!rc) {
		rc = nnh5_safetensors_writer_commit(w);
		w = NULL;
	}
done:
	nnh5_safetensors_writer_discard(w);
	nnh5__free(pn);
	nnh5__free(pd);
	nnh5__free(pk);
	nnh5__free(ps);
	nnh5__free(idx);
	return rc;
}

int nnh5_safetensors_save_folder_stream(const char *dir, size_t n, const char *const *names,
					const nnh5_dtype *dtypes, const size_t *ndims,
					const int64_t *const *shapes, uint64_t max_shard_bytes,
					size_t n_meta, const char *const *meta_keys,
					const char *const *meta_values, nnh5_tensor_source_fn fetch,
					void *ctx)
{
	size_t ngroups = 0, nshards = 0, open_group = SIZE_MAX;
	size_t *group = NULL, *final = NULL, *sorted = NULL, *shard_of = NULL;
	uint64_t cur = 0, total = 0;
	nnh5_safetensors_writer *check;
	nnh5__strbuf sb = { 0 };
	char name[64], *path = NULL;
	int rc;

	if (max_shard_bytes == 0)
		max_shard_bytes = DEFAULT_SHARD;
	if (!dir)
		return nnh5__error(NNH5_ERR_INVALID, "safetensors save: no folder");
	if (n && (!names || !dtypes || !ndims || !shapes || !fetch))
		return nnh5__error(NNH5_ERR_INVALID,
				   "safetensors save '%s': %zu tensors declared without their names, "
				   "dtypes, shapes or source", dir, n);
	/* Every tensor checked (names, dtypes, shapes, duplicates) before a file is written. */
	rc = writer_new(&check, dir, n, names, dtypes, ndims, shapes, n_meta, meta_keys,
			meta_values);
	nnh5_safetensors_writer_discard(check);
	if (rc)
		return rc;
	group = nnh5__calloc(n + 1, sizeof *group);
	final = nnh5__calloc(n + 1, sizeof *final);
	sorted = nnh5__calloc(n + 1, sizeof *sorted);
	shard_of = nnh5__calloc(n + 1, sizeof *shard_of);
	if (!group || !final || !sorted || !shard_of) {
		rc = nnh5__nomem();
		goto done;
	}
	/*
	 * Shards as huggingface_hub splits a state dict: in the given order, a
	 * tensor that would tip the open shard over the limit closes it and
	 * opens another; a tensor larger than the limit is a shard of its own at
	 * once. Shards are numbered in the order they are closed: sizes only.
	 */
	for (size_t i = 0; i < n; i++) {
		size_t numel, nb = 0;
		(void)nnh5__shape_size(dtypes[i], ndims[i], shapes[i], &numel, &nb); /* checked */
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
	for (size_t i = 0; i < n; i++)
		shard_of[i] = nshards <= 1 ? 0 : final[group[i]];
	if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
		rc = nnh5__error(NNH5_ERR_IO, "safetensors save '%s': cannot create the folder: %s",
				 dir, strerror(errno));
		goto done;
	}
	if (nshards <= 1) {
		/* One shard: model.safetensors and no index, as save_pretrained does. */
		path = join(dir, SINGLE_NAME);
		rc = path ? write_shard(path, 0, shard_of, n, names, dtypes, ndims, shapes, n_meta,
					meta_keys, meta_values, fetch, ctx)
			  : nnh5__nomem();
		goto done;
	}
	for (size_t s = 0; s < nshards; s++) {
		snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, nshards);
		nnh5__free(path);
		path = join(dir, name);
		rc = path ? write_shard(path, s, shard_of, n, names, dtypes, ndims, shapes, n_meta,
					meta_keys, meta_values, fetch, ctx)
			  : nnh5__nomem();
		if (rc)
			goto done;
	}
	/* The index as transformers writes it: json.dumps(indent=2, sort_keys=True) + "\n". */
	for (size_t i = 0; i < n; i++)
		sorted[i] = i;
	for (size_t i = 1; i < n; i++) /* insertion sort by name: n is a model's tensor count */
		for (size_t j = i; j > 0 && strcmp(names[sorted[j - 1]], names[sorted[j]]) > 0; j--) {
			size_t t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	nnh5__strbuf_printf(&sb, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n"
				 "  \"weight_map\": {", (unsigned long long)total);
	for (size_t k = 0; k < n; k++) {
		size_t i = sorted[k];
		nnh5__strbuf_puts(&sb, k ? ",\n    " : "\n    ");
		json_str_ascii(&sb, names[i]);
		nnh5__strbuf_printf(&sb, ": \"model-%05zu-of-%05zu.safetensors\"", shard_of[i] + 1,
				    nshards);
	}
	nnh5__strbuf_puts(&sb, n ? "\n  }\n}\n" : "}\n}\n");
	nnh5__free(path);
	path = join(dir, INDEX_NAME);
	if (!path || sb.oom)
		rc = nnh5__nomem();
	else
		rc = atomic_write(path, sb.p, sb.len);
done:
	nnh5__free(sb.p);
	nnh5__free(path);
	nnh5__free(group);
	nnh5__free(final);
	nnh5__free(sorted);
	nnh5__free(shard_of);
	return rc;
}

/* A dict's tensor i as a view (the folder writer frees what it is given). */
static int fetch_view(nnh5_tensor **out, size_t i, void *ctx)
{
	const nnh5_tensor *t = nnh5_dict_value(ctx, i);

	return nnh5_tensor_view_const(out, nnh5_tensor_dtype(t), nnh5_tensor_ndim(t),
				      nnh5_tensor_shape(t), nnh5_tensor_data(t), nnh5_tensor_nbytes(t));
}

int nnh5_safetensors_save_folder(const char *dir, const nnh5_dict *sd, uint64_t max_shard_bytes,
				 size_t n_meta, const char *const *meta_keys,
				 const char *const *meta_values)
{
	struct described d;
	int rc = describe(&d, sd);

	if (rc)
		return rc;
	rc = nnh5_safetensors_save_folder_stream(dir, nnh5_dict_len(sd), d.names, d.dtypes,
						 d.ndims, d.shapes, max_shard_bytes, n_meta,
						 meta_keys, meta_values, fetch_view,
						 (void *)(uintptr_t)sd);
	described_free(&d);
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
