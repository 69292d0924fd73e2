/*
 * tests/test_errors.c - bad input gets a status and a message naming the
 * file, the object and the problem; the library prints nothing; every
 * allocation failure is reported cleanly (leaks are caught by the
 * sanitizer and valgrind runs of this same program).
 */
#define _DEFAULT_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Redirect stderr and stdout to a file around each test; both must stay empty. */
static int saved_err = -1, saved_out = -1;

static int quiet_setup(void **state)
{
	int fd = open(tu_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	(void)state;
	fflush(stderr);
	fflush(stdout);
	saved_err = dup(2);
	saved_out = dup(1);
	dup2(fd, 2);
	dup2(fd, 1);
	close(fd);
	return 0;
}

static int quiet_teardown(void **state)
{
	char buf[512] = "";
	FILE *f;
	(void)state;
	fflush(stderr);
	fflush(stdout);
	dup2(saved_err, 2);
	dup2(saved_out, 1);
	close(saved_err);
	close(saved_out);
	f = fopen(tu_path("stderr.txt"), "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	if (n) {
		fprintf(stderr, "the library printed:\n%s\n", buf);
		return -1;
	}
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void missing_and_not_hdf5(void **state)
{
	nnh5_tensor *t;
	nnh5_file *f;
	(void)state;
	fails(NNH5_ERR_NOT_FOUND, nnh5_load_tensor(&t, tu_path("nope.h5")), "nope.h5",
	      "No such file");
	assert_null(t);
	write_text(tu_path("text.h5"), "this is not HDF5\n");
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("text.h5")), "text.h5",
	      "not an HDF5 file");
	fails(NNH5_ERR_INVALID, nnh5_file_open(&f, tu_path(""), NNH5_READ), "folder");
	assert_null(f);
	fails(NNH5_ERR_INVALID, nnh5_file_open(&f, "", NNH5_READ), "empty path");
	fails(NNH5_ERR_INVALID, nnh5_file_open(&f, tu_path("x.h5"), (nnh5_mode)9), "invalid mode");
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	o.version = 99;
	fails(NNH5_ERR_INVALID, nnh5_file_open_ext(&f, tu_path("x.h5"), NNH5_CREATE, &o),
	      "options version 99");
}

