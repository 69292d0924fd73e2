/*
 * tests/test_load.c - the load path's fast ways must load what the slow
 * ones did: bitwise equal tensors from state dicts of many small and a few
 * large tensors, large tensors in huge-page-advised memory, files open
 * elsewhere in the process still loading, and the memory a load of many
 * small tensors takes (HDF5 evicts each object header as it is closed).
 */
#define _DEFAULT_SOURCE
#include "testutil.h"

#include <hdf5.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SMALL 3000

/* A state dict of SMALL small float32 tensors in groups of 10, plus extra. */
static nnh5_dict *small_dict(bool large)
{
	nnh5_dict *sd;
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < SMALL; i++) {
		char key[64];
		int64_t n = 64 << (i % 3);
		snprintf(key, sizeof key, "layers.%d.p%d", i / 10, i % 10);
		ok(nnh5_dict_set(sd, key, tu_seq(NNH5_FLOAT32, 1, &n, 0.5, i)));
	}
	if (large) {
		/* 9 MiB: more than NNH5__LARGE_BYTES, not a multiple of 2 MiB. */
		int64_t shape[2] = { 3, 786432 };
		ok(nnh5_dict_set(sd, "big.weight", tu_seq(NNH5_FLOAT32, 2, shape, 1e-3, -7)));
		int64_t odd[1] = { 1048577 };
		ok(nnh5_dict_set(sd, "big.steps", tu_seq(NNH5_INT64, 1, odd, 3, 1)));
		ok(nnh5_dict_set(sd, "big.half", tu_seq(NNH5_FLOAT16, 1, odd, 0.25, 0)));
	}
	return sd;
}

static void assert_same_dicts(const nnh5_dict *a, const nnh5_dict *b)
{
	assert_int_equal(nnh5_dict_len(a), nnh5_dict_len(b));
	for (size_t i = 0; i < nnh5_dict_len(a); i++) {
		const nnh5_tensor *x = nnh5_dict_value(a, i);
		const nnh5_tensor *y = nnh5_dict_get(b, nnh5_dict_key(a, i));
		assert_non_null(y);
		assert_int_equal(nnh5_tensor_dtype(x), nnh5_tensor_dtype(y));
		assert_int_equal(nnh5_tensor_nbytes(x), nnh5_tensor_nbytes(y));
		assert_memory_equal(nnh5_tensor_data(x), nnh5_tensor_data(y), nnh5_tensor_nbytes(x));
	}
}

/* The VmFlags of the mapping holding p include hg (MADV_HUGEPAGE)? -1: unknown. */
static int advised_huge(const void *p)
{
	char line[512];
	int found = -1;
	bool in = false;
	FILE *fp = fopen("/proc/self/smaps", "r");

	if (!fp)
		return -1;
	while (fgets(line, sizeof line, fp)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ' ') == line + strcspn(line, " ") &&
		    line[strcspn(line, "-")] == '-' && strchr(line, ':') > strchr(line, ' ')) {
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			found = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(fp);
	return found;
}

/* Whether this kernel takes the advice at all (no transparent huge pages: EINVAL). */
static bool kernel_has_thp(void)
{
	size_t n = (size_t)4 << 20;
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool yes = p != MAP_FAILED && madvise(p, n, MADV_HUGEPAGE) == 0;
	if (p != MAP_FAILED)
		munmap(p, n);
	return yes;
}

/* Loads are bitwise what was saved, through the one-call and the file API. */
static void loads_bitwise_equal(void **state)
{
	nnh5_dict *sd = small_dict(true), *back;
	nnh5_tensor *t;
	nnh5_file *f;
	(void)state;
	ok(nnh5_save_state_dict(tu_path("mixed.h5"), sd));
	ok(nnh5_load_state_dict(&back, tu_path("mixed.h5")));
	assert_same_dicts(sd, back);
	assert_string_equal(nnh5_dict_key(back, 0), "layers.0.p0"); /* the saved order */
	/* The large tensors start on a 2 MiB boundary, advised for huge pages. */
	const nnh5_tensor *big = nnh5_dict_get(back, "big.weight");
	assert_int_equal((uintptr_t)nnh5_tensor_data(big) % ((uintptr_t)2 << 20), 0);
	assert_int_equal((uintptr_t)nnh5_tensor_data(nnh5_dict_get(back, "big.steps")) %
				 ((uintptr_t)2 << 20), 0);
	if (kernel_has_thp())
		assert_int_equal(advised_huge(nnh5_tensor_data(big)), 1);
	/* Small ones come from the ordinary allocator. */
	nnh5_dict_free(back);
	ok(nnh5_file_open(&f, tu_path("mixed.h5"), NNH5_READ));
	ok(nnh5_file_read_tensor(&t, f, "big/half"));
	assert_memory_equal(nnh5_tensor_data(t), nnh5_tensor_data(nnh5_dict_get(sd, "big.half")),
			    nnh5_tensor_nbytes(t));
	assert_int_equal(nnh5_tensor_checksum(t),
			 nnh5_tensor_checksum(nnh5_dict_get(sd, "big.half")));
	nnh5_tensor_free(t);
	nnh5_file_close(f);
	nnh5_dict_free(sd);
}

