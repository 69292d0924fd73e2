/*
 * fuzz/mkseeds.c - write the seed corpus of the fuzz targets into a folder:
 * files nnh5 writes (tensors compact and contiguous, a list, a dict, state
 * dicts, models with and without a probe, attributes). run.sh adds the
 * test suite's h5py and hostile files next to them.
 * Usage: mkseeds DIR
 */
#include <nnh5.h>

#include <stdio.h>

static int check(int rc, const char *what)
{
	if (rc != NNH5_OK)
		fprintf(stderr, "mkseeds: %s: %s\n", what, nnh5_error_message());
	return rc;
}

static nnh5_tensor *seq(nnh5_dtype dtype, size_t ndim, const int64_t *shape)
{
	nnh5_tensor *t;
	if (check(nnh5_tensor_new(&t, dtype, ndim, shape), "tensor"))
		return NULL;
	for (size_t i = 0; i < nnh5_tensor_numel(t); i++)
		nnh5_tensor_set(t, i, dtype == NNH5_BOOL ? (double)(i % 2) : (double)i * 0.5);
	return t;
}

int main(int argc, char **argv)
{
	char path[4096];
	nnh5_rng rng;
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: mkseeds DIR\n");
		return 2;
	}
	nnh5_rng_seed(&rng, 1);
#define OUT(name) (snprintf(path, sizeof path, "%s/%s", argv[1], name), path)
	nnh5_tensor *small = seq(NNH5_FLOAT32, 2, (int64_t[]){ 3, 4 });
	nnh5_tensor *big = seq(NNH5_INT16, 1, (int64_t[]){ 2100 });
	nnh5_tensor *half = seq(NNH5_BFLOAT16, 1, (int64_t[]){ 5 });
	nnh5_tensor *flags = seq(NNH5_BOOL, 1, (int64_t[]){ 6 });
	nnh5_tensor *empty = seq(NNH5_UINT8, 2, (int64_t[]){ 0, 3 });
	if (!small || !big || !half || !flags || !empty)
		return 1;
	bad |= check(nnh5_save_tensor(OUT("tensor-compact.h5"), small), "tensor");
	bad |= check(nnh5_save_tensor(OUT("tensor-contiguous.h5"), big), "tensor");

	nnh5_list *l;
	nnh5_tensor *c;
	nnh5_list_new(&l);
	nnh5_tensor_clone(&c, small);
	nnh5_list_append(l, c);
	nnh5_tensor_clone(&c, half);
	nnh5_list_append(l, c);
	nnh5_tensor_clone(&c, empty);
	nnh5_list_append(l, c);
	bad |= check(nnh5_save_list(OUT("list.h5"), l), "list");
	nnh5_list_free(l);

	nnh5_dict *d;
	nnh5_dict_new(&d);
	nnh5_tensor_clone(&c, small);
	nnh5_dict_set(d, "x", c);
	nnh5_tensor_clone(&c, flags);
	nnh5_dict_set(d, "mask", c);
	bad |= check(nnh5_save_dict(OUT("dict.h5"), d), "dict");
	nnh5_dict_free(d);

	nnh5_dict_new(&d);
	nnh5_tensor_clone(&c, small);
	nnh5_dict_set(d, "enc.layer.weight", c);
	nnh5_tensor_clone(&c, big);
	nnh5_dict_set(d, "enc.layer.bias", c);
	nnh5_tensor_clone(&c, half);
	nnh5_dict_set(d, "head.scale", c);
	bad |= check(nnh5_save_state_dict(OUT("state-dict.h5"), d), "state dict");

	nnh5_file *f;
	if (!check(nnh5_file_open(&f, OUT("handle.h5"), NNH5_CREATE), "handle")) {
		nnh5_file_write_state_dict(f, "models/a", d);
		nnh5_file_write_tensor(f, "tensor", small);
		nnh5_file_set_attr_string(f, "/", "note", "seed file");
		nnh5_file_set_attr_int(f, "models/a", "epoch", 3);
		nnh5_file_set_attr_float(f, "tensor", "scale", 0.5);
		bad |= check(nnh5_file_close(f), "handle");
	}
	nnh5_dict_free(d);

	nnh5_model *m;
	nnh5_tensor *x;
	nnh5_model_new(&m, NNH5_FLOAT32, 2);
	nnh5_model_add_linear(m, "hidden", 4, 8, true);
	nnh5_model_add_relu(m, "relu");
	nnh5_model_add_dropout(m, "drop", 0.1);
	nnh5_model_add_linear(m, "output", 8, 2, false);
	nnh5_model_add_flatten(m, NULL, 0, -1);
	nnh5_tensor_randn(&x, NNH5_FLOAT32, 2, (int64_t[]){ 3, 4 }, &rng);
	bad |= check(nnh5_save_model(OUT("model-probe.h5"), m, x), "model");
	nnh5_model_free(m);
	nnh5_model_new(&m, NNH5_FLOAT64, 3);
	nnh5_model_add_lazy_linear(m, NULL, 3, true);
	nnh5_model_add_tanh(m, NULL);
	nnh5_model_add_gelu(m, NULL);
	nnh5_model_add_sigmoid(m, NULL);
	bad |= check(nnh5_save_model(OUT("model-lazy.h5"), m, NULL), "model");
	nnh5_model_free(m);
	nnh5_tensor_free(x);
	nnh5_tensor_free(small);
	nnh5_tensor_free(big);
	nnh5_tensor_free(half);
	nnh5_tensor_free(flags);
	nnh5_tensor_free(empty);
	return bad ? 1 : 0;
}
