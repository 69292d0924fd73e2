/*
 * tests/test_checksum.c - the checksum stored with every tensor
 * (lib/core/checksum.c, doc/FORMAT.md "Checksums"): what it hashes, that every
 * dataset nnh5 writes carries it, that damaged data is refused instead of
 * loaded, and what the open options change.
 */
#include "testutil.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static nnh5_tensor *noise(int64_t rows, int64_t cols, uint64_t seed)
{
	int64_t shape[] = { rows, cols };
	nnh5_tensor *t;
	nnh5_rng r;

	nnh5_rng_seed(&r, seed);
	ok(nnh5_tensor_randn(&t, NNH5_FLOAT32, 2, shape, &r));
	return t;
}

/* The stored checksum attribute of dataset name, read with plain HDF5. */
static uint64_t stored_sum(const char *path, const char *name)
{
	uint64_t v = 0;
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	assert_true(fid >= 0);
	hid_t a = H5Aopen_by_name(fid, name, "nnh5_xxh3", H5P_DEFAULT, H5P_DEFAULT);
	assert_true(a >= 0);
	hid_t type = H5Aget_type(a);
	assert_int_equal(H5Tget_class(type), H5T_INTEGER);
	assert_int_equal(H5Tget_size(type), 8);
	assert_int_equal(H5Tget_sign(type), H5T_SGN_NONE);
	assert_true(H5Aread(a, H5T_NATIVE_UINT64, &v) >= 0);
	H5Tclose(type);
	H5Aclose(a);
	H5Fclose(fid);
	return v;
}

static void checksum_is_xxh3_of_the_bytes(void **state)
{
	nnh5_tensor *a = noise(7, 9, 1), *b = noise(7, 9, 1), *c = noise(7, 9, 2);
	(void)state;
	assert_int_equal(nnh5_tensor_checksum(a),
			 XXH3_64bits(nnh5_tensor_data(a), nnh5_tensor_nbytes(a)));
	assert_int_equal(nnh5_tensor_checksum(a), nnh5_tensor_checksum(b));
	assert_int_not_equal(nnh5_tensor_checksum(a), nnh5_tensor_checksum(c));
	/* one flipped bit anywhere changes it */
	unsigned char *p = nnh5_tensor_mutable_data(b);
	for (size_t i = 0; i < nnh5_tensor_nbytes(b); i += 17) {
		p[i] ^= 0x10;
		assert_int_not_equal(nnh5_tensor_checksum(a), nnh5_tensor_checksum(b));
		p[i] ^= 0x10;
	}
	assert_int_equal(nnh5_tensor_checksum(NULL), 0);
	nnh5_tensor_free(a);
	nnh5_tensor_free(b);
	nnh5_tensor_free(c);
}

static void every_dataset_carries_its_checksum(void **state)
{
	nnh5_dict *sd;
	nnh5_tensor *small = noise(2, 3, 3), *big = noise(64, 64, 4), *empty;
	int64_t zero[] = { 0 };
	(void)state;
	ok(nnh5_tensor_new(&empty, NNH5_INT64, 1, zero));
	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "hidden.weight", big));
	ok(nnh5_dict_set(sd, "hidden.bias", small));
	ok(nnh5_dict_set(sd, "out.empty", empty));
	ok(nnh5_save_state_dict(tu_path("sums.h5"), sd));
	assert_int_equal(stored_sum(tu_path("sums.h5"), "/hidden/weight"),
			 nnh5_tensor_checksum(big));
	assert_int_equal(stored_sum(tu_path("sums.h5"), "/hidden/bias"),
			 nnh5_tensor_checksum(small));
	assert_int_equal(stored_sum(tu_path("sums.h5"), "/out/empty"), XXH3_64bits(NULL, 0));
	nnh5_dict_free(sd);
}

