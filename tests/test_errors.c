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

static int save_and_load_cycle(const char *path)
{
	nnh5_dict *sd = NULL, *back = NULL;
	nnh5_tensor *t = NULL;
	int rc;
	char key[32];

	rc = nnh5_dict_new(&sd);
	for (int i = 0; !rc && i < 6; i++) {
		snprintf(key, sizeof key, "layer%d.%s", i / 2, i % 2 ? "bias" : "weight");
		rc = nnh5_tensor_ones(&t, NNH5_FLOAT32, 1, (int64_t[]){ 8 });
		if (!rc) {
			rc = nnh5_dict_set(sd, key, t);
			if (rc)
				nnh5_tensor_free(t);
		}
	}
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

static void out_of_memory_everywhere(void **state)
{
	int failures = 0;
	(void)state;
	nnh5_set_allocator(failing_malloc, failing_realloc, free);
	for (long n = 0;; n++) {
		alloc_budget = n;
		int rc = save_and_load_cycle(tu_path("oom.h5"));
		alloc_budget = -1;
		if (rc == NNH5_OK)
			break;
		/* the only acceptable failure is a clean out-of-memory report */
		if (rc != NNH5_ERR_NOMEM)
			fail_msg("allocation %ld: %s: %s", n, nnh5_status_name(rc),
				 nnh5_error_message());
		assert_non_null(strstr(nnh5_error_message(), "out of memory"));
		failures++;
		assert_true(n < 100000);
	}
	nnh5_set_allocator(NULL, NULL, NULL);
	assert_true(failures > 20); /* the sweep really went through the code */
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
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
		cmocka_unit_test_setup_teardown(hdf5_error_handler_restored, quiet_setup, quiet_teardown),
		cmocka_unit_test_setup_teardown(out_of_memory_everywhere, quiet_setup, quiet_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
