/*
 * tests/test_map.c - lazy, zero-copy loading (nnh5/map.h, lib/file/map.c) and the
 * fast data paths of plain saves and loads (lib/store/rawio.c): mapped tensors are
 * bitwise equal to read ones and really are views of the file; what cannot
 * be mapped is copied or refused as asked; offsets past the end of the file
 * are refused by maps and reads alike; checksums are checked on request;
 * the load policy applies to maps as to reads. Speed is measured in
 * bench/, never here.
 */
#include "testutil.h"

#include <nnh5/map.h>

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static nnh5_tensor *noise(nnh5_dtype dtype, size_t ndim, const int64_t *shape, uint64_t seed)
{
	nnh5_tensor *t;
	nnh5_rng r;

	nnh5_rng_seed(&r, seed);
	ok(nnh5_tensor_uniform(&t, dtype, ndim, shape, -3.0, 3.0, &r));
	return t;
}

/* A state dict of every storage nnh5 writes: big and small, many dtypes, empty, scalar. */
static nnh5_dict *mixed_state_dict(void)
{
	nnh5_dict *sd;
	nnh5_tensor *t;

	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "enc.weight", noise(NNH5_FLOAT32, 2, (int64_t[]){ 300, 70 }, 1)));
	ok(nnh5_dict_set(sd, "enc.bias", noise(NNH5_FLOAT32, 1, (int64_t[]){ 300 }, 2)));
	ok(nnh5_dict_set(sd, "dec.weight", noise(NNH5_FLOAT64, 2, (int64_t[]){ 64, 33 }, 3)));
	ok(nnh5_dict_set(sd, "dec.half", noise(NNH5_FLOAT16, 1, (int64_t[]){ 5000 }, 4)));
	ok(nnh5_dict_set(sd, "dec.bf", noise(NNH5_BFLOAT16, 1, (int64_t[]){ 3000 }, 5)));
	ok(nnh5_tensor_arange(&t, NNH5_INT64, 0, 1000, 1));
	ok(nnh5_dict_set(sd, "dec.steps", t));
	ok(nnh5_tensor_full(&t, NNH5_BOOL, 1, (int64_t[]){ 5000 }, 1));
	ok(nnh5_dict_set(sd, "dec.mask", t));
	ok(nnh5_tensor_new(&t, NNH5_INT32, 2, (int64_t[]){ 0, 4 }));
	ok(nnh5_dict_set(sd, "dec.empty", t));
	ok(nnh5_tensor_full(&t, NNH5_FLOAT32, 0, NULL, 2.5));
	ok(nnh5_dict_set(sd, "scale", t));
	/* Small ones after an odd-sized one: their data starts at odd offsets. */
	ok(nnh5_tensor_full(&t, NNH5_UINT8, 1, (int64_t[]){ 3 }, 7));
	ok(nnh5_dict_set(sd, "odd.bytes", t));
	ok(nnh5_dict_set(sd, "odd.f64", noise(NNH5_FLOAT64, 1, (int64_t[]){ 5 }, 6)));
	ok(nnh5_tensor_arange(&t, NNH5_INT32, 0, 3, 1));
	ok(nnh5_dict_set(sd, "odd.i32", t));
	return sd;
}

