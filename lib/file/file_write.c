/*
 * lib/file/file_write.c - write tensors, lists, dicts and state dicts into a file
 * opened with NNH5_CREATE, in the layout doc/FORMAT.md describes.
 */
#include "file/file_internal.h"
#include "file/walk.h"
#include "store/filters.h"
#include "store/h5util.h"
#include "store/rawio.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/xxh.h"

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static hid_t create_group(nnh5_file *f, hid_t loc, const char *name)
{
	return H5Gcreate2(loc, name, f->lcpl, f->gcpl, H5P_DEFAULT);
}

int nnh5__file_open_group(hid_t *out, nnh5_file *f, const char *path)
{
	char buf[4096];
	hid_t cur, next;
	size_t n = strlen(path);

	*out = -1;
	if (n >= sizeof buf)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object name too long", f->path);
	memcpy(buf, path, n + 1);
	cur = H5Gopen2(f->fid, "/", nnh5__file_lapl(f));
	if (cur < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot open the root group", f->path);
	for (char *p = buf + (buf[0] == '/'); *p;) {
		char *end = strchr(p, '/');
		if (end)
			*end = '\0';
		htri_t e = H5Lexists(cur, p, nnh5__file_lapl(f));
		if (e > 0) {
			H5O_info_t info;
			if (H5Oget_info_by_name2(cur, p, &info, H5O_INFO_BASIC, nnh5__file_lapl(f)) < 0 ||
			    info.type != H5O_TYPE_GROUP) {
				H5Gclose(cur);
				return nnh5__error(NNH5_ERR_EXISTS,
						   "'%s': '%s' in '%s' exists and is not a group",
						   f->path, p, path);
			}
			next = H5Gopen2(cur, p, nnh5__file_lapl(f));
		} else {
			next = create_group(f, cur, p);
		}
		H5Gclose(cur);
		if (next < 0)
			return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create group '%s'",
					      f->path, path);
		cur = next;
		if (!end)
			break;
		p = end + 1;
	}
	*out = cur;
	return NNH5_OK;
}

int nnh5__file_create_group(nnh5_file *f, const char *name)
{
	hid_t g;
	int rc;

	ENTER;
	rc = nnh5__file_check_writable(f, "create a group");
	if (!rc)
		rc = nnh5__file_check_write_path(f, name);
	if (!rc)
		rc = nnh5__file_note_write(f, nnh5__file_open_group(&g, f, name));
	if (!rc)
		H5Gclose(g);
	LEAVE(rc);
}

hid_t nnh5__file_type(nnh5_file *f, nnh5_dtype dtype)
{
	if (f->ftype[dtype] <= 0)
		f->ftype[dtype] = nnh5__h5_file_type(dtype);
	return f->ftype[dtype];
}

int nnh5__file_put_checksum(nnh5_file *f, hid_t did, uint64_t sum)
{
	hid_t attr = H5Acreate2(did, NNH5__CHECKSUM_ATTR, H5T_STD_U64LE, f->scalar_space,
				H5P_DEFAULT, H5P_DEFAULT);
	herr_t st;

	if (attr < 0)
		return -1;
	st = H5Awrite(attr, H5T_NATIVE_UINT64, &sum);
	return H5Aclose(attr) < 0 || st < 0 ? -1 : 0;
}

int nnh5__file_put_block_table(nnh5_file *f, hid_t did, const uint64_t *table, uint64_t count,
			       uint64_t block_bytes)
{
	hsize_t dim = (hsize_t)count;
	hid_t space = H5Screate_simple(1, &dim, NULL), attr = -1;
	herr_t st = -1;

	attr = H5Acreate2(did, NNH5__BLOCK_BYTES_ATTR, H5T_STD_U64LE, f->scalar_space, H5P_DEFAULT,
			  H5P_DEFAULT);
	if (attr >= 0)
		st = H5Awrite(attr, H5T_NATIVE_UINT64, &block_bytes);
	if (attr >= 0 && H5Aclose(attr) < 0)
		st = -1;
	attr = st < 0 || space < 0 ? -1
				   : H5Acreate2(did, NNH5__BLOCKS_ATTR, H5T_STD_U64LE, space,
						H5P_DEFAULT, H5P_DEFAULT);
	st = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_UINT64, table);
	if (attr >= 0 && H5Aclose(attr) < 0)
		st = -1;
	if (space >= 0)
		H5Sclose(space);
	return st < 0 ? -1 : 0;
}

