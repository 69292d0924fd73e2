/*
 * lib/store/atomic.c - temporary file, fsync, rename, fsync of the folder.
 *
 * HDF5 never calls fsync, and a process killed while HDF5 writes a file in
 * place leaves it torn (see doc/FORMAT.md, "Durability"). So nnh5 never
 * writes the target itself. The rules for what may be replaced, and what the
 * new file inherits, are in atomic.h and doc/SAVING.md.
 */
#define _GNU_SOURCE /* sync_file_range() */
#include "store/atomic.h"
#include "store/regular.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Links followed before giving up, as the kernel does (ELOOP). */
#define MAX_LINKS 40

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

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/*
 * Follow the symbolic links at path (not those of its folders: the kernel
 * follows those, and the temporary file lands in the same folder either
 * way). *out is the path of the file a save replaces or creates; *st is its
 * lstat(), st->st_mode 0 when it does not exist yet.
 */
static int follow_links(char **out, struct stat *st, const char *shown)
{
	char *cur = nnh5__strdup(shown);

	*out = NULL;
	if (!cur)
		return nnh5__nomem();
	for (int hops = 0;; hops++) {
		char link[PATH_MAX];
		ssize_t len;

		if (lstat(cur, st) < 0) {
			int err = errno;
			if (err == ENOENT) {
				memset(st, 0, sizeof *st);
				*out = cur;
				return NNH5_OK;
			}
			nnh5__error(NNH5_ERR_IO, "save '%s': cannot examine '%s': %s", shown, cur,
				    strerror(err));
			nnh5__free(cur);
			return NNH5_ERR_IO;
		}
		if (!S_ISLNK(st->st_mode)) {
			*out = cur;
			return NNH5_OK;
		}
		len = hops < MAX_LINKS ? readlink(cur, link, sizeof link - 1) : -1;
		if (len <= 0) {
			int err = hops < MAX_LINKS ? errno : ELOOP;
			nnh5__error(NNH5_ERR_IO, "save '%s': cannot follow the link '%s': %s", shown,
				    cur, len == 0 ? "empty link" : strerror(err));
			nnh5__free(cur);
			return NNH5_ERR_IO;
		}
		link[len] = '\0';
		char *next;
		if (link[0] == '/') {
			next = nnh5__strdup(link);
		} else {
			/* A relative link is relative to the folder holding it. */
			char *dir = dir_of(cur);
			size_t n = dir ? strlen(dir) + (size_t)len + 2 : 0;
			next = dir ? nnh5__malloc(n) : NULL;
			if (next)
				snprintf(next, n, "%s/%s", strcmp(dir, "/") ? dir : "", link);
			nnh5__free(dir);
		}
		nnh5__free(cur);
		if (!next)
			return nnh5__nomem();
		cur = next;
	}
}

/* May the target be replaced? Records what the new file inherits. */
static int check_target(nnh5__atomic *a, const struct stat *st)
{
	if (st->st_mode == 0)
		return NNH5_OK; /* a new file */
	if (!S_ISREG(st->st_mode))
		return nnh5__error(NNH5_ERR_INVALID,
				   "save '%s': '%s' is %s: only regular files are replaced", a->shown,
				   a->target, nnh5__file_kind(st->st_mode));
	/*
	 * A save must not do what writing in place could not: replace a file
	 * the process may not write (its own read-only file, say), even though
	 * the folder would let it rename over it. AT_EACCESS: the effective
	 * ids decide, as for open().
	 */
	if (faccessat(AT_FDCWD, a->target, W_OK, AT_EACCESS) < 0) {
		int err = errno;
		return nnh5__error(NNH5_ERR_IO,
				   "save '%s': '%s' (mode %04o) is not writable by this process (%s): "
				   "refused, the file is left as it is",
				   a->shown, a->target, (unsigned)(st->st_mode & 07777), strerror(err));
	}
	a->existed = true;
	a->mode = st->st_mode & 07777;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	return NNH5_OK;
}

/*
 * The process umask, read without changing it (umask() is process-wide:
 * umask(0) then umask(old) lets another thread create world-writable files
 * in between). -1 when /proc does not say.
 */
static int current_umask(void)
{
	char line[128];
	int mask = -1;
	FILE *fp = fopen("/proc/self/status", "re");

	if (!fp)
		return -1;
	while (fgets(line, sizeof line, fp))
		if (strncmp(line, "Umask:", 6) == 0) {
			char *end;
			long v = strtol(line + 6, &end, 8);
			if (end != line + 6 && v >= 0 && v <= 0777)
				mask = (int)v;
			break;
		}
	fclose(fp);
	return mask;
}

