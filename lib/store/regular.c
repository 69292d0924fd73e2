/*
 * lib/store/regular.c - refusing paths that are not regular files before
 * HDF5 opens them (lib/store/regular.h).
 */
#include "store/regular.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a non-regular file is, for the refusal. */
static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a folder";
	if (S_ISFIFO(mode))
		return "a FIFO (named pipe)";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

static int refuse(const char *what, const char *path, mode_t mode)
{
	return nnh5__error(NNH5_ERR_INVALID, "%s '%s': is %s, not a regular file: refused", what,
			   path, file_kind(mode));
}

int nnh5__regular_open(nnh5__regular *r, const char *path, const char *what)
{
	struct stat st, fst;

	r->fd = -1;
	/* stat first: a device or FIFO is refused without opening it (opening can act on it). */
	if (stat(path, &st) < 0)
		return nnh5__error(errno == ENOENT ? NNH5_ERR_NOT_FOUND : NNH5_ERR_IO, "%s '%s': %s",
				   what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return refuse(what, path, st.st_mode);
	/* O_NONBLOCK: should a FIFO have taken the file's place since, open returns at once. */
	r->fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (r->fd < 0)
		return nnh5__error(errno == ENOENT ? NNH5_ERR_NOT_FOUND : NNH5_ERR_IO, "%s '%s': %s",
				   what, path, strerror(errno));
	if (fstat(r->fd, &fst) < 0) {
		int err = errno;
		nnh5__regular_close(r);
		return nnh5__error(NNH5_ERR_IO, "%s '%s': %s", what, path, strerror(err));
	}
	if (!S_ISREG(fst.st_mode)) {
		nnh5__regular_close(r);
		return refuse(what, path, fst.st_mode);
	}
	if (fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		nnh5__regular_close(r);
		return nnh5__error(NNH5_ERR_IO, "%s '%s': the file was replaced while being opened",
				   what, path);
	}
	r->dev = fst.st_dev;
	r->ino = fst.st_ino;
	return NNH5_OK;
}

int nnh5__regular_same(const nnh5__regular *r, int fd, const char *path, const char *what)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return nnh5__error(NNH5_ERR_IO, "%s '%s': cannot check which file HDF5 opened", what,
				   path);
	if (st.st_dev != r->dev || st.st_ino != r->ino)
		return nnh5__error(NNH5_ERR_IO, "%s '%s': the file was replaced while being opened",
				   what, path);
	return NNH5_OK;
}

void nnh5__regular_close(nnh5__regular *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}
