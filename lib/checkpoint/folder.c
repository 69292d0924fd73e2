/*
 * lib/checkpoint/folder.c - the names of the files in a checkpoint folder,
 * and reading the folder (doc/FORMAT.md, "A checkpoint folder").
 *
 * "ckpt-<step>.h5": the step in decimal, zero-padded to 12 digits, so that
 * names sort like steps for the first 10^12 of them; larger steps (runs that
 * count tokens or samples reach 10^12) take up to 19 digits. Folders written
 * before steps could exceed 12 digits are read unchanged. Ordering always
 * comes from the parsed step, never from the name.
 */
#include "checkpoint/manager_internal.h"
#include "store/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREFIX "ckpt-"
#define SUFFIX ".h5"
#define MIN_DIGITS 12
#define MAX_DIGITS 19 /* INT64_MAX = 9223372036854775807 */

int nnh5_checkpoint_file_name(char *buf, size_t size, int64_t step)
{
	int n;

	if (step < 0)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint file name: step %lld < 0",
				   (long long)step);
	n = snprintf(buf, size, PREFIX "%0*lld" SUFFIX, MIN_DIGITS, (long long)step);
	if (n < 0 || (size_t)n >= size)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "checkpoint file name of step %lld: buffer of %zu bytes too small",
				   (long long)step, size);
	return NNH5_OK;
}

bool nnh5_checkpoint_file_step(int64_t *step, const char *name)
{
	size_t plen = strlen(PREFIX), slen = strlen(SUFFIX), len = strlen(name), digits;
	int64_t v = 0;

	if (len < plen + MIN_DIGITS + slen || strncmp(name, PREFIX, plen) != 0 ||
	    strcmp(name + len - slen, SUFFIX) != 0)
		return false;
	digits = len - plen - slen;
	/* One name per step: longer than 12 digits only without a leading zero. */
	if (digits > MAX_DIGITS || (digits > MIN_DIGITS && name[plen] == '0'))
		return false;
	for (size_t i = 0; i < digits; i++) {
		char ch = name[plen + i];
		if (ch < '0' || ch > '9' || v > (INT64_MAX - (ch - '0')) / 10)
			return false;
		v = v * 10 + (ch - '0');
	}
	*step = v;
	return true;
}

const char *nnh5_checkpoint_index_metric(const char *column)
{
	size_t n = strlen(NNH5__CKPT_METRIC_PREFIX);

	if (!column || strncmp(column, NNH5__CKPT_METRIC_PREFIX, n) != 0 || !column[n])
		return NULL;
	return column + n;
}

int nnh5__ckpt_join(char **out, const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = nnh5__malloc(n);

	*out = NULL;
	if (!p)
		return nnh5__nomem();
	snprintf(p, n, "%s/%s", dir, name);
	*out = p;
	return NNH5_OK;
}

int nnh5__ckpt_step_path(char **out, const char *dir, int64_t step)
{
	char name[64];
	int rc = nnh5_checkpoint_file_name(name, sizeof name, step);

	if (rc) {
		*out = NULL;
		return rc;
	}
	return nnh5__ckpt_join(out, dir, name);
}

/* A temporary file of an interrupted save of ours: ".ckpt-...h5.nnh5-tmp-*" or ".index.h5...". */
static bool is_leftover(const char *name)
{
	const char *mark = strstr(name, NNH5__TMP_MARK);
	size_t ilen = strlen(NNH5_CHECKPOINT_INDEX_FILE);
	char base[128];
	int64_t step;

	if (!mark || name[0] != '.')
		return false;
	if (strncmp(name + 1, NNH5_CHECKPOINT_INDEX_FILE, ilen) == 0 && name + 1 + ilen == mark)
		return true;
	size_t len = (size_t)(mark - (name + 1));
	if (len >= sizeof base)
		return false;
	memcpy(base, name + 1, len);
	base[len] = '\0';
	return nnh5_checkpoint_file_step(&step, base);
}

void nnh5__ckpt_sync_dir(const nnh5_checkpoint_manager *m)
{
	int fd;

	if (!m->opt.durable)
		return;
	fd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int cmp_step(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int nnh5__ckpt_list(int64_t **out, size_t *n, const char *dir, size_t *removed)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int64_t *v = NULL;
	size_t len = 0, cap = 0;
	int rc = NNH5_OK;

	*out = NULL;
	*n = 0;
	if (!d)
		return nnh5__error(NNH5_ERR_IO, "checkpoint folder '%s': %s", dir, strerror(errno));
	while (!rc && (de = readdir(d)) != NULL) {
		int64_t step;
		if (removed && is_leftover(de->d_name)) {
			char *p;
			rc = nnh5__ckpt_join(&p, dir, de->d_name);
			if (!rc && unlink(p) == 0)
				(*removed)++;
			nnh5__free(p);
			continue;
		}
		if (!nnh5_checkpoint_file_step(&step, de->d_name))
			continue;
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			int64_t *nv = nnh5__realloc(v, ncap * sizeof *nv);
			if (!nv) {
				rc = nnh5__nomem();
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[len++] = step;
	}
	closedir(d);
	if (rc) {
		nnh5__free(v);
		return rc;
	}
	if (len)
		qsort(v, len, sizeof *v, cmp_step);
	*out = v;
	*n = len;
	return NNH5_OK;
}

int nnh5_checkpoint_folder_steps(int64_t **out, size_t *n, const char *dir)
{
	if (!dir || !*dir) {
		*out = NULL;
		*n = 0;
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint folder: empty path");
	}
	return nnh5__ckpt_list(out, n, dir, NULL);
}
