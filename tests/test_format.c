/*
 * tests/test_format.c - nnh5_tensor_format() against PyTorch 1.13's repr().
 *
 * Without arguments this is a cmocka suite of exact strings, each one
 * copied from what /usr/bin/python3 with torch 1.13 printed for the same
 * tensor. With "--cases" it is the C half of format_check.py: it reads one
 * tensor per line from stdin, "<dtype> <ndim> <dim>... <hex bytes or ->",
 * and writes "<length>\n<formatted>\n" for each, so the script can compare
 * against torch byte for byte. The script sends the raw element bytes
 * rather than a formula so that both sides see exactly the same values.
 */
#include "core/internal.h"
#include "nnh5.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Room for a header of any rank: the struct's shape is a flexible array member. */
typedef union {
	struct nnh5_tensor h;
	unsigned char room[sizeof(struct nnh5_tensor) + NNH5_MAX_NDIM * sizeof(int64_t)];
} header;

/*
 * A tensor header around caller memory, built directly so these tests
 * depend on nothing but the formatter (and dtype.c for 16-bit floats).
 */
static void make(struct nnh5_tensor *t, nnh5_dtype dtype, size_t ndim, const int64_t *shape,
		 const void *data)
{
	size_t d;

	memset(t, 0, sizeof(header));
	t->dtype = (uint8_t)dtype;
	t->ndim = (uint8_t)ndim;
	t->numel = 1;
	for (d = 0; d < ndim; d++) {
		t->shape[d] = shape[d];
		t->numel *= (size_t)shape[d];
	}
	t->nbytes = t->numel * nnh5_dtype_size(dtype);
	/* The formatter only reads; the struct has no const member for data. */
	t->data = t->nbytes ? (void *)(uintptr_t)data : NULL;
	t->readonly = true;
}

static void expect(const struct nnh5_tensor *t, const char *want)
{
	char *s = NULL;

	assert_int_equal(nnh5_tensor_format(&s, t), NNH5_OK);
	assert_non_null(s);
	assert_string_equal(s, want);
	nnh5_free(s);
}

static void test_float32_basic(void **state)
{
	header t;
	const float v4[] = {0, 1, 2, 3};
	const float m[] = {1, 2, 3, 4};
	const float s3 = 3;
	const float cube[] = {0, 1, 2, 3, 4, 5, 6, 7};
	const float big[] = {1e10f, 1};
	const float tiny[] = {1e-5f, 1};
	const float odd[] = {0.5f, NAN, -INFINITY};
	int64_t shape[3] = {4};

	(void)state;
	make(&t.h, NNH5_FLOAT32, 1, shape, v4);
	expect(&t.h, "tensor([0., 1., 2., 3.])");
	make(&t.h, NNH5_FLOAT32, 0, NULL, &s3);
	expect(&t.h, "tensor(3.)");
	shape[0] = 2;
	shape[1] = 2;
	make(&t.h, NNH5_FLOAT32, 2, shape, m);
	expect(&t.h, "tensor([[1., 2.],\n        [3., 4.]])");
	shape[2] = 2;
	make(&t.h, NNH5_FLOAT32, 3, shape, cube);
	expect(&t.h, "tensor([[[0., 1.],\n         [2., 3.]],\n\n        [[4., 5.],\n"
		   "         [6., 7.]]])");
	make(&t.h, NNH5_FLOAT32, 1, shape, big);
	expect(&t.h, "tensor([1.0000e+10, 1.0000e+00])");
	make(&t.h, NNH5_FLOAT32, 1, shape, tiny);
	expect(&t.h, "tensor([1.0000e-05, 1.0000e+00])");
	shape[0] = 3;
	make(&t.h, NNH5_FLOAT32, 1, shape, odd);
	expect(&t.h, "tensor([0.5000,    nan,   -inf])");
}

