/*
 * mkfiles.c - writes the nnh5 files the tool tests inspect, into the folder
 * given as argv[1]: a model with a probe, the same model perturbed, a dict
 * of tensors of several dtypes with NaN/Inf/zeros, and a big tensor (to see
 * the summarised print). Everything is seeded, so the files and the tool's
 * output on them are the same on every run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnh5/file.h>
#include <nnh5/nn.h>
#include <nnh5/checkpoint.h>
#include <nnh5/save.h>

#define CHECK(call)                                                                      \
	do {                                                                             \
		if ((call) != NNH5_OK) {                                                 \
			fprintf(stderr, "mkfiles: %s: %s\n", #call, nnh5_error_message()); \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		exit(1);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static nnh5_model *make_model(uint64_t seed)
{
	nnh5_model *m;
	CHECK(nnh5_model_new(&m, NNH5_FLOAT32, seed));
	CHECK(nnh5_model_add_linear(m, "hidden", 4, 8, true));
	CHECK(nnh5_model_add_relu(m, "relu"));
	CHECK(nnh5_model_add_linear(m, "output", 8, 2, true));
	return m;
}

int main(int argc, char **argv)
{
	nnh5_model *m;
	nnh5_tensor *x, *t;
	nnh5_dict *d;
	nnh5_rng rng;
	char *p;

	if (argc != 2) {
		fprintf(stderr, "usage: mkfiles DIR\n");
		return 2;
	}
	nnh5_nn_set_num_threads(1);
	nnh5_rng_seed(&rng, 42);
	CHECK(nnh5_tensor_randn(&x, NNH5_FLOAT32, 2, (const int64_t[]){3, 4}, &rng));

	m = make_model(0);
	p = join(argv[1], "model.h5");
	CHECK(nnh5_save_model(p, m, x));
	free(p);
	nnh5_model_free(m);

	/* Same architecture, one weight nudged: what diff must find. */
	m = make_model(0);
	CHECK(nnh5_model_state_dict(&d, m));
	CHECK(nnh5_tensor_set(nnh5_dict_get(d, "output.bias"), 1,
			      nnh5_tensor_get(nnh5_dict_get(d, "output.bias"), 1) + 0.001));
	nnh5_dict_free(d);
	p = join(argv[1], "model2.h5");
	CHECK(nnh5_save_model(p, m, x));
	free(p);
	nnh5_model_free(m);

	CHECK(nnh5_dict_new(&d));
	CHECK(nnh5_tensor_arange(&t, NNH5_INT32, 0, 6, 1));
	CHECK(nnh5_dict_set(d, "ints", t));
	CHECK(nnh5_tensor_full(&t, NNH5_FLOAT64, 1, (const int64_t[]){5}, 0.5));
	CHECK(nnh5_tensor_set(t, 1, (double)NAN));
	CHECK(nnh5_tensor_set(t, 2, (double)INFINITY));
	CHECK(nnh5_tensor_set(t, 3, 0.0));
	CHECK(nnh5_dict_set(d, "specials", t));
	CHECK(nnh5_tensor_randn(&t, NNH5_FLOAT32, 2, (const int64_t[]){40, 50}, &rng));
	CHECK(nnh5_dict_set(d, "big", t));
	CHECK(nnh5_tensor_ones(&t, NNH5_BOOL, 2, (const int64_t[]){2, 2}));
	CHECK(nnh5_dict_set(d, "mask", t));
	CHECK(nnh5_tensor_full(&t, NNH5_FLOAT16, 0, NULL, 1.5));
	CHECK(nnh5_dict_set(d, "scalar", t));
	p = join(argv[1], "dict.h5");
	CHECK(nnh5_save_dict(p, d));
	free(p);
	nnh5_dict_free(d);

	/* A one-tensor file (nnh5_save_tensor). */
	CHECK(nnh5_tensor_arange(&t, NNH5_INT32, 0, 6, 1));
	p = join(argv[1], "tensor.h5");
	CHECK(nnh5_save_tensor(p, t));
	free(p);
	nnh5_tensor_free(t);

	/* A checkpoint folder: 4 saves, the newest 2 and the best by loss kept. */
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *mgr;
	o.keep_last = 2;
	o.keep_best = 1;
	o.best_metric = "loss";
	p = join(argv[1], "run");
	CHECK(nnh5_checkpoint_manager_open(&mgr, p, &o));
	for (int64_t step = 100; step <= 400; step += 100) {
		nnh5_checkpoint *c;
		m = make_model(0);
		CHECK(nnh5_model_state_dict(&d, m));
		CHECK(nnh5_checkpoint_new(&c, step));
		CHECK(nnh5_checkpoint_set_epoch(c, step / 200));
		CHECK(nnh5_checkpoint_set_state(c, "model", d));
		CHECK(nnh5_tensor_randn(&t, NNH5_FLOAT32, 2, (const int64_t[]){32, 64}, &rng));
		CHECK(nnh5_checkpoint_set_tensor(c, "big", t)); /* contiguous: can be damaged */
		CHECK(nnh5_checkpoint_set_metric(c, "loss", step == 200 ? 0.05 : 100.0 / (double)step));
		CHECK(nnh5_checkpoint_set_rng(c, "data", &rng));
		CHECK(nnh5_checkpoint_manager_save(mgr, c));
		nnh5_checkpoint_free(c);
		nnh5_model_free(m);
	}
	CHECK(nnh5_checkpoint_manager_close(mgr));
	free(p);
	nnh5_tensor_free(x);
	return 0;
}
