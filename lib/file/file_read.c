/*
 * lib/file/file_read.c - read tensors, lists, dicts and state dicts back, refusing
 * storage that would read other files or run unknown code (the load policy,
 * lib/store/policy.c, checks every dataset before its data is read).
 */
#include "file/file_internal.h"
#include "store/h5util.h"
#include "store/rawio.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Reading                                                             */

int nnh5__dataset_stored_checksum(uint64_t *out, nnh5_file *f, hid_t did, const char *display)
{
	/* Open first: nnh5's datasets all have it, so asking whether it exists is a wasted lookup. */
	hid_t attr = H5Aopen(did, NNH5__CHECKSUM_ATTR, H5P_DEFAULT), type = -1;
	int rc = 1;

	if (attr < 0) {
		H5Eclear2(H5E_DEFAULT);
		if (H5Aexists(did, NNH5__CHECKSUM_ATTR) == 0)
			return 0;
	}
	if (attr >= 0)
		type = H5Aget_type(attr);
	/* One 8-byte integer: the type's size and the stored size say so. */
	if (attr < 0 || type < 0 || H5Tget_class(type) != H5T_INTEGER ||
	    H5Tget_size(type) != 8 || H5Aget_storage_size(attr) != 8 ||
	    H5Aread(attr, H5T_NATIVE_UINT64, out) < 0)
		rc = nnh5__h5_error(NNH5_ERR_FORMAT,
				    "'%s': dataset '%s': attribute %s is not one 64-bit integer",
				    f->path, display, NNH5__CHECKSUM_ATTR);
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
	return rc;
}

void nnh5__dataset_release(nnh5__dataset *ds)
{
	if (ds->mtype >= 0)
		H5Tclose(ds->mtype);
	ds->mtype = -1;
}

int nnh5__dataset_init(nnh5__dataset *ds, nnh5_file *f, hid_t did, const char *display)
{
	hsize_t dims[NNH5_MAX_NDIM];
	char desc[128];
	hid_t ftype = -1, space = -1;
	size_t numel;
	int ndim, rc;

	nnh5__storage storage;

	memset(ds, 0, sizeof *ds);
	ds->id = did;
	ds->mtype = -1;
	ds->offset = UINT64_MAX;
	rc = nnh5__policy_check_dataset(&storage, &f->policy, f->path, did, display);
	if (rc)
		return rc;
	ftype = H5Dget_type(did);
	if (ftype < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': dataset '%s': datatype", f->path,
				      display);
	if (nnh5__h5_dtype_of(&ds->dtype, &ds->mtype, ftype, desc, sizeof desc)) {
		rc = nnh5__error(NNH5_ERR_TYPE,
				 "'%s': dataset '%s' has HDF5 type %s, which nnh5 does not load as a "
				 "tensor",
				 f->path, display, desc);
		goto done;
	}
	ds->raw = H5Tequal(ftype, ds->mtype) > 0;
	space = H5Dget_space(did);
	H5S_class_t cls = space >= 0 ? H5Sget_simple_extent_type(space) : H5S_NO_CLASS;
	if (cls == H5S_NULL || cls == H5S_NO_CLASS) {
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': dataset '%s' has %s dataspace", f->path,
				    display, cls == H5S_NULL ? "a null (empty)" : "no valid");
		goto done;
	}
	ndim = H5Sget_simple_extent_dims(space, dims, NULL);
	if (ndim < 0 || ndim > NNH5_MAX_NDIM) {
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': dataset '%s': invalid rank", f->path,
				    display);
		goto done;
	}
	for (int i = 0; i < ndim; i++) {
		if (dims[i] > (hsize_t)INT64_MAX) {
			rc = nnh5__error(NNH5_ERR_OVERFLOW, "'%s': dataset '%s': dimension %d too large",
					 f->path, display, i);
			goto done;
		}
		ds->shape[i] = (int64_t)dims[i];
	}
	ds->ndim = (size_t)ndim;
	rc = nnh5__shape_size(ds->dtype, ds->ndim, ds->shape, &numel, &ds->nbytes);
	if (rc) {
		nnh5__error_wrap(rc, "'%s': dataset '%s'", f->path, display);
		goto done;
	}
	/*
	 * Raw transfer only for unfiltered contiguous data in this very file (not
	 * one reached through an allowed external link, not external storage).
	 */
	if (ds->nbytes && storage.layout == H5D_CONTIGUOUS && storage.offset != HADDR_UNDEF &&
	    storage.in_main_file && !storage.external && storage.nfilters == 0)
		ds->offset = (uint64_t)storage.offset;