/*
 * Would a file created anew (by us, 0666 less the umask) let someone read or
 * write it whom the replaced file does not? Then the temporary file must get
 * the old owner and mode before it holds a byte, so the placeholder (0600,
 * ours) is given them and kept.
 */
static bool wider_when_created(const nnh5__atomic *a)
{
	int mask = current_umask();

	if (mask < 0)
		return true;
	if (a->uid != geteuid() || a->gid != getegid())
		return true;
	return ((0666 & ~(mode_t)mask) & ~a->mode) != 0;
}

/* Give the placeholder at fd the replaced file's owner and mode (see wider_when_created()). */
static int give_old_owner_and_mode(nnh5__atomic *a, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return nnh5__error(NNH5_ERR_IO, "save '%s': cannot examine the temporary file: %s",
				   a->shown, strerror(errno));
	/*
	 * The owner first (changing it clears set-id bits). A process that may
	 * not give the file away (not root) keeps what it can: the group when
	 * it belongs to it, else its own ids; doc/SAVING.md says so.
	 */
	if ((st.st_uid != a->uid || st.st_gid != a->gid) && fchown(fd, a->uid, a->gid) < 0 &&
	    st.st_gid != a->gid)
		(void)fchown(fd, (uid_t)-1, a->gid);
	if (fchmod(fd, a->mode) < 0)
		return nnh5__error(NNH5_ERR_IO, "save '%s': cannot give the new file mode %04o: %s",
				   a->shown, (unsigned)a->mode, strerror(errno));
	return NNH5_OK;
}

static void release(nnh5__atomic *a)
{
	nnh5__free(a->shown);
	nnh5__free(a->target);
	nnh5__free(a->tmp);
	a->shown = a->target = a->tmp = NULL;
}

int nnh5__atomic_begin(nnh5__atomic *a, const char *target, bool durable)
{
	struct stat st;
	const char *base;
	size_t dirlen, baselen, n;
	int fd, rc;

	memset(a, 0, sizeof *a);
	a->durable = durable;
	if (*base_of(target) == '\0')
		return nnh5__error(NNH5_ERR_INVALID, "save '%s': the path names a folder", target);
	a->shown = nnh5__strdup(target);
	if (!a->shown)
		return nnh5__nomem();
	rc = follow_links(&a->target, &st, target);
	if (!rc && *base_of(a->target) == '\0')
		rc = nnh5__error(NNH5_ERR_INVALID, "save '%s': the link leads to a folder ('%s')",
				 target, a->target);
	if (!rc)
		rc = check_target(a, &st);
	if (rc) {
		release(a);
		return rc;
	}
	base = base_of(a->target);
	dirlen = (size_t)(base - a->target);
	baselen = strlen(base);
	if (baselen > NNH5__TMP_BASE_MAX)
		baselen = NNH5__TMP_BASE_MAX; /* the name stays under NAME_MAX */
	n = dirlen + 1 + baselen + sizeof NNH5__TMP_MARK + 6;
	a->tmp = nnh5__malloc(n);
	if (!a->tmp) {
		release(a);
		return nnh5__nomem();
	}
	snprintf(a->tmp, n, "%.*s.%.*s" NNH5__TMP_MARK "XXXXXX", (int)dirlen, a->target,
		 (int)baselen, base);
	fd = mkstemp(a->tmp);
	if (fd < 0) {
		int err = errno;
		release(a);
		return nnh5__error(NNH5_ERR_IO, "save '%s': cannot create a temporary file: %s",
				   target, strerror(err));
	}
	if (a->existed && wider_when_created(a)) {
		rc = give_old_owner_and_mode(a, fd);
		a->prepared = rc == NNH5_OK;
	}
	close(fd);
	if (rc)
		nnh5__atomic_abort(a);
	return rc;
}

int nnh5__atomic_adopt(nnh5__atomic *a, int fd)
{
	if (!a->existed || a->prepared)
		return NNH5_OK;
	return give_old_owner_and_mode(a, fd);
}

void nnh5__atomic_wrote(nnh5__atomic *a, int fd, uint64_t n)
{
	if (!a->durable)
		return;
	a->unsynced += n;
	if (a->unsynced < NNH5__WRITE_BEHIND)
		return;
	a->unsynced = 0;
	/* The whole file: HDF5's metadata written so far goes along. */
	if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0)
		a->writebacks++;
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
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
				 a->shown, strerror(errno));
		goto fail;
	}
	if (rename(a->tmp, a->target) < 0) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': rename over '%s' failed: %s", a->shown,
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
						 a->shown, dir, strerror(errno));
			nnh5__free(dir);
		}
	}
	release(a);
	return rc;
fail:
	nnh5__atomic_abort(a);
	return rc;
}

void nnh5__atomic_abort(nnh5__atomic *a)
{
	if (a->tmp)
		unlink(a->tmp);
	release(a);
}