static void truncated_file(void **state)
{
	nnh5_tensor *t, *back = NULL;
	int64_t shape[] = { 64, 64 };
	(void)state;
	ok(nnh5_tensor_ones(&t, NNH5_FLOAT64, 2, shape));
	ok(nnh5_save_tensor(tu_path("trunc.h5"), t));
	/* cut the file short at several points: every load fails cleanly */
	FILE *f = fopen(tu_path("trunc.h5"), "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	fclose(f);
	for (long cut = 0; cut < size; cut += size / 7 + 1) {
		assert_int_equal(truncate(tu_path("trunc.h5"), cut), 0);
		int rc = nnh5_load_tensor(&back, tu_path("trunc.h5"));
		assert_int_not_equal(rc, NNH5_OK);
		assert_null(back);
		assert_non_null(strstr(nnh5_error_message(), "trunc.h5"));
		ok(nnh5_save_tensor(tu_path("trunc.h5"), t));
	}
	nnh5_tensor_free(t);
}

static void missing_objects(void **state)
{
	nnh5_dict *sd;
	nnh5_tensor *t;
	nnh5_file *f;
	nnh5_dict *d;
	nnh5_list *l;
	(void)state;
	ok(nnh5_dict_new(&sd));
	ok(nnh5_tensor_zeros(&t, NNH5_FLOAT32, 1, (int64_t[]){ 3 }));
	ok(nnh5_dict_set(sd, "hidden.weight", t));
	ok(nnh5_save_state_dict(tu_path("mlp.params"), sd));
	ok(nnh5_file_open(&f, tu_path("mlp.params"), NNH5_READ));
	fails(NNH5_ERR_NOT_FOUND, nnh5_file_read_tensor(&t, f, "hidden/bias"), "mlp.params",
	      "'hidden/bias' not found");
	fails(NNH5_ERR_NOT_FOUND, nnh5_file_read_tensor(&t, f, "output/weight"),
	      "'output/weight' not found", "'output' is missing");
	fails(NNH5_ERR_FORMAT, nnh5_file_read_tensor(&t, f, "hidden"), "is a group, not a dataset");
	fails(NNH5_ERR_FORMAT, nnh5_file_read_dict(&d, f, "hidden/weight"),
	      "is a dataset, not a group");
	fails(NNH5_ERR_FORMAT, nnh5_file_read_list(&l, f, "/"), "list", "'hidden/weight' is not an index");
	fails(NNH5_ERR_INVALID, nnh5_file_read_tensor(&t, f, "a//b"), "empty, '.' or '..'");
	nnh5_file_close(f);
	nnh5_dict_free(sd);
}

/* Datasets nnh5 does not load: a string and a compound, written with plain HDF5. */
static void unsupported_types(void **state)
{
	hid_t fid, sp, st, ct, ds;
	nnh5_tensor *t;
	nnh5_dict *d;
	const char *strs[2] = { "a", "b" };
	struct { int a; double b; } rec[2];
	(void)state;
	memset(rec, 0, sizeof rec); /* padding bytes reach the file too */
	rec[0].a = 1;
	rec[0].b = 2;
	rec[1].a = 3;
	rec[1].b = 4;
	fid = H5Fcreate(tu_path("types.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	sp = H5Screate_simple(1, (hsize_t[]){ 2 }, NULL);
	st = H5Tcopy(H5T_C_S1);
	H5Tset_size(st, H5T_VARIABLE);
	ds = H5Dcreate2(fid, "names", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, strs);
	H5Dclose(ds);
	ct = H5Tcreate(H5T_COMPOUND, sizeof rec[0]);
	H5Tinsert(ct, "a", 0, H5T_NATIVE_INT);
	H5Tinsert(ct, "b", sizeof(double), H5T_NATIVE_DOUBLE);
	ds = H5Dcreate2(fid, "records", ct, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, ct, H5S_ALL, H5S_ALL, H5P_DEFAULT, rec);
	H5Dclose(ds);
	H5Tclose(ct);
	H5Tclose(st);
	H5Sclose(sp);
	H5Fclose(fid);

	nnh5_file *f;
	ok(nnh5_file_open(&f, tu_path("types.h5"), NNH5_READ));
	fails(NNH5_ERR_TYPE, nnh5_file_read_tensor(&t, f, "names"), "types.h5", "'names'",
	      "string (variable-length)");
	fails(NNH5_ERR_TYPE, nnh5_file_read_tensor(&t, f, "records"), "'records'",
	      "compound of 2 members");
	fails(NNH5_ERR_TYPE, nnh5_file_read_dict(&d, f, "/"), "'/names'");
	assert_null(d);
	nnh5_file_close(f);
	/* two datasets, none named "tensor": the one-call loader cannot choose */
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("types.h5")), "several datasets");
}

static void bad_keys(void **state)
{
	static const char *bad_dict[] = { "", "a/b", ".", "..", "nnh5_keys" };
	static const char *bad_state[] = { "", "a..b", ".a", "a.", "a/b", "x.nnh5_probe" };
	nnh5_dict *d;
	nnh5_tensor *t;
	(void)state;
	for (size_t i = 0; i < sizeof bad_dict / sizeof bad_dict[0]; i++) {
		char want[64];
		ok(nnh5_dict_new(&d));
		ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
		ok(nnh5_dict_set(d, bad_dict[i], t));
		snprintf(want, sizeof want, "key '%s'", bad_dict[i]);
		fails(NNH5_ERR_INVALID, nnh5_save_dict(tu_path("bad.h5"), d), "bad.h5", want);
		nnh5_dict_free(d);
	}
	for (size_t i = 0; i < sizeof bad_state / sizeof bad_state[0]; i++) {
		char want[64];
		ok(nnh5_dict_new(&d));
		ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
		ok(nnh5_dict_set(d, bad_state[i], t));
		snprintf(want, sizeof want, "'%s'", bad_state[i]);
		fails(NNH5_ERR_INVALID, nnh5_save_state_dict(tu_path("bad.h5"), d), "bad.h5", want);
		nnh5_dict_free(d);
	}
	/* "a" and "a.b" conflict in either order */
	ok(nnh5_dict_new(&d));
	ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
	ok(nnh5_dict_set(d, "enc.layer.weight", t));
	ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
	ok(nnh5_dict_set(d, "enc", t));
	fails(NNH5_ERR_INVALID, nnh5_save_state_dict(tu_path("bad.h5"), d), "'enc'",
	      "'enc.layer.weight'", "conflict");
	nnh5_dict_free(d);
	/* nothing was written: no file, no temporary file */
	assert_false(tu_exists(tu_path("bad.h5")));
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
}

static void failed_save_keeps_previous(void **state)
{
	nnh5_dict *good, *bad, *back;
	nnh5_tensor *t;
	(void)state;
	ok(nnh5_dict_new(&good));
	ok(nnh5_tensor_ones(&t, NNH5_FLOAT32, 1, (int64_t[]){ 5 }));
	ok(nnh5_dict_set(good, "w", t));
	ok(nnh5_save_dict(tu_path("keep.h5"), good));
	ok(nnh5_dict_new(&bad));
	ok(nnh5_tensor_zeros(&t, NNH5_FLOAT32, 1, (int64_t[]){ 5 }));
	ok(nnh5_dict_set(bad, "ok", t));
	ok(nnh5_tensor_zeros(&t, NNH5_FLOAT32, 1, (int64_t[]){ 5 }));
	ok(nnh5_dict_set(bad, "not/ok", t));
	fails(NNH5_ERR_INVALID, nnh5_save_dict(tu_path("keep.h5"), bad), "not/ok");
	ok(nnh5_load_dict(&back, tu_path("keep.h5")));
	assert_int_equal(nnh5_dict_len(back), 1);
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(back, "w"), nnh5_dict_get(good, "w")));
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
	/* a handle discarded after writing leaves the target as it was */
	nnh5_file *f;
	ok(nnh5_file_open(&f, tu_path("keep.h5"), NNH5_CREATE));
	ok(nnh5_file_write_dict(f, "/", bad) == NNH5_ERR_INVALID ? NNH5_OK : -1);
	nnh5_file_discard(f);
	nnh5_dict_free(back);
	ok(nnh5_load_dict(&back, tu_path("keep.h5")));
	assert_int_equal(nnh5_dict_len(back), 1);
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
	nnh5_dict_free(back);
	nnh5_dict_free(good);
	nnh5_dict_free(bad);
}