static void mapped_tensors_equal_read_ones(void **state)
{
	const char *path = tu_path("mixed.h5");
	nnh5_dict *sd = mixed_state_dict(), *read, *mapped;
	nnh5_map *m;
	(void)state;

	/*
	 * Through HDF5's API, which packs small data at any offset (the direct
	 * writer aligns it to the element size): the misaligned copies below.
	 */
	setenv("NNH5_DIRECT_WRITE", "0", 1);
	ok(nnh5_save_state_dict(path, sd));
	unsetenv("NNH5_DIRECT_WRITE");
	/* Where each tensor's data starts in the file (before the map holds it open). */
	long offsets[32] = { 0 };
	assert_true(nnh5_dict_len(sd) <= 32);
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		char name[64];
		snprintf(name, sizeof name, "/%s", nnh5_dict_key(sd, i));
		for (char *c = name; *c; c++)
			if (*c == '.')
				*c = '/';
		if (nnh5_tensor_nbytes(nnh5_dict_value(sd, i)))
			offsets[i] = tu_data_offset(path, name);
	}
	ok(nnh5_load_state_dict(&read, path));
	ok(nnh5_map_open(&m, path, NULL));
	ok(nnh5_map_state_dict(&mapped, m, "/"));
	assert_int_equal(nnh5_dict_len(mapped), nnh5_dict_len(sd));
	size_t misaligned = 0;
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		const nnh5_tensor *want = nnh5_dict_value(sd, i);
		nnh5_tensor *got = nnh5_dict_value(mapped, i);
		assert_string_equal(nnh5_dict_key(mapped, i), nnh5_dict_key(sd, i));
		assert_true(nnh5_tensor_bitwise_equal(want, got));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(read, i), got));
		/*
		 * Every tensor with data is a view of the file (small ones are
		 * contiguous too) where its offset suits its element size,
		 * page-aligned from 4 KiB on; empty and misaligned ones are copies.
		 * Either way the data is aligned to the element size.
		 */
		size_t elsize = nnh5_dtype_size(nnh5_tensor_dtype(want));
		long off = offsets[i];
		bool view = nnh5_tensor_nbytes(want) > 0 && off % (long)elsize == 0;
		misaligned += nnh5_tensor_nbytes(want) > 0 && !view;
		assert_int_equal((uintptr_t)nnh5_tensor_data(got) % elsize, 0);
		assert_int_equal(nnh5_map_is_mapped(m, got), view);
		assert_int_equal(nnh5_tensor_owns_data(got), !view);
		if (view)
			assert_null(nnh5_tensor_mutable_data(got));
		if (nnh5_tensor_nbytes(want) >= 4096)
			assert_int_equal((uintptr_t)nnh5_tensor_data(got) % 4096, 0);
	}
	/* The odd-sized tensors put at least one small one at a misaligned offset. */
	assert_true(misaligned > 0);
	/* One tensor by name: the same view. */
	nnh5_tensor *w;
	ok(nnh5_map_tensor(&w, m, "enc/weight"));
	assert_true(nnh5_map_is_mapped(m, w));
	assert_ptr_equal(nnh5_tensor_data(w), nnh5_tensor_data(nnh5_dict_get(mapped, "enc.weight")));
	assert_false(nnh5_map_is_mapped(m, nnh5_dict_get(read, "enc.weight")));
	/* Dict keys, and the file underneath for the rest. */
	nnh5_dict *d;
	nnh5_kind kind;
	ok(nnh5_map_dict(&d, m, "enc"));
	assert_int_equal(nnh5_dict_len(d), 2);
	assert_string_equal(nnh5_dict_key(d, 0), "weight");
	ok(nnh5_file_kind(&kind, nnh5_map_file(m), "/"));
	assert_int_equal(kind, NNH5_KIND_STATE_DICT);
	/* Tensor structs may outlive the map; their data may not be read then. */
	nnh5_map_close(m);
	nnh5_tensor_free(w);
	nnh5_dict_free(d);
	nnh5_dict_free(mapped);
	/* The direct writer (the default) aligns small data: every tensor with data is a view. */
	ok(nnh5_save_state_dict(path, sd));
	ok(nnh5_map_open(&m, path, NULL));
	ok(nnh5_map_state_dict(&mapped, m, "/"));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		nnh5_tensor *got = nnh5_dict_value(mapped, i);
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(sd, i), got));
		assert_int_equal(nnh5_map_is_mapped(m, got), nnh5_tensor_nbytes(got) > 0);
	}
	nnh5_map_close(m);
	nnh5_dict_free(mapped);
	nnh5_dict_free(read);
	nnh5_dict_free(sd);
	nnh5_map_close(NULL);
}

/* Data written with pwrite at the offset HDF5 allocated, 4 KiB-aligned, as FORMAT.md says. */
static void contiguous_data_is_aligned_and_where_hdf5_says(void **state)
{
	const char *path = tu_path("aligned.h5");
	nnh5_dict *sd = mixed_state_dict();
	(void)state;

	ok(nnh5_save_state_dict(path, sd));
	const nnh5_tensor *w = nnh5_dict_get(sd, "enc.weight");
	long off = tu_data_offset(path, "/enc/weight");
	assert_int_equal(off % 4096, 0);
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	unsigned char *buf = malloc(nnh5_tensor_nbytes(w));
	assert_int_equal(fseek(fp, off, SEEK_SET), 0);
	assert_int_equal(fread(buf, 1, nnh5_tensor_nbytes(w), fp), nnh5_tensor_nbytes(w));
	fclose(fp);
	assert_memory_equal(buf, nnh5_tensor_data(w), nnh5_tensor_nbytes(w));
	free(buf);
	/* Plain HDF5 reads it back too (h5py and h5dump: tests/xcheck). */
	float first;
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t did = H5Dopen2(fid, "/enc/weight", H5P_DEFAULT);
	hsize_t one[] = { 1, 1 }, start[] = { 0, 0 };
	hid_t fsp = H5Dget_space(did), msp = H5Screate_simple(1, one, NULL);
	assert_true(H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, one, NULL) >= 0);
	assert_true(H5Dread(did, H5T_NATIVE_FLOAT, msp, fsp, H5P_DEFAULT, &first) >= 0);
	assert_true(first == ((const float *)nnh5_tensor_data(w))[0]);
	H5Sclose(msp);
	H5Sclose(fsp);
	H5Dclose(did);
	H5Fclose(fid);
	nnh5_dict_free(sd);
}

