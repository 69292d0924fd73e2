/*
 * lib/file/save_direct.c - one-call saves of a tensor, list, dict or state
 * dict into a new file written directly in the HDF5 format
 * (store/h5format.h), around HDF5's object layer: HDF5 costs ~135,000
 * instructions per small tensor there, most of them in H5Dcreate2.
 *
 * The file holds exactly what the API path (file_write.c) writes: the same
 * groups, datasets, names, creation order, types, shapes, data and
 * attributes. Whatever this module cannot write that way goes to the API
 * path, decided before anything is written: ties, names or keys the API path
 * would refuse (it then says why), invalid bool bytes. A root whose key list
 * is too large for an object header (HDF5 then keeps attributes in dense
 * storage, a fractal heap and B-trees) gets its attributes from HDF5 after
 * the rest is written, in the same creation order. The save is committed
 * by the atomic save (store/atomic.c) like every other.
 */
#include "file/save_direct.h"
#include "file/file_internal.h"
#include "store/h5format.h"
#include "store/rawio.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keys longer than the API path's buffers go there (it refuses them). */
#define MAX_KEY 4000
/*
 * Every link of a group is a message in its object header here. HDF5 keeps
 * reading such groups in linear time, but inserting into one later (h5py
 * in "a" mode) moves all its links to dense storage at a cost that grows
 * with the square of their number (0.6 s for 4,000 links): larger groups go
 * through HDF5's API, which stores them dense from the start. A root that
 * gets its attributes from HDF5 after the direct write is held to fewer.
 */
#define MAX_LINKS 4096
#define MAX_LINKS_DEFERRED_ROOT 256

struct job {
	nnh5__h5w *w;
	const nnh5_tensor **tensors; /* per dataset written */
	uint32_t *objs;
	size_t *sums;                /* checksum attribute handles */
	size_t n, cap;
	char *names;                 /* a list's "0", "1", ... */
	const char *kind;
	const char **keys;           /* the nnh5_keys attribute, or NULL */
	size_t nkeys;
	bool list;
	int64_t length;
	bool defer_root;             /* the root's attributes are written by HDF5 */
	uint32_t dir[MAX_DEPTH + 2]; /* groups of the previous state-dict key */
	const char *dir_key;
	size_t dir_len;
};

static const char writer_name[] = "nnh5 " NNH5_VERSION_STRING;

static atomic_uint_fast64_t taken;

uint64_t nnh5__save_direct_taken(void)
{
	return (uint64_t)atomic_load(&taken);
}

static bool enabled(void)
{
	const char *e = getenv("NNH5_DIRECT_WRITE");
	return !e || strcmp(e, "0") != 0;
}

