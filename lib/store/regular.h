/*
 * lib/store/regular.h - the rule that a file read by path is a regular file
 * (doc/SECURITY.md, "Only regular files"). A FIFO would block HDF5's open(2)
 * forever and a device would stream bytes; both are refused by what the path
 * names, before HDF5 touches it, and the file HDF5 then opened is checked to
 * be the one that was judged.
 */
#ifndef NNH5_REGULAR_H
#define NNH5_REGULAR_H

#include "core/internal.h"

#include <sys/types.h>

/* A regular file judged by nnh5__regular_open(): an open descriptor and its identity. */
typedef struct nnh5__regular {
	int fd;
	dev_t dev;
	ino_t ino;
} nnh5__regular;

/*
 * Refuse path unless it names a regular file (a symbolic link to one is
 * fine), without blocking: stat(2) first, so nothing else is even opened,
 * then open(2) with O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC and fstat
 * the descriptor, which must be the same regular file. what names the action
 * in messages ("open", "untrusted check"). On success r->fd is open: close it
 * with nnh5__regular_close(). Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_INVALID
 * (a folder, FIFO, device or socket: the message says which), NNH5_ERR_IO
 * (stat or open failed; replaced while being checked).
 */
int nnh5__regular_open(nnh5__regular *r, const char *path, const char *what);

/*
 * NNH5_OK if fd (HDF5's descriptor of the file it opened by the same path)
 * is the file r judged; NNH5_ERR_IO naming path when it was replaced in
 * between or fd is -1 (nothing to compare with).
 */
int nnh5__regular_same(const nnh5__regular *r, int fd, const char *path, const char *what);

/* Close r's descriptor; safe to call twice. */
void nnh5__regular_close(nnh5__regular *r);

#endif /* NNH5_REGULAR_H */
