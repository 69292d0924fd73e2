/*
 * tests/test_compress.c - compression profiles: every profile round-trips
 * every dtype bitwise and loads with the default options, compressible
 * data gets smaller, data no filter can shrink is stored at its own size
 * (give or take the filters' framing), compressed tensors are read by the
 * map, and the load policy trusts exactly the filters nnh5 writes.
 */
#include "testutil.h"
#include "store/filters.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int profiles[] = { NNH5_COMPRESSION_NONE, NNH5_COMPRESSION_FAST,
				NNH5_COMPRESSION_ARCHIVE };

/* Save d as a state dict at path with profile. */
static void save_with(const char *path, const nnh5_dict *d, int profile)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;

	o.compression = profile;
	ok(nnh5_file_open_ext(&f, path, NNH5_CREATE, &o));
	ok(nnh5_file_write_state_dict(f, "/", d));
	ok(nnh5_file_close(f));
}

struct stored {
	const char *key; /* path as the walk names it */
	uint64_t stored, nbytes;
	int layout, nfilters;
	bool found;
};

static int find_entry(const nnh5_entry *e, void *ctx)
{
	struct stored *s = ctx;
	if (e->type == NNH5_ENTRY_TENSOR && strcmp(e->path, s->key) == 0) {
		s->stored = e->stored_bytes;
		s->nbytes = e->nbytes;
		s->layout = e->layout;
		s->nfilters = e->nfilters;
		s->found = true;
	}
	return 0;
}

static struct stored stored_of(const char *path, const char *key)
{
	struct stored s = { key, 0, 0, 0, 0, false };
	nnh5_file *f;

	ok(nnh5_file_open(&f, path, NNH5_READ));
	ok(nnh5_file_walk(f, "/", NULL, find_entry, &s));
	nnh5_file_close(f);
	assert_true(s.found);
	return s;
}

/* Random bytes that are valid for dtype (bools 0 or 1). */
static nnh5_tensor *random_tensor(nnh5_dtype dt, size_t ndim, const int64_t *shape, unsigned seed)
{
	nnh5_tensor *t;
	ok(nnh5_tensor_new(&t, dt, ndim, shape));
	unsigned char *p = nnh5_tensor_mutable_data(t);
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < nnh5_tensor_nbytes(t); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = dt == NNH5_BOOL ? (unsigned char)(x & 1) : (unsigned char)(x >> 24);
	}
	return t;
}

static void every_profile_every_dtype(void **state)
{
	int64_t shape[] = { 37, 53 }, small[] = { 3 };
	char path[4096];
	(void)state;

	for (size_t p = 0; p < sizeof profiles / sizeof profiles[0]; p++) {
		nnh5_dict *d, *back = NULL;
		char key[64];
		ok(nnh5_dict_new(&d));
		for (int dt = 0; dt < NNH5_DTYPE_COUNT; dt++) {
			snprintf(key, sizeof key, "t.%s", nnh5_dtype_name(dt));
			ok(nnh5_dict_set(d, key, random_tensor((nnh5_dtype)dt, 2, shape, (unsigned)dt)));
			snprintf(key, sizeof key, "small.%s", nnh5_dtype_name(dt));
			ok(nnh5_dict_set(d, key, random_tensor((nnh5_dtype)dt, 1, small, 7)));
		}
		nnh5_tensor *scalar;
		ok(nnh5_tensor_full(&scalar, NNH5_FLOAT64, 0, NULL, 2.5));
		ok(nnh5_dict_set(d, "scalar", scalar));
		snprintf(path, sizeof path, "%s", tu_path("profiles.h5"));
		save_with(path, d, profiles[p]);
		/* Loads with the default options, bitwise, checksums verified. */
		ok(nnh5_load_state_dict(&back, path));
		assert_int_equal(nnh5_dict_len(back), nnh5_dict_len(d));
		for (size_t i = 0; i < nnh5_dict_len(d); i++)
			if (!nnh5_tensor_bitwise_equal(nnh5_dict_value(d, i),
						       nnh5_dict_get(back, nnh5_dict_key(d, i))))
				fail_msg("%s: %s differs", nnh5_compression_name(profiles[p]),
					 nnh5_dict_key(d, i));
		nnh5_dict_free(back);
		/* Chunked with filters for a profile; small and scalar ones contiguous. */
		struct stored s = stored_of(path, "/t/float32");
		assert_int_equal(s.layout, profiles[p] ? NNH5_LAYOUT_CHUNKED : NNH5_LAYOUT_CONTIGUOUS);
		assert_true(profiles[p] ? s.nfilters > 0 : s.nfilters == 0);
		assert_int_equal(stored_of(path, "/small/float32").layout, NNH5_LAYOUT_CONTIGUOUS);
		assert_int_equal(stored_of(path, "/scalar").layout, NNH5_LAYOUT_CONTIGUOUS);
		nnh5_dict_free(d);
	}
}

