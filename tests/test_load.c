/*
 * tests/test_load.c - the load path's fast ways must load what the slow
 * ones did: bitwise equal tensors from state dicts of many small and a few
 * large tensors, large tensors on 2 MiB boundaries (advised for huge pages
 * only after nnh5_set_huge_pages), new tensors too, files open
 * elsewhere in the process still loading, and the memory a load of many
 * small tensors takes (HDF5 evicts each object header as it is closed).
 */
#define _DEFAULT_SOURCE
#include "testutil.h"
#include "core/internal.h" /* in_arena: which tensors share a block */
#include "file/load_direct.h" /* nnh5__load_direct_taken */

#include <hdf5.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define SMALL 3000
/* The bytes beside its data a small tensor may cost at a load's peak (small_tensor_peak). */
#define PEAK_PER_TENSOR 560

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

/* Whether this kernel populates a mapping on request (MADV_POPULATE_WRITE, Linux 5.14). */
static bool kernel_populates(void)
{
#ifdef MADV_POPULATE_WRITE
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool yes = p != MAP_FAILED && madvise(p, 4096, MADV_POPULATE_WRITE) == 0;
	if (p != MAP_FAILED)
		munmap(p, 4096);
	return yes;
#else
	return false;
#endif
}

/* How many of the whole pages of [p, p + n) are resident (mincore). */
static size_t resident_pages(const void *p, size_t n, size_t *whole)
{
	uintptr_t first = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t end = ((uintptr_t)p + n) & ~(uintptr_t)4095;
	size_t pages = end > first ? (end - first) / 4096 : 0, resident = 0;
	unsigned char *vec = malloc(pages ? pages : 1);

	assert_non_null(vec);
	assert_int_equal(mincore((void *)first, pages * 4096, vec), 0);
	for (size_t i = 0; i < pages; i++)
		resident += vec[i] & 1;
	free(vec);
	*whole = pages;
	return resident;
}

/*
 * Memory for a loaded tensor of 64 KiB and more is mapped before the read
 * (one call, not one page fault per 4 KiB page: doc/SPEED.md): every whole
 * page of it is resident before anything is written, on the large path
 * (8 MiB, 2 MiB-aligned) and on malloc's (256 KiB, with malloc's threshold
 * pinned so that the block is a new mapping: the test runs first, before
 * the heap holds a free block that large for malloc to reuse).
 */
