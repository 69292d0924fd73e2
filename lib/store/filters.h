/*
 * lib/store/filters.h - compression: the profiles a save writes and the
 * filters the load policy trusts, written once for both sides
 * (doc/FORMATS.md, "Compression"; doc/SECURITY.md).
 *
 * nnh5 writes and trusts exactly: shuffle (2), deflate (1), fletcher32 (3),
 * and the LZ4 (32004) and blosc (32001) plugins that Debian ships in
 * hdf5-filter-plugin and hdf5-filter-plugin-blosc-serial. The plugins are
 * loaded by nnh5 itself, once, from HDF5's own plugin folder (fixed at build
 * time, never HDF5_PLUGIN_PATH), and registered with H5Zregister: no other
 * code is loaded for a file, whatever filter it names.
 */
#ifndef NNH5_STORE_FILTERS_H
#define NNH5_STORE_FILTERS_H

#include "core/internal.h"
#include "nnh5/file.h"

#include <hdf5.h>

#define NNH5__FILTER_LZ4 32004
#define NNH5__FILTER_BLOSC 32001

/* Tensors smaller than this are stored contiguous even with a profile (nothing to gain). */
#define NNH5__COMPRESS_MIN_BYTES 1024
/* Chunks hold at most this many bytes (the policy allows chunks up to 1 MiB). */
#define NNH5__CHUNK_BYTES (UINT64_C(1) << 20)

/*
 * true if the plugin filter id (NNH5__FILTER_LZ4, NNH5__FILTER_BLOSC) is
 * registered: loaded from HDF5's plugin folder on first use. Thread-safe.
 */
bool nnh5__filter_plugin_ready(H5Z_filter_t id);

/*
 * Unregister the plugin filters and never load them again in this process:
 * what a machine without the plugins does (tests only).
 */
void nnh5__filters_forget_plugins(void);

/*
 * The dataset creation list for a tensor of ndim dims and elsize bytes an
 * element under profile (NNH5_COMPRESSION_FAST, _ARCHIVE): chunked (each
 * chunk a run of whole rows, at most NNH5__CHUNK_BYTES), no fill, filters
 * marked optional. *out is -1 when the tensor is stored contiguous
 * (NNH5_COMPRESSION_NONE, a scalar, an empty or small tensor). Errors:
 * NNH5_ERR_HDF5 naming path.
 */
int nnh5__filters_dcpl(hid_t *out, int profile, size_t ndim, const hsize_t *dims,
		       size_t elsize, const char *path);

/*
 * The filters profile writes on this machine, e.g. "shuffle+lz4", or
 * "shuffle+deflate(1)" when the LZ4 plugin is not installed; "none".
 */
const char *nnh5__filters_of(int profile);

/*
 * The load policy's rule for one filter of a dataset: NULL when nnh5
 * trusts filter id with these parameters (and can decode it: a plugin
 * filter must be installed), else why not, and *status (NNH5_ERR_UNSAFE for
 * a filter or parameters nnh5 does not write, NNH5_ERR_TYPE for a trusted
 * plugin that is not installed).
 */
const char *nnh5__filter_problem(int *status, H5Z_filter_t id, size_t nelm, const unsigned *cd);

#endif /* NNH5_STORE_FILTERS_H */
