/*
 * lib/file/load_direct.c - one-call loads (nnh5_load_tensor/list/dict/
 * state_dict) of the files nnh5 writes, with the metadata read in bulk by
 * store/h5read.c instead of HDF5's object layer: HDF5's dataset open and
 * close cost most of the ~140,000 instructions a small tensor takes through
 * the API path (doc/SPEED.md, "Direct HDF5 reader").
 *
 * This reader only ever loads or declines. The file is opened with the
 * regular-file rule (store/regular.c); every name, limit and dataset goes
 * through the same load policy functions as the walk (store/policy.c) with
 * the default open options; tensors are allocated and checksummed as
 * file_read.c does. Anything that rule, the policy or a check would refuse,
 * and anything store/h5read.c does not take, declines: the caller then
 * loads through the HDF5 API, which gives exactly its result or error.
 * Running out of memory declines too (the API path then reports it, or
 * succeeds with the memory this reader let go).
 */
#define _DEFAULT_SOURCE /* flock() */
#include "file/load_direct.h"
#include "file/file_internal.h"
#include "file/resolve.h"
#include "store/h5read.h"
#include "store/h5util.h"
#include "store/rawio.h"
#include "store/regular.h"
#include "nnh5/dict.h"
#include "nnh5/list.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#define DECLINE 1

static atomic_uint_fast64_t taken;

uint64_t nnh5__load_direct_taken(void)
{
	return (uint64_t)atomic_load(&taken);
}

static bool enabled(void)
{
	const char *e = getenv("NNH5_DIRECT_READ");
	return !e || strcmp(e, "0") != 0;
}

/* A dataset to load: its object, its key, where it goes. */
struct item {
	uint32_t obj;
	size_t key;   /* offset in keys */
	size_t order; /* position in the result */
	nnh5_tensor *t;
};

struct load {
	const char *path;
	nnh5__h5r r;
	nnh5__policy p;
	bool verify, require;
	struct item *items;
	size_t n;
	nnh5__strbuf keys; /* every object's key, NUL-terminated */
	size_t *key_of;    /* per object */
	size_t *plen;      /* per object: its path's length in the walk */
	char **hkeys;      /* a dense root's key list, read through HDF5 */
	size_t nhkeys;
	bool has_hkeys;
};

static const char *key(const struct load *l, const struct item *it)
{
	return l->keys.p + it->key;
}

/* Judge and count dataset i as the walk does (describe, judge, count). */
static int judge(struct load *l, uint32_t i, uint64_t *datasets, const char *display)
{
	const nnh5__h5r_obj *o = &l->r.o[i];
	const int64_t *shape = nnh5__h5r_shape(&l->r, i);
	nnh5__storage s;

	if (o->ndim > NNH5_MAX_NDIM ||
	    nnh5__policy_count_dataset(&l->p, datasets, l->path, "/"))
		return DECLINE;
	memset(&s, 0, sizeof s);
	s.fileno = l->p.fileno;
	s.addr = o->addr;
	s.type = -1;
	s.space = o->ndim ? H5S_SIMPLE : H5S_SCALAR;
	s.ndim = (int)o->ndim;
	for (unsigned d = 0; d < o->ndim; d++)
		s.dims[d] = (hsize_t)shape[d];
	s.elsize = nnh5_dtype_size(o->dtype);
	s.layout = H5D_CONTIGUOUS;
	s.bad_filter = -2;
	s.chunk_ndim = -1;
	s.in_main_file = true;
	s.offset = o->data_addr == UINT64_MAX ? HADDR_UNDEF : (haddr_t)o->data_addr;
	s.storage_bytes = o->data_addr == UINT64_MAX ? 0 : o->data_size;
	if (nnh5__policy_judge(&s, &l->p, l->path, display) ||
	    nnh5__policy_count(&s, &l->p, l->path, display, NULL, false, NULL))
		return DECLINE;
	/* Data HDF5 would make up (never written, read as fill values) is the API path's. */
	if (s.logical_bytes && o->data_addr == UINT64_MAX)
		return DECLINE;
	if (l->require && !o->has_sum)
		return DECLINE;
	return NNH5_OK;
}

/*
 * Visit the tree in the walk's order: names and limits through the policy,
 * keys made with sep, datasets judged and listed.
 */
