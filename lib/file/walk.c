/*
 * lib/file/walk.c - the one walk of the library (lib/file/walk.h): group
 * walks, the description of each dataset, and the public nnh5_file_walk().
 * Names and links are resolved by lib/file/resolve.c. Every reader goes
 * through here, so the rules about links, aliases and limits are written
 * once.
 */
#include "file/walk.h"
#include "file/resolve.h"
#include "store/h5util.h"
#include "nnh5/walk.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Describing datasets                                                 */

/* The nnh5_xxh3 attribute of ds: 1 present, 0 absent, < 0 malformed. */
static int read_checksum(nnh5__dataset *ds, nnh5_file *f, const char *display)
{
	/* Open first: nnh5's datasets all have it, so asking whether it exists is a wasted lookup. */
	hid_t attr = H5Aopen(ds->id, NNH5__CHECKSUM_ATTR, H5P_DEFAULT), type = -1;
	char esc[512];
	int rc = 1;

	if (attr < 0) {
		H5Eclear2(H5E_DEFAULT);
		if (H5Aexists(ds->id, NNH5__CHECKSUM_ATTR) == 0) {
			ds->has_checksum = 0;
			return 0;
		}
	}
	if (attr >= 0)
		type = H5Aget_type(attr);
	/* One 8-byte integer: the type's size and the stored size say so. */
	if (attr < 0 || type < 0 || H5Tget_class(type) != H5T_INTEGER ||
	    H5Tget_size(type) != 8 || H5Aget_storage_size(attr) != 8 ||
	    H5Aread(attr, H5T_NATIVE_UINT64, &ds->checksum) < 0)
		rc = nnh5__h5_error(NNH5_ERR_FORMAT,
				    "'%s': dataset '%s': attribute %s is not one 64-bit integer",
				    f->path, nnh5__escape(esc, sizeof esc, display), NNH5__CHECKSUM_ATTR);
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
	if (rc == 1)
		ds->has_checksum = 1;
	return rc;
}

int nnh5__dataset_expected_checksum(uint64_t *sum, nnh5_file *f, nnh5__dataset *ds,
				    const char *display)
{
	int has = ds->has_checksum >= 0 ? ds->has_checksum : read_checksum(ds, f, display);

	if (has < 0)
		return has;
	if (has == 0 && f->require_checksums)
		return nnh5__error(NNH5_ERR_CHECKSUM,
				   "'%s': dataset '%s' has no checksum (attribute %s) and checksums "
				   "are required",
				   f->path, display, NNH5__CHECKSUM_ATTR);
	*sum = ds->checksum;
	return has;
}

/* Attribute name of ds as count uint64 values (1: scalar) into out; a message names the problem. */
static const char *read_u64s(uint64_t *out, hid_t id, const char *name, uint64_t count, bool scalar)
{
	hid_t attr = H5Aopen(id, name, H5P_DEFAULT), type = -1, space = -1;
	const char *bad = NULL;
	hsize_t dim = 0;

	if (attr < 0)
		return "cannot be opened";
	type = H5Aget_type(attr);
	space = H5Aget_space(attr);
	if (type < 0 || space < 0 || H5Tget_class(type) != H5T_INTEGER || H5Tget_size(type) != 8 ||
	    H5Tget_sign(type) != H5T_SGN_NONE)
		bad = "is not of type uint64";
	else if (scalar ? H5Sget_simple_extent_type(space) != H5S_SCALAR
			: H5Sget_simple_extent_ndims(space) != 1 ||
				  H5Sget_simple_extent_dims(space, &dim, NULL) != 1)
		bad = scalar ? "is not a scalar" : "is not one-dimensional";
	else if (!scalar && dim != count)
		bad = "does not have one entry per block of the data";
	else if (H5Aget_storage_size(attr) != 8 * count || H5Aread(attr, H5T_NATIVE_UINT64, out) < 0)
		bad = "cannot be read";
	if (space >= 0)
		H5Sclose(space);
	if (type >= 0)
		H5Tclose(type);
	H5Aclose(attr);
	return bad;
}

