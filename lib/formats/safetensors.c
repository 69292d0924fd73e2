/*
 * lib/formats/safetensors.c - safetensors files: a read-only mapped open
 * that hands out tensors as views of the mapping, and the writer.
 *
 * The header is parsed by a small strict JSON reader of its own (RFC 8259,
 * as serde_json reads it): offsets and shapes are u64 and must be exact
 * (a double-based parser would round them), strings must be valid with no
 * lone surrogates, and every size is bounded by the input's length, so a
 * hostile header can neither overflow nor allocate more than about ten
 * times its own size. Validation follows the reference reader
 * (huggingface/safetensors, safetensors/src/tensor.rs; doc/FORMATS.md).
 */
#include "core/internal.h"
#include "store/atomic.h"
#include "store/regular.h"
#include "nnh5/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER 100000000u
#define MAX_DEPTH 128 /* serde_json's recursion limit */

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

/* ------------------------------------------------------------ JSON */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool is_u64;   /* J_NUM: a non-negative integer literal that fits u64 */
	uint64_t u;    /* its value */
	char *s;       /* J_STR: the decoded string (NUL-terminated) */
	size_t slen;   /* its length (it may hold NUL bytes) */
	size_t n;      /* J_ARR, J_OBJ: members */
	struct jval *items;
	char **keys;   /* J_OBJ */
	size_t *klens;
};

struct jparser {
	const char *p, *end;
	int depth;
	const char *err;
};

static void jfree(struct jval *v)
{
	if (v->type == J_STR)
		nnh5__free(v->s);
	if (v->type == J_ARR || v->type == J_OBJ) {
		for (size_t i = 0; i < v->n; i++) {
			jfree(&v->items[i]);
			if (v->keys)
				nnh5__free(v->keys[i]);
		}
		nnh5__free(v->items);
		nnh5__free(v->keys);
		nnh5__free(v->klens);
	}
	memset(v, 0, sizeof *v);
}

static void jws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string at j->p (the opening quote); the input is valid UTF-8 already. */
static int jstring(struct jparser *j, char **out, size_t *outlen)
{
	const char *p = j->p + 1, *q = p;
	size_t cap = 0, n = 0;
	char *o;

	/* Decoded strings are never longer than their source. */
	while (q < j->end && *q != '"') {
		if (*q == '\\')
			q++;
		q++;
	}
	if (q >= j->end) {
		j->err = "unterminated string";
		return -1;
	}
	cap = (size_t)(q - p) + 1;
	o = nnh5__malloc(cap);
	if (!o) {
		j->err = NULL;
		return -2;
	}
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20) {
			j->err = "control character in a string";
			goto bad;
		}
		if (c != '\\') {
			o[n++] = (char)c;
			p++;
			continue;
		}
		p++;
		switch (*p) {
		case '"': o[n++] = '"'; p++; break;
		case '\\': o[n++] = '\\'; p++; break;
		case '/': o[n++] = '/'; p++; break;
		case 'b': o[n++] = '\b'; p++; break;
		case 'f': o[n++] = '\f'; p++; break;
		case 'n': o[n++] = '\n'; p++; break;
		case 'r': o[n++] = '\r'; p++; break;
		case 't': o[n++] = '\t'; p++; break;
		case 'u': {
			unsigned cp, lo;
			if (j->end - p < 5 || hex4(p + 1, &cp) < 0) {
				j->err = "bad \\u escape";
				goto bad;
			}
			p += 5;
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				j->err = "lone surrogate in a \\u escape";
				goto bad;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				    hex4(p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
					j->err = "lone surrogate in a \\u escape";
					goto bad;
				}
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			/* \uXXXX (6 bytes) decodes to at most 3, a pair (12) to 4. */
			n += put_utf8(o + n, cp);
			break;
		}
		default:
			j->err = "bad escape in a string";
			goto bad;
		}
	}
	o[n] = '\0';
	j->p = p + 1;
	*out = o;
	*outlen = n;
	return 0;
bad:
	nnh5__free(o);
	return -1;
}

