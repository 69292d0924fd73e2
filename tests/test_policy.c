/*
 * tests/test_policy.c - the load policy's options (lib/store/policy.c): every
 * refusal can be lifted only by its own option, limits can be raised,
 * re-reading a dataset does not count twice, HDF5's plugin loading state is
 * restored, and files open from memory as from disk (tests/hostile/ holds
 * the hostile-file corpus itself).
 */
#define _DEFAULT_SOURCE
#include "testutil.h"

#include <H5PLpublic.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* A plain HDF5 file: "zeros" (1 MiB of zeros, chunked, deflated), "w" (4 floats). */
static void write_deflated(const char *path)
{
	hsize_t dims[1] = { 1 << 18 }, chunk[1] = { 1 << 16 };
	float *zeros = calloc(dims[0], sizeof *zeros);
	float w[4] = { 1, 2, 3, 4 };
	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_chunk(dcpl, 1, chunk);
	H5Pset_deflate(dcpl, 9);
	hid_t ds = H5Dcreate2(fid, "zeros", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Pclose(dcpl);
	sp = H5Screate_simple(1, (hsize_t[]){ 4 }, NULL);
	ds = H5Dcreate2(fid, "w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Fclose(fid);
	free(zeros);
}

static void compression_ratio(void **state)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	nnh5_tensor *t;
	(void)state;
	write_deflated(tu_path("deflated.h5"));
	ok(nnh5_file_open(&f, tu_path("deflated.h5"), NNH5_READ));
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_tensor(&t, f, "zeros"), "deflated.h5",
	      "dataset 'zeros' declares 1048576 bytes but stores", "max_compression_ratio");
	assert_null(t);
	ok(nnh5_file_read_tensor(&t, f, "w")); /* the honest neighbour still loads */
	nnh5_tensor_free(t);
	nnh5_file_close(f);
	/* Raised: 1 MiB of zeros packs to about 1 KiB. */
	o.max_compression_ratio = 10000;
	ok(nnh5_file_open_ext(&f, tu_path("deflated.h5"), NNH5_READ, &o));
	ok(nnh5_file_read_tensor(&t, f, "zeros"));
	assert_int_equal(nnh5_tensor_numel(t), 1 << 18);
	assert_true(nnh5_tensor_get(t, 12345) == 0.0);
	nnh5_tensor_free(t);
	nnh5_file_close(f);
}

/* Save a dict (or state dict) of zero tensors of len elements under keys. */
static void save_zeros(const char *path, bool state_dict, const char *const *keys, size_t n,
		       nnh5_dtype dtype, int64_t len)
{
	nnh5_dict *d;
	nnh5_tensor *t;
	ok(nnh5_dict_new(&d));
	for (size_t i = 0; i < n; i++) {
		ok(nnh5_tensor_zeros(&t, dtype, 1, &len));
		ok(nnh5_dict_set(d, keys[i], t));
	}
	ok(state_dict ? nnh5_save_state_dict(path, d) : nnh5_save_dict(path, d));
	nnh5_dict_free(d);
}

static void size_limits(void **state)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_dict *back;
	nnh5_tensor *t;
	nnh5_file *f;
	(void)state;
	save_zeros(tu_path("two.h5"), false, (const char *[]){ "a", "b" }, 2, NNH5_FLOAT32,
		   2048); /* 8 KiB each */

	o.max_tensor_bytes = 8191;
	ok(nnh5_file_open_ext(&f, tu_path("two.h5"), NNH5_READ, &o));
	fails(NNH5_ERR_OVERFLOW, nnh5_file_read_tensor(&t, f, "a"),
	      "dataset 'a' declares 8192 bytes, more than the per-tensor limit of 8191");
	nnh5_file_close(f);

	o.max_tensor_bytes = 0;
	o.max_load_bytes = 8192;
	ok(nnh5_file_open_ext(&f, tu_path("two.h5"), NNH5_READ, &o));
	/* The same dataset read again is counted once. */
	ok(nnh5_file_read_tensor(&t, f, "a"));
	nnh5_tensor_free(t);
	ok(nnh5_file_read_tensor(&t, f, "a"));
	nnh5_tensor_free(t);
	fails(NNH5_ERR_OVERFLOW, nnh5_file_read_tensor(&t, f, "b"), "dataset 'b'",
	      "per-load limit of 8192 bytes (max_load_bytes)");
	nnh5_file_close(f);

	o.max_load_bytes = 16384;
	ok(nnh5_file_open_ext(&f, tu_path("two.h5"), NNH5_READ, &o));
	ok(nnh5_file_read_dict(&back, f, "/"));
	assert_int_equal(nnh5_dict_len(back), 2);
	nnh5_dict_free(back);
	nnh5_file_close(f);
}

