/*
 * tests/nn/train_run.c - the C side of the PyTorch cross-check of training
 * (train_xcheck.py). Everything it computes goes into one nnh5 file.
 *
 *   train_run grads DTYPE LOSS BATCH OUT.h5
 *       build a model with every layer type (Flatten, Linear, GELU,
 *       Dropout, LazyLinear, Tanh, Linear without bias, Sigmoid, ReLU),
 *       run forward_train on a (BATCH, 2, 5) input, the loss LOSS (ce or
 *       mse) and backward; write the model ("model", with its architecture),
 *       "input", "target", "output", "loss", "mask" (the Dropout mask),
 *       "grad_input" and the gradients ("grads", a state dict).
 *   train_run optim KIND DTYPE STEPS OUT.h5 [NAME=VALUE ...]
 *       build a small model, and for STEPS steps write random gradients
 *       ("grads_K", state dicts) and step the optimizer KIND (sgd or adam)
 *       with the given hyperparameters (lr, momentum, dampening,
 *       weight_decay, nesterov, beta1, beta2, eps), halving lr after step
 *       STEPS/2; write the parameters before ("init") and after ("final")
 *       and the optimizer's state dict ("optim").
 *
 * DTYPE is float32 or float64. Errors go to stderr with the library's
 * message; the exit status is 1 (2 for usage).
 */
#include <nnh5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "train_run: %s: %s: %s\n", what, nnh5_status_name(rc), nnh5_error_message());
	return 1;
}

#define TRY(what, call)                                                                        \
	do {                                                                                   \
		int rc_ = (call);                                                              \
		if (rc_)                                                                       \
			return fail(what, rc_);                                                \
	} while (0)

static const double drop_p = 0.3;

static int build_all(nnh5_model **out, nnh5_dtype dt)
{
	nnh5_model *m;
	TRY("new", nnh5_model_new(&m, dt, 11));
	TRY("add", nnh5_model_add_flatten(m, "flat", 1, -1));
	TRY("add", nnh5_model_add_linear(m, "l1", 10, 12, true));
	TRY("add", nnh5_model_add_gelu(m, "gelu"));
	TRY("add", nnh5_model_add_dropout(m, "drop", drop_p));
	TRY("add", nnh5_model_add_lazy_linear(m, "l2", 8, true));
	TRY("add", nnh5_model_add_tanh(m, "tanh"));
	TRY("add", nnh5_model_add_linear(m, "l3", 8, 6, false));
	TRY("add", nnh5_model_add_sigmoid(m, "sig"));
	TRY("add", nnh5_model_add_linear(m, "l4", 6, 5, true));
	TRY("add", nnh5_model_add_relu(m, "relu"));
	TRY("add", nnh5_model_add_linear(m, "l5", 5, 3, true));
	*out = m;
	return 0;
}

/*
 * The mask the model's Dropout drew: the only draws from rng are its own,
 * so a Dropout alone, fed ones of its input's shape from the same generator
 * state, gives the mask itself.
 */
static int dropout_mask(nnh5_tensor **out, nnh5_dtype dt, int64_t batch, uint64_t seed)
{
	nnh5_model *d;
	nnh5_tensor *ones;
	nnh5_rng rng;
	nnh5_rng_seed(&rng, seed);
	TRY("new", nnh5_model_new(&d, dt, 0));
	TRY("add", nnh5_model_add_dropout(d, "drop", drop_p));
	TRY("ones", nnh5_tensor_ones(&ones, dt, 2, (int64_t[]){ batch, 12 }));
	TRY("mask", nnh5_model_forward_train(out, d, ones, &rng));
	nnh5_tensor_free(ones);
	nnh5_model_free(d);
	return 0;
}

static int do_grads(nnh5_dtype dt, const char *loss_name, int64_t batch, const char *path)
{
	nnh5_model *m = NULL;
	nnh5_tensor *x, *target, *y, *dy, *dx, *mask, *loss_t;
	nnh5_dict *grads;
	nnh5_file *f;
	nnh5_rng rng;
	double loss;
	bool ce = strcmp(loss_name, "ce") == 0;
	const uint64_t seed = 77;

	if (build_all(&m, dt))
		return 1;
	nnh5_rng_seed(&rng, 5);
	TRY("randn", nnh5_tensor_randn(&x, dt, 3, (int64_t[]){ batch, 2, 5 }, &rng));
	if (ce) {
		TRY("targets", nnh5_tensor_new(&target, NNH5_INT64, 1, &batch));
		for (int64_t i = 0; i < batch; i++)
			TRY("targets", nnh5_tensor_set(target, (size_t)i, (double)(nnh5_rng_u64(&rng) % 3)));
	} else {
		TRY("randn", nnh5_tensor_randn(&target, dt, 2, (int64_t[]){ batch, 3 }, &rng));
	}
	nnh5_rng_seed(&rng, seed);
	TRY("forward_train", nnh5_model_forward_train(&y, m, x, &rng));
	if (ce)
		TRY("cross_entropy", nnh5_loss_cross_entropy(&loss, &dy, y, target));
	else
		TRY("mse", nnh5_loss_mse(&loss, &dy, y, target));
	TRY("backward", nnh5_model_backward(&dx, m, dy));
	TRY("grads", nnh5_model_grads(&grads, m));
	if (dropout_mask(&mask, dt, batch, seed))
		return 1;
	TRY("loss", nnh5_tensor_full(&loss_t, NNH5_FLOAT64, 0, NULL, loss));

	TRY("open", nnh5_file_open(&f, path, NNH5_CREATE));
	TRY("write model", nnh5_file_write_model(f, "model", m, NULL));
	TRY("write", nnh5_file_write_tensor(f, "input", x));
	TRY("write", nnh5_file_write_tensor(f, "target", target));
	TRY("write", nnh5_file_write_tensor(f, "output", y));
	TRY("write", nnh5_file_write_tensor(f, "loss", loss_t));
	TRY("write", nnh5_file_write_tensor(f, "mask", mask));
	TRY("write", nnh5_file_write_tensor(f, "grad_input", dx));
	TRY("write", nnh5_file_write_state_dict(f, "grads", grads));
	TRY("close", nnh5_file_close(f));

	nnh5_dict_free(grads);
	nnh5_tensor_free(x);
	nnh5_tensor_free(target);
	nnh5_tensor_free(y);
	nnh5_tensor_free(dy);
	nnh5_tensor_free(dx);
	nnh5_tensor_free(mask);
	nnh5_tensor_free(loss_t);
	nnh5_model_free(m);
	return 0;
}

