/*
 * examples/train_digits.c - train an MLP on handwritten digits with a
 * checkpoint every K steps, and resume after a crash.
 *
 * The data is scikit-learn's copy of the UCI handwritten digits (1,797 8x8
 * images, 64 features in 0..16, labels 0..9), which Debian's python3-sklearn
 * ships as sklearn/datasets/data/digits.csv.gz; the first 1,500 rows train,
 * the other 297 test. The model is 64-128-ReLU-10, trained with Adam on
 * softmax cross-entropy in mini-batches of 32, reshuffled every epoch.
 *
 * Every --every steps (and at the last step) a checkpoint goes to --dir:
 * the model, the optimizer, the shuffling generator, this epoch's order of
 * the samples, the loss and the test accuracy. --resume continues from the
 * newest checkpoint that verifies, and finishes with parameters bitwise
 * identical to a run that was never interrupted (tests/crash/test_resume.c
 * kills it at random moments to prove it).
 *
 * Usage: train_digits [--dir DIR] [--steps N] [--every K] [--seed S]
 *                     [--resume] [--async] [--quiet] [--data DIGITS.csv.gz]
 */
#include <nnh5.h>
#include <nnh5/checkpoint.h>
#include <nnh5/nn.h>
#include <nnh5/train.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DEFAULT_DATA "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
#define N_ROWS 1797
#define N_FEATURES 64
#define N_CLASSES 10
#define N_TRAIN 1500
#define BATCH 32