int nnh5__dataset_block_table(uint64_t **table, uint64_t *count, uint64_t *block_bytes,
			      nnh5_file *f, const nnh5__dataset *ds, const char *display)
{
	htri_t has_b = H5Aexists(ds->id, NNH5__BLOCK_BYTES_ATTR);
	htri_t has_t = H5Aexists(ds->id, NNH5__BLOCKS_ATTR);
	const char *bad = NULL, *which = NNH5__BLOCK_BYTES_ATTR;
	char esc[512];
	uint64_t b = 0, n = 0, *t = NULL;

	*table = NULL;
	*count = *block_bytes = 0;
	if (has_b < 0 || has_t < 0) {
		bad = "cannot be looked up";
	} else if (!has_b && !has_t) {
		return 0;
	} else if (!has_b || !has_t) {
		which = has_b ? NNH5__BLOCKS_ATTR : NNH5__BLOCK_BYTES_ATTR;
		bad = "is missing (the other block attribute is present)";
	} else if ((bad = read_u64s(&b, ds->id, NNH5__BLOCK_BYTES_ATTR, 1, true)) == NULL) {
		if (!b || b != nnh5__block_bytes(&n, (uint64_t)ds->nbytes)) {
			bad = "is not 16 MiB times the smallest power of two giving at most 4096 "
			      "blocks of the data";
		} else {
			which = NNH5__BLOCKS_ATTR;
			if (!(t = nnh5__malloc((size_t)(n ? n : 1) * sizeof *t)))
				return nnh5__nomem();
			bad = read_u64s(t, ds->id, NNH5__BLOCKS_ATTR, n, false);
		}
	}
	if (bad) {
		nnh5__free(t);
		H5Eclear2(H5E_DEFAULT);
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': dataset '%s': block checksum attribute %s %s (damaged)",
				   f->path, nnh5__escape(esc, sizeof esc, display), which, bad);
	}
	*table = t;
	*count = n;
	*block_bytes = b;
	return 1;
}

int nnh5__dataset_not_tensor(nnh5_file *f, const nnh5__dataset *ds, const char *display)
{
	if (ds->st.space == H5S_NULL)
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': dataset '%s' has a null (empty) dataspace",
				   f->path, display);
	return nnh5__error(NNH5_ERR_TYPE,
			   "'%s': dataset '%s' has HDF5 type %s, which nnh5 does not load as a tensor",
			   f->path, display, ds->type_desc);
}

static void dataset_release(nnh5__dataset *ds)
{
	if (ds->mtype >= 0)
		H5Tclose(ds->mtype);
	ds->mtype = -1;
	nnh5__storage_release(&ds->st);
}

/*
 * Keras 3 writes bfloat16 variables through ml_dtypes, which h5py stores as
 * a 2-byte opaque type, and marks them with the attribute dtype =
 * "bfloat16" (keras/src/saving/saving_lib.py, H5IOStore): those load as
 * bfloat16, bytes unchanged. Any other opaque type stays a non-tensor.
 */
static bool keras_bfloat16(nnh5__dataset *ds, nnh5_file *f, const char *display)
{
	char **v;
	size_t n;
	bool yes;

	if (H5Tget_class(ds->st.type) != H5T_OPAQUE || H5Tget_size(ds->st.type) != 2 ||
	    H5Aexists(ds->id, "dtype") <= 0) {
		H5Eclear2(H5E_DEFAULT);
		return false;
	}
	if (nnh5__attr_get_strings_on(&v, &n, f, ds->id, display, "dtype", true)) {
		nnh5_error_clear();
		return false;
	}
	yes = strcmp(v[0], "bfloat16") == 0;
	nnh5__strings_free(v, n);
	if (yes) {
		ds->dtype = NNH5_BFLOAT16;
		ds->mtype = H5Tcopy(ds->st.type);
	}
	return yes && ds->mtype >= 0;
}