done:
	if (space >= 0)
		H5Sclose(space);
	H5Tclose(ftype);
	if (rc)
		nnh5__dataset_release(ds);
	return rc;
}

int nnh5__dataset_check_bounds(nnh5_file *f, const nnh5__dataset *ds, uint64_t limit,
			       const char *display)
{
	uint64_t size;
	int rc = nnh5__file_size(&size, f);

	if (rc)
		return rc;
	if (size > limit)
		size = limit;
	if (ds->offset > size || size - ds->offset < ds->nbytes)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': dataset '%s': its data (bytes %llu to %llu) lies beyond the "
				   "end of the file (%llu bytes): truncated or damaged",
				   f->path, display, (unsigned long long)ds->offset,
				   (unsigned long long)(ds->offset + ds->nbytes),
				   (unsigned long long)size);
	return NNH5_OK;
}

int nnh5__dataset_expected_checksum(uint64_t *sum, nnh5_file *f, hid_t did, const char *display)
{
	int has = nnh5__dataset_stored_checksum(sum, f, did, display);

	if (has == 0 && f->require_checksums)
		return nnh5__error(NNH5_ERR_CHECKSUM,
				   "'%s': dataset '%s' has no checksum (attribute %s) and checksums "
				   "are required",
				   f->path, display, NNH5__CHECKSUM_ATTR);
	return has;
}

/* Read contiguous raw data with pread straight into t, hashing as it comes. */
static int read_raw(nnh5_file *f, const nnh5__dataset *ds, nnh5_tensor *t, uint64_t *hash,
		    const char *display)
{
	/* HDF5 would hand back zeros past the end of a truncated file: refuse. */
	int rc = nnh5__dataset_check_bounds(f, ds, UINT64_MAX, display), err;

	if (rc)
		return rc;
	err = nnh5__raw_read(f->raw_fd, t->data, t->nbytes, ds->offset, hash);
	if (err < 0)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': dataset '%s': the file ends before its data does "
				   "(truncated or damaged)",
				   f->path, display);
	if (err)
		return nnh5__error(NNH5_ERR_IO, "'%s': reading dataset '%s' failed: %s", f->path,
				   display, strerror(err));
	return NNH5_OK;
}

int nnh5__dataset_read(nnh5_tensor **out, nnh5_file *f, nnh5__dataset *ds, const char *display)
{
	nnh5_tensor *t = NULL;
	uint64_t stored = 0, actual = 0;
	bool verify = false;
	int rc;

	*out = NULL;
	if (f->verify_checksums || f->require_checksums) {
		int has = nnh5__dataset_expected_checksum(&stored, f, ds->id, display);
		if (has < 0)
			return has;
		verify = has && f->verify_checksums;
	}
	rc = nnh5__tensor_alloc_header(&t, ds->dtype, ds->ndim, ds->shape);
	if (rc)
		return nnh5__error_wrap(rc, "'%s': dataset '%s'", f->path, display);
	/* No zeroing: the read overwrites every byte. */
	if (t->nbytes) {
		t->data = nnh5__malloc(t->nbytes);
		if (!t->data) {
			nnh5__free(t);
			return nnh5__nomem();
		}
	}
	t->owns = true;
	if (t->nbytes && ds->raw && ds->offset != UINT64_MAX && f->raw_fd >= 0) {
		rc = read_raw(f, ds, t, verify ? &actual : NULL, display);
	} else {
		/* Compact, chunked, filtered or converted data: HDF5 reads straight into t. */
		if (t->nbytes && H5Dread(ds->id, ds->mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': reading dataset '%s' failed",
					    f->path, display);
		if (!rc && verify)
			actual = nnh5_tensor_checksum(t);
	}
	if (!rc && verify && actual != stored)
		rc = nnh5__error(NNH5_ERR_CHECKSUM,
				 "'%s': dataset '%s' is damaged: its data hashes to %016llx but "
				 "the stored checksum is %016llx",
				 f->path, display, (unsigned long long)actual,
				 (unsigned long long)stored);
	if (!rc)
		rc = nnh5__check_bool(t, NNH5_ERR_FORMAT, f->path, "dataset", display);
	if (rc) {
		nnh5_tensor_free(t);
		return rc;
	}
	*out = t;
	return NNH5_OK;
}

/* The loader of plain reads: check, describe, read. */
static int load_read(nnh5_tensor **out, nnh5_file *f, hid_t did, const char *display, void *ctx)
{
	nnh5__dataset ds;
	int rc;

	nnh5__plugin_guard plugins;

	(void)ctx;
	*out = NULL;
	nnh5__policy_plugins_off(&f->policy, &plugins);
	rc = nnh5__dataset_init(&ds, f, did, display);
	if (!rc) {
		rc = nnh5__dataset_read(out, f, &ds, display);
		nnh5__dataset_release(&ds);
	}
	nnh5__policy_plugins_restore(&plugins);
	return rc;
}

/* Check name exists and is an object of the wanted type. */
static int expect_object(nnh5_file *f, const char *name, H5O_type_t want)
{
	H5O_type_t type = H5O_TYPE_UNKNOWN;
	int rc = nnh5__file_check_path(f, name);

	if (!rc)
		rc = nnh5__file_check_exists(f, name);
	if (!rc)
		rc = nnh5__file_object_type(&type, f, f->fid, nnh5__file_is_root(name) ? "/" : name);
	if (!rc && type != want)
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is %s, not %s", f->path, name,
				 type == H5O_TYPE_GROUP ? "a group" : type == H5O_TYPE_DATASET
									  ? "a dataset"
									  : "a named datatype",
				 want == H5O_TYPE_GROUP ? "a group" : "a dataset");
	return rc;
}

