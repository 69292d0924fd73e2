/*
 * tests/direct/read_check.c - the direct HDF5 reader (lib/file/load_direct.c)
 * against the HDF5 API path, file by file (driven by read_check.py).
 *
 *   read_check compare KIND FILE...
 *       loads each FILE with nnh5_load_KIND (tensor, list, dict,
 *       state_dict) twice: as users do (the direct reader first) and with
 *       NNH5_DIRECT_READ=0 (the API path only). Both must give the same
 *       status and message, or equal results bit for bit (keys, order,
 *       dtypes, shapes, data). Prints "taken FILE" or "declined FILE" (the
 *       direct reader's counter says which).
 *   read_check corrupt KIND FILE STEP
 *       copies of FILE (which the direct reader must take) with every
 *       STEP-th byte flipped (one bit, then all bits) and cut at every
 *       STEP-th length, given to the direct reader alone: a copy it takes
 *       must load equal to the original, one it declines must leave no
 *       result and no error (the API path then loads it; HDF5 itself hangs
 *       on some damaged global heaps, so it is not run here). Prints
 *       "corrupt: N copies, T taken".
 *
 * Exits 1 on the first difference, saying what differs.
 */
#include "file/load_direct.h"
#include "core/internal.h"
#include "nnh5/dict.h"
#include "nnh5/list.h"
#include "nnh5/save.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_TENSOR, K_LIST, K_DICT, K_STATE };

struct result {
	int rc;
	char msg[1024];
	nnh5_tensor *t;
	nnh5_list *l;
	nnh5_dict *d;
};

static int kind_of(const char *s)
{
	return !strcmp(s, "tensor") ? K_TENSOR : !strcmp(s, "list") ? K_LIST
	       : !strcmp(s, "dict") ? K_DICT : !strcmp(s, "state_dict") ? K_STATE : -1;
}

static void load(struct result *r, int kind, const char *path, bool direct)
{
	memset(r, 0, sizeof *r);
	if (direct)
		unsetenv("NNH5_DIRECT_READ");
	else
		setenv("NNH5_DIRECT_READ", "0", 1);
	switch (kind) {
	case K_TENSOR: r->rc = nnh5_load_tensor(&r->t, path); break;
	case K_LIST: r->rc = nnh5_load_list(&r->l, path); break;
	case K_DICT: r->rc = nnh5_load_dict(&r->d, path); break;
	default: r->rc = nnh5_load_state_dict(&r->d, path); break;
	}
	snprintf(r->msg, sizeof r->msg, "%s", r->rc ? nnh5_error_message() : "");
	unsetenv("NNH5_DIRECT_READ");
}

static void release(struct result *r)
{
	nnh5_tensor_free(r->t);
	nnh5_list_free(r->l);
	nnh5_dict_free(r->d);
}

static bool same_tensor(const nnh5_tensor *a, const nnh5_tensor *b)
{
	return a && b && a->dtype == b->dtype && a->ndim == b->ndim &&
	       !memcmp(a->shape, b->shape, a->ndim * sizeof *a->shape) && a->nbytes == b->nbytes &&
	       (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

/* NULL when a and b are equal, else what differs. */
static const char *differ(const struct result *a, const struct result *b)
{
	if (a->rc != b->rc)
		return "status";
	if (strcmp(a->msg, b->msg))
		return "message";
	if (a->rc)
		return NULL;
	if (a->t || b->t)
		return same_tensor(a->t, b->t) ? NULL : "tensor";
	if (a->l || b->l) {
		if (!a->l || !b->l || nnh5_list_len(a->l) != nnh5_list_len(b->l))
			return "list length";
		for (size_t i = 0; i < nnh5_list_len(a->l); i++)
			if (!same_tensor(nnh5_list_get(a->l, i), nnh5_list_get(b->l, i)))
				return "list item";
		return NULL;
	}
	if (!a->d || !b->d || nnh5_dict_len(a->d) != nnh5_dict_len(b->d))
		return "dict length";
	for (size_t i = 0; i < nnh5_dict_len(a->d); i++) {
		if (strcmp(nnh5_dict_key(a->d, i), nnh5_dict_key(b->d, i)))
			return "key or order";
		if (!same_tensor(nnh5_dict_value(a->d, i), nnh5_dict_value(b->d, i)))
			return "dict value";
	}
	return NULL;
}

/* Both ways; true when the direct reader took it. Exits on a difference. */
static bool compare(int kind, const char *path, const struct result *original)
{
	struct result a, b;
	uint64_t before = nnh5__load_direct_taken();
	const char *why;

	load(&a, kind, path, true);
	bool took = nnh5__load_direct_taken() != before;
	load(&b, kind, path, false);
	if (nnh5__load_direct_taken() != before + took) {
		fprintf(stderr, "read_check: %s: NNH5_DIRECT_READ=0 did not turn the reader off\n", path);
		exit(1);
	}
	why = differ(&a, &b);
	if (!why && took && original)
		why = differ(&a, original) ? "the original (a damaged copy was taken)" : NULL;
	if (why) {
		fprintf(stderr, "read_check: %s: direct and API loads differ in %s (%d '%s' / %d '%s')\n",
			path, why, a.rc, a.msg, b.rc, b.msg);
		exit(1);
	}
	release(&a);
	release(&b);
	return took;
}

static unsigned char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long len;

	if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
	    !(buf = malloc((size_t)len + 1)) || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "read_check: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	*n = (size_t)len;
	return buf;
}

static void spill(const char *path, const unsigned char *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, 1, n, f) != n || fclose(f)) {
		fprintf(stderr, "read_check: cannot write %s\n", path);
		exit(1);
	}
}