static void newer_format_refused(void **state)
{
	nnh5_tensor *t;
	hid_t fid, sp, at;
	int64_t v = 99;
	(void)state;
	ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
	ok(nnh5_save_tensor(tu_path("future.h5"), t));
	nnh5_tensor_free(t);
	fid = H5Fopen(tu_path("future.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
	sp = H5Screate(H5S_SCALAR);
	H5Adelete(fid, "nnh5_format_version");
	at = H5Acreate2(fid, "nnh5_format_version", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
	H5Awrite(at, H5T_NATIVE_INT64, &v);
	H5Aclose(at);
	H5Sclose(sp);
	H5Fclose(fid);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("future.h5")), "future.h5",
	      "format version 99");
}

/*
 * A file written by a newer HDF5 (an object version HDF5 1.10 does not know)
 * is not damaged: the message says it was written by a newer HDF5 and names
 * the HDF5 nnh5 runs on. tests/data/written-by-hdf5-2.0.hdf5 was written by
 * h5wasm (libhdf5 2.0, tests/js/write_newer.mjs): its "weight" has a
 * version 5 layout message. Real damage is still called damage.
 */
static void newer_hdf5_is_not_damage(void **state)
{
	char fixture[4096], version[64];
	unsigned maj, min, rel;
	nnh5_tensor *t;
	nnh5_dict *d;
	nnh5_file *f;
	(void)state;
	H5get_libversion(&maj, &min, &rel);
	snprintf(version, sizeof version, "HDF5 %u.%u.%u", maj, min, rel);
	snprintf(fixture, sizeof fixture, "%s/written-by-hdf5-2.0.hdf5",
		 getenv("NNH5_TEST_DATA") ? getenv("NNH5_TEST_DATA") : "tests/data");

	ok(nnh5_file_open(&f, fixture, NNH5_READ));
	ok(nnh5_file_read_tensor(&t, f, "bias")); /* what 1.10 knows still reads */
	assert_int_equal(nnh5_tensor_numel(t), 4);
	nnh5_tensor_free(t);
	fails(NNH5_ERR_FORMAT, nnh5_file_read_tensor(&t, f, "weight"), "'weight'",
	      "written by a newer HDF5", version, "layout message");
	assert_null(strstr(nnh5_error_message(), "damaged"));
	ok(nnh5_file_close(f));
	fails(NNH5_ERR_FORMAT, nnh5_load_dict(&d, fixture), "weight", "written by a newer HDF5",
	      version);

	/* A superblock version this HDF5 does not know: the file does not open. */
	ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
	ok(nnh5_save_tensor(tu_path("newer-superblock.h5"), t));
	ok(nnh5_save_tensor(tu_path("damaged-superblock.h5"), t));
	nnh5_tensor_free(t);
	tu_flip_byte(tu_path("newer-superblock.h5"), 8, 0x02 ^ 0x04); /* version 2 -> 4 */
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("newer-superblock.h5")),
	      "newer-superblock.h5", "written by a newer HDF5", version, "superblock version");
	assert_null(strstr(nnh5_error_message(), "damaged"));
	/* A flipped byte in the checksummed superblock is damage. */
	tu_flip_byte(tu_path("damaged-superblock.h5"), 20, 0x40);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("damaged-superblock.h5")),
	      "damaged-superblock.h5", "damaged");
	assert_null(strstr(nnh5_error_message(), "newer"));

	/*
	 * The global heap (the strings of nnh5_kind and nnh5_keys) has one
	 * version and no checksum: another version number there is damage.
	 */
	ok(nnh5_dict_new(&d));
	ok(nnh5_tensor_zeros(&t, NNH5_INT8, 0, NULL));
	ok(nnh5_dict_set(d, "x", t));
	ok(nnh5_save_dict(tu_path("heap.h5"), d));
	nnh5_dict_free(d);
	size_t n;
	char *bytes = tu_slurp(tu_path("heap.h5"), &n);
	assert_non_null(bytes);
	long gcol = -1;
	for (size_t i = 0; i + 5 <= n && gcol < 0; i++)
		if (memcmp(bytes + i, "GCOL", 4) == 0)
			gcol = (long)i;
	free(bytes);
	assert_true(gcol >= 0);
	tu_flip_byte(tu_path("heap.h5"), gcol + 4, 0x01 ^ 0x02); /* version 1 -> 2 */
	assert_int_not_equal(nnh5_load_dict(&d, tu_path("heap.h5")), NNH5_OK);
	assert_non_null(strstr(nnh5_error_message(), "global heap"));
	assert_null(strstr(nnh5_error_message(), "newer"));
}