/* Would every reader and the API path take this link name as it is? */
static bool name_ok(const char *s, size_t len)
{
	char buf[NNH5__DEFAULT_MAX_NAME + 1];
	int status;

	if (len == 0 || len > NNH5__DEFAULT_MAX_NAME || memchr(s, '/', len) ||
	    (len >= 5 && memcmp(s, "nnh5_", 5) == 0) || (len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return nnh5__name_problem(&status, buf, NNH5__DEFAULT_MAX_NAME) == NULL;
}

static bool tensor_ok(const nnh5_tensor *t)
{
	if (!t || t->dtype >= NNH5_DTYPE_COUNT || t->ndim > NNH5_MAX_NDIM)
		return false;
	if (nnh5__check_bool(t, NNH5_ERR_INVALID, "", "tensor", "")) {
		nnh5_error_clear();
		return false;
	}
	return true;
}

static int add_dataset(struct job *j, uint32_t parent, const char *name, size_t len,
		       const nnh5_tensor *t)
{
	uint32_t ds;
	size_t sum;
	int rc;

	if (j->n == j->cap) {
		size_t cap = j->cap ? 2 * j->cap : 64;
		const nnh5_tensor **tv = nnh5__realloc(j->tensors, cap * sizeof *tv);
		if (tv)
			j->tensors = tv;
		uint32_t *ov = tv ? nnh5__realloc(j->objs, cap * sizeof *ov) : NULL;
		if (ov)
			j->objs = ov;
		size_t *sv = ov ? nnh5__realloc(j->sums, cap * sizeof *sv) : NULL;
		if (!sv)
			return nnh5__nomem();
		j->sums = sv;
		j->cap = cap;
	}
	rc = nnh5__h5w_dataset(&ds, j->w, parent, name, len, t->dtype, t->ndim, t->shape,
			       t->nbytes);
	if (!rc)
		rc = nnh5__h5w_attr_u64(&sum, j->w, ds, NNH5__CHECKSUM_ATTR, 0);
	/* Types h5py has no numpy dtype for are named, as file_write.c does. */
	if (!rc && (t->dtype == NNH5_BFLOAT16 || t->dtype == NNH5_FLOAT8_E4M3FN ||
		    t->dtype == NNH5_FLOAT8_E5M2))
		rc = nnh5__h5w_attr_str(j->w, ds, "nnh5_dtype", nnh5_dtype_name((int)t->dtype));
	if (rc)
		return rc;
	j->tensors[j->n] = t;
	j->objs[j->n] = ds;
	j->sums[j->n++] = sum;
	return NNH5_OK;
}

/* 1: tensors share memory (a tie or an overlap): left to the API path. */
static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
	return x < y ? -1 : x > y;
}

static int shares_memory(bool *out, const struct job *j)
{
	void **p;

	*out = false;
	if (j->n < 2)
		return NNH5_OK;
	if (!(p = nnh5__malloc(j->n * sizeof *p)))
		return nnh5__nomem();
	for (size_t i = 0; i < j->n; i++)
		p[i] = j->tensors[i]->data;
	qsort(p, j->n, sizeof *p, cmp_ptr);
	for (size_t i = 1; i < j->n && !*out; i++)
		*out = p[i] && p[i] == p[i - 1];
	nnh5__free(p);
	return NNH5_OK;
}

/* The dataset of state-dict key k: its groups found or made. 1: not for this writer. */
static int add_state_key(struct job *j, const char *k, const nnh5_tensor *t)
{
	size_t n = strlen(k), depth = 0, keep = 0;
	const char *p = k;
	uint32_t g = NNH5__H5W_ROOT;
	bool is_group;

	if (n == 0 || n > MAX_KEY || k[0] == '.' || k[n - 1] == '.')
		return 1;
	/* Consecutive keys of one module share their groups: reuse the previous key's. */
	if (j->dir_key) {
		const char *a = k, *b = j->dir_key;
		size_t lim = j->dir_len < n ? j->dir_len : n;
		for (size_t i = 0; i < lim && a[i] == b[i]; i++)
			if (a[i] == '.')
				keep++;
	}
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (!name_ok(p, len) || len >= 256 || depth >= MAX_DEPTH)
			return 1;
		if (!dot)
			break;
		uint32_t c;
		if (depth < keep) {
			c = j->dir[depth + 1];
		} else {
			c = nnh5__h5w_child(j->w, g, p, len, &is_group);
			if (c != NNH5__H5W_NONE && !is_group)
				return 1; /* "a" and "a.b": the API path says why */
			if (c == NNH5__H5W_NONE) {
				int rc = nnh5__h5w_group(&c, j->w, g, p, len);
				if (rc)
					return rc;
			}
			j->dir[depth + 1] = c;
		}
		g = c;
		depth++;
		p = dot + 1;
	}
	if (nnh5__h5w_child(j->w, g, p, strlen(p), &is_group) != NNH5__H5W_NONE)
		return 1;
	j->dir_key = k;
	j->dir_len = (size_t)(p - k);
	return add_dataset(j, g, p, strlen(p), t);
}

