/*
 * tests/test_walk.c - nnh5_file_walk(): the entries every reader sees, in
 * pre-order, with links, aliases and refusals as the loads see them.
 */
#include "testutil.h"

#include <hdf5.h>
#include <nnh5/walk.h>

#include <stdio.h>
#include <string.h>

#define MAX_SEEN 32

struct rec {
		char path[128];
		char alias_of[128];
		char target[128];
		char message[512];
		nnh5_entry_type type;
		nnh5_link_type link;
		nnh5_kind kind;
		size_t depth;
		bool reserved, has_checksum;
		int status;
		nnh5_dtype dtype;
		size_t ndim;
		int64_t shape0;
		uint64_t nbytes;
		nnh5_layout layout;
};

struct seen {
	size_t n;
	struct rec e[MAX_SEEN];
	int stop_at; /* return 7 at this entry (-1: never) */
};

static int record(const nnh5_entry *e, void *ctx)
{
	struct seen *s = ctx;
	assert_true(s->n < MAX_SEEN);
	struct rec *r = &s->e[s->n];
	memset(r, 0, sizeof *r);
	snprintf(r->path, sizeof r->path, "%s", e->path);
	snprintf(r->alias_of, sizeof r->alias_of, "%s", e->alias_of ? e->alias_of : "");
	snprintf(r->target, sizeof r->target, "%s", e->link_target ? e->link_target : "");
	snprintf(r->message, sizeof r->message, "%s", e->message ? e->message : "");
	r->type = e->type;
	r->link = e->link;
	r->kind = e->kind;
	r->depth = e->depth;
	r->reserved = e->reserved;
	r->has_checksum = e->has_checksum;
	r->status = e->status;
	r->dtype = e->dtype;
	r->ndim = e->ndim;
	r->shape0 = e->ndim ? e->shape[0] : -1;
	r->nbytes = e->nbytes;
	r->layout = e->layout;
	return (int)s->n++ == s->stop_at ? 7 : 0;
}

static int find(const struct seen *s, const char *path)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->e[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* nnh5's own state dict: groups, tensors, kinds, checksums, in stored order. */
static void state_dict_entries(void **state)
{
	const char *path = tu_path("walk_sd.h5");
	nnh5_dict *sd;
	nnh5_file *f;
	struct seen s = { .stop_at = -1 };
	(void)state;

	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "layer.weight", tu_seq(NNH5_FLOAT32, 2, (int64_t[]){ 3, 2 }, 1, 0)));
	ok(nnh5_dict_set(sd, "layer.bias", tu_seq(NNH5_FLOAT32, 1, (int64_t[]){ 3 }, 1, 0)));
	ok(nnh5_dict_set(sd, "scale", tu_seq(NNH5_FLOAT64, 0, NULL, 1, 0)));
	ok(nnh5_save_state_dict(path, sd));
	nnh5_dict_free(sd);
	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_walk(f, "/", NULL, record, &s));
	assert_int_equal(s.n, 5);
	assert_string_equal(s.e[0].path, "/");
	assert_int_equal(s.e[0].type, NNH5_ENTRY_GROUP);
	assert_int_equal(s.e[0].kind, NNH5_KIND_STATE_DICT);
	assert_int_equal(s.e[0].depth, 0);
	assert_string_equal(s.e[1].path, "/layer");
	assert_int_equal(s.e[1].type, NNH5_ENTRY_GROUP);
	assert_string_equal(s.e[2].path, "/layer/weight");
	assert_string_equal(s.e[3].path, "/layer/bias");
	assert_string_equal(s.e[4].path, "/scale");
	assert_int_equal(s.e[2].type, NNH5_ENTRY_TENSOR);
	assert_int_equal(s.e[2].depth, 2);
	assert_int_equal(s.e[2].dtype, NNH5_FLOAT32);
	assert_int_equal(s.e[2].ndim, 2);
	assert_int_equal(s.e[2].shape0, 3);
	assert_int_equal(s.e[2].nbytes, 24);
	assert_int_equal(s.e[2].layout, NNH5_LAYOUT_CONTIGUOUS);
	assert_true(s.e[2].has_checksum);
	assert_int_equal(s.e[2].link, NNH5_LINK_HARD);
	assert_string_equal(s.e[2].alias_of, "");
	assert_int_equal(s.e[4].ndim, 0);
	assert_int_equal(s.e[4].dtype, NNH5_FLOAT64);
	/* A walk of one tensor: one entry. */
	s.n = 0;
	ok(nnh5_file_walk(f, "layer/bias", NULL, record, &s));
	assert_int_equal(s.n, 1);
	assert_string_equal(s.e[0].path, "/layer/bias");
	assert_int_equal(s.e[0].depth, 0);
	/* The callback stops the walk with its own value. */
	s.n = 0;
	s.stop_at = 1;
	assert_int_equal(nnh5_file_walk(f, "/", NULL, record, &s), 7);
	assert_int_equal(s.n, 2);
	/* A missing start, a bad options version. */
	fails(NNH5_ERR_NOT_FOUND, nnh5_file_walk(f, "nope", NULL, record, &s), "nope", "not found");
	nnh5_walk_options o = NNH5_WALK_OPTIONS_INIT;
	o.version = 99;
	fails(NNH5_ERR_INVALID, nnh5_file_walk(f, "/", &o, record, &s), "version");
	nnh5_file_close(f);
	/* A file being written is not walked. */
	ok(nnh5_file_open(&f, tu_path("walk_w.h5"), NNH5_CREATE));
	fails(NNH5_ERR_INVALID, nnh5_file_walk(f, "/", NULL, record, &s), "not open for reading");
	nnh5_file_discard(f);
}