/* One or more digits from p: the position after them, or NULL (j->err set). */
static const char *digits(struct jparser *j, const char *p)
{
	if (p >= j->end || *p < '0' || *p > '9') {
		j->err = "bad number";
		return NULL;
	}
	while (p < j->end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

static int jnumber(struct jparser *j, struct jval *v)
{
	const char *p = j->p;
	bool neg = false, integer = true, overflow = false;
	uint64_t u = 0;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (p >= j->end || *p < '0' || *p > '9') {
		j->err = "bad number";
		return -1;
	}
	if (*p == '0') {
		p++;
	} else {
		while (p < j->end && *p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p - '0');
			if (u > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				u = u * 10 + d;
			p++;
		}
	}
	if (p < j->end && *p == '.') {
		integer = false;
		if (!(p = digits(j, p + 1)))
			return -1;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (!(p = digits(j, p)))
			return -1;
	}
	v->type = J_NUM;
	/* "-0" is the integer 0 to serde_json, which a u64 field takes. */
	v->is_u64 = integer && !overflow && (!neg || u == 0);
	v->u = v->is_u64 ? u : 0;
	j->p = p;
	return 0;
}

static int jvalue(struct jparser *j, struct jval *v);

static int jcontainer(struct jparser *j, struct jval *v, bool obj)
{
	size_t cap = 0;
	int rc;

	if (++j->depth > MAX_DEPTH) {
		j->err = "nested too deeply";
		return -1;
	}
	v->type = obj ? J_OBJ : J_ARR;
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
		j->p++;
		j->depth--;
		return 0;
	}
	for (;;) {
		char *key = NULL;
		size_t klen = 0;
		if (v->n == cap) {
			size_t nc = cap ? 2 * cap : 8;
			struct jval *ni = nnh5__realloc(v->items, nc * sizeof *ni);
			if (!ni)
				return -2;
			v->items = ni;
			if (obj) {
				char **nk = nnh5__realloc(v->keys, nc * sizeof *nk);
				if (!nk)
					return -2;
				v->keys = nk;
				size_t *nl = nnh5__realloc(v->klens, nc * sizeof *nl);
				if (!nl)
					return -2;
				v->klens = nl;
			}
			cap = nc;
		}
		if (obj) {
			jws(j);
			if (j->p >= j->end || *j->p != '"') {
				j->err = "expected a key";
				return -1;
			}
			rc = jstring(j, &key, &klen);
			if (rc)
				return rc;
			jws(j);
			if (j->p >= j->end || *j->p != ':') {
				nnh5__free(key);
				j->err = "expected ':'";
				return -1;
			}
			j->p++;
		}
		memset(&v->items[v->n], 0, sizeof v->items[v->n]);
		if (obj) {
			v->keys[v->n] = key;
			v->klens[v->n] = klen;
		}
		v->n++;
		rc = jvalue(j, &v->items[v->n - 1]);
		if (rc)
			return rc;
		jws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
			j->p++;
			j->depth--;
			return 0;
		}
		j->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
		return -1;
	}
}