/* NAME=VALUE arguments into the options of both kinds. */
static int parse_hyper(nnh5_sgd_options *s, nnh5_adam_options *a, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq)
			return -1;
		*eq = '\0';
		double v = strtod(eq + 1, NULL);
		const char *k = argv[i];
		if (strcmp(k, "lr") == 0)
			s->lr = a->lr = v;
		else if (strcmp(k, "weight_decay") == 0)
			s->weight_decay = a->weight_decay = v;
		else if (strcmp(k, "momentum") == 0)
			s->momentum = v;
		else if (strcmp(k, "dampening") == 0)
			s->dampening = v;
		else if (strcmp(k, "nesterov") == 0)
			s->nesterov = v != 0.0;
		else if (strcmp(k, "beta1") == 0)
			a->beta1 = v;
		else if (strcmp(k, "beta2") == 0)
			a->beta2 = v;
		else if (strcmp(k, "eps") == 0)
			a->eps = v;
		else
			return -1;
	}
	return 0;
}

static int do_optim(const char *kind, nnh5_dtype dt, int steps, const char *path, int argc,
		    char **argv)
{
	nnh5_model *m;
	nnh5_optim *o;
	nnh5_dict *sd, *grads, *osd;
	nnh5_file *f;
	nnh5_rng rng;
	nnh5_sgd_options so = NNH5_SGD_OPTIONS_INIT;
	nnh5_adam_options ao = NNH5_ADAM_OPTIONS_INIT;
	char name[32];

	if (parse_hyper(&so, &ao, argc, argv)) {
		fprintf(stderr, "train_run: bad hyperparameter\n");
		return 2;
	}
	TRY("new", nnh5_model_new(&m, dt, 3));
	TRY("add", nnh5_model_add_linear(m, "hidden", 5, 4, true));
	TRY("add", nnh5_model_add_tanh(m, "tanh"));
	TRY("add", nnh5_model_add_linear(m, "mid", 4, 3, true));
	TRY("add", nnh5_model_add_linear(m, "out", 3, 2, false));
	if (strcmp(kind, "adam") == 0)
		TRY("adam", nnh5_optim_adam_new(&o, m, &ao));
	else
		TRY("sgd", nnh5_optim_sgd_new(&o, m, &so));
	TRY("state_dict", nnh5_model_state_dict(&sd, m));
	TRY("grads", nnh5_model_grads(&grads, m));
	TRY("open", nnh5_file_open(&f, path, NNH5_CREATE));
	TRY("write init", nnh5_file_write_state_dict(f, "init", sd));
	nnh5_rng_seed(&rng, 9);
	for (int k = 0; k < steps; k++) {
		for (size_t i = 0; i < nnh5_dict_len(grads); i++) {
			nnh5_tensor *g = nnh5_dict_value(grads, i);
			for (size_t j = 0; j < nnh5_tensor_numel(g); j++)
				TRY("set", nnh5_tensor_set(g, j, nnh5_rng_normal(&rng)));
		}
		snprintf(name, sizeof(name), "grads_%d", k);
		TRY("write grads", nnh5_file_write_state_dict(f, name, grads));
		TRY("step", nnh5_optim_step(o));
		if (k + 1 == steps / 2)
			TRY("set_lr", nnh5_optim_set_lr(o, nnh5_optim_get_lr(o) * 0.5));
	}
	TRY("optim state", nnh5_optim_state_dict(&osd, o));
	TRY("write final", nnh5_file_write_state_dict(f, "final", sd));
	TRY("write optim", nnh5_file_write_state_dict(f, "optim", osd));
	TRY("close", nnh5_file_close(f));
	nnh5_dict_free(osd);
	nnh5_dict_free(grads);
	nnh5_dict_free(sd);
	nnh5_optim_free(o);
	nnh5_model_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	nnh5_dtype dt = NNH5_FLOAT32;
	if (argc >= 4 && nnh5_dtype_from_name(&dt, argv[strcmp(argv[1], "grads") == 0 ? 2 : 3]) == 0) {
		if (argc == 6 && strcmp(argv[1], "grads") == 0)
			return do_grads(dt, argv[3], atoll(argv[4]), argv[5]);
		if (argc >= 6 && strcmp(argv[1], "optim") == 0)
			return do_optim(argv[2], dt, atoi(argv[4]), argv[5], argc - 6, argv + 6);
	}
	fprintf(stderr, "usage: train_run grads DTYPE LOSS BATCH OUT.h5 | "
			"train_run optim KIND DTYPE STEPS OUT.h5 [NAME=VALUE ...]\n");
	return 2;
}
