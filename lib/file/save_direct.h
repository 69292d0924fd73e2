/*
 * lib/file/save_direct.h - whole-file saves written directly in the HDF5
 * format (lib/file/save_direct.c, doc/FORMAT.md "Direct HDF5 writer").
 */
#ifndef NNH5_SAVE_DIRECT_H
#define NNH5_SAVE_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

/* What a one-call save holds. */
typedef enum nnh5__direct_what {
	NNH5__DIRECT_TENSOR,
	NNH5__DIRECT_LIST,
	NNH5__DIRECT_DICT,
	NNH5__DIRECT_STATE_DICT,
} nnh5__direct_what;

/*
 * Save obj (an nnh5_tensor, nnh5_list or nnh5_dict, as what says) to path
 * as a new file written directly in the HDF5 format, committed through the
 * atomic save (store/atomic.h) like every save, with the fsyncs of a
 * durable save when durable is true. *done is false when the
 * direct writer does not take this save (it is turned off with the
 * environment variable NNH5_DIRECT_WRITE=0, or obj holds anything it does
 * not write exactly as the API path would: ties, names the API path would
 * refuse, invalid bool bytes...): then nothing was written and the caller
 * saves through the HDF5 API. When *done is true the result is the save's
 * status: NNH5_OK, or an I/O error with the previous file unchanged.
 */
int nnh5__save_direct(bool *done, const char *path, nnh5__direct_what what, const void *obj,
		      bool durable);

/* Try the direct writer first; return its result when it took the save. */
#define NNH5__SAVE_DIRECT(path, what, obj, durable)                          \
	do {                                                                 \
		bool done_;                                                  \
		int rc_ = nnh5__save_direct(&done_, (path), (what), (obj), (durable)); \
		if (done_)                                                   \
			return rc_;                                          \
	} while (0)

/* How many saves the direct writer took in this process (for tests). */
uint64_t nnh5__save_direct_taken(void);

#endif /* NNH5_SAVE_DIRECT_H */