/* Describe and judge the dataset obj: the policy, then what it loads as. */
static int describe(nnh5__dataset *ds, nnh5_file *f, const nnh5__policy *p, const nnh5__obj *obj,
		    const char *display)
{
	int rc;

	memset(ds, 0, sizeof *ds);
	ds->id = obj->id;
	ds->mtype = -1;
	ds->offset = UINT64_MAX;
	ds->has_checksum = -1;
	rc = nnh5__policy_describe(&ds->st, p, f->path, obj->id, obj->fileno, obj->addr, display);
	if (rc)
		return rc;
	rc = nnh5__policy_judge(&ds->st, p, f->path, display);
	if (rc)
		return rc;
	if (nnh5__h5_dtype_of(&ds->dtype, &ds->mtype, ds->st.type, ds->type_desc,
			      sizeof ds->type_desc) != NNH5_OK &&
	    !keras_bfloat16(ds, f, display))
		return NNH5_OK; /* a dataset, not a tensor */
	snprintf(ds->type_desc, sizeof ds->type_desc, "%s", nnh5_dtype_name(ds->dtype));
	if (ds->st.space == H5S_NULL)
		return NNH5_OK; /* no shape: not a tensor either */
	if (ds->st.ndim > NNH5_MAX_NDIM)
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': dataset '%s': invalid rank", f->path,
				   display);
	for (int i = 0; i < ds->st.ndim; i++) {
		if (ds->st.dims[i] > (hsize_t)INT64_MAX)
			return nnh5__error(NNH5_ERR_OVERFLOW,
					   "'%s': dataset '%s': dimension %d too large", f->path,
					   display, i);
		ds->shape[i] = (int64_t)ds->st.dims[i];
	}
	ds->ndim = (size_t)ds->st.ndim;
	size_t numel;
	rc = nnh5__shape_size(ds->dtype, ds->ndim, ds->shape, &numel, &ds->nbytes);
	if (rc)
		return nnh5__error_wrap(rc, "'%s': dataset '%s'", f->path, display);
	ds->raw = H5Tequal(ds->st.type, ds->mtype) > 0;
	/*
	 * Raw transfer only for unfiltered contiguous data in this very file (not
	 * one reached through an allowed external link, not external storage).
	 */
	if (ds->nbytes && ds->st.offset != HADDR_UNDEF && ds->st.in_main_file &&
	    !ds->st.external && ds->st.nfilters == 0)
		ds->offset = (uint64_t)ds->st.offset;
	ds->tensor = true;
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Walking                                                             */

/*
 * An object met by a walk, by address, with the path it was first met
 * under. A load of many small tensors ends its walk with every tensor
 * loaded and one of these for each object beside them, so they are small:
 * 16 bytes, the file as an index into the walk's few file numbers and the
 * path as an offset into one buffer of paths, found through a table of
 * 32-bit indices (a walk stops at max_tensors + max_groups objects, far
 * below 2^32).
 */
struct met {
	haddr_t addr;
	uint32_t file; /* index into filenos */
	uint32_t path; /* offset of the NUL-terminated path in paths */
};

struct walk {
	nnh5_file *f;
	nnh5__policy *p;
	const nnh5__walk_options *o;
	nnh5__walk_fn fn;
	void *ctx;
	char path[NNH5__PATH_BYTES]; /* the current entry's path; "" for the root */
	size_t start_len;      /* the start's part of path */
	const char *start;     /* the start as the caller named it, for messages */
	bool start_absolute;   /* named from the root: messages show paths as they are */
	char display[NNH5__PATH_BYTES]; /* the current entry as messages name it (start as given) */
	struct nnh5__seen anc[NNH5__MAX_DEPTH_LIMIT + 2];
	size_t depth;
	bool reserved; /* the group being listed is reserved (or below one) */
	struct met *met;
	size_t n_met, cap_met;
	uint32_t *slots; /* index + 1 into met; 0 = empty; a power of two > 2 * n_met */
	size_t n_slots;
	char *paths;     /* moves as it grows: a path found is used before the next is added */
	size_t paths_len, paths_cap;
	unsigned long *filenos;
	size_t n_filenos;
	/*
	 * The member being resolved: used before the walk descends below it, so
	 * one copy serves every level (frames stay small however deep the walk).
	 */
	char target[NNH5__PATH_BYTES];
	char parent[NNH5__PATH_BYTES];
	struct nnh5__resolver r;
	uint64_t groups, datasets, alias_bytes;
	int rc;
};

static size_t met_hash(uint32_t file, haddr_t addr, size_t cap)
{
	uint64_t h = ((uint64_t)addr ^ ((uint64_t)file << 48)) * UINT64_C(0x9E3779B97F4A7C15);
	return (size_t)(h >> 20) & (cap - 1);
}

/* The index of fileno among the walk's file numbers; UINT32_MAX if new. */
static uint32_t met_file(const struct walk *w, unsigned long fileno)
{
	for (size_t i = 0; i < w->n_filenos; i++)
		if (w->filenos[i] == fileno)
			return (uint32_t)i;
	return UINT32_MAX;
}

