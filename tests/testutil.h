/*
 * tests/testutil.h - helpers shared by the unit tests: a scratch folder per
 * test program, and assertions that print nnh5's error message on failure.
 */
#ifndef NNH5_TESTUTIL_H
#define NNH5_TESTUTIL_H

#include <nnh5.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Assert an nnh5 call succeeds, showing the library's message if not. */
#define ok(call)                                                                        \
	do {                                                                            \
		int rc_ = (call);                                                       \
		if (rc_ != NNH5_OK)                                                     \
			fail_msg("%s -> %s: %s", #call, nnh5_status_name(rc_),         \
				 nnh5_error_message());                                 \
	} while (0)

/* Assert an nnh5 call fails with status, and its message contains each needle. */
#define fails(status, call, ...)                                                       \
	do {                                                                            \
		int rc_ = (call);                                                       \
		if (rc_ != (status))                                                    \
			fail_msg("%s -> %s, expected %s (message: %s)", #call,         \
				 nnh5_status_name(rc_), nnh5_status_name(status),      \
				 nnh5_error_message());                                 \
		tu_expect_message(#call, __VA_ARGS__, (const char *)NULL);              \
	} while (0)

void tu_expect_message(const char *call, ...);

/* A fresh scratch folder for this test program; path of name inside it (static buffer). */
const char *tu_path(const char *name);

/* true if the file exists. */
int tu_exists(const char *path);

/* Count files in the scratch folder whose name contains needle. */
int tu_count_files(const char *needle);

/* The whole file at path in a new malloc'd buffer (free it); *n its size. NULL if unreadable. */
char *tu_slurp(const char *path, size_t *n);

/* A float32 tensor of shape with element i = i * scale + offset. */
nnh5_tensor *tu_seq(nnh5_dtype dtype, size_t ndim, const int64_t *shape, double scale,
		    double offset);

/*
 * In a forked child only: enter a private mount namespace (so mounts made
 * there vanish with the child). false, with a message on stderr, when the
 * system does not allow it (not root, no namespaces).
 */
bool tu_private_mounts(void);
/* Byte offset of dataset name's contiguous data in the file (read with plain HDF5). */
long tu_data_offset(const char *path, const char *name);

/* XOR the byte at off in the file with mask. */
void tu_flip_byte(const char *path, long off, unsigned char mask);

#endif
