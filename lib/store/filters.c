/*
 * lib/store/filters.c - compression profiles and the filters the load
 * policy trusts (filters.h). One table says what nnh5 writes; the policy's
 * rule accepts those filters with parameters inside the bounds nnh5 itself
 * uses, and nothing else.
 */
#include "store/filters.h"
#include "store/h5util.h"

#include <H5PLextern.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#ifndef NNH5_PLUGIN_DIR
#define NNH5_PLUGIN_DIR ""
#endif

/* ------------------------------------------------------------------ */
/* Plugins                                                             */

struct plugin {
	H5Z_filter_t id;
	const char *file; /* in HDF5's plugin folder */
	bool ready;
};

static struct plugin plugins[] = {
	{ NNH5__FILTER_LZ4, "libh5lz4.so", false },
	{ NNH5__FILTER_BLOSC, "libH5Zblosc.so", false },
};
static pthread_once_t plugins_once = PTHREAD_ONCE_INIT;

/* dlopen one plugin by its absolute path and register its filter class. */
static void load_plugin(struct plugin *pl)
{
	char path[4096];
	void *h;

	if (!*NNH5_PLUGIN_DIR)
		return;
	snprintf(path, sizeof path, "%s/%s", NNH5_PLUGIN_DIR, pl->file);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return;
	/* The two symbols every HDF5 plugin exports (H5PLextern.h). */
	H5PL_type_t (*type_fn)(void);
	const void *(*info_fn)(void);
	*(void **)&type_fn = dlsym(h, "H5PLget_plugin_type");
	*(void **)&info_fn = dlsym(h, "H5PLget_plugin_info");
	const H5Z_class2_t *cls = type_fn && info_fn && type_fn() == H5PL_TYPE_FILTER ? info_fn() : NULL;
	/* The handle stays open: the registered class points into the library. */
	if (cls && cls->id == pl->id && H5Zregister(cls) >= 0)
		pl->ready = true;
	else
		dlclose(h);
	H5Eclear2(H5E_DEFAULT);
}

static void load_plugins(void)
{
	for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++)
		load_plugin(&plugins[i]);
}

bool nnh5__filter_plugin_ready(H5Z_filter_t id)
{
	pthread_once(&plugins_once, load_plugins);
	for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++)
		if (plugins[i].id == id)
			return plugins[i].ready;
	return false;
}

void nnh5__filters_forget_plugins(void)
{
	pthread_once(&plugins_once, load_plugins);
	for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++) {
		if (plugins[i].ready)
			H5Zunregister(plugins[i].id);
		plugins[i].ready = false;
	}
	H5Eclear2(H5E_DEFAULT);
}

/* ------------------------------------------------------------------ */
/* Profiles                                                            */

/* blosc's parameters after its four reserved ones: level, shuffle, compressor. */
#define BLOSC_LEVEL 5
#define BLOSC_SHUFFLE 1    /* byte shuffle */
#define BLOSC_ZSTD 5       /* blosc's code for zstd */
#define DEFLATE_FAST 1
#define DEFLATE_ARCHIVE 6

/* What profile writes here: which plugin it uses, if installed. */
static H5Z_filter_t profile_plugin(int profile)
{
	H5Z_filter_t want = profile == NNH5_COMPRESSION_FAST ? NNH5__FILTER_LZ4 : NNH5__FILTER_BLOSC;
	return nnh5__filter_plugin_ready(want) ? want : -1;
}

const char *nnh5__filters_of(int profile)
{
	if (profile == NNH5_COMPRESSION_NONE)
		return "none";
	if (profile == NNH5_COMPRESSION_FAST)
		return profile_plugin(profile) >= 0 ? "shuffle+lz4" : "shuffle+deflate(1)";
	return profile_plugin(profile) >= 0 ? "blosc(zstd,5,shuffle)" : "shuffle+deflate(6)";
}

/* Chunks of whole rows: the last dimensions kept, one cut, the first ones 1. */
static void chunk_shape(hsize_t *chunk, size_t ndim, const hsize_t *dims, size_t elsize)
{
	hsize_t room = NNH5__CHUNK_BYTES / elsize;

	for (size_t i = ndim; i-- > 0;) {
		hsize_t d = dims[i] ? dims[i] : 1;
		if (d <= room) {
			chunk[i] = d;
			room /= d;
		} else {
			chunk[i] = room ? room : 1;
			room = 1;
		}
	}
}

