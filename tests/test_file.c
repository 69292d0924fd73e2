/*
 * tests/test_file.c - round trips through files: every dtype, scalars,
 * empty and large tensors, lists, dicts, state dicts, many objects in one
 * file, and attributes. Everything must come back bitwise equal and in order.
 */
#include "testutil.h"
#include "file/file_internal.h"

#include <hdf5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tensor whose bytes are a deterministic pseudo-random pattern (any bits). */
static nnh5_tensor *pattern(nnh5_dtype dtype, size_t ndim, const int64_t *shape, uint64_t seed)
{
	nnh5_tensor *t;
	nnh5_rng r;
	ok(nnh5_tensor_new(&t, dtype, ndim, shape));
	nnh5_rng_seed(&r, seed);
	unsigned char *p = nnh5_tensor_mutable_data(t);
	for (size_t i = 0; i < nnh5_tensor_nbytes(t); i++)
		p[i] = (unsigned char)nnh5_rng_u64(&r);
	if (dtype == NNH5_BOOL) /* bool holds 0 or 1 only */
		for (size_t i = 0; i < nnh5_tensor_nbytes(t); i++)
			p[i] &= 1;
	return t;
}

static void every_dtype_roundtrip(void **state)
{
	int64_t shape[] = { 3, 5, 7 };
	(void)state;
	for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
		nnh5_tensor *t = pattern((nnh5_dtype)d, 3, shape, (uint64_t)d), *back;
		ok(nnh5_save_tensor(tu_path("dtype.h5"), t));
		ok(nnh5_load_tensor(&back, tu_path("dtype.h5")));
		assert_int_equal(nnh5_tensor_dtype(back), d);
		/* bitwise: NaN payloads and negative zeros included */
		assert_true(nnh5_tensor_bitwise_equal(t, back));
		nnh5_tensor_free(t);
		nnh5_tensor_free(back);
	}
}

static void scalars_empty_and_high_rank(void **state)
{
	int64_t empty1[] = { 0 }, empty3[] = { 4, 0, 2 }, rank8[] = { 2, 1, 2, 1, 2, 1, 2, 3 };
	struct { size_t ndim; const int64_t *shape; } cases[] = {
		{ 0, NULL }, { 1, empty1 }, { 3, empty3 }, { 8, rank8 },
	};
	(void)state;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
			nnh5_tensor *t = pattern((nnh5_dtype)d, cases[c].ndim, cases[c].shape, c), *back;
			ok(nnh5_save_tensor(tu_path("shape.h5"), t));
			ok(nnh5_load_tensor(&back, tu_path("shape.h5")));
			assert_int_equal(nnh5_tensor_ndim(back), cases[c].ndim);
			assert_true(nnh5_tensor_bitwise_equal(t, back));
			nnh5_tensor_free(t);
			nnh5_tensor_free(back);
		}
	}
}

/* > 256 MiB in one tensor, saved from a view of the caller's buffer. */
static void large_tensor(void **state)
{
	const size_t n = (size_t)272 << 20; /* 272 MiB */
	unsigned char *buf = malloc(n);
	nnh5_tensor *v, *back;
	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	ok(nnh5_tensor_view(&v, NNH5_UINT8, 2, (int64_t[]){ (int64_t)(n >> 20), 1 << 20 }, buf, n));
	ok(nnh5_save_tensor(tu_path("large.h5"), v));
	ok(nnh5_load_tensor(&back, tu_path("large.h5")));
	assert_int_equal(nnh5_tensor_nbytes(back), n);
	assert_memory_equal(nnh5_tensor_data(back), buf, n);
	nnh5_tensor_free(back);
	nnh5_tensor_free(v);
	free(buf);
	remove(tu_path("large.h5"));
}

static void list_in_order(void **state)
{
	nnh5_list *l, *back;
	(void)state;
	ok(nnh5_list_new(&l));
	for (int i = 0; i < 12; i++) /* "10" and "11" must come after "9" */
		ok(nnh5_list_append(l, pattern(i % 2 ? NNH5_FLOAT32 : NNH5_INT16, 1,
					       (int64_t[]){ i + 1 }, (uint64_t)i)));
	ok(nnh5_save_list(tu_path("x-files"), l));
	ok(nnh5_load_list(&back, tu_path("x-files")));
	assert_int_equal(nnh5_list_len(back), 12);
	for (size_t i = 0; i < 12; i++)
		assert_true(nnh5_tensor_bitwise_equal(nnh5_list_get(l, i), nnh5_list_get(back, i)));
	nnh5_list_free(back);
	/* an empty list round trips too */
	nnh5_list_free(l);
	ok(nnh5_list_new(&l));
	ok(nnh5_save_list(tu_path("empty-list"), l));
	ok(nnh5_load_list(&back, tu_path("empty-list")));
	assert_int_equal(nnh5_list_len(back), 0);
	nnh5_list_free(back);
	nnh5_list_free(l);
}