/* The caller's HDF5 error handler is restored after every call, failed or not. */
static herr_t my_handler(hid_t stack, void *data)
{
	(void)stack;
	(*(int *)data)++;
	return 0;
}

static void hdf5_error_handler_restored(void **state)
{
	int calls = 0;
	H5E_auto2_t func = NULL;
	void *data = NULL;
	nnh5_tensor *t;
	(void)state;
	assert_true(H5Eset_auto2(H5E_DEFAULT, my_handler, &calls) >= 0);
	write_text(tu_path("junk.h5"), "junk");
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("junk.h5")), "junk.h5");
	fails(NNH5_ERR_NOT_FOUND, nnh5_load_tensor(&t, tu_path("absent.h5")), "absent.h5");
	assert_true(H5Eget_auto2(H5E_DEFAULT, &func, &data) >= 0);
	assert_ptr_equal(func, my_handler);
	assert_ptr_equal(data, &calls);
	assert_int_equal(calls, 0); /* nnh5's own HDF5 failures never reach it */
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* ---- out of memory: fail the Nth allocation for every N ---- */

static long alloc_budget = -1; /* allocations left before failing; -1 = unlimited */

static void *failing_malloc(size_t n)
{
	if (alloc_budget == 0)
		return NULL;
	if (alloc_budget > 0)
		alloc_budget--;
	return malloc(n);
}

static void *failing_realloc(void *p, size_t n)
{
	if (alloc_budget == 0)
		return NULL;
	if (alloc_budget > 0)
		alloc_budget--;
	return realloc(p, n);
}

/*
 * The paths the sweep drives, each a whole round trip that frees everything
 * it made and returns the first failure. Another path (checkpoints) is one
 * more function and one more line in oom_paths[].
 */
static nnh5_dict *oom_dict_of(size_t n, const char *fmt, int *rc)
{
	nnh5_dict *d = NULL;
	nnh5_tensor *t;
	char key[32];

	*rc = nnh5_dict_new(&d);
	for (size_t i = 0; !*rc && i < n; i++) {
		snprintf(key, sizeof key, fmt, (int)(i / 2), i % 2 ? "bias" : "weight");
		*rc = nnh5_tensor_ones(&t, i % 3 ? NNH5_FLOAT32 : NNH5_BFLOAT16, 1,
				       (int64_t[]){ i == 0 ? 2048 : 8 });
		if (!*rc) {
			*rc = nnh5_dict_set(d, key, t);
			if (*rc)
				nnh5_tensor_free(t);
		}
	}
	if (*rc) {
		nnh5_dict_free(d);
		return NULL;
	}
	return d;
}

