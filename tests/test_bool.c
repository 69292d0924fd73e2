/*
 * tests/test_bool.c - the bool rule (doc/FORMAT.md, "bool"): which HDF5
 * types load as bool (h5py's enum over int8 with exactly FALSE=0, TRUE=1),
 * bool data holding bytes other than 0 and 1 refused by every reader (file
 * reads compact and contiguous, converted, state dicts, the lazy map, the
 * untrusted check) with NNH5_ERR_FORMAT naming the file, the dataset and the
 * first bad element, and such tensors refused at save with NNH5_ERR_INVALID
 * before anything is written.
 */
#include "testutil.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

/* An enum over base with the members names[i] = values[i]. */
static hid_t make_enum(hid_t base, int n, const char *const *names, const signed char *values)
{
	hid_t t = H5Tenum_create(base);
	assert_true(t >= 0);
	for (int i = 0; i < n; i++) {
		signed char v = values[i];
		assert_true(H5Tenum_insert(t, names[i], &v) >= 0);
	}
	return t;
}

static hid_t h5py_bool(void)
{
	return make_enum(H5T_STD_I8LE, 2, (const char *const[]){ "FALSE", "TRUE" },
			 (const signed char[]){ 0, 1 });
}

/* Write n bytes as a dataset of type at name in a new file (a state dict when sd). */
static void write_raw(const char *path, const char *name, hid_t type, const unsigned char *bytes,
		      size_t n, bool sd)
{
	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hsize_t dim = n;
	hid_t sp = H5Screate_simple(1, &dim, NULL);
	assert_true(fid >= 0 && sp >= 0);
	if (sd) {
		hid_t st = H5Tcopy(H5T_C_S1), asp = H5Screate(H5S_SCALAR);
		H5Tset_size(st, 10);
		hid_t a = H5Acreate2(fid, "nnh5_kind", st, asp, H5P_DEFAULT, H5P_DEFAULT);
		assert_true(H5Awrite(a, st, "state_dict") >= 0);
		H5Aclose(a);
		H5Sclose(asp);
		H5Tclose(st);
		hid_t g = H5Gcreate2(fid, "layer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
		H5Gclose(g);
	}
	hid_t did = H5Dcreate2(fid, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	assert_true(did >= 0);
	assert_true(H5Dwrite(did, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes) >= 0);
	H5Dclose(did);
	H5Sclose(sp);
	assert_true(H5Fclose(fid) >= 0);
}

static void stored_bytes_refused(void **state)
{
	static unsigned char big[8192];
	unsigned char small[10] = { 0, 1, 1, 2, 0, 1, 0, 0, 1, 1 };
	hid_t b = h5py_bool();
	nnh5_tensor *t;
	nnh5_dict *d;
	(void)state;

	/* compact: read through H5Dread */
	write_raw(tu_path("small.h5"), "mask", b, small, sizeof small, false);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("small.h5")), "small.h5", "dataset 'mask'",
	      "element 3", "byte 0x02");
	assert_null(t);

	/* contiguous: read with pread, and mapped */
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i % 3 == 0);
	big[5000] = 0xff;
	write_raw(tu_path("big.h5"), "mask", b, big, sizeof big, false);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("big.h5")), "big.h5", "dataset 'mask'",
	      "element 5000", "byte 0xff");
	nnh5_map *m;
	ok(nnh5_map_open(&m, tu_path("big.h5"), NULL));
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&t, m, "mask"), "big.h5", "element 5000");
	assert_null(t);
	nnh5_map_close(m);
	nnh5_untrusted_report *r;
	fails(NNH5_ERR_FORMAT, nnh5_untrusted_check(&r, tu_path("big.h5"), NULL), "element 5000");
	nnh5_untrusted_report_free(r);

	/* inside a state dict */
	write_raw(tu_path("sd.h5"), "layer/mask", b, small, sizeof small, true);
	fails(NNH5_ERR_FORMAT, nnh5_load_state_dict(&d, tu_path("sd.h5")), "layer/mask'",
	      "element 3");
	assert_null(d);

	/* members in the other order: HDF5 converts by name, the bad byte still refused */
	hid_t swapped = make_enum(H5T_STD_I8LE, 2, (const char *const[]){ "TRUE", "FALSE" },
				  (const signed char[]){ 1, 0 });
	write_raw(tu_path("swapped.h5"), "mask", swapped, small, sizeof small, false);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, tu_path("swapped.h5")), "dataset 'mask'",
	      "element 3");
	small[3] = 1;
	write_raw(tu_path("swapped-ok.h5"), "mask", swapped, small, sizeof small, false);
	ok(nnh5_load_tensor(&t, tu_path("swapped-ok.h5")));
	assert_int_equal(nnh5_tensor_dtype(t), NNH5_BOOL);
	assert_memory_equal(nnh5_tensor_data(t), small, sizeof small);
	nnh5_tensor_free(t);
	H5Tclose(swapped);
	H5Tclose(b);
}