static void check_same_dict(const nnh5_dict *a, const nnh5_dict *b)
{
	assert_int_equal(nnh5_dict_len(a), nnh5_dict_len(b));
	for (size_t i = 0; i < nnh5_dict_len(a); i++) {
		assert_string_equal(nnh5_dict_key(a, i), nnh5_dict_key(b, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(a, i), nnh5_dict_value(b, i)));
	}
}

static void dict_in_insertion_order(void **state)
{
	const char *keys[] = { "y", "x", "B", "a b", "ünïcödé", "10", "9", "dot.ted" };
	nnh5_dict *d, *back;
	(void)state;
	ok(nnh5_dict_new(&d));
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		ok(nnh5_dict_set(d, keys[i], pattern(NNH5_FLOAT64, 1, (int64_t[]){ 3 }, i)));
	ok(nnh5_save_dict(tu_path("mydict"), d));
	ok(nnh5_load_dict(&back, tu_path("mydict")));
	check_same_dict(d, back);
	nnh5_dict_free(back);
	nnh5_dict_free(d);
}

static void state_dict_keys_and_order(void **state)
{
	/* Interleaved modules: order must survive although groups nest. */
	const char *keys[] = { "output.weight", "hidden.weight", "output.bias", "hidden.bias",
			       "layer10.w", "layer2.w", "enc.block.0.attn.q.weight", "enc.block.10.ln",
			       "enc.block.2.ln", "scale" };
	nnh5_dict *sd, *back;
	nnh5_file *f;
	nnh5_kind kind;
	(void)state;
	ok(nnh5_dict_new(&sd));
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		ok(nnh5_dict_set(sd, keys[i], pattern(NNH5_FLOAT32, 2, (int64_t[]){ 2, (int64_t)i + 1 }, i)));
	ok(nnh5_save_state_dict(tu_path("mlp.params"), sd));
	ok(nnh5_load_state_dict(&back, tu_path("mlp.params")));
	check_same_dict(sd, back);
	nnh5_dict_free(back);
	/* the layout: one subgroup per module level */
	ok(nnh5_file_open(&f, tu_path("mlp.params"), NNH5_READ));
	ok(nnh5_file_kind(&kind, f, "/"));
	assert_int_equal(kind, NNH5_KIND_STATE_DICT);
	ok(nnh5_file_kind(&kind, f, "hidden"));
	assert_int_equal(kind, NNH5_KIND_GROUP);
	ok(nnh5_file_kind(&kind, f, "enc/block/0/attn/q/weight"));
	assert_int_equal(kind, NNH5_KIND_TENSOR);
	nnh5_tensor *w;
	ok(nnh5_file_read_tensor(&w, f, "/hidden/weight"));
	assert_true(nnh5_tensor_bitwise_equal(w, nnh5_dict_get(sd, "hidden.weight")));
	nnh5_tensor_free(w);
	/* a subtree reads as the state dict of that module */
	ok(nnh5_file_read_state_dict(&back, f, "enc/block"));
	assert_int_equal(nnh5_dict_len(back), 3);
	assert_string_equal(nnh5_dict_key(back, 0), "0.attn.q.weight");
	nnh5_dict_free(back);
	nnh5_file_close(f);
	nnh5_dict_free(sd);
}