static void large_memory_is_prefaulted(void **state)
{
	const size_t sizes[] = { ((size_t)8 << 20) + 100, ((size_t)256 << 10) + 100 };
	(void)state;

	if (!kernel_populates())
		skip();
	/* A sanitizer's allocator has no threshold to pin: the large path only. */
	bool pinned = mallopt(M_MMAP_THRESHOLD, 128 << 10) == 1;
	for (int i = 0; i < (pinned ? 2 : 1); i++) {
		size_t whole;
		unsigned char *p = nnh5__malloc_large(sizes[i]);
		assert_non_null(p);
		size_t resident = resident_pages(p, sizes[i], &whole);
		assert_int_equal(resident, whole);
		assert_true(whole >= 60);
		nnh5__free(p);
	}
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
	/*
	 * The large tensors start on a 2 MiB boundary; by default advised for
	 * huge pages unless this machine reports free pages to a hypervisor.
	 */
	const nnh5_tensor *big = nnh5_dict_get(back, "big.weight");
	assert_int_equal((uintptr_t)nnh5_tensor_data(big) % ((uintptr_t)2 << 20), 0);
	assert_int_equal((uintptr_t)nnh5_tensor_data(nnh5_dict_get(back, "big.steps")) %
				 ((uintptr_t)2 << 20), 0);
	bool reporting = nnh5__free_page_reporting("/sys/bus/virtio/drivers/virtio_balloon");
	if (kernel_has_thp())
		assert_int_equal(advised_huge(nnh5_tensor_data(big)), !reporting);
	nnh5_dict_free(back);
	/* NNH5_HUGE_PAGES_ON and _OFF decide whatever the machine; small tensors never. */
	for (int on = 0; on < 2; on++) {
		nnh5_set_huge_pages(on ? NNH5_HUGE_PAGES_ON : NNH5_HUGE_PAGES_OFF);
		ok(nnh5_load_state_dict(&back, tu_path("mixed.h5")));
		nnh5_set_huge_pages(NNH5_HUGE_PAGES_AUTO);
		assert_same_dicts(sd, back);
		big = nnh5_dict_get(back, "big.weight");
		assert_int_equal((uintptr_t)nnh5_tensor_data(big) % ((uintptr_t)2 << 20), 0);
		if (kernel_has_thp()) {
			assert_int_equal(advised_huge(nnh5_tensor_data(big)), on);
			assert_int_equal(
				advised_huge(nnh5_tensor_data(nnh5_dict_get(back, "layers.0.p0"))), 0);
		}
		nnh5_dict_free(back);
	}
	ok(nnh5_load_state_dict(&back, tu_path("mixed.h5")));
	/* Small ones share blocks of the load's arena; large ones have their own memory. */
	assert_true(nnh5_dict_get(back, "layers.0.p0")->in_arena);
	assert_false(nnh5_dict_get(back, "big.weight")->in_arena);
	nnh5_dict_free(back);
	ok(nnh5_file_open(&f, tu_path("mixed.h5"), NNH5_READ));
	/* A tensor read on its own has memory of its own. */
	ok(nnh5_file_read_tensor(&t, f, "layers/0/p0"));
	assert_false(t->in_arena);
	assert_memory_equal(nnh5_tensor_data(t), nnh5_tensor_data(nnh5_dict_get(sd, "layers.0.p0")),
			    nnh5_tensor_nbytes(t));
	nnh5_tensor_free(t);
	ok(nnh5_file_read_tensor(&t, f, "big/half"));
	assert_memory_equal(nnh5_tensor_data(t), nnh5_tensor_data(nnh5_dict_get(sd, "big.half")),
			    nnh5_tensor_nbytes(t));
	assert_int_equal(nnh5_tensor_checksum(t),
			 nnh5_tensor_checksum(nnh5_dict_get(sd, "big.half")));
	nnh5_tensor_free(t);
	nnh5_file_close(f);
	nnh5_dict_free(sd);
}

/*
 * An application's allocator: every tensor's memory (the arena's blocks,
 * the large tensors' own) comes from it, and goes back to it, all of it.
 */
#define APP_MAX 65536
/*
 * New large tensors start on a 2 MiB boundary too (a copy into them, such as
 * nnh5_mpi_read_sharded_into's, runs faster than into malloc's memory 16
 * bytes past a page) and are zeroed; below 4 MiB they come from calloc.
 */
static void new_tensors_aligned(void **state)
{
	int64_t big[1] = {(int64_t)3 << 20}, small[1] = {1000};
	nnh5_tensor *z, *o, *s;
	(void)state;
	ok(nnh5_tensor_zeros(&z, NNH5_FLOAT32, 1, big)); /* 12 MiB */
	ok(nnh5_tensor_ones(&o, NNH5_INT8, 1, big)); /* 3 MiB: under the threshold */
	ok(nnh5_tensor_zeros(&s, NNH5_FLOAT64, 1, small));
	assert_int_equal((uintptr_t)nnh5_tensor_data(z) % ((uintptr_t)2 << 20), 0);
	const float *zf = nnh5_tensor_data(z);
	for (int64_t i = 0; i < big[0]; i++)
		if (zf[i] != 0.0f)
			fail_msg("element %lld of a new tensor is %g, not 0", (long long)i, (double)zf[i]);
	const int8_t *oi = nnh5_tensor_data(o);
	for (int64_t i = 0; i < big[0]; i++)
		if (oi[i] != 1)
			fail_msg("element %lld of ones is %d", (long long)i, oi[i]);
	const double *sd = nnh5_tensor_data(s);
	for (int64_t i = 0; i < small[0]; i++)
		assert_true(sd[i] == 0.0);
	nnh5_tensor_free(z);
	nnh5_tensor_free(o);
	nnh5_tensor_free(s);
}