static void test_empty(void **state)
{
	header t;
	int64_t shape[2] = {0, 3};

	(void)state;
	make(&t.h, NNH5_FLOAT32, 1, shape, NULL);
	expect(&t.h, "tensor([])");
	make(&t.h, NNH5_FLOAT32, 2, shape, NULL);
	expect(&t.h, "tensor([], size=(0, 3))");
	shape[0] = 2;
	shape[1] = 0;
	make(&t.h, NNH5_INT64, 2, shape, NULL);
	expect(&t.h, "tensor([], size=(2, 0), dtype=torch.int64)");
}

static void test_other_dtypes(void **state)
{
	header t;
	const int32_t i32[] = {1, 2};
	const int8_t i8[] = {-1, 10, -100};
	const int64_t s = -7;
	const uint8_t b[] = {1, 0};
	const uint8_t bb[] = {1, 1};
	const double f64[] = {0.1, 0.25};
	uint16_t f16[2];
	int64_t shape[2] = {2};

	(void)state;
	make(&t.h, NNH5_INT32, 1, shape, i32);
	expect(&t.h, "tensor([1, 2], dtype=torch.int32)");
	make(&t.h, NNH5_INT64, 0, NULL, &s);
	expect(&t.h, "tensor(-7)");
	make(&t.h, NNH5_FLOAT64, 1, shape, f64);
	expect(&t.h, "tensor([0.1000, 0.2500], dtype=torch.float64)");
	make(&t.h, NNH5_BOOL, 1, shape, bb);
	expect(&t.h, "tensor([True, True])");
	shape[0] = 1;
	shape[1] = 2;
	make(&t.h, NNH5_BOOL, 2, shape, b);
	expect(&t.h, "tensor([[ True, False]])");
	shape[0] = 3;
	make(&t.h, NNH5_INT8, 1, shape, i8);
	expect(&t.h, "tensor([  -1,   10, -100], dtype=torch.int8)");
	/* float16 1.5 and -2.0 (exact, so the test does not depend on rounding). */
	f16[0] = 0x3E00;
	f16[1] = 0xC000;
	shape[0] = 2;
	make(&t.h, NNH5_FLOAT16, 1, shape, f16);
	expect(&t.h, "tensor([ 1.5000, -2.0000], dtype=torch.float16)");
}

/*
 * torch cannot hold these values, so the expected strings follow its rules
 * by hand: width 20, and the non-torch dtype named without "torch.".
 */
static void test_unsigned_beyond_torch(void **state)
{
	header t;
	const uint64_t u64[] = {UINT64_MAX, 0};
	const uint32_t u32[] = {UINT32_MAX};
	int64_t shape[1] = {2};

	(void)state;
	make(&t.h, NNH5_UINT64, 1, shape, u64);
	expect(&t.h, "tensor([18446744073709551615,                    0], dtype=uint64)");
	shape[0] = 1;
	make(&t.h, NNH5_UINT32, 1, shape, u32);
	expect(&t.h, "tensor([4294967295], dtype=uint32)");
}

static void test_summarised(void **state)
{
	header t;
	int64_t *v = malloc(1001 * sizeof *v);
	int64_t shape[1] = {1001};
	int64_t i;

	(void)state;
	assert_non_null(v);
	for (i = 0; i < 1001; i++)
		v[i] = i;
	make(&t.h, NNH5_INT64, 1, shape, v);
	expect(&t.h, "tensor([   0,    1,    2,  ...,  998,  999, 1000])");
	free(v);
}

/* An allocator that fails after a budget of successful calls. */
static long alloc_budget;

static void *failing_malloc(size_t n)
{
	return alloc_budget-- > 0 ? malloc(n) : NULL;
}

static void *failing_realloc(void *p, size_t n)
{
	return alloc_budget-- > 0 ? realloc(p, n) : NULL;
}