/* Many objects in one file through the handle, and attributes everywhere. */
static void handle_many_objects_and_attrs(void **state)
{
	nnh5_file *f;
	nnh5_tensor *x = pattern(NNH5_INT32, 1, (int64_t[]){ 4 }, 1), *back;
	nnh5_dict *d, *dback;
	nnh5_list *l, *lback;
	char *s;
	int64_t iv;
	double fv;
	(void)state;
	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "w", pattern(NNH5_BFLOAT16, 2, (int64_t[]){ 4, 4 }, 2)));
	ok(nnh5_list_new(&l));
	ok(nnh5_list_append(l, pattern(NNH5_BOOL, 1, (int64_t[]){ 5 }, 3)));

	ok(nnh5_file_open(&f, tu_path("many.h5"), NNH5_CREATE));
	ok(nnh5_file_write_tensor(f, "x", x));
	ok(nnh5_file_write_tensor(f, "deep/er/x", x));
	ok(nnh5_file_write_dict(f, "models/mydict", d));
	ok(nnh5_file_write_state_dict(f, "models/net", d));
	ok(nnh5_file_write_list(f, "lists/l", l));
	ok(nnh5_file_set_attr_string(f, "/", "description", "seed chapter — ✓"));
	ok(nnh5_file_set_attr_int(f, "models/net", "epoch", -42));
	ok(nnh5_file_set_attr_float(f, "x", "lr", 0.125));
	ok(nnh5_file_set_attr_int(f, "models/net", "epoch", 43)); /* replaces */
	fails(NNH5_ERR_EXISTS, nnh5_file_write_tensor(f, "x", x), "'x' already exists");
	fails(NNH5_ERR_INVALID, nnh5_file_set_attr_int(f, "/", "nnh5_kind", 1), "reserved");
	fails(NNH5_ERR_NOT_FOUND, nnh5_file_set_attr_int(f, "nope", "a", 1), "nope");
	ok(nnh5_file_close(f));

	ok(nnh5_file_open(&f, tu_path("many.h5"), NNH5_READ));
	assert_true(nnh5_file_has(f, "deep/er/x"));
	assert_false(nnh5_file_has(f, "deep/x"));
	ok(nnh5_file_read_tensor(&back, f, "deep/er/x"));
	assert_true(nnh5_tensor_bitwise_equal(x, back));
	nnh5_tensor_free(back);
	ok(nnh5_file_read_dict(&dback, f, "models/mydict"));
	check_same_dict(d, dback);
	nnh5_dict_free(dback);
	ok(nnh5_file_read_state_dict(&dback, f, "models/net"));
	check_same_dict(d, dback);
	nnh5_dict_free(dback);
	ok(nnh5_file_read_list(&lback, f, "lists/l"));
	assert_true(nnh5_tensor_bitwise_equal(nnh5_list_get(l, 0), nnh5_list_get(lback, 0)));
	nnh5_list_free(lback);
	ok(nnh5_file_get_attr_string(&s, f, "/", "description"));
	assert_string_equal(s, "seed chapter — ✓");
	nnh5_free(s);
	ok(nnh5_file_get_attr_string(&s, f, "/", "nnh5_writer"));
	assert_string_equal(s, "nnh5 " NNH5_VERSION_STRING);
	nnh5_free(s);
	ok(nnh5_file_get_attr_int(&iv, f, "models/net", "epoch"));
	assert_int_equal(iv, 43);
	ok(nnh5_file_get_attr_int(&iv, f, "/", "nnh5_format_version"));
	assert_int_equal(iv, 1);
	ok(nnh5_file_get_attr_float(&fv, f, "x", "lr"));
	assert_true(fv == 0.125);
	ok(nnh5_file_get_attr_float(&fv, f, "models/net", "epoch")); /* ints read as floats */
	assert_true(fv == 43.0);
	fails(NNH5_ERR_TYPE, nnh5_file_get_attr_int(&iv, f, "x", "lr"), "'lr'", "not an integer");
	fails(NNH5_ERR_TYPE, nnh5_file_get_attr_string(&s, f, "x", "lr"), "not a string");
	fails(NNH5_ERR_NOT_FOUND, nnh5_file_get_attr_int(&iv, f, "x", "missing"), "no attribute 'missing'");
	fails(NNH5_ERR_INVALID, nnh5_file_write_tensor(f, "y", x), "open for reading");
	ok(nnh5_file_close(f));
	nnh5_tensor_free(x);
	nnh5_dict_free(d);
	nnh5_list_free(l);
}