/* Three kinds of training data: weights, bfloat16 weights, Adam's second moments. */
static void smaller_where_data_allows(void **state)
{
	int64_t shape[] = { 512, 512 };
	nnh5_rng rngs, *rng = &rngs;
	nnh5_tensor *w, *bf, *adam, *zeros;
	char path[4096];
	(void)state;

	nnh5_rng_seed(rng, 42);
	ok(nnh5_tensor_randn(&w, NNH5_FLOAT32, 2, shape, rng));
	ok(nnh5_tensor_convert(&bf, w, NNH5_BFLOAT16));
	ok(nnh5_tensor_uniform(&adam, NNH5_FLOAT32, 2, shape, 0.0, 1e-6, rng));
	ok(nnh5_tensor_new(&zeros, NNH5_FLOAT32, 2, shape));
	nnh5_dict *d;
	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "w", w));
	ok(nnh5_dict_set(d, "bf", bf));
	ok(nnh5_dict_set(d, "adam", adam));
	ok(nnh5_dict_set(d, "zeros", zeros));
	for (size_t p = 1; p < sizeof profiles / sizeof profiles[0]; p++) {
		snprintf(path, sizeof path, "%s", tu_path("ratio.h5"));
		save_with(path, d, profiles[p]);
		const char *keys[] = { "/w", "/bf", "/adam", "/zeros" };
		for (size_t k = 0; k < 4; k++) {
			struct stored s = stored_of(path, keys[k]);
			printf("# %s (%s): %s %llu of %llu bytes (%.3f)\n",
			       nnh5_compression_name(profiles[p]),
			       nnh5_compression_filters(profiles[p]), keys[k],
			       (unsigned long long)s.stored, (unsigned long long)s.nbytes,
			       (double)s.stored / (double)s.nbytes);
			/*
			 * Shuffled float exponents compress. Zeros compress past the
			 * default load ratio (100:1): stored as they are, so that the
			 * file loads with the default options.
			 */
			if (k < 3)
				assert_true(s.stored < s.nbytes);
			else
				assert_true(s.stored == s.nbytes &&
					    s.layout == NNH5_LAYOUT_CONTIGUOUS);
		}
		nnh5_dict *back = NULL;
		ok(nnh5_load_state_dict(&back, path));
		for (size_t i = 0; i < nnh5_dict_len(d); i++)
			assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(d, i),
							      nnh5_dict_get(back, nnh5_dict_key(d, i))));
		nnh5_dict_free(back);
	}
	nnh5_dict_free(d);
}

/*
 * Random bytes: no filter shrinks them. With blosc the optional filter
 * gives up and the chunks are stored raw, byte for byte the tensor's size;
 * deflate and LZ4 keep their own framing of stored blocks (a few bytes a
 * chunk: at most 0.2% more).
 */