/* The path under which the walk met (fileno, addr) first, or NULL. */
static const char *met_find(const struct walk *w, unsigned long fileno, haddr_t addr)
{
	uint32_t file = met_file(w, fileno);

	if (!w->n_slots || file == UINT32_MAX)
		return NULL;
	for (size_t i = met_hash(file, addr, w->n_slots);; i = (i + 1) & (w->n_slots - 1)) {
		uint32_t at = w->slots[i];
		if (!at)
			return NULL;
		if (w->met[at - 1].file == file && w->met[at - 1].addr == addr)
			return w->paths + w->met[at - 1].path;
	}
}

/* Make room for n more items of elsize in *arr (of *cap); false when out of memory. */
static bool met_grow(void **arr, size_t *cap, size_t len, size_t n, size_t elsize)
{
	size_t ncap = *cap ? *cap : 256, bytes;
	void *q;

	if (len + n <= *cap)
		return true;
	while (ncap < len + n)
		ncap *= 2;
	if (!nnh5__mul_size(ncap, elsize, &bytes) || !(q = nnh5__realloc(*arr, bytes)))
		return false;
	*arr = q;
	*cap = ncap;
	return true;
}

static int met_add(struct walk *w, unsigned long fileno, haddr_t addr, const char *path)
{
	uint32_t file = met_file(w, fileno);
	size_t plen = strlen(path[0] ? path : "/") + 1, cap_filenos = w->n_filenos;

	if (w->n_met >= UINT32_MAX / 2 || w->paths_len + plen > UINT32_MAX)
		return nnh5__nomem();
	if (file == UINT32_MAX) {
		if (!met_grow((void **)&w->filenos, &cap_filenos, w->n_filenos, 1, sizeof *w->filenos))
			return nnh5__nomem();
		w->filenos[w->n_filenos] = fileno;
		file = (uint32_t)w->n_filenos++;
	}
	if (!met_grow((void **)&w->met, &w->cap_met, w->n_met, 1, sizeof *w->met) ||
	    !met_grow((void **)&w->paths, &w->paths_cap, w->paths_len, plen, 1))
		return nnh5__nomem();
	if (2 * (w->n_met + 1) >= w->n_slots) {
		size_t n = w->n_slots ? 2 * w->n_slots : 512;
		uint32_t *slots = nnh5__calloc(n, sizeof *slots);
		if (!slots)
			return nnh5__nomem();
		for (size_t k = 0; k < w->n_met; k++) {
			size_t j = met_hash(w->met[k].file, w->met[k].addr, n);
			while (slots[j])
				j = (j + 1) & (n - 1);
			slots[j] = (uint32_t)(k + 1);
		}
		nnh5__free(w->slots);
		w->slots = slots;
		w->n_slots = n;
	}
	size_t i = met_hash(file, addr, w->n_slots);
	while (w->slots[i])
		i = (i + 1) & (w->n_slots - 1);
	memcpy(w->paths + w->paths_len, path[0] ? path : "/", plen);
	w->met[w->n_met] = (struct met){ addr, file, (uint32_t)w->paths_len };
	w->paths_len += plen;
	w->slots[i] = (uint32_t)++w->n_met;
	return NNH5_OK;
}

static const char *entry_path(const struct walk *w)
{
	return w->path[0] ? w->path : "/";
}

/* How messages name the current entry: below the start as the caller named it. */
static const char *entry_display(struct walk *w)
{
	const char *below = w->path + w->start_len;
	size_t ls, lb;

	if (!*below)
		return w->start;
	if (w->start_absolute)
		return w->path;
	/* A start named without its leading '/': "name" + below (the sizes fit: both are paths). */
	ls = strlen(w->start);
	lb = strlen(below);
	if (ls + lb >= sizeof w->display)
		lb = sizeof w->display - ls - 1;
	memcpy(w->display, w->start, ls);
	memcpy(w->display + ls, below, lb);
	w->display[ls + lb] = '\0';
	return w->display;
}

static int emit(struct walk *w, const nnh5_entry *e, hid_t id, nnh5__dataset *ds)
{
	const char *rel = w->path + w->start_len;
	nnh5__item it = { e, id, ds, *rel == '/' ? rel + 1 : rel, entry_display(w) };
	int r = w->fn(&it, w->ctx);

	if (r)
		w->rc = r;
	return r;
}