/* A state dict of many small tensors in many modules, the shape of real models. */
static void many_small_tensors(void **state)
{
	nnh5_dict *sd, *back;
	char key[64];
	(void)state;
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < 3000; i++) {
		snprintf(key, sizeof key, "block%d.layer%d.weight", i / 10, i % 10);
		ok(nnh5_dict_set(sd, key, pattern(NNH5_FLOAT32, 1, (int64_t[]){ 256 }, (uint64_t)i)));
	}
	ok(nnh5_save_state_dict(tu_path("many-small.h5"), sd));
	ok(nnh5_load_state_dict(&back, tu_path("many-small.h5")));
	check_same_dict(sd, back);
	nnh5_dict_free(back);
	nnh5_dict_free(sd);
}

/* Every object below the file's root, depth first, each group's links in creation order. */
struct tree_names {
	char *buf;
	size_t len, cap;
};

static herr_t tree_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
	struct tree_names *t = data;
	size_t n = strlen(name);
	H5O_info_t oi;
	(void)info;
	if (t->len + n + 2 > t->cap) {
		t->cap = 2 * (t->len + n + 2);
		t->buf = realloc(t->buf, t->cap);
		assert_non_null(t->buf);
	}
	memcpy(t->buf + t->len, name, n);
	t->len += n;
	t->buf[t->len++] = '\n';
	assert_true(H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0);
	if (oi.type == H5O_TYPE_GROUP) {
		hid_t sub = H5Gopen2(g, name, H5P_DEFAULT);
		assert_true(sub >= 0);
		t->buf[t->len - 1] = '/';
		assert_true(H5Literate(sub, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, tree_cb, t) >= 0);
		t->buf[t->len++] = '\n';
		H5Gclose(sub);
	}
	return 0;
}

static char *tree_of(const char *path)
{
	struct tree_names t = { NULL, 0, 0 };
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	assert_true(fid >= 0);
	assert_true(H5Literate(fid, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, tree_cb, &t) >= 0);
	H5Fclose(fid);
	t.buf = realloc(t.buf, t.len + 1);
	assert_non_null(t.buf);
	t.buf[t.len] = '\0';
	return t.buf;
}

/*
 * An optimizer's state dict lists each parameter's tensors one after the
 * other, so consecutive keys alternate between modules (model.layers.N.pK,
 * optim.exp_avg.layers.N.pK, ...) and the groups "layers" get thousands of
 * children. More groups than a state dict write keeps open at once (4,096)
 * make it close them and reopen the parents by name. Each group's links must
 * be in the order the keys first name them, exactly as writing the same
 * tensors one call at a time with nnh5_file_write_tensor() lays them out.
 */
static void interleaved_modules_keep_creation_order(void **state)
{
	static const char *const prefix[] = { "model", "optim.exp_avg", "optim.exp_avg_sq" };
	nnh5_dict *sd, *back;
	nnh5_file *f;
	char key[96], path[96];
	(void)state;
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < 1700; i++)
		for (int j = 0; j < 2; j++)
			for (int k = 0; k < 3; k++) {
				snprintf(key, sizeof key, "%s.layers.%d.p%d", prefix[k], i, j);
				ok(nnh5_dict_set(sd, key, pattern(NNH5_FLOAT32, 1,
								  (int64_t[]){ 1 + (i + j + k) % 9 },
								  (uint64_t)(6 * i + 3 * j + k))));
			}
	ok(nnh5_save_state_dict(tu_path("interleaved.h5"), sd));
	ok(nnh5_load_state_dict(&back, tu_path("interleaved.h5")));
	check_same_dict(sd, back);
	nnh5_dict_free(back);

	ok(nnh5_file_open(&f, tu_path("one-by-one.h5"), NNH5_CREATE));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		snprintf(path, sizeof path, "%s", nnh5_dict_key(sd, i));
		for (char *c = path; *c; c++)
			if (*c == '.')
				*c = '/';
		ok(nnh5_file_write_tensor(f, path, nnh5_dict_value(sd, i)));
	}
	ok(nnh5_file_close(f));
	char *a = tree_of(tu_path("interleaved.h5")), *b = tree_of(tu_path("one-by-one.h5"));
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "model/layers/0/p0\np1\n\n1/p0\np1\n\n2/"));
	assert_non_null(strstr(a, "1699/p0\np1\n\n\n\noptim/exp_avg/layers/0/p0\n"));
	free(a);
	free(b);
	nnh5_dict_free(sd);

	/* Deep keys: 30 new groups, then 41 more at once (the table grows as it fills). */
	char deep[400] = "", *at = deep;
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < 30; i++)
		at += sprintf(at, "m%d.", i);
	strcpy(at, "w");
	ok(nnh5_dict_set(sd, deep, pattern(NNH5_INT8, 1, (int64_t[]){ 3 }, 1)));
	at = deep;
	for (int i = 0; i < 41; i++)
		at += sprintf(at, "n%d.", i);
	strcpy(at, "w");
	ok(nnh5_dict_set(sd, deep, pattern(NNH5_INT8, 1, (int64_t[]){ 3 }, 4)));
	ok(nnh5_dict_set(sd, "other.w", pattern(NNH5_INT8, 1, (int64_t[]){ 3 }, 2)));
	ok(nnh5_dict_set(sd, "m0.x.w", pattern(NNH5_INT8, 1, (int64_t[]){ 3 }, 3)));
	ok(nnh5_save_state_dict(tu_path("deep.h5"), sd));
	ok(nnh5_load_state_dict(&back, tu_path("deep.h5")));
	check_same_dict(sd, back);
	nnh5_dict_free(back);
	nnh5_dict_free(sd);
}