static int visit(struct load *l, char sep, bool tensor_file)
{
	nnh5__h5r *r = &l->r;
	uint64_t groups = 0, datasets = 0;

	if (!(l->key_of = nnh5__calloc(r->n, sizeof *l->key_of)) ||
	    !(l->plen = nnh5__calloc(r->n, sizeof *l->plen)) ||
	    !(l->items = nnh5__calloc(r->n, sizeof *l->items)))
		return DECLINE;
	nnh5__strbuf_putn(&l->keys, "\0", 1); /* the root's key, "" */
	if (l->keys.oom)
		return DECLINE;
	for (uint32_t i = 1; i < r->n; i++) {
		const nnh5__h5r_obj *o = &r->o[i];
		const char *name = nnh5__h5r_name(r, i);
		size_t pl = l->plen[o->parent];
		/* The walk: reserved names (nnh5_...) are the format's own, not for this reader. */
		if (strncmp(name, "nnh5_", 5) == 0 || pl + o->namelen + 2 > NNH5__PATH_BYTES)
			return DECLINE;
		l->plen[i] = pl + 1 + o->namelen;
		/* The parent's key is copied from the same buffer: room first, so it stays put. */
		size_t parent_len = o->parent ? strlen(l->keys.p + l->key_of[o->parent]) : 0;
		if (!nnh5__strbuf_reserve(&l->keys, parent_len + o->namelen + 3))
			return DECLINE;
		l->key_of[i] = l->keys.len;
		if (o->parent != 0) {
			nnh5__strbuf_putn(&l->keys, l->keys.p + l->key_of[o->parent], parent_len);
			nnh5__strbuf_putn(&l->keys, &sep, 1);
		}
		nnh5__strbuf_putn(&l->keys, name, o->namelen);
		nnh5__strbuf_putn(&l->keys, "\0", 1);
		if (l->keys.oom)
			return DECLINE;
		const char *k = l->keys.p + l->key_of[i];
		/* A one-tensor file is read by name: the walk starts at the dataset. */
		if (!tensor_file && nnh5__policy_check_name(&l->p, l->path, "/", name))
			return DECLINE;
		if (o->group) {
			if (nnh5__policy_count_group(&l->p, &groups, o->depth, l->path, "/", k))
				return DECLINE;
			continue;
		}
		if (judge(l, i, &datasets, k))
			return DECLINE;
		l->items[l->n] = (struct item){ i, l->key_of[i], l->n, NULL };
		l->n++;
	}
	return NNH5_OK;
}

static int cmp_item_key(const void *a, const void *b, void *ctx)
{
	const struct load *l = ctx;
	return strcmp(key(l, a), key(l, b));
}

/* Sort items by key (l is the context: no qsort_r in C11, so a small merge sort). */
static void sort_by_key(struct load *l, struct item *a, struct item *tmp, size_t n)
{
	if (n < 2)
		return;
	size_t h = n / 2;
	sort_by_key(l, a, tmp, h);
	sort_by_key(l, a + h, tmp, n - h);
	size_t i = 0, j = h, k = 0;
	while (i < h && j < n)
		tmp[k++] = cmp_item_key(&a[j], &a[i], l) < 0 ? a[j++] : a[i++];
	while (i < h)
		tmp[k++] = a[i++];
	while (j < n)
		tmp[k++] = a[j++];
	memcpy(a, tmp, n * sizeof *a);
}

static int cmp_order(const void *a, const void *b)
{
	size_t x = ((const struct item *)a)->order, y = ((const struct item *)b)->order;
	return x < y ? -1 : x > y;
}

/*
 * The result's order: the stored key list when there is one, which must
 * name every dataset exactly once (anything else is the API path's to
 * judge), else the walk's. Keys must be distinct.
 */
static int order(struct load *l)
{
	struct item *tmp;
	int rc = NNH5_OK;

	bool has_keys = l->r.root.dense_attrs ? l->has_hkeys : l->r.root.has_keys;
	size_t nkeys = l->r.root.dense_attrs ? l->nhkeys : l->r.root.nkeys;

	if (l->n < 2 && !has_keys)
		return NNH5_OK;
	if (!(tmp = nnh5__malloc((l->n ? l->n : 1) * sizeof *tmp)))
		return DECLINE;
	sort_by_key(l, l->items, tmp, l->n);
	for (size_t i = 1; i < l->n && !rc; i++)
		if (strcmp(key(l, &l->items[i - 1]), key(l, &l->items[i])) == 0)
			rc = DECLINE;
	if (!rc && has_keys) {
		if (nkeys != l->n)
			rc = DECLINE;
		for (size_t i = 0; i < l->n && !rc; i++)
			l->items[i].order = SIZE_MAX;
		for (size_t i = 0; i < nkeys && !rc; i++) {
			const char *bytes = NULL;
			size_t len = 0, lo = 0, hi = l->n;
			if (l->r.root.dense_attrs) {
				bytes = l->hkeys[i];
				len = strlen(bytes);
			} else {
				const nnh5__h5r_str *s = &l->r.strs[l->r.root.keys + i];
				len = s->len;
				if (nnh5__h5r_string(&bytes, &l->r, s))
					rc = DECLINE;
			}
			while (!rc && lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				const char *k = key(l, &l->items[mid]);
				int c = strncmp(bytes, k, len);
				if (c == 0 && k[len])
					c = -1;
				if (c == 0) {
					lo = mid;
					break;
				}
				if (c < 0)
					hi = mid;
				else
					lo = mid + 1;
			}
			if (!rc && (lo >= hi || l->items[lo].order != SIZE_MAX))
				rc = DECLINE;
			if (!rc)
				l->items[lo].order = i;
		}
	}
	if (!rc)
		qsort(l->items, l->n, sizeof *l->items, cmp_order);
	nnh5__free(tmp);
	return rc;
}