static int oom_state_dict(const char *path)
{
	nnh5_dict *sd, *back = NULL;
	int rc;

	sd = oom_dict_of(6, "layer%d.%s", &rc);
	if (!rc)
		rc = nnh5_save_state_dict(path, sd);
	if (!rc)
		rc = nnh5_load_state_dict(&back, path);
	if (!rc && nnh5_dict_len(back) != 6)
		rc = -100;
	nnh5_dict_free(back);
	nnh5_dict_free(sd);
	return rc;
}

static int oom_dict(const char *path)
{
	nnh5_dict *d, *back = NULL;
	int rc;

	d = oom_dict_of(5, "key%d_%s", &rc);
	if (!rc)
		rc = nnh5_save_dict(path, d);
	if (!rc)
		rc = nnh5_load_dict(&back, path);
	if (!rc && nnh5_dict_len(back) != 5)
		rc = -100;
	nnh5_dict_free(back);
	nnh5_dict_free(d);
	return rc;
}

static int oom_tensor_and_list(const char *path)
{
	nnh5_tensor *t = NULL, *back = NULL;
	nnh5_list *l = NULL, *lback = NULL;
	int rc = nnh5_tensor_arange(&t, NNH5_INT64, 0, 1000, 1);

	if (!rc)
		rc = nnh5_save_tensor(path, t);
	if (!rc)
		rc = nnh5_load_tensor(&back, path);
	if (!rc)
		rc = nnh5_list_new(&l);
	for (int i = 0; !rc && i < 12; i++) {
		nnh5_tensor *x;
		rc = nnh5_tensor_zeros(&x, NNH5_FLOAT16, 1, (int64_t[]){ i });
		if (!rc && (rc = nnh5_list_append(l, x)) != NNH5_OK)
			nnh5_tensor_free(x);
	}
	if (!rc)
		rc = nnh5_save_list(path, l);
	if (!rc)
		rc = nnh5_load_list(&lback, path);
	if (!rc && (nnh5_list_len(lback) != 12 || !nnh5_tensor_bitwise_equal(t, back)))
		rc = -100;
	nnh5_tensor_free(t);
	nnh5_tensor_free(back);
	nnh5_list_free(l);
	nnh5_list_free(lback);
	return rc;
}

/* The open-file handle: several objects, attributes, kinds, checksums, an image. */
static int oom_handle(const char *path)
{
	nnh5_file *f = NULL;
	nnh5_dict *d, *back = NULL;
	nnh5_tensor *t = NULL;
	char *s = NULL;
	int64_t v;
	nnh5_kind k;
	uint64_t sum;
	bool has;
	int rc;

	d = oom_dict_of(4, "m%d.%s", &rc);
	if (!rc)
		rc = nnh5_file_open(&f, path, NNH5_CREATE);
	if (!rc)
		rc = nnh5_file_write_state_dict(f, "models/net", d);
	if (!rc)
		rc = nnh5_file_write_tensor(f, "extra/t", nnh5_dict_value(d, 0));
	if (!rc)
		rc = nnh5_file_set_attr_string(f, "models/net", "note", "h\u00e9llo");
	if (!rc)
		rc = nnh5_file_set_attr_int(f, "/", "epoch", 7);
	if (f && rc)
		nnh5_file_discard(f);
	else if (f)
		rc = nnh5_file_close(f);
	f = NULL;
	if (!rc)
		rc = nnh5_file_open(&f, path, NNH5_READ);
	if (!rc)
		rc = nnh5_file_kind(&k, f, "models/net");
	if (!rc)
		rc = nnh5_file_read_state_dict(&back, f, "models/net");
	if (!rc)
		rc = nnh5_file_read_tensor(&t, f, "extra/t");
	if (!rc)
		rc = nnh5_file_stored_checksum(&sum, &has, f, "extra/t");
	if (!rc)
		rc = nnh5_file_get_attr_string(&s, f, "models/net", "note");
	if (!rc)
		rc = nnh5_file_get_attr_int(&v, f, "/", "epoch");
	nnh5_file_close(f);
	nnh5_free(s);
	nnh5_tensor_free(t);
	nnh5_dict_free(back);
	back = NULL;
	/* The same file from memory. */
	FILE *fp = rc ? NULL : fopen(path, "rb");
	if (fp) {
		static char img[1 << 16];
		size_t n = fread(img, 1, sizeof img, fp);
		fclose(fp);
		f = NULL;
		rc = nnh5_file_open_image(&f, img, n, "oom image", NULL);
		if (!rc)
			rc = nnh5_file_read_dict(&back, f, "/");
		nnh5_file_close(f);
		nnh5_dict_free(back);
	}
	nnh5_dict_free(d);
	return rc;
}