int nnh5__file_put_dtype_attr(nnh5_file *f, hid_t did, nnh5_dtype dtype, const char *display)
{
	/* Types h5py has no numpy dtype for are named for readers (doc/FORMAT.md). */
	const char *v = nnh5_dtype_name((int)dtype);
	hid_t st;
	int rc = NNH5_OK;

	if (dtype != NNH5_BFLOAT16 && dtype != NNH5_FLOAT8_E4M3FN && dtype != NNH5_FLOAT8_E5M2)
		return NNH5_OK;
	st = nnh5__h5_vlen_utf8();
	if (st < 0 || nnh5__h5_attr_write(did, "nnh5_dtype", st, &v, 0, false) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': dtype attribute", f->path,
				    display);
	if (st >= 0)
		H5Tclose(st);
	return rc;
}

/*
 * Write t's elements into the new dataset did. Contiguous storage was
 * allocated at creation: write it straight from t's memory with pwrite,
 * hashing on the way (lib/store/rawio.c). Files without a raw descriptor
 * (and empty tensors, which have no storage) go through H5Dwrite, which also
 * writes straight from t's memory (same file and memory type: no conversion).
 */
static int write_data(nnh5_file *f, hid_t did, hid_t type, const nnh5_tensor *t, uint64_t *sum,
		      const char *display)
{
	haddr_t off = t->nbytes && f->raw_fd >= 0 ? H5Dget_offset(did) : HADDR_UNDEF;

	if (off != HADDR_UNDEF) {
		int err = nnh5__raw_write(f->raw_fd, t->data, t->nbytes, (uint64_t)off, sum);
		if (err)
			return nnh5__error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed: %s",
					   f->path, display, strerror(err));
		nnh5__atomic_wrote(&f->atomic, f->raw_fd, t->nbytes);
		return NNH5_OK;
	}
	H5Eclear2(H5E_DEFAULT);
	if (t->nbytes && H5Dwrite(did, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
		return nnh5__h5_error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed", f->path,
				      display);
	*sum = nnh5_tensor_checksum(t);
	return NNH5_OK;
}

/*
 * Create dataset leaf in loc from t; display is the object's full name for
 * messages. fresh: loc is a group this call's container created, whose
 * names are known to be unique, so the existence check is skipped.
 */
static int write_dataset_as(nnh5_file *f, hid_t loc, const char *leaf, const nnh5_tensor *t,
			    const char *display, bool fresh, int profile)
{
	hsize_t dims[NNH5_MAX_NDIM];
	hid_t space, type, did;
	uint64_t sum = 0;
	int rc;

	if (!fresh && H5Lexists(loc, leaf, nnh5__file_lapl(f)) > 0)
		return nnh5__error(NNH5_ERR_EXISTS, "'%s': object '%s' already exists", f->path,
				   display);
	for (size_t i = 0; i < t->ndim; i++)
		dims[i] = (hsize_t)t->shape[i];
	space = t->ndim ? H5Screate_simple((int)t->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
	type = nnh5__file_type(f, t->dtype);
	if (space < 0 || type < 0) {
		if (space >= 0)
			H5Sclose(space);
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': cannot describe %s %zu-d",
				      f->path, display, nnh5_dtype_name((int)t->dtype), (size_t)t->ndim);
	}
	hid_t dcpl = -1;
	rc = nnh5__filters_dcpl(&dcpl, profile, t->ndim, dims,
				nnh5_dtype_size((int)t->dtype), f->path);
	if (rc) {
		H5Sclose(space);
		return rc;
	}
	did = H5Dcreate2(loc, leaf, type, space, f->lcpl, dcpl >= 0 ? dcpl : f->dcpl_contig,
			 H5P_DEFAULT);
	H5Sclose(space);
	if (did < 0) {
		if (dcpl >= 0)
			H5Pclose(dcpl);
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create dataset '%s'", f->path,
				      display);
	}
	rc = write_data(f, did, type, t, &sum, display);
	/*
	 * Data that compresses past the load policy's default ratio (zeros do,
	 * about 250:1) would be refused by a default load: store it as it is.
	 */
	if (!rc && dcpl >= 0 &&
	    !nnh5__policy_ratio_ok(t->nbytes, H5Dget_storage_size(did), NNH5__DEFAULT_MAX_RATIO)) {
		H5Pclose(dcpl);
		H5Dclose(did);
		if (H5Ldelete(loc, leaf, H5P_DEFAULT) < 0)
			return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot replace dataset '%s'",
					      f->path, display);
		return write_dataset_as(f, loc, leaf, t, display, true, NNH5_COMPRESSION_NONE);
	}
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (!rc && nnh5__file_put_checksum(f, did, sum) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': checksum attribute",
				    f->path, display);
	if (!rc)
		rc = nnh5__file_put_dtype_attr(f, did, t->dtype, display);
	if (H5Dclose(did) < 0 && !rc)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': closing dataset '%s' failed", f->path,
				    display);
	return rc;
}

