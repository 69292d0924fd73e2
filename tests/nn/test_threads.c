/*
 * tests/nn/test_threads.c - one model shared by many threads, each with its
 * own nnh5_model_ctx: outputs from 1, 2, 4 and 8 threads bitwise equal to
 * single-threaded nnh5_model_forward() (float32 and float64, gemv and gemm
 * batch sizes, a rank-3 input), per-thread error messages while other
 * threads succeed, an unmaterialised LazyLinear refused and the model left
 * as it was, output checks. Built twice: plainly, and with
 * -fsanitize=thread over the library's own sources (tests/nn/meson.build),
 * where ThreadSanitizer fails the test on any data race.
 *
 * `test_threads --race-without-ctx` shares one model through the
 * context-free nnh5_model_forward(), which writes the model's workspace: the
 * TSan build must report that (a test expected to fail), which shows the
 * sanitizer sees races in the library's code at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "nnh5.h"

#define N_INPUTS 4
#define ROUNDS 12
#define IN_FEATURES 16

typedef struct shared {
	nnh5_model *m;
	nnh5_tensor *x[N_INPUTS];
	nnh5_tensor *ref[N_INPUTS];
} shared;

typedef struct worker {
	pthread_t tid;
	const shared *s;
	int index;
	int failures;   /* calls that returned an error */
	int mismatches; /* outputs not bitwise equal to the reference */
	char message[256];
} worker;

static nnh5_model *mlp(nnh5_dtype dt, uint64_t seed)
{
	nnh5_model *m;
	assert_int_equal(nnh5_model_new(&m, dt, seed), NNH5_OK);
	assert_int_equal(nnh5_model_add_linear(m, "hidden", IN_FEATURES, 48, true), NNH5_OK);
	assert_int_equal(nnh5_model_add_relu(m, NULL), NNH5_OK);
	assert_int_equal(nnh5_model_add_linear(m, "mid", 48, 32, false), NNH5_OK);
	assert_int_equal(nnh5_model_add_tanh(m, NULL), NNH5_OK);
	assert_int_equal(nnh5_model_add_gelu(m, NULL), NNH5_OK);
	assert_int_equal(nnh5_model_add_linear(m, "out", 32, 3, true), NNH5_OK);
	assert_int_equal(nnh5_model_add_sigmoid(m, NULL), NNH5_OK);
	return m;
}

/* Inputs of batch 1 (the gemv path), 7, 64 and a rank-3 (2, 5, 16), with references. */
static void setup_shared(shared *s, nnh5_dtype dt)
{
	int64_t shapes[N_INPUTS][3] = {
		{ 1, IN_FEATURES }, { 7, IN_FEATURES }, { 64, IN_FEATURES }, { 2, 5, IN_FEATURES }
	};
	size_t ndims[N_INPUTS] = { 2, 2, 2, 3 };
	nnh5_rng rng;
	nnh5_rng_seed(&rng, 7);
	s->m = mlp(dt, 42);
	for (int i = 0; i < N_INPUTS; i++) {
		assert_int_equal(nnh5_tensor_randn(&s->x[i], dt, ndims[i], shapes[i], &rng), NNH5_OK);
		assert_int_equal(nnh5_model_forward(&s->ref[i], s->m, s->x[i]), NNH5_OK);
	}
}

static void free_shared(shared *s)
{
	for (int i = 0; i < N_INPUTS; i++) {
		nnh5_tensor_free(s->x[i]);
		nnh5_tensor_free(s->ref[i]);
	}
	nnh5_model_free(s->m);
}

