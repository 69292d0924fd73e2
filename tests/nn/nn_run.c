/*
 * tests/nn/nn_run.c - the C side of the PyTorch cross-check (torch_xcheck.py).
 *
 *   nn_run forward SPEC IN.h5 OUT.h5
 *       build the model SPEC (float32), load IN.h5's group "state" into it
 *       strictly (a state dict h5py wrote), run IN.h5's dataset "input" and
 *       save the output tensor to OUT.h5 (nnh5_save_tensor).
 *   nn_run save SPEC SEED BATCH OUT.h5
 *       build the model SPEC from SEED, draw a (BATCH, in) input and save the
 *       model with that probe (nnh5_save_model), then verify the file.
 *
 * SPEC is a comma-separated list of children, each "[name=]Type[:arg...]":
 * Linear:IN:OUT, Linear:IN:OUT:nobias, LazyLinear:OUT, ReLU, Sigmoid, Tanh,
 * GELU, Flatten, Dropout:P. Without "name=" a child is named by position.
 * Errors go to stderr with the library's message; the exit status is 1.
 */
#include <nnh5.h>
#include <nnh5/nn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "nn_run: %s: %s: %s\n", what, nnh5_status_name(rc), nnh5_error_message());
	return 1;
}

/* Build the model of spec; returns the input width of the first Linear in *in. */
static int build(nnh5_model **out, const char *spec, uint64_t seed, int64_t *in)
{
	nnh5_model *m;
	int rc = nnh5_model_new(&m, NNH5_FLOAT32, seed);
	if (rc)
		return rc;
	char *copy = strdup(spec);
	char *save = NULL;
	*in = -1;
	for (char *item = strtok_r(copy, ",", &save); item && !rc; item = strtok_r(NULL, ",", &save)) {
		char *name = NULL, *eq = strchr(item, '=');
		if (eq) {
			*eq = '\0';
			name = item;
			item = eq + 1;
		}
		char *args[4] = { 0 };
		char *s2 = NULL;
		char *type = strtok_r(item, ":", &s2);
		for (int k = 0; k < 4; k++)
			args[k] = strtok_r(NULL, ":", &s2);
		if (!type) {
			rc = NNH5_ERR_INVALID;
		} else if (strcmp(type, "Linear") == 0 && args[0] && args[1]) {
			int64_t a = atoll(args[0]), b = atoll(args[1]);
			if (*in < 0)
				*in = a;
			rc = nnh5_model_add_linear(m, name, a, b, !(args[2] && strcmp(args[2], "nobias") == 0));
		} else if (strcmp(type, "LazyLinear") == 0 && args[0]) {
			rc = nnh5_model_add_lazy_linear(m, name, atoll(args[0]), true);
		} else if (strcmp(type, "ReLU") == 0) {
			rc = nnh5_model_add_relu(m, name);
		} else if (strcmp(type, "Sigmoid") == 0) {
			rc = nnh5_model_add_sigmoid(m, name);
		} else if (strcmp(type, "Tanh") == 0) {
			rc = nnh5_model_add_tanh(m, name);
		} else if (strcmp(type, "GELU") == 0) {
			rc = nnh5_model_add_gelu(m, name);
		} else if (strcmp(type, "Flatten") == 0) {
			rc = nnh5_model_add_flatten(m, name, 1, -1);
		} else if (strcmp(type, "Dropout") == 0 && args[0]) {
			rc = nnh5_model_add_dropout(m, name, atof(args[0]));
		} else {
			fprintf(stderr, "nn_run: bad spec item '%s'\n", type);
			rc = NNH5_ERR_INVALID;
		}
	}
	free(copy);
	if (rc) {
		nnh5_model_free(m);
		return rc;
	}
	*out = m;
	return NNH5_OK;
}

static int do_forward(const char *spec, const char *in_path, const char *out_path)
{
	nnh5_model *m;
	nnh5_file *f;
	nnh5_dict *sd;
	nnh5_tensor *x, *y;
	int64_t in;
	int rc = build(&m, spec, 0, &in);
	if (rc)
		return fail("build", rc);
	if ((rc = nnh5_file_open(&f, in_path, NNH5_READ)))
		return fail("open", rc);
	if ((rc = nnh5_file_read_state_dict(&sd, f, "state")))
		return fail("read state", rc);
	if ((rc = nnh5_file_read_tensor(&x, f, "input")))
		return fail("read input", rc);
	nnh5_file_close(f);
	if ((rc = nnh5_model_load_state_dict(NULL, m, sd, NULL)))
		return fail("load_state_dict", rc);
	if ((rc = nnh5_model_forward(&y, m, x)))
		return fail("forward", rc);
	if ((rc = nnh5_save_tensor(out_path, y)))
		return fail("save", rc);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_dict_free(sd);
	nnh5_model_free(m);
	return 0;
}

static int do_save(const char *spec, uint64_t seed, int64_t batch, const char *out_path)
{
	nnh5_model *m;
	nnh5_tensor *x;
	nnh5_rng rng;
	int64_t in;
	int rc = build(&m, spec, seed, &in);
	if (rc)
		return fail("build", rc);
	int64_t shape[2] = { batch, in };
	nnh5_rng_seed(&rng, seed + 1);
	if ((rc = nnh5_tensor_randn(&x, NNH5_FLOAT32, 2, shape, &rng)))
		return fail("randn", rc);
	if ((rc = nnh5_save_model(out_path, m, x)))
		return fail("save_model", rc);
	nnh5_verify_result v;
	if ((rc = nnh5_verify_model(&v, out_path)))
		return fail("verify", rc);
	if (!v.bitwise_equal) {
		fprintf(stderr, "nn_run: verify: not bitwise equal (max abs diff %g)\n", v.max_abs_diff);
		return 1;
	}
	nnh5_tensor_free(x);
	nnh5_model_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "forward") == 0)
		return do_forward(argv[2], argv[3], argv[4]);
	if (argc == 6 && strcmp(argv[1], "save") == 0)
		return do_save(argv[2], strtoull(argv[3], NULL, 10), atoll(argv[4]), argv[5]);
	fprintf(stderr, "usage: nn_run forward SPEC IN.h5 OUT.h5 | nn_run save SPEC SEED BATCH OUT.h5\n");
	return 2;
}