/* Every allocation failure is reported as NOMEM, leaves *out NULL and leaks nothing. */
static void test_nomem(void **state)
{
	header t;
	float *v = malloc(3000 * sizeof *v);
	int64_t shape[1] = {300};
	bool ok = false;
	long budget;
	size_t i;

	(void)state;
	assert_non_null(v);
	for (i = 0; i < 3000; i++)
		v[i] = (float)i * 0.37f;
	make(&t.h, NNH5_FLOAT32, 1, shape, v);
	for (budget = 0; budget < 64 && !ok; budget++) {
		char *s = (char *)&t; /* anything but NULL, to see it reset */
		int rc;

		alloc_budget = budget;
		nnh5_set_allocator(failing_malloc, failing_realloc, free);
		rc = nnh5_tensor_format(&s, &t.h);
		nnh5_set_allocator(NULL, NULL, NULL);
		if (rc == NNH5_OK) {
			assert_non_null(s);
			ok = true;
		} else {
			assert_int_equal(rc, NNH5_ERR_NOMEM);
			assert_null(s);
		}
		nnh5_free(s);
	}
	assert_true(ok);
	assert_true(budget > 1); /* the first attempt, with no memory at all, must have failed */
	free(v);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One "--cases" line; returns 0 or prints why the line is bad and returns 1. */
static int run_case(char *line, unsigned long lineno)
{
	header t;
	int64_t shape[NNH5_MAX_NDIM];
	char *tok, *save = NULL, *s = NULL;
	unsigned char *bytes = NULL;
	nnh5_dtype dtype;
	size_t ndim, d, n, i;
	int rc;

	tok = strtok_r(line, " \t\r\n", &save);
	if (!tok || nnh5_dtype_from_name(&dtype, tok) != NNH5_OK)
		goto bad;
	tok = strtok_r(NULL, " \t\r\n", &save);
	if (!tok)
		goto bad;
	ndim = strtoul(tok, NULL, 10);
	if (ndim > NNH5_MAX_NDIM)
		goto bad;
	for (d = 0; d < ndim; d++) {
		tok = strtok_r(NULL, " \t\r\n", &save);
		if (!tok)
			goto bad;
		shape[d] = strtoll(tok, NULL, 10);
	}
	tok = strtok_r(NULL, " \t\r\n", &save);
	if (!tok)
		goto bad;
	n = strcmp(tok, "-") == 0 ? 0 : strlen(tok) / 2;
	bytes = malloc(n ? n : 1);
	if (!bytes)
		goto bad;
	for (i = 0; i < n; i++) {
		int hi = hexval(tok[2 * i]), lo = hexval(tok[2 * i + 1]);
		if (hi < 0 || lo < 0)
			goto bad;
		bytes[i] = (unsigned char)(hi * 16 + lo);
	}
	make(&t.h, dtype, ndim, shape, bytes);
	if (t.h.nbytes != n)
		goto bad;
	rc = nnh5_tensor_format(&s, &t.h);
	if (rc != NNH5_OK) {
		fprintf(stderr, "line %lu: %s\n", lineno, nnh5_status_name(rc));
		free(bytes);
		return 1;
	}
	printf("%zu\n%s\n", strlen(s), s);
	nnh5_free(s);
	free(bytes);
	return 0;
bad:
	fprintf(stderr, "line %lu: malformed case\n", lineno);
	free(bytes);
	return 1;
}

static int run_cases(void)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	int failed = 0;

	while (getline(&line, &cap, stdin) >= 0) {
		lineno++;
		if (line[0] == '\n' || line[0] == '#')
			continue;
		if (run_case(line, lineno)) {
			failed = 1;
			break;
		}
	}
	free(line);
	return failed || fflush(stdout) != 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_float32_basic),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_other_dtypes),
		cmocka_unit_test(test_unsigned_beyond_torch),
		cmocka_unit_test(test_summarised),
		cmocka_unit_test(test_nomem),
	};

	if (argc > 1 && strcmp(argv[1], "--cases") == 0)
		return run_cases();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
