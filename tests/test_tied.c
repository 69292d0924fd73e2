/*
 * tests/test_tied.c - tied tensors: two names of one tensor save as one
 * dataset and an HDF5 hard link, and load back tied (one buffer, counted
 * once against the load limits; copies with copy_aliases).
 */
#include "testutil.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The address of the object a path names in the file at path (HADDR_UNDEF if none). */
static haddr_t object_addr(const char *path, const char *name)
{
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	H5O_info_t info;
	haddr_t a = HADDR_UNDEF;

	assert_true(fid >= 0);
	if (H5Oget_info_by_name2(fid, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0)
		a = info.addr;
	H5Fclose(fid);
	return a;
}

static long file_size(const char *path)
{
	size_t n;
	char *p = tu_slurp(path, &n);
	assert_non_null(p);
	free(p);
	return (long)n;
}

static void share_frees_in_any_order(void **state)
{
	int64_t shape[] = { 3 };
	nnh5_tensor *a = tu_seq(NNH5_FLOAT32, 1, shape, 1, 0), *b = NULL, *c = NULL;
	(void)state;

	ok(nnh5_tensor_share(&b, a));
	ok(nnh5_tensor_share(&c, b));
	assert_true(nnh5_tensor_tied(a, b));
	assert_true(nnh5_tensor_tied(c, a));
	assert_true(nnh5_tensor_owns_data(b));
	ok(nnh5_tensor_set(b, 1, 42.0));
	assert_true(nnh5_tensor_get(a, 1) == 42.0);
	/* The first owner goes first: the others keep the elements (ASan/valgrind watch). */
	nnh5_tensor_free(a);
	assert_true(nnh5_tensor_get(c, 1) == 42.0);
	nnh5_tensor_free(c);
	assert_true(nnh5_tensor_get(b, 2) == 2.0);
	nnh5_tensor_free(b);
}

static void not_tied(void **state)
{
	int64_t shape[] = { 4 }, two[] = { 2, 2 };
	nnh5_tensor *a = tu_seq(NNH5_FLOAT32, 1, shape, 1, 0), *r = NULL, *e = NULL, *e2 = NULL;
	(void)state;

	ok(nnh5_tensor_reshape(&r, a, 2, two));
	assert_false(nnh5_tensor_tied(a, r)); /* same memory, another shape */
	assert_false(nnh5_tensor_tied(a, NULL));
	ok(nnh5_tensor_new(&e, NNH5_FLOAT32, 1, (int64_t[]){ 0 }));
	ok(nnh5_tensor_share(&e2, e));
	assert_false(nnh5_tensor_tied(e, e2)); /* nothing to share */
	nnh5_tensor_free(e2);
	nnh5_tensor_free(e);
	nnh5_tensor_free(r);
	nnh5_tensor_free(a);
}

/* GPT-2: the token embedding and the output projection are one tensor. */
static nnh5_dict *gpt2_like(void)
{
	int64_t emb[] = { 512, 64 }, b[] = { 64 };
	nnh5_dict *sd;

	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "transformer.wte.weight", tu_seq(NNH5_FLOAT32, 2, emb, 0.5, 1)));
	ok(nnh5_dict_set(sd, "transformer.ln_f.bias", tu_seq(NNH5_FLOAT32, 1, b, 1, 0)));
	ok(nnh5_dict_tie(sd, "lm_head.weight", "transformer.wte.weight"));
	return sd;
}