/* Build, run, save, load, load into, verify a model (the nn paths). */
static int oom_model(const char *path)
{
	nnh5_model *m = NULL, *back = NULL;
	nnh5_tensor *x = NULL, *y = NULL;
	nnh5_dict *sd = NULL;
	nnh5_load_result *res = NULL;
	nnh5_verify_result vr;
	char *text = NULL;
	int rc = nnh5_model_new(&m, NNH5_FLOAT32, 3);

	if (!rc)
		rc = nnh5_model_add_linear(m, "hidden", 6, 16, true);
	if (!rc)
		rc = nnh5_model_add_gelu(m, NULL);
	if (!rc)
		rc = nnh5_model_add_lazy_linear(m, "out", 3, true);
	if (!rc)
		rc = nnh5_model_add_flatten(m, "flat", 0, -1);
	if (!rc)
		rc = nnh5_tensor_ones(&x, NNH5_FLOAT32, 2, (int64_t[]){ 4, 6 });
	if (!rc)
		rc = nnh5_model_forward(&y, m, x);
	if (!rc)
		rc = nnh5_model_format(&text, m);
	if (!rc)
		rc = nnh5_save_model(path, m, x);
	if (!rc)
		rc = nnh5_load_model(&back, path);
	if (!rc)
		rc = nnh5_verify_model(&vr, path);
	if (!rc)
		rc = nnh5_load_state_dict(&sd, path);
	if (!rc)
		rc = nnh5_model_load_state_dict(&res, back, sd, &(nnh5_load_options){
			NNH5_LOAD_OPTIONS_VERSION, false, NULL, 0 });
	if (!rc && !vr.bitwise_equal)
		rc = -100;
	nnh5_load_result_free(res);
	nnh5_dict_free(sd);
	nnh5_free(text);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(back);
	nnh5_model_free(m);
	return rc;
}