int nnh5__filters_dcpl(hid_t *out, int profile, size_t ndim, const hsize_t *dims,
		       size_t elsize, const char *path)
{
	hsize_t chunk[H5S_MAX_RANK];
	uint64_t bytes = elsize;
	hid_t dcpl;
	herr_t st;

	*out = -1;
	for (size_t i = 0; i < ndim; i++)
		bytes *= dims[i];
	if (profile == NNH5_COMPRESSION_NONE || ndim == 0 || bytes < NNH5__COMPRESS_MIN_BYTES)
		return NNH5_OK;
	chunk_shape(chunk, ndim, dims, elsize);
	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset creation list", path);
	/* No fill: every chunk is written; no times: same content, same bytes. */
	st = H5Pset_chunk(dcpl, (int)ndim, chunk);
	if (st >= 0)
		st = H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
	if (st >= 0)
		st = H5Pset_obj_track_times(dcpl, false);
	/*
	 * Optional: a chunk a filter cannot shrink is stored as it is where the
	 * filter reports failure (blosc does), never failing the save.
	 */
	H5Z_filter_t plugin = profile_plugin(profile);
	if (st >= 0 && plugin == NNH5__FILTER_BLOSC) {
		const unsigned cd[7] = { 0, 0, 0, 0, BLOSC_LEVEL, BLOSC_SHUFFLE, BLOSC_ZSTD };
		st = H5Pset_filter(dcpl, NNH5__FILTER_BLOSC, H5Z_FLAG_OPTIONAL, 7, cd);
	} else if (st >= 0) {
		st = elsize > 1 ? H5Pset_filter(dcpl, H5Z_FILTER_SHUFFLE, H5Z_FLAG_OPTIONAL, 0, NULL) : 0;
		if (st >= 0 && plugin == NNH5__FILTER_LZ4) {
			st = H5Pset_filter(dcpl, NNH5__FILTER_LZ4, H5Z_FLAG_OPTIONAL, 0, NULL);
		} else if (st >= 0) {
			const unsigned level = profile == NNH5_COMPRESSION_FAST ? DEFLATE_FAST : DEFLATE_ARCHIVE;
			st = H5Pset_filter(dcpl, H5Z_FILTER_DEFLATE, H5Z_FLAG_OPTIONAL, 1, &level);
		}
	}
	if (st < 0) {
		H5Pclose(dcpl);
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot set up compression", path);
	}
	*out = dcpl;
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* What loads trust                                                    */

const char *nnh5__filter_problem(int *status, H5Z_filter_t id, size_t nelm, const unsigned *cd)
{
	*status = NNH5_ERR_UNSAFE;
	switch (id) {
	case H5Z_FILTER_SHUFFLE:
		/* HDF5 keeps the element size as its one parameter. */
		return nelm <= 1 ? NULL : "shuffle with unexpected parameters";
	case H5Z_FILTER_FLETCHER32:
		return nelm == 0 ? NULL : "fletcher32 with unexpected parameters";
	case H5Z_FILTER_DEFLATE:
		return nelm == 1 && cd[0] <= 9 ? NULL : "deflate with parameters outside 0..9";
	case NNH5__FILTER_LZ4:
		/* One optional parameter: the block size, at most 1 GiB as the plugin allows. */
		if (nelm > 1 || (nelm == 1 && cd[0] > (1u << 30)))
			return "LZ4 with parameters nnh5 does not write";
		break;
	case NNH5__FILTER_BLOSC:
		/*
		 * Four set by the filter (versions, element size, block size), then
		 * level 0..9, shuffle 0..2 and a compressor 0..5 (blosclz .. zstd).
		 */
		if (nelm > 7 || (nelm > 4 && cd[4] > 9) || (nelm > 5 && cd[5] > 2) ||
		    (nelm > 6 && cd[6] > 5))
			return "blosc with parameters nnh5 does not write";
		break;
	default:
		return "a filter nnh5 does not write (allowed: deflate, shuffle, fletcher32, "
		       "LZ4 32004, blosc 32001)";
	}
	if (!nnh5__filter_plugin_ready(id)) {
		*status = NNH5_ERR_TYPE;
		return id == NNH5__FILTER_LZ4
			       ? "LZ4 (32004), whose plugin is not installed (Debian: "
				 "hdf5-filter-plugin)"
			       : "blosc (32001), whose plugin is not installed (Debian: "
				 "hdf5-filter-plugin-blosc-serial)";
	}
	return NULL;
}