static void gpt2_tie_saves_once_and_loads_tied(void **state)
{
	/* tu_path() returns a static buffer: keep copies. */
	char path[4096], plain[4096];
	nnh5_dict *sd = gpt2_like(), *copies, *back = NULL;
	nnh5_tensor *c = NULL;
	(void)state;

	snprintf(path, sizeof path, "%s", tu_path("gpt2.h5"));
	snprintf(plain, sizeof plain, "%s", tu_path("gpt2-copies.h5"));
	ok(nnh5_save_state_dict(path, sd));
	/* The same values, untied, for comparison. */
	ok(nnh5_dict_new(&copies));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		ok(nnh5_tensor_clone(&c, nnh5_dict_value(sd, i)));
		ok(nnh5_dict_set(copies, nnh5_dict_key(sd, i), c));
	}
	ok(nnh5_save_state_dict(plain, copies));
	/* One dataset under two names (a hard link), across nested groups. */
	haddr_t a = object_addr(path, "/transformer/wte/weight");
	assert_true(a != HADDR_UNDEF);
	assert_true(a == object_addr(path, "/lm_head/weight"));
	assert_true(object_addr(plain, "/transformer/wte/weight") !=
		    object_addr(plain, "/lm_head/weight"));
	/* 128 KiB stored once: the tied file is smaller by about that. */
	assert_true(file_size(plain) - file_size(path) >= 512 * 64 * 4 - 4096);

	ok(nnh5_load_state_dict(&back, path));
	assert_int_equal(nnh5_dict_len(back), 3);
	assert_string_equal(nnh5_dict_key(back, 2), "lm_head.weight");
	assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "transformer.wte.weight"),
				     nnh5_dict_get(back, "lm_head.weight")));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++)
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(sd, i),
						      nnh5_dict_get(back, nnh5_dict_key(sd, i))));
	/* The tie is live: a write through one name shows in the other. */
	ok(nnh5_tensor_set(nnh5_dict_get(back, "lm_head.weight"), 0, -7.0));
	assert_true(nnh5_tensor_get(nnh5_dict_get(back, "transformer.wte.weight"), 0) == -7.0);
	/* Removing the first name leaves the elements with the second. */
	ok(nnh5_dict_remove(back, "transformer.wte.weight"));
	assert_true(nnh5_tensor_get(nnh5_dict_get(back, "lm_head.weight"), 0) == -7.0);
	nnh5_dict_free(back);
	nnh5_dict_free(copies);
	nnh5_dict_free(sd);
}

/* A tie counts once: it loads under a cap that two copies would pass. */
static void tie_counts_once(void **state)
{
	const char *path = tu_path("gpt2-cap.h5");
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_dict *sd = gpt2_like(), *back = NULL;
	nnh5_file *f;
	(void)state;

	ok(nnh5_save_state_dict(path, sd));
	o.max_load_bytes = 512 * 64 * 4 + 64 * 4; /* each tensor once */
	ok(nnh5_file_open_ext(&f, path, NNH5_READ, &o));
	ok(nnh5_file_read_state_dict(&back, f, "/"));
	nnh5_file_close(f);
	nnh5_dict_free(back);
	/* As copies the second name counts again: refused, naming the alias. */
	o.copy_aliases = true;
	ok(nnh5_file_open_ext(&f, path, NNH5_READ, &o));
	fails(NNH5_ERR_OVERFLOW, nnh5_file_read_state_dict(&back, f, "/"),
	      "another name of '/transformer/wte/weight'", "max_load_bytes");
	nnh5_file_close(f);
	/* With room for the copy: two buffers. */
	o.max_load_bytes = 0;
	ok(nnh5_file_open_ext(&f, path, NNH5_READ, &o));
	ok(nnh5_file_read_state_dict(&back, f, "/"));
	nnh5_file_close(f);
	assert_false(nnh5_tensor_tied(nnh5_dict_get(back, "transformer.wte.weight"),
				      nnh5_dict_get(back, "lm_head.weight")));
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "transformer.wte.weight"),
					      nnh5_dict_get(back, "lm_head.weight")));
	nnh5_dict_free(back);
	nnh5_dict_free(sd);
}