/* A training step, then checkpoints through sync and async managers, latest and load. */
static int oom_checkpoint(const char *path)
{
	char dir[4200];
	nnh5_model *m = NULL;
	nnh5_optim *opt = NULL;
	nnh5_tensor *x = NULL, *y = NULL, *target = NULL, *grad = NULL;
	nnh5_checkpoint *c = NULL, *back = NULL;
	nnh5_checkpoint_manager *mgr = NULL;
	nnh5_dict *sd = NULL;
	nnh5_rng rng;
	char *why = NULL;
	double loss;
	int rc;

	snprintf(dir, sizeof dir, "%.4000s.ckpt", path);
	nnh5_rng_seed(&rng, 9);
	rc = nnh5_model_new(&m, NNH5_FLOAT32, 4);
	if (!rc)
		rc = nnh5_model_add_linear(m, "hidden", 5, 8, true);
	if (!rc)
		rc = nnh5_model_add_relu(m, NULL);
	if (!rc)
		rc = nnh5_model_add_linear(m, "out", 8, 2, true);
	if (!rc)
		rc = nnh5_optim_adam_new(&opt, m, NULL);
	if (!rc)
		rc = nnh5_tensor_ones(&x, NNH5_FLOAT32, 2, (int64_t[]){ 3, 5 });
	if (!rc)
		rc = nnh5_tensor_zeros(&target, NNH5_FLOAT32, 2, (int64_t[]){ 3, 2 });
	if (!rc)
		rc = nnh5_model_forward_train(&y, m, x, &rng);
	if (!rc)
		rc = nnh5_loss_mse(&loss, &grad, y, target);
	if (!rc)
		rc = nnh5_model_backward(NULL, m, grad);
	if (!rc)
		rc = nnh5_optim_step(opt);
	for (int async = 0; async < 2 && !rc; async++) {
		nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
		o.async = async;
		o.keep_last = 1;
		o.keep_best = 1;
		o.best_metric = "loss";
		rc = nnh5_checkpoint_manager_open(&mgr, dir, &o);
		if (!rc)
			rc = nnh5_checkpoint_new(&c, 10 + async);
		if (!rc)
			rc = nnh5_model_state_dict(&sd, m);
		if (!rc && (rc = nnh5_checkpoint_set_state(c, "model", sd)) == NNH5_OK)
			sd = NULL;
		if (!rc)
			rc = nnh5_optim_state_dict(&sd, opt);
		if (!rc && (rc = nnh5_checkpoint_set_state(c, "optimizer", sd)) == NNH5_OK)
			sd = NULL;
		if (!rc)
			rc = nnh5_checkpoint_set_rng(c, "data", &rng);
		if (!rc)
			rc = nnh5_checkpoint_set_metric(c, "loss", loss);
		if (!rc)
			rc = nnh5_checkpoint_set_meta(c, "note", "oom");
		if (!rc)
			rc = nnh5_checkpoint_manager_save(mgr, c);
		if (!rc)
			rc = nnh5_checkpoint_manager_wait(mgr);
		if (!rc)
			rc = nnh5_checkpoint_manager_latest(&back, &why, mgr);
		int rc2 = nnh5_checkpoint_manager_close(mgr);
		if (!rc)
			rc = rc2;
		mgr = NULL;
		nnh5_dict_free(sd);
		sd = NULL;
		nnh5_checkpoint_free(c);
		c = NULL;
		nnh5_checkpoint_free(back);
		back = NULL;
		nnh5_free(why);
		why = NULL;
	}
	nnh5_tensor_free(grad);
	nnh5_tensor_free(target);
	nnh5_tensor_free(y);
	nnh5_tensor_free(x);
	nnh5_optim_free(opt);
	nnh5_model_free(m);
	return rc;
}

/* Inspection in a child: the parent's side allocates the report. */
static int oom_untrusted(const char *path)
{
	nnh5_untrusted_report *r = NULL;
	int rc = oom_state_dict(path);

	if (!rc)
		rc = nnh5_untrusted_check(&r, path, NULL);
	nnh5_untrusted_report_free(r);
	return rc;
}

static const struct oom_path {
	const char *name;
	int (*run)(const char *path);
} oom_paths[] = {
	{ "tensor and list", oom_tensor_and_list },
	{ "dict", oom_dict },
	{ "state dict", oom_state_dict },
	{ "file handle", oom_handle },
	{ "model", oom_model },
	{ "training and checkpoints", oom_checkpoint },
	{ "untrusted check", oom_untrusted },
};

static void out_of_memory_everywhere(void **state)
{
	(void)state;
	nnh5_set_allocator(failing_malloc, failing_realloc, free);
	for (size_t p = 0; p < sizeof oom_paths / sizeof oom_paths[0]; p++) {
		int failures = 0;
		for (long n = 0;; n++) {
			alloc_budget = n;
			int rc = oom_paths[p].run(tu_path("oom.h5"));
			alloc_budget = -1;
			if (rc == NNH5_OK)
				break;
			/* the only acceptable failure is a clean out-of-memory report */
			if (rc != NNH5_ERR_NOMEM || !strstr(nnh5_error_message(), "out of memory")) {
				nnh5_set_allocator(NULL, NULL, NULL);
				fail_msg("%s: allocation %ld: %s: %s", oom_paths[p].name, n,
					 nnh5_status_name(rc), nnh5_error_message());
			}
			failures++;
			assert_true(n < 100000);
		}
		FILE *log = fopen(tu_path("oom-counts.txt"), "a");
		if (log) {
			fprintf(log, "%s: %d allocations failed one by one\n", oom_paths[p].name,
				failures);
			fclose(log);
		}
		/* the sweep really went through the code */
		if (failures < 10) {
			nnh5_set_allocator(NULL, NULL, NULL);
			fail_msg("%s: only %d allocations", oom_paths[p].name, failures);
		}
		assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
	}
	nnh5_set_allocator(NULL, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(missing_and_not_hdf5, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(truncated_file, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(missing_objects, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(unsupported_types, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(bad_keys, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(failed_save_keeps_previous, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(newer_format_refused, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(newer_hdf5_is_not_damage, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(hdf5_error_handler_restored, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(out_of_memory_everywhere, quiet_setup, quiet_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
