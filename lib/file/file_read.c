/*
 * lib/file/file_read.c - read tensors, lists, dicts and state dicts back, refusing
 * storage that would read other files or run unknown code (the load policy,
 * lib/store/policy.c, checks every dataset before its data is read).
 */
#include "file/file_internal.h"
#include "file/walk.h"
#include "store/h5util.h"
#include "store/rawio.h"
#include "nnh5/list.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Reading                                                             */

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

/* Read contiguous raw data with pread straight into t, hashing as it comes. */
static int read_raw(nnh5_file *f, const nnh5__dataset *ds, nnh5_tensor *t, uint64_t *hash,
		    const char *display)
{
	/*
	 * The policy checked the data lies inside the file as opened; a file cut
	 * since then gives a short read, refused here: no fstat per tensor.
	 */
	int err = nnh5__raw_read(f->raw_fd, t->data, t->nbytes, ds->offset, hash);
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
		int has = nnh5__dataset_expected_checksum(&stored, f, ds, display);
		if (has < 0)
			return has;
		verify = has && f->verify_checksums;
	}
	rc = nnh5__tensor_alloc_loaded(&t, f->arena, ds->dtype, ds->ndim, ds->shape);
	if (rc)
		return nnh5__error_wrap(rc, "'%s': dataset '%s'", f->path, display);
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

/* The loader of plain reads: the walk described, judged and counted ds. */
static int load_read(nnh5_tensor **out, nnh5_file *f, nnh5__dataset *ds, const char *display,
		     void *ctx)
{
	nnh5__plugin_guard plugins;
	int rc;

	(void)ctx;
	nnh5__policy_plugins_off(&f->policy, &plugins);
	rc = nnh5__dataset_read(out, f, ds, display);
	nnh5__policy_plugins_restore(&plugins);
	return rc;
}

/* The walk options of a load from f. */
static nnh5__walk_options load_options(const nnh5_file *f, H5O_type_t expect)
{
	nnh5__walk_options o = { false, false, false, f->verify_checksums || f->require_checksums,
				 false, true, !f->policy.copy_aliases, expect, NULL };
	return o;
}

struct one {
	nnh5_file *f;
	nnh5__load_fn load;
	void *ctx;
	nnh5_tensor **out;
};

static int one_cb(const nnh5__item *it, void *p)
{
	struct one *c = p;

	if (it->e->type == NNH5_ENTRY_DATASET)
		return nnh5__dataset_not_tensor(c->f, it->ds, it->display);
	return c->load(c->out, c->f, it->ds, it->display, c->ctx);
}

int nnh5__file_read_one(nnh5_tensor **out, nnh5_file *f, const char *name, nnh5__load_fn load,
			void *ctx)
{
	struct one c = { f, load, ctx, out };
	nnh5__walk_options o = load_options(f, H5O_TYPE_DATASET);

	*out = NULL;
	return nnh5__walk(f, name, &o, one_cb, &c);
}

int nnh5_file_read_tensor(nnh5_tensor **out, nnh5_file *f, const char *name)
{
	ENTER;
	LEAVE(nnh5__file_read_one(out, f, name, load_read, NULL));
}

struct stored_sum {
	uint64_t sum;
	bool present;
};

static int checksum_cb(const nnh5__item *it, void *p)
{
	struct stored_sum *c = p;

	c->sum = it->ds->checksum;
	c->present = it->ds->has_checksum == 1;
	return NNH5_OK;
}

int nnh5_file_stored_checksum(uint64_t *sum, bool *present, nnh5_file *f, const char *name)
{
	nnh5__walk_options o = { false, false, false, true, false, false, false, H5O_TYPE_DATASET, NULL };
	struct stored_sum c = { 0, false };
	int rc;

	ENTER;
	rc = nnh5__walk(f, name, &o, checksum_cb, &c);
	*sum = rc ? 0 : c.sum;
	*present = !rc && c.present;
	LEAVE(rc);
}

struct blocks_check {
	nnh5_file *f;
	const nnh5_tensor *t;
	bool present;
};