/*
 * HDF5's metadata cache holds each object header decoded, several KiB for a
 * few hundred bytes it counts: a file being written caps it at 256 KiB (a
 * save of 12,000 small tensors took 37 MiB more with 2 MiB), one being read
 * at 2 MiB. The file written that way reads back whole.
 */
static void metadata_cache_capped_per_mode(void **state)
{
	nnh5_file *f;
	H5AC_cache_config_t c;
	nnh5_tensor *x = pattern(NNH5_FLOAT32, 1, (int64_t[]){ 7 }, 3), *back;
	(void)state;
	ok(nnh5_file_open(&f, tu_path("cache.h5"), NNH5_CREATE));
	c.version = H5AC__CURR_CACHE_CONFIG_VERSION;
	assert_true(H5Fget_mdc_config(nnh5__file_hid(f), &c) >= 0);
	assert_int_equal(c.max_size, (size_t)256 << 10);
	assert_true(c.initial_size <= c.max_size);
	ok(nnh5_file_write_tensor(f, "a/b/x", x));
	ok(nnh5_file_close(f));
	ok(nnh5_file_open(&f, tu_path("cache.h5"), NNH5_READ));
	assert_true(H5Fget_mdc_config(nnh5__file_hid(f), &c) >= 0);
	assert_int_equal(c.max_size, (size_t)2 << 20);
	ok(nnh5_file_read_tensor(&back, f, "a/b/x"));
	assert_true(nnh5_tensor_bitwise_equal(x, back));
	ok(nnh5_file_close(f));
	nnh5_tensor_free(back);
	nnh5_tensor_free(x);
}

/*
 * A durable save starts the kernel's writeback of the temporary file every
 * 8 MiB of tensor data, so the disk works while the save goes on; a
 * non-durable one never does. The files read back the same either way.
 */
static void durable_saves_write_behind(void **state)
{
	nnh5_tensor *x = pattern(NNH5_FLOAT32, 2, (int64_t[]){ 1280, 1024 }, 9), *back; /* 5 MiB */
	(void)state;
	for (int durable = 0; durable < 2; durable++) {
		nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
		nnh5_file *f;
		o.durable = durable;
		ok(nnh5_file_open_ext(&f, tu_path("behind.h5"), NNH5_CREATE, &o));
		ok(nnh5_file_write_tensor(f, "a", x));
		assert_int_equal(f->atomic.writebacks, 0);
		ok(nnh5_file_write_tensor(f, "b", x));
		assert_int_equal(f->atomic.writebacks, durable ? 1 : 0);
		ok(nnh5_file_write_tensor(f, "c", x));
		ok(nnh5_file_write_tensor(f, "d", x));
		assert_int_equal(f->atomic.writebacks, durable ? 2 : 0);
		ok(nnh5_file_close(f));
		ok(nnh5_file_open(&f, tu_path("behind.h5"), NNH5_READ));
		ok(nnh5_file_read_tensor(&back, f, "d"));
		assert_true(nnh5_tensor_bitwise_equal(x, back));
		nnh5_tensor_free(back);
		ok(nnh5_file_close(f));
	}
	nnh5_tensor_free(x);
}

/*
 * 20,000 keys: the key list attribute (320 KB of string references) is
 * larger than an object header message can hold, and HDF5 moves it to dense
 * storage by itself. Groups keep HDF5's default attribute storage (compact
 * first): forcing dense storage made pure readers such as jsfive fail.
 */
