/*
 * nnh5/walk.h - a read-only walk of a file's groups and datasets, through
 * the load policy.
 *
 * nnh5_file_walk() is the one walk of the library: the loaders
 * (nnh5_file_read_dict() and friends), the lazy map, nnh5_untrusted_check()
 * and the nnh5 tool all see a file through it, so what `nnh5 ls` lists and
 * `nnh5 verify` accepts is exactly what a load sees and accepts.
 *
 * The walk resolves every link itself, one path component at a time, before
 * HDF5 follows anything: a soft link's target path is resolved the same way
 * (and may not cross an external link unless the open options allow
 * external links), so no other file is ever opened by a walk. Each object is
 * judged by its address: an object reached under a second name (a hard
 * link, or a soft link to an object already met) is reported with alias_of
 * set. A walk counts what a load of the same object would materialise, so a
 * dataset under two names counts twice against max_load_bytes and
 * max_tensors, and aliases past the caps are refused here as they are by
 * loads (doc/FORMAT.md, "Aliases"); it counts nothing for the handle itself.
 *
 * Entries come in pre-order: a group, then its members in stored order
 * (creation order when the group tracks it, else by name). Datasets are
 * described, not read: a walk reads no tensor data and verifies no
 * checksum; nnh5_file_read_tensor() on an entry's path does that.
 */
#ifndef NNH5_WALK_H
#define NNH5_WALK_H

#include "common.h"
#include "dtype.h"
#include "file.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an entry is. Pinned values. */
typedef enum nnh5_entry_type {
	NNH5_ENTRY_GROUP = 0,    /* a group; its members follow */
	NNH5_ENTRY_TENSOR = 1,   /* a dataset nnh5 loads as a tensor (dtype, shape) */
	NNH5_ENTRY_DATASET = 2,  /* a dataset nnh5 does not load as a tensor: type_desc says why */
	NNH5_ENTRY_DATATYPE = 3, /* a committed (named) datatype */
	NNH5_ENTRY_REFUSED = 4,  /* refused by the load policy or unreadable: status, message */
} nnh5_entry_type;

/* The link that names an entry. Pinned values. */
typedef enum nnh5_link_type {
	NNH5_LINK_HARD = 0,
	NNH5_LINK_SOFT = 1,     /* link_target: the target path as stored */
	NNH5_LINK_EXTERNAL = 2, /* link_target: "FILE:PATH" as stored; never followed unless allowed */
	NNH5_LINK_USER = 3,     /* a user-defined link class: never followed */
} nnh5_link_type;

/* How a dataset's data is stored. Pinned values. */
typedef enum nnh5_layout {
	NNH5_LAYOUT_COMPACT = 0,    /* inside the object header */
	NNH5_LAYOUT_CONTIGUOUS = 1, /* one block of the file */
	NNH5_LAYOUT_CHUNKED = 2,    /* chunks, possibly filtered */
	NNH5_LAYOUT_VIRTUAL = 3,    /* a virtual dataset (reads other datasets or files) */
	NNH5_LAYOUT_EXTERNAL = 4,   /* raw data in external files */
} nnh5_layout;

/*
 * One object or link met by a walk. Every pointer is borrowed: valid during
 * the callback only. Strings are raw bytes from the file (escape them
 * before printing; nnh5 loads refuse names with control characters or
 * invalid UTF-8, and such entries come as NNH5_ENTRY_REFUSED).
 */
typedef struct nnh5_entry {
	const char *path;        /* absolute: "/" for the root, "/layer/weight" */
	const char *name;        /* the last component; "/" for the root */
	size_t depth;            /* 0 for the object the walk started at */
	nnh5_entry_type type;
	nnh5_link_type link;     /* the link that names it (NNH5_LINK_HARD for the start) */
	const char *link_target; /* NULL for hard links */
	const char *alias_of;    /* path under which this walk met the object first, or NULL */
	bool reserved;           /* its name or an ancestor's starts with "nnh5_" */

	/* NNH5_ENTRY_GROUP: the nnh5_kind attribute; NNH5_KIND_GROUP when absent. */
	nnh5_kind kind;

	/* NNH5_ENTRY_TENSOR and NNH5_ENTRY_DATASET: */
	nnh5_dtype dtype;        /* NNH5_ENTRY_TENSOR only */
	const char *type_desc;   /* "float32", or what the HDF5 type is ("string (variable-length)") */
	bool null_space;         /* a null dataspace: no shape */
	size_t ndim;
	const int64_t *shape;    /* ndim values */
	uint64_t numel;
	uint64_t nbytes;         /* logical bytes: numel x element size */
	uint64_t stored_bytes;   /* bytes the file stores for it */
	nnh5_layout layout;
	int nfilters;
	bool has_checksum;       /* the nnh5_xxh3 attribute is present (not verified) */
	uint64_t checksum;

	/* NNH5_ENTRY_REFUSED: the status and message a load would fail with. */
	int status;
	const char *message;
} nnh5_entry;

/* Called once per entry; a non-zero return stops the walk and is returned. */
typedef int (*nnh5_walk_fn)(const nnh5_entry *entry, void *ctx);

#define NNH5_WALK_OPTIONS_VERSION 1

typedef struct nnh5_walk_options {
	unsigned int version; /* NNH5_WALK_OPTIONS_VERSION */
	/* Also visit the format's own "nnh5_*" links (probes, key lists' owners). */
	bool reserved;
	/*
	 * Report a refused object as an NNH5_ENTRY_REFUSED entry and go on
	 * (what `nnh5 ls` and `nnh5 verify` want). Off: the walk stops at the
	 * first refusal and returns its status, as a load does.
	 */
	bool keep_going;
} nnh5_walk_options;

#define NNH5_WALK_OPTIONS_INIT { NNH5_WALK_OPTIONS_VERSION, false, false }

/*
 * Walk the object at path (a group or a dataset; "" or "/" for the root) of
 * f, which must be open for reading, calling fn for it and, for a group,
 * for everything below it, under f's open options (limits, external links,
 * filters). opts NULL means defaults.
 *
 * Returns NNH5_OK when the walk finished; fn's non-zero return when fn
 * stopped it; otherwise the status of the failure, with a message naming the
 * file and the object: NNH5_ERR_NOT_FOUND (path does not exist),
 * NNH5_ERR_UNSAFE (a link to another file, a soft link that would cross
 * one, a virtual dataset or external storage, a filter outside the
 * allowlist), NNH5_ERR_OVERFLOW (limits: depth, groups, tensors, sizes),
 * NNH5_ERR_FORMAT (damaged or unreadable objects, bad names, cycles),
 * NNH5_ERR_INVALID (f not open for reading, options version), NNH5_ERR_NOMEM.
 * With keep_going, refusals of single objects become entries and the walk
 * goes on; failures of the whole walk (out of memory, the start missing)
 * still end it.
 */
NNH5_API int nnh5_file_walk(nnh5_file *f, const char *path, const nnh5_walk_options *opts,
			    nnh5_walk_fn fn, void *ctx);

/* "group", "tensor", "dataset", "datatype", "refused"; "unknown" for others. */
NNH5_API const char *nnh5_entry_type_name(int type);
/* "hard", "soft", "external", "user"; "unknown" for others. */
NNH5_API const char *nnh5_link_type_name(int type);
/* "compact", "contiguous", "chunked", "virtual", "external"; "unknown" for others. */
NNH5_API const char *nnh5_layout_name(int layout);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_WALK_H */
