/*
 * tests/formats/test_keras.c - Keras import (nnh5/keras.h) on files built by
 * make_keras_fixtures.py the way each Keras era writes them: models run in C
 * against the numpy reference, state dicts against the exact tensors the
 * fixtures hold, and the refusals of hostile files.
 *
 * Usage: test_keras DIR (the fixtures and expect.h5; run_keras_tests.py
 * builds them and runs this).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *dir;

static const char *fx(const char *name)
{
	static char buf[4096];
	snprintf(buf, sizeof buf, "%s/%s", dir, name);
	return buf;
}

/* The model of fixture name, run on expect.h5's x, equals its numpy reference. */
static void check_model(const char *name, nnh5_dtype dtype, double rtol)
{
	nnh5_file *e;
	nnh5_tensor *x, *y, *xd, *out, *outd;
	nnh5_model *m;
	char file[256], ref[256];

	snprintf(file, sizeof file, "%s.h5", name);
	snprintf(ref, sizeof ref, "/y/%s", name);
	ok(nnh5_keras_load_model(&m, fx(file), dtype));
	ok(nnh5_file_open(&e, fx("expect.h5"), NNH5_READ));
	ok(nnh5_file_read_tensor(&x, e, "/x"));
	ok(nnh5_file_read_tensor(&y, e, ref));
	ok(nnh5_file_close(e));
	ok(nnh5_tensor_convert(&xd, x, dtype));
	ok(nnh5_model_forward(&out, m, xd));
	ok(nnh5_tensor_convert(&outd, out, NNH5_FLOAT64));
	assert_int_equal(nnh5_tensor_ndim(outd), 2);
	assert_int_equal(nnh5_tensor_dim(outd, 0), nnh5_tensor_dim(y, 0));
	assert_int_equal(nnh5_tensor_dim(outd, 1), nnh5_tensor_dim(y, 1));
	const double *a = nnh5_tensor_data(outd), *b = nnh5_tensor_data(y);
	double scale = 0;
	for (size_t i = 0; i < nnh5_tensor_numel(y); i++)
		scale = fmax(scale, fabs(b[i]));
	for (size_t i = 0; i < nnh5_tensor_numel(y); i++)
		if (fabs(a[i] - b[i]) > rtol * fmax(fabs(b[i]), 1e-3 * scale))
			fail_msg("%s: output %zu is %.17g, numpy says %.17g", name, i, a[i], b[i]);
	nnh5_tensor_free(x);
	nnh5_tensor_free(xd);
	nnh5_tensor_free(y);
	nnh5_tensor_free(out);
	nnh5_tensor_free(outd);
	nnh5_model_free(m);
}

static void models_float64(void **state)
{
	(void)state;
	check_model("k2_model", NNH5_FLOAT64, 1e-6);
	check_model("k3_model", NNH5_FLOAT64, 1e-6);
	check_model("k3_model_name", NNH5_FLOAT64, 1e-6);
}

static void models_float32(void **state)
{
	(void)state;
	/* float32 arithmetic against a float64 reference: a few ulps of float32. */
	check_model("k2_model", NNH5_FLOAT32, 1e-5);
	check_model("k3_model", NNH5_FLOAT32, 1e-5);
}

/* The state dict of fixture file equals expect.h5's /sd/<name>: keys, order, dtypes, bits. */
static void check_state_dict(const char *file, const char *name)
{
	nnh5_dict *sd;
	nnh5_file *e;
	char path[256];
	size_t i;

	ok(nnh5_keras_load_state_dict(&sd, fx(file)));
	ok(nnh5_file_open(&e, fx("expect.h5"), NNH5_READ));
	for (i = 0;; i++) {
		nnh5_tensor *want;
		char *key;
		int64_t bf = 0;
		snprintf(path, sizeof path, "/sd/%s/%zu", name, i);
		if (!nnh5_file_has(e, path))
			break;
		ok(nnh5_file_read_tensor(&want, e, path));
		ok(nnh5_file_get_attr_string(&key, e, path, "key"));
		if (nnh5_file_get_attr_int(&bf, e, path, "bfloat16") != NNH5_OK)
			nnh5_error_clear();
		assert_true(i < nnh5_dict_len(sd));
		assert_string_equal(nnh5_dict_key(sd, i), key);
		const nnh5_tensor *got = nnh5_dict_value(sd, i);
		assert_int_equal(nnh5_tensor_dtype(got), bf ? NNH5_BFLOAT16 : nnh5_tensor_dtype(want));
		assert_int_equal(nnh5_tensor_ndim(got), nnh5_tensor_ndim(want));
		for (size_t d = 0; d < nnh5_tensor_ndim(want); d++)
			assert_int_equal(nnh5_tensor_dim(got, d), nnh5_tensor_dim(want, d));
		assert_int_equal(nnh5_tensor_nbytes(got), nnh5_tensor_nbytes(want));
		assert_memory_equal(nnh5_tensor_data(got), nnh5_tensor_data(want),
				    nnh5_tensor_nbytes(want));
		nnh5_free(key);
		nnh5_tensor_free(want);
	}
	assert_true(i > 0);
	assert_int_equal(i, nnh5_dict_len(sd));
	ok(nnh5_file_close(e));
	nnh5_dict_free(sd);
}