/* Two hard links to one dataset share their data: that is not an overlap. */
static void hard_links_share_data(void **state)
{
	nnh5_tensor *t;
	nnh5_dict *back;
	nnh5_file *f;
	(void)state;
	ok(nnh5_tensor_ones(&t, NNH5_FLOAT64, 1, (int64_t[]){ 1024 }));
	ok(nnh5_save_tensor(tu_path("linked.h5"), t));
	nnh5_tensor_free(t);
	hid_t fid = H5Fopen(tu_path("linked.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
	assert_true(H5Lcreate_hard(fid, "tensor", fid, "alias", H5P_DEFAULT, H5P_DEFAULT) >= 0);
	H5Fclose(fid);
	ok(nnh5_file_open(&f, tu_path("linked.h5"), NNH5_READ));
	ok(nnh5_file_read_dict(&back, f, "/"));
	assert_int_equal(nnh5_dict_len(back), 2);
	nnh5_dict_free(back);
	nnh5_file_close(f);
}

/* Reading deep.h5 as a state dict with o fails with OVERFLOW and needle. */
static void walk_refused(const nnh5_open_options *o, const char *needle)
{
	nnh5_dict *back;
	nnh5_file *f;
	ok(nnh5_file_open_ext(&f, tu_path("deep.h5"), NNH5_READ, o));
	fails(NNH5_ERR_OVERFLOW, nnh5_file_read_state_dict(&back, f, "/"), needle);
	assert_null(back);
	nnh5_file_close(f);
}

static void walk_limits(void **state)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT, dflt = NNH5_OPEN_OPTIONS_INIT;
	nnh5_dict *back;
	nnh5_file *f;
	(void)state;
	save_zeros(tu_path("deep.h5"), true,
		   (const char *[]){ "a.b.c.weight", "x.y.bias", "a_rather_long_module_name.weight" },
		   3, NNH5_INT8, 2);
	o.max_depth = 2;
	walk_refused(&o, "'/a/b/c' is nested deeper than 2 groups (max_depth)");
	o = dflt;
	o.max_groups = 4;
	walk_refused(&o, "holds more than 4 groups (max_groups)");
	o = dflt;
	o.max_tensors = 2;
	walk_refused(&o, "holds more than 2 datasets (max_tensors)");
	o = dflt;
	o.max_name_length = 10;
	walk_refused(&o, "a name of 25 bytes");
	o = dflt;
	o.max_depth = 300;
	fails(NNH5_ERR_INVALID, nnh5_file_open_ext(&f, tu_path("deep.h5"), NNH5_READ, &o),
	      "max_depth 300 exceeds 256");
	ok(nnh5_file_open_ext(&f, tu_path("deep.h5"), NNH5_READ, &dflt));
	ok(nnh5_file_read_state_dict(&back, f, "/"));
	assert_int_equal(nnh5_dict_len(back), 3);
	nnh5_dict_free(back);
	nnh5_file_close(f);
}

/*
 * The file raw holding bytes, and in the open file fid the dataset "raw"
 * whose data is stored in it (external storage).
 */
static void add_external_raw(hid_t fid, const char *raw, const unsigned char *bytes, size_t n)
{
	FILE *fp = fopen(raw, "wb");
	assert_non_null(fp);
	fwrite(bytes, 1, n, fp);
	fclose(fp);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	H5Pset_external(dcpl, raw, 0, (hsize_t)n);
	hid_t sp = H5Screate_simple(1, (hsize_t[]){ n }, NULL);
	hid_t ds = H5Dcreate2(fid, "raw", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	H5Dclose(ds);
	H5Sclose(sp);
	H5Pclose(dcpl);
}

/* External links and external storage load only with allow_external. */
static void allow_external(void **state)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_tensor *t;
	nnh5_dict *back;
	nnh5_file *f;
	char target[4096], raw[4096];
	unsigned char bytes[16];
	(void)state;
	for (int i = 0; i < 16; i++)
		bytes[i] = (unsigned char)(i * 3);
	snprintf(target, sizeof target, "%s", tu_path("target.h5"));
	snprintf(raw, sizeof raw, "%s", tu_path("raw.bin"));
	ok(nnh5_tensor_ones(&t, NNH5_INT32, 1, (int64_t[]){ 3 }));
	ok(nnh5_save_tensor(target, t));
	nnh5_tensor_free(t);
	hid_t fid = H5Fcreate(tu_path("ext.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	assert_true(H5Lcreate_external(target, "/tensor", fid, "linked", H5P_DEFAULT,
				       H5P_DEFAULT) >= 0);
	add_external_raw(fid, raw, bytes, sizeof bytes);
	H5Fclose(fid);

	ok(nnh5_file_open(&f, tu_path("ext.h5"), NNH5_READ));
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_tensor(&t, f, "linked"),
	      "'linked' is an external link (to another file): refused");
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_tensor(&t, f, "raw"),
	      "dataset 'raw' stores its data in external files: refused");
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_dict(&back, f, "/"), "external");
	nnh5_file_close(f);

	o.allow_external = true;
	ok(nnh5_file_open_ext(&f, tu_path("ext.h5"), NNH5_READ, &o));
	ok(nnh5_file_read_tensor(&t, f, "linked"));
	assert_int_equal(nnh5_tensor_numel(t), 3);
	nnh5_tensor_free(t);
	ok(nnh5_file_read_tensor(&t, f, "raw"));
	assert_memory_equal(nnh5_tensor_data(t), bytes, sizeof bytes);
	nnh5_tensor_free(t);
	ok(nnh5_file_read_dict(&back, f, "/"));
	assert_int_equal(nnh5_dict_len(back), 2);
	nnh5_dict_free(back);
	nnh5_file_close(f);
}