/* Dicts, lists and views of the caller's memory tie the same way; the map keeps ties. */
static void dicts_lists_views_and_maps(void **state)
{
	char dpath[4096], lpath[4096];
	float mem[6] = { 1, 2, 3, 4, 5, 6 };
	int64_t shape[] = { 6 }, two[] = { 2, 3 };
	nnh5_tensor *v1, *v2, *v3;
	nnh5_dict *d, *back = NULL;
	nnh5_list *l, *lback = NULL;
	nnh5_map *m;
	(void)state;

	snprintf(dpath, sizeof dpath, "%s", tu_path("tied-dict.h5"));
	snprintf(lpath, sizeof lpath, "%s", tu_path("tied-list.h5"));
	ok(nnh5_tensor_view(&v1, NNH5_FLOAT32, 1, shape, mem, sizeof mem));
	ok(nnh5_tensor_view(&v2, NNH5_FLOAT32, 1, shape, mem, sizeof mem));
	ok(nnh5_tensor_view(&v3, NNH5_FLOAT32, 2, two, mem, sizeof mem)); /* another shape: a copy */
	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "a", v1));
	ok(nnh5_dict_set(d, "b", v2));
	ok(nnh5_dict_set(d, "c", v3));
	ok(nnh5_save_dict(dpath, d));
	assert_true(object_addr(dpath, "/a") == object_addr(dpath, "/b"));
	assert_true(object_addr(dpath, "/a") != object_addr(dpath, "/c"));
	ok(nnh5_load_dict(&back, dpath));
	assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "a"), nnh5_dict_get(back, "b")));
	assert_false(nnh5_tensor_tied(nnh5_dict_get(back, "a"), nnh5_dict_get(back, "c")));
	nnh5_dict_free(back);
	/* The map: both names are one view of the file (or one copy). */
	ok(nnh5_map_open(&m, dpath, NULL));
	ok(nnh5_map_dict(&back, m, "/"));
	assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "a"), nnh5_dict_get(back, "b")));
	nnh5_dict_free(back);
	nnh5_map_close(m);

	/* A list: items 0 and 2 are one tensor. */
	nnh5_tensor *t = tu_seq(NNH5_INT64, 1, shape, 3, 1), *s = NULL;
	ok(nnh5_tensor_share(&s, t));
	ok(nnh5_list_new(&l));
	ok(nnh5_list_append(l, t));
	ok(nnh5_list_append(l, tu_seq(NNH5_INT64, 1, shape, 1, 0)));
	ok(nnh5_list_append(l, s));
	ok(nnh5_save_list(lpath, l));
	assert_true(object_addr(lpath, "/0") == object_addr(lpath, "/2"));
	ok(nnh5_load_list(&lback, lpath));
	assert_int_equal(nnh5_list_len(lback), 3);
	assert_true(nnh5_tensor_tied(nnh5_list_get(lback, 0), nnh5_list_get(lback, 2)));
	assert_true(nnh5_tensor_bitwise_equal(nnh5_list_get(lback, 2), t));
	nnh5_list_free(lback);
	nnh5_list_free(l);
	nnh5_dict_free(d);
}

/* Checkpoints keep ties, saved in the calling thread or staged for a background save. */
static void checkpoints_keep_ties(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	char dir[4096], file[4200];
	(void)state;

	for (int async = 0; async < 2; async++) {
		nnh5_checkpoint_manager *m;
		nnh5_checkpoint *c, *back;
		snprintf(dir, sizeof dir, "%s", tu_path(async ? "ckpt-async" : "ckpt-sync"));
		o.async = async;
		ok(nnh5_checkpoint_manager_open(&m, dir, &o));
		ok(nnh5_checkpoint_new(&c, 1));
		ok(nnh5_checkpoint_set_state(c, "model", gpt2_like()));
		ok(nnh5_checkpoint_manager_save(m, c));
		nnh5_checkpoint_free(c);
		ok(nnh5_checkpoint_manager_close(m));
		snprintf(file, sizeof file, "%s/ckpt-000000000001.h5", dir);
		assert_true(object_addr(file, "/model/transformer/wte/weight") ==
			    object_addr(file, "/model/lm_head/weight"));
		ok(nnh5_checkpoint_load(&back, file));
		const nnh5_dict *sd = nnh5_checkpoint_state(back, "model");
		assert_true(nnh5_tensor_tied(nnh5_dict_get(sd, "transformer.wte.weight"),
					     nnh5_dict_get(sd, "lm_head.weight")));
		nnh5_checkpoint_free(back);
	}
}

static void tie_errors(void **state)
{
	nnh5_dict *d;
	int64_t shape[] = { 2 };
	(void)state;

	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "x", tu_seq(NNH5_FLOAT32, 1, shape, 1, 0)));
	fails(NNH5_ERR_NOT_FOUND, nnh5_dict_tie(d, "y", "missing"), "'missing' not found");
	fails(NNH5_ERR_INVALID, nnh5_dict_tie(d, "x", "x"), "two different keys");
	ok(nnh5_dict_tie(d, "y", "x"));
	/* Re-tying a key replaces its tensor; the first keeps its elements. */
	ok(nnh5_dict_tie(d, "y", "x"));
	assert_true(nnh5_tensor_tied(nnh5_dict_get(d, "x"), nnh5_dict_get(d, "y")));
	nnh5_dict_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(share_frees_in_any_order),
		cmocka_unit_test(not_tied),
		cmocka_unit_test(gpt2_tie_saves_once_and_loads_tied),
		cmocka_unit_test(tie_counts_once),
		cmocka_unit_test(dicts_lists_views_and_maps),
		cmocka_unit_test(checkpoints_keep_ties),
		cmocka_unit_test(tie_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