static void incompressible_stays_raw(void **state)
{
	int64_t shape[] = { 1024, 1024 };
	char path[4096];
	nnh5_dict *d;
	(void)state;

	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "r", random_tensor(NNH5_UINT8, 2, shape, 3)));
	for (size_t p = 1; p < sizeof profiles / sizeof profiles[0]; p++) {
		snprintf(path, sizeof path, "%s", tu_path("random.h5"));
		save_with(path, d, profiles[p]);
		struct stored s = stored_of(path, "/r");
		printf("# %s (%s): random %llu of %llu bytes\n", nnh5_compression_name(profiles[p]),
		       nnh5_compression_filters(profiles[p]), (unsigned long long)s.stored,
		       (unsigned long long)s.nbytes);
		if (strncmp(nnh5_compression_filters(profiles[p]), "blosc", 5) == 0)
			assert_true(s.stored == s.nbytes);
		else
			assert_true(s.stored >= s.nbytes && s.stored <= s.nbytes + s.nbytes / 500);
		nnh5_dict *back = NULL;
		ok(nnh5_load_state_dict(&back, path));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(d, "r"), nnh5_dict_get(back, "r")));
		nnh5_dict_free(back);
	}
	nnh5_dict_free(d);
}

/* The lazy map reads compressed tensors into memory (and refuses them without copy_unmappable). */
static void map_reads_compressed(void **state)
{
	int64_t shape[] = { 300, 40 };
	char path[4096];
	nnh5_dict *d, *back = NULL;
	nnh5_map *m;
	nnh5_tensor *t = NULL;
	(void)state;

	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "x", tu_seq(NNH5_FLOAT32, 2, shape, 0.25, 0)));
	snprintf(path, sizeof path, "%s", tu_path("map.h5"));
	save_with(path, d, NNH5_COMPRESSION_FAST);
	ok(nnh5_map_open(&m, path, NULL));
	ok(nnh5_map_state_dict(&back, m, "/"));
	assert_false(nnh5_map_is_mapped(m, nnh5_dict_get(back, "x")));
	assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(d, "x"), nnh5_dict_get(back, "x")));
	nnh5_dict_free(back);
	nnh5_map_close(m);
	nnh5_map_options mo = NNH5_MAP_OPTIONS_INIT;
	mo.copy_unmappable = false;
	ok(nnh5_map_open(&m, path, &mo));
	fails(NNH5_ERR_FORMAT, nnh5_map_tensor(&t, m, "x"), "chunked", "copy_unmappable");
	nnh5_map_close(m);
	nnh5_dict_free(d);
}

static void names_and_bad_profiles(void **state)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f = NULL;
	(void)state;

	assert_string_equal(nnh5_compression_name(NNH5_COMPRESSION_FAST), "fast");
	assert_string_equal(nnh5_compression_name(7), "unknown");
	assert_string_equal(nnh5_compression_filters(NNH5_COMPRESSION_NONE), "none");
	assert_string_equal(nnh5_compression_filters(-1), "unknown");
	const char *fast = nnh5_compression_filters(NNH5_COMPRESSION_FAST);
	assert_true(strcmp(fast, "shuffle+lz4") == 0 || strcmp(fast, "shuffle+deflate(1)") == 0);
	/* NNH5_TEST_PLUGINS=1 (tools/bootstrap.sh --test installs them): the plugins are used. */
	const char *want = getenv("NNH5_TEST_PLUGINS");
	if (want && strcmp(want, "1") == 0) {
		assert_string_equal(fast, "shuffle+lz4");
		assert_string_equal(nnh5_compression_filters(NNH5_COMPRESSION_ARCHIVE),
				    "blosc(zstd,5,shuffle)");
	}
	o.compression = 3;
	fails(NNH5_ERR_INVALID, nnh5_file_open_ext(&f, tu_path("bad.h5"), NNH5_CREATE, &o),
	      "unknown compression profile 3");
}