/*
 * NNH5_HUGE_PAGES_AUTO's test reads a virtio-balloon device's feature bits
 * from sysfs: bit 5 (free page reporting) set means no huge pages. Fake
 * driver folders stand in for sysfs.
 */
static void fake_device(const char *dir, const char *name, const char *bits)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/%s/features", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "%s\n", bits);
	fclose(fp);
}

static void huge_pages_auto_reads_balloon_features(void **state)
{
	char with[4096], without[4096], none[4096];
	(void)state;
	snprintf(with, sizeof with, "%s", tu_path("balloon_with"));
	snprintf(without, sizeof without, "%s", tu_path("balloon_without"));
	snprintf(none, sizeof none, "%s", tu_path("balloon_none"));
	assert_int_equal(mkdir(with, 0700), 0);
	assert_int_equal(mkdir(without, 0700), 0);
	assert_int_equal(mkdir(none, 0700), 0);
	/* As read off a virtual machine that reports: bits 1, 2, 5 and 7 set. */
	fake_device(with, "virtio0", "0110010100000000000000000000000010000000");
	fake_device(without, "virtio3", "0110000100000000000000000000000010000000");
	fake_device(without, "virtio4", "11111"); /* too short to tell: not reporting */
	fake_device(none, "other0", "0000010000");  /* not a virtio device's folder */
	assert_true(nnh5__free_page_reporting(with));
	assert_false(nnh5__free_page_reporting(without));
	assert_false(nnh5__free_page_reporting(none));
	assert_false(nnh5__free_page_reporting(tu_path("no_such_folder")));
}

static void *app_live[APP_MAX];
static size_t app_size[APP_MAX], app_allocs, app_frees;

static void app_track(void *p, size_t n)
{
	for (size_t i = 0; p && i < APP_MAX; i++)
		if (!app_live[i]) {
			app_live[i] = p;
			app_size[i] = n;
			return;
		}
	assert_null(p); /* the table is full */
}

static void app_untrack(void *p)
{
	for (size_t i = 0; p && i < APP_MAX; i++)
		if (app_live[i] == p) {
			app_live[i] = NULL;
			return;
		}
	assert_null(p); /* not from this allocator */
}

static void *app_malloc(size_t n)
{
	void *p = malloc(n);
	app_allocs += p != NULL;
	app_track(p, n);
	return p;
}

static void *app_realloc(void *old, size_t n)
{
	size_t at = APP_MAX;
	for (size_t i = 0; old && i < APP_MAX && at == APP_MAX; i++)
		if (app_live[i] == old)
			at = i;
	assert_true(!old || at < APP_MAX); /* from this allocator */
	void *p = realloc(old, n);
	if (p && old) {
		app_live[at] = p;
		app_size[at] = n;
	} else if (p) {
		app_allocs++;
		app_track(p, n);
	}
	return p;
}

static void app_free(void *p)
{
	app_frees += p != NULL;
	app_untrack(p);
	free(p);
}

/* The live allocation of the application's allocator holding [p, p + n); APP_MAX if none. */
static size_t app_holder(const void *p, size_t n)
{
	for (size_t i = 0; i < APP_MAX; i++)
		if (app_live[i] && (const char *)p >= (const char *)app_live[i] &&
		    (const char *)p + n <= (const char *)app_live[i] + app_size[i])
			return i;
	return APP_MAX;
}

static void application_allocator(void **state)
{
	nnh5_dict *sd = small_dict(true), *back;
	(void)state;
	ok(nnh5_save_state_dict(tu_path("mixed2.h5"), sd));
	nnh5_set_allocator(app_malloc, app_realloc, app_free);
	app_allocs = app_frees = 0;
	ok(nnh5_load_state_dict(&back, tu_path("mixed2.h5")));
	size_t blocks = 0, last = APP_MAX;
	for (size_t i = 0; i < nnh5_dict_len(back); i++) {
		const nnh5_tensor *t = nnh5_dict_value(back, i);
		size_t at = app_holder(t, sizeof *t);
		assert_true(at < APP_MAX);
		assert_true(app_holder(nnh5_tensor_data(t), nnh5_tensor_nbytes(t)) < APP_MAX);
		blocks += at != last;
		last = at;
	}
	/* The small tensors share a few blocks (each large one has its own memory). */
	assert_true(blocks < nnh5_dict_len(back) / 20);
	assert_same_dicts(sd, back);
	nnh5_dict_free(back);
	nnh5_set_allocator(NULL, NULL, NULL);
	assert_int_equal(app_allocs, app_frees);
	nnh5_dict_free(sd);
}