/*
 * Tied tensors (nnh5_tensor_tied()): for each of the n values, the index of
 * the first earlier value it is tied to, or SIZE_MAX. Values are grouped by
 * their data pointer first, so a state dict of many thousand keys costs a
 * sort, not n^2 comparisons. *out is NULL when nothing is tied.
 */
struct by_data {
	uintptr_t data;
	size_t index;
};

static int cmp_by_data(const void *a, const void *b)
{
	const struct by_data *x = a, *y = b;
	if (x->data != y->data)
		return x->data < y->data ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int find_ties(size_t **out, const nnh5_tensor *const *v, size_t n)
{
	struct by_data *order;
	size_t *first = NULL, bytes, run = 0;

	*out = NULL;
	if (n < 2)
		return NNH5_OK;
	if (!nnh5__mul_size(n, sizeof *order, &bytes) || !(order = nnh5__malloc(bytes)))
		return nnh5__nomem();
	for (size_t i = 0; i < n; i++)
		order[i] = (struct by_data){ (uintptr_t)(v[i] ? v[i]->data : NULL), i };
	qsort(order, n, sizeof *order, cmp_by_data);
	for (size_t i = 1; i < n; i++) {
		if (order[i].data != order[i - 1].data) {
			run = i;
			continue;
		}
		/* Ties are an equivalence: the first match in index order is the first of its class. */
		for (size_t j = run; j < i; j++) {
			if (!nnh5_tensor_tied(v[order[i].index], v[order[j].index]))
				continue;
			if (!first) {
				first = nnh5__malloc(bytes / sizeof *order * sizeof *first);
				if (!first) {
					nnh5__free(order);
					return nnh5__nomem();
				}
				for (size_t k = 0; k < n; k++)
					first[k] = SIZE_MAX;
			}
			first[order[i].index] = order[j].index;
			break;
		}
	}
	nnh5__free(order);
	*out = first;
	return NNH5_OK;
}

int nnh5__dict_ties(size_t **out, const nnh5_dict *d)
{
	size_t n = nnh5_dict_len(d), bytes;
	const nnh5_tensor **v;
	int rc;

	*out = NULL;
	if (n < 2)
		return NNH5_OK;
	if (!nnh5__mul_size(n, sizeof *v, &bytes) || !(v = nnh5__malloc(bytes)))
		return nnh5__nomem();
	for (size_t i = 0; i < n; i++)
		v[i] = nnh5_dict_value(d, i);
	rc = find_ties(out, v, n);
	nnh5__free(v);
	return rc;
}

/* A hard link leaf in loc to the dataset target (a path from the root) written before. */
static int write_tie(nnh5_file *f, hid_t loc, const char *leaf, const char *target,
		     const char *display)
{
	if (H5Lcreate_hard(f->fid, target, loc, leaf, f->lcpl, H5P_DEFAULT) < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot link '%s' to its tie '%s'",
				      f->path, display, target);
	return NNH5_OK;
}

int nnh5__file_link_tie(nnh5_file *f, const char *path, const char *target)
{
	char parent[4096];
	const char *leaf;
	hid_t g;
	int rc = nnh5__file_check_writable(f, "write");

	if (!rc)
		rc = nnh5__file_check_write_path(f, path);
	if (!rc && strlen(path) >= sizeof parent)
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': name '%.64s...' is too long", f->path,
				 path);
	if (rc)
		return rc;
	leaf = nnh5__file_split_leaf(parent, sizeof parent, path);
	rc = nnh5__file_open_group(&g, f, parent);
	if (!rc) {
		rc = write_tie(f, g, leaf, target, path);
		H5Gclose(g);
	}
	return nnh5__file_note_write(f, rc);
}