static int blocks_cb(const nnh5__item *it, void *p)
{
	struct blocks_check *c = p;
	nnh5_file *f = c->f;
	uint64_t *table = NULL, count = 0, b = 0;
	int rc = nnh5__dataset_block_table(&table, &count, &b, f, it->ds, it->display);

	if (rc <= 0)
		return rc;
	rc = NNH5_OK;
	c->present = true;
	if (c->t->dtype != it->ds->dtype || c->t->nbytes != it->ds->nbytes)
		rc = nnh5__error(NNH5_ERR_INVALID,
				 "'%s': dataset '%s': the tensor given is not the dataset's data",
				 f->path, it->display);
	int64_t bad = rc ? -1
			 : nnh5__blocks_mismatch(table, count, b, c->t->data, c->t->nbytes,
						 nnh5_dtype_size(c->t->dtype));
	if (bad >= 0)
		rc = nnh5__error(NNH5_ERR_CHECKSUM,
				 "'%s': dataset '%s' is damaged: block %lld (bytes %llu to %llu) "
				 "does not match its block checksum",
				 f->path, it->display, (long long)bad,
				 (unsigned long long)((uint64_t)bad * b),
				 (unsigned long long)((uint64_t)bad * b + b < c->t->nbytes
							      ? (uint64_t)bad * b + b
							      : (uint64_t)c->t->nbytes));
	nnh5__free(table);
	return rc;
}

int nnh5_file_check_blocks(bool *present, nnh5_file *f, const char *name, const nnh5_tensor *t)
{
	nnh5__walk_options o = { false, false, false, false, false, false, false, H5O_TYPE_DATASET, NULL };
	struct blocks_check c = { f, t, false };
	int rc;

	assert(t);
	ENTER;
	rc = nnh5__walk(f, name, &o, blocks_cb, &c);
	*present = c.present;
	LEAVE(rc);
}

/* The kind of name; *group says whether it is a group. No rule on 'tensor' here. */
static int kind_of(nnh5_kind *out, bool *group, nnh5_file *f, const char *name)
{
	nnh5__obj obj;
	int rc = nnh5__resolve(&obj, f, name);

	if (rc)
		return rc;
	*group = obj.type == H5O_TYPE_GROUP;
	if (obj.type == H5O_TYPE_DATASET)
		*out = NNH5_KIND_TENSOR;
	else if (obj.type == H5O_TYPE_GROUP)
		rc = nnh5__group_kind(out, f, obj.id, name);
	else
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is a named datatype", f->path,
				 name);
	H5Oclose(obj.id);
	return rc;
}

/* "tensor" marks the root of a one-tensor file (nnh5_save_tensor), not a kind of group. */
static int group_marked_tensor(nnh5_file *f, const char *name)
{
	return nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' has unknown nnh5_kind 'tensor'",
			   f->path, name);
}

int nnh5_file_kind(nnh5_kind *out, nnh5_file *f, const char *name)
{
	bool group = false;
	int rc;

	ENTER;
	rc = kind_of(out, &group, f, name);
	if (!rc && group && *out == NNH5_KIND_TENSOR)
		rc = group_marked_tensor(f, name);
	LEAVE(rc);
}

/*
 * Group reads: one walk (lib/file/walk.c) loads each tensor as it is met,
 * then they are put in the stored key order.
 */

/*
 * One tensor found by a group walk, already loaded. Nothing else is kept
 * per tensor (a load of many small tensors peaks at its end, with these
 * beside every tensor): the key goes on into the dict as it is.
 */
struct found {
	char *key;
	size_t order;   /* position in the walk */
	nnh5_tensor *t;
	char *alias_of; /* a later name of a tensor loaded once: the path of its first name */
};

struct collect {
	nnh5_file *f;
	const char *group; /* the container's name, for messages */
	char sep;          /* '/' for dicts, '.' for state dicts */
	nnh5__load_fn load;
	void *ctx;
	bool tie; /* aliases are tied to their first name (the walk's tie_aliases) */
	size_t prefix; /* the start's part of a path met below it, with the '/' after it */
	struct found *items;
	size_t len, cap;
};

/* A path below the start in key form: '/' becomes sep. */
static char *path_key(const char *rel, char sep)
{
	char *key = nnh5__strdup(rel);

	for (char *c = key; c && *c; c++)
		if (*c == '/')
			*c = sep;
	return key;
}