/*
 * Read the datasets as file_read.c does: allocated by the one allocator of
 * loaded tensors (small ones of a list or dict packed into the load's
 * arena, a single tensor alone), hashed while read, from the file open as
 * fd.
 */
static int read_all(struct load *l, int fd, bool pack)
{
	nnh5__arena arena = NNH5__ARENA_INIT;
	int rc = NNH5_OK;

	for (size_t i = 0; !rc && i < l->n; i++) {
		struct item *it = &l->items[i];
		const nnh5__h5r_obj *o = &l->r.o[it->obj];
		bool verify = l->verify && o->has_sum;
		uint64_t actual = 0;
		nnh5_tensor *t;

		if (nnh5__tensor_alloc_loaded(&t, pack ? &arena : NULL, (nnh5_dtype)o->dtype, o->ndim,
					      nnh5__h5r_shape(&l->r, it->obj))) {
			rc = DECLINE;
			break;
		}
		it->t = t;
		if (t->nbytes) {
			if (nnh5__raw_read(fd, t->data, t->nbytes, o->data_addr,
					   verify ? &actual : NULL) != 0)
				rc = DECLINE;
		} else if (verify) {
			actual = nnh5_tensor_checksum(t);
		}
		if (!rc && ((verify && actual != o->sum) ||
			    nnh5__check_bool(t, NNH5_ERR_FORMAT, l->path, "dataset", key(l, it))))
			rc = DECLINE;
	}
	nnh5__arena_end(&arena);
	return rc;
}

static int build(struct load *l, void *out, nnh5__direct_what what)
{
	if (what == NNH5__DIRECT_TENSOR) {
		*(nnh5_tensor **)out = l->items[0].t;
		l->items[0].t = NULL;
		return NNH5_OK;
	}
	if (what == NNH5__DIRECT_LIST) {
		nnh5_list *list = NULL;
		size_t *slot = nnh5__malloc((l->n ? l->n : 1) * sizeof *slot), i;
		int rc = slot ? NNH5_OK : DECLINE;
		for (i = 0; !rc && i < l->n; i++)
			slot[i] = SIZE_MAX;
		for (i = 0; !rc && i < l->n; i++) {
			size_t at;
			if (!nnh5__parse_index(key(l, &l->items[i]), &at) || at >= l->n || slot[at] != SIZE_MAX)
				rc = DECLINE;
			else
				slot[at] = i;
		}
		if (!rc && nnh5_list_new(&list))
			rc = DECLINE;
		/* Appended tensors belong to the list, even when a later append fails. */
		for (i = 0; !rc && i < l->n; i++) {
			if (nnh5_list_append(list, l->items[slot[i]].t))
				rc = DECLINE;
			else
				l->items[slot[i]].t = NULL;
		}
		nnh5__free(slot);
		if (rc) {
			nnh5_list_free(list);
			return DECLINE;
		}
		*(nnh5_list **)out = list;
		return NNH5_OK;
	}
	nnh5_dict *d;
	if (nnh5_dict_new(&d))
		return DECLINE;
	for (size_t i = 0; i < l->n; i++) {
		if (nnh5_dict_set(d, key(l, &l->items[i]), l->items[i].t)) {
			nnh5_dict_free(d); /* frees the tensors it took */
			for (size_t j = 0; j < i; j++)
				l->items[j].t = NULL;
			return DECLINE;
		}
	}
	for (size_t i = 0; i < l->n; i++)
		l->items[i].t = NULL;
	*(nnh5_dict **)out = d;
	return NNH5_OK;
}

/*
 * A root with its attributes in dense storage (a key list too large for an
 * object header): they are read through HDF5's API, as the API path reads
 * them (its open checks nnh5_format_version), from the file judged (reg).
 */
static int dense_root(struct load *l, const nnh5__regular *reg)
{
	nnh5__h5quiet q;
	nnh5_file *f;
	int rc;

	if (nnh5_file_open(&f, l->path, NNH5_READ))
		return DECLINE;
	nnh5__h5_quiet_begin(&q);
	rc = nnh5__regular_same(reg, f->raw_fd, l->path, "open") ? DECLINE : NNH5_OK;
	if (!rc && nnh5__file_has_attr(f, "/", "nnh5_keys")) {
		l->has_hkeys = true;
		if (nnh5__file_attr_get_strings(&l->hkeys, &l->nhkeys, f, "/", "nnh5_keys", false))
			rc = DECLINE;
	}
	nnh5_file_close(f);
	/* HDF5 keeps the blocks the file used on its free lists (2 MB for 12,000 keys):
	 * give them back before the tensors are allocated. */
	H5garbage_collect();
	nnh5__h5_quiet_end(&q);
	return rc;
}