/* The direct reader alone (no API path: HDF5 itself hangs on some damaged heaps). */
static bool direct_only(struct result *r, int kind, const char *path)
{
	static const nnh5__direct_what whats[] = { NNH5__DIRECT_TENSOR, NNH5__DIRECT_LIST,
						   NNH5__DIRECT_DICT, NNH5__DIRECT_STATE_DICT };
	void *out = kind == K_TENSOR ? (void *)&r->t : kind == K_LIST ? (void *)&r->l : (void *)&r->d;
	bool done = true;

	memset(r, 0, sizeof *r);
	nnh5_error_clear();
	r->rc = nnh5__load_direct(&done, out, path, NULL, whats[kind]);
	if (!done && (r->rc || r->t || r->l || r->d || nnh5_error_status() != NNH5_OK)) {
		fprintf(stderr, "read_check: %s: the direct reader declined but left a result or error\n",
			path);
		exit(1);
	}
	return done;
}

/*
 * A damaged copy the direct reader takes must load as the original did (the
 * checksums cover the data); one it declines goes to the API path, whose
 * result is then the load's by construction.
 */
static bool check_copy(int kind, const char *path, const struct result *orig)
{
	struct result r;
	bool took = direct_only(&r, kind, path);
	const char *why = took ? differ(&r, orig) : NULL;

	if (why) {
		fprintf(stderr, "read_check: %s: a damaged copy was taken and differs in %s\n", path, why);
		exit(1);
	}
	release(&r);
	return took;
}

static int corrupt(int kind, const char *path, size_t step)
{
	struct result orig;
	size_t n, copies = 0, took = 0;
	unsigned char *b = slurp(path, &n);
	char tmp[4200];

	snprintf(tmp, sizeof tmp, "%s.corrupt", path);
	struct result first;
	load(&orig, kind, path, false);
	bool took_first = direct_only(&first, kind, path);
	const char *why = took_first ? differ(&first, &orig) : "status";
	release(&first);
	if (orig.rc || why) {
		fprintf(stderr, "read_check: %s does not load directly as through the API (%s)\n",
			path, why);
		return 1;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i += step) {
			unsigned char mask = pass ? 0xff : (unsigned char)(1u << (i % 8));
			b[i] ^= mask;
			spill(tmp, b, n);
			b[i] ^= mask;
			took += check_copy(kind, tmp, &orig);
			copies++;
		}
	}
	for (size_t len = 0; len < n; len += step) {
		spill(tmp, b, len);
		took += check_copy(kind, tmp, &orig);
		copies++;
	}
	remove(tmp);
	release(&orig);
	free(b);
	printf("corrupt: %zu copies, %zu taken\n", copies, took);
	/* Flips in the data and in bytes nothing reads are taken; most others are not. */
	return took > 0 && took < copies ? 0 : 1;
}

int main(int argc, char **argv)
{
	int kind = argc > 2 ? kind_of(argv[2]) : -1;

	if (argc >= 3 && kind >= 0 && !strcmp(argv[1], "compare")) {
		for (int i = 3; i < argc; i++)
			printf("%s %s\n", compare(kind, argv[i], NULL) ? "taken" : "declined", argv[i]);
		return 0;
	}
	if (argc == 5 && kind >= 0 && !strcmp(argv[1], "corrupt"))
		return corrupt(kind, argv[3], (size_t)strtoull(argv[4], NULL, 10));
	fprintf(stderr, "usage: read_check compare KIND FILE... | corrupt KIND FILE STEP\n");
	return 2;
}