static void flipped_data_is_reported_not_loaded(void **state)
{
	nnh5_tensor *t = noise(64, 64, 5), *back = NULL; /* 16 KiB: contiguous storage */
	const char *path = tu_path("flip.h5");
	(void)state;
	ok(nnh5_save_tensor(path, t));
	long off = tu_data_offset(path, "/tensor");
	size_t n = nnh5_tensor_nbytes(t);
	size_t where[] = { 0, 1, n / 2, n - 1 };
	for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
		tu_flip_byte(path, off + (long)where[i], 0x01);
		fails(NNH5_ERR_CHECKSUM, nnh5_load_tensor(&back, path), "flip.h5", "'tensor'",
		      "damaged", "checksum");
		assert_null(back);
		/* With verification off the damaged bytes load, as documented. */
		nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
		nnh5_file *f;
		o.verify_checksums = false;
		ok(nnh5_file_open_ext(&f, path, NNH5_READ, &o));
		ok(nnh5_file_read_tensor(&back, f, "tensor"));
		assert_false(nnh5_tensor_bitwise_equal(t, back));
		nnh5_tensor_free(back);
		back = NULL;
		nnh5_file_discard(f);
		tu_flip_byte(path, off + (long)where[i], 0x01); /* repair */
		ok(nnh5_load_tensor(&back, path));
		assert_true(nnh5_tensor_bitwise_equal(t, back));
		nnh5_tensor_free(back);
		back = NULL;
	}
	nnh5_tensor_free(t);
}

/* Small tensors (stored contiguous, not aligned) are checked like big ones. */
static void flipped_small_data_is_an_error(void **state)
{
	nnh5_tensor *t = noise(4, 4, 6), *back = NULL;
	const char *path = tu_path("small.h5");
	(void)state;
	ok(nnh5_save_tensor(path, t));
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	unsigned char buf[65536];
	size_t len = fread(buf, 1, sizeof buf, fp);
	fclose(fp);
	size_t n = nnh5_tensor_nbytes(t);
	long off = -1;
	for (size_t i = 0; i + n <= len && off < 0; i++)
		if (memcmp(buf + i, nnh5_tensor_data(t), n) == 0)
			off = (long)i;
	assert_true(off >= 0);
	for (size_t i = 0; i < nnh5_tensor_nbytes(t); i += 5) {
		tu_flip_byte(path, off + (long)i, 0x80);
		int rc = nnh5_load_tensor(&back, path);
		assert_int_not_equal(rc, NNH5_OK);
		assert_null(back);
		assert_non_null(strstr(nnh5_error_message(), "small.h5"));
		tu_flip_byte(path, off + (long)i, 0x80);
	}
	/* HDF5 leaks internally on these failures; nnh5 itself left nothing open. */
	assert_int_equal(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
	nnh5_tensor_free(t);
}

/* A dataset written by another tool: no checksum attribute. */
static void write_plain_dataset(const char *path, const char *attr_type)
{
	float v[3] = { 1, 2, 3 };
	hsize_t dims[] = { 3 };
	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, dims, NULL);
	hid_t did = H5Dcreate2(fid, "x", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
			       H5P_DEFAULT);
	assert_true(did >= 0);
	assert_true(H5Dwrite(did, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	if (attr_type) { /* a checksum attribute of the wrong type */
		hid_t s1 = H5Screate(H5S_SCALAR);
		hid_t a = H5Acreate2(did, "nnh5_xxh3", H5T_IEEE_F64LE, s1, H5P_DEFAULT, H5P_DEFAULT);
		double d = 1.5;
		assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &d) >= 0);
		H5Aclose(a);
		H5Sclose(s1);
	}
	H5Dclose(did);
	H5Sclose(sp);
	H5Fclose(fid);
}

static void missing_checksums_load_unless_required(void **state)
{
	const char *path = tu_path("plain.h5");
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_tensor *t = NULL;
	nnh5_file *f;
	(void)state;
	write_plain_dataset(path, NULL);
	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_read_tensor(&t, f, "x"));
	assert_int_equal(nnh5_tensor_numel(t), 3);
	nnh5_tensor_free(t);
	t = NULL;
	nnh5_file_discard(f);

	o.require_checksums = true;
	ok(nnh5_file_open_ext(&f, path, NNH5_READ, &o));
	fails(NNH5_ERR_CHECKSUM, nnh5_file_read_tensor(&t, f, "x"), "plain.h5", "'x'",
	      "no checksum", "required");
	assert_null(t);
	nnh5_file_discard(f);

	write_plain_dataset(path, "float");
	ok(nnh5_file_open(&f, path, NNH5_READ));
	fails(NNH5_ERR_FORMAT, nnh5_file_read_tensor(&t, f, "x"), "plain.h5", "'x'",
	      "nnh5_xxh3", "64-bit integer");
	nnh5_file_discard(f);
}