/* Datasets nnh5 does not write: chunked, big-endian, compact, never written. */
static void write_foreign(const char *path)
{
	hsize_t dims[] = { 2048 }, chunk[] = { 256 };
	float v[2048];
	for (int i = 0; i < 2048; i++)
		v[i] = (float)i * 0.25f;
	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, dims, NULL);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	assert_true(H5Pset_chunk(dcpl, 1, chunk) >= 0);
	hid_t a = H5Dcreate2(fid, "chunked", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	hid_t b = H5Dcreate2(fid, "big_endian", H5T_IEEE_F32BE, sp, H5P_DEFAULT, H5P_DEFAULT,
			     H5P_DEFAULT);
	hid_t c = H5Dcreate2(fid, "plain", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
			     H5P_DEFAULT);
	hid_t d = H5Dcreate2(fid, "unwritten", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
			     H5P_DEFAULT);
	/* Small datasets of other writers may be compact (nnh5's are not). */
	hsize_t n100[] = { 100 };
	hid_t sp100 = H5Screate_simple(1, n100, NULL);
	hid_t compact = H5Pcreate(H5P_DATASET_CREATE);
	assert_true(H5Pset_layout(compact, H5D_COMPACT) >= 0);
	hid_t e = H5Dcreate2(fid, "compact", H5T_IEEE_F32LE, sp100, H5P_DEFAULT, compact,
			     H5P_DEFAULT);
	assert_true(a >= 0 && b >= 0 && c >= 0 && d >= 0 && e >= 0);
	assert_true(H5Dwrite(e, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	H5Dclose(e);
	H5Pclose(compact);
	H5Sclose(sp100);
	assert_true(H5Dwrite(a, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	assert_true(H5Dwrite(b, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	assert_true(H5Dwrite(c, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
	H5Dclose(a);
	H5Dclose(b);
	H5Dclose(c);
	H5Dclose(d);
	H5Pclose(dcpl);
	H5Sclose(sp);
	H5Fclose(fid);
}

static void unmappable_datasets_are_copied_or_refused(void **state)
{
	const char *path = tu_path("foreign.h5");
	nnh5_tensor *t, *want;
	nnh5_map *m;
	(void)state;

	write_foreign(path);
	ok(nnh5_tensor_arange(&want, NNH5_FLOAT32, 0, 512, 0.25));
	/* Default: copied, with the right values. */
	ok(nnh5_map_open(&m, path, NULL));
	const char *copied[] = { "chunked", "big_endian" };
	for (size_t i = 0; i < 2; i++) {
		ok(nnh5_map_tensor(&t, m, copied[i]));
		assert_false(nnh5_map_is_mapped(m, t));
		assert_true(nnh5_tensor_owns_data(t));
		assert_true(nnh5_tensor_bitwise_equal(t, want));
		nnh5_tensor_free(t);
	}
	/* An h5py-style contiguous little-endian dataset maps, unaligned or not. */
	ok(nnh5_map_tensor(&t, m, "plain"));
	assert_true(nnh5_map_is_mapped(m, t));
	assert_true(nnh5_tensor_bitwise_equal(t, want));
	nnh5_tensor_free(t);
	/* Never written: HDF5's fill values (zeros), copied. */
	ok(nnh5_map_tensor(&t, m, "unwritten"));
	assert_false(nnh5_map_is_mapped(m, t));
	assert_true(nnh5_tensor_get(t, 7) == 0.0);
	nnh5_tensor_free(t);
	nnh5_map_close(m);

	/* copy_unmappable off: refused, saying why. */
	nnh5_map_options o = NNH5_MAP_OPTIONS_INIT;
	o.copy_unmappable = false;
	ok(nnh5_map_open(&m, path, &o));
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&t, m, "chunked"), "foreign.h5", "'chunked'",
	      "chunked", "cannot be mapped");
	assert_null(t);
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&t, m, "big_endian"), "'big_endian'", "converting");
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&t, m, "unwritten"), "never written");
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&t, m, "compact"), "'compact'", "compact");
	ok(nnh5_map_tensor(&t, m, "plain"));
	nnh5_tensor_free(t);
	nnh5_map_close(m);

	/* nnh5's own small tensors are contiguous: they map. */
	const char *small = tu_path("small.h5");
	nnh5_tensor_free(want);
	ok(nnh5_tensor_arange(&want, NNH5_FLOAT32, 0, 100, 1)); /* 400 bytes */
	ok(nnh5_save_tensor(small, want));
	ok(nnh5_map_open(&m, small, &o));
	ok(nnh5_map_tensor(&t, m, "tensor"));
	assert_true(nnh5_map_is_mapped(m, t));
	assert_true(nnh5_tensor_bitwise_equal(t, want));
	nnh5_tensor_free(t);
	nnh5_map_close(m);
	nnh5_tensor_free(want);
}

