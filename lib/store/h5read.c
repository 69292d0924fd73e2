/*
 * lib/store/h5read.c - bulk reader of the HDF5 metadata nnh5 writes
 * (h5read.h): the mirror of h5format.c, with every field checked.
 *
 * Field layouts follow the HDF5 File Format Specification 3.0 as h5format.c
 * encodes them. Whatever is not exactly that returns 1 (DECLINE): the
 * caller then goes through HDF5's API, which judges the file for real.
 */
#include "store/h5read.h"
#include "store/h5format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DECLINE 1
#define UNDEF UINT64_MAX
/* What h5format.c writes at most; larger headers are HDF5's, not ours. */
#define MAX_HEADER ((uint64_t)16 << 20)
#define MAX_HEAP ((uint64_t)64 << 20)
#define MAX_RANK 32
/* Continuation chunks of one object header followed at most. */
#define MAX_CHUNKS 16
/* Bytes read ahead at once. */
#define READ_AHEAD (64u << 10)

struct nnh5__h5r_ext {
	uint64_t start, end;
};

struct nnh5__h5r_heap {
	uint64_t addr;
	unsigned char *buf;
	uint64_t size;
	uint32_t *at; /* per index: offset of the object's bytes + 1 (0: none) */
	uint64_t *len;
	uint32_t nidx;
};

/* A link of the group being parsed, kept until its subtree is parsed. */
struct link {
	size_t name, namelen;
	uint64_t addr;
	uint64_t order; /* creation order: the walk's order */
};

struct parse {
	nnh5__h5r *r;
	struct link *links;
	size_t nlinks, cap;
};

static uint64_t get(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 16, bytes;
	void *q;

	if (need <= *cap)
		return true;
	while (c < need) {
		if (c > SIZE_MAX / 2)
			return false;
		c *= 2;
	}
	if (!nnh5__mul_size(c, elem, &bytes) || !(q = nnh5__realloc(*p, bytes)))
		return false;
	*p = q;
	*cap = c;
	return true;
}

/* Bytes [at, at + n) of the file, which view() or the caller checked lie in it. */
static bool read_at(const nnh5__h5r *r, unsigned char *buf, size_t n, uint64_t at)
{
	int fd = r->fd;

	for (size_t k = 0; k < n;) {
		ssize_t got = pread(fd, buf + k, n - k, (off_t)(at + k));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		k += (size_t)got;
	}
	return true;
}

/*
 * The file's bytes [at, at + len), or NULL. Valid until the next call.
 * The metadata nnh5 writes comes first, so a growing prefix holds it; an
 * object far beyond it (HDF5's API puts headers between data) is read alone.
 */
static const unsigned char *view(nnh5__h5r *r, uint64_t at, uint64_t len)
{
	if (at > r->file_size || len > r->file_size - at || len > MAX_HEAP)
		return NULL;
	if (at + len <= r->pre_len)
		return r->pre + at;
	if (r->far && at >= r->far_at && at + len <= r->far_at + r->far_len)
		return r->far + (at - r->far_at);
	if (at <= (uint64_t)r->pre_len + (1u << 20)) {
		uint64_t want = 2 * (uint64_t)r->pre_len;
		if (want < at + len + READ_AHEAD)
			want = at + len + READ_AHEAD;
		if (want > r->file_size)
			want = r->file_size;
		r->moves++;
		if (!grow((void **)&r->pre, &r->pre_cap, (size_t)want, 1) ||
		    !read_at(r, r->pre + r->pre_len, (size_t)want - r->pre_len, r->pre_len))
			return NULL;
		r->pre_len = (size_t)want;
		return r->pre + at;
	}
	uint64_t want = len < 4096 ? 4096 : len;
	if (want > r->file_size - at)
		want = r->file_size - at;
	r->moves++;
	if (!grow((void **)&r->far, &r->far_cap, (size_t)want, 1) ||
	    !read_at(r, r->far, (size_t)want, at)) {
		r->far_len = 0;
		return NULL;
	}
	r->far_at = at;
	r->far_len = (size_t)want;
	return r->far;
}