/* The key strings of the root attributes a load reads, and the format version rule's range. */
static int check_root(struct load *l, nnh5__direct_what what)
{
	const nnh5__h5r *r = &l->r;

	if (r->root.has_version && (r->root.version < 1 || r->root.version > FORMAT_VERSION))
		return DECLINE;
	/* A one-tensor file: its root holds the dataset 'tensor' and nothing else. */
	if (what == NNH5__DIRECT_TENSOR)
		return r->n == 2 && !r->o[1].group && strcmp(nnh5__h5r_name(r, 1), "tensor") == 0
			       ? NNH5_OK
			       : DECLINE;
	/* A list's members are the root's datasets. */
	if (what == NNH5__DIRECT_LIST)
		for (size_t i = 1; i < r->n; i++)
			if (r->o[i].group)
				return DECLINE;
	return NNH5_OK;
}

/*
 * Options this reader takes, and the policy made from them; false leaves
 * the load to the API path.
 */
static bool begin(struct load *l, const char *path, const nnh5_open_options *opts)
{
	static const nnh5_open_options defaults = NNH5_OPEN_OPTIONS_INIT;

	memset(l, 0, sizeof *l);
	l->path = path;
	if (!enabled() || !path || !*path)
		return false;
	if (!opts)
		opts = &defaults;
	/* An options version this reader does not know is the API path's to refuse. */
	if (opts->version != NNH5_OPEN_OPTIONS_VERSION || opts->compression < NNH5_COMPRESSION_NONE ||
	    opts->compression > NNH5_COMPRESSION_ARCHIVE)
		return false;
	l->verify = opts->verify_checksums;
	l->require = opts->require_checksums;
	return !nnh5__policy_init(&l->p, opts, path) && !l->p.allow_external &&
	       !l->p.allow_filter_plugins && !l->p.copy_aliases;
}

/*
 * The load once r is parsed: names, policy and keys, then the tensors,
 * from reg's file. DECLINE on anything not taken.
 */
static int finish(struct load *l, void *out, nnh5__direct_what what, const nnh5__regular *reg)
{
	char sep = what == NNH5__DIRECT_STATE_DICT ? '.' : '/';

	if ((l->r.root.dense_attrs && dense_root(l, reg)) || check_root(l, what) ||
	    visit(l, sep, what == NNH5__DIRECT_TENSOR) || order(l))
		return DECLINE;
	/* What only the parse and the key order needed goes before the tensors come. */
	nnh5__h5r_release(&l->r);
	nnh5__free(l->key_of);
	nnh5__free(l->plen);
	nnh5__strings_free(l->hkeys, l->nhkeys);
	l->key_of = l->plen = NULL;
	l->hkeys = NULL;
	l->nhkeys = 0;
	if (read_all(l, reg->fd, what != NNH5__DIRECT_TENSOR))
		return DECLINE;
	nnh5__h5r_free(&l->r);
	if (build(l, out, what))
		return DECLINE;
	atomic_fetch_add(&taken, 1);
	return NNH5_OK;
}

/* Free what a load holds; the error state a declined load left is cleared. */
static void end(struct load *l)
{
	for (size_t i = 0; i < l->n; i++)
		nnh5_tensor_free(l->items[i].t);
	nnh5__free(l->items);
	nnh5__free(l->key_of);
	nnh5__free(l->plen);
	nnh5__strings_free(l->hkeys, l->nhkeys);
	nnh5__free(l->keys.p);
	nnh5__h5r_free(&l->r);
	nnh5__policy_free(&l->p);
	nnh5_error_clear();
}

int nnh5__load_direct(bool *done, void *out, const char *path, const nnh5_open_options *opts,
		      nnh5__direct_what what)
{
	nnh5__regular reg = { -1, 0, 0 };
	struct load l;
	struct stat st;

	*done = false;
	if (begin(&l, path, opts) && !nnh5__regular_open(&reg, path, "open") &&
	    /* HDF5 takes a shared lock to read: a file being written in place is its to refuse. */
	    !(flock(reg.fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) &&
	    fstat(reg.fd, &st) == 0 && st.st_size > 0) {
		l.p.file_size = (uint64_t)st.st_size;
		*done = !nnh5__h5r_open(&l.r, reg.fd, l.p.file_size, (size_t)l.p.max_depth) &&
			!finish(&l, out, what, &reg);
	}
	end(&l);
	nnh5__regular_close(&reg);
	return NNH5_OK;
}