static void many_keys_default_attribute_storage(void **state)
{
	nnh5_dict *d, *back;
	char key[32];
	unsigned max_compact = 0, min_dense = 0;
	(void)state;
	ok(nnh5_dict_new(&d));
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "key%05d", 19999 - i);
		ok(nnh5_dict_set(d, key, pattern(NNH5_INT8, 0, NULL, (uint64_t)i)));
	}
	ok(nnh5_save_dict(tu_path("many-keys.h5"), d));
	ok(nnh5_load_dict(&back, tu_path("many-keys.h5")));
	check_same_dict(d, back);
	nnh5_dict_free(back);
	nnh5_dict_free(d);

	nnh5_file *f;
	nnh5_tensor *x = pattern(NNH5_INT8, 0, NULL, 1);
	ok(nnh5_file_open(&f, tu_path("sub.h5"), NNH5_CREATE));
	ok(nnh5_file_write_tensor(f, "group/x", x));
	ok(nnh5_file_close(f));
	nnh5_tensor_free(x);
	hid_t fid = H5Fopen(tu_path("sub.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
	assert_true(fid >= 0);
	hid_t fcpl = H5Fget_create_plist(fid);
	assert_true(H5Pget_attr_phase_change(fcpl, &max_compact, &min_dense) >= 0);
	assert_true(max_compact > 0); /* HDF5's default: 8 compact, dense from 6 down */
	H5Pclose(fcpl);
	hid_t gid = H5Gopen2(fid, "group", H5P_DEFAULT);
	hid_t gcpl = H5Gget_create_plist(gid);
	max_compact = 0;
	assert_true(H5Pget_attr_phase_change(gcpl, &max_compact, &min_dense) >= 0);
	assert_true(max_compact > 0);
	H5Pclose(gcpl);
	H5Gclose(gid);
	H5Fclose(fid);
}

/* The character set a link's name is stored with (read with plain HDF5). */
static H5T_cset_t link_cset(const char *path, const char *name)
{
	H5L_info_t info;
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	assert_true(fid >= 0);
	assert_true(H5Lget_info(fid, name, &info, H5P_DEFAULT) >= 0);
	H5Fclose(fid);
	return info.cset;
}

/* Link names are UTF-8 and say so, as h5py writes them: groups and datasets. */
static void link_names_marked_utf8(void **state)
{
	nnh5_dict *sd;
	(void)state;
	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "módulo.peso", pattern(NNH5_FLOAT32, 1, (int64_t[]){ 3 }, 1)));
	ok(nnh5_dict_set(sd, "big.w", pattern(NNH5_FLOAT32, 1, (int64_t[]){ 2048 }, 2)));
	ok(nnh5_save_state_dict(tu_path("utf8-names.h5"), sd));
	nnh5_dict_free(sd);
	assert_int_equal(link_cset(tu_path("utf8-names.h5"), "módulo"), H5T_CSET_UTF8);
	assert_int_equal(link_cset(tu_path("utf8-names.h5"), "módulo/peso"), H5T_CSET_UTF8);
	/* ASCII names too (a subset of UTF-8), contiguous datasets too */
	assert_int_equal(link_cset(tu_path("utf8-names.h5"), "big"), H5T_CSET_UTF8);
	assert_int_equal(link_cset(tu_path("utf8-names.h5"), "big/w"), H5T_CSET_UTF8);
}

/* Replace the nnh5_keys list of the group obj with the n strings keys (plain HDF5). */
static void rewrite_keys(const char *path, const char *obj, const char *const *keys, size_t n)
{
	hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
	hid_t type = H5Tcopy(H5T_C_S1);
	hsize_t dims[1] = { n };
	assert_true(fid >= 0);
	assert_true(H5Tset_size(type, H5T_VARIABLE) >= 0);
	assert_true(H5Tset_cset(type, H5T_CSET_UTF8) >= 0);
	assert_true(H5Adelete_by_name(fid, obj, "nnh5_keys", H5P_DEFAULT) >= 0);
	hid_t space = H5Screate_simple(1, dims, NULL);
	hid_t attr = H5Acreate_by_name(fid, obj, "nnh5_keys", type, space, H5P_DEFAULT,
				       H5P_DEFAULT, H5P_DEFAULT);
	assert_true(attr >= 0);
	assert_true(H5Awrite(attr, type, keys) >= 0);
	H5Aclose(attr);
	H5Sclose(space);
	H5Tclose(type);
	H5Fclose(fid);
}

