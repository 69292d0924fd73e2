/*
 * tests/direct/direct_gen.c - random saves written by both writers, for the
 * differential test of the direct HDF5 writer (direct_check.py).
 *
 *   direct_gen SEED COUNT DIR
 *       for i in 0..COUNT-1, a random state dict, dict, list or tensor
 *       (random names with nesting and UTF-8, 0..hundreds of values, every
 *       dtype, shapes with rank 0 and empty dimensions) saved twice:
 *       DIR/i-api.h5 through HDF5's API (NNH5_DIRECT_WRITE=0) and
 *       DIR/i-direct.h5 through the direct writer, which must take it. The
 *       direct file is loaded back (checksums verified) and compared bit
 *       for bit with what was saved. Prints "i KIND" per pair.
 *   direct_gen keys N FILE [DTYPE]
 *       a state dict of N one-element tensors (float32 or DTYPE) saved by
 *       nnh5_save_state_dict() (the root's key list goes to dense storage
 *       past ~4,090 keys; past 8,192 bfloat16 tensors their nnh5_dtype
 *       strings fill more than one global heap collection).
 *   direct_gen declines DIR
 *       saves the direct writer must leave to HDF5's API (tied tensors, a
 *       bool byte other than 0/1, reserved, conflicting or over-long keys,
 *       a group of 4,097 links, a root of 300 links whose key list is too
 *       large for its object header) and ones it must take (4,096 links);
 *       each is then saved by nnh5_save_*(), which must succeed or refuse
 *       as the API path does. Prints "declines: N".
 *
 * Errors print "direct_gen: WHAT: message" on stderr and exit 1.
 */