int nnh5__file_open_dataset(hid_t *out, nnh5_file *f, const char *name)
{
	int rc = expect_object(f, name, H5O_TYPE_DATASET);

	*out = -1;
	if (rc)
		return rc;
	*out = H5Dopen2(f->fid, name, H5P_DEFAULT);
	if (*out < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open dataset '%s'", f->path,
				      name);
	return NNH5_OK;
}

int nnh5_file_read_tensor(nnh5_tensor **out, nnh5_file *f, const char *name)
{
	hid_t did;
	int rc;

	ENTER;
	*out = NULL;
	rc = nnh5__file_open_dataset(&did, f, name);
	if (rc)
		LEAVE(rc);
	rc = load_read(out, f, did, name, NULL);
	H5Dclose(did);
	LEAVE(rc);
}

int nnh5_file_stored_checksum(uint64_t *sum, bool *present, nnh5_file *f, const char *name)
{
	hid_t did;
	int rc;

	ENTER;
	*sum = 0;
	*present = false;
	rc = nnh5__file_open_dataset(&did, f, name);
	if (rc)
		LEAVE(rc);
	rc = nnh5__dataset_stored_checksum(sum, f, did, name);
	H5Dclose(did);
	if (rc < 0)
		LEAVE(rc);
	*present = rc == 1;
	LEAVE(NNH5_OK);
}

int nnh5_file_kind(nnh5_kind *out, nnh5_file *f, const char *name)
{
	H5O_type_t type = H5O_TYPE_UNKNOWN;
	char *kind = NULL;
	int rc, k;

	ENTER;
	rc = nnh5__file_check_path(f, name);
	if (!rc)
		rc = nnh5__file_check_exists(f, name);
	if (!rc)
		rc = nnh5__file_object_type(&type, f, f->fid, nnh5__file_is_root(name) ? "/" : name);
	if (rc)
		LEAVE(rc);
	if (type == H5O_TYPE_DATASET) {
		*out = NNH5_KIND_TENSOR;
		LEAVE(NNH5_OK);
	}
	if (type != H5O_TYPE_GROUP)
		LEAVE(nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is a named datatype", f->path,
				  name));
	if (H5Aexists_by_name(f->fid, nnh5__file_is_root(name) ? "/" : name, "nnh5_kind", H5P_DEFAULT) <= 0) {
		H5Eclear2(H5E_DEFAULT);
		*out = NNH5_KIND_GROUP;
		LEAVE(NNH5_OK);
	}
	char **arr;
	size_t n;
	rc = nnh5__file_attr_get_strings(&arr, &n, f, name, "nnh5_kind", true);
	if (rc)
		LEAVE(rc);
	kind = arr[0];
	nnh5__free(arr);
	k = nnh5__kind_from_name(kind);
	if (k < 0 || k == NNH5_KIND_TENSOR)
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' has unknown nnh5_kind '%s'",
				 f->path, name, kind);
	else
		*out = (nnh5_kind)k;
	nnh5__free(kind);
	LEAVE(rc);
}

/*
 * Group walks. One pass: every link is opened once (by address for hard
 * links, so no name lookup), groups are descended into with the open id and
 * datasets are loaded right away, then put in the stored key order.
 */