static int collect_cb(const nnh5__item *it, void *p)
{
	struct collect *w = p;

	if (it->e->depth == 0 || it->e->type == NNH5_ENTRY_GROUP ||
	    it->e->type == NNH5_ENTRY_DATATYPE)
		return NNH5_OK;
	if (it->e->type != NNH5_ENTRY_TENSOR)
		return nnh5__dataset_not_tensor(w->f, it->ds, it->display);
	if (w->len == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64, bytes;
		struct found *q;
		if (!nnh5__mul_size(cap, sizeof *q, &bytes))
			return nnh5__nomem();
		q = nnh5__realloc(w->items, bytes);
		if (!q)
			return nnh5__nomem();
		w->items = q;
		w->cap = cap;
	}
	struct found *item = &w->items[w->len];
	bool tie = it->e->alias_of && w->tie;
	/* Every path the walk meets starts with the start's: rel is what follows. */
	w->prefix = strlen(it->e->path) - strlen(it->rel);
	item->key = path_key(it->rel, w->sep);
	item->order = w->len;
	item->t = NULL;
	item->alias_of = tie ? nnh5__strdup(it->e->alias_of) : NULL;
	if (!item->key || (tie && !item->alias_of)) {
		nnh5__free(item->key);
		nnh5__free(item->alias_of);
		return nnh5__nomem();
	}
	w->len++;
	/* No loader: only the keys are wanted (nnh5_file_check_keys). */
	return w->load && !tie ? w->load(&item->t, w->f, it->ds, it->display, w->ctx) : NNH5_OK;
}

static int cmp_found_ptr_key(const void *a, const void *b)
{
	const struct found *x = *(const struct found *const *)a, *y = *(const struct found *const *)b;
	return strcmp(x->key, y->key);
}

/*
 * Give each later name of a dataset the tensor of its first name, tied
 * (nnh5_tensor_share()): one buffer, as the policy counted it. The first
 * name is found by its key (its path below the start in key form): two
 * datasets with one key are refused when the dict is made, so a key names
 * one tensor of a load that succeeds.
 */
static int restore_ties(struct collect *w)
{
	struct found **firsts;
	size_t n = 0, bytes;
	int rc = NNH5_OK;

	for (size_t i = 0; i < w->len; i++)
		n += w->items[i].alias_of != NULL;
	if (n == 0 || !w->load)
		return NNH5_OK;
	if (!nnh5__mul_size(w->len, sizeof *firsts, &bytes) || !(firsts = nnh5__malloc(bytes)))
		return nnh5__nomem();
	n = 0;
	for (size_t i = 0; i < w->len; i++)
		if (!w->items[i].alias_of)
			firsts[n++] = &w->items[i];
	qsort(firsts, n, sizeof *firsts, cmp_found_ptr_key);
	for (size_t i = 0; !rc && i < w->len; i++) {
		const char *first = w->items[i].alias_of;
		struct found probe = { NULL, 0, NULL, NULL }, *pp = &probe, **hit = NULL;
		if (!first)
			continue;
		probe.key = strlen(first) > w->prefix ? path_key(first + w->prefix, w->sep) : NULL;
		if (strlen(first) > w->prefix && !probe.key) {
			rc = nnh5__nomem();
			break;
		}
		if (probe.key)
			hit = bsearch(&pp, firsts, n, sizeof *firsts, cmp_found_ptr_key);
		nnh5__free(probe.key);
		/* The walk meets a name first before its aliases, and loads every tensor it meets. */
		if (!hit || !(*hit)->t)
			rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': group '%s': '%s' is another name of "
					 "'%s', which this load did not load",
					 w->f->path, w->group, w->items[i].key, first);
		else
			rc = nnh5_tensor_share(&w->items[i].t, (*hit)->t);
	}
	nnh5__free(firsts);
	return rc;
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
 * The stored key list of group name, read with HDF5's metadata cache
 * capped at 64 KiB. The list's strings live in global heap collections,
 * which the cache keeps decoded (1.4 MiB for 12,000 keys) until it needs
 * the room, and a load's object headers leave it as they close: without
 * the cap the list would stay cached, on top of every tensor loaded, until
 * the file is closed.
 */