/*
 * nnh5_file_check_keys() refuses a damaged key list exactly where the
 * loaders refuse it, without loading, and passes what they load.
 */
static void key_lists_checked_without_loading(void **state)
{
	const char *path = tu_path("keys.h5");
	nnh5_dict *sd, *back;
	nnh5_file *f;
	bool listed;
	(void)state;

	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "enc.w", pattern(NNH5_FLOAT32, 1, (int64_t[]){ 3 }, 1)));
	ok(nnh5_dict_set(sd, "enc.b", pattern(NNH5_FLOAT32, 1, (int64_t[]){ 3 }, 2)));
	ok(nnh5_dict_set(sd, "out", pattern(NNH5_FLOAT32, 1, (int64_t[]){ 2 }, 3)));
	ok(nnh5_save_state_dict(path, sd));
	nnh5_dict_free(sd);

	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_check_keys(&listed, f, "/"));
	assert_true(listed);
	ok(nnh5_file_check_keys(&listed, f, "enc")); /* a plain group: no list */
	assert_false(listed);
	fails(NNH5_ERR_FORMAT, nnh5_file_check_keys(&listed, f, "out"), "not a group");
	ok(nnh5_file_close(f));

	/* a key listed twice: the load and the check refuse it alike */
	rewrite_keys(path, "/", (const char *const[]){ "enc.w", "enc.w", "out" }, 3);
	fails(NNH5_ERR_FORMAT, nnh5_load_state_dict(&back, path), "lists 'enc.w' twice");
	ok(nnh5_file_open(&f, path, NNH5_READ));
	fails(NNH5_ERR_FORMAT, nnh5_file_check_keys(&listed, f, "/"), "lists 'enc.w' twice");
	assert_true(listed);
	ok(nnh5_file_close(f));

	/* a listed key missing while a tensor goes unlisted */
	rewrite_keys(path, "/", (const char *const[]){ "enc.w", "gone", "out" }, 3);
	fails(NNH5_ERR_FORMAT, nnh5_load_state_dict(&back, path), "'gone'", "missing");
	ok(nnh5_file_open(&f, path, NNH5_READ));
	fails(NNH5_ERR_FORMAT, nnh5_file_check_keys(&listed, f, "/"), "'gone'", "missing");
	ok(nnh5_file_close(f));

	/* a list in another order loads, and passes */
	rewrite_keys(path, "/", (const char *const[]){ "out", "enc.b", "enc.w" }, 3);
	ok(nnh5_load_state_dict(&back, path));
	assert_string_equal(nnh5_dict_key(back, 0), "out");
	nnh5_dict_free(back);
	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_check_keys(&listed, f, "/"));
	ok(nnh5_file_close(f));

	/* the root of a one-tensor file has no list: it passes (nnh5 verify ran this) */
	nnh5_tensor *t = pattern(NNH5_FLOAT32, 1, (int64_t[]){ 4 }, 5);
	ok(nnh5_save_tensor(path, t));
	nnh5_tensor_free(t);
	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_check_keys(&listed, f, "/"));
	assert_false(listed);
	fails(NNH5_ERR_FORMAT, nnh5_file_check_keys(&listed, f, "tensor"), "not a group");
	ok(nnh5_file_close(f));
}

static void no_temporary_files_left(void **state)
{
	(void)state;
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_dtype_roundtrip),
		cmocka_unit_test(scalars_empty_and_high_rank),
		cmocka_unit_test(large_tensor),
		cmocka_unit_test(list_in_order),
		cmocka_unit_test(dict_in_insertion_order),
		cmocka_unit_test(state_dict_keys_and_order),
		cmocka_unit_test(handle_many_objects_and_attrs),
		cmocka_unit_test(many_small_tensors),
		cmocka_unit_test(interleaved_modules_keep_creation_order),
		cmocka_unit_test(metadata_cache_capped_per_mode),
		cmocka_unit_test(durable_saves_write_behind),
		cmocka_unit_test(many_keys_default_attribute_storage),
		cmocka_unit_test(link_names_marked_utf8),
		cmocka_unit_test(key_lists_checked_without_loading),
		cmocka_unit_test(no_temporary_files_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