static int write_dataset(nnh5_file *f, hid_t loc, const char *leaf, const nnh5_tensor *t,
			 const char *display, bool fresh)
{
	return write_dataset_as(f, loc, leaf, t, display, fresh, f->compression);
}

const char *nnh5__file_split_leaf(char *buf, size_t n, const char *name)
{
	const char *slash = strrchr(name, '/');

	if (!slash) {
		buf[0] = '\0';
		return name;
	}
	/* What snprintf(buf, n, "%.*s", ...) gives, without printf's cost on every tensor of a save. */
	size_t len = (size_t)(slash - name);
	if (n == 0)
		return slash + 1;
	if (len >= n)
		len = n - 1;
	memcpy(buf, name, len);
	buf[len] = '\0';
	return slash + 1;
}

int nnh5_file_write_tensor(nnh5_file *f, const char *name, const nnh5_tensor *t)
{
	char parent[4096];
	const char *leaf;
	hid_t g;
	int rc;

	ENTER;
	rc = nnh5__file_check_writable(f, "write");
	if (!rc)
		rc = nnh5__file_check_write_path(f, name);
	if (!rc && nnh5__file_is_root(name))
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': a tensor cannot be the root group", f->path);
	if (!rc && strlen(name) >= sizeof parent)
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': object name too long", f->path);
	if (!rc)
		rc = nnh5__check_bool(t, NNH5_ERR_INVALID, f->path, "tensor", name);
	if (rc)
		LEAVE(rc);
	leaf = nnh5__file_split_leaf(parent, sizeof parent, name);
	rc = nnh5__file_note_write(f, nnh5__file_open_group(&g, f, parent));
	if (rc)
		LEAVE(rc);
	rc = nnh5__file_note_write(f, write_dataset(f, g, leaf, t, name, false));
	H5Gclose(g);
	LEAVE(rc);
}

