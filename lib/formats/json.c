/*
 * lib/formats/json.c - the strict JSON reader of formats/json.h.
 */
#include "formats/json.h"

#include <string.h>

#define MAX_DEPTH 128 /* serde_json's recursion limit */


struct jparser {
	const char *p, *end;
	int depth;
	size_t values; /* members of arrays and objects so far */
	const char *err;
};

void nnh5__json_free(struct jval *v)
{
	if (v->type == J_STR)
		nnh5__free(v->s);
	if (v->type == J_ARR || v->type == J_OBJ) {
		for (size_t i = 0; i < v->n; i++) {
			nnh5__json_free(&v->items[i]);
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

	/* serde_json refuses the 128th level (its remaining depth reaches 0). */
	if (++j->depth >= MAX_DEPTH) {
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
		/*
		 * A value costs about 80 bytes here for as little as 2 bytes of
		 * input: the count bounds the tree (about 160 MB at most).
		 */
		if (++j->values > NNH5__JSON_MAX_VALUES) {
			nnh5__free(key);
			j->err = "more than 2,000,000 values";
			return -1;
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

bool nnh5__json_utf8_valid(const unsigned char *s, size_t n)
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

const struct jval *nnh5__json_get(const struct jval *o, const char *key, bool *dup)
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


int nnh5__json_parse(struct jval *out, const char *text, size_t n, const char **err, size_t *at)
{
	struct jparser j = { text, text + n, 0, 0, NULL };
	int rc;

	memset(out, 0, sizeof *out);
	rc = jvalue(&j, out);
	if (!rc) {
		jws(&j);
		if (j.p != j.end) {
			j.err = "trailing characters after the JSON value";
			rc = -1;
		}
	}
	if (rc == -1 && !j.err)
		rc = -2;
	*err = j.err;
	*at = (size_t)(j.p - text);
	return rc;
}