/* Dataset "x" of n uint8 bytes (i * 7 % 251) with block attributes as given (btype < 0: none). */
#define BLK ((uint64_t)16 << 20)
static void write_blocks_file(const char *path, size_t n, hid_t btype, uint64_t b, hid_t ttype,
			      const uint64_t *table, hsize_t count)
{
	unsigned char *v = malloc(n);
	hsize_t dims[] = { n };
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = (unsigned char)(i * 7 % 251);
	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, dims, NULL), s1 = H5Screate(H5S_SCALAR);
	hid_t did = H5Dcreate2(fid, "x", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	assert_true(H5Dwrite(did, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	if (btype >= 0) {
		hid_t a = H5Acreate2(did, "nnh5_xxh3_block_bytes", btype, s1, H5P_DEFAULT, H5P_DEFAULT);
		assert_true(H5Awrite(a, H5T_NATIVE_UINT64, &b) >= 0);
		H5Aclose(a);
	}
	if (ttype >= 0) {
		hid_t ts = H5Screate_simple(1, &count, NULL);
		hid_t a = H5Acreate2(did, "nnh5_xxh3_blocks", ttype, ts, H5P_DEFAULT, H5P_DEFAULT);
		assert_true(H5Awrite(a, H5T_NATIVE_UINT64, table) >= 0);
		H5Aclose(a);
		H5Sclose(ts);
	}
	H5Dclose(did);
	H5Sclose(s1);
	H5Sclose(sp);
	H5Fclose(fid);
	free(v);
}

/* nnh5_file_check_blocks() on the table's outcomes (the file stays open until blocks_done()). */
static nnh5_file *bf;
static nnh5_tensor *bt;

static int check_blocks_of(bool *present, const char *path)
{
	ok(nnh5_file_open(&bf, path, NNH5_READ));
	ok(nnh5_file_read_tensor(&bt, bf, "x")); /* serial loads do not read the table */
	return nnh5_file_check_blocks(present, bf, "x", bt);
}

static void blocks_done(void)
{
	nnh5_tensor_free(bt);
	nnh5_file_close(bf);
	bt = NULL;
	bf = NULL;
}

static void block_checksums_checked_on_request(void **state)
{
	const char *path = tu_path("blocks.h5");
	const size_t n = (size_t)(2 * BLK + 4099);
	uint64_t table[4];
	bool present = true;
	(void)state;

	unsigned char *v = malloc(n);
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = (unsigned char)(i * 7 % 251);
	for (int i = 0; i < 3; i++)
		table[i] = XXH3_64bits(v + (size_t)i * BLK, i < 2 ? (size_t)BLK : n - 2 * (size_t)BLK);
	free(v);
	write_blocks_file(path, n, -1, 0, -1, NULL, 0);
	ok(check_blocks_of(&present, path));
	blocks_done();
	assert_false(present);
	write_blocks_file(path, n, H5T_STD_U64LE, BLK, H5T_STD_U64LE, table, 3);
	ok(check_blocks_of(&present, path));
	blocks_done();
	assert_true(present);
	table[2] ^= 4;
	write_blocks_file(path, n, H5T_STD_U64LE, BLK, H5T_STD_U64LE, table, 3);
	fails(NNH5_ERR_CHECKSUM, check_blocks_of(&present, path), "'x'", "block 2 ",
	      "33554432");
	blocks_done();
	table[2] ^= 4;
	write_blocks_file(path, n, H5T_STD_U64LE, 2 * BLK, H5T_STD_U64LE, table, 3);
	fails(NNH5_ERR_FORMAT, check_blocks_of(&present, path), "'x'",
	      "nnh5_xxh3_block_bytes", "16 MiB");
	blocks_done();
	write_blocks_file(path, n, H5T_STD_U64LE, BLK, H5T_STD_U64LE, table, 4);
	fails(NNH5_ERR_FORMAT, check_blocks_of(&present, path), "nnh5_xxh3_blocks",
	      "one entry per block");
	blocks_done();
	write_blocks_file(path, n, H5T_STD_U64LE, BLK, H5T_STD_I64LE, table, 3);
	fails(NNH5_ERR_FORMAT, check_blocks_of(&present, path), "nnh5_xxh3_blocks", "uint64");
	blocks_done();
	write_blocks_file(path, n, H5T_STD_U64LE, BLK, -1, NULL, 0);
	fails(NNH5_ERR_FORMAT, check_blocks_of(&present, path), "nnh5_xxh3_blocks", "missing");
	blocks_done();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(checksum_is_xxh3_of_the_bytes),
		cmocka_unit_test(every_dataset_carries_its_checksum),
		cmocka_unit_test(flipped_data_is_reported_not_loaded),
		cmocka_unit_test(flipped_small_data_is_an_error),
		cmocka_unit_test(missing_checksums_load_unless_required),
		cmocka_unit_test(block_checksums_checked_on_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