/* One dataset found by a group walk, already loaded. */
struct found {
	char *key;
	char *rel;
	size_t order; /* position in the walk */
	nnh5_tensor *t;
};

struct walk {
	nnh5_file *f;
	const char *group; /* the container's name, for messages */
	char sep;          /* '/' for dicts, '.' for state dicts */
	nnh5__load_fn load;
	void *ctx;
	struct found *items;
	size_t len, cap;
	struct nnh5__seen ancestors[NNH5__MAX_DEPTH_LIMIT + 1];
	size_t depth;
	uint64_t groups; /* visited, against the policy's max_groups */
	char rel[4096];
	char key[4096];
	int rc;
};

static int walk_group(struct walk *w, hid_t gid);

/* Load the dataset did as the walk's current key. */
static int walk_add(struct walk *w, hid_t did, const char *display)
{
	if (w->len >= w->f->policy.max_tensors)
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': group '%s' holds more than %llu datasets (max_tensors)",
				   w->f->path, w->group, (unsigned long long)w->f->policy.max_tensors);
	if (w->len == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64, bytes;
		struct found *p;
		if (!nnh5__mul_size(cap, sizeof *p, &bytes))
			return nnh5__nomem();
		p = nnh5__realloc(w->items, bytes);
		if (!p)
			return nnh5__nomem();
		w->items = p;
		w->cap = cap;
	}
	struct found *it = &w->items[w->len];
	it->key = nnh5__strdup(w->key);
	it->rel = nnh5__strdup(w->rel);
	it->order = w->len;
	it->t = NULL;
	if (!it->key || !it->rel) {
		nnh5__free(it->key);
		nnh5__free(it->rel);
		return nnh5__nomem();
	}
	w->len++;
	return w->load(&it->t, w->f, did, display, w->ctx);
}

static herr_t walk_cb(hid_t gid, const char *name, const H5L_info_t *linfo, void *data)
{
	struct walk *w = data;
	size_t rlen = strlen(w->rel), klen = strlen(w->key);
	char disp[4200];
	hid_t oid;

	if (strncmp(name, "nnh5_", 5) == 0)
		return 0; /* reserved for the format: never part of a dict */
	w->rc = nnh5__policy_check_name(&w->f->policy, w->f->path, w->rel[0] ? w->rel : w->group,
					name);
	if (w->rc)
		return -1;
	if (rlen + strlen(name) + 2 >= sizeof w->rel) {
		w->rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': group '%s': path too long", w->f->path,
				    w->group);
		return -1;
	}
	snprintf(w->rel + rlen, sizeof w->rel - rlen, "%s%s", rlen ? "/" : "", name);
	snprintf(w->key + klen, sizeof w->key - klen, "%s%s", klen ? (char[]){ w->sep, 0 } : "",
		 name);
	nnh5__file_display_name(disp, sizeof disp, w->group, w->rel);
	if (linfo->type != H5L_TYPE_HARD && linfo->type != H5L_TYPE_SOFT &&
	    !w->f->policy.allow_external) {
		w->rc = nnh5__error(NNH5_ERR_UNSAFE, "'%s': '%s' is %s: refused", w->f->path, disp,
				    linfo->type == H5L_TYPE_EXTERNAL
					    ? "an external link (to another file)"
					    : "a user-defined link");
		return -1;
	}
	oid = linfo->type == H5L_TYPE_HARD ? H5Oopen_by_addr(gid, linfo->u.address)
					   : H5Oopen(gid, name, H5P_DEFAULT);
	if (oid < 0) {
		w->rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'", w->f->path, disp);
		return -1;
	}
	H5I_type_t type = H5Iget_type(oid);
	if (type == H5I_DATASET) {
		w->rc = walk_add(w, oid, disp);
	} else if (type == H5I_GROUP) {
		H5O_info_t info;
		if (linfo->type == H5L_TYPE_SOFT) {
			w->rc = nnh5__error(NNH5_ERR_UNSAFE,
					    "'%s': '%s' is a soft link to a group: refused", w->f->path,
					    disp);
			H5Oclose(oid);
			return -1;
		}
		/* (file, address): a group reached through an allowed external link is another file's */
		if (H5Oget_info2(oid, &info, H5O_INFO_BASIC) < 0)
			w->rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'", w->f->path,
					       disp);
		for (size_t i = 0; i <= w->depth && !w->rc; i++)
			if (w->ancestors[i].obj == info.addr && w->ancestors[i].fileno == info.fileno)
				w->rc = nnh5__error(NNH5_ERR_FORMAT,
						    "'%s': group '%s' links back to its own ancestor "
						    "(a cycle)",
						    w->f->path, disp);
		if (!w->rc && w->depth >= w->f->policy.max_depth)
			w->rc = nnh5__error(NNH5_ERR_OVERFLOW,
					    "'%s': '%s' is nested deeper than %llu groups (max_depth)",
					    w->f->path, disp, (unsigned long long)w->f->policy.max_depth);
		if (!w->rc && ++w->groups > w->f->policy.max_groups)
			w->rc = nnh5__error(NNH5_ERR_OVERFLOW,
					    "'%s': group '%s' holds more than %llu groups (max_groups)",
					    w->f->path, w->group,
					    (unsigned long long)w->f->policy.max_groups);
		if (!w->rc) {
			w->ancestors[++w->depth] = (struct nnh5__seen){ info.fileno, info.addr };
			w->rc = walk_group(w, oid);
			w->depth--;
		}
	}
	H5Oclose(oid);
	w->rel[rlen] = '\0';
	w->key[klen] = '\0';
	return w->rc ? -1 : 0;
}