/* A shuffle of 0..n-1 from seed (the same order on every run). */
static void shuffle(size_t *order, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		seed = seed * 1103515245u + 12345u;
		size_t j = (seed >> 8) % i, tmp = order[i - 1];
		order[i - 1] = order[j];
		order[j] = tmp;
	}
}

/*
 * Tensors sharing a block free independently, in any order: taken out of
 * the dict and freed at once, kept past the dict, tied to a copy that
 * outlives them. Each keeps its values while its neighbours go (ASan and
 * LSan in the sanitizer build see any early or missing free).
 */
static void arena_tensors_free_in_any_order(void **state)
{
	nnh5_dict *sd = small_dict(false), *back;
	size_t n = nnh5_dict_len(sd), order[SMALL];
	nnh5_tensor *kept[SMALL] = { NULL }, *tie = NULL;
	(void)state;
	ok(nnh5_save_state_dict(tu_path("arena.h5"), sd));
	for (unsigned round = 0; round < 3; round++) {
		ok(nnh5_load_state_dict(&back, tu_path("arena.h5")));
		shuffle(order, n, round);
		for (size_t i = 0; i < n; i++) {
			const nnh5_tensor *t = nnh5_dict_value(back, i);
			assert_true(t->in_arena);
			/* Aligned as malloc's memory is. */
			assert_int_equal((uintptr_t)nnh5_tensor_data(t) % _Alignof(max_align_t), 0);
		}
		/* A tied copy of one tensor outlives every other tensor of the load. */
		ok(nnh5_tensor_share(&tie, nnh5_dict_value(back, order[0])));
		for (size_t i = 0; i < n / 2; i++) {
			const char *key = nnh5_dict_key(sd, order[i]);
			nnh5_tensor *t;
			ok(nnh5_dict_take(&t, back, key));
			assert_memory_equal(nnh5_tensor_data(t), nnh5_tensor_data(nnh5_dict_get(sd, key)),
					    nnh5_tensor_nbytes(t));
			if (i % 2)
				nnh5_tensor_free(t);
			else
				kept[order[i]] = t;
		}
		for (size_t i = 0; i < nnh5_dict_len(back); i++) {
			const char *key = nnh5_dict_key(back, i);
			assert_memory_equal(nnh5_tensor_data(nnh5_dict_value(back, i)),
					    nnh5_tensor_data(nnh5_dict_get(sd, key)),
					    nnh5_tensor_nbytes(nnh5_dict_value(back, i)));
		}
		nnh5_dict_free(back);
		for (size_t i = n; i-- > 0;)
			if (kept[i]) {
				assert_memory_equal(nnh5_tensor_data(kept[i]),
						    nnh5_tensor_data(nnh5_dict_value(sd, i)),
						    nnh5_tensor_nbytes(kept[i]));
				nnh5_tensor_free(kept[i]);
				kept[i] = NULL;
			}
		assert_memory_equal(nnh5_tensor_data(tie), nnh5_tensor_data(nnh5_dict_value(sd, order[0])),
				    nnh5_tensor_nbytes(tie));
		nnh5_tensor_free(tie);
	}
	nnh5_dict_free(sd);
}

