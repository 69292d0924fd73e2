/*
 * tests/formats/test_st_writer.c - the streaming safetensors writer
 * (nnh5_safetensors_writer_*, nnh5_safetensors_save_folder_stream): puts in
 * any order give the bytes of nnh5_safetensors_save(); puts unlike their
 * declaration are refused naming the tensor; a missing put, a discard or a
 * failing source leave no file and no temporary file behind.
 */
#include "testutil.h"
#include "core/internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int64_t s23[] = { 2, 3 }, s4[] = { 4 }, s32[] = { 3, 2 };

/* Three tensors of two dtypes: "b" (float32 2x3), "a" (int16 4), "c" (float32 4). */
static nnh5_dict *three(void)
{
	nnh5_dict *d;

	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "b", tu_seq(NNH5_FLOAT32, 2, s23, 1.0, 0.5)));
	ok(nnh5_dict_set(d, "a", tu_seq(NNH5_INT16, 1, s4, 3.0, 1.0)));
	ok(nnh5_dict_set(d, "c", tu_seq(NNH5_FLOAT32, 1, s4, -1.0, 2.0)));
	return d;
}

static const char *names[] = { "b", "a", "c" };
static const nnh5_dtype dtypes[] = { NNH5_FLOAT32, NNH5_INT16, NNH5_FLOAT32 };
static const size_t ndims[] = { 2, 1, 1 };
static const int64_t *const shapes[] = { s23, s4, s4 };
static const char *mk[] = { "format", "pt" }, *mv[] = { "pt", "x\"y" };

static nnh5_safetensors_writer *open_three(const char *path)
{
	nnh5_safetensors_writer *w;

	ok(nnh5_safetensors_writer_open(&w, path, 3, names, dtypes, ndims, shapes, 2, mk, mv));
	return w;
}

static void same_bytes(const char *a, const char *b)
{
	size_t na, nb;
	char *pa = tu_slurp(a, &na), *pb = tu_slurp(b, &nb);

	assert_non_null(pa);
	assert_non_null(pb);
	assert_int_equal(na, nb);
	assert_memory_equal(pa, pb, na);
	free(pa);
	free(pb);
}

static void out_of_order_same_bytes(void **state)
{
	nnh5_dict *d = three();
	nnh5_safetensors_writer *w;
	char ref[4096];

	(void)state;
	snprintf(ref, sizeof ref, "%s", tu_path("ref.safetensors"));
	ok(nnh5_safetensors_save(ref, d, 2, mk, mv));
	w = open_three(tu_path("w.safetensors"));
	assert_false(tu_exists(tu_path("w.safetensors"))); /* nothing in place before the commit */
	ok(nnh5_safetensors_writer_put(w, "c", nnh5_dict_get(d, "c")));
	ok(nnh5_safetensors_writer_put(w, "b", nnh5_dict_get(d, "b")));
	ok(nnh5_safetensors_writer_put(w, "a", nnh5_dict_get(d, "a")));
	ok(nnh5_safetensors_writer_commit(w));
	same_bytes(ref, tu_path("w.safetensors"));
	assert_int_equal(tu_count_files("nnh5-tmp"), 0);
	nnh5_dict_free(d);
}

static void refused_puts_name_the_tensor(void **state)
{
	nnh5_dict *d = three();
	nnh5_safetensors_writer *w = open_three(tu_path("r.safetensors"));
	nnh5_tensor *t;

	(void)state;
	t = tu_seq(NNH5_FLOAT64, 2, s23, 1.0, 0.0);
	fails(NNH5_ERR_TYPE, nnh5_safetensors_writer_put(w, "b", t), "'b'", "float64",
	      "declared float32");
	nnh5_tensor_free(t);
	t = tu_seq(NNH5_FLOAT32, 2, s32, 1.0, 0.0);
	fails(NNH5_ERR_SHAPE, nnh5_safetensors_writer_put(w, "b", t), "'b'", "(3, 2)", "(2, 3)");
	nnh5_tensor_free(t);
	fails(NNH5_ERR_NOT_FOUND, nnh5_safetensors_writer_put(w, "zz", nnh5_dict_get(d, "a")),
	      "'zz'", "not declared");
	ok(nnh5_safetensors_writer_put(w, "a", nnh5_dict_get(d, "a")));
	fails(NNH5_ERR_INVALID, nnh5_safetensors_writer_put(w, "a", nnh5_dict_get(d, "a")), "'a'",
	      "already");
	/* The refusals wrote nothing: the writer goes on and gives the reference bytes. */
	ok(nnh5_safetensors_writer_put(w, "b", nnh5_dict_get(d, "b")));
	ok(nnh5_safetensors_writer_put(w, "c", nnh5_dict_get(d, "c")));
	ok(nnh5_safetensors_writer_commit(w));
	ok(nnh5_safetensors_save(tu_path("r.ref.safetensors"), d, 2, mk, mv));
	same_bytes(tu_path("r.ref.safetensors"), tu_path("r.safetensors"));
	nnh5_dict_free(d);
}