/*
 * A refused object: with keep_going an NNH5_ENTRY_REFUSED entry carrying
 * the status and message a load gets, else the end of the walk. Running out
 * of memory always ends it.
 */
static int refuse(struct walk *w, nnh5_entry *e, int status)
{
	char msg[2048];

	if (!w->o->keep_going || status == NNH5_ERR_NOMEM) {
		w->rc = status;
		return status;
	}
	snprintf(msg, sizeof msg, "%s", nnh5_error_message());
	nnh5_error_clear();
	e->type = NNH5_ENTRY_REFUSED;
	e->status = status;
	e->message = msg;
	return emit(w, e, -1, NULL);
}

static nnh5_layout public_layout(const nnh5__storage *s)
{
	if (s->external)
		return NNH5_LAYOUT_EXTERNAL;
	switch (s->layout) {
	case H5D_COMPACT: return NNH5_LAYOUT_COMPACT;
	case H5D_CHUNKED: return NNH5_LAYOUT_CHUNKED;
	case H5D_VIRTUAL: return NNH5_LAYOUT_VIRTUAL;
	default: return NNH5_LAYOUT_CONTIGUOUS;
	}
}

static int visit_group(struct walk *w, nnh5_entry *e, const nnh5__obj *obj);

static int visit_dataset(struct walk *w, nnh5_entry *e, const nnh5__obj *obj)
{
	const char *display = entry_display(w);
	int64_t shape[H5S_MAX_RANK];
	nnh5__dataset ds;
	int rc;

	rc = nnh5__policy_count_dataset(w->p, &w->datasets, w->f->path, w->start);
	if (rc)
		return refuse(w, e, rc);
	rc = describe(&ds, w->f, w->p, obj, display);
	if (!rc && ds.tensor && w->o->materialise)
		rc = nnh5__policy_count(&ds.st, w->p, w->f->path, display, e->alias_of,
					w->o->tie_aliases, &w->alias_bytes);
	if (!rc && w->o->checksums && read_checksum(&ds, w->f, display) < 0)
		rc = NNH5_ERR_FORMAT;
	if (rc) {
		dataset_release(&ds);
		return refuse(w, e, rc);
	}
	e->type = ds.tensor ? NNH5_ENTRY_TENSOR : NNH5_ENTRY_DATASET;
	e->dtype = ds.dtype;
	e->type_desc = ds.type_desc;
	e->null_space = ds.st.space == H5S_NULL;
	e->ndim = e->null_space ? 0 : (size_t)ds.st.ndim;
	for (size_t i = 0; i < e->ndim; i++)
		shape[i] = (int64_t)ds.st.dims[i];
	e->shape = shape;
	e->numel = ds.st.numel;
	e->nbytes = ds.st.logical_bytes;
	e->stored_bytes = ds.st.storage_bytes;
	e->layout = public_layout(&ds.st);
	e->nfilters = ds.st.nfilters;
	e->has_checksum = ds.has_checksum == 1;
	e->checksum = ds.checksum;
	rc = emit(w, e, obj->id, &ds);
	dataset_release(&ds);
	return rc;
}

/* Visit the object obj named by the entry e (its path is w->path). */
static int visit(struct walk *w, nnh5_entry *e, const nnh5__obj *obj)
{
	e->alias_of = met_find(w, obj->fileno, obj->addr);
	if (!e->alias_of && obj->type != H5O_TYPE_UNKNOWN) {
		int rc = met_add(w, obj->fileno, obj->addr, w->path);
		if (rc)
			return refuse(w, e, rc);
	}
	switch (obj->type) {
	case H5O_TYPE_GROUP: return visit_group(w, e, obj);
	case H5O_TYPE_DATASET: return visit_dataset(w, e, obj);
	case H5O_TYPE_NAMED_DATATYPE:
		e->type = NNH5_ENTRY_DATATYPE;
		return emit(w, e, obj->id, NULL);
	default:
		return refuse(w, e,
			      nnh5__error(NNH5_ERR_FORMAT, "'%s': '%s' is an object of unknown type",
					  w->f->path, entry_display(w)));
	}
}

static herr_t member_cb(hid_t gid, const char *name, const H5L_info_t *li, void *data);