static int walk_group(struct walk *w, hid_t gid)
{
	H5_index_t idx = H5_INDEX_NAME;
	hid_t gcpl = H5Gget_create_plist(gid);
	unsigned flags = 0;

	if (gcpl >= 0) {
		if (H5Pget_link_creation_order(gcpl, &flags) >= 0 && (flags & H5P_CRT_ORDER_INDEXED))
			idx = H5_INDEX_CRT_ORDER;
		H5Pclose(gcpl);
	}
	if (H5Literate(gid, idx, H5_ITER_INC, NULL, walk_cb, w) < 0 && !w->rc)
		w->rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot list group '%s'", w->f->path,
				       w->group);
	return w->rc;
}

static int cmp_found_key(const void *a, const void *b)
{
	return strcmp(((const struct found *)a)->key, ((const struct found *)b)->key);
}

static int cmp_found_order(const void *a, const void *b)
{
	size_t x = ((const struct found *)a)->order, y = ((const struct found *)b)->order;
	return x < y ? -1 : x > y;
}

/*
 * Put the walk's datasets in the stored key order (nnh5_keys) when the group
 * has one; datasets it does not list follow in walk order, so nothing in the
 * file is lost, and keys it lists that are missing are ignored (their loss
 * is the caller's to notice). But a key listed twice, or a listed key
 * missing while a dataset goes unlisted, means the list is damaged (HDF5
 * keeps its strings in the global heap, which has no checksum): refused
 * rather than loaded in a wrong order. Keys are compared in the form the
 * walk makes them ('.' or '/'); a group read in the other form is ordered
 * without the damage checks.
 */
static int apply_key_order(struct walk *w, const char *name)
{
	char **keys;
	size_t nkeys, next = 0;
	const char *missing = NULL, *twice = NULL;
	int rc;

	if (w->len == 0 || !nnh5__file_has_attr(w->f, name, "nnh5_keys"))
		return NNH5_OK;
	rc = nnh5__file_attr_get_strings(&keys, &nkeys, w->f, name, "nnh5_keys", false);
	if (rc)
		return rc;
	qsort(w->items, w->len, sizeof *w->items, cmp_found_key);
	for (size_t i = 0; i < w->len; i++)
		w->items[i].order += nkeys; /* unlisted ones go after the listed */
	for (size_t i = 0; i < nkeys; i++) {
		struct found probe = { keys[i], NULL, 0, NULL };
		struct found *hit = bsearch(&probe, w->items, w->len, sizeof *w->items, cmp_found_key);
		if (hit && hit->order >= nkeys)
			hit->order = next++;
		else if (hit && !twice)
			twice = keys[i];
		else if (!hit && !missing)
			missing = keys[i];
	}
	nnh5_kind kind = NNH5_KIND_GROUP;
	if ((twice || (missing && next < w->len)) && nnh5_file_kind(&kind, w->f, name) != NNH5_OK)
		nnh5_error_clear(); /* no kind: a plain group, ordered as found */
	if ((twice || (missing && next < w->len)) &&
	    (w->sep == '.') == (kind == NNH5_KIND_STATE_DICT || kind == NNH5_KIND_MODEL ||
				kind == NNH5_KIND_CHECKPOINT)) {
		char esc[256];
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': group '%s': attribute nnh5_keys lists '%s' %s (a damaged key "
				 "list)",
				 w->f->path, w->group,
				 nnh5__escape(esc, sizeof esc, twice ? twice : missing),
				 twice ? "twice" : "but it is missing while other datasets are unlisted");
	}
	qsort(w->items, w->len, sizeof *w->items, cmp_found_order);
	nnh5__strings_free(keys, nkeys);
	return rc;
}

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->len; i++) {
		nnh5__free(w->items[i].key);
		nnh5__free(w->items[i].rel);
		nnh5_tensor_free(w->items[i].t);
	}
	nnh5__free(w->items);
}