/* Each thread walks the inputs in its own order, through _ctx_into and, every third call, _ctx. */
static void *work(void *arg)
{
	worker *w = arg;
	const shared *s = w->s;
	nnh5_model_ctx *c = NULL;
	nnh5_tensor *y[N_INPUTS] = { 0 };
	if (nnh5_model_ctx_new(&c, s->m)) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < N_INPUTS; i++)
		if (nnh5_tensor_new(&y[i], nnh5_tensor_dtype(s->ref[i]), nnh5_tensor_ndim(s->ref[i]),
				    nnh5_tensor_shape(s->ref[i])))
			w->failures++;
	for (int r = 0; r < ROUNDS && !w->failures; r++) {
		for (int k = 0; k < N_INPUTS; k++) {
			int i = (k + w->index + r) % N_INPUTS;
			if ((r + k) % 3 == 0) {
				nnh5_tensor *out;
				if (nnh5_model_forward_ctx(&out, c, s->x[i])) {
					w->failures++;
					continue;
				}
				w->mismatches += !nnh5_tensor_bitwise_equal(out, s->ref[i]);
				nnh5_tensor_free(out);
			} else {
				memset(nnh5_tensor_mutable_data(y[i]), 0xff, nnh5_tensor_nbytes(y[i]));
				if (nnh5_model_forward_ctx_into(c, s->x[i], y[i])) {
					w->failures++;
					continue;
				}
				w->mismatches += !nnh5_tensor_bitwise_equal(y[i], s->ref[i]);
			}
		}
	}
	for (int i = 0; i < N_INPUTS; i++)
		nnh5_tensor_free(y[i]);
	nnh5_model_ctx_free(c);
	return NULL;
}

static void run_threads(nnh5_dtype dt)
{
	static const int counts[] = { 1, 2, 4, 8 };
	shared s;
	setup_shared(&s, dt);
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		worker w[8];
		int n = counts[k];
		for (int t = 0; t < n; t++) {
			w[t] = (worker){ .s = &s, .index = t };
			assert_int_equal(pthread_create(&w[t].tid, NULL, work, &w[t]), 0);
		}
		for (int t = 0; t < n; t++) {
			assert_int_equal(pthread_join(w[t].tid, NULL), 0);
			assert_int_equal(w[t].failures, 0);
			assert_int_equal(w[t].mismatches, 0);
		}
	}
	free_shared(&s);
}

static void test_threads_float32(void **state)
{
	(void)state;
	run_threads(NNH5_FLOAT32);
}

static void test_threads_float64(void **state)
{
	(void)state;
	run_threads(NNH5_FLOAT64);
}

/* A thread whose input has the wrong dtype fails with its own message while another succeeds. */
static void *bad_dtype(void *arg)
{
	worker *w = arg;
	nnh5_model_ctx *c;
	nnh5_tensor *x, *out;
	int64_t shape[2] = { 3, IN_FEATURES };
	if (nnh5_model_ctx_new(&c, w->s->m))
		return NULL;
	if (nnh5_tensor_zeros(&x, NNH5_INT32, 2, shape) == NNH5_OK) {
		for (int r = 0; r < ROUNDS; r++) {
			if (nnh5_model_forward_ctx(&out, c, x) == NNH5_ERR_INVALID && !out)
				w->failures++;
			else
				nnh5_tensor_free(out);
		}
		snprintf(w->message, sizeof(w->message), "%s", nnh5_error_message());
		nnh5_tensor_free(x);
	}
	nnh5_model_ctx_free(c);
	return NULL;
}

static void test_errors_per_thread(void **state)
{
	(void)state;
	shared s;
	worker good = { 0 }, bad = { 0 };
	setup_shared(&s, NNH5_FLOAT32);
	nnh5_error_clear();
	good.s = bad.s = &s;
	assert_int_equal(pthread_create(&good.tid, NULL, work, &good), 0);
	assert_int_equal(pthread_create(&bad.tid, NULL, bad_dtype, &bad), 0);
	assert_int_equal(pthread_join(good.tid, NULL), 0);
	assert_int_equal(pthread_join(bad.tid, NULL), 0);
	assert_int_equal(good.failures, 0);
	assert_int_equal(good.mismatches, 0);
	assert_int_equal(bad.failures, ROUNDS);
	assert_non_null(strstr(bad.message, "input dtype int32"));
	/* the main thread's own message was not touched by either */
	assert_string_equal(nnh5_error_message(), "");
	free_shared(&s);
}

