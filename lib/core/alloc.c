/*
 * lib/core/alloc.c - the library's allocator, replaceable with nnh5_set_allocator()
 * (for applications with their own heaps, and for tests that fail the Nth
 * allocation to prove every error path frees what it took).
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "core/internal.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static nnh5_malloc_fn alloc_malloc = malloc;
static nnh5_realloc_fn alloc_realloc = realloc;
static nnh5_free_fn alloc_free = free;
static atomic_int huge_mode; /* nnh5_set_huge_pages(); NNH5_HUGE_PAGES_AUTO */

void nnh5_set_allocator(nnh5_malloc_fn m, nnh5_realloc_fn r, nnh5_free_fn f)
{
	alloc_malloc = m ? m : malloc;
	alloc_realloc = r ? r : realloc;
	alloc_free = f ? f : free;
}

void nnh5_set_huge_pages(nnh5_huge_pages mode)
{
	atomic_store_explicit(&huge_mode, (int)mode, memory_order_relaxed);
}

bool nnh5__free_page_reporting(const char *driver_dir)
{
	/* VIRTIO_BALLOON_F_REPORTING: feature bit 5, shown as the 6th of sysfs's '0'/'1' string. */
	enum { REPORTING_BIT = 5 };
	DIR *d = opendir(driver_dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		char path[4096], bits[64];
		FILE *fp;
		if (strncmp(e->d_name, "virtio", 6) != 0 ||
		    snprintf(path, sizeof path, "%s/%s/features", driver_dir, e->d_name) >=
			    (int)sizeof path ||
		    !(fp = fopen(path, "re")))
			continue;
		if (fgets(bits, sizeof bits, fp) && strlen(bits) > REPORTING_BIT)
			found = bits[REPORTING_BIT] == '1';
		fclose(fp);
	}
	closedir(d);
	return found;
}

static bool reporting_here;
static void look_for_reporting(void)
{
	reporting_here = nnh5__free_page_reporting("/sys/bus/virtio/drivers/virtio_balloon");
}

/* Whether a large allocation gets the huge-page advice now. */
static bool advise_huge(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int mode = atomic_load_explicit(&huge_mode, memory_order_relaxed);

	if (mode == NNH5_HUGE_PAGES_ON || mode == NNH5_HUGE_PAGES_OFF)
		return mode == NNH5_HUGE_PAGES_ON;
	pthread_once(&once, look_for_reporting);
	return !reporting_here;
}

void *nnh5__malloc(size_t size)
{
	/* malloc(0) may return NULL; callers treat NULL as failure. */
	return alloc_malloc(size ? size : 1);
}

void *nnh5__calloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	if (!nnh5__mul_size(n, size, &total))
		return NULL;
	p = nnh5__malloc(total);
	if (p)
		memset(p, 0, total ? total : 1);
	return p;
}

/*
 * Whether size bytes take the large path (aligned, maybe advised): from
 * NNH5__LARGE_BYTES up and only with the default allocator, since an
 * application's allocator is used as it is and aligned_alloc() memory is
 * released by free(), which is the default allocator's.
 */
static bool large_path(size_t size)
{
	return size >= NNH5__LARGE_BYTES && alloc_malloc == malloc && alloc_free == free;
}

/*
 * Memory about to be overwritten whole: map the pages of [p, p + size)
 * that lie wholly inside it in one call rather than one fault per page
 * (doc/SPEED.md, "New memory for large tensors"); pages already mapped
 * cost nothing. Linux before 5.14 refuses it: the pages then fault one by
 * one, as they did before.
 */
static void populate(void *p, size_t size)
{
#ifdef MADV_POPULATE_WRITE
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t mask = page > 0 ? (uintptr_t)page - 1 : 4095;
	uintptr_t first = ((uintptr_t)p + mask) & ~mask;
	uintptr_t end = ((uintptr_t)p + size) & ~mask;

	if (end > first)
		madvise((void *)first, end - first, MADV_POPULATE_WRITE);
#else
	(void)p;
	(void)size;
#endif
}

void *nnh5__malloc_large(size_t size)
{
	void *p;

	if (!large_path(size)) {
		p = nnh5__malloc(size);
		/* Sixteen pages and more: one call costs less than their faults. */
		if (p && size >= NNH5__POPULATE_BYTES && alloc_malloc == malloc)
			populate(p, size);
		return p;
	}
	p = aligned_alloc(NNH5__HUGE_PAGE, (size + NNH5__HUGE_PAGE - 1) / NNH5__HUGE_PAGE * NNH5__HUGE_PAGE);
	if (!p)
		return NULL;
#ifdef MADV_HUGEPAGE
	/* Before the first touch: each fault then maps 2 MiB instead of 4 KiB. */
	if (advise_huge())
		madvise(p, size / NNH5__HUGE_PAGE * NNH5__HUGE_PAGE, MADV_HUGEPAGE);
#endif
	/* Only the pages size covers: the 2 MiB rounding is never touched. */
	populate(p, size);
	return p;
}

void *nnh5__calloc_large(size_t size)
{
	void *p;

	if (!large_path(size))
		return nnh5__calloc(1, size);
	p = nnh5__malloc_large(size);
	if (p)
		memset(p, 0, size);
	return p;
}

void *nnh5__realloc(void *ptr, size_t size)
{
	return alloc_realloc(ptr, size ? size : 1);
}

void nnh5__free(void *ptr)
{
	if (ptr)
		alloc_free(ptr);
}

void nnh5_free(void *ptr)
{
	nnh5__free(ptr);
}

char *nnh5__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = nnh5__malloc(n);

	if (d)
		memcpy(d, s, n);
	return d;
}
