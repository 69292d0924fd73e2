/*
 * lib/formats/json.h - a small strict JSON reader for the formats' headers
 * and indexes (RFC 8259, read as serde_json reads it): integers are kept as
 * exact u64 (a double-based parser would round offsets past 2^53), strings
 * must be valid with no lone surrogates or raw control characters, nesting
 * stops at 128 levels, and nothing after the value but whitespace. The tree
 * holds at most NNH5__JSON_MAX_VALUES members of arrays and objects (about
 * 160 MB), and strings take at most the input's size: a hostile header
 * cannot make it allocate more.
 */
#ifndef NNH5_FORMATS_JSON_H
#define NNH5_FORMATS_JSON_H

#include "core/internal.h"

#define NNH5__JSON_MAX_VALUES 2000000u

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

/*
 * Parse the n bytes at text (valid UTF-8, checked by the caller with
 * nnh5__json_utf8_valid) into *out. Returns 0; -1 with *err (a static
 * description) and *at (the byte offset) for invalid JSON; -2 when out of
 * memory. Free *out with nnh5__json_free() in every case.
 */
int nnh5__json_parse(struct jval *out, const char *text, size_t n, const char **err, size_t *at);

void nnh5__json_free(struct jval *v);

/* true if the n bytes at s are valid UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
bool nnh5__json_utf8_valid(const unsigned char *s, size_t n);

/* Member key of object o, or NULL; *dup set to true when key occurs twice. */
const struct jval *nnh5__json_get(const struct jval *o, const char *key, bool *dup);

#endif /* NNH5_FORMATS_JSON_H */