static void state_dicts(void **state)
{
	(void)state;
	check_state_dict("k2_model.h5", "k2_model");
	check_state_dict("k3_model.h5", "k3_model");
	check_state_dict("k3_model_name.h5", "k3_model_name");
	check_state_dict("k2_weights_split.h5", "k2_weights_split");
	check_state_dict("k3.weights.h5", "k3.weights");
}

static void layouts(void **state)
{
	nnh5_file *f;
	nnh5_keras_layout l;
	static const struct {
		const char *file;
		nnh5_keras_layout layout;
	} cases[] = { { "k2_model.h5", NNH5_KERAS_LEGACY_MODEL },
		      { "k3_model.h5", NNH5_KERAS_LEGACY_MODEL },
		      { "k2_weights_split.h5", NNH5_KERAS_LEGACY_WEIGHTS },
		      { "k3.weights.h5", NNH5_KERAS_V3_WEIGHTS } };

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ok(nnh5_file_open(&f, fx(cases[i].file), NNH5_READ));
		ok(nnh5_keras_layout_of(&l, f));
		assert_int_equal(l, cases[i].layout);
		ok(nnh5_file_close(f));
	}
	/* An nnh5 file is no Keras file. */
	ok(nnh5_file_open(&f, fx("expect.h5"), NNH5_READ));
	fails(NNH5_ERR_FORMAT, nnh5_keras_layout_of(&l, f), "not a Keras file");
	ok(nnh5_file_close(f));
}

static void refusals(void **state)
{
	nnh5_model *m = NULL;
	nnh5_dict *sd = NULL;

	(void)state;
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_model(&m, fx("bad_class.h5"), NNH5_FLOAT32),
	      "'conv2d'", "Conv2D");
	assert_null(m);
	/* Without the config the 4-d kernel is still no Dense kernel. */
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_state_dict(&sd, fx("bad_class.h5")), "'conv2d'",
	      "(1, 1, 3, 2)");
	assert_null(sd);
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_model(&m, fx("bad_shape.h5"), NNH5_FLOAT64),
	      "'dense_1'", "kernel of shape (7, 5)", "expected (8, 5)");
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_model(&m, fx("bad_missing.h5"), NNH5_FLOAT64),
	      "'dense_1'", "dense_1/bias:0", "missing");
	fails(NNH5_ERR_UNSAFE, nnh5_keras_load_model(&m, fx("bad_extlink.h5"), NNH5_FLOAT64),
	      "kernel:0");
	fails(NNH5_ERR_UNSAFE, nnh5_keras_load_state_dict(&sd, fx("bad_extlink.h5")), "kernel:0");
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_state_dict(&sd, fx("bad_weight.h5")),
	      "'batch_normalization'", "gamma:0");
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_model(&m, fx("bad_softmax.h5"), NNH5_FLOAT64),
	      "'dense_3'", "softmax");
	/* A weights-only file has no architecture to rebuild. */
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_model(&m, fx("k3.weights.h5"), NNH5_FLOAT64),
	      "model_config");
	fails(NNH5_ERR_INVALID, nnh5_keras_load_model(&m, fx("k2_model.h5"), NNH5_INT32), "dtype");
	fails(NNH5_ERR_FORMAT, nnh5_keras_load_model(&m, fx("bad_units.h5"), NNH5_FLOAT64),
	      "'dense'", "units");
	/* Parts of a split layer_names are counted against max_tensors, even empty ones. */
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	o.max_tensors = 4;
	ok(nnh5_file_open_ext(&f, fx("bad_chunks.h5"), NNH5_READ, &o));
	fails(NNH5_ERR_OVERFLOW, nnh5_keras_read_state_dict(&sd, f), "layer_names0",
	      "max_tensors");
	ok(nnh5_file_close(f));
	ok(nnh5_keras_load_state_dict(&sd, fx("bad_chunks.h5")));
	assert_int_equal(nnh5_dict_len(sd), 0);
	nnh5_dict_free(sd);
	sd = NULL;
	assert_null(m);
	assert_null(sd);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layouts),
		cmocka_unit_test(state_dicts),
		cmocka_unit_test(models_float64),
		cmocka_unit_test(models_float32),
		cmocka_unit_test(refusals),
	};
	if (argc != 2) {
		fprintf(stderr, "usage: test_keras DIR\n");
		return 2;
	}
	dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