/* Build the file's tree; 1 when this save is not for the direct writer. */
static int build(struct job *j, nnh5__direct_what what, const void *obj)
{
	int rc = NNH5_OK;

	switch (what) {
	case NNH5__DIRECT_TENSOR:
		j->kind = "tensor";
		if (!tensor_ok(obj))
			return 1;
		return add_dataset(j, NNH5__H5W_ROOT, "tensor", 6, obj);
	case NNH5__DIRECT_LIST: {
		const nnh5_list *l = obj;
		size_t n = nnh5_list_len(l);
		j->kind = "list";
		j->list = true;
		j->length = (int64_t)n;
		if (!(j->names = nnh5__malloc(n ? n * 21 : 1)))
			return nnh5__nomem();
		for (size_t i = 0; !rc && i < n; i++) {
			char *s = j->names + i * 21;
			int len = snprintf(s, 21, "%zu", i);
			if (!tensor_ok(nnh5_list_get(l, i)))
				return 1;
			rc = add_dataset(j, NNH5__H5W_ROOT, s, (size_t)len, nnh5_list_get(l, i));
		}
		return rc;
	}
	case NNH5__DIRECT_DICT:
	case NNH5__DIRECT_STATE_DICT: {
		const nnh5_dict *d = obj;
		size_t n = nnh5_dict_len(d);
		const char **keys = j->keys = nnh5__malloc((n ? n : 1) * sizeof *keys);
		if (!keys)
			return nnh5__nomem();
		j->nkeys = n;
		j->kind = what == NNH5__DIRECT_DICT ? "dict" : "state_dict";
		for (size_t i = 0; !rc && i < n; i++) {
			const char *k = nnh5_dict_key(d, i);
			const nnh5_tensor *t = nnh5_dict_value(d, i);
			keys[i] = k;
			if (!tensor_ok(t))
				return 1;
			if (what == NNH5__DIRECT_STATE_DICT) {
				rc = add_state_key(j, k, t);
			} else {
				bool g;
				size_t len = strlen(k);
				if (!name_ok(k, len) ||
				    nnh5__h5w_child(j->w, NNH5__H5W_ROOT, k, len, &g) != NNH5__H5W_NONE)
					return 1;
				rc = add_dataset(j, NNH5__H5W_ROOT, k, len, t);
			}
		}
		return rc;
	}
	}
	return 1;
}

static int root_attrs(struct job *j)
{
	nnh5__h5w *w = j->w;
	int rc;

	if (j->keys && nnh5__h5w_strs_message_size("nnh5_keys", j->nkeys) >= NNH5__H5W_MESG_MAX) {
		j->defer_root = true;
		return NNH5_OK;
	}
	rc = nnh5__h5w_attr_i64(w, NNH5__H5W_ROOT, "nnh5_format_version", FORMAT_VERSION);
	if (!rc)
		rc = nnh5__h5w_attr_str(w, NNH5__H5W_ROOT, "nnh5_writer", writer_name);
	if (!rc)
		rc = nnh5__h5w_attr_str(w, NNH5__H5W_ROOT, "nnh5_kind", j->kind);
	if (!rc && j->list)
		rc = nnh5__h5w_attr_i64(w, NNH5__H5W_ROOT, "nnh5_length", j->length);
	if (!rc && j->keys)
		rc = nnh5__h5w_attr_strs(w, NNH5__H5W_ROOT, "nnh5_keys", (const char *const *)j->keys, j->nkeys);
	return rc;
}

/* The root's attributes through HDF5 (they go to dense storage), in creation order. */
static int put_root_attrs_hdf5(const struct job *j, const char *shown, const char *tmp)
{
	nnh5__h5quiet q;
	hid_t fapl, fid = -1, str = -1;
	const char *writer = writer_name;
	int rc = NNH5_OK;

	nnh5__h5_quiet_begin(&q);
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl >= 0 && nnh5__file_fapl_setup(fapl, NNH5_CREATE) == 0)
		fid = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
	str = nnh5__h5_vlen_utf8();
	if (fid < 0 || str < 0 ||
	    nnh5__h5_attr_write(fid, "nnh5_format_version", H5T_STD_I64LE,
				&(int64_t){ FORMAT_VERSION }, 0, false) < 0 ||
	    nnh5__h5_attr_write(fid, "nnh5_writer", str, &writer, 0, false) < 0 ||
	    nnh5__h5_attr_write(fid, "nnh5_kind", str, &j->kind, 0, false) < 0 ||
	    nnh5__h5_attr_write(fid, "nnh5_keys", str, j->keys, j->nkeys, true) < 0)
		rc = nnh5__h5_error(NNH5_ERR_IO, "save '%s': cannot write the root attributes",
				    shown);
	if (str >= 0)
		H5Tclose(str);
	if (fid >= 0 && H5Fclose(fid) < 0 && !rc)
		rc = nnh5__h5_error(NNH5_ERR_IO, "save '%s': writing the file failed", shown);
	if (fapl >= 0)
		H5Pclose(fapl);
	H5Eclear2(H5E_DEFAULT);
	nnh5__h5_quiet_end(&q);
	return rc;
}