static bool jlit(struct jparser *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

static int jvalue(struct jparser *j, struct jval *v)
{
	jws(j);
	if (j->p >= j->end) {
		j->err = "unexpected end";
		return -1;
	}
	switch (*j->p) {
	case '{': return jcontainer(j, v, true);
	case '[': return jcontainer(j, v, false);
	case '"':
		v->type = J_STR;
		return jstring(j, &v->s, &v->slen);
	case 't':
	case 'f':
		v->type = J_BOOL;
		if (jlit(j, "true") || jlit(j, "false"))
			return 0;
		break;
	case 'n':
		v->type = J_NULL;
		if (jlit(j, "null"))
			return 0;
		break;
	default:
		return jnumber(j, v);
	}
	j->err = "unexpected character";
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

static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1fu;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0fu;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07u;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3fu);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* An object's member key, or NULL; *dup set when the key occurs twice. */
static const struct jval *jget(const struct jval *o, const char *key, bool *dup)
{
	const struct jval *found = NULL;

	for (size_t i = 0; i < o->n; i++) {
		if (o->klens[i] == strlen(key) && memcmp(o->keys[i], key, o->klens[i]) == 0) {
			if (found)
				*dup = true;
			found = &o->items[i];
		}
	}
	return found;
}

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

/* One tensor entry (name already checked); fills t. */
static int parse_entry(nnh5_safetensors *st, struct st_tensor *t, const struct jval *v)
{
	const struct jval *dt, *shape, *offs;
	bool dup = false;
	int k;

	if (v->type != J_OBJ)
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': not an object",
				   st->path, t->name);
	dt = jget(v, "dtype", &dup);
	shape = jget(v, "shape", &dup);
	offs = jget(v, "data_offsets", &dup);
	if (dup)
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': a field given twice",
				   st->path, t->name);
	if (!dt || !shape || !offs)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': tensor '%s': missing dtype, shape or data_offsets",
				   st->path, t->name);
	if (dt->type != J_STR || (k = st_dtype_index(dt->s)) < 0 || has_nul(dt->s, dt->slen))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': unknown dtype",
				   st->path, t->name);
	if (shape->type != J_ARR)
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': tensor '%s': shape is not a list",
				   st->path, t->name);
	for (size_t i = 0; i < shape->n; i++)
		if (shape->items[i].type != J_NUM || !shape->items[i].is_u64)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': shape entry %zu is not a "
					   "non-negative integer", st->path, t->name, i);
	if (offs->type != J_ARR || offs->n != 2 || offs->items[0].type != J_NUM ||
	    !offs->items[0].is_u64 || offs->items[1].type != J_NUM || !offs->items[1].is_u64)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': tensor '%s': data_offsets is not two "
				   "non-negative integers", st->path, t->name);
	t->begin = offs->items[0].u;
	t->end = offs->items[1].u;
	/* Stash what the offset check needs; representability is judged after it. */
	t->dtype = (nnh5_dtype)k; /* the reference's index for now */
	t->ndim = shape->n;
	for (size_t i = 0; i < shape->n && i < NNH5_MAX_NDIM; i++)
		t->shape[i] = shape->items[i].u > (uint64_t)INT64_MAX ? -1
								       : (int64_t)shape->items[i].u;
	/* Overflow-checked byte count, on the u64 values (the reference's usize). */
	{
		uint64_t ne = 1, nb;
		bool over = false;
		for (size_t i = 0; i < shape->n; i++) {
			uint64_t d = shape->items[i].u;
			if (d && ne > UINT64_MAX / d)
				over = true;
			ne *= d;
		}
		/* once 0, the product stays 0 whatever overflowed before (checked_mul folds) */
		static const unsigned sizes[N_ST_DTYPES] = { 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1,
							     2, 2, 2, 2, 4, 4, 4, 8, 8, 8, 8 };
		unsigned es = sizes[k];
		if (es == 0)
			return NNH5_OK; /* sub-byte: refused below, with its name */
		if (over || ne > UINT64_MAX / es)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': size overflows",
					   st->path, t->name);
		nb = ne * es;
		if (t->end < t->begin || t->end - t->begin != nb)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "safetensors '%s': tensor '%s': data_offsets [%llu, %llu] "
					   "do not hold its %llu bytes", st->path, t->name,
					   (unsigned long long)t->begin, (unsigned long long)t->end,
					   (unsigned long long)nb);
	}
	return NNH5_OK;
}

