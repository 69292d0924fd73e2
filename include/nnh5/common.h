/*
 * nnh5/common.h - status codes, per-thread error messages, version and memory.
 *
 * Every fallible nnh5 function returns an int that is one of the nnh5_status
 * values: NNH5_OK (0) on success, a negative value on failure. On failure a
 * one-line message naming the file, the object and the problem is kept for
 * the calling thread and can be read with nnh5_error_message() until the next
 * nnh5 call on that thread fails.
 *
 * The library never prints and never exits. Handles (the first parameter of
 * most functions, and output pointers) must not be NULL unless the function
 * says so (every _free() and _close(), and nnh5_file_discard(), accept
 * NULL): a NULL handle is a programming error. The library does not promise
 * to detect it (a few functions return NNH5_ERR_INVALID, most do not), and
 * it typically crashes the process at once (it is not asserted).
 */
#ifndef NNH5_COMMON_H
#define NNH5_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NNH5_BUILDING) && defined(__GNUC__)
#define NNH5_API __attribute__((visibility("default")))
#else
#define NNH5_API
#endif

#define NNH5_VERSION_MAJOR 0
#define NNH5_VERSION_MINOR 1
#define NNH5_VERSION_PATCH 0
#define NNH5_VERSION_STRING "0.1.0"

/*
 * Status codes. The values are pinned: new codes are only ever added with
 * new values, existing ones never change.
 */
typedef enum nnh5_status {
	NNH5_OK = 0,
	NNH5_ERR_INVALID = -1,   /* invalid argument: bad key, bad shape, wrong dtype for the operation */
	NNH5_ERR_NOMEM = -2,     /* an allocation failed */
	NNH5_ERR_IO = -3,        /* the operating system refused: open, write, fsync, rename, mkdir */
	NNH5_ERR_NOT_FOUND = -4, /* the file, object, key or attribute does not exist */
	NNH5_ERR_FORMAT = -5,    /* not an HDF5 file, damaged, or holds something other than what was asked */
	NNH5_ERR_TYPE = -6,      /* an HDF5 datatype nnh5 does not load, or an attribute of another type */
	NNH5_ERR_SHAPE = -7,     /* shapes differ where they must agree */
	NNH5_ERR_OVERFLOW = -8,  /* a size computation overflows or exceeds a limit */
	NNH5_ERR_HDF5 = -9,      /* an HDF5 call failed for a reason not covered above */
	NNH5_ERR_EXISTS = -10,   /* the object already exists */
	NNH5_ERR_CHECKSUM = -11, /* stored data does not match its stored checksum */
	NNH5_ERR_UNSAFE = -12,   /* refused by the load policy (external links, external storage, ...) */
	NNH5_ERR_BUSY = -13,     /* a resource is in use: a checkpoint folder locked, a save in flight */
} nnh5_status;

/* The name of a status code, e.g. "NNH5_ERR_NOT_FOUND". Never NULL. */
NNH5_API const char *nnh5_status_name(int status);

/*
 * The message of the last failure on the calling thread, e.g.
 * "load 'mlp.h5': object '/hidden/weight': not found". Never NULL ("" when no
 * failure has happened). The string belongs to the library; it stays valid
 * until the next nnh5 call on this thread.
 */
NNH5_API const char *nnh5_error_message(void);

/* The status of the last failure on the calling thread (NNH5_OK if none). */
NNH5_API int nnh5_error_status(void);

/* Forget the calling thread's last failure. */
NNH5_API void nnh5_error_clear(void);

/* The library version as "MAJOR.MINOR.PATCH"; static storage. */
NNH5_API const char *nnh5_version(void);

/*
 * Free memory the library handed to the caller as a plain buffer or string
 * (for example the text of nnh5_tensor_format()). NULL is a no-op.
 */
NNH5_API void nnh5_free(void *ptr);

/*
 * Replace the allocator the library uses for its own memory (tensors,
 * containers, strings). Pass NULL for all three to restore malloc/realloc/
 * free. Must be called before any object is allocated, or after all of them
 * are freed: memory must be freed by the allocator that made it. HDF5's and
 * OpenBLAS's own allocations are not affected. Not thread-safe.
 */
typedef void *(*nnh5_malloc_fn)(size_t size);
typedef void *(*nnh5_realloc_fn)(void *ptr, size_t size);
typedef void (*nnh5_free_fn)(void *ptr);
NNH5_API void nnh5_set_allocator(nnh5_malloc_fn m, nnh5_realloc_fn r, nnh5_free_fn f);

/*
 * Whether the library's tensors of 4 MiB and more (loaded, or new from
 * nnh5_tensor_new() and the constructors over it) are advised MADV_HUGEPAGE
 * (transparent huge pages), for the whole process. Such tensors always
 * start on a 2 MiB boundary; with the advice, filling them takes one page
 * fault per 2 MiB instead of one per 4 KiB.
 *
 * NNH5_HUGE_PAGES_AUTO (the default) advises them unless the machine is a
 * virtual machine that reports free memory to its host (a virtio-balloon
 * device with free page reporting, read once from
 * /sys/bus/virtio/drivers/virtio_balloon). There the host takes back freed
 * 2 MiB blocks, each new huge page must be backed again, and a 512 MiB
 * load into huge pages after a pause of 4 s took 2.1x-2.2x the time of
 * 4 KiB pages; loaded again at once, 0.33x-0.45x (doc/SPEED.md, "New
 * memory for large tensors"). NNH5_HUGE_PAGES_ON and _OFF decide without looking.
 * Has no effect with an allocator set by nnh5_set_allocator() or where the
 * kernel has no transparent huge pages. Thread-safe; applies to
 * allocations made after the call. An unknown mode is taken as AUTO.
 */
typedef enum nnh5_huge_pages {
	NNH5_HUGE_PAGES_AUTO = 0,
	NNH5_HUGE_PAGES_OFF = 1,
	NNH5_HUGE_PAGES_ON = 2,
} nnh5_huge_pages;
NNH5_API void nnh5_set_huge_pages(nnh5_huge_pages mode);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_COMMON_H */