/* Write the laid-out file into the atomic save's temporary file and commit it. */
static int write_file(struct job *j, const char *path, uint64_t meta_size, bool durable)
{
	nnh5__atomic a;
	unsigned char *meta = NULL;
	int fd = -1, err = 0, rc;

	rc = nnh5__atomic_begin(&a, path, durable);
	if (rc)
		return rc;
	/* As HDF5 creates it (file.c): anew, unless the placeholder was prepared. */
	if (!a.prepared && unlink(a.tmp) < 0)
		err = errno;
	if (!err) {
		fd = open(a.tmp, a.prepared ? O_WRONLY | O_CLOEXEC
					    : O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0)
			err = errno;
	}
	if (err) {
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': cannot create temporary file '%s': %s",
				 path, a.tmp, strerror(err));
		goto fail;
	}
	rc = nnh5__atomic_adopt(&a, fd);
	for (size_t i = 0; !rc && i < j->n; i++) {
		const nnh5_tensor *t = j->tensors[i];
		uint64_t sum = 0;
		if (t->nbytes)
			err = nnh5__raw_write(fd, t->data, t->nbytes,
					      nnh5__h5w_data_addr(j->w, j->objs[i]), &sum);
		else
			sum = nnh5_tensor_checksum(t);
		if (err)
			rc = nnh5__error(NNH5_ERR_IO, "save '%s': writing tensor %zu failed: %s",
					 path, i, strerror(err));
		nnh5__h5w_set_u64(j->w, j->sums[i], sum);
	}
	if (!rc && !(meta = nnh5__calloc(meta_size, 1)))
		rc = nnh5__nomem();
	if (!rc)
		rc = nnh5__h5w_encode(j->w, meta, meta_size);
	if (!rc && (err = nnh5__raw_write(fd, meta, meta_size, 0, NULL)) != 0)
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': writing the file failed: %s", path,
				 strerror(err));
	nnh5__free(meta);
	if (close(fd) < 0 && !rc)
		rc = nnh5__error(NNH5_ERR_IO, "save '%s': writing the file failed: %s", path,
				 strerror(errno));
	if (!rc && j->defer_root)
		rc = put_root_attrs_hdf5(j, path, a.tmp);
	if (!rc)
		return nnh5__atomic_commit(&a);
fail:
	nnh5__atomic_abort(&a);
	return rc;
}

int nnh5__save_direct(bool *done, const char *path, nnh5__direct_what what, const void *obj,
		      bool durable)
{
	struct job j;
	uint64_t meta_size, file_size;
	bool shared = false;
	int rc;

	*done = false;
	if (!enabled() || !path || !*path || !obj)
		return NNH5_OK;
	memset(&j, 0, sizeof j);
	rc = nnh5__h5w_new(&j.w);
	if (!rc)
		rc = build(&j, what, obj);
	if (!rc)
		rc = shares_memory(&shared, &j);
	if (!rc && shared)
		rc = 1;
	if (!rc)
		rc = root_attrs(&j);
	if (!rc && (nnh5__h5w_most_links(j.w) > MAX_LINKS ||
		    (j.defer_root && nnh5__h5w_links(j.w, NNH5__H5W_ROOT) > MAX_LINKS_DEFERRED_ROOT)))
		rc = 1;
	if (!rc)
		rc = nnh5__h5w_layout(&meta_size, &file_size, j.w, ALIGNMENT);
	if (rc == NNH5_OK) {
		*done = true;
		atomic_fetch_add(&taken, 1);
		rc = write_file(&j, path, meta_size, durable);
	} else {
		/* Declined (or out of memory building): the API path saves and reports. */
		nnh5_error_clear();
		rc = NNH5_OK;
	}
	nnh5__h5w_free(j.w);
	nnh5__free(j.tensors);
	nnh5__free(j.objs);
	nnh5__free(j.sums);
	nnh5__free(j.names);
	nnh5__free(j.keys);
	return rc;
}