static int parse_header(nnh5_safetensors *st, const struct jval *root)
{
	bool dup = false;
	const struct jval *meta = NULL;
	size_t nt = 0;
	int rc;

	if (root->type != J_OBJ)
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': the header is not a JSON object",
				   st->path);
	for (size_t i = 0; i < root->n; i++) {
		if (has_nul(root->keys[i], root->klens[i]))
			return nnh5__error(NNH5_ERR_TYPE,
					   "safetensors '%s': a tensor name holds a NUL character",
					   st->path);
		if (strcmp(root->keys[i], "__metadata__") == 0) {
			if (meta)
				dup = true;
			meta = &root->items[i];
		} else {
			nt++;
		}
	}
	if (dup)
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': __metadata__ given twice",
				   st->path);
	if (meta && meta->type == J_OBJ) {
		st->meta_k = nnh5__calloc(meta->n + 1, sizeof(char *));
		st->meta_v = nnh5__calloc(meta->n + 1, sizeof(char *));
		if (!st->meta_k || !st->meta_v)
			return nnh5__nomem();
		for (size_t i = 0; i < meta->n; i++) {
			const struct jval *mv = &meta->items[i];
			bool d2 = false;
			if (mv->type != J_STR)
				return nnh5__error(NNH5_ERR_FORMAT,
						   "safetensors '%s': __metadata__ value of '%s' is "
						   "not a string", st->path, meta->keys[i]);
			jget(meta, meta->keys[i], &d2);
			if (d2)
				return nnh5__error(NNH5_ERR_FORMAT,
						   "safetensors '%s': __metadata__ key '%s' given twice",
						   st->path, meta->keys[i]);
			if (has_nul(meta->keys[i], meta->klens[i]) || has_nul(mv->s, mv->slen))
				return nnh5__error(NNH5_ERR_TYPE,
						   "safetensors '%s': __metadata__ holds a NUL character",
						   st->path);
			st->meta_k[i] = nnh5__strdup(meta->keys[i]);
			st->meta_v[i] = nnh5__strdup(mv->s);
			st->n_meta++;
			if (!st->meta_k[i] || !st->meta_v[i])
				return nnh5__nomem();
		}
	} else if (meta && meta->type != J_NULL) {
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': __metadata__ is not an object",
				   st->path);
	}
	st->t = nnh5__calloc(nt ? nt : 1, sizeof *st->t);
	if (!st->t)
		return nnh5__nomem();
	for (size_t i = 0; i < root->n; i++) {
		struct st_tensor *t;
		if (&root->items[i] == meta || strcmp(root->keys[i], "__metadata__") == 0)
			continue;
		t = &st->t[st->n++];
		t->name = nnh5__strdup(root->keys[i]);
		if (!t->name)
			return nnh5__nomem();
		rc = parse_entry(st, t, &root->items[i]);
		if (rc)
			return rc;
	}
	/* Duplicate names: sort a copy of the name pointers. */
	if (st->n > 1) {
		char **names = nnh5__malloc(st->n * sizeof *names);
		if (!names)
			return nnh5__nomem();
		for (size_t i = 0; i < st->n; i++)
			names[i] = st->t[i].name;
		qsort(names, st->n, sizeof *names, cmp_names);
		for (size_t i = 1; i < st->n; i++) {
			if (strcmp(names[i - 1], names[i]) == 0) {
				rc = nnh5__error(NNH5_ERR_FORMAT,
						 "safetensors '%s': tensor '%s' given twice", st->path,
						 names[i]);
				nnh5__free(names);
				return rc;
			}
		}
		nnh5__free(names);
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
		for (size_t d = 0; d < t->ndim; d++)
			if (t->shape[d] < 0)
				return nnh5__error(NNH5_ERR_TYPE,
						   "safetensors '%s': tensor '%s': dimension %zu is "
						   "above 2^63", st->path, t->name, d);
	}
	return NNH5_OK;
}