/* The load policy runs before a map touches data: external storage is refused. */
static void maps_apply_the_load_policy(void **state)
{
	const char *path = tu_path("external.h5");
	hsize_t dims[] = { 1024 };
	nnh5_tensor *t;
	nnh5_map *m;
	(void)state;

	hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	hid_t sp = H5Screate_simple(1, dims, NULL);
	hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
	assert_true(H5Pset_external(dcpl, "/etc/hostname", 0, 4096) >= 0);
	hid_t did = H5Dcreate2(fid, "ext", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	assert_true(did >= 0);
	H5Dclose(did);
	H5Pclose(dcpl);
	H5Sclose(sp);
	H5Fclose(fid);

	ok(nnh5_map_open(&m, path, NULL));
	fails(NNH5_ERR_UNSAFE, nnh5_map_tensor(&t, m, "ext"), "'ext'", "external");
	assert_null(t);
	nnh5_dict *d;
	fails(NNH5_ERR_UNSAFE, nnh5_map_state_dict(&d, m, "/"), "external");
	assert_null(d);
	nnh5_map_close(m);
}

/* A file that shrank after it was opened: maps and plain reads refuse, never read past it. */
static void data_past_the_end_of_the_file_is_refused(void **state)
{
	const char *path = tu_path("shrunk.h5");
	nnh5_tensor *t = noise(NNH5_FLOAT32, 2, (int64_t[]){ 128, 128 }, 9), *back;
	nnh5_file *f;
	nnh5_map *m;
	(void)state;

	ok(nnh5_save_tensor(path, t));
	long off = tu_data_offset(path, "/tensor");
	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_map_open(&m, path, NULL));
	assert_int_equal(truncate(path, off + 100), 0);
	/* A read learns it from the short read (no fstat per tensor). */
	fails(NNH5_ERR_FORMAT, nnh5_file_read_tensor(&back, f, "tensor"), "shrunk.h5", "'tensor'",
	      "the file ends before its data does");
	assert_null(back);
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&back, m, "tensor"), "shrunk.h5",
	      "beyond the end of the file");
	assert_null(back);
	nnh5_map_close(m);
	nnh5_file_close(f);
	nnh5_tensor_free(t);
}

static void checksums_are_checked_on_request(void **state)
{
	const char *path = tu_path("verify.h5");
	nnh5_dict *sd = mixed_state_dict(), *d;
	nnh5_tensor *t;
	nnh5_map *m;
	size_t checked;
	(void)state;

	ok(nnh5_save_state_dict(path, sd));
	ok(nnh5_map_open(&m, path, NULL));
	ok(nnh5_map_verify(&checked, m, "/"));
	assert_int_equal(checked, nnh5_dict_len(sd));
	ok(nnh5_map_verify(&checked, m, "enc/weight"));
	assert_int_equal(checked, 1);
	ok(nnh5_map_verify(NULL, m, "dec"));
	nnh5_map_close(m);

	tu_flip_byte(path, tu_data_offset(path, "/enc/weight") + 1000, 0x04);
	/* Default: mapped without reading the data, so the damage shows only when verified. */
	ok(nnh5_map_open(&m, path, NULL));
	ok(nnh5_map_tensor(&t, m, "enc/weight"));
	assert_false(nnh5_tensor_bitwise_equal(t, nnh5_dict_get(sd, "enc.weight")));
	nnh5_tensor_free(t);
	fails(NNH5_ERR_CHECKSUM, nnh5_map_verify(&checked, m, "/"), "verify.h5", "/enc/weight",
	      "damaged");
	ok(nnh5_map_verify(&checked, m, "dec"));
	nnh5_map_close(m);
	/* With the option verify, handing the tensor out fails. */
	nnh5_map_options o = NNH5_MAP_OPTIONS_INIT;
	o.verify = true;
	ok(nnh5_map_open(&m, path, &o));
	fails(NNH5_ERR_CHECKSUM, nnh5_map_tensor(&t, m, "enc/weight"), "enc/weight", "damaged");
	assert_null(t);
	fails(NNH5_ERR_CHECKSUM, nnh5_map_state_dict(&d, m, "/"), "damaged");
	ok(nnh5_map_tensor(&t, m, "dec/weight"));
	nnh5_tensor_free(t);
	nnh5_map_close(m);
	/* The plain read path (pread + hash) refuses it too. */
	fails(NNH5_ERR_CHECKSUM, nnh5_load_state_dict(&d, path), "enc/weight", "damaged");
	nnh5_dict_free(sd);
}