/* Open the group for a new container at name (the root must still be empty). */
static int container_group(hid_t *out, nnh5_file *f, const char *name, const char *kind)
{
	int rc;

	*out = -1;
	rc = nnh5__file_check_writable(f, "write");
	if (!rc)
		rc = nnh5__file_check_write_path(f, name);
	if (rc)
		return rc;
	if (nnh5__file_is_root(name)) {
		H5G_info_t info;
		if (H5Gget_info(f->fid, &info) < 0)
			return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': root group", f->path);
		if (info.nlinks > 0)
			return nnh5__error(NNH5_ERR_EXISTS,
					   "'%s': cannot write a %s at the root: it already holds objects",
					   f->path, kind);
	} else if (H5Lexists(f->fid, name[0] == '/' ? name + 1 : name, nnh5__file_lapl(f)) > 0) {
		return nnh5__error(NNH5_ERR_EXISTS, "'%s': object '%s' already exists", f->path,
				   name);
	}
	H5Eclear2(H5E_DEFAULT);
	rc = nnh5__file_open_group(out, f, name);
	if (rc)
		return rc;
	hid_t st = nnh5__h5_vlen_utf8();
	if (st < 0 || nnh5__h5_attr_write(*out, "nnh5_kind", st, &kind, 0, false) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': kind attribute", f->path, name);
	if (st >= 0)
		H5Tclose(st);
	if (rc) {
		H5Gclose(*out);
		*out = -1;
	}
	return rc;
}

/* The attribute nnh5_keys: the n keys in their order. */
static int write_key_list(nnh5_file *f, hid_t g, const char *const *keys, size_t n,
			  const char *name)
{
	hid_t st = nnh5__h5_vlen_utf8();
	int rc = NNH5_OK;

	if (st < 0 || nnh5__h5_attr_write(g, "nnh5_keys", st, keys, n, true) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': cannot write the key list",
				    f->path, name);
	if (st >= 0)
		H5Tclose(st);
	return rc;
}

static int write_keys_attr(nnh5_file *f, hid_t g, const nnh5_dict *d, const char *name)
{
	size_t n = nnh5_dict_len(d);
	const char **keys = nnh5__calloc(n ? n : 1, sizeof *keys);
	int rc;

	if (!keys)
		return nnh5__nomem();
	for (size_t i = 0; i < n; i++)
		keys[i] = nnh5_dict_key(d, i);
	rc = write_key_list(f, g, keys, n, name);
	nnh5__free(keys);
	return rc;
}

int nnh5_file_write_list(nnh5_file *f, const char *name, const nnh5_list *list)
{
	char leaf[32], disp[4200];
	hid_t g;
	int rc = NNH5_OK;

	ENTER;
	/* values are checked before the container is created: a refusal writes nothing */
	for (size_t i = 0; !rc && i < nnh5_list_len(list); i++) {
		snprintf(leaf, sizeof leaf, "%zu", i);
		nnh5__file_display_name(disp, sizeof disp, name, leaf);
		rc = nnh5__check_bool(nnh5_list_get(list, i), NNH5_ERR_INVALID, f->path, "tensor",
				      disp);
	}
	if (!rc)
		rc = nnh5__file_note_write(f, container_group(&g, f, name, "list"));
	if (rc)
		LEAVE(rc);
	if (nnh5__h5_attr_write(g, "nnh5_length", H5T_STD_I64LE, &(int64_t){ (int64_t)nnh5_list_len(list) },
		       0, false) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': list '%s': length attribute", f->path, name);
	size_t *ties = NULL, n = nnh5_list_len(list), bytes;
	const nnh5_tensor **v = NULL;
	if (!rc && n > 1) {
		if (!nnh5__mul_size(n, sizeof *v, &bytes) || !(v = nnh5__malloc(bytes)))
			rc = nnh5__nomem();
		for (size_t i = 0; !rc && i < n; i++)
			v[i] = nnh5_list_get(list, i);
		if (!rc)
			rc = find_ties(&ties, v, n);
		nnh5__free(v);
	}
	for (size_t i = 0; !rc && i < n; i++) {
		snprintf(leaf, sizeof leaf, "%zu", i);
		nnh5__file_display_name(disp, sizeof disp, name, leaf);
		if (ties && ties[i] != SIZE_MAX) {
			char target[4200], tleaf[32];
			snprintf(tleaf, sizeof tleaf, "%zu", ties[i]);
			nnh5__file_display_name(target, sizeof target, name, tleaf);
			rc = write_tie(f, g, leaf, target, disp);
		} else {
			rc = write_dataset(f, g, leaf, nnh5_list_get(list, i), disp, true);
		}
	}
	nnh5__free(ties);
	H5Gclose(g);
	LEAVE(nnh5__file_note_write(f, rc));
}

static int check_dict_key(const nnh5_file *f, const char *name, const char *key)
{
	if (!*key || strchr(key, '/') || strcmp(key, ".") == 0 || strcmp(key, "..") == 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': dict '%s': key '%s' cannot be stored (keys must be "
				   "non-empty, without '/', and not '.' or '..')",
				   f->path, name, key);
	if (strncmp(key, "nnh5_", 5) == 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': dict '%s': key '%s' is reserved (nnh5_*)", f->path, name, key);
	return nnh5__file_check_new_name(f, "dict key", key, strlen(key));
}

int nnh5_file_write_dict(nnh5_file *f, const char *name, const nnh5_dict *d)
{
	char disp[4200];
	hid_t g;
	int rc = NNH5_OK;

	ENTER;
	for (size_t i = 0; !rc && i < nnh5_dict_len(d); i++) {
		rc = check_dict_key(f, name ? name : "", nnh5_dict_key(d, i));
		nnh5__file_display_name(disp, sizeof disp, name ? name : "", nnh5_dict_key(d, i));
		if (!rc)
			rc = nnh5__check_bool(nnh5_dict_value(d, i), NNH5_ERR_INVALID, f->path,
					      "tensor", disp);
	}
	if (!rc)
		rc = nnh5__file_note_write(f, container_group(&g, f, name, "dict"));
	if (rc)
		LEAVE(rc);
	size_t *ties = NULL;
	rc = write_keys_attr(f, g, d, name);
	if (!rc)
		rc = nnh5__dict_ties(&ties, d);
	for (size_t i = 0; !rc && i < nnh5_dict_len(d); i++) {
		nnh5__file_display_name(disp, sizeof disp, name, nnh5_dict_key(d, i));
		if (ties && ties[i] != SIZE_MAX) {
			char target[4200];
			nnh5__file_display_name(target, sizeof target, name, nnh5_dict_key(d, ties[i]));
			rc = write_tie(f, g, nnh5_dict_key(d, i), target, disp);
		} else {
			rc = write_dataset(f, g, nnh5_dict_key(d, i), nnh5_dict_value(d, i), disp, true);
		}
	}
	nnh5__free(ties);
	H5Gclose(g);
	LEAVE(nnh5__file_note_write(f, rc));
}

/* The keys of a state dict being written, sorted for lookups. */
struct keyset {
	const char **sorted;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool keyset_has(const struct keyset *ks, const char *key)
{
	return bsearch(&key, ks->sorted, ks->n, sizeof *ks->sorted, cmp_str) != NULL;
}

static int check_state_key(const nnh5_file *f, const char *name, const struct keyset *ks,
			   const char *key)
{
	size_t n = strlen(key);
	char prefix[4096];

	if (n == 0 || strchr(key, '/') || key[0] == '.' || key[n - 1] == '.' || strstr(key, ".."))
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': state dict '%s': key '%s' cannot be stored (keys are "
				   "non-empty names separated by single dots, without '/')",
				   f->path, name, key);
	if (n >= sizeof prefix)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': state dict '%s': key too long", f->path,
				   name);
	/* "a" and "a.b" cannot both exist: "a" would be a dataset and a group. */
	for (size_t i = 0; i < n; i++) {
		if (key[i] != '.')
			continue;
		memcpy(prefix, key, i);
		prefix[i] = '\0';
		if (strncmp(prefix, "nnh5_", 5) == 0 || strstr(prefix, ".nnh5_"))
			break;
		if (keyset_has(ks, prefix))
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': state dict '%s': keys '%s' and '%s' conflict ('%s' "
					   "would be both a tensor and a module)",
					   f->path, name, prefix, key, prefix);
	}
	if (strncmp(key, "nnh5_", 5) == 0 || strstr(key, ".nnh5_"))
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': state dict '%s': key '%s' uses a reserved name (nnh5_*)",
				   f->path, name, key);
	/* Each component becomes a link name (splitting at '.' never cuts a UTF-8 character). */
	for (const char *p = key;;) {
		const char *dot = strchr(p, '.');
		int rc = nnh5__file_check_new_name(f, "state dict key component", p,
						   dot ? (size_t)(dot - p) : strlen(p));
		if (rc || !dot)
			return rc;
		p = dot + 1;
	}
}