/* With an application's allocator, large tensors use it too (and are freed by it). */
static size_t app_allocs;
static void *app_malloc(size_t n)
{
	app_allocs++;
	return malloc(n);
}

static void application_allocator(void **state)
{
	nnh5_dict *sd = small_dict(true), *back;
	(void)state;
	ok(nnh5_save_state_dict(tu_path("mixed2.h5"), sd));
	nnh5_set_allocator(app_malloc, NULL, NULL);
	app_allocs = 0;
	ok(nnh5_load_state_dict(&back, tu_path("mixed2.h5")));
	nnh5_set_allocator(NULL, NULL, NULL);
	assert_true(app_allocs >= 2 * nnh5_dict_len(back)); /* every header and buffer */
	assert_same_dicts(sd, back);
	nnh5_dict_free(back);
	nnh5_dict_free(sd);
}

/*
 * HDF5 refuses to open a file with evict-on-close when this process has it
 * open already without: nnh5 then opens it as before.
 */
static void file_open_elsewhere(void **state)
{
	nnh5_dict *sd = small_dict(false), *back;
	(void)state;
	ok(nnh5_save_state_dict(tu_path("shared.h5"), sd));
	/* nnh5's close degree (HDF5 refuses a second open with another one). */
	hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
	H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
	hid_t fid = H5Fopen(tu_path("shared.h5"), H5F_ACC_RDONLY, fapl);
	H5Pclose(fapl);
	assert_true(fid >= 0);
	ok(nnh5_load_state_dict(&back, tu_path("shared.h5")));
	assert_same_dicts(sd, back);
	nnh5_dict_free(back);
	H5Fclose(fid);
	nnh5_dict_free(sd);
}

static long long status_bytes(const char *field)
{
	char line[256];
	long long kib = -1;
	FILE *fp = fopen("/proc/self/status", "r");

	if (!fp)
		return -1;
	while (fgets(line, sizeof line, fp))
		if (strncmp(line, field, strlen(field)) == 0)
			kib = strtoll(line + strlen(field), NULL, 10);
	fclose(fp);
	return kib < 0 ? -1 : kib * 1024;
}

/*
 * The peak resident memory a load of many small tensors adds stays under
 * 1.5 times their bytes (1 KiB of nnh5 and HDF5 per tensor at most beside
 * the data): with HDF5 keeping each visited object header cached it was
 * about 3.5 times.
 */
static void small_tensor_peak(void **state)
{
	nnh5_dict *sd, *back;
	size_t bytes = 0;
	(void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip(); /* sanitizers keep freed memory in quarantine; before allocating, or LSan sees it */
#endif
	sd = small_dict(false);
	ok(nnh5_save_state_dict(tu_path("peak.h5"), sd));
	for (size_t i = 0; i < nnh5_dict_len(sd); i++)
		bytes += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
	nnh5_dict_free(sd);
	/* A first load of another file pages in the code (memory it frees is too little to reuse). */
	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "w", tu_seq(NNH5_FLOAT32, 1, (int64_t[]){ 4 }, 1, 0)));
	ok(nnh5_save_state_dict(tu_path("tiny.h5"), sd));
	nnh5_dict_free(sd);
	ok(nnh5_load_state_dict(&back, tu_path("tiny.h5")));
	nnh5_dict_free(back);
	/* What was freed goes back to the system, so this load's pages count. */
	H5garbage_collect();
	malloc_trim(0);
	FILE *fp = fopen("/proc/self/clear_refs", "w");
	if (!fp)
		skip();
	fputs("5", fp);
	fclose(fp);
	long long before = status_bytes("VmRSS:");
	ok(nnh5_load_state_dict(&back, tu_path("peak.h5")));
	long long peak = status_bytes("VmHWM:");
	if (before < 0 || peak < 0)
		skip();
	long long per = (peak - before - (long long)bytes) / SMALL;
	print_message("peak extra %lld bytes for %zu tensor bytes (%.2fx): %lld per tensor\n",
		      peak - before, bytes, (double)(peak - before) / (double)bytes, per);
	assert_true(per < 1200);
	nnh5_dict_free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loads_bitwise_equal),
		cmocka_unit_test(application_allocator),
		cmocka_unit_test(file_open_elsewhere),
		cmocka_unit_test(small_tensor_peak),
	};
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