/* A file written with HDF5 itself: every kind of link. */
static const char *links_file(void)
{
	const char *path = tu_path("walk_links.h5");
	float v[4] = { 1, 2, 3, 4 };
	hsize_t n = 4;
	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, &n, NULL);
	hid_t d = H5Dcreate2(fid, "x", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	assert_true(d >= 0);
	assert_true(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	H5Dclose(d);
	hid_t g = H5Gcreate2(fid, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	d = H5Dcreate2(g, "d", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dclose(d);
	H5Gclose(g);
	d = H5Dcreate2(fid, "nnh5_r", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dclose(d);
	d = H5Dcreate2(fid, "z\x01", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dclose(d);
	assert_true(H5Lcreate_hard(fid, "x", fid, "y", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	assert_true(H5Lcreate_soft("/x", fid, "s", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	assert_true(H5Lcreate_soft("/g", fid, "sg", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	assert_true(H5Lcreate_soft("d", fid, "g/rel", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	assert_true(H5Lcreate_external("other.h5", "/x", fid, "e", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	H5Sclose(sp);
	H5Fclose(fid);
	return path;
}

/* keep_going: refusals are entries with the load's status and message; aliases are named. */
static void links_and_aliases(void **state)
{
	const char *path = links_file();
	nnh5_walk_options o = NNH5_WALK_OPTIONS_INIT;
	struct seen s = { .stop_at = -1 };
	nnh5_file *f;
	nnh5_dict *d = NULL;
	int i;
	(void)state;

	ok(nnh5_file_open(&f, path, NNH5_READ));
	/* Without keep_going the walk stops at the external link, as a load does. */
	fails(NNH5_ERR_UNSAFE, nnh5_file_walk(f, "/", NULL, record, &s), "'/e' is an external link",
	      "'/x' in 'other.h5'");
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_dict(&d, f, "/"), "'/e' is an external link",
	      "'/x' in 'other.h5'");
	s.n = 0;
	o.keep_going = true;
	ok(nnh5_file_walk(f, "/", &o, record, &s));
	assert_true((i = find(&s, "/e")) >= 0);
	assert_int_equal(s.e[i].type, NNH5_ENTRY_REFUSED);
	assert_int_equal(s.e[i].status, NNH5_ERR_UNSAFE);
	assert_int_equal(s.e[i].link, NNH5_LINK_EXTERNAL);
	assert_string_equal(s.e[i].target, "other.h5:/x");
	assert_non_null(strstr(s.e[i].message, "external link"));
	assert_true((i = find(&s, "/sg")) >= 0);
	assert_int_equal(s.e[i].type, NNH5_ENTRY_REFUSED);
	assert_non_null(strstr(s.e[i].message, "soft link to a group"));
	/* A refused name is reported under its own path. */
	assert_true((i = find(&s, "/z\x01")) >= 0);
	assert_int_equal(s.e[i].type, NNH5_ENTRY_REFUSED);
	assert_int_equal(s.e[i].status, NNH5_ERR_FORMAT);
	assert_non_null(strstr(s.e[i].message, "control characters"));
	/* The soft link is met first (name order), the hard links are its aliases. */
	assert_true((i = find(&s, "/s")) >= 0);
	assert_int_equal(s.e[i].type, NNH5_ENTRY_TENSOR);
	assert_int_equal(s.e[i].link, NNH5_LINK_SOFT);
	assert_string_equal(s.e[i].target, "/x");
	assert_string_equal(s.e[i].alias_of, "");
	assert_true((i = find(&s, "/x")) >= 0);
	assert_string_equal(s.e[i].alias_of, "/s");
	assert_true((i = find(&s, "/y")) >= 0);
	assert_string_equal(s.e[i].alias_of, "/s");
	/* A relative soft link resolves from its own group. */
	assert_true((i = find(&s, "/g/rel")) >= 0);
	assert_int_equal(s.e[i].type, NNH5_ENTRY_TENSOR);
	assert_string_equal(s.e[i].alias_of, "/g/d");
	/* Reserved names only when asked for. */
	assert_int_equal(find(&s, "/nnh5_r"), -1);
	s.n = 0;
	o.reserved = true;
	ok(nnh5_file_walk(f, "/", &o, record, &s));
	assert_true((i = find(&s, "/nnh5_r")) >= 0);
	assert_true(s.e[i].reserved);
	/* What a load of the group reads: the relative soft link loads as a copy. */
	ok(nnh5_file_read_dict(&d, f, "g"));
	assert_int_equal(nnh5_dict_len(d), 2);
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(d, "d"), nnh5_dict_get(d, "rel")));
	nnh5_dict_free(d);
	/* Names resolve through soft links to datasets, never through ones to groups. */
	nnh5_tensor *t = NULL;
	ok(nnh5_file_read_tensor(&t, f, "s"));
	nnh5_tensor_free(t);
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_tensor(&t, f, "sg/d"), "'sg' is a soft link to a group");
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_tensor(&t, f, "e"), "'e' is an external link");
	nnh5_file_close(f);
}

/* A walk counts as a load would, but not against the handle's own limits. */
static void walks_count_aliases_without_counting_for_the_handle(void **state)
{
	nnh5_open_options oo = NNH5_OPEN_OPTIONS_INIT;
	struct seen s = { .stop_at = -1 };
	nnh5_walk_options o = NNH5_WALK_OPTIONS_INIT;
	nnh5_dict *d = NULL;
	nnh5_file *f;
	int i;
	(void)state;

	const char *path = links_file();
	/* 16 bytes a name: /x, /y and /s are 48 bytes, 32 of them copies; the file is larger. */
	oo.max_load_bytes = 40;
	oo.copy_aliases = true; /* tied, they would count once */
	ok(nnh5_file_open_ext(&f, path, NNH5_READ, &oo));
	o.keep_going = true;
	ok(nnh5_file_walk(f, "/", &o, record, &s));
	assert_true((i = find(&s, "/y")) >= 0);
	assert_int_equal(s.e[i].type, NNH5_ENTRY_REFUSED);
	assert_int_equal(s.e[i].status, NNH5_ERR_OVERFLOW);
	assert_non_null(strstr(s.e[i].message, "another name of '/s'"));
	assert_non_null(strstr(s.e[i].message, "max_load_bytes"));
	/* The walk counted nothing for f: a load of one name still fits. */
	nnh5_tensor *t = NULL;
	ok(nnh5_file_read_tensor(&t, f, "x"));
	nnh5_tensor_free(t);
	/* Then /g/d (16 bytes) fits, its second name /g/rel does not. */
	fails(NNH5_ERR_OVERFLOW, nnh5_file_read_dict(&d, f, "g"), "'g/rel'", "another name of '/g/d'",
	      "max_load_bytes");
	nnh5_file_close(f);
}

static void names(void **state)
{
	(void)state;
	assert_string_equal(nnh5_entry_type_name(NNH5_ENTRY_REFUSED), "refused");
	assert_string_equal(nnh5_entry_type_name(99), "unknown");
	assert_string_equal(nnh5_link_type_name(NNH5_LINK_SOFT), "soft");
	assert_string_equal(nnh5_link_type_name(-1), "unknown");
	assert_string_equal(nnh5_layout_name(NNH5_LAYOUT_EXTERNAL), "external");
	assert_string_equal(nnh5_layout_name(7), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_dict_entries),
		cmocka_unit_test(links_and_aliases),
		cmocka_unit_test(walks_count_aliases_without_counting_for_the_handle),
		cmocka_unit_test(names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
