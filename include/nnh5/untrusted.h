/*
 * nnh5/untrusted.h - inspect a file from a stranger without risking the
 * calling process.
 *
 * nnh5's load policy (nnh5/file.h) refuses what a file can do on purpose:
 * reach other files, run filter plugins, declare sizes that exhaust memory.
 * It cannot fix HDF5's own parser: HDF5 1.10 has known bugs that crash or
 * hang on crafted metadata. nnh5_untrusted_check() therefore opens and loads
 * the file in a child process (fork) with resource limits: address space
 * (RLIMIT_AS), CPU time (RLIMIT_CPU), no file writes (RLIMIT_FSIZE 0), no
 * core dumps, every other file descriptor closed, stdin/stdout/stderr on
 * /dev/null, and a wall-clock timeout after which the child is killed. The
 * child reports back through a pipe; a crash, a hang or a limit hit inside
 * the child becomes an error here, and nothing the file holds is loaded
 * into the calling process.
 *
 * Use it before loading a downloaded model: if it passes, load the file
 * with the same options (the policy runs again in this process).
 *
 * Process-wide effects: one fork() per call, one child waited for by its
 * pid (the caller's SIGCHLD handling must let waitpid() see it: not
 * SIG_IGN). Call it while no other thread of the process is inside HDF5:
 * HDF5's global lock is not released in the child, which would then hang
 * until the timeout. In builds with AddressSanitizer the address-space
 * limit is not set (the sanitizer reserves terabytes of address space).
 */
#ifndef NNH5_UNTRUSTED_H
#define NNH5_UNTRUSTED_H

#include "file.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNH5_UNTRUSTED_OPTIONS_VERSION 1

/* Options of nnh5_untrusted_check(). Initialise with NNH5_UNTRUSTED_OPTIONS_INIT. */
typedef struct nnh5_untrusted_options {
	unsigned int version;          /* NNH5_UNTRUSTED_OPTIONS_VERSION */
	uint64_t max_memory;           /* the child's address space in bytes (0: 4 GiB) */
	unsigned int max_cpu_seconds;  /* the child's CPU time (0: 60) */
	unsigned int timeout_seconds;  /* wall clock before the child is killed (0: 120) */
	double tolerance;              /* model probes: accepted max abs difference (0: bitwise) */
	nnh5_open_options open;        /* the load policy the child opens the file with */
} nnh5_untrusted_options;

#define NNH5_UNTRUSTED_OPTIONS_INIT                                                     \
	{ NNH5_UNTRUSTED_OPTIONS_VERSION, 0, 0, 0, 0.0, NNH5_OPEN_OPTIONS_INIT }

/* What one check of the report is about. Pinned values. */
typedef enum nnh5_check_kind {
	NNH5_CHECK_OPEN = 1,    /* the file opens (object "/") */
	NNH5_CHECK_WALK = 2,    /* its groups can be listed within the limits */
	NNH5_CHECK_TENSOR = 3,  /* a dataset loads as a tensor (checksum verified) */
	NNH5_CHECK_SKIPPED = 4, /* a dataset nnh5 does not load (strings, compounds...): not a failure */
	NNH5_CHECK_MODEL = 5,   /* a model group rebuilds */
	NNH5_CHECK_PROBE = 6,   /* a model's stored probe gives its stored output */
} nnh5_check_kind;

/* One check made in the child. Strings belong to the report. */
typedef struct nnh5_untrusted_entry {
	nnh5_check_kind kind;
	int status;            /* NNH5_OK, or the failure's status */
	const char *object;    /* path of the object in the file, raw bytes from the file */
	const char *message;   /* the failure's message, or what was found ("" if nothing) */
	/* NNH5_CHECK_TENSOR: */
	nnh5_dtype dtype;
	size_t ndim;
	int64_t shape[NNH5_MAX_NDIM];
	bool has_checksum;     /* the tensor carried a checksum (and it matched) */
	/* NNH5_CHECK_MODEL: layers; NNH5_CHECK_PROBE: elements compared. */
	size_t count;
	/* NNH5_CHECK_PROBE: */
	bool bitwise_equal;
	double max_abs_diff;
} nnh5_untrusted_entry;

typedef struct nnh5_untrusted_report {
	int status;            /* as nnh5_untrusted_check() returned */
	bool crashed;          /* the child died of a signal (signal says which) */
	int signal;
	bool timed_out;        /* the child was killed after timeout_seconds */
	size_t n_entries;
	nnh5_untrusted_entry *entries;
	size_t n_tensors;      /* tensors that loaded */
	uint64_t tensor_bytes; /* their bytes */
	size_t n_failed;       /* entries with a status other than NNH5_OK (skips excluded) */
} nnh5_untrusted_report;

/*
 * Inspect path in a child process as described above: open it with
 * opts->open, list every group (hard links only, within the policy's
 * limits), load every dataset as a tensor (verifying its checksum), rebuild
 * every model group and run its stored probe. opts NULL means defaults.
 *
 * Returns NNH5_OK when every check passed. Otherwise the status and message
 * of the first failed check (for example NNH5_ERR_UNSAFE for an external
 * link), or NNH5_ERR_UNSAFE when the child crashed, ran out of time or CPU
 * ("... crashed the checking process (signal 11, Segmentation fault) ...").
 * *out receives the report whenever the child ran (also when a check
 * failed or the child crashed); free it with nnh5_untrusted_report_free().
 * It is NULL when the child could not be started. A path that is not a
 * regular file (a FIFO, device, folder or socket) fails the child's open
 * check with NNH5_ERR_INVALID without blocking (nnh5_file_open()).
 * Errors: those of the checks, NNH5_ERR_UNSAFE (crash, timeout, limits),
 * NNH5_ERR_IO (pipe or fork failed), NNH5_ERR_INVALID (options version),
 * NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_untrusted_check(nnh5_untrusted_report **out, const char *path,
				  const nnh5_untrusted_options *opts);

/* Free a report. NULL is a no-op. */
NNH5_API void nnh5_untrusted_report_free(nnh5_untrusted_report *r);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_UNTRUSTED_H */