static int visit_group(struct walk *w, nnh5_entry *e, const nnh5__obj *obj)
{
	const char *display = entry_display(w);
	char esc[512];
	int rc;

	e->type = NNH5_ENTRY_GROUP;
	e->kind = NNH5_KIND_GROUP;
	if (e->depth > 0) {
		if (e->link == NNH5_LINK_SOFT)
			return refuse(w, e,
				      nnh5__error(NNH5_ERR_UNSAFE,
						  "'%s': '%s' is a soft link to a group: refused",
						  w->f->path, nnh5__escape(esc, sizeof esc, display)));
		for (size_t i = 0; i <= w->depth; i++)
			if (w->anc[i].obj == obj->addr && w->anc[i].fileno == obj->fileno)
				return refuse(w, e,
					      nnh5__error(NNH5_ERR_FORMAT,
							  "'%s': group '%s' links back to its own "
							  "ancestor (a cycle)",
							  w->f->path,
							  nnh5__escape(esc, sizeof esc, display)));
		rc = nnh5__policy_count_group(w->p, &w->groups, e->depth, w->f->path, w->start,
					      display);
		if (rc)
			return refuse(w, e, rc);
	}
	if (w->o->kinds) {
		rc = nnh5__group_kind(&e->kind, w->f, obj->id, display);
		if (rc)
			return refuse(w, e, rc);
	}
	rc = emit(w, e, obj->id, NULL);
	if (rc || (w->o->shallow && e->depth > 0))
		return rc;

	bool reserved = w->reserved;
	hsize_t at = 0;

	w->anc[w->depth + (e->depth > 0)] = (struct nnh5__seen){ obj->fileno, obj->addr };
	if (e->depth > 0)
		w->depth++;
	w->reserved = e->reserved;
	/*
	 * Creation order where the group tracks it (nnh5's groups, h5py's with
	 * track_order), else names: asking HDF5 first (H5Gget_create_plist) cost
	 * more than the refusal of an untracked group, which visits nothing.
	 */
	herr_t st = H5Literate(obj->id, H5_INDEX_CRT_ORDER, H5_ITER_INC, &at, member_cb, w);
	if (st < 0 && at == 0 && !w->rc) {
		H5Eclear2(H5E_DEFAULT);
		st = H5Literate(obj->id, H5_INDEX_NAME, H5_ITER_INC, NULL, member_cb, w);
	}
	if (st < 0 && !w->rc)
		w->rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot list group '%s'", w->f->path,
				       nnh5__escape(esc, sizeof esc, entry_display(w)));
	w->reserved = reserved;
	if (e->depth > 0)
		w->depth--;
	return w->rc;
}

static nnh5_link_type public_link(H5L_type_t t)
{
	switch (t) {
	case H5L_TYPE_HARD: return NNH5_LINK_HARD;
	case H5L_TYPE_SOFT: return NNH5_LINK_SOFT;
	case H5L_TYPE_EXTERNAL: return NNH5_LINK_EXTERNAL;
	default: return NNH5_LINK_USER;
	}
}

/* The stored value of a soft or external link ("FILE:PATH" for external ones). */
static void link_value(char *out, size_t n, hid_t gid, const char *name, const H5L_info_t *li,
		       hid_t lapl)
{
	char val[NNH5__PATH_BYTES];
	const char *file, *obj;
	unsigned flags;

	out[0] = '\0';
	if (li->u.val_size == 0 || li->u.val_size > sizeof val ||
	    H5Lget_val(gid, name, val, sizeof val, lapl) < 0) {
		H5Eclear2(H5E_DEFAULT);
		return;
	}
	val[sizeof val - 1] = '\0';
	if (li->type == H5L_TYPE_SOFT)
		snprintf(out, n, "%s", val);
	else if (li->type == H5L_TYPE_EXTERNAL &&
		 H5Lunpack_elink_val(val, li->u.val_size, &flags, &file, &obj) >= 0)
		snprintf(out, n, "%s:%s", file, obj);
	H5Eclear2(H5E_DEFAULT);
}