static int open_bytes(nnh5_safetensors *st, const nnh5_safetensors_options *opts)
{
	nnh5_safetensors_options def = NNH5_SAFETENSORS_OPTIONS_INIT;
	struct jparser j;
	struct jval root;
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
	if (!utf8_valid((const unsigned char *)h, (size_t)n))
		return nnh5__error(NNH5_ERR_FORMAT, "safetensors '%s': the header is not valid UTF-8",
				   st->path);
	if (!opts->lenient && (n == 0 || h[0] != '{'))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': the header does not start with '{' (a lenient "
				   "open accepts whitespace before it)", st->path);
	memset(&root, 0, sizeof root);
	j.p = h;
	j.end = h + n;
	j.depth = 0;
	j.err = NULL;
	rc = jvalue(&j, &root);
	if (!rc) {
		jws(&j);
		if (j.p != j.end) {
			j.err = "trailing characters after the JSON object";
			rc = -1;
		}
	}
	if (rc) {
		jfree(&root);
		if (rc == -2 || !j.err)
			return nnh5__nomem();
		return nnh5__error(NNH5_ERR_FORMAT,
				   "safetensors '%s': the header is not valid JSON: %s at byte %zu",
				   st->path, j.err, (size_t)(j.p - h));
	}
	rc = parse_header(st, &root);
	jfree(&root);
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

int nnh5_safetensors_get(nnh5_tensor **out, nnh5_safetensors *st, const char *name)
{
	*out = NULL;
	for (size_t i = 0; i < st->n; i++) {
		const struct st_tensor *t = &st->t[i];
		const unsigned char *p;
		size_t nbytes = (size_t)(t->end - t->begin);
		int rc;
		if (strcmp(t->name, name) != 0)
			continue;
		p = st->base + st->data_start + t->begin;
		if ((uintptr_t)p % nnh5_dtype_size((int)t->dtype) == 0)
			return nnh5_tensor_view_const(out, t->dtype, t->ndim, t->shape,
						      nbytes ? p : NULL, nbytes);
		/* Element accessors need aligned data: a copy, counted. */
		rc = nnh5_tensor_new(out, t->dtype, t->ndim, t->shape);
		if (rc)
			return rc;
		memcpy(nnh5_tensor_mutable_data(*out), p, nbytes);
		st->copies++;
		return NNH5_OK;
	}
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
		rc = nnh5_safetensors_get(&v, st, st->t[i].name);
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

static void json_str(nnh5__strbuf *sb, const char *s)
{
	nnh5__strbuf_putn(sb, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			nnh5__strbuf_putn(sb, esc, 2);
		} else if (c < 0x20) {
			/* serde_json's escapes: short forms where JSON has them */
			const char *shortf = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
					   : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
			if (shortf)
				nnh5__strbuf_puts(sb, shortf);
			else {
				snprintf(esc, sizeof esc, "\\u%04x", c);
				nnh5__strbuf_puts(sb, esc);
			}
		} else {
			nnh5__strbuf_putn(sb, (const char *)&c, 1);
		}
	}
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

int nnh5_safetensors_save(const char *path, const nnh5_dict *sd, size_t n_meta,
			  const char *const *meta_keys, const char *const *meta_values)
{
	size_t n = nnh5_dict_len(sd);
	struct wentry *e = nnh5__calloc(n ? n : 1, sizeof *e);
	nnh5__strbuf sb = { 0 };
	nnh5__atomic a;
	uint64_t off = 0, hlen;
	unsigned char len8[8];
	int fd = -1, rc = NNH5_OK;
	char num[64];

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
			goto done;
		}
		if (strcmp(e[i].name, "__metadata__") == 0) {
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "safetensors save '%s': a tensor cannot be named __metadata__",
					 path);
			goto done;
		}
	}
	for (size_t i = 0; i < n_meta; i++)
		if (!meta_keys || !meta_values || !meta_keys[i] || !meta_values[i]) {
			rc = nnh5__error(NNH5_ERR_INVALID, "safetensors save '%s': metadata entry %zu is NULL",
					 path, i);
			goto done;
		}
	qsort(e, n, sizeof *e, cmp_wentry);
	nnh5__strbuf_putn(&sb, "{", 1);
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
		nnh5__strbuf_puts(&sb, ":{\"dtype\":\"");
		nnh5__strbuf_puts(&sb, st_dtypes[e[i].k].name);
		nnh5__strbuf_puts(&sb, "\",\"shape\":[");
		for (size_t d = 0; d < nd; d++) {
			snprintf(num, sizeof num, "%s%lld", d ? "," : "",
				 (long long)nnh5_tensor_dim(e[i].t, d));
			nnh5__strbuf_puts(&sb, num);
		}
		snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
			 (unsigned long long)(off + nb));
		nnh5__strbuf_puts(&sb, num);
		off += nb;
	}
	nnh5__strbuf_putn(&sb, "}", 1);
	while (sb.len % 8)
		nnh5__strbuf_putn(&sb, " ", 1);
	if (sb.oom) {
		rc = nnh5__nomem();
		goto done;
	}
	hlen = sb.len;
	for (int i = 0; i < 8; i++)
		len8[i] = (unsigned char)(hlen >> (8 * i));
	rc = nnh5__atomic_begin(&a, path, true);
	if (rc)
		goto done;
	fd = open(a.tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || nnh5__atomic_adopt(&a, fd) != NNH5_OK) {
		rc = fd < 0 ? nnh5__error(NNH5_ERR_IO, "safetensors save '%s': %s", path,
					  strerror(errno))
			    : NNH5_ERR_IO;
		goto abort;
	}
	if (write_all(fd, len8, 8) < 0 || write_all(fd, sb.p, sb.len) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "safetensors save '%s': write: %s", path,
				 strerror(errno));
		goto abort;
	}
	for (size_t i = 0; i < n; i++) {
		size_t nb = nnh5_tensor_nbytes(e[i].t);
		if (nb && write_all(fd, nnh5_tensor_data(e[i].t), nb) < 0) {
			rc = nnh5__error(NNH5_ERR_IO, "safetensors save '%s': writing tensor '%s': %s",
					 path, e[i].name, strerror(errno));
			goto abort;
		}
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = nnh5__error(NNH5_ERR_IO, "safetensors save '%s': close: %s", path,
				 strerror(errno));
		goto abort;
	}
	fd = -1;
	rc = nnh5__atomic_commit(&a);
	goto done;
abort:
	if (fd >= 0)
		close(fd);
	nnh5__atomic_abort(&a);
done:
	nnh5__free(sb.p);
	nnh5__free(e);
	return rc;
}