/* Filters and parameters nnh5 does not write are refused; HDF5 never loads code for them. */
static void strangers_filters_refused(void **state)
{
	const char *path = tu_path("stranger.h5");
	hsize_t dims[1] = { 4096 }, chunk[1] = { 1024 };
	float data[4096] = { 0 };
	nnh5_dict *d = NULL;
	(void)state;

	struct {
		H5Z_filter_t id;
		size_t n;
		unsigned cd[7];
		int status;
		const char *needle;
	} cases[] = {
		{ 32000, 0, { 0 }, NNH5_ERR_UNSAFE, "a filter nnh5 does not write" }, /* LZF */
		{ 32001, 7, { 2, 2, 4, 4096, 5, 1, 9 }, NNH5_ERR_UNSAFE, "blosc with parameters" },
		{ 32004, 1, { 0x7fffffff }, NNH5_ERR_UNSAFE, "LZ4 with parameters" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		hid_t fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
		hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5Screate_simple(1, dims, NULL);
		assert_true(H5Pset_chunk(dcpl, 1, chunk) >= 0);
		/* Optional: HDF5 writes the chunks raw when it has no such filter. */
		assert_true(H5Pset_filter(dcpl, cases[i].id, H5Z_FLAG_OPTIONAL, cases[i].n,
					  cases[i].cd) >= 0);
		hid_t did = H5Dcreate2(fid, "x", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
		assert_true(did >= 0);
		H5Dwrite(did, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
		H5Eclear2(H5E_DEFAULT);
		H5Dclose(did);
		H5Sclose(sp);
		H5Pclose(dcpl);
		H5Fclose(fid);
		fails(cases[i].status, nnh5_load_state_dict(&d, path), "'/x' uses filter",
		      cases[i].needle);
		assert_null(d);
	}
}

/*
 * A machine without the plugins: the profiles fall back to shuffle+deflate
 * (files any HDF5 reads), and a file made with a plugin is refused naming
 * the package to install. Runs last: it unregisters the plugins.
 */
static void without_plugins(void **state)
{
	int64_t shape[] = { 256, 64 };
	char with[4096], without[4096];
	nnh5_dict *d, *back = NULL;
	nnh5_rng rng;
	nnh5_tensor *w;
	(void)state;

	nnh5_rng_seed(&rng, 5);
	ok(nnh5_tensor_randn(&w, NNH5_FLOAT32, 2, shape, &rng));
	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, "w", w));
	ok(nnh5_dict_set(d, "r", random_tensor(NNH5_UINT8, 2, (int64_t[]){ 512, 1024 }, 9)));
	snprintf(with, sizeof with, "%s", tu_path("with-plugin.h5"));
	save_with(with, d, NNH5_COMPRESSION_FAST);
	bool had = strcmp(nnh5_compression_filters(NNH5_COMPRESSION_FAST), "shuffle+lz4") == 0;
	nnh5__filters_forget_plugins();
	assert_string_equal(nnh5_compression_filters(NNH5_COMPRESSION_FAST), "shuffle+deflate(1)");
	assert_string_equal(nnh5_compression_filters(NNH5_COMPRESSION_ARCHIVE), "shuffle+deflate(6)");
	for (int p = NNH5_COMPRESSION_FAST; p <= NNH5_COMPRESSION_ARCHIVE; p++) {
		snprintf(without, sizeof without, "%s", tu_path("without-plugin.h5"));
		save_with(without, d, p);
		struct stored s = stored_of(without, "/w");
		assert_int_equal(s.layout, NNH5_LAYOUT_CHUNKED);
		assert_true(s.stored < s.nbytes);
		/* Random bytes: deflate's stored blocks, at most 0.2% over. */
		s = stored_of(without, "/r");
		assert_true(s.stored >= s.nbytes && s.stored <= s.nbytes + s.nbytes / 500);
		ok(nnh5_load_state_dict(&back, without));
		assert_true(nnh5_tensor_bitwise_equal(w, nnh5_dict_get(back, "w")));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_get(d, "r"), nnh5_dict_get(back, "r")));
		nnh5_dict_free(back);
		back = NULL;
	}
	if (had)
		fails(NNH5_ERR_TYPE, nnh5_load_state_dict(&back, with), "uses filter 32004",
		      "plugin is not installed", "hdf5-filter-plugin");
	nnh5_dict_free(d);
}

int main(void)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_profile_every_dtype),
		cmocka_unit_test(smaller_where_data_allows),
		cmocka_unit_test(incompressible_stays_raw),
		cmocka_unit_test(map_reads_compressed),
		cmocka_unit_test(names_and_bad_profiles),
		cmocka_unit_test(strangers_filters_refused),
		cmocka_unit_test(without_plugins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