/*
 * The module groups of the state dict being written, by their path under
 * the container ("optim/exp_avg/layers/3"), kept open for the whole write.
 * An optimizer's state dict interleaves its modules (model.x.w,
 * optim.exp_avg.x.w, optim.exp_avg_sq.x.w, ...): reopening the groups along
 * each key's path cost more instructions than creating the dataset. The
 * container is new, so a path not in the table does not exist yet and is
 * created without asking HDF5. At most GROUPS_OPEN stay open; beyond that
 * all are closed and reopened by name as needed.
 */
#define GROUPS_OPEN 4096

struct group_entry {
	char *path; /* NULL: empty slot */
	uint64_t hash;
	hid_t id;   /* -1 once closed */
};

struct group_table {
	hid_t root; /* the container (borrowed) */
	struct group_entry *slots;
	size_t nslots, len, open; /* nslots: a power of two, > 2 * len */
};

static void groups_close_all(struct group_table *t)
{
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].path && t->slots[i].id >= 0) {
			H5Gclose(t->slots[i].id);
			t->slots[i].id = -1;
		}
	t->open = 0;
}

static void groups_free(struct group_table *t)
{
	groups_close_all(t);
	for (size_t i = 0; i < t->nslots; i++)
		nnh5__free(t->slots[i].path);
	nnh5__free(t->slots);
	t->slots = NULL;
	t->nslots = t->len = 0;
}

static struct group_entry *groups_slot(const struct group_table *t, const char *path, size_t n,
				       uint64_t h)
{
	for (size_t i = (size_t)h & (t->nslots - 1);; i = (i + 1) & (t->nslots - 1)) {
		struct group_entry *e = &t->slots[i];
		if (!e->path || (e->hash == h && strncmp(e->path, path, n) == 0 && !e->path[n]))
			return e;
	}
}