#define CHECK(call)                                                                      \
	do {                                                                             \
		int rc_ = (call);                                                        \
		if (rc_ != NNH5_OK) {                                                    \
			fprintf(stderr, "train_digits: %s: %s\n", nnh5_status_name(rc_),  \
				nnh5_error_message());                                   \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

struct options {
	const char *dir, *data;
	int64_t steps, every;
	uint64_t seed;
	bool resume, async, quiet;
};

static void usage(void)
{
	fprintf(stderr, "usage: train_digits [--dir DIR] [--steps N] [--every K] [--seed S]\n"
			"                    [--resume] [--async] [--quiet] [--data DIGITS.csv.gz]\n");
	exit(2);
}

static struct options parse(int argc, char **argv)
{
	struct options o = { "digits-run", DEFAULT_DATA, 600, 50, 1, false, false, false };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--resume"))
			o.resume = true;
		else if (!strcmp(a, "--async"))
			o.async = true;
		else if (!strcmp(a, "--quiet"))
			o.quiet = true;
		else if (v && !strcmp(a, "--dir"))
			o.dir = argv[++i];
		else if (v && !strcmp(a, "--data"))
			o.data = argv[++i];
		else if (v && !strcmp(a, "--steps"))
			o.steps = strtoll(argv[++i], NULL, 10);
		else if (v && !strcmp(a, "--every"))
			o.every = strtoll(argv[++i], NULL, 10);
		else if (v && !strcmp(a, "--seed"))
			o.seed = strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (o.steps < 1 || o.every < 1)
		usage();
	return o;
}

/* Read the digits: features scaled to [0, 1] into x (N_ROWS x 64), labels into y. */
static void load_digits(float *x, int64_t *y, const char *path)
{
	gzFile gz = gzopen(path, "rb");
	char line[1024];
	int row = 0;

	if (!gz) {
		fprintf(stderr,
			"train_digits: cannot open '%s' (Debian: apt install python3-sklearn, or "
			"pass --data)\n",
			path);
		exit(77); /* the test suite's "skipped" */
	}
	while (row < N_ROWS && gzgets(gz, line, sizeof line)) {
		char *p = line;
		for (int j = 0; j <= N_FEATURES; j++) {
			char *end;
			long v = strtol(p, &end, 10);
			if (end == p || v < 0 || v > 16 || (j < N_FEATURES && *end != ',')) {
				fprintf(stderr, "train_digits: '%s' line %d: bad field %d\n", path,
					row + 1, j + 1);
				exit(1);
			}
			if (j < N_FEATURES)
				x[row * N_FEATURES + j] = (float)v / 16.0f;
			else if (v >= N_CLASSES)
				exit((fprintf(stderr, "train_digits: bad label\n"), 1));
			else
				y[row] = v;
			p = end + 1;
		}
		row++;
	}
	gzclose(gz);
	if (row != N_ROWS) {
		fprintf(stderr, "train_digits: '%s': %d rows, expected %d\n", path, row, N_ROWS);
		exit(1);
	}
}

/* A new random order of the training samples (Fisher-Yates on rng). */
static void shuffle(int64_t *order, nnh5_rng *rng)
{
	for (int64_t i = 0; i < N_TRAIN; i++)
		order[i] = i;
	for (int64_t i = N_TRAIN - 1; i > 0; i--) {
		int64_t j = (int64_t)(nnh5_rng_u64(rng) % (uint64_t)(i + 1));
		int64_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
}

/* Test-set accuracy of m. */
static double accuracy(nnh5_model *m, const float *x, const int64_t *y)
{
	int64_t shape[] = { N_ROWS - N_TRAIN, N_FEATURES };
	nnh5_tensor *in, *out;
	int correct = 0;

	CHECK(nnh5_tensor_view_const(&in, NNH5_FLOAT32, 2, shape, x + N_TRAIN * N_FEATURES,
				     sizeof(float) * (size_t)(shape[0] * shape[1])));
	CHECK(nnh5_model_forward(&out, m, in));
	const float *logits = nnh5_tensor_data(out);
	for (int64_t i = 0; i < shape[0]; i++) {
		int best = 0;
		for (int c = 1; c < N_CLASSES; c++)
			if (logits[i * N_CLASSES + c] > logits[i * N_CLASSES + best])
				best = c;
		correct += best == y[N_TRAIN + i];
	}
	nnh5_tensor_free(in);
	nnh5_tensor_free(out);
	return (double)correct / (double)shape[0];
}

/* A tensor view onto memory the caller keeps alive until the checkpoint is saved. */
static nnh5_tensor *view(nnh5_dtype dtype, int64_t n, void *data, size_t nbytes)
{
	nnh5_tensor *t;
	CHECK(nnh5_tensor_view(&t, dtype, 1, (int64_t[]){ n }, data, nbytes));
	return t;
}

static void save_checkpoint(nnh5_checkpoint_manager *mgr, int64_t step, nnh5_model *m,
			    const nnh5_optim *opt, const nnh5_rng *rng, int64_t *order,
			    double loss, double acc)
{
	nnh5_checkpoint *c;
	nnh5_dict *sd;

	CHECK(nnh5_checkpoint_new(&c, step));
	CHECK(nnh5_checkpoint_set_epoch(c, step * BATCH / N_TRAIN));
	CHECK(nnh5_model_state_dict(&sd, m)); /* views of the parameters */
	CHECK(nnh5_checkpoint_set_state(c, "model", sd));
	CHECK(nnh5_optim_state_dict(&sd, opt));
	CHECK(nnh5_checkpoint_set_state(c, "optimizer", sd));
	CHECK(nnh5_checkpoint_set_rng(c, "shuffle", rng));
	CHECK(nnh5_checkpoint_set_tensor(c, "data.order",
					 view(NNH5_INT64, N_TRAIN, order, sizeof(int64_t) * N_TRAIN)));
	CHECK(nnh5_checkpoint_set_metric(c, "loss", loss));
	CHECK(nnh5_checkpoint_set_metric(c, "test_accuracy", acc));
	CHECK(nnh5_checkpoint_set_meta(c, "dataset", "sklearn digits (UCI), 1500 train / 297 test"));
	CHECK(nnh5_checkpoint_manager_save(mgr, c));
	nnh5_checkpoint_free(c);
}

/* Restore model, optimizer, generator and sample order from the newest good checkpoint. */
static int64_t resume(nnh5_checkpoint_manager *mgr, nnh5_model *m, nnh5_optim *opt, nnh5_rng *rng,
		      int64_t *order, bool quiet)
{
	nnh5_checkpoint *c;
	nnh5_load_result *res;
	char *why = NULL;
	int rc = nnh5_checkpoint_manager_latest(&c, &why, mgr);

	if (rc == NNH5_ERR_NOT_FOUND) {
		if (!quiet)
			printf("no checkpoint to resume from: starting at step 0\n");
		return 0;
	}
	CHECK(rc);
	if (why) {
		printf("skipped while resuming:\n%s\n", why);
		nnh5_free(why);
	}
	CHECK(nnh5_model_load_state_dict(&res, m, nnh5_checkpoint_state(c, "model"), NULL));
	nnh5_load_result_free(res);
	CHECK(nnh5_optim_load_state_dict(opt, nnh5_checkpoint_state(c, "optimizer")));
	CHECK(nnh5_checkpoint_get_rng(rng, c, "shuffle"));
	const nnh5_tensor *ord = nnh5_checkpoint_tensor(c, "data.order");
	if (!ord || nnh5_tensor_dtype(ord) != NNH5_INT64 || nnh5_tensor_numel(ord) != N_TRAIN) {
		fprintf(stderr, "train_digits: checkpoint step %lld has no valid data.order\n",
			(long long)nnh5_checkpoint_step(c));
		exit(1);
	}
	memcpy(order, nnh5_tensor_data(ord), sizeof(int64_t) * N_TRAIN);
	int64_t step = nnh5_checkpoint_step(c);
	if (!quiet)
		printf("resumed from step %lld\n", (long long)step);
	nnh5_checkpoint_free(c);
	return step;
}

int main(int argc, char **argv)
{
	struct options o = parse(argc, argv);
	static float x[N_ROWS * N_FEATURES];
	static int64_t y[N_ROWS], order[N_TRAIN];
	static float bx[BATCH * N_FEATURES];
	static int64_t by[BATCH];
	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_adam_options ao = NNH5_ADAM_OPTIONS_INIT;
	nnh5_checkpoint_manager *mgr;
	nnh5_model *m;
	nnh5_optim *opt;
	nnh5_rng rng;
	nnh5_tensor *xb, *yb, *logits, *grad;
	double loss = 0, running = 0;
	int64_t step = 0;

	load_digits(x, y, o.data);
	nnh5_nn_set_num_threads(1); /* bitwise reproducible resumes */
	CHECK(nnh5_model_new(&m, NNH5_FLOAT32, o.seed));
	CHECK(nnh5_model_add_linear(m, "hidden", N_FEATURES, 128, true));
	CHECK(nnh5_model_add_relu(m, "act"));
	CHECK(nnh5_model_add_linear(m, "output", 128, N_CLASSES, true));
	ao.lr = 2e-3;
	CHECK(nnh5_optim_adam_new(&opt, m, &ao));
	nnh5_rng_seed(&rng, o.seed ^ 0x5eed);

	co.keep_last = 3;
	co.keep_best = 1;
	co.best_metric = "test_accuracy";
	co.best_is_max = true;
	co.async = o.async;
	CHECK(nnh5_checkpoint_manager_open(&mgr, o.dir, &co));
	if (o.resume)
		step = resume(mgr, m, opt, &rng, order, o.quiet);
	if (step == 0)
		shuffle(order, &rng);

	const int64_t per_epoch = N_TRAIN / BATCH; /* the last partial batch is dropped */
	CHECK(nnh5_tensor_view(&xb, NNH5_FLOAT32, 2, (int64_t[]){ BATCH, N_FEATURES }, bx,
			       sizeof bx));
	CHECK(nnh5_tensor_view(&yb, NNH5_INT64, 1, (int64_t[]){ BATCH }, by, sizeof by));
	CHECK(nnh5_tensor_new(&logits, NNH5_FLOAT32, 2, (int64_t[]){ BATCH, N_CLASSES }));
	if (!o.quiet && step == 0)
		printf("training 64-128-10 on %d digits, checkpoints every %lld steps in %s\n",
		       N_TRAIN, (long long)o.every, o.dir);
	while (step < o.steps) {
		int64_t pos = step % per_epoch;
		if (pos == 0 && step > 0)
			shuffle(order, &rng); /* a new epoch */
		for (int b = 0; b < BATCH; b++) {
			int64_t i = order[pos * BATCH + b];
			memcpy(&bx[b * N_FEATURES], &x[i * N_FEATURES], sizeof(float) * N_FEATURES);
			by[b] = y[i];
		}
		CHECK(nnh5_model_zero_grad(m));
		CHECK(nnh5_model_forward_train_into(m, xb, logits, NULL));
		CHECK(nnh5_loss_cross_entropy(&loss, &grad, logits, yb));
		CHECK(nnh5_model_backward(NULL, m, grad));
		nnh5_tensor_free(grad);
		CHECK(nnh5_optim_step(opt));
		step++;
		running = step == 1 ? loss : 0.9 * running + 0.1 * loss;
		if (step % o.every == 0 || step == o.steps) {
			double acc = accuracy(m, x, y);
			/* the next epoch's order is drawn when it starts: save this one */
			save_checkpoint(mgr, step, m, opt, &rng, order, loss, acc);
			if (!o.quiet)
				printf("step %5lld  epoch %3lld  loss %.4f  test accuracy %.3f\n",
				       (long long)step, (long long)(step / per_epoch), running, acc);
		}
	}
	CHECK(nnh5_checkpoint_manager_close(mgr));
	if (!o.quiet)
		printf("done: %lld steps, final test accuracy %.3f\n", (long long)step,
		       accuracy(m, x, y));
	nnh5_tensor_free(xb);
	nnh5_tensor_free(yb);
	nnh5_tensor_free(logits);
	nnh5_optim_free(opt);
	nnh5_model_free(m);
	return 0;
}