static int read_key_list(char ***keys, size_t *nkeys, nnh5_file *f, const char *name)
{
	H5AC_cache_config_t was, small;
	bool capped = false;
	int rc;

	was.version = H5AC__CURR_CACHE_CONFIG_VERSION;
	if (H5Fget_mdc_config(f->fid, &was) >= 0) {
		small = was;
		small.set_initial_size = true;
		small.initial_size = small.min_size = small.max_size = (size_t)64 << 10;
		capped = H5Fset_mdc_config(f->fid, &small) >= 0;
	}
	H5Eclear2(H5E_DEFAULT);
	rc = nnh5__file_attr_get_strings(keys, nkeys, f, name, "nnh5_keys", false);
	if (capped) {
		was.set_initial_size = true;
		was.initial_size = was.max_size;
		H5Fset_mdc_config(f->fid, &was);
		H5Eclear2(H5E_DEFAULT);
	}
	return rc;
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
static int apply_key_order(struct collect *w, const char *name)
{
	char **keys;
	size_t nkeys, next = 0;
	const char *missing = NULL, *twice = NULL;
	int rc;

	if (w->len == 0 || !nnh5__file_has_attr(w->f, name, "nnh5_keys"))
		return NNH5_OK;
	rc = read_key_list(&keys, &nkeys, w->f, name);
	if (rc)
		return rc;
	qsort(w->items, w->len, sizeof *w->items, cmp_found_key);
	for (size_t i = 0; i < w->len; i++)
		w->items[i].order += nkeys; /* unlisted ones go after the listed */
	for (size_t i = 0; i < nkeys; i++) {
		struct found probe = { keys[i], 0, NULL, NULL };
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

static void collect_free(struct collect *w)
{
	for (size_t i = 0; i < w->len; i++) {
		nnh5__free(w->items[i].key);
		nnh5__free(w->items[i].alias_of);
		nnh5_tensor_free(w->items[i].t);
	}
	nnh5__free(w->items);
}

int nnh5_file_check_keys(bool *listed, nnh5_file *f, const char *name)
{
	struct collect w;
	nnh5__walk_options o = load_options(f, H5O_TYPE_GROUP);
	nnh5_kind kind;
	bool group = false;
	int rc;

	ENTER;
	*listed = false;
	rc = kind_of(&kind, &group, f, name);
	if (!rc && kind == NNH5_KIND_TENSOR && !group)
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is a dataset, not a group",
				 f->path, name);
	/* The root of a one-tensor file holds no key list: nothing to check. */
	if (!rc && kind == NNH5_KIND_TENSOR && group)
		LEAVE(nnh5__file_is_root(name) ? NNH5_OK : group_marked_tensor(f, name));
	if (rc)
		LEAVE(rc);
	if (!nnh5__file_has_attr(f, name, "nnh5_keys"))
		LEAVE(NNH5_OK);
	*listed = true;
	memset(&w, 0, sizeof w);
	w.f = f;
	w.group = nnh5__file_is_root(name) ? "/" : name;
	/* The key form the kind's reader makes: '.' joins state-dict keys. */
	w.sep = kind == NNH5_KIND_STATE_DICT || kind == NNH5_KIND_MODEL ||
			kind == NNH5_KIND_CHECKPOINT ? '.' : '/';
	o.checksums = false;
	o.materialise = false; /* nothing is loaded, so nothing counts */
	rc = nnh5__walk(f, name, &o, collect_cb, &w);
	if (!rc)
		rc = apply_key_order(&w, w.group);
	collect_free(&w);
	LEAVE(rc);
}

int nnh5__file_read_group(nnh5_dict **out, nnh5_file *f, const char *name, char sep,
			  nnh5__load_fn load, void *ctx)
{
	struct collect w;
	nnh5__walk_options o = load_options(f, H5O_TYPE_GROUP);
	nnh5_dict *d = NULL;
	int rc;

	*out = NULL;
	memset(&w, 0, sizeof w);
	w.f = f;
	w.group = nnh5__file_is_root(name) ? "/" : name;
	w.sep = sep;
	w.load = load;
	w.ctx = ctx;
	w.tie = o.tie_aliases;
	/* The group's small tensors share blocks (lib/core/arena.c). */
	nnh5__arena arena = NNH5__ARENA_INIT, *outer = f->arena;
	f->arena = &arena;
	rc = nnh5__walk(f, name, &o, collect_cb, &w);
	f->arena = outer;
	nnh5__arena_end(&arena);
	if (!rc)
		rc = restore_ties(&w);
	if (!rc)
		rc = apply_key_order(&w, w.group);
	if (!rc)
		rc = nnh5_dict_new(&d);
	if (!rc)
		rc = nnh5__dict_reserve(d, w.len);
	for (size_t i = 0; !rc && i < w.len; i++) {
		if (nnh5_dict_get(d, w.items[i].key))
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': group '%s': two datasets map to the key '%s'", f->path,
					 w.group, w.items[i].key);
		if (!rc)
			rc = nnh5__dict_adopt(d, w.items[i].key, w.items[i].t);
		if (!rc) { /* the dict owns both now */
			w.items[i].key = NULL;
			w.items[i].t = NULL;
		}
	}
	collect_free(&w);
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

bool nnh5__parse_index(const char *s, size_t *out)
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
		if (!nnh5__parse_index(key, &at) || at >= n || slots[at])
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

