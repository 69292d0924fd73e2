/*
 * tests/test_untrusted.c - nnh5_untrusted_check() (lib/inspect/untrusted.c): a good
 * file passes with one entry per check; a crash, a hang or an exhausted
 * memory limit in the child becomes an error in the caller, who carries on
 * with its file descriptors and signal state as they were.
 *
 * The crash and the hang are made with the allocator hook: the child
 * inherits it, so the Nth allocation in the child can raise SIGSEGV or
 * sleep forever exactly where HDF5's parser would.
 */
#define _DEFAULT_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void save_model(const char *path)
{
	nnh5_model *m;
	nnh5_tensor *x;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 1));
	ok(nnh5_model_add_linear(m, "hidden", 4, 8, true));
	ok(nnh5_model_add_relu(m, "relu"));
	ok(nnh5_model_add_linear(m, "output", 8, 2, true));
	x = tu_seq(NNH5_FLOAT32, 2, (int64_t[]){ 3, 4 }, 0.5, -1);
	ok(nnh5_save_model(path, m, x));
	nnh5_tensor_free(x);
	nnh5_model_free(m);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		n++;
	closedir(d);
	return n;
}

static void good_file(void **state)
{
	nnh5_untrusted_report *r;
	(void)state;
	save_model(tu_path("mlp.h5"));
	int fds = count_fds();
	ok(nnh5_untrusted_check(&r, tu_path("mlp.h5"), NULL));
	assert_int_equal(count_fds(), fds);
	assert_non_null(r);
	assert_int_equal(r->status, NNH5_OK);
	assert_false(r->crashed);
	assert_int_equal(r->n_failed, 0);
	/* probe input and output and four parameters */
	assert_int_equal(r->n_tensors, 6);
	bool model = false, probe = false;
	for (size_t i = 0; i < r->n_entries; i++) {
		const nnh5_untrusted_entry *e = &r->entries[i];
		if (e->kind == NNH5_CHECK_TENSOR && !strcmp(e->object, "/hidden/weight")) {
			assert_int_equal(e->dtype, NNH5_FLOAT32);
			assert_int_equal(e->ndim, 2);
			assert_int_equal(e->shape[0], 8);
			assert_int_equal(e->shape[1], 4);
			assert_true(e->has_checksum);
		}
		if (e->kind == NNH5_CHECK_MODEL) {
			model = true;
			assert_int_equal(e->count, 3);
		}
		if (e->kind == NNH5_CHECK_PROBE) {
			probe = true;
			assert_true(e->bitwise_equal);
			assert_int_equal(e->count, 6);
		}
	}
	assert_true(model && probe);
	nnh5_untrusted_report_free(r);
}

static void missing_and_damaged(void **state)
{
	nnh5_untrusted_report *r;
	(void)state;
	fails(NNH5_ERR_NOT_FOUND, nnh5_untrusted_check(&r, tu_path("absent.h5"), NULL),
	      "absent.h5");
	assert_non_null(r);
	assert_int_equal(r->n_failed, 1);
	assert_int_equal(r->entries[0].kind, NNH5_CHECK_OPEN);
	nnh5_untrusted_report_free(r);
	nnh5_untrusted_options o = NNH5_UNTRUSTED_OPTIONS_INIT;
	o.version = 5;
	fails(NNH5_ERR_INVALID, nnh5_untrusted_check(&r, tu_path("absent.h5"), &o),
	      "options version 5");
	assert_null(r);
}

/* The allocator the child inherits: countdown to a crash or a hang. */
static long countdown = -1;
static int mode; /* 1: SIGSEGV, 2: sleep forever */

static void *hostile_malloc(size_t n)
{
	if (countdown > 0 && --countdown == 0) {
		if (mode == 1)
			raise(SIGSEGV);
		for (;;)
			pause();
	}
	return malloc(n);
}

static void crash_is_contained(void **state)
{
	nnh5_untrusted_report *r;
	(void)state;
	save_model(tu_path("crash.h5"));
	int fds = count_fds();
	nnh5_set_allocator(hostile_malloc, NULL, NULL);
	mode = 1;
	countdown = 20; /* well inside the child's loading */
	int rc = nnh5_untrusted_check(&r, tu_path("crash.h5"), NULL);
	countdown = -1;
	nnh5_set_allocator(NULL, NULL, NULL);
	assert_int_equal(rc, NNH5_ERR_UNSAFE);
	tu_expect_message("crash", "crash.h5", "crashed the checking process (signal 11",
			  "nothing was loaded here", (const char *)NULL);
	assert_non_null(r);
	assert_true(r->crashed);
	assert_int_equal(r->signal, SIGSEGV);
	nnh5_untrusted_report_free(r);
	assert_int_equal(count_fds(), fds);
}

static void hang_is_killed(void **state)
{
	nnh5_untrusted_options o = NNH5_UNTRUSTED_OPTIONS_INIT;
	nnh5_untrusted_report *r;
	(void)state;
	save_model(tu_path("hang.h5"));
	o.timeout_seconds = 1;
	nnh5_set_allocator(hostile_malloc, NULL, NULL);
	mode = 2;
	countdown = 20;
	int rc = nnh5_untrusted_check(&r, tu_path("hang.h5"), &o);
	countdown = -1;
	nnh5_set_allocator(NULL, NULL, NULL);
	assert_int_equal(rc, NNH5_ERR_UNSAFE);
	tu_expect_message("hang", "hang.h5", "exhausted the time limit",
			  (const char *)NULL);
	nnh5_untrusted_report_free(r);
}

/* Out of address space in the child: an error, not a crash of the caller. */
static void memory_limit(void **state)
{
	nnh5_untrusted_options o = NNH5_UNTRUSTED_OPTIONS_INIT;
	nnh5_untrusted_report *r;
	nnh5_tensor *t;
	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	skip(); /* no address-space limit under AddressSanitizer */
#endif
	const char *pre = getenv("LD_PRELOAD");
	if (pre && strstr(pre, "vgpreload"))
		skip(); /* nor under valgrind, which maps its own memory */
	ok(nnh5_tensor_zeros(&t, NNH5_FLOAT64, 1, (int64_t[]){ 64 << 20 })); /* 512 MiB */
	ok(nnh5_save_tensor(tu_path("big.h5"), t));
	nnh5_tensor_free(t);
	o.max_memory = (uint64_t)256 << 20;
	int rc = nnh5_untrusted_check(&r, tu_path("big.h5"), &o);
	assert_int_not_equal(rc, NNH5_OK);
	assert_non_null(r);
	assert_int_equal(r->n_tensors, 0);
	nnh5_untrusted_report_free(r);
	o.max_memory = (uint64_t)4 << 30;
	ok(nnh5_untrusted_check(&r, tu_path("big.h5"), &o));
	assert_int_equal(r->n_tensors, 1);
	assert_int_equal(r->tensor_bytes, (uint64_t)512 << 20);
	nnh5_untrusted_report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_file),
		cmocka_unit_test(missing_and_damaged),
		cmocka_unit_test(crash_is_contained),
		cmocka_unit_test(hang_is_killed),
		cmocka_unit_test(memory_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