#include "file/save_direct.h"
#include "core/internal.h"
#include "nnh5/dict.h"
#include "nnh5/list.h"
#include "nnh5/save.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t next(void)
{
	/* splitmix64: reproducible across platforms */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t below(size_t n)
{
	return n ? (size_t)(next() % n) : 0;
}

static int fail(const char *what)
{
	fprintf(stderr, "direct_gen: %s: %s\n", what, nnh5_error_message());
	exit(1);
}

static nnh5_tensor *random_tensor(void)
{
	int64_t shape[NNH5_MAX_NDIM];
	size_t ndim = below(5);
	nnh5_dtype dt = (nnh5_dtype)below(NNH5_DTYPE_COUNT);
	nnh5_tensor *t;

	for (size_t i = 0; i < ndim; i++)
		shape[i] = (int64_t)(below(8) == 0 ? 0 : 1 + below(below(4) == 0 ? 40 : 5));
	/* now and then a tensor past the 4 KiB alignment threshold */
	if (ndim == 1 && below(6) == 0)
		shape[0] = (int64_t)(1000 + below(3000));
	if (nnh5_tensor_new(&t, dt, ndim, shape))
		fail("tensor");
	unsigned char *p = t->data;
	for (size_t i = 0; i < t->nbytes; i++)
		p[i] = dt == NNH5_BOOL ? (unsigned char)(next() & 1) : (unsigned char)next();
	return t;
}

static const char *const pieces[] = { "layers", "weight", "bias", "0", "1", "12", "attn",
				      "mlp", "é", "層", "αβ", "norm", "x-y", "a b", "ß_2",
				      "running_mean", "emb", "😀", "q", "k" };

static void random_name(char *buf, size_t cap, size_t parts)
{
	size_t n = 0;
	for (size_t i = 0; i < parts; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "_" : "",
				      pieces[below(sizeof pieces / sizeof *pieces)]);
}

/* Does key conflict with one already in d ("a" and "a.b")? */
static bool conflicts(const nnh5_dict *d, const char *key)
{
	size_t n = strlen(key);
	for (size_t i = 0; i < nnh5_dict_len(d); i++) {
		const char *k = nnh5_dict_key(d, i);
		size_t m = strlen(k);
		if (m == n && !strcmp(k, key))
			return true;
		if (m < n && !strncmp(k, key, m) && key[m] == '.')
			return true;
		if (n < m && !strncmp(k, key, n) && k[n] == '.')
			return true;
	}
	return false;
}

static size_t random_count(void)
{
	switch (below(4)) {
	case 0: return below(4);
	case 1: return below(20);
	case 2: return below(80);
	default: return below(400);
	}
}

static nnh5_dict *random_dict(bool state)
{
	nnh5_dict *d;
	size_t n = random_count();
	char key[512], mod[256] = "";

	if (nnh5_dict_new(&d))
		fail("dict");
	for (size_t i = 0; i < n; i++) {
		if (state) {
			/* modules: keep the previous one, or a new path of depth 0..3 */
			if (i == 0 || below(3) == 0) {
				size_t depth = below(4), at = 0;
				mod[0] = '\0';
				for (size_t k = 0; k < depth; k++) {
					char part[64];
					random_name(part, sizeof part, 1 + below(2));
					at += (size_t)snprintf(mod + at, sizeof mod - at, "%s.", part);
				}
			}
			char leaf[64];
			random_name(leaf, sizeof leaf, 1 + below(2));
			snprintf(key, sizeof key, "%s%s", mod, leaf);
		} else {
			char a[64];
			random_name(a, sizeof a, 1 + below(3));
			snprintf(key, sizeof key, "%s%s", a, below(3) == 0 ? ".x" : "");
			/* now and then a name past 255 bytes (a 2-byte length in the link) */
			if (below(25) == 0) {
				size_t len = 256 + below(250);
				memset(key, 'n', len);
				snprintf(key + len, sizeof key - len, "%zu", i);
			}
		}
		if (conflicts(d, key))
			continue;
		nnh5_tensor *t = random_tensor();
		if (nnh5_dict_set(d, key, t))
			fail("dict set");
	}
	return d;
}

static bool same(const nnh5_tensor *a, const nnh5_tensor *b)
{
	return a->dtype == b->dtype && a->ndim == b->ndim &&
	       !memcmp(a->shape, b->shape, a->ndim * sizeof *a->shape) && a->nbytes == b->nbytes &&
	       (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

static bool same_dict(const nnh5_dict *a, const nnh5_dict *b)
{
	if (nnh5_dict_len(a) != nnh5_dict_len(b))
		return false;
	for (size_t i = 0; i < nnh5_dict_len(a); i++)
		if (strcmp(nnh5_dict_key(a, i), nnh5_dict_key(b, i)) ||
		    !same(nnh5_dict_value(a, i), nnh5_dict_value(b, i)))
			return false;
	return true;
}

static void save_api(int (*fn)(const char *, const void *), const char *path, const void *obj)
{
	setenv("NNH5_DIRECT_WRITE", "0", 1);
	if (fn(path, obj))
		fail(path);
	unsetenv("NNH5_DIRECT_WRITE");
}

static void save_direct(const char *path, nnh5__direct_what what, const void *obj)
{
	bool done;
	if (nnh5__save_direct(&done, path, what, obj, true))
		fail(path);
	if (!done) {
		fprintf(stderr, "direct_gen: %s: the direct writer declined\n", path);
		exit(1);
	}
}

static int save_sd(const char *p, const void *o) { return nnh5_save_state_dict(p, o); }
static int save_d(const char *p, const void *o) { return nnh5_save_dict(p, o); }
static int save_l(const char *p, const void *o) { return nnh5_save_list(p, o); }
static int save_t(const char *p, const void *o) { return nnh5_save_tensor(p, o); }

static int keys_file(size_t n, const char *path, nnh5_dtype dtype)
{
	nnh5_dict *d;
	char key[64];

	if (nnh5_dict_new(&d))
		fail("dict");
	for (size_t i = 0; i < n; i++) {
		nnh5_tensor *t;
		snprintf(key, sizeof key, "model.layers.%zu.p", i);
		if (nnh5_tensor_new(&t, dtype, 1, (const int64_t[]){ 1 }) ||
		    nnh5_dict_set(d, key, t))
			fail("tensor");
	}
	if (nnh5_save_state_dict(path, d))
		fail(path);
	nnh5_dict *back;
	if (nnh5_load_state_dict(&back, path))
		fail("load");
	if (!same_dict(d, back)) {
		fprintf(stderr, "direct_gen: %s: loaded state dict differs\n", path);
		return 1;
	}
	nnh5_dict_free(back);
	nnh5_dict_free(d);
	return 0;
}

static nnh5_tensor *small_tensor(float v)
{
	nnh5_tensor *t;
	if (nnh5_tensor_new(&t, NNH5_FLOAT32, 1, (const int64_t[]){ 2 }))
		fail("tensor");
	((float *)t->data)[0] = v;
	return t;
}

/* Would the direct writer take d (as a state dict or a dict)? Also saves it through the API. */
static bool taken(const char *dir, const char *name, nnh5_dict *d, bool state, int want_rc)
{
	char path[4096];
	bool done;

	snprintf(path, sizeof path, "%s/%s.h5", dir, name);
	if (nnh5__save_direct(&done, path, state ? NNH5__DIRECT_STATE_DICT : NNH5__DIRECT_DICT, d,
			      true))
		fail(path);
	int rc = state ? nnh5_save_state_dict(path, d) : nnh5_save_dict(path, d);
	if (rc != want_rc) {
		fprintf(stderr, "direct_gen: %s: nnh5_save_* returned %d, expected %d: %s\n", name, rc,
			want_rc, nnh5_error_message());
		exit(1);
	}
	nnh5_dict_free(d);
	return done;
}

static nnh5_dict *flat(size_t n, const char *prefix)
{
	nnh5_dict *d;
	char key[64];
	if (nnh5_dict_new(&d))
		fail("dict");
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof key, "%s%zu", prefix, i);
		if (nnh5_dict_set(d, key, small_tensor((float)i)))
			fail("dict set");
	}
	return d;
}

static int declines(const char *dir)
{
	int n = 0;
	nnh5_dict *d;
	nnh5_tensor *t, *tie;

	d = flat(3, "a.w");
	t = small_tensor(1);
	if (nnh5_tensor_share(&tie, t) || nnh5_dict_set(d, "tied.a", t) ||
	    nnh5_dict_set(d, "tied.b", tie))
		fail("tie");
	n += !taken(dir, "tied", d, true, NNH5_OK);
	d = flat(2, "b.");
	if (nnh5_tensor_new(&t, NNH5_BOOL, 1, (const int64_t[]){ 3 }))
		fail("bool");
	((unsigned char *)t->data)[1] = 7;
	if (nnh5_dict_set(d, "bad_bool", t))
		fail("bool");
	n += !taken(dir, "bad-bool", d, true, NNH5_ERR_INVALID);
	n += !taken(dir, "reserved", flat(2, "m.nnh5_x"), true, NNH5_ERR_INVALID);
	d = flat(1, "a");
	if (nnh5_dict_set(d, "a0.b", small_tensor(2)))
		fail("conflict");
	n += !taken(dir, "conflict", d, true, NNH5_ERR_INVALID);
	char longkey[400];
	memset(longkey, 'k', 300);
	strcpy(longkey + 300, ".w");
	d = flat(1, "x");
	if (nnh5_dict_set(d, longkey, small_tensor(3)))
		fail("long key");
	n += !taken(dir, "long-component", d, true, NNH5_ERR_INVALID);
	n += !taken(dir, "links-4097", flat(4097, "m.p"), true, NNH5_OK);
	d = flat(300, "r");
	for (size_t i = 0; i < 4000; i++) {
		char key[64];
		snprintf(key, sizeof key, "deep.g%zu.w", i);
		if (nnh5_dict_set(d, key, small_tensor(0)))
			fail("dict set");
	}
	n += !taken(dir, "deferred-root-300", d, true, NNH5_OK);
	/* and what it takes */
	if (!taken(dir, "links-4096", flat(4096, "m.p"), true, NNH5_OK) ||
	    !taken(dir, "dict-4000", flat(4000, "k"), false, NNH5_OK)) {
		fprintf(stderr, "direct_gen: the direct writer declined a save it writes\n");
		return 1;
	}
	printf("declines: %d\n", n);
	return n == 7 ? 0 : 1;
}

int main(int argc, char **argv)
{
	char a[4096], b[4096];

	if ((argc == 4 || argc == 5) && !strcmp(argv[1], "keys")) {
		nnh5_dtype dt = NNH5_FLOAT32;
		if (argc == 5 && nnh5_dtype_from_name(&dt, argv[4]))
			return fail("dtype");
		return keys_file((size_t)strtoull(argv[2], NULL, 10), argv[3], dt);
	}
	if (argc == 3 && !strcmp(argv[1], "declines"))
		return declines(argv[2]);
	if (argc != 4) {
		fprintf(stderr, "usage: direct_gen SEED COUNT DIR | direct_gen keys N FILE\n");
		return 2;
	}
	rng_state = strtoull(argv[1], NULL, 10);
	size_t count = (size_t)strtoull(argv[2], NULL, 10);
	for (size_t i = 0; i < count; i++) {
		size_t kind = below(10);
		snprintf(a, sizeof a, "%s/%zu-api.h5", argv[3], i);
		snprintf(b, sizeof b, "%s/%zu-direct.h5", argv[3], i);
		if (kind < 6) {
			nnh5_dict *d = random_dict(true), *back;
			save_api(save_sd, a, d);
			save_direct(b, NNH5__DIRECT_STATE_DICT, d);
			if (nnh5_load_state_dict(&back, b) || !same_dict(d, back))
				fail(b);
			nnh5_dict_free(back);
			nnh5_dict_free(d);
			printf("%zu state_dict\n", i);
		} else if (kind < 8) {
			nnh5_dict *d = random_dict(false), *back;
			save_api(save_d, a, d);
			save_direct(b, NNH5__DIRECT_DICT, d);
			if (nnh5_load_dict(&back, b) || !same_dict(d, back))
				fail(b);
			nnh5_dict_free(back);
			nnh5_dict_free(d);
			printf("%zu dict\n", i);
		} else if (kind < 9) {
			nnh5_list *l, *back;
			size_t n = random_count() / 4;
			if (nnh5_list_new(&l))
				fail("list");
			for (size_t k = 0; k < n; k++)
				if (nnh5_list_append(l, random_tensor()))
					fail("list append");
			save_api(save_l, a, l);
			save_direct(b, NNH5__DIRECT_LIST, l);
			if (nnh5_load_list(&back, b) || nnh5_list_len(back) != n)
				fail(b);
			for (size_t k = 0; k < n; k++)
				if (!same(nnh5_list_get(l, k), nnh5_list_get(back, k)))
					fail(b);
			nnh5_list_free(back);
			nnh5_list_free(l);
			printf("%zu list\n", i);
		} else {
			nnh5_tensor *t = random_tensor(), *back;
			save_api(save_t, a, t);
			save_direct(b, NNH5__DIRECT_TENSOR, t);
			if (nnh5_load_tensor(&back, b) || !same(t, back))
				fail(b);
			nnh5_tensor_free(back);
			nnh5_tensor_free(t);
			printf("%zu tensor\n", i);
		}
	}
	return 0;
}