static void missing_put_commits_nothing(void **state)
{
	nnh5_dict *d = three();
	nnh5_safetensors_writer *w = open_three(tu_path("m.safetensors"));

	(void)state;
	ok(nnh5_safetensors_writer_put(w, "a", nnh5_dict_get(d, "a")));
	ok(nnh5_safetensors_writer_put(w, "c", nnh5_dict_get(d, "c")));
	fails(NNH5_ERR_INVALID, nnh5_safetensors_writer_commit(w), "'b'", "never written");
	assert_false(tu_exists(tu_path("m.safetensors")));
	assert_int_equal(tu_count_files("nnh5-tmp"), 0);
	nnh5_dict_free(d);
}

static void discard_leaves_the_target(void **state)
{
	nnh5_dict *d = three();
	nnh5_safetensors_writer *w;
	FILE *f = fopen(tu_path("keep.safetensors"), "wb");
	size_t n;
	char *p;

	(void)state;
	assert_non_null(f);
	fputs("old", f);
	fclose(f);
	w = open_three(tu_path("keep.safetensors"));
	ok(nnh5_safetensors_writer_put(w, "b", nnh5_dict_get(d, "b")));
	nnh5_safetensors_writer_discard(w);
	nnh5_safetensors_writer_discard(NULL);
	p = tu_slurp(tu_path("keep.safetensors"), &n);
	assert_true(p && n == 3 && memcmp(p, "old", 3) == 0);
	free(p);
	w = open_three(tu_path("gone.safetensors"));
	nnh5_safetensors_writer_discard(w);
	assert_false(tu_exists(tu_path("gone.safetensors")));
	assert_int_equal(tu_count_files("nnh5-tmp"), 0);
	nnh5_dict_free(d);
}

static void open_refusals(void **state)
{
	nnh5_safetensors_writer *w = NULL;
	const char *dup[] = { "b", "a", "b" }, *meta[] = { "b", "__metadata__", "c" };
	const nnh5_dtype c128[] = { NNH5_FLOAT32, NNH5_COMPLEX128, NNH5_FLOAT32 };
	const int64_t neg[] = { 2, -1 };
	const int64_t *const bad_shapes[] = { neg, s4, s4 };
	const char *p = tu_path("no.safetensors");

	(void)state;
	fails(NNH5_ERR_INVALID,
	      nnh5_safetensors_writer_open(&w, p, 3, dup, dtypes, ndims, shapes, 0, NULL, NULL),
	      "'b'", "twice");
	fails(NNH5_ERR_INVALID,
	      nnh5_safetensors_writer_open(&w, p, 3, meta, dtypes, ndims, shapes, 0, NULL, NULL),
	      "__metadata__");
	fails(NNH5_ERR_TYPE,
	      nnh5_safetensors_writer_open(&w, p, 3, names, c128, ndims, shapes, 0, NULL, NULL),
	      "'a'", "complex128");
	fails(NNH5_ERR_SHAPE,
	      nnh5_safetensors_writer_open(&w, p, 3, names, dtypes, ndims, bad_shapes, 0, NULL,
					   NULL), "'b'");
	assert_null(w);
	assert_false(tu_exists(p));
	assert_int_equal(tu_count_files("nnh5-tmp"), 0);
}

/* The folder's source: tensor i of the dict, except the one numbered ctx->fail. */
struct src {
	const nnh5_dict *d;
	size_t fail, calls;
	bool wrong; /* give a float64 instead of failing */
};