/* Tied names saved once load tied, in the arena, and free in either order. */
static void tied_loads_in_arena(void **state)
{
	nnh5_dict *sd = small_dict(false), *back;
	(void)state;
	ok(nnh5_dict_tie(sd, "head.weight", "layers.0.p1"));
	ok(nnh5_dict_tie(sd, "layers.299.tied", "layers.150.p2"));
	ok(nnh5_save_state_dict(tu_path("tied_arena.h5"), sd));
	for (int first = 0; first < 2; first++) {
		nnh5_tensor *a, *b;
		ok(nnh5_load_state_dict(&back, tu_path("tied_arena.h5")));
		assert_same_dicts(sd, back);
		assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "head.weight"),
					     nnh5_dict_get(back, "layers.0.p1")));
		assert_true(nnh5_tensor_tied(nnh5_dict_get(back, "layers.299.tied"),
					     nnh5_dict_get(back, "layers.150.p2")));
		assert_true(nnh5_dict_get(back, "layers.0.p1")->in_arena);
		ok(nnh5_dict_take(&a, back, "head.weight"));
		ok(nnh5_dict_take(&b, back, "layers.0.p1"));
		nnh5_dict_free(back); /* every other tensor of the load, blocks included */
		nnh5_tensor *gone = first ? a : b, *left = first ? b : a;
		nnh5_tensor_free(gone);
		assert_memory_equal(nnh5_tensor_data(left),
				    nnh5_tensor_data(nnh5_dict_get(sd, "layers.0.p1")),
				    nnh5_tensor_nbytes(left));
		nnh5_tensor_free(left);
	}
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
 * The peak resident memory a load adds beside its tensors' bytes: path's
 * load after a first load paged the code in and what was freed went back
 * to the system.
 */
static long long load_peak_extra(const char *path, size_t *bytes)
{
	nnh5_dict *back;

	H5garbage_collect();
	malloc_trim(0);
	FILE *fp = fopen("/proc/self/clear_refs", "w");
	if (!fp)
		return -1;
	fputs("5", fp);
	fclose(fp);
	long long before = status_bytes("VmRSS:");
	ok(nnh5_load_state_dict(&back, path));
	long long peak = status_bytes("VmHWM:");
	*bytes = 0;
	for (size_t i = 0; i < nnh5_dict_len(back); i++)
		*bytes += nnh5_tensor_nbytes(nnh5_dict_value(back, i));
	nnh5_dict_free(back);
	return before < 0 || peak < 0 ? -1 : peak - before - (long long)*bytes;
}

/*
 * What a load of many small tensors keeps per tensor beside its data at
 * its peak (the tensor's header, its dict entry and key, the walk's and
 * the policy's records, the allocator's rounding), HDF5's fixed cost of an
 * open file (a one-tensor load's) left out: 819 bytes when each tensor had
 * a 320-byte header and allocations of its own, and the key list stayed in
 * HDF5's metadata cache (doc/SPEED.md, "Load peak memory").
 */
static void small_tensor_peak(void **state)
{
	nnh5_dict *sd, *back;
	size_t bytes, tiny_bytes;
	(void)state;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip(); /* sanitizers keep freed memory in quarantine; before allocating, or LSan sees it */
#endif
	sd = small_dict(false);
	ok(nnh5_save_state_dict(tu_path("peak.h5"), sd));
	nnh5_dict_free(sd);
	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_set(sd, "w", tu_seq(NNH5_FLOAT32, 1, (int64_t[]){ 4 }, 1, 0)));
	ok(nnh5_save_state_dict(tu_path("tiny.h5"), sd));
	nnh5_dict_free(sd);
	/*
	 * The HDF5 API path's figure: the direct reader (lib/file/load_direct.c)
	 * holds its parsed objects and keys beside the tensors and peaks
	 * higher (doc/SPEED.md, "Direct HDF5 reader").
	 */
	setenv("NNH5_DIRECT_READ", "0", 1);
	/* A first load pages in the code (memory it frees is too little to reuse). */
	ok(nnh5_load_state_dict(&back, tu_path("tiny.h5")));
	nnh5_dict_free(back);
	long long fixed = load_peak_extra(tu_path("tiny.h5"), &tiny_bytes);
	long long extra = load_peak_extra(tu_path("peak.h5"), &bytes);
	unsetenv("NNH5_DIRECT_READ");
	if (fixed < 0 || extra < 0)
		skip();
	long long per = (extra - fixed) / SMALL;
	print_message("peak extra %lld bytes beside %zu tensor bytes (%.2fx), %lld for one "
		      "tensor's file: %lld per tensor\n",
		      extra, bytes, (double)(extra + (long long)bytes) / (double)bytes, fixed, per);
	assert_true(per < PEAK_PER_TENSOR);
}

