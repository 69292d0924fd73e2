/*
 * examples/seed_chapter.c - the "File I/O" chapter of Dive into Deep
 * Learning, step by step, in C: a tensor to x-file, a list to x-files, a
 * dict to mydict, the MLP's parameters to mlp.params and back into a clone
 * (Y_clone == Y), the LazyLinear version, exercise 2 (reuse the first two
 * layers in another architecture) and exercise 3 (save the architecture,
 * rebuild without code, verify the stored probe).
 *
 * Usage: seed_chapter [FOLDER]   (default: a new folder ./nnh5-seed-XXXXXX)
 * Each step prints the PyTorch line it mirrors, then what nnh5 gives.
 */
#include <nnh5.h>
#include <nnh5/nn.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK(call)                                                                            \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != NNH5_OK) {                                                              \
			fprintf(stderr, "seed_chapter: %s: %s\n", nnh5_status_name(rc_),             \
				nnh5_error_message());                                             \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static char folder[4096];

/* A path inside the output folder (static buffer, one at a time). */
static const char *in_folder(const char *name)
{
	static char buf[4200];
	snprintf(buf, sizeof(buf), "%s/%s", folder, name);
	return buf;
}

/* Print t as torch does (and a newline unless told otherwise). */
static void show(const nnh5_tensor *t, const char *end)
{
	char *s;
	CHECK(nnh5_tensor_format(&s, t));
	printf("%s%s", s, end);
	nnh5_free(s);
}

static void show_model(const nnh5_model *m)
{
	char *s;
	CHECK(nnh5_model_format(&s, m));
	printf("%s\n", s);
	nnh5_free(s);
}

/* The chapter's MLP: hidden Linear(20, 256), ReLU, output Linear(256, 10). */
static nnh5_model *mlp(uint64_t seed)
{
	nnh5_model *m;
	CHECK(nnh5_model_new(&m, NNH5_FLOAT32, seed));
	CHECK(nnh5_model_add_linear(m, "hidden", 20, 256, true));
	CHECK(nnh5_model_add_relu(m, "relu"));
	CHECK(nnh5_model_add_linear(m, "output", 256, 10, true));
	return m;
}

/* The first version of the chapter's MLP, with LazyLinear layers. */
static nnh5_model *lazy_mlp(uint64_t seed)
{
	nnh5_model *m;
	CHECK(nnh5_model_new(&m, NNH5_FLOAT32, seed));
	CHECK(nnh5_model_add_lazy_linear(m, "hidden", 256, true));
	CHECK(nnh5_model_add_relu(m, "relu"));
	CHECK(nnh5_model_add_lazy_linear(m, "output", 10, true));
	return m;
}

static void print_list(const char *what, char **v, size_t n)
{
	printf("  %s: [", what);
	for (size_t i = 0; i < n; i++)
		printf("%s'%s'", i ? ", " : "", v[i]);
	printf("]\n");
}

