/*
 * lib/file/resolve.h - what the walk (lib/file/walk.c) shares with name
 * resolution (lib/file/resolve.c) beyond lib/file/walk.h: the resolution
 * state and the two steps a walk takes at a member that is not a hard link.
 */
#ifndef NNH5_FILE_RESOLVE_H
#define NNH5_FILE_RESOLVE_H

#include "file/walk.h"

/* The longest path a walk or a resolution builds, with its NUL. */
#define NNH5__PATH_BYTES 4096

/* Resolution state: hops taken, soft links being followed, the first one for messages. */
struct nnh5__resolver {
	nnh5_file *f;
	const char *name; /* the name being resolved, as given */
	unsigned hops;
	struct {
		unsigned long fileno;
		haddr_t group;
		uint64_t name; /* a hash of the link's name */
	} stack[NNH5__MAX_HOPS + 1];
	char via[NNH5__PATH_BYTES + 64]; /* " (met resolving the soft link 'L' -> 'T')" or "" */
};

void nnh5__resolver_init(struct nnh5__resolver *r, nnh5_file *f);

/*
 * Follow the soft link name of group cur (cur_path; shown as path) to the
 * object it names, resolving its value one component at a time: *next is
 * the open object. Errors: those of nnh5__resolve().
 */
int nnh5__follow_soft(hid_t *next, struct nnh5__resolver *r, hid_t cur, const char *cur_path,
		      const char *name, const char *path, const H5L_info_t *li);

/*
 * The refusal of the external or user-defined link name in group gid
 * (shown as path): NNH5_ERR_UNSAFE naming the file and object it points to.
 */
int nnh5__refuse_link(struct nnh5__resolver *r, hid_t gid, const char *name, const char *path,
		      const H5L_info_t *li);

#endif /* NNH5_FILE_RESOLVE_H */