/* The API path's result for path with opts: its status, and its dict when it loads. */
static int api_load(nnh5_dict **out, const char *path, const nnh5_open_options *opts)
{
	nnh5_file *f;
	int rc = nnh5_file_open_ext(&f, path, NNH5_READ, opts);
	*out = NULL;
	if (rc)
		return rc;
	rc = nnh5_file_read_state_dict(out, f, "/");
	nnh5_file_close(f);
	return rc;
}

/*
 * A root of more than ~4,090 keys keeps its key list in dense attribute
 * storage, which the direct reader reads through HDF5's API before the
 * tensors: HDF5's free lists held the blocks of that open file (2 MB for
 * 12,000 keys) through the load's peak. They are given back at once.
 */
static void dense_root_frees_hdf5_blocks(void **state)
{
	const char *path = tu_path("dense_root.h5");
	nnh5_dict *sd, *back;
	size_t reg, arr, blk, fac;
	(void)state;
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < 6000; i++) {
		char key[40];
		int64_t n = 8;
		snprintf(key, sizeof key, "layers.%d.block.p%d", i / 10, i % 10);
		ok(nnh5_dict_set(sd, key, tu_seq(NNH5_FLOAT32, 1, &n, 1.0, i)));
	}
	ok(nnh5_save_state_dict(path, sd));
	/* What HDF5 keeps after a collection anyway (its regular lists: ~200 KB) */
	H5garbage_collect();
	assert_true(H5get_free_list_sizes(&reg, &arr, &blk, &fac) >= 0);
	size_t kept = reg + arr + blk + fac;
	uint64_t taken = nnh5__load_direct_taken();
	ok(nnh5_load_state_dict(&back, path));
	assert_int_equal(nnh5__load_direct_taken() - taken, 1);
	assert_int_equal(nnh5_dict_len(back), 6000);
	assert_string_equal(nnh5_dict_key(back, 5999), "layers.599.block.p9");
	assert_true(nnh5_tensor_equal(nnh5_dict_value(back, 4321), nnh5_dict_value(sd, 4321)));
	assert_true(H5get_free_list_sizes(&reg, &arr, &blk, &fac) >= 0);
	if (reg + arr + blk + fac > kept + 64 * 1024)
		fail_msg("HDF5's free lists hold %zu bytes after the load, %zu before (regular %zu, "
			 "array %zu, block %zu, factory %zu)", reg + arr + blk + fac, kept, reg, arr,
			 blk, fac);
	nnh5_dict_free(back);
	nnh5_dict_free(sd);
}

/* nnh5_load_*_ext with opts and the API path with opts give the same status and values. */
static void expect_ext(const char *path, const nnh5_open_options *opts, int status,
		       bool direct)
{
	nnh5_dict *a, *b;
	uint64_t taken = nnh5__load_direct_taken();
	assert_int_equal(nnh5_load_state_dict_ext(&a, path, opts), status);
	assert_int_equal(nnh5__load_direct_taken() - taken, direct ? 1 : 0);
	assert_int_equal(api_load(&b, path, opts), status);
	if (!status)
		assert_same_dicts(a, b);
	else
		assert_null(a);
	nnh5_dict_free(a);
	nnh5_dict_free(b);
}

/*
 * The one-call loads with options take the direct reader whatever the limits
 * and checksum switches, refuse what the options refuse as the API path does,
 * and leave loads that may reach other files or copy aliases to the API path.
 */
