/*
 * lib/file/load_direct.h - one-call loads of the files nnh5 writes, read
 * directly in the HDF5 format (lib/file/load_direct.c, doc/FORMAT.md
 * "Direct HDF5 reader"), around HDF5's object layer.
 */
#ifndef NNH5_LOAD_DIRECT_H
#define NNH5_LOAD_DIRECT_H

#include "file/save_direct.h"
#include "nnh5/file.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Load path as what says into *out (an nnh5_tensor **, nnh5_list ** or
 * nnh5_dict **) when the file is exactly what nnh5's writers produce
 * (store/h5read.h) and the load policy with opts (NULL: the default open
 * options) accepts all of it, checksums verified as opts says. Options that
 * let a load reach other files or plugins, or copy aliases
 * (allow_external, allow_filter_plugins, copy_aliases), are the API path's. *done is false when the direct
 * reader does not take the load: turned off with the environment variable
 * NNH5_DIRECT_READ=0, or the file holds anything it does not read, or
 * anything the policy or a check would refuse, or any read or allocation
 * failed. Then *out is untouched, the error state is cleared and the
 * caller loads through the HDF5 API, which gives the file's real result or
 * error. When *done is true the result is NNH5_OK and *out is the caller's.
 */
int nnh5__load_direct(bool *done, void *out, const char *path, const nnh5_open_options *opts,
		      nnh5__direct_what what);

/* Try the direct reader first; return when it took the load. */
#define NNH5__LOAD_DIRECT(path, opts, what, out)                              \
	do {                                                                 \
		bool done_;                                                  \
		int rc_ = nnh5__load_direct(&done_, (out), (path), (opts), (what)); \
		if (done_)                                                   \
			return rc_;                                          \
	} while (0)

/* How many loads the direct reader took in this process (for tests). */
uint64_t nnh5__load_direct_taken(void);

#endif /* NNH5_LOAD_DIRECT_H */