static void print_result(const nnh5_load_result *r)
{
	printf("  loaded: %zu\n", r->n_loaded);
	print_list("missing_keys", r->missing, r->n_missing);
	print_list("unexpected_keys", r->unexpected, r->n_unexpected);
	printf("  size_mismatch: %zu\n", r->n_mismatched);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		snprintf(folder, sizeof(folder), "%s", argv[1]);
		if (mkdir(folder, 0777) != 0 && errno != EEXIST) {
			fprintf(stderr, "seed_chapter: cannot create %s: %s\n", folder, strerror(errno));
			return 1;
		}
	} else {
		snprintf(folder, sizeof(folder), "nnh5-seed-XXXXXX");
		if (!mkdtemp(folder)) {
			fprintf(stderr, "seed_chapter: cannot create a folder here: %s\n", strerror(errno));
			return 1;
		}
	}
	printf("# nnh5 %s, writing into %s/\n\n", nnh5_version(), folder);

	/* 1. one tensor */
	printf("## Loading and saving tensors\n");
	nnh5_tensor *x, *x2;
	CHECK(nnh5_tensor_arange(&x, NNH5_INT64, 0, 4, 1));
	CHECK(nnh5_save_tensor(in_folder("x-file"), x));
	CHECK(nnh5_load_tensor(&x2, in_folder("x-file")));
	printf(">>> x = torch.arange(4); torch.save(x, 'x-file'); x2 = torch.load('x-file'); x2\n");
	show(x2, "\n");

	/* 2. a list and a dict */
	nnh5_tensor *y;
	int64_t four = 4;
	CHECK(nnh5_tensor_zeros(&y, NNH5_FLOAT32, 1, &four));
	nnh5_list *xs, *xs2;
	nnh5_tensor *xc, *yc;
	CHECK(nnh5_list_new(&xs));
	CHECK(nnh5_tensor_clone(&xc, x));
	CHECK(nnh5_list_append(xs, xc));
	CHECK(nnh5_tensor_clone(&yc, y));
	CHECK(nnh5_list_append(xs, yc));
	CHECK(nnh5_save_list(in_folder("x-files"), xs));
	CHECK(nnh5_load_list(&xs2, in_folder("x-files")));
	printf(">>> y = torch.zeros(4); torch.save([x, y], 'x-files'); x2, y2 = torch.load('x-files'); (x2, y2)\n(");
	show(nnh5_list_get(xs2, 0), ", ");
	show(nnh5_list_get(xs2, 1), ")\n");

	nnh5_dict *mydict, *mydict2;
	CHECK(nnh5_dict_new(&mydict));
	CHECK(nnh5_tensor_clone(&xc, x));
	CHECK(nnh5_dict_set(mydict, "x", xc));
	CHECK(nnh5_tensor_clone(&yc, y));
	CHECK(nnh5_dict_set(mydict, "y", yc));
	CHECK(nnh5_save_dict(in_folder("mydict"), mydict));
	CHECK(nnh5_load_dict(&mydict2, in_folder("mydict")));
	printf(">>> mydict = {'x': x, 'y': y}; torch.save(mydict, 'mydict'); mydict2 = torch.load('mydict'); mydict2\n{");
	for (size_t i = 0; i < nnh5_dict_len(mydict2); i++) {
		printf("%s'%s': ", i ? ", " : "", nnh5_dict_key(mydict2, i));
		show(nnh5_dict_value(mydict2, i), "");
	}
	printf("}\n\n");

	/* 3. model parameters */
	printf("## Loading and saving model parameters\n");
	nnh5_rng rng;
	nnh5_rng_seed(&rng, 2024);
	nnh5_model *net = mlp(1);
	nnh5_tensor *X, *Y;
	int64_t xshape[2] = { 2, 20 };
	CHECK(nnh5_tensor_randn(&X, NNH5_FLOAT32, 2, xshape, &rng));
	CHECK(nnh5_model_forward(&Y, net, X));
	printf(">>> net = MLP(); X = torch.randn(size=(2, 20)); Y = net(X); net\n");
	show_model(net);

	nnh5_dict *sd;
	CHECK(nnh5_model_state_dict(&sd, net));
	CHECK(nnh5_save_state_dict(in_folder("mlp.params"), sd));
	printf(">>> torch.save(net.state_dict(), 'mlp.params')   # keys:");
	for (size_t i = 0; i < nnh5_dict_len(sd); i++)
		printf(" %s", nnh5_dict_key(sd, i));
	printf("\n");

	nnh5_model *clone = mlp(2); /* another seed: its own random parameters until loaded */
	nnh5_dict *params;
	CHECK(nnh5_load_state_dict(&params, in_folder("mlp.params")));
	CHECK(nnh5_model_load_state_dict(NULL, clone, params, NULL));
	printf(">>> clone = MLP(); clone.load_state_dict(torch.load('mlp.params')); clone.eval()\n");
	show_model(clone);
	nnh5_tensor *Y_clone, *eq;
	CHECK(nnh5_model_forward(&Y_clone, clone, X));
	CHECK(nnh5_tensor_eq(&eq, Y_clone, Y));
	printf(">>> Y_clone = clone(X); Y_clone == Y\n");
	show(eq, "\n");
	nnh5_tensor_free(eq);
	nnh5_tensor_free(Y_clone);

	/* the architecture in code must match the saved shapes */
	nnh5_model *wrong;
	CHECK(nnh5_model_new(&wrong, NNH5_FLOAT32, 3));
	CHECK(nnh5_model_add_linear(wrong, "hidden", 30, 256, true));
	CHECK(nnh5_model_add_relu(wrong, "relu"));
	CHECK(nnh5_model_add_linear(wrong, "out", 256, 10, true));
	int rc = nnh5_model_load_state_dict(NULL, wrong, params, NULL);
	printf(">>> wrong.load_state_dict(torch.load('mlp.params'))   # Linear(30, 256), child 'out'\n");
	printf("%s: %s\n\n", nnh5_status_name(rc), nnh5_error_message());
	nnh5_model_free(wrong);

	/* 4. LazyLinear */
	printf("## The LazyLinear version\n");
	nnh5_model *lazy = lazy_mlp(4);
	printf(">>> net = MLP()   # nn.LazyLinear(256), nn.LazyLinear(10)\n");
	show_model(lazy);
	nnh5_tensor *YL;
	CHECK(nnh5_model_forward(&YL, lazy, X));
	printf(">>> Y = net(X); net   # in_features inferred from X\n");
	show_model(lazy);
	nnh5_dict *lsd;
	CHECK(nnh5_model_state_dict(&lsd, lazy));
	CHECK(nnh5_save_state_dict(in_folder("mlp-lazy.params"), lsd));
	nnh5_dict_free(lsd);
	nnh5_model *lclone = lazy_mlp(5);
	nnh5_dict *lparams;
	CHECK(nnh5_load_state_dict(&lparams, in_folder("mlp-lazy.params")));
	CHECK(nnh5_model_load_state_dict(NULL, lclone, lparams, NULL));
	CHECK(nnh5_model_forward(&Y_clone, lclone, X));
	CHECK(nnh5_tensor_eq(&eq, Y_clone, YL));
	printf(">>> clone = MLP(); clone.load_state_dict(torch.load('mlp.params')); Y_clone = clone(X); Y_clone == Y\n");
	show(eq, "\n\n");
	nnh5_tensor_free(eq);
	nnh5_tensor_free(Y_clone);
	nnh5_tensor_free(YL);
	nnh5_dict_free(lparams);
	nnh5_model_free(lclone);
	nnh5_model_free(lazy);

	/* 5. exercise 2: the first two layers (hidden and its ReLU) in another network */
	printf("## Exercise 2: reuse the first two layers in a different architecture\n");
	nnh5_model *other;
	CHECK(nnh5_model_new(&other, NNH5_FLOAT32, 6));
	CHECK(nnh5_model_add_linear(other, "encoder", 20, 256, true));
	CHECK(nnh5_model_add_relu(other, "act"));
	CHECK(nnh5_model_add_dropout(other, "drop", 0.1));
	CHECK(nnh5_model_add_linear(other, "head", 256, 3, true));
	CHECK(nnh5_model_add_sigmoid(other, "prob"));
	show_model(other);
	nnh5_key_rename ren = { "hidden.", "encoder." };
	nnh5_load_options lo = NNH5_LOAD_OPTIONS_INIT;
	lo.strict = false;
	lo.renames = &ren;
	lo.n_renames = 1;
	nnh5_load_result *res;
	CHECK(nnh5_model_load_state_dict(&res, other, params, &lo));
	printf(">>> other.load_state_dict({k.replace('hidden.', 'encoder.'): v for k, v in params.items()\n"
	       "...                        if k.startswith('hidden.')}, strict=False)\n");
	print_result(res);
	nnh5_load_result_free(res);
	nnh5_dict *osd;
	CHECK(nnh5_model_state_dict(&osd, other));
	printf(">>> torch.equal(other.encoder.weight, net.hidden.weight), torch.equal(other.encoder.bias, net.hidden.bias)\n");
	printf("(%s, %s)\n", nnh5_tensor_equal(nnh5_dict_get(osd, "encoder.weight"),
					      nnh5_dict_get(sd, "hidden.weight")) ? "True" : "False",
	       nnh5_tensor_equal(nnh5_dict_get(osd, "encoder.bias"), nnh5_dict_get(sd, "hidden.bias"))
		       ? "True"
		       : "False");
	nnh5_tensor *P;
	CHECK(nnh5_model_forward(&P, other, X));
	printf(">>> other(X).shape\ntorch.Size([%lld, %lld])\n\n", (long long)nnh5_tensor_dim(P, 0),
	       (long long)nnh5_tensor_dim(P, 1));
	nnh5_tensor_free(P);
	nnh5_dict_free(osd);
	nnh5_model_free(other);

	/* 6. exercise 3: the architecture with the parameters, and a probe to verify */
	printf("## Exercise 3: save the architecture too, rebuild without code\n");
	CHECK(nnh5_save_model(in_folder("mlp.h5"), net, X));
	printf(">>> nnh5_save_model('mlp.h5', net, probe=X)\n");
	nnh5_model *rebuilt;
	CHECK(nnh5_load_model(&rebuilt, in_folder("mlp.h5")));
	printf(">>> rebuilt = nnh5_load_model('mlp.h5'); rebuilt\n");
	show_model(rebuilt);
	CHECK(nnh5_model_forward(&Y_clone, rebuilt, X));
	CHECK(nnh5_tensor_eq(&eq, Y_clone, Y));
	printf(">>> rebuilt(X) == Y\n");
	show(eq, "\n");
	nnh5_verify_result vr;
	CHECK(nnh5_verify_model(&vr, in_folder("mlp.h5")));
	printf(">>> nnh5_verify_model('mlp.h5')\nbitwise identical: %s, max abs difference: %g over %zu values\n",
	       vr.bitwise_equal ? "True" : "False", vr.max_abs_diff, vr.numel);

	nnh5_tensor_free(eq);
	nnh5_tensor_free(Y_clone);
	nnh5_model_free(rebuilt);
	nnh5_dict_free(params);
	nnh5_model_free(clone);
	nnh5_dict_free(sd);
	nnh5_tensor_free(X);
	nnh5_tensor_free(Y);
	nnh5_model_free(net);
	nnh5_dict_free(mydict);
	nnh5_dict_free(mydict2);
	nnh5_list_free(xs);
	nnh5_list_free(xs2);
	nnh5_tensor_free(x);
	nnh5_tensor_free(x2);
	nnh5_tensor_free(y);
	return vr.bitwise_equal ? 0 : 1;
}
