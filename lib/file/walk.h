/*
 * lib/file/walk.h - the one walk of the library (lib/file/walk.c, names
 * resolved by lib/file/resolve.c): how every
 * reader reaches objects by name, and how it visits a group's members.
 *
 * Every link is resolved here, one path component at a time, before HDF5
 * follows anything: hard links are opened by address, soft links' values
 * are resolved the same way (absolute from the root, relative from the
 * group holding the link), external and user-defined links are refused
 * unless the open options allow external links. Each object met is judged
 * by its address, so a second name of an object (an alias) is seen; each
 * dataset is described once (nnh5__dataset) and judged and counted by the
 * load policy before any reader touches its data.
 */
#ifndef NNH5_FILE_WALK_H
#define NNH5_FILE_WALK_H

#include "file/file_internal.h"
#include "nnh5/walk.h"

/* An object a name resolves to, open. */
typedef struct nnh5__obj {
	hid_t id; /* owned: H5Oclose */
	H5O_type_t type;
	unsigned long fileno;
	haddr_t addr;
} nnh5__obj;

/*
 * The link access property list of every by-name open in f: it refuses
 * external links unless f's options allow them (defence in depth: the walk
 * refuses them before HDF5 could follow one). Borrowed.
 */
hid_t nnh5__file_lapl(nnh5_file *f);

/*
 * Resolve name ("" or "/" for the root; a path from the root otherwise)
 * as described above and open the object it names. Errors: NNH5_ERR_INVALID
 * (a malformed name), NNH5_ERR_NOT_FOUND (a component, or a soft link's
 * target, is missing), NNH5_ERR_UNSAFE (an external or user-defined link on
 * the way, a soft link to a group), NNH5_ERR_FORMAT (a cycle of soft links,
 * more than NNH5__MAX_HOPS of them, an object that cannot be opened).
 */
int nnh5__resolve(nnh5__obj *out, nnh5_file *f, const char *name);

/* Soft links followed to resolve one name at most (HDF5's own limit is 16). */
#define NNH5__MAX_HOPS 16

/* One entry of a walk, with what readers need beyond the public entry. */
typedef struct nnh5__item {
	const nnh5_entry *e;
	hid_t id;              /* the object, open during the callback (-1 for refusals) */
	nnh5__dataset *ds;     /* TENSOR and DATASET entries: described; a TENSOR is judged and counted */
	const char *rel;       /* the path below the start ("" for the start) */
	const char *display;   /* how messages name it: below the start as the caller named it */
} nnh5__item;

typedef int (*nnh5__walk_fn)(const nnh5__item *it, void *ctx);

typedef struct nnh5__walk_options {
	bool reserved;        /* visit nnh5_ links and what lies below them */
	bool keep_going;      /* refusals become NNH5_ENTRY_REFUSED entries */
	bool kinds;           /* read each group's nnh5_kind */
	bool checksums;       /* read each dataset's checksum attribute */
	bool shallow;         /* the start's members only, not below */
	bool materialise;     /* count each tensor against the load limits, as a load does */
	/*
	 * The loader gives an alias (e->alias_of) back tied to the tensor of
	 * its first name instead of reading it again: it counts nothing more.
	 */
	bool tie_aliases;
	H5O_type_t expect;    /* the start must be this (H5O_TYPE_UNKNOWN: anything) */
	nnh5__policy *policy; /* what limits and counts (NULL: f's own) */
} nnh5__walk_options;

/*
 * Walk the object at name and, for a group, everything below it, calling
 * fn for each entry in pre-order (nnh5/walk.h says what entries are).
 * Returns NNH5_OK, fn's non-zero return, or the status of the refusal that
 * stopped the walk (of the start itself, or of anything without
 * keep_going).
 */
int nnh5__walk(nnh5_file *f, const char *name, const nnh5__walk_options *o, nnh5__walk_fn fn,
	       void *ctx);

/*
 * The refusal a load gives a dataset that is not a tensor (NNH5_ENTRY_DATASET):
 * NNH5_ERR_TYPE naming its type, NNH5_ERR_FORMAT for a null dataspace.
 */
int nnh5__dataset_not_tensor(nnh5_file *f, const nnh5__dataset *ds, const char *display);

/*
 * The group gid's nnh5_kind (NNH5_KIND_GROUP when absent; NNH5_KIND_TENSOR
 * for the root of a one-tensor file); display names it in messages.
 */
int nnh5__group_kind(nnh5_kind *out, nnh5_file *f, hid_t gid, const char *display);

#endif /* NNH5_FILE_WALK_H */