/* One link of the group being listed: resolve it, then visit what it names. */
static herr_t member_cb(hid_t gid, const char *name, const H5L_info_t *li, void *data)
{
	struct walk *w = data;
	size_t plen = strlen(w->path);
	char *target = w->target, *parent = w->parent;
	struct nnh5__resolver *r = &w->r;
	nnh5__obj obj = { -1, H5O_TYPE_UNKNOWN, 0, 0 };
	nnh5_entry e;
	int rc = NNH5_OK;

	memset(&e, 0, sizeof e);
	e.name = name;
	e.depth = w->depth + 1;
	e.link = public_link(li->type);
	e.reserved = w->reserved || strncmp(name, "nnh5_", 5) == 0;
	e.path = w->path;
	/*
	 * The format's own links are not part of what loads return, but what
	 * they point at is judged all the same: no other file, ever.
	 */
	bool skip = e.reserved && !w->o->reserved;
	if (!skip)
		rc = nnh5__policy_check_name(w->p, w->f->path, entry_display(w), name);
	/* Soft links are resolved from their group: keep its name for messages. */
	if (li->type == H5L_TYPE_SOFT)
		snprintf(parent, sizeof w->parent, "%s", entry_display(w));
	if (plen + strlen(name) + 2 > sizeof w->path) {
		if (!rc)
			rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': group '%s': path too long",
					 w->f->path, w->start);
		return refuse(w, &e, rc) ? 1 : 0; /* named by its group: its path does not fit */
	}
	snprintf(w->path + plen, sizeof w->path - plen, "/%s", name);
	if (rc) {
		refuse(w, &e, rc);
		w->path[plen] = '\0';
		return w->rc ? 1 : 0;
	}
	const char *display = entry_display(w);
	if (li->type != H5L_TYPE_HARD) {
		link_value(target, sizeof w->target, gid, name, li, nnh5__file_lapl(w->f));
		e.link_target = target;
	}
	nnh5__resolver_init(r, w->f);
	if (!rc && li->type == H5L_TYPE_HARD && !skip) {
		obj.id = H5Oopen_by_addr(gid, li->u.address);
		if (obj.id < 0) {
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'", w->f->path,
					    display);
		} else {
			/* Hard links stay in their file: no need to ask HDF5 where it is. */
			H5I_type_t t = H5Iget_type(obj.id);
			obj.type = t == H5I_GROUP ? H5O_TYPE_GROUP
				   : t == H5I_DATASET ? H5O_TYPE_DATASET
				   : t == H5I_DATATYPE ? H5O_TYPE_NAMED_DATATYPE : H5O_TYPE_UNKNOWN;
			obj.fileno = w->anc[w->depth].fileno;
			obj.addr = li->u.address;
		}
	} else if (!rc && li->type == H5L_TYPE_SOFT) {
		hid_t id = -1;
		rc = nnh5__follow_soft(&id, r, gid, parent, name, display, li);
		H5O_info_t info;
		if (!rc && H5Oget_info2(id, &info, H5O_INFO_BASIC) < 0)
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'",
					    w->f->path, display);
		if (!rc) {
			obj = (nnh5__obj){ id, info.type, info.fileno, info.addr };
		} else if (id >= 0) {
			H5Oclose(id);
		}
		if (!rc && skip) {
			H5Oclose(obj.id);
			obj.id = -1;
		}
	} else if (!rc && li->type != H5L_TYPE_HARD) {
		if (!w->f->policy.allow_external) {
			rc = nnh5__refuse_link(r, gid, name, display, li);
		} else if (!skip) {
			H5O_info_t info;
			obj.id = H5Oopen(gid, name, H5P_DEFAULT);
			if (obj.id < 0 || H5Oget_info2(obj.id, &info, H5O_INFO_BASIC) < 0)
				rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'",
						    w->f->path, display);
			else
				obj = (nnh5__obj){ obj.id, info.type, info.fileno, info.addr };
		}
	}
	if (rc)
		refuse(w, &e, rc);
	else if (!skip)
		visit(w, &e, &obj);
	if (obj.id >= 0)
		H5Oclose(obj.id);
	w->path[plen] = '\0';
	return w->rc ? 1 : 0;
}