/*
 * A dataset whose data lies in an external file but whose layout message
 * also holds an address (a crafted file: HDF5 writes HADDR_UNDEF there).
 * HDF5 1.10.8's H5Dget_offset() then reports an offset as for plain
 * contiguous data; the policy's shortcut that skips the creation
 * properties for contiguous data must not take it for plain data.
 */
static void external_storage_with_address(void **state)
{
	unsigned char bytes[16], *img;
	char raw[4096];
	long n;
	int patched = 0;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_tensor *t;
	nnh5_dict *back;
	nnh5_file *f;
	(void)state;
	for (int i = 0; i < 16; i++)
		bytes[i] = (unsigned char)(100 + i);
	snprintf(raw, sizeof raw, "%s", tu_path("raw2.bin"));
	/* The earliest format: object headers without checksums, patchable in place. */
	hid_t fid = H5Fcreate(tu_path("extaddr.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	add_external_raw(fid, raw, bytes, sizeof bytes);
	H5Fclose(fid);
	/* Layout message v3, contiguous: version 3, class 1, address (undefined), size 16. */
	FILE *fp = fopen(tu_path("extaddr.h5"), "r+b");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	img = malloc((size_t)n);
	fseek(fp, 0, SEEK_SET);
	assert_int_equal(fread(img, 1, (size_t)n, fp), (size_t)n);
	for (long i = 0; i + 18 <= n; i++) {
		static const unsigned char undef[] = { 3, 1, 0xff, 0xff, 0xff, 0xff,
						       0xff, 0xff, 0xff, 0xff, 16, 0 };
		if (memcmp(img + i, undef, sizeof undef) == 0) {
			memset(img + i + 2, 0, 8);
			img[i + 2] = 0x30; /* bytes 48..63: inside the file */
			patched++;
		}
	}
	assert_int_equal(patched, 1);
	fseek(fp, 0, SEEK_SET);
	fwrite(img, 1, (size_t)n, fp);
	fclose(fp);
	free(img);
	/* What the shortcut would see: an offset, as for plain contiguous data. */
	fid = H5Fopen(tu_path("extaddr.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t ds = H5Dopen2(fid, "raw", H5P_DEFAULT);
	assert_true(ds >= 0);
	assert_int_equal(H5Dget_offset(ds), 0x30);
	H5Dclose(ds);
	H5Fclose(fid);

	ok(nnh5_file_open(&f, tu_path("extaddr.h5"), NNH5_READ));
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_tensor(&t, f, "raw"),
	      "dataset 'raw' stores its data in external files: refused");
	fails(NNH5_ERR_UNSAFE, nnh5_file_read_dict(&back, f, "/"), "external files");
	nnh5_file_close(f);
	/* Allowed, it reads the external file, as HDF5 does, not bytes 48..63 of this one. */
	o.allow_external = true;
	ok(nnh5_file_open_ext(&f, tu_path("extaddr.h5"), NNH5_READ, &o));
	ok(nnh5_file_read_tensor(&t, f, "raw"));
	assert_memory_equal(nnh5_tensor_data(t), bytes, sizeof bytes);
	nnh5_tensor_free(t);
	nnh5_file_close(f);
}

/* nnh5 turns plugin loading off around its reads and puts the caller's state back. */
static void plugin_state_restored(void **state)
{
	unsigned before = 0, after = 0, inner = 0;
	nnh5_tensor *t;
	nnh5_file *f;
	(void)state;
	assert_true(H5PLget_loading_state(&before) >= 0);
	assert_int_not_equal(before, 0);
	ok(nnh5_tensor_ones(&t, NNH5_FLOAT32, 1, (int64_t[]){ 3 }));
	ok(nnh5_save_tensor(tu_path("plain.h5"), t));
	nnh5_tensor_free(t);
	ok(nnh5_file_open(&f, tu_path("plain.h5"), NNH5_READ));
	ok(nnh5_file_read_tensor(&t, f, "tensor"));
	nnh5_tensor_free(t);
	assert_true(H5PLget_loading_state(&after) >= 0);
	assert_int_equal(after, before);
	/* A caller that turned it off keeps it off. */
	H5PLset_loading_state(0);
	ok(nnh5_file_read_tensor(&t, f, "tensor"));
	nnh5_tensor_free(t);
	assert_true(H5PLget_loading_state(&inner) >= 0);
	assert_int_equal(inner, 0);
	H5PLset_loading_state(before);
	nnh5_file_close(f);
}

static void file_images(void **state)
{
	nnh5_dict *d, *back1, *back2;
	nnh5_tensor *t;
	nnh5_file *f1, *f2;
	size_t n1, n2;
	char *img1, *img2;
	(void)state;
	ok(nnh5_dict_new(&d));
	ok(nnh5_tensor_ones(&t, NNH5_FLOAT32, 1, (int64_t[]){ 5000 }));
	ok(nnh5_dict_set(d, "ones", t));
	ok(nnh5_save_dict(tu_path("img1.h5"), d));
	nnh5_dict_free(d);
	ok(nnh5_dict_new(&d));
	ok(nnh5_tensor_zeros(&t, NNH5_INT8, 1, (int64_t[]){ 3 }));
	ok(nnh5_dict_set(d, "zeros", t));
	ok(nnh5_save_dict(tu_path("img2.h5"), d));
	nnh5_dict_free(d);
	img1 = tu_slurp(tu_path("img1.h5"), &n1);
	img2 = tu_slurp(tu_path("img2.h5"), &n2);
	/* Two images open at once stay two files (HDF5 tells files apart by name). */
	ok(nnh5_file_open_image(&f1, img1, n1, "first", NULL));
	ok(nnh5_file_open_image(&f2, img2, n2, NULL, NULL));
	memset(img1, 0, n1); /* the bytes were copied */
	ok(nnh5_file_read_dict(&back1, f1, "/"));
	ok(nnh5_file_read_dict(&back2, f2, "/"));
	assert_non_null(nnh5_dict_get(back1, "ones"));
	assert_non_null(nnh5_dict_get(back2, "zeros"));
	assert_string_equal(nnh5_file_path(f1), "first");
	assert_string_equal(nnh5_file_path(f2), "(memory)");
	fails(NNH5_ERR_NOT_FOUND, nnh5_file_read_tensor(&t, f1, "nope"), "'first'", "'nope'");
	nnh5_dict_free(back1);
	nnh5_dict_free(back2);
	nnh5_file_close(f1);
	nnh5_file_close(f2);
	fails(NNH5_ERR_FORMAT, nnh5_file_open_image(&f1, "not hdf5", 8, "junk", NULL), "'junk'",
	      "not an HDF5 file image");
	fails(NNH5_ERR_FORMAT, nnh5_file_open_image(&f1, img2, 0, "empty", NULL), "empty image");
	fails(NNH5_ERR_INVALID, nnh5_file_open_image(&f1, NULL, 5, "null", NULL), "NULL");
	/* A truncated image is refused too. */
	fails(NNH5_ERR_FORMAT, nnh5_file_open_image(&f1, img2, n2 / 3, "cut", NULL), "'cut'");
	assert_null(f1);
	free(img1);
	free(img2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(compression_ratio),
		cmocka_unit_test(size_limits),
		cmocka_unit_test(hard_links_share_data),
		cmocka_unit_test(walk_limits),
		cmocka_unit_test(allow_external),
		cmocka_unit_test(external_storage_with_address),
		cmocka_unit_test(plugin_state_restored),
		cmocka_unit_test(file_images),
	};
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
