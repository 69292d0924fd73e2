/*
 * tests/testutil.c - see testutil.h.
 */
#define _GNU_SOURCE /* unshare() */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void tu_expect_message(const char *call, ...)
{
	const char *msg = nnh5_error_message();
	va_list ap;
	const char *needle;

	va_start(ap, call);
	while ((needle = va_arg(ap, const char *)) != NULL) {
		if (!strstr(msg, needle)) {
			va_end(ap);
			fail_msg("%s: message '%s' lacks '%s'", call, msg, needle);
		}
	}
	va_end(ap);
}

static char scratch[4096];

static const char *scratch_dir(void)
{
	if (!scratch[0]) {
		const char *base = getenv("NNH5_TEST_TMP");
		char tmpl[4096];
		if (!base)
			base = "/tmp";
		mkdir(base, 0777);
		snprintf(tmpl, sizeof tmpl, "%s/nnh5-test-XXXXXX", base);
		if (!mkdtemp(tmpl)) {
			perror("mkdtemp");
			abort();
		}
		snprintf(scratch, sizeof scratch, "%s", tmpl);
	}
	return scratch;
}

const char *tu_path(const char *name)
{
	static char buf[8192];
	snprintf(buf, sizeof buf, "%s/%s", scratch_dir(), name);
	return buf;
}

int tu_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int tu_count_files(const char *needle)
{
	DIR *d = opendir(scratch_dir());
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, needle))
			n++;
	closedir(d);
	return n;
}

char *tu_slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	long size;

	*n = 0;
	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
		buf = malloc(size ? (size_t)size : 1);
		if (buf && fread(buf, 1, (size_t)size, fp) != (size_t)size) {
			free(buf);
			buf = NULL;
		}
		*n = buf ? (size_t)size : 0;
	}
	fclose(fp);
	return buf;
}

nnh5_tensor *tu_seq(nnh5_dtype dtype, size_t ndim, const int64_t *shape, double scale,
		    double offset)
{
	nnh5_tensor *t;
	ok(nnh5_tensor_new(&t, dtype, ndim, shape));
	for (size_t i = 0; i < nnh5_tensor_numel(t); i++)
		ok(nnh5_tensor_set(t, i, (double)i * scale + offset));
	return t;
}

bool tu_private_mounts(void)
{
	if (unshare(CLONE_NEWNS) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return false;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "mount --make-rprivate /: %s\n", strerror(errno));
		return false;
	}
	return true;
}

long tu_data_offset(const char *path, const char *name)
{
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	assert_true(fid >= 0);
	hid_t did = H5Dopen2(fid, name, H5P_DEFAULT);
	assert_true(did >= 0);
	haddr_t off = H5Dget_offset(did);
	assert_true(off != HADDR_UNDEF);
	H5Dclose(did);
	H5Fclose(fid);
	return (long)off;
}

void tu_flip_byte(const char *path, long off, unsigned char mask)
{
	FILE *fp = fopen(path, "r+b");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, off, SEEK_SET), 0);
	int c = fgetc(fp);
	assert_true(c != EOF);
	assert_int_equal(fseek(fp, off, SEEK_SET), 0);
	assert_true(fputc(c ^ mask, fp) != EOF);
	assert_int_equal(fclose(fp), 0);
}