static bool add_ext(nnh5__h5r *r, uint64_t start, uint64_t len)
{
	if (!grow((void **)&r->ext, &r->ext_cap, r->next + 1, sizeof *r->ext))
		return false;
	r->ext[r->next++] = (struct nnh5__h5r_ext){ start, start + len };
	return true;
}

/* false: addr was met before (an alias or a cycle), or no memory. */
static bool first_visit(nnh5__h5r *r, uint64_t addr)
{
	if (2 * (r->nseen + 1) > r->seen_cap) {
		size_t cap = r->seen_cap ? 2 * r->seen_cap : 256;
		uint64_t *n = nnh5__malloc(cap * sizeof *n);
		if (!n)
			return false;
		memset(n, 0xff, cap * sizeof *n);
		for (size_t i = 0; i < r->seen_cap; i++) {
			if (r->seen[i] == UNDEF)
				continue;
			size_t j = (size_t)((r->seen[i] * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
			while (n[j] != UNDEF)
				j = (j + 1) & (cap - 1);
			n[j] = r->seen[i];
		}
		nnh5__free(r->seen);
		r->seen = n;
		r->seen_cap = cap;
	}
	size_t j = (size_t)((addr * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (r->seen_cap - 1);
	for (; r->seen[j] != UNDEF; j = (j + 1) & (r->seen_cap - 1))
		if (r->seen[j] == addr)
			return false;
	r->seen[j] = addr;
	r->nseen++;
	return true;
}

/* ------------------------------------------------------------------ */
/* Global heap collections                                             */

static struct nnh5__h5r_heap *find_heap(nnh5__h5r *r, uint64_t addr)
{
	for (size_t i = 0; i < r->nheaps; i++)
		if (r->heaps[i].addr == addr)
			return &r->heaps[i];
	return NULL;
}

/* Load and index the collection at addr (once). */
static int load_heap(nnh5__h5r *r, uint64_t addr)
{
	struct nnh5__h5r_heap *h;
	const unsigned char *p;
	uint64_t size;

	if (find_heap(r, addr))
		return NNH5_OK;
	/* A few collections per file: more is not what nnh5 writes. */
	if (r->nheaps >= 64 || !(p = view(r, addr, 16)) || memcmp(p, "GCOL", 4) != 0 || p[4] != 1 ||
	    p[5] || p[6] || p[7])
		return DECLINE;
	size = get(p + 8, 8);
	/* Collections do not overlap (checked at the end): together they fit in the file. */
	if (size < 4096 || size > MAX_HEAP || addr > r->file_size || size > r->file_size - addr ||
	    size > r->file_size - r->heap_bytes)
		return DECLINE;
	r->heap_bytes += size;
	if (!grow((void **)&r->heaps, &r->heaps_cap, r->nheaps + 1, sizeof *r->heaps))
		return DECLINE;
	h = &r->heaps[r->nheaps];
	memset(h, 0, sizeof *h);
	h->addr = addr;
	h->size = size;
	if (!(h->buf = nnh5__malloc((size_t)size)) || !read_at(r, h->buf, (size_t)size, addr) ||
	    !add_ext(r, addr, size)) {
		nnh5__free(h->buf);
		return DECLINE;
	}
	r->nheaps++;
	/* Objects: index (2), reference count (2), reserved (4), size (8), data padded to 8. */
	uint64_t at = 16;
	size_t cap = 0;
	while (at + 16 <= size) {
		const unsigned char *o = h->buf + at;
		uint32_t idx = (uint32_t)get(o, 2);
		uint64_t len = get(o + 8, 8), need;
		if (idx == 0)
			break; /* the free space: the rest of the collection */
		if (len > size || (need = 16 + ((len + 7) & ~(uint64_t)7)) > size - at)
			return DECLINE;
		if (idx >= h->nidx) {
			if (!grow((void **)&h->at, &cap, idx + 1, sizeof *h->at))
				return DECLINE;
			uint64_t *l = nnh5__realloc(h->len, cap * sizeof *l);
			if (!l)
				return DECLINE;
			h->len = l;
			memset(h->at + h->nidx, 0, (cap - h->nidx) * sizeof *h->at);
			h->nidx = (uint32_t)cap;
		}
		if (h->at[idx])
			return DECLINE; /* an index twice */
		h->at[idx] = (uint32_t)(at + 16 + 1);
		h->len[idx] = len;
		at += need;
	}
	return NNH5_OK;
}

int nnh5__h5r_string(const char **out, nnh5__h5r *r, const nnh5__h5r_str *s)
{
	struct nnh5__h5r_heap *h = find_heap(r, s->coll);
	const char *p;

	if (!h || s->index >= h->nidx || !h->at[s->index] || h->len[s->index] != s->len)
		return DECLINE;
	p = (const char *)h->buf + h->at[s->index] - 1;
	if (memchr(p, 0, s->len))
		return DECLINE;
	*out = p;
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */

/* Known attributes and where they may be. */
enum {
	AT_VERSION,
	AT_WRITER,
	AT_KIND,
	AT_LENGTH,
	AT_KEYS,
	AT_SUM,
	AT_DTYPE,
	AT_BLOCKS,
	AT_BLOCK_BYTES,
	AT_SHARDING,
	AT_COUNT
};
static const char *const attr_names[AT_COUNT] = { "nnh5_format_version", "nnh5_writer",
						  "nnh5_kind", "nnh5_length", "nnh5_keys",
						  "nnh5_xxh3", "nnh5_dtype", NNH5__BLOCKS_ATTR,
						  NNH5__BLOCK_BYTES_ATTR, "nnh5_sharding" };
/*
 * What a dataset may carry. Loads leave the block table and the sharding
 * record of collective saves unread (collective loads check the table).
 */
#define DATASET_ATTRS                                                                      \
	((1u << AT_SUM) | (1u << AT_DTYPE) | (1u << AT_BLOCKS) | (1u << AT_BLOCK_BYTES) |   \
	 (1u << AT_SHARDING))

/* What one object header holds. */
struct header {
	bool group, linfo, ginfo, space, type, fill, layout, ainfo;
	bool tracked; /* links in creation order */
	unsigned attrs; /* bit per AT_ */
	int dtype;
	unsigned ndim;
	int64_t dims[MAX_RANK];
	uint64_t data_addr, data_size;
	bool has_sum;
	uint64_t sum;
	uint64_t cont[MAX_CHUNKS][2]; /* continuation chunks: address, length */
	unsigned nconts;
};

/* A version-2 dataspace: scalar, or simple with maximum dimensions equal to the dimensions. */
static int parse_space(unsigned *ndim, int64_t *dims, const unsigned char *b, size_t n)
{
	unsigned nd, flags, type;

	if (n < 4 || b[0] != 2)
		return DECLINE;
	nd = b[1];
	flags = b[2];
	type = b[3];
	if (nd > MAX_RANK || (flags & ~1u) || (type == 0 && (nd || flags)) ||
	    (type == 1 && nd == 0) || type > 1)
		return DECLINE;
	if (n != 4 + (size_t)nd * 8 * (flags ? 2 : 1))
		return DECLINE;
	for (unsigned i = 0; i < nd; i++) {
		uint64_t d = get(b + 4 + 8 * i, 8);
		if (d > (uint64_t)INT64_MAX || (flags && get(b + 4 + 8 * (nd + i), 8) != d))
			return DECLINE;
		dims[i] = (int64_t)d;
	}
	*ndim = nd;
	return NNH5_OK;
}

/* The n heap references at d; their collections are loaded after (loading moves d's bytes). */
static int add_strings(nnh5__h5r *r, const unsigned char *d, uint64_t n)
{
	size_t first = r->nstrs;

	if (!grow((void **)&r->strs, &r->strs_cap, r->nstrs + (size_t)n, sizeof *r->strs))
		return DECLINE;
	for (uint64_t i = 0; i < n; i++, d += 16) {
		nnh5__h5r_str s = { get(d + 4, 8), (uint32_t)get(d + 12, 4), (uint32_t)get(d, 4) };
		if (s.index == 0)
			return DECLINE;
		r->strs[r->nstrs++] = s;
	}
	for (size_t i = first; i < r->nstrs; i++)
		if (load_heap(r, r->strs[i].coll))
			return DECLINE;
	return NNH5_OK;
}

/* A version-3 attribute message: a scalar 64-bit integer or UTF-8 string(s) nnh5 knows. */
static int parse_attr(nnh5__h5r *r, struct header *h, bool root, const unsigned char *b, size_t n)
{
	size_t nl, dl, sl;
	const unsigned char *name, *dt, *ds, *data;
	unsigned ndim;
	int64_t dims[MAX_RANK];
	int which = -1;

	if (n < 9 || b[0] != 3 || b[1] != 0 || b[8] > 1)
		return DECLINE;
	nl = (size_t)get(b + 2, 2);
	dl = (size_t)get(b + 4, 2);
	sl = (size_t)get(b + 6, 2);
	if (nl < 2 || 9 + nl + dl + sl > n)
		return DECLINE;
	name = b + 9;
	dt = name + nl;
	ds = dt + dl;
	data = ds + sl;
	if (name[nl - 1] != 0)
		return DECLINE;
	for (int i = 0; i < AT_COUNT; i++)
		if (strlen(attr_names[i]) == nl - 1 && memcmp(attr_names[i], name, nl) == 0)
			which = i;
	if (which < 0 || (h->attrs & (1u << which)) || parse_space(&ndim, dims, ds, sl))
		return DECLINE;
	h->attrs |= 1u << which;
	size_t left = n - (size_t)(data - b);
	int num = nnh5__h5_dtype_of_bytes(dt, dl);
	if (which == AT_BLOCKS || which == AT_BLOCK_BYTES) {
		uint64_t count = which == AT_BLOCKS && ndim == 1 ? (uint64_t)dims[0] : 1;
		if (num != NNH5_UINT64 || ndim != (which == AT_BLOCKS ? 1u : 0u) ||
		    count > left / 8 || left != count * 8)
			return DECLINE;
		return NNH5_OK;
	}
	if (which == AT_VERSION || which == AT_LENGTH || which == AT_SUM) {
		int want = which == AT_SUM ? NNH5_UINT64 : NNH5_INT64;
		if (num != want || ndim != 0 || left != 8)
			return DECLINE;
		if (which == AT_SUM) {
			h->has_sum = true;
			h->sum = get(data, 8);
		} else if (which == AT_VERSION && root) {
			r->root.has_version = true;
			r->root.version = (int64_t)get(data, 8);
		}
		return NNH5_OK;
	}
	/* Strings: scalar ones, and the key list (one dimension). */
	if (!nnh5__h5_is_vlen_utf8(dt, dl) || (which == AT_KEYS ? ndim != 1 : ndim != 0))
		return DECLINE;
	uint64_t count = ndim ? (uint64_t)dims[0] : 1;
	if (count > left / 16 || left != count * 16)
		return DECLINE;
	size_t first = r->nstrs;
	if (add_strings(r, data, count))
		return DECLINE;
	if (!root)
		return NNH5_OK;
	if (which == AT_KIND) {
		r->root.has_kind = true;
		r->root.kind = r->strs[first];
	} else if (which == AT_KEYS) {
		r->root.has_keys = true;
		r->root.keys = first;
		r->root.nkeys = (size_t)count;
	}
	return NNH5_OK;
}

static bool all_undef(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0xff)
			return false;
	return true;
}

/*
 * Link info and attribute info: compact storage (no heap or B-tree
 * addresses), except that the root's attributes may be dense (*dense).
 */
static int parse_info(struct header *h, bool links, bool *dense, const unsigned char *b, size_t n)
{
	unsigned flags;
	size_t orderlen = links ? 8 : 2;

	if (n < 2 || b[0] != 0 || ((flags = b[1]) & ~3u))
		return DECLINE;
	size_t want = 2 + (flags & 1 ? orderlen : 0) + 16 + (flags & 2 ? 8 : 0);
	if (n != want)
		return DECLINE;
	if (!all_undef(b + 2 + (flags & 1 ? orderlen : 0), want - 2 - (flags & 1 ? orderlen : 0))) {
		if (!dense)
			return DECLINE;
		*dense = true;
	}
	if (links)
		h->tracked = flags & 1;
	return NNH5_OK;
}

/* A version-1 link message: a hard link with a UTF-8 (or ASCII) name. */
static int parse_link(struct parse *ps, struct header *h, const unsigned char *b, size_t n)
{
	nnh5__h5r *r = ps->r;
	unsigned flags;
	size_t at = 2, lb;
	uint64_t len;

	if (n < 2 || b[0] != 1 || ((flags = b[1]) & ~0x1fu) || (flags & 0x08))
		return DECLINE; /* bit 3: a link type other than hard may follow */
	uint64_t order = 0;
	if (flags & 0x04) {
		if (n < at + 8 || !h->tracked)
			return DECLINE;
		order = get(b + at, 8);
		at += 8;
	} else if (h->tracked) {
		return DECLINE;
	}
	if (flags & 0x10) {
		if (n < at + 1 || b[at] > 1)
			return DECLINE;
		at++;
	}
	lb = (size_t)1 << (flags & 3);
	if (n < at + lb)
		return DECLINE;
	len = get(b + at, (unsigned)lb);
	at += lb;
	if (len == 0 || len > 65535 || n != at + len + 8)
		return DECLINE;
	if (memchr(b + at, 0, (size_t)len))
		return DECLINE;
	if (!grow((void **)&ps->links, &ps->cap, ps->nlinks + 1, sizeof *ps->links) ||
	    !grow((void **)&r->names, &r->names_cap, r->names_len + (size_t)len + 1, 1))
		return DECLINE;
	memcpy(r->names + r->names_len, b + at, (size_t)len);
	r->names[r->names_len + len] = '\0';
	ps->links[ps->nlinks++] = (struct link){ r->names_len, (size_t)len, get(b + at + len, 8), order };
	r->names_len += (size_t)len + 1;
	return NNH5_OK;
}

/*
 * The messages of one chunk of an object header: the chunk is total bytes
 * at addr (its checksum last, checked by the caller), its messages from
 * offset first, each with a header of mh bytes.
 */
static int parse_chunk(struct parse *ps, struct header *h, bool root, uint64_t addr,
		       uint64_t total, size_t first, size_t mh)
{
	nnh5__h5r *r = ps->r;
	const unsigned char *p = view(r, addr, total);
	size_t moves;

	if (!p)
		return DECLINE;
	const unsigned char *m = p + first, *end = p + total - 4;
	while ((size_t)(end - m) >= mh) {
		unsigned type = m[0], mflags = m[3];
		size_t size = (size_t)get(m + 1, 2);
		const unsigned char *b = m + mh;
		int rc = NNH5_OK;
		if ((size_t)(end - b) < size || (mflags & ~0x05u))
			return DECLINE; /* shared messages and the like */
		m = b + size;
		size_t next_off = (size_t)(m - p);
		switch (type) {
		case 0x00: break; /* NIL: free space */
		case 0x01:
			rc = h->space || parse_space(&h->ndim, h->dims, b, size);
			h->space = true;
			break;
		case 0x03:
			h->dtype = nnh5__h5_dtype_of_bytes(b, size);
			rc = h->type || h->dtype < 0;
			h->type = true;
			break;
		case 0x05: /* fill value, version 3: never written into allocated data */
			rc = h->fill || size < 2 || b[0] != 3 || (b[1] & ~0x3fu) || (b[1] & 0x10) ||
			     size != ((b[1] & 0x20) ? 6 + get(b + 2, 4) : 2);
			h->fill = true;
			break;
		case 0x08: /* contiguous layout, version 3 */
			rc = h->layout || size != 18 || b[0] != 3 || b[1] != 1;
			h->data_addr = get(b + 2, 8);
			h->data_size = get(b + 10, 8);
			h->layout = true;
			break;
		case 0x15:
			rc = h->ainfo || parse_info(h, false, root ? &r->root.dense_attrs : NULL, b, size);
			h->ainfo = true;
			break;
		case 0x02:
			rc = h->linfo || parse_info(h, true, NULL, b, size);
			h->linfo = true;
			break;
		case 0x0a: /* group info */
			rc = h->ginfo || size < 2 || b[0] != 0 || (b[1] & ~3u) ||
			     size != 2u + (b[1] & 1 ? 4 : 0) + (b[1] & 2 ? 4 : 0);
			h->ginfo = true;
			break;
		case 0x0c:
			moves = r->moves;
			rc = parse_attr(r, h, root, b, size);
			/* Loading a heap moved the bytes: find them again (read again: check again). */
			if (!rc && r->moves != moves) {
				if (!(p = view(r, addr, total)) ||
				    nnh5__h5_checksum(p, (size_t)(total - 4)) !=
					    (uint32_t)get(p + total - 4, 4))
					return DECLINE;
				m = p + next_off;
				end = p + total - 4;
			}
			break;
		case 0x06:
			rc = !h->linfo || parse_link(ps, h, b, size);
			break;
		case 0x10: /* continuation: another chunk of this header */
			rc = size != 16 || h->nconts >= MAX_CHUNKS;
			if (!rc) {
				h->cont[h->nconts][0] = get(b, 8);
				h->cont[h->nconts++][1] = get(b + 8, 8);
			}
			break;
		default:
			return DECLINE;
		}
		if (rc)
			return DECLINE;
	}
	return NNH5_OK;
}

/* A chunk at addr of total bytes whose checksum (its last 4 bytes) holds. */
static const unsigned char *checked(nnh5__h5r *r, uint64_t addr, uint64_t total)
{
	const unsigned char *p = total >= 8 ? view(r, addr, total) : NULL;

	if (!p || nnh5__h5_checksum(p, (size_t)(total - 4)) != (uint32_t)get(p + total - 4, 4) ||
	    !add_ext(r, addr, total))
		return NULL;
	return p;
}

/* Parse the object header at addr: its messages into h, its links onto ps->links. */
static int parse_header(struct parse *ps, struct header *h, uint64_t addr, bool root)
{
	nnh5__h5r *r = ps->r;
	const unsigned char *p;
	unsigned flags, sb;
	uint64_t chunk, total;
	size_t mh;

	memset(h, 0, sizeof *h);
	h->dtype = -1;
	h->data_addr = UNDEF;
	if (addr < 48 || !(p = view(r, addr, 6)) || memcmp(p, "OHDR", 4) != 0 || p[4] != 2)
		return DECLINE;
	flags = p[5];
	if (flags & ~0x0fu)
		return DECLINE; /* times or non-default phase changes: not nnh5's */
	sb = 1u << (flags & 3);
	mh = flags & 0x04 ? 6 : 4;
	if (!(p = view(r, addr, 6 + sb)))
		return DECLINE;
	chunk = get(p + 6, sb);
	if (chunk > MAX_HEADER)
		return DECLINE;
	total = 6 + sb + chunk + 4;
	if (!checked(r, addr, total) || parse_chunk(ps, h, root, addr, total, 6 + sb, mh))
		return DECLINE;
	/* Continuation chunks ("OCHK", messages, checksum), as HDF5 adds when a header grows. */
	for (unsigned c = 0; c < h->nconts; c++) {
		uint64_t at = h->cont[c][0], len = h->cont[c][1];
		if (len < 8 || len > MAX_HEADER || !(p = checked(r, at, len)) ||
		    memcmp(p, "OCHK", 4) != 0 || parse_chunk(ps, h, root, at, len, 4, mh))
			return DECLINE;
	}
	h->group = h->linfo;
	if (root && r->root.dense_attrs && h->attrs)
		return DECLINE;
	if (h->group)
		return h->ginfo && !h->space && !h->type && !h->layout && !h->fill ? NNH5_OK : DECLINE;
	if (!h->space || !h->type || !h->layout || h->ginfo)
		return DECLINE;
	if (h->attrs & ~DATASET_ATTRS)
		return DECLINE;
	return NNH5_OK;
}

static int cmp_link(const void *a, const void *b)
{
	uint64_t x = ((const struct link *)a)->order, y = ((const struct link *)b)->order;
	return x < y ? -1 : x > y;
}

/* Parse object idx (already appended, its header at r->o[idx].addr) and below it. */
static int parse_obj(struct parse *ps, uint32_t idx)
{
	nnh5__h5r *r = ps->r;
	struct header h;
	size_t first = ps->nlinks, last;

	if (!first_visit(r, r->o[idx].addr) || parse_header(ps, &h, r->o[idx].addr, idx == 0))
		return DECLINE;
	nnh5__h5r_obj *o = &r->o[idx];
	o->group = h.group;
	if (!h.group) {
		if (!grow((void **)&r->shapes, &r->shapes_cap, r->nshapes + h.ndim, sizeof *r->shapes))
			return DECLINE;
		o->dtype = h.dtype;
		o->ndim = h.ndim;
		o->dims = r->nshapes;
		if (h.ndim) /* a 0-d dataset may meet shapes still unallocated */
			memcpy(r->shapes + r->nshapes, h.dims, h.ndim * sizeof *h.dims);
		r->nshapes += h.ndim;
		o->data_addr = h.data_addr;
		o->data_size = h.data_size;
		o->has_sum = h.has_sum;
		o->sum = h.sum;
		if (h.data_addr != UNDEF && h.data_size && !add_ext(r, h.data_addr, h.data_size))
			return DECLINE;
		if (h.data_addr != UNDEF &&
		    (h.data_addr > r->file_size || h.data_size > r->file_size - h.data_addr))
			return DECLINE;
		return NNH5_OK;
	}
	if ((h.attrs & DATASET_ATTRS) || (idx != 0 && h.attrs))
		return DECLINE;
	/* The walk refuses groups deeper than max_depth; this also bounds the recursion. */
	if (r->o[idx].depth > r->max_depth)
		return DECLINE;
	last = ps->nlinks;
	/* HDF5 lists links by creation order, wherever their messages are: distinct values. */
	bool sorted = true;
	for (size_t i = first + 1; i < last && sorted; i++)
		sorted = ps->links[i - 1].order < ps->links[i].order;
	if (!sorted) {
		qsort(ps->links + first, last - first, sizeof *ps->links, cmp_link);
		for (size_t i = first + 1; i < last; i++)
			if (ps->links[i - 1].order == ps->links[i].order)
				return DECLINE;
	}
	for (size_t i = first; i < last; i++) {
		uint32_t c;
		if (r->n >= INT32_MAX ||
		    !grow((void **)&r->o, &r->cap, r->n + 1, sizeof *r->o))
			return DECLINE;
		c = (uint32_t)r->n++;
		memset(&r->o[c], 0, sizeof r->o[c]);
		r->o[c].addr = ps->links[i].addr;
		r->o[c].parent = idx;
		r->o[c].depth = r->o[idx].depth + 1;
		r->o[c].name = ps->links[i].name;
		r->o[c].namelen = ps->links[i].namelen;
		r->o[c].data_addr = UNDEF;
		if (parse_obj(ps, c))
			return DECLINE;
	}
	ps->nlinks = first;
	return NNH5_OK;
}

static int cmp_ext(const void *a, const void *b)
{
	const struct nnh5__h5r_ext *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static int parse_file(nnh5__h5r *r, uint64_t file_size, size_t max_depth)
{
	struct parse ps = { r, NULL, 0, 0 };
	const unsigned char *p;
	int rc = DECLINE;

	r->file_size = file_size;
	r->max_depth = max_depth;
	/* Superblock version 2 or 3: 8-byte offsets and lengths, flags 0, no extension, base 0. */
	if (!(p = view(r, 0, 48)) || memcmp(p, "\211HDF\r\n\032\n", 8) != 0 ||
	    (p[8] != 2 && p[8] != 3) || p[9] != 8 || p[10] != 8 || p[11] != 0 ||
	    get(p + 12, 8) != 0 || get(p + 20, 8) != UNDEF || get(p + 28, 8) != file_size ||
	    nnh5__h5_checksum(p, 44) != (uint32_t)get(p + 44, 4))
		return DECLINE;
	uint64_t root = get(p + 36, 8);
	if (!add_ext(r, 0, 48) || !grow((void **)&r->o, &r->cap, 1, sizeof *r->o) ||
	    !grow((void **)&r->names, &r->names_cap, 1, 1))
		goto done;
	r->names[0] = '\0';
	r->names_len = 1;
	memset(&r->o[0], 0, sizeof r->o[0]);
	r->o[0].addr = root;
	r->o[0].parent = NNH5__H5R_NONE;
	r->o[0].data_addr = UNDEF;
	r->n = 1;
	if (parse_obj(&ps, 0) || !r->o[0].group)
		goto done;
	/* Nothing overlaps: headers, heaps and data each have their own bytes. */
	qsort(r->ext, r->next, sizeof *r->ext, cmp_ext);
	for (size_t i = 1; i < r->next; i++)
		if (r->ext[i].start < r->ext[i - 1].end)
			goto done;
	rc = NNH5_OK;
done:
	nnh5__free(ps.links);
	return rc;
}

int nnh5__h5r_open(nnh5__h5r *r, int fd, uint64_t file_size, size_t max_depth)
{
	r->fd = fd;
	return parse_file(r, file_size, max_depth);
}

void nnh5__h5r_release(nnh5__h5r *r)
{
	nnh5__free(r->strs);
	nnh5__free(r->pre);
	nnh5__free(r->far);
	nnh5__free(r->seen);
	nnh5__free(r->ext);
	for (size_t i = 0; i < r->nheaps; i++) {
		nnh5__free(r->heaps[i].buf);
		nnh5__free(r->heaps[i].at);
		nnh5__free(r->heaps[i].len);
	}
	nnh5__free(r->heaps);
	r->strs = NULL;
	r->nstrs = r->strs_cap = 0;
	r->pre = r->far = NULL;
	r->pre_len = r->pre_cap = r->far_len = r->far_cap = 0;
	r->seen = NULL;
	r->seen_cap = r->nseen = 0;
	r->ext = NULL;
	r->next = r->ext_cap = 0;
	r->heaps = NULL;
	r->nheaps = r->heaps_cap = 0;
}

void nnh5__h5r_free(nnh5__h5r *r)
{
	nnh5__h5r_release(r);
	nnh5__free(r->o);
	nnh5__free(r->names);
	nnh5__free(r->shapes);
	memset(r, 0, sizeof *r);
}

const char *nnh5__h5r_name(const nnh5__h5r *r, uint32_t i)
{
	return r->names + r->o[i].name;
}

const int64_t *nnh5__h5r_shape(const nnh5__h5r *r, uint32_t i)
{
	return r->shapes ? r->shapes + r->o[i].dims : NULL; /* NULL: only 0-d datasets so far */
}