int nnh5__walk(nnh5_file *f, const char *name, const nnh5__walk_options *o, nnh5__walk_fn fn,
	       void *ctx)
{
	struct walk w;
	nnh5__obj obj;
	nnh5_entry e;
	char start[NNH5__PATH_BYTES];
	int rc = nnh5__resolve(&obj, f, name);

	if (rc)
		return rc;
	if (o->expect != H5O_TYPE_UNKNOWN && obj.type != o->expect) {
		H5Oclose(obj.id);
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is %s, not %s", f->path, name,
				   obj.type == H5O_TYPE_GROUP     ? "a group"
				   : obj.type == H5O_TYPE_DATASET ? "a dataset"
								  : "a named datatype",
				   o->expect == H5O_TYPE_GROUP ? "a group" : "a dataset");
	}
	memset(&w, 0, sizeof w);
	w.f = f;
	w.p = o->policy ? o->policy : &f->policy;
	w.o = o;
	w.fn = fn;
	w.ctx = ctx;
	if (!nnh5__file_is_root(name))
		snprintf(w.path, sizeof w.path, "%s%s", name[0] == '/' ? "" : "/", name);
	snprintf(start, sizeof start, "%s", nnh5__file_is_root(name) ? "/" : name);
	w.start = start;
	w.start_absolute = name[0] == '/' || nnh5__file_is_root(name);
	w.start_len = strlen(w.path);
	w.anc[0] = (struct nnh5__seen){ obj.fileno, obj.addr };
	memset(&e, 0, sizeof e);
	e.path = entry_path(&w);
	e.name = strrchr(e.path, '/')[1] ? strrchr(e.path, '/') + 1 : "/";
	e.link = NNH5_LINK_HARD;
	e.reserved = strstr(e.path, "/nnh5_") != NULL;
	w.reserved = e.reserved;
	visit(&w, &e, &obj);
	H5Oclose(obj.id);
	nnh5__free(w.met);
	nnh5__free(w.slots);
	nnh5__free(w.paths);
	nnh5__free(w.filenos);
	return w.rc;
}

/* ------------------------------------------------------------------ */
/* The public walk                                                     */

struct public_walk {
	nnh5_walk_fn fn;
	void *ctx;
};

static int public_cb(const nnh5__item *it, void *p)
{
	const struct public_walk *pw = p;
	return pw->fn(it->e, pw->ctx);
}

int nnh5_file_walk(nnh5_file *f, const char *path, const nnh5_walk_options *opts,
		   nnh5_walk_fn fn, void *ctx)
{
	nnh5_walk_options defaults = NNH5_WALK_OPTIONS_INIT;
	struct public_walk pw = { fn, ctx };
	nnh5__policy scratch;
	int rc;

	ENTER;
	if (!opts)
		opts = &defaults;
	if (opts->version != NNH5_WALK_OPTIONS_VERSION)
		LEAVE(nnh5__error(NNH5_ERR_INVALID, "'%s': walk: unknown options version %u",
				  f->path, opts->version));
	if (nnh5__file_writable(f) || f->fid < 0)
		LEAVE(nnh5__error(NNH5_ERR_INVALID, "'%s': walk: the file is not open for reading",
				  f->path));
	/* What a fresh load would count, without counting it for this handle. */
	nnh5__policy_scratch(&scratch, &f->policy);
	nnh5__walk_options o = { opts->reserved, opts->keep_going, true, true, false, true,
				 !f->policy.copy_aliases, H5O_TYPE_UNKNOWN, &scratch };
	rc = nnh5__walk(f, path ? path : "", &o, public_cb, &pw);
	nnh5__policy_free(&scratch);
	LEAVE(rc);
}

const char *nnh5_entry_type_name(int type)
{
	switch (type) {
	case NNH5_ENTRY_GROUP: return "group";
	case NNH5_ENTRY_TENSOR: return "tensor";
	case NNH5_ENTRY_DATASET: return "dataset";
	case NNH5_ENTRY_DATATYPE: return "datatype";
	case NNH5_ENTRY_REFUSED: return "refused";
	default: return "unknown";
	}
}

const char *nnh5_link_type_name(int type)
{
	switch (type) {
	case NNH5_LINK_HARD: return "hard";
	case NNH5_LINK_SOFT: return "soft";
	case NNH5_LINK_EXTERNAL: return "external";
	case NNH5_LINK_USER: return "user";
	default: return "unknown";
	}
}

const char *nnh5_layout_name(int layout)
{
	switch (layout) {
	case NNH5_LAYOUT_COMPACT: return "compact";
	case NNH5_LAYOUT_CONTIGUOUS: return "contiguous";
	case NNH5_LAYOUT_CHUNKED: return "chunked";
	case NNH5_LAYOUT_VIRTUAL: return "virtual";
	case NNH5_LAYOUT_EXTERNAL: return "external";
	default: return "unknown";
	}
}