static void load_ext_options(void **state)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	const char *path = tu_path("ext.h5");
	nnh5_dict *sd, *back;
	nnh5_list *list, *lback;
	(void)state;
	ok(nnh5_dict_new(&sd));
	for (int i = 0; i < 30; i++) {
		char key[32];
		int64_t n = 16 + i;
		snprintf(key, sizeof key, "layers.%d.p%d", i / 10, i % 10);
		ok(nnh5_dict_set(sd, key, tu_seq(NNH5_FLOAT32, 1, &n, 0.5, i)));
	}
	ok(nnh5_save_state_dict(path, sd));
	expect_ext(path, NULL, NNH5_OK, true);
	o.max_tensors = 100;
	o.max_load_bytes = 1 << 20;
	expect_ext(path, &o, NNH5_OK, true);
	o.max_tensors = 29;
	expect_ext(path, &o, NNH5_ERR_OVERFLOW, false);
	o.max_tensors = 0;
	o.max_load_bytes = 1000;
	expect_ext(path, &o, NNH5_ERR_OVERFLOW, false);
	o.max_load_bytes = 0;
	o.copy_aliases = true; /* the API path's */
	expect_ext(path, &o, NNH5_OK, false);
	o.copy_aliases = false;
	o.compression = 7;
	expect_ext(path, &o, NNH5_ERR_INVALID, false);
	o.compression = NNH5_COMPRESSION_NONE;
	o.version = 99;
	expect_ext(path, &o, NNH5_ERR_INVALID, false);
	o.version = NNH5_OPEN_OPTIONS_VERSION;
	/* A damaged tensor: refused when verified, loaded as it is when not. */
	tu_flip_byte(path, tu_data_offset(path, "layers/1/p3"), 0x10);
	expect_ext(path, &o, NNH5_ERR_CHECKSUM, false);
	o.verify_checksums = false;
	expect_ext(path, &o, NNH5_OK, true);
	ok(nnh5_load_state_dict_ext(&back, path, &o));
	assert_memory_not_equal(nnh5_tensor_data(nnh5_dict_get(back, "layers.1.p3")),
				nnh5_tensor_data(nnh5_dict_get(sd, "layers.1.p3")),
				nnh5_tensor_nbytes(nnh5_dict_get(sd, "layers.1.p3")));
	nnh5_dict_free(back);
	/* A dict and a list, with a limit each passes and one each fails. */
	ok(nnh5_save_dict(path, sd));
	o.verify_checksums = true;
	o.max_tensors = 30;
	uint64_t taken = nnh5__load_direct_taken();
	ok(nnh5_load_dict_ext(&back, path, &o));
	assert_int_equal(nnh5__load_direct_taken() - taken, 1);
	assert_non_null(nnh5_dict_get(back, "layers.2.p9"));
	nnh5_dict_free(back);
	o.max_tensors = 29;
	assert_int_equal(nnh5_load_dict_ext(&back, path, &o), NNH5_ERR_OVERFLOW);
	assert_null(back);
	ok(nnh5_list_new(&list));
	for (int i = 0; i < 5; i++) {
		int64_t n = 16 + i;
		ok(nnh5_list_append(list, tu_seq(NNH5_FLOAT32, 1, &n, 0.5, i)));
	}
	ok(nnh5_save_list(path, list));
	o.max_tensors = 5;
	taken = nnh5__load_direct_taken();
	ok(nnh5_load_list_ext(&lback, path, &o));
	assert_int_equal(nnh5__load_direct_taken() - taken, 1);
	assert_int_equal(nnh5_list_len(lback), 5);
	assert_memory_equal(nnh5_tensor_data(nnh5_list_get(lback, 4)),
			    nnh5_tensor_data(nnh5_dict_value(sd, 4)), nnh5_tensor_nbytes(nnh5_dict_value(sd, 4)));
	nnh5_list_free(lback);
	o.max_tensors = 4;
	assert_int_equal(nnh5_load_list_ext(&lback, path, &o), NNH5_ERR_OVERFLOW);
	assert_null(lback);
	nnh5_list_free(list);
	nnh5_dict_free(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First, while the heap holds no large free block a malloc could reuse. */
		cmocka_unit_test(large_memory_is_prefaulted),
		cmocka_unit_test(loads_bitwise_equal),
		cmocka_unit_test(new_tensors_aligned),
		cmocka_unit_test(huge_pages_auto_reads_balloon_features),
		cmocka_unit_test(application_allocator),
		cmocka_unit_test(file_open_elsewhere),
		cmocka_unit_test(arena_tensors_free_in_any_order),
		cmocka_unit_test(tied_loads_in_arena),
		cmocka_unit_test(small_tensor_peak),
		cmocka_unit_test(load_ext_options),
		cmocka_unit_test(dense_root_frees_hdf5_blocks),
	};
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
