/*
 * lib/store/atomic.h - the atomic-replace protocol every nnh5 save goes through:
 * write a temporary file beside the target, fsync it, rename it over the
 * target, fsync the folder. Readers of the target see the old file or the
 * new one, never a mixture, even across a crash or a power cut.
 */
#ifndef NNH5_ATOMIC_H
#define NNH5_ATOMIC_H

#include "core/internal.h"

/* Temporary files are named ".<target name>.nnh5-tmp-XXXXXX" in the target's folder. */
#define NNH5__TMP_MARK ".nnh5-tmp-"

typedef struct nnh5__atomic {
	char *target;
	char *tmp; /* NULL once committed or aborted */
	bool durable;
} nnh5__atomic;

/* Create the (empty) temporary file for target. Errors: NNH5_ERR_IO, NNH5_ERR_NOMEM. */
int nnh5__atomic_begin(nnh5__atomic *a, const char *target, bool durable);

/* fsync the temporary file, rename it over the target, fsync the folder.
 * On failure the temporary file is removed and the target is untouched. */
int nnh5__atomic_commit(nnh5__atomic *a);

/* Remove the temporary file (if any) and free a. */
void nnh5__atomic_abort(nnh5__atomic *a);

#endif /* NNH5_ATOMIC_H */
