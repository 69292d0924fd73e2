/*
 * lib/store/policy.h - the load policy: what a reader checks about a file before
 * it reads data from it (README, "Safe with files from strangers").
 *
 * Every dataset is described once (nnh5__policy_describe), judged
 * (nnh5__policy_judge) and counted (nnh5__policy_count) before a byte of
 * its data is read: storage that reads other files (external raw storage,
 * virtual datasets), filters outside the allowlist, logical sizes that
 * overflow or exceed the caps, compressed data that expands too far,
 * contiguous data that lies outside the file or overlaps data already read
 * through the same handle. The description is what readers then use (the
 * reader and the lazy map). Links are resolved by the walk
 * (lib/file/walk.c), which counts what it visits against the same limits.
 */
#ifndef NNH5_POLICY_H
#define NNH5_POLICY_H

#include "core/internal.h"
#include "nnh5/file.h"

#include <hdf5.h>

/* Defaults of the open options' limits (include/nnh5/file.h documents them). */
#define NNH5__DEFAULT_MAX_TENSOR_BYTES (UINT64_C(16) << 30) /* 16 GiB */
#define NNH5__DEFAULT_MAX_LOAD_BYTES (UINT64_C(64) << 30)   /* 64 GiB */
#define NNH5__DEFAULT_MAX_RATIO 100
#define NNH5__DEFAULT_MAX_GROUPS 10000
#define NNH5__DEFAULT_MAX_TENSORS 100000
#define NNH5__DEFAULT_MAX_DEPTH 64
#define NNH5__DEFAULT_MAX_NAME 1024
/* The largest max_depth accepted (walks recurse once per level). */
#define NNH5__MAX_DEPTH_LIMIT 256
/* Compressed chunks may always expand to this, whatever the ratio says. */
#define NNH5__RATIO_SLACK (UINT64_C(64) << 10)

/*
 * A contiguous extent [start, end) read through a handle (one per tensor
 * of a load, kept to its end: no more than the overlap check reads).
 */
struct nnh5__extent {
	uint64_t start, end;
};

/* A dataset already read through a handle (re-reads count once). */
struct nnh5__seen {
	unsigned long fileno;
	haddr_t obj;
};

/* The policy of one open file: its limits and what it has read so far. */
typedef struct nnh5__policy {
	bool allow_external;
	bool allow_filter_plugins;
	bool copy_aliases;
	uint64_t max_tensor_bytes;
	uint64_t max_load_bytes;
	uint64_t max_ratio;
	uint64_t max_groups;
	uint64_t max_tensors;
	uint64_t max_depth;
	uint64_t max_name;
	/* State: the file's size and HDF5 file number, bytes read, extents. */
	uint64_t file_size;
	unsigned long fileno;
	uint64_t loaded_bytes;
	struct nnh5__seen *seen;
	size_t n_seen, cap_seen;
	struct nnh5__extent *ext;
	size_t n_ext, cap_ext;
} nnh5__policy;

/*
 * The ratio rule, for loads and for saves: may logical bytes be made from
 * stored ones (chunked, compressed or never-written data) under max_ratio?
 * logical <= stored x max_ratio + NNH5__RATIO_SLACK. A save checks its
 * compressed tensors against the default ratio, so that every file nnh5
 * writes loads with the default options.
 */
bool nnh5__policy_ratio_ok(uint64_t logical, uint64_t stored, uint64_t max_ratio);

/*
 * Fill p from the open options (NULL: defaults); zero limits mean defaults.
 * Returns NNH5_ERR_INVALID for nonsensical values (what names the file).
 */
int nnh5__policy_init(nnh5__policy *p, const nnh5_open_options *opts, const char *what);
/* Learn the size and file number of the opened file fid. */
int nnh5__policy_attach(nnh5__policy *p, hid_t fid, const char *path);
void nnh5__policy_free(nnh5__policy *p);

/*
 * One dataset, described once (nnh5__policy_describe): what the policy
 * judges and what a reader then uses, so nothing is fetched twice.
 */
typedef struct nnh5__storage {
	unsigned long fileno;   /* identity: (fileno, addr) */
	haddr_t addr;
	hid_t type;             /* the stored datatype (owned: nnh5__storage_release) */
	H5S_class_t space;      /* H5S_SCALAR, H5S_SIMPLE, H5S_NULL; H5S_NO_CLASS if unreadable */
	int ndim;               /* -1 if unreadable */
	hsize_t dims[H5S_MAX_RANK];
	size_t elsize;
	H5D_layout_t layout;    /* H5D_COMPACT, H5D_CONTIGUOUS, H5D_CHUNKED, H5D_VIRTUAL */
	int n_external;         /* external raw storage files (-1 unreadable) */
	int nfilters;           /* -1 unreadable */
	H5Z_filter_t bad_filter; /* the first filter nnh5 does not trust, or -2 */
	const char *bad_filter_why; /* why (static), and the status of its refusal */
	int bad_filter_status;
	int chunk_ndim;         /* chunked: the chunk's rank (-1 unreadable) */
	hsize_t chunk[H5S_MAX_RANK];
	haddr_t offset;         /* contiguous: H5Dget_offset(), where the data starts; else HADDR_UNDEF */
	uint64_t storage_bytes; /* bytes stored in the file (H5Dget_storage_size) */
	uint64_t logical_bytes; /* elements x element size, as declared (after judging) */
	uint64_t numel;
	bool in_main_file;      /* false for a dataset reached through an allowed external link */
	bool external;          /* external raw storage (only when allowed) */
	bool variable;          /* variable-length or reference elements (never loaded as tensors) */
	bool reread;            /* the same dataset was counted before through this handle */
} nnh5__storage;