int nnh5__file_read_group(nnh5_dict **out, nnh5_file *f, const char *name, char sep,
			  nnh5__load_fn load, void *ctx)
{
	struct walk w;
	nnh5_dict *d = NULL;
	hid_t g;
	int rc;

	*out = NULL;
	rc = expect_object(f, name, H5O_TYPE_GROUP);
	if (rc)
		return rc;
	memset(&w, 0, sizeof w);
	w.f = f;
	w.group = nnh5__file_is_root(name) ? "/" : name;
	w.sep = sep;
	w.load = load;
	w.ctx = ctx;
	g = H5Gopen2(f->fid, w.group, H5P_DEFAULT);
	if (g < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open group '%s'", f->path, name);
	H5O_info_t info;
	if (H5Oget_info2(g, &info, H5O_INFO_BASIC) >= 0)
		w.ancestors[0] = (struct nnh5__seen){ info.fileno, info.addr };
	rc = walk_group(&w, g);
	H5Gclose(g);
	if (!rc)
		rc = apply_key_order(&w, w.group);
	if (!rc)
		rc = nnh5_dict_new(&d);
	for (size_t i = 0; !rc && i < w.len; i++) {
		if (nnh5_dict_get(d, w.items[i].key))
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': group '%s': two datasets map to the key '%s'", f->path,
					 w.group, w.items[i].key);
		if (!rc) {
			rc = nnh5_dict_set(d, w.items[i].key, w.items[i].t);
			if (!rc)
				w.items[i].t = NULL; /* the dict owns it now */
		}
	}
	walk_free(&w);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

static int read_walk(nnh5_dict **out, nnh5_file *f, const char *name, char sep)
{
	return nnh5__file_read_group(out, f, name, sep, load_read, NULL);
}

int nnh5_file_read_dict(nnh5_dict **out, nnh5_file *f, const char *name)
{
	ENTER;
	LEAVE(read_walk(out, f, name, '/'));
}

int nnh5_file_read_state_dict(nnh5_dict **out, nnh5_file *f, const char *name)
{
	ENTER;
	LEAVE(read_walk(out, f, name, '.'));
}

/* "12" -> 12; false for anything but a canonical decimal number. */
static bool parse_index(const char *s, size_t *out)
{
	size_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*s - '0');
	}
	*out = v;
	return true;
}

int nnh5_file_read_list(nnh5_list **out, nnh5_file *f, const char *name)
{
	nnh5_dict *d = NULL;
	nnh5_list *list = NULL;
	nnh5_tensor **slots = NULL;
	size_t n;
	int rc;

	ENTER;
	*out = NULL;
	rc = read_walk(&d, f, name, '/');
	if (rc)
		LEAVE(rc);
	n = nnh5_dict_len(d);
	slots = nnh5__calloc(n ? n : 1, sizeof *slots);
	if (!slots)
		rc = nnh5__nomem();
	for (size_t i = 0; !rc && i < n; i++) {
		size_t at;
		const char *key = nnh5_dict_key(d, i);
		if (!parse_index(key, &at) || at >= n || slots[at])
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': list '%s': member '%s' is not an index 0..%zu", f->path,
					 name, key, n ? n - 1 : 0);
		else
			slots[at] = nnh5_dict_value(d, i);
	}
	if (!rc)
		rc = nnh5_list_new(&list);
	/* Move the tensors from the dict into the list in numeric order. */
	for (size_t i = 0; !rc && i < n; i++) {
		char key[32];
		nnh5_tensor *t;
		snprintf(key, sizeof key, "%zu", i);
		nnh5_dict_take(&t, d, key);
		rc = nnh5_list_append(list, t);
		if (rc)
			nnh5_tensor_free(t);
	}
	nnh5__free(slots);
	nnh5_dict_free(d);
	if (rc) {
		nnh5_list_free(list);
		LEAVE(rc);
	}
	*out = list;
	LEAVE(NNH5_OK);
}