static int groups_grow(struct group_table *t)
{
	struct group_table bigger = *t;

	bigger.nslots = t->nslots ? 2 * t->nslots : 64;
	bigger.slots = nnh5__calloc(bigger.nslots, sizeof *bigger.slots);
	if (!bigger.slots)
		return nnh5__nomem();
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].path)
			*groups_slot(&bigger, t->slots[i].path, strlen(t->slots[i].path),
				     t->slots[i].hash) = t->slots[i];
	nnh5__free(t->slots);
	*t = bigger;
	return NNH5_OK;
}

/* The open group at the first n bytes of path (components separated by '/'), borrowed. */
static int groups_get(hid_t *out, nnh5_file *f, struct group_table *t, const char *path, size_t n,
		      const char *key)
{
	uint64_t h = XXH3_64bits(path, n);
	struct group_entry *e;
	const char *slash;
	hid_t parent;
	int rc;

	if (n == 0) {
		*out = t->root;
		return NNH5_OK;
	}
	if (t->nslots == 0 && (rc = groups_grow(t)) != NNH5_OK)
		return rc;
	e = groups_slot(t, path, n, h);
	if (e->path && e->id >= 0) {
		*out = e->id;
		return NNH5_OK;
	}
	for (slash = path + n; slash > path && slash[-1] != '/'; slash--)
		;
	slash = slash > path ? slash - 1 : NULL;
	rc = groups_get(&parent, f, t, path, slash ? (size_t)(slash - path) : 0, key);
	if (rc)
		return rc;
	/* Grown only here, just before an insertion, so the table never fills up. */
	if (2 * (t->len + 1) >= t->nslots && (rc = groups_grow(t)) != NNH5_OK)
		return rc;
	/* The parent's lookup may have grown the table: find the slot again. */
	e = groups_slot(t, path, n, h);
	char leaf[256];
	const char *name = slash ? slash + 1 : path;
	snprintf(leaf, sizeof leaf, "%.*s", (int)(path + n - name), name);
	hid_t g = e->path ? H5Gopen2(parent, leaf, nnh5__file_lapl(f)) : create_group(f, parent, leaf);
	if (g < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create group for key '%s'",
				      f->path, key);
	if (!e->path) {
		e->path = nnh5__malloc(n + 1);
		if (!e->path) {
			H5Gclose(g);
			return nnh5__nomem();
		}
		memcpy(e->path, path, n);
		e->path[n] = '\0';
		e->hash = h;
		t->len++;
	}
	e->id = g;
	t->open++;
	*out = g;
	return NNH5_OK;
}

/*
 * Write t at key (tie NULL), or a hard link to the dataset of the key tie
 * written before it.
 */
static int write_state_tensor(nnh5_file *f, struct group_table *groups, const char *name,
			      const char *key, const nnh5_tensor *t, const char *tie)
{
	char disp[4200], rel[4096];
	size_t ncomp = 1, len = strlen(key);
	const char *p = key, *leaf = key;
	hid_t g;
	int rc;

	for (const char *dot; (dot = strchr(p, '.')) != NULL; p = dot + 1, ncomp++)
		if (dot - p >= 256)
			break;
	if (ncomp > MAX_DEPTH + 1 || strlen(p) >= 256 || len >= sizeof rel)
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': state dict '%s': key '%s' is nested too deeply or "
				   "has a component longer than 255 bytes",
				   f->path, name, key);
	memcpy(rel, key, len + 1);
	for (char *c = rel; *c; c++)
		if (*c == '.') {
			*c = '/';
			leaf = key + (c - rel) + 1;
		}
	nnh5__file_display_name(disp, sizeof disp, name, rel);
	/* Bounded: closing everything now leaves no group of this key's path open. */
	if (groups->open >= GROUPS_OPEN)
		groups_close_all(groups);
	rc = groups_get(&g, f, groups, rel, leaf == key ? 0 : (size_t)(leaf - key) - 1, key);
	if (rc)
		return rc;
	if (tie) {
		char target[4200];
		snprintf(rel, sizeof rel, "%s", tie);
		for (char *c = rel; *c; c++)
			if (*c == '.')
				*c = '/';
		nnh5__file_display_name(target, sizeof target, name, rel);
		return write_tie(f, g, leaf, target, disp);
	}
	return write_dataset(f, g, leaf, t, disp, true);
}