static void only_h5py_bool_is_bool(void **state)
{
	const unsigned char bytes[4] = { 0, 1, 1, 0 };
	const char *const ft[] = { "FALSE", "TRUE" };
	struct {
		const char *name;
		hid_t type;
	} cases[] = {
		{ "unsigned.h5", make_enum(H5T_STD_U8LE, 2, ft, (const signed char[]){ 0, 1 }) },
		{ "three.h5", make_enum(H5T_STD_I8LE, 3, (const char *const[]){ "FALSE", "TRUE", "MAYBE" },
					(const signed char[]){ 0, 1, 2 }) },
		{ "lower.h5", make_enum(H5T_STD_I8LE, 2, (const char *const[]){ "false", "true" },
					(const signed char[]){ 0, 1 }) },
		{ "values.h5", make_enum(H5T_STD_I8LE, 2, ft, (const signed char[]){ 0, -1 }) },
	};
	nnh5_tensor *t;
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_raw(tu_path(cases[i].name), "x", cases[i].type, bytes, sizeof bytes, false);
		fails(NNH5_ERR_TYPE, nnh5_load_tensor(&t, tu_path(cases[i].name)), cases[i].name,
		      "enum of");
		H5Tclose(cases[i].type);
	}
	hid_t b = h5py_bool();
	write_raw(tu_path("h5py.h5"), "x", b, bytes, sizeof bytes, false);
	ok(nnh5_load_tensor(&t, tu_path("h5py.h5")));
	assert_int_equal(nnh5_tensor_dtype(t), NNH5_BOOL);
	nnh5_tensor_free(t);
	H5Tclose(b);
}

static void saving_bad_bytes_refused(void **state)
{
	nnh5_tensor *bad, *good;
	nnh5_dict *d;
	nnh5_list *l;
	nnh5_file *f;
	(void)state;
	ok(nnh5_tensor_new(&bad, NNH5_BOOL, 1, (int64_t[]){ 3 }));
	((unsigned char *)nnh5_tensor_mutable_data(bad))[1] = 2;
	ok(nnh5_tensor_new(&good, NNH5_BOOL, 1, (int64_t[]){ 3 }));
	((unsigned char *)nnh5_tensor_mutable_data(good))[2] = 1;

	fails(NNH5_ERR_INVALID, nnh5_save_tensor(tu_path("save.h5"), bad), "save.h5",
	      "element 1", "byte 0x02", "a bool is 0 or 1");
	assert_false(tu_exists(tu_path("save.h5")));

	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "a.ok", good));
	ok(nnh5_dict_set(d, "b.bad", bad));
	fails(NNH5_ERR_INVALID, nnh5_save_state_dict(tu_path("save.h5"), d), "'b.bad'",
	      "element 1");
	fails(NNH5_ERR_INVALID, nnh5_save_dict(tu_path("save.h5"), d), "b.bad", "element 1");
	assert_false(tu_exists(tu_path("save.h5")));
	ok(nnh5_list_new(&l));
	ok(nnh5_dict_take(&good, d, "a.ok"));
	ok(nnh5_dict_take(&bad, d, "b.bad"));
	ok(nnh5_list_append(l, good));
	ok(nnh5_list_append(l, bad));
	fails(NNH5_ERR_INVALID, nnh5_save_list(tu_path("save.h5"), l), "/1", "element 1");
	assert_false(tu_exists(tu_path("save.h5")));

	/* a refused tensor writes nothing: the rest of the file still commits */
	ok(nnh5_file_open(&f, tu_path("save.h5"), NNH5_CREATE));
	fails(NNH5_ERR_INVALID, nnh5_file_write_tensor(f, "bad", nnh5_list_get(l, 1)), "'bad'");
	ok(nnh5_file_write_tensor(f, "good", nnh5_list_get(l, 0)));
	ok(nnh5_file_close(f));
	ok(nnh5_file_open(&f, tu_path("save.h5"), NNH5_READ));
	assert_false(nnh5_file_has(f, "bad"));
	assert_true(nnh5_file_has(f, "good"));
	ok(nnh5_file_close(f));
	nnh5_list_free(l);
	nnh5_dict_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stored_bytes_refused),
		cmocka_unit_test(only_h5py_bool_is_bool),
		cmocka_unit_test(saving_bad_bytes_refused),
	};
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
