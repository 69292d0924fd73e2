/*
 * lib/store/atomic.c - temporary file, fsync, rename, fsync of the folder.
 *
 * HDF5 never calls fsync, and a process killed while HDF5 writes a file in
 * place leaves it torn (see doc/FORMAT.md, "Durability"). So nnh5 never
 * writes the target itself.
 */
#include "store/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The folder part of path ("." when there is none), newly allocated. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d;

	if (!slash)
		return nnh5__strdup(".");
	if (slash == path)
		return nnh5__strdup("/");
	d = nnh5__malloc((size_t)(slash - path) + 1);
	if (d) {
		memcpy(d, path, (size_t)(slash - path));
		d[slash - path] = '\0';
	}
	return d;
}

int nnh5__atomic_begin(nnh5__atomic *a, const char *target, bool durable)
{
	const char *slash = strrchr(target, '/');
	const char *base = slash ? slash + 1 : target;
	size_t dirlen = slash ? (size_t)(slash - target) + 1 : 0;
	size_t n;
	int fd;

	a->target = NULL;
	a->tmp = NULL;
	a->durable = durable;
	if (*base == '\0')
		return nnh5__error(NNH5_ERR_INVALID, "save '%s': the path names a folder", target);
	n = dirlen + 1 + strlen(base) + sizeof NNH5__TMP_MARK + 6;
	a->target = nnh5__strdup(target);
	a->tmp = nnh5__malloc(n);
	if (!a->target || !a->tmp) {
		nnh5__free(a->target);
		nnh5__free(a->tmp);
		a->target = a->tmp = NULL;
		return nnh5__nomem();
	}
	snprintf(a->tmp, n, "%.*s.%s" NNH5__TMP_MARK "XXXXXX", (int)dirlen, target, base);
	fd = mkstemp(a->tmp);
	if (fd < 0) {
		int err = errno;
		nnh5__free(a->target);
		nnh5__free(a->tmp);
		a->target = a->tmp = NULL;
		return nnh5__error(NNH5_ERR_IO, "save '%s': cannot create a temporary file: %s",
				   target, strerror(err));
	}
	/* mkstemp makes it 0600; saved files get the usual permissions. */
	mode_t mask = umask(0);
	umask(mask);
	fchmod(fd, 0666 & ~mask);
	close(fd);
	return NNH5_OK;
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	if (rc < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return close(fd);
}

int nnh5__atomic_commit(nnh5__atomic *a)
{
	char *dir;
	int rc = NNH5_OK;

	if (a->durable && fsync_path(a->tmp, O_RDONLY) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': fsync of the temporary file failed: %s",
				 a->target, strerror(errno));
		goto fail;
	}
	if (rename(a->tmp, a->target) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': rename over the target failed: %s",
				 a->target, strerror(errno));
		goto fail;
	}
	nnh5__free(a->tmp);
	a->tmp = NULL;
	if (a->durable) {
		dir = dir_of(a->target);
		if (!dir) {
			rc = nnh5__nomem();
		} else {
			/* The rename is only durable once the folder entry is on disk. */
			if (fsync_path(dir, O_RDONLY | O_DIRECTORY) < 0)
				rc = nnh5__error(NNH5_ERR_IO,
						 "save '%s': fsync of the folder '%s' failed: %s",
						 a->target, dir, strerror(errno));
			nnh5__free(dir);
		}
	}
	nnh5__free(a->target);
	a->target = NULL;
	return rc;
fail:
	nnh5__atomic_abort(a);
	return rc;
}

void nnh5__atomic_abort(nnh5__atomic *a)
{
	if (a->tmp) {
		unlink(a->tmp);
		nnh5__free(a->tmp);
		a->tmp = NULL;
	}
	nnh5__free(a->target);
	a->target = NULL;
}