/*
 * Write keys[i] with the tensor fetch gives for it, one at a time; a key
 * with ties[i] != SIZE_MAX (ties may be NULL) is a hard link to the dataset
 * of keys[ties[i]], written before it, and is not fetched.
 */
static int write_state_stream(nnh5_file *f, const char *name, const char *const *keys, size_t n,
			      nnh5_tensor_source_fn fetch, void *ctx, const char *kind,
			      const size_t *ties)
{
	struct group_table groups = { -1, NULL, 0, 0, 0 };
	struct keyset ks = { NULL, n };
	hid_t g;
	int rc = NNH5_OK;

	ks.sorted = nnh5__calloc(n ? n : 1, sizeof *ks.sorted);
	if (!ks.sorted)
		return nnh5__nomem();
	memcpy(ks.sorted, keys, n * sizeof *keys);
	qsort(ks.sorted, n, sizeof *ks.sorted, cmp_str);
	for (size_t i = 0; !rc && i + 1 < n; i++)
		if (!strcmp(ks.sorted[i], ks.sorted[i + 1]))
			rc = nnh5__error(NNH5_ERR_INVALID, "'%s': state dict '%s': key '%s' given twice",
					 f->path, name, ks.sorted[i]);
	for (size_t i = 0; !rc && i < n; i++)
		rc = check_state_key(f, name, &ks, keys[i]);
	nnh5__free(ks.sorted);
	if (!rc)
		rc = nnh5__file_note_write(f, container_group(&g, f, name, kind));
	if (rc)
		return rc;
	rc = write_key_list(f, g, keys, n, name);
	groups.root = g;
	for (size_t i = 0; !rc && i < n; i++) {
		nnh5_tensor *t = NULL;
		if (ties && ties[i] != SIZE_MAX) {
			rc = write_state_tensor(f, &groups, name, keys[i], NULL, keys[ties[i]]);
			continue;
		}
		rc = fetch(&t, i, ctx);
		if (!rc && !t)
			rc = nnh5__error(NNH5_ERR_INVALID, "'%s': state dict '%s': no tensor for key '%s'",
					 f->path, name, keys[i]);
		if (!rc)
			rc = nnh5__check_bool(t, NNH5_ERR_INVALID, f->path, "tensor", keys[i]);
		if (!rc)
			rc = write_state_tensor(f, &groups, name, keys[i], t, NULL);
		nnh5_tensor_free(t);
	}
	groups_free(&groups);
	H5Gclose(g);
	return nnh5__file_note_write(f, rc);
}

/* The dict's tensors, borrowed: a view each, so the writer may free what it is given. */
static int fetch_dict(nnh5_tensor **out, size_t i, void *ctx)
{
	const nnh5_tensor *t = nnh5_dict_value(ctx, i);
	return nnh5_tensor_view_const(out, t->dtype, t->ndim, t->shape, t->data, t->nbytes);
}

int nnh5__file_write_state_dict_kind(nnh5_file *f, const char *name, const nnh5_dict *sd,
				     const char *kind)
{
	size_t n = nnh5_dict_len(sd);
	const char **keys;
	int rc;

	ENTER;
	if (!name)
		name = "/";
	keys = nnh5__calloc(n ? n : 1, sizeof *keys);
	if (!keys)
		LEAVE(nnh5__nomem());
	for (size_t i = 0; i < n; i++)
		keys[i] = nnh5_dict_key(sd, i);
	/* Tied tensors (nnh5_tensor_tied()) are written once, then linked. */
	size_t *ties = NULL;
	rc = nnh5__dict_ties(&ties, sd);
	if (!rc)
		rc = write_state_stream(f, name, keys, n, fetch_dict, (void *)(uintptr_t)sd, kind,
					ties);
	nnh5__free(ties);
	nnh5__free(keys);
	LEAVE(rc);
}

int nnh5_file_write_state_dict_stream(nnh5_file *f, const char *name, const char *const *keys,
				      size_t n, nnh5_tensor_source_fn fetch, void *ctx)
{
	int rc;

	ENTER;
	rc = write_state_stream(f, name ? name : "/", keys, n, fetch, ctx, "state_dict", NULL);
	LEAVE(rc);
}

int nnh5_file_write_state_dict(nnh5_file *f, const char *name, const nnh5_dict *sd)
{
	return nnh5__file_write_state_dict_kind(f, name, sd, "state_dict");
}