/* Inferring a LazyLinear would write the shared model: a context refuses, the model stays lazy. */
static void test_lazy_refused(void **state)
{
	(void)state;
	nnh5_model *m;
	nnh5_model_ctx *c;
	nnh5_tensor *x, *out, *ref;
	nnh5_dict *sd;
	int64_t shape[2] = { 4, 5 };
	assert_int_equal(nnh5_model_new(&m, NNH5_FLOAT32, 1), NNH5_OK);
	assert_int_equal(nnh5_model_add_lazy_linear(m, "lazy", 3, true), NNH5_OK);
	assert_int_equal(nnh5_model_ctx_new(&c, m), NNH5_OK);
	assert_ptr_equal(nnh5_model_ctx_model(c), m);
	assert_int_equal(nnh5_tensor_ones(&x, NNH5_FLOAT32, 2, shape), NNH5_OK);
	out = (nnh5_tensor *)&out;
	assert_int_equal(nnh5_model_forward_ctx(&out, c, x), NNH5_ERR_INVALID);
	assert_null(out);
	assert_non_null(strstr(nnh5_error_message(), "'lazy' (LazyLinear) has not inferred"));
	assert_int_equal(nnh5_model_state_dict(&sd, m), NNH5_OK);
	assert_int_equal(nnh5_dict_len(sd), 0);
	nnh5_dict_free(sd);
	/* once the model's own call inferred it, contexts run it */
	assert_int_equal(nnh5_model_forward(&ref, m, x), NNH5_OK);
	assert_int_equal(nnh5_model_forward_ctx(&out, c, x), NNH5_OK);
	assert_true(nnh5_tensor_bitwise_equal(out, ref));
	nnh5_tensor_free(out);
	nnh5_tensor_free(ref);
	nnh5_tensor_free(x);
	nnh5_model_ctx_free(c);
	nnh5_model_ctx_free(NULL);
	nnh5_model_free(m);
}

/* A wrong output tensor is refused and left untouched, as nnh5_model_forward_into() does. */
static void test_ctx_into_checks(void **state)
{
	(void)state;
	shared s;
	nnh5_model_ctx *c;
	nnh5_tensor *y;
	int64_t wrong[2] = { 7, 4 };
	setup_shared(&s, NNH5_FLOAT64);
	assert_int_equal(nnh5_model_ctx_new(&c, s.m), NNH5_OK);
	assert_int_equal(nnh5_tensor_full(&y, NNH5_FLOAT64, 2, wrong, 9.0), NNH5_OK);
	assert_int_equal(nnh5_model_forward_ctx_into(c, s.x[1], y), NNH5_ERR_SHAPE);
	assert_non_null(strstr(nnh5_error_message(), "output tensor shape (7, 4), the model gives (7, 3)"));
	for (size_t i = 0; i < nnh5_tensor_numel(y); i++)
		assert_true(nnh5_tensor_get(y, i) == 9.0);
	nnh5_tensor_free(y);
	nnh5_model_ctx_free(c);
	free_shared(&s);
}

/* The context-free call from many threads: a data race on purpose (see the top of this file). */
static void *race(void *arg)
{
	const shared *s = arg;
	for (int r = 0; r < ROUNDS; r++) {
		nnh5_tensor *out;
		if (nnh5_model_forward(&out, s->m, s->x[2]) == NNH5_OK)
			nnh5_tensor_free(out);
	}
	return NULL;
}

static int race_without_ctx(void)
{
	shared s;
	pthread_t t[4];
	setup_shared(&s, NNH5_FLOAT32);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, race, &s);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	free_shared(&s);
	return 0;
}

int main(int argc, char **argv)
{
	/* many callers: one BLAS thread each (nn.h, "Threads") */
	nnh5_nn_set_num_threads(1);
	if (argc > 1 && strcmp(argv[1], "--race-without-ctx") == 0)
		return race_without_ctx();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_float32),
		cmocka_unit_test(test_threads_float64),
		cmocka_unit_test(test_errors_per_thread),
		cmocka_unit_test(test_lazy_refused),
		cmocka_unit_test(test_ctx_into_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
