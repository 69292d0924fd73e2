/*
 * nnh5_diff.c - `nnh5 diff A B [PATH]`: compare two files key by key (a key
 * is a dataset's path below PATH), the question behind "did fine-tuning
 * change this layer?" or "is this export the same checkpoint?". Exit 0 when
 * everything is identical (within --atol/--rtol), 1 when anything differs.
 *
 * Values compare as numpy.isclose does: |a - b| <= atol + rtol * |b|, NaN
 * equal to NaN, an infinity only to itself. Tensors whose bytes are equal are
 * identical without further ado, which also keeps int64 values beyond 2^53
 * exact.
 */
#include "nnh5_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nnh5/file.h>

static const char diff_usage[] =
	"usage: nnh5 diff [--atol X] [--rtol X] A B [PATH]\n"
	"\n"
	"Compare the datasets of files A and B (below PATH, default the root) key\n"
	"by key: only in A, only in B, dtype or shape differs, values differ (with\n"
	"the count and the largest absolute and relative difference), identical.\n"
	"Exit status 0 when all are identical, 1 when anything differs.\n"
	"\n"
	"  --atol X   values within X of each other are equal (default 0)\n"
	"  --rtol X   values within X * |b| of each other are equal (default 0)\n"
	"  --help     this help\n";

struct side {
	const char *file;
	struct walk w;
	nnh5_file *f;
};

static const char *rel_key(const struct entry *e, const char *root)
{
	size_t n = strlen(root);
	if (!strcmp(e->path, root))
		return e->name;
	if (n == 1)
		return e->path + 1;
	return e->path + n + 1;
}

/* A key: data, or what a load refuses in its place (which may be data). */
static bool is_key(const struct entry *e)
{
	return e->type == NNH5_ENTRY_TENSOR || e->type == NNH5_ENTRY_DATASET ||
	       e->type == NNH5_ENTRY_REFUSED;
}

static const struct entry *find_key(const struct walk *w, const char *root, const char *key)
{
	for (size_t i = 0; i < w->n; i++)
		if (is_key(&w->v[i]) && !strcmp(rel_key(&w->v[i], root), key))
			return &w->v[i];
	return NULL;
}

static int load(nnh5_tensor **t, struct side *s, const char *path)
{
	return nnh5_file_read_tensor(t, s->f, path) == NNH5_OK ? 0 : -1;
}

static const char *held(const struct entry *e)
{
	return e->type == NNH5_ENTRY_TENSOR ? nnh5_dtype_name(e->dtype) : e->type_desc;
}

static void key_line(char mark, const char *key)
{
	printf("%c ", mark);
	tool_put(stdout, key);
	fputs(": ", stdout);
}

/* A key in one file only (mark '-': A, '+': B). Returns 1 when that file refuses it, else 0. */
static size_t only_in(char mark, const struct entry *e, const char *key)
{
	key_line(mark, key);
	printf("only in %c", mark == '-' ? 'A' : 'B');
	if (e->type != NNH5_ENTRY_REFUSED) {
		putchar('\n');
		return 0;
	}
	fputs(", refused there: ", stdout);
	tool_put_message(stdout, e->message);
	putchar('\n');
	return 1;
}

/*
 * Complex elements are compared part by part: *t becomes a view of both
 * parts as one real tensor and *owner keeps the loaded tensor (freed after
 * the view). Other dtypes are left alone.
 */
static int as_real(nnh5_tensor **t, nnh5_tensor **owner)
{
	nnh5_dtype dt = nnh5_tensor_dtype(*t);
	int64_t n2 = (int64_t)(2 * nnh5_tensor_numel(*t));
	nnh5_tensor *v = NULL;

	if (!nnh5_dtype_is_complex((int)dt))
		return 0;
	if (nnh5_tensor_view_const(&v, dt == NNH5_COMPLEX64 ? NNH5_FLOAT32 : NNH5_FLOAT64, 1, &n2,
				   nnh5_tensor_data(*t), nnh5_tensor_nbytes(*t)) < 0)
		return -1;
	*owner = *t;
	*t = v;
	return 0;
}