/*
 * Describe the open dataset did, known by (fileno, addr), in one pass over
 * its creation properties, type and dataspace: no judgement yet. On success
 * free with nnh5__storage_release(). Errors: NNH5_ERR_FORMAT (no creation
 * properties or type: damaged).
 */
int nnh5__policy_describe(nnh5__storage *out, const nnh5__policy *p, const char *path,
			  hid_t did, unsigned long fileno, haddr_t addr, const char *display);
void nnh5__storage_release(nnh5__storage *s);

/*
 * Judge a described dataset against p before any of its data is read:
 * NNH5_ERR_UNSAFE (external storage, virtual dataset, a filter outside the
 * allowlist, compressed beyond the ratio), NNH5_ERR_OVERFLOW (size
 * overflows or exceeds max_tensor_bytes, chunks too large),
 * NNH5_ERR_FORMAT (data outside the file, stored size differs from the
 * declared size, unreadable shape or type). Fills logical_bytes, numel.
 */
int nnh5__policy_judge(nnh5__storage *s, const nnh5__policy *p, const char *path,
		       const char *display);

/*
 * Count a judged dataset that a load is about to materialise.
 * alias_of NULL: the first time this load meets the object; its bytes
 * count against max_load_bytes unless this handle counted it before
 * (reread), and its contiguous extent must not overlap another's.
 * alias_of set (the name under which this load met it first) and tied:
 * the load gives it back tied to the first name (one buffer), so nothing
 * more is counted. alias_of set and not tied: it is materialised again, so
 * it counts again, against max_load_bytes and against *alias_bytes, the
 * copies of aliases in this load, which may not exceed the file's size.
 * Errors: NNH5_ERR_OVERFLOW, NNH5_ERR_UNSAFE (overlap), NNH5_ERR_NOMEM.
 */
int nnh5__policy_count(nnh5__storage *s, nnh5__policy *p, const char *path, const char *display,
		       const char *alias_of, bool tied, uint64_t *alias_bytes);

/*
 * The limits on what a walk visits below its start (named start in
 * messages): one more dataset against max_tensors (*datasets counts them),
 * one more group at depth (the start is 0) against max_depth and
 * max_groups (*groups counts them; display names it). Errors:
 * NNH5_ERR_OVERFLOW.
 */
int nnh5__policy_count_dataset(const nnh5__policy *p, uint64_t *datasets, const char *path,
				const char *start);
int nnh5__policy_count_group(const nnh5__policy *p, uint64_t *groups, uint64_t depth,
			     const char *path, const char *start, const char *display);

/*
 * A policy with p's limits and file but nothing counted yet (walks that
 * report what a load would do, without counting for this handle). Free
 * with nnh5__policy_free().
 */
void nnh5__policy_scratch(nnh5__policy *out, const nnh5__policy *p);

/*
 * Turn HDF5's filter plugin loading off (process-wide) for a read, unless
 * the policy allows plugins; restore puts back the state found.
 */
typedef struct nnh5__plugin_guard {
	unsigned int saved;
	bool changed;
} nnh5__plugin_guard;
void nnh5__policy_plugins_off(const nnh5__policy *p, nnh5__plugin_guard *g);
void nnh5__policy_plugins_restore(const nnh5__plugin_guard *g);

/*
 * The rule for names, written once for both sides: a link or object name is
 * at most max bytes, valid UTF-8, without control characters (0x00-0x1f,
 * 0x7f). Loading refuses a name that breaks it, and saving refuses to write
 * one (with NNH5__DEFAULT_MAX_NAME), so whatever a save accepts, a load with
 * the default policy returns unchanged. NULL when name obeys the rule, else
 * why not ("made with control characters", ...), and *status the error code.
 */
const char *nnh5__name_problem(int *status, const char *name, uint64_t max);

/*
 * A link or object name met in a file, checked against nnh5__name_problem()
 * with the policy's max_name. Errors: NNH5_ERR_FORMAT, NNH5_ERR_OVERFLOW
 * naming it (escaped).
 */
int nnh5__policy_check_name(const nnh5__policy *p, const char *path, const char *parent,
			    const char *name);

/* s with control characters, backslashes and invalid UTF-8 as \xNN, cut to fit n. */
const char *nnh5__escape(char *buf, size_t n, const char *s);

#endif /* NNH5_POLICY_H */