static void require_checksums_applies_to_maps(void **state)
{
	const char *path = tu_path("nosum.h5");
	nnh5_open_options fo = NNH5_OPEN_OPTIONS_INIT;
	nnh5_map_options o = NNH5_MAP_OPTIONS_INIT;
	nnh5_tensor *t;
	nnh5_map *m;
	(void)state;

	write_foreign(path);
	fo.require_checksums = true;
	o.file = &fo;
	ok(nnh5_map_open(&m, path, &o));
	fails(NNH5_ERR_CHECKSUM, nnh5_map_tensor(&t, m, "plain"), "'plain'", "no checksum");
	nnh5_map_close(m);
	/* Without it, verification skips what has no checksum. */
	size_t checked = 99;
	ok(nnh5_map_open(&m, path, NULL));
	ok(nnh5_map_verify(&checked, m, "plain"));
	assert_int_equal(checked, 0);
	nnh5_map_close(m);
}

static void open_errors(void **state)
{
	nnh5_map *m;
	nnh5_map_options o = NNH5_MAP_OPTIONS_INIT;
	(void)state;

	fails(NNH5_ERR_NOT_FOUND, nnh5_map_open(&m, tu_path("missing.h5"), NULL), "missing.h5");
	assert_null(m);
	o.version = 99;
	fails(NNH5_ERR_INVALID, nnh5_map_open(&m, tu_path("missing.h5"), &o), "options version");
	FILE *fp = fopen(tu_path("text.h5"), "w");
	assert_non_null(fp);
	fputs("not hdf5\n", fp);
	fclose(fp);
	fails(NNH5_ERR_FORMAT, nnh5_map_open(&m, tu_path("text.h5"), NULL), "text.h5");
	assert_null(m);
}

static void saves_and_loads_round_trip_through_the_fast_paths(void **state)
{
	const char *path = tu_path("rt.h5");
	nnh5_dict *sd = mixed_state_dict(), *back;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	(void)state;

	/* Non-durable and durable saves, verified and unverified loads: all equal. */
	for (int durable = 0; durable < 2; durable++) {
		o.durable = durable;
		ok(nnh5_file_open_ext(&f, path, NNH5_CREATE, &o));
		ok(nnh5_file_write_state_dict(f, "/", sd));
		ok(nnh5_file_close(f));
		for (int verify = 0; verify < 2; verify++) {
			nnh5_open_options r = NNH5_OPEN_OPTIONS_INIT;
			r.verify_checksums = verify;
			ok(nnh5_file_open_ext(&f, path, NNH5_READ, &r));
			ok(nnh5_file_read_state_dict(&back, f, "/"));
			ok(nnh5_file_close(f));
			assert_int_equal(nnh5_dict_len(back), nnh5_dict_len(sd));
			for (size_t i = 0; i < nnh5_dict_len(sd); i++)
				assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(sd, i),
								      nnh5_dict_value(back, i)));
			nnh5_dict_free(back);
		}
	}
	/* A tensor larger than one transfer piece (2 MiB), odd-sized. */
	nnh5_tensor *big = noise(NNH5_FLOAT64, 2, (int64_t[]){ 1001, 517 }, 11), *b2;
	ok(nnh5_save_tensor(path, big));
	ok(nnh5_load_tensor(&b2, path));
	assert_true(nnh5_tensor_bitwise_equal(big, b2));
	nnh5_tensor_free(b2);
	nnh5_tensor_free(big);
	nnh5_dict_free(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mapped_tensors_equal_read_ones),
		cmocka_unit_test(contiguous_data_is_aligned_and_where_hdf5_says),
		cmocka_unit_test(unmappable_datasets_are_copied_or_refused),
		cmocka_unit_test(maps_apply_the_load_policy),
		cmocka_unit_test(data_past_the_end_of_the_file_is_refused),
		cmocka_unit_test(checksums_are_checked_on_request),
		cmocka_unit_test(require_checksums_applies_to_maps),
		cmocka_unit_test(open_errors),
		cmocka_unit_test(saves_and_loads_round_trip_through_the_fast_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