static int fetch(nnh5_tensor **out, size_t i, void *ctx)
{
	struct src *s = ctx;
	const nnh5_tensor *t = nnh5_dict_value(s->d, i);

	s->calls++;
	if (i == s->fail && s->wrong) {
		*out = tu_seq(NNH5_FLOAT64, nnh5_tensor_ndim(t), nnh5_tensor_shape(t), 1.0, 0.0);
		return NNH5_OK;
	}
	if (i == s->fail)
		return nnh5__error(NNH5_ERR_IO, "the source failed at %zu", i);
	return nnh5_tensor_clone(out, t);
}

static void folder_stream(void **state)
{
	nnh5_dict *d = three();
	struct src s = { d, SIZE_MAX, 0, false };
	char a[4096], b[4096];
	const char *shards[] = { "model-00001-of-00003.safetensors",
				 "model-00002-of-00003.safetensors",
				 "model-00003-of-00003.safetensors", "model.safetensors.index.json" };

	(void)state;
	snprintf(a, sizeof a, "%s", tu_path("ref.dir"));
	snprintf(b, sizeof b, "%s", tu_path("stream.dir"));
	ok(nnh5_safetensors_save_folder(a, d, 20, 2, mk, mv));
	ok(nnh5_safetensors_save_folder_stream(b, 3, names, dtypes, ndims, shapes, 20, 2, mk, mv,
					       fetch, &s));
	assert_int_equal(s.calls, 3);
	for (size_t i = 0; i < 4; i++) {
		char pa[8192], pb[8192];
		snprintf(pa, sizeof pa, "%s/%s", a, shards[i]);
		snprintf(pb, sizeof pb, "%s/%s", b, shards[i]);
		same_bytes(pa, pb);
	}
	/* A failing source stops the save with its status; the next shard is not written. */
	snprintf(b, sizeof b, "%s", tu_path("fail.dir"));
	s.fail = 1;
	s.calls = 0;
	fails(NNH5_ERR_IO, nnh5_safetensors_save_folder_stream(b, 3, names, dtypes, ndims, shapes,
							       20, 0, NULL, NULL, fetch, &s),
	      "the source failed at 1");
	assert_int_equal(s.calls, 2);
	assert_true(tu_exists(tu_path("fail.dir/model-00001-of-00003.safetensors")));
	assert_false(tu_exists(tu_path("fail.dir/model-00002-of-00003.safetensors")));
	assert_false(tu_exists(tu_path("fail.dir/model.safetensors.index.json")));
	/* A fetched tensor unlike its declaration is refused, naming it. */
	s.wrong = true;
	s.fail = 2;
	fails(NNH5_ERR_TYPE, nnh5_safetensors_save_folder_stream(tu_path("wrong.dir"), 3, names,
							       dtypes, ndims, shapes, 20, 0, NULL,
							       NULL, fetch, &s),
	      "'c'", "float64", "declared float32");
	assert_false(tu_exists(tu_path("wrong.dir/model.safetensors.index.json")));
	nnh5_dict_free(d);
}

/* Every tensor is checked before the first shard is written. */
static void folder_checks_first(void **state)
{
	nnh5_dict *d = three();
	struct src s = { d, SIZE_MAX, 0, false };
	const nnh5_dtype c128[] = { NNH5_FLOAT32, NNH5_FLOAT32, NNH5_COMPLEX128 };

	(void)state;
	fails(NNH5_ERR_TYPE, nnh5_safetensors_save_folder_stream(tu_path("early.dir"), 3, names,
							       c128, ndims, shapes, 20, 0, NULL,
							       NULL, fetch, &s),
	      "'c'", "complex128");
	assert_int_equal(s.calls, 0);
	assert_false(tu_exists(tu_path("early.dir")));
	nnh5_dict_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(out_of_order_same_bytes),
		cmocka_unit_test(refused_puts_name_the_tensor),
		cmocka_unit_test(missing_put_commits_nothing),
		cmocka_unit_test(discard_leaves_the_target),
		cmocka_unit_test(open_refusals),
		cmocka_unit_test(folder_stream),
		cmocka_unit_test(folder_checks_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