/* Compare one key present in both files. Returns 0 identical, 1 differs, 2 unreadable. */
static int compare(struct side *a, struct side *b, const struct entry *ea, const struct entry *eb,
		   const char *key, double atol, double rtol)
{
	nnh5_tensor *ta = NULL, *tb = NULL, *owner_a = NULL, *owner_b = NULL;
	char sa[1024], sb[1024];
	int rc = 0;

	if (ea->type == NNH5_ENTRY_REFUSED || eb->type == NNH5_ENTRY_REFUSED) {
		const struct entry *r = ea->type == NNH5_ENTRY_REFUSED ? ea : eb;
		key_line('?', key);
		printf("not compared: refused in %c: ", r == ea ? 'A' : 'B');
		tool_put_message(stdout, r->message);
		putchar('\n');
		return 2;
	}
	if (ea->type != NNH5_ENTRY_TENSOR || eb->type != NNH5_ENTRY_TENSOR) {
		key_line('?', key);
		fputs("not compared: A holds ", stdout);
		tool_put(stdout, held(ea));
		fputs(", B holds ", stdout);
		tool_put(stdout, held(eb));
		fputs(" (not tensors nnh5 loads)\n", stdout);
		return 1;
	}
	tool_shape_str(sa, sizeof sa, ea->null_space, ea->ndim, ea->shape);
	tool_shape_str(sb, sizeof sb, eb->null_space, eb->ndim, eb->shape);
	if (ea->dtype != eb->dtype) {
		key_line('!', key);
		printf("dtype differs: %s in A, %s in B\n", nnh5_dtype_name(ea->dtype),
		       nnh5_dtype_name(eb->dtype));
		return 1;
	}
	if (strcmp(sa, sb)) {
		key_line('!', key);
		printf("shape differs: %s in A, %s in B\n", sa, sb);
		return 1;
	}
	if (load(&ta, a, ea->path) < 0 || load(&tb, b, eb->path) < 0 ||
	    as_real(&ta, &owner_a) < 0 || as_real(&tb, &owner_b) < 0) {
		key_line('?', key);
		fputs("cannot read: ", stdout);
		tool_put_message(stdout, nnh5_error_message());
		putchar('\n');
		rc = 2;
		goto done;
	}
	if (nnh5_tensor_bitwise_equal(ta, tb)) {
		key_line('=', key);
		printf("identical\n");
		goto done;
	}
	{
		size_t n = nnh5_tensor_numel(ta), ndiff = 0;
		double maxabs = 0, maxrel = 0;
		for (size_t i = 0; i < n; i++) {
			double x = nnh5_tensor_get(ta, i), y = nnh5_tensor_get(tb, i), d, r;
			if ((isnan(x) && isnan(y)) || x == y)
				continue;
			d = isnan(x) || isnan(y) ? (double)INFINITY : fabs(x - y);
			r = y != 0 ? d / fabs(y) : (double)INFINITY;
			if (!isnan(d) && d > maxabs)
				maxabs = d;
			if (!isnan(r) && r > maxrel)
				maxrel = r;
			if (!(d <= atol + rtol * fabs(y)))
				ndiff++;
		}
		if (ndiff == 0) {
			key_line('=', key);
			if (maxabs > 0)
				printf("equal within tolerance (max abs diff %.6g, max rel diff %.6g)\n",
				       maxabs, maxrel);
			else
				printf("identical\n"); /* e.g. -0.0 and 0.0, or NaN payloads */
		} else {
			key_line('~', key);
			printf("values differ: %zu of %zu elements, max abs diff %.6g, max rel diff %.6g\n",
			       ndiff, n, maxabs, maxrel);
			rc = 1;
		}
	}
done:
	nnh5_tensor_free(ta);
	nnh5_tensor_free(tb);
	nnh5_tensor_free(owner_a);
	nnh5_tensor_free(owner_b);
	return rc;
}

int cmd_diff(int argc, char **argv)
{
	double atol = 0, rtol = 0;
	const struct tool_opt opts[] = { { "--atol", NULL, &atol, NULL }, { "--rtol", NULL, &rtol, NULL },
					 { NULL, NULL, NULL, NULL } };
	const char *pos[3], *files[2], *path;
	struct side s[2];
	char *npath;
	size_t n_same = 0, n_diff = 0, n_only_a = 0, n_only_b = 0, n_err = 0;
	int rc = tool_args(argc, argv, "diff", diff_usage, opts, pos, 2, 3, "needs two files");

	if (rc >= 0)
		return rc;
	rc = EXIT_USAGE;
	files[0] = pos[0];
	files[1] = pos[1];
	path = pos[2];
	memset(s, 0, sizeof s);
	npath = tool_norm_path(path ? path : "/");
	if (!npath) {
		fprintf(stderr, "nnh5 diff: PATH may not have '.' or '..' components\n");
		return EXIT_USAGE;
	}
	for (int k = 0; k < 2; k++) {
		s[k].file = files[k];
		s[k].f = tool_open("diff", files[k]);
		if (!s[k].f || tool_walk(&s[k].w, "diff", s[k].f, npath, false) < 0)
			goto done;
	}
	for (size_t i = 0; i < s[0].w.n; i++) {
		const struct entry *ea = &s[0].w.v[i], *eb;
		const char *key = rel_key(ea, npath);
		if (!is_key(ea))
			continue;
		eb = find_key(&s[1].w, npath, key);
		if (!eb) {
			n_err += only_in('-', ea, key);
			n_only_a++;
			continue;
		}
		switch (compare(&s[0], &s[1], ea, eb, key, atol, rtol)) {
		case 0: n_same++; break;
		case 1: n_diff++; break;
		default: n_err++; break;
		}
	}
	for (size_t i = 0; i < s[1].w.n; i++) {
		const struct entry *eb = &s[1].w.v[i];
		const char *key = rel_key(eb, npath);
		if (is_key(eb) && !find_key(&s[0].w, npath, key)) {
			n_err += only_in('+', eb, key);
			n_only_b++;
		}
	}
	printf("%zu identical, %zu differ, %zu only in A, %zu only in B", n_same, n_diff, n_only_a,
	       n_only_b);
	if (n_err)
		printf(", %zu refused or unreadable", n_err);
	putchar('\n');
	if (n_err) {
		fprintf(stderr, "nnh5 diff: some objects were refused or could not be read\n");
		rc = EXIT_USAGE;
	} else {
		rc = n_diff || n_only_a || n_only_b ? EXIT_DIFFERS : 0;
	}
done:
	for (int k = 0; k < 2; k++) {
		tool_walk_free(&s[k].w);
		nnh5_file_discard(s[k].f);
	}
	free(npath);
	return rc;
}
