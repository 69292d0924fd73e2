/*
 * nnh5_walk.c - the nnh5 tool's walk of an arbitrary HDF5 file, and the
 * escaping and formatting helpers every subcommand uses.
 *
 * Files are untrusted: the walk follows hard links only (soft, external and
 * user-defined links are listed, never followed), stops at a fixed depth,
 * lists a group reached twice only once (which also breaks cycles), and
 * records what it cannot read as an error entry instead of giving up, so a
 * damaged file still shows everything that is readable.
 */
#include "nnh5_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *tool_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fputs("nnh5: out of memory\n", stderr);
		exit(EXIT_USAGE);
	}
	return p;
}

void *tool_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fputs("nnh5: out of memory\n", stderr);
		exit(EXIT_USAGE);
	}
	return q;
}

char *tool_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = tool_xmalloc(n);
	memcpy(p, s, n);
	return p;
}

void tool_init_hdf5(void)
{
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Length of the valid UTF-8 sequence at s, 0 if invalid (overlong, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls (U+0080..U+009F) act on some terminals like ESC sequences. */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return n;
}

char *tool_escape(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), o = 0;
	char *out = tool_xmalloc(4 * len + 1);

	while (*p) {
		size_t n = utf8_len(p);
		if (*p == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
			p++;
		} else if (n == 0 || *p < 0x20 || *p == 0x7f) {
			static const char hex[] = "0123456789abcdef";
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
			p++;
		} else {
			memcpy(out + o, p, n);
			o += n;
			p += n;
		}
	}
	out[o] = '\0';
	return out;
}

void tool_put(FILE *fp, const char *s)
{
	char *e = tool_escape(s);
	fputs(e, fp);
	free(e);
}

void tool_group_digits(char *buf, size_t n, uint64_t v)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
	size_t o = 0;

	for (int i = 0; i < len && o + 2 < n; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
}

void tool_shape_str(char *buf, size_t n, const struct entry *e)
{
	size_t o;

	if (!e->has_shape) {
		snprintf(buf, n, "null");
		return;
	}
	o = (size_t)snprintf(buf, n, "(");
	for (int i = 0; i < e->ndim && o < n; i++)
		o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? ", " : "",
				      (unsigned long long)e->dims[i]);
	if (o < n)
		snprintf(buf + o, n - o, e->ndim == 1 ? ",)" : ")");
	/* PyTorch writes torch.Size([5]); a Python tuple (5,) reads best next to h5py. */
}

char *tool_norm_path(const char *path)
{
	size_t len = strlen(path), o = 0;
	char *out = tool_xmalloc(len + 2);
	const char *p = path;

	out[o++] = '/';
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			free(out);
			return NULL;
		}
		if (n > 0) {
			if (o > 1)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	return out;
}

/* External links could open any file on the system: refuse every traversal. */
static herr_t deny_elink(const char *parent_file, const char *parent_group, const char *child_file,
			 const char *child_object, unsigned *acc_flags, hid_t fapl, void *data)
{
	(void)parent_file;
	(void)parent_group;
	(void)child_file;
	(void)child_object;
	(void)acc_flags;
	(void)fapl;
	(void)data;
	return -1;
}

hid_t tool_open(const char *cmd, const char *path)
{
	FILE *fp = fopen(path, "rb");
	hid_t fapl, fid;

	if (!fp) {
		fprintf(stderr, "nnh5 %s: cannot open '", cmd);
		tool_put(stderr, path);
		fprintf(stderr, "': %s\n", strerror(errno));
		return -1;
	}
	fclose(fp);
	/* Same close degree as the library, so both may have the file open at once. */
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl >= 0)
		H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
	fid = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
	if (fapl >= 0)
		H5Pclose(fapl);
	if (fid < 0) {
		fprintf(stderr, "nnh5 %s: '", cmd);
		tool_put(stderr, path);
		fprintf(stderr, "' is not an HDF5 file, or is damaged (truncated?)\n");
	}
	return fid;
}

static struct entry *add_entry(struct walk *w, const char *path, const char *name, int depth)
{
	struct entry *e;

	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->v = tool_xrealloc(w->v, w->cap * sizeof *w->v);
	}
	e = &w->v[w->n++];
	memset(e, 0, sizeof *e);
	e->path = tool_xstrdup(path);
	e->name = tool_xstrdup(name);
	e->depth = depth;
	e->kind = "error";
	return e;
}

static void set_note(struct entry *e, const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + (b ? strlen(b) : 0) + (c ? strlen(c) : 0) + 1;
	free(e->note);
	e->note = tool_xmalloc(n);
	snprintf(e->note, n, "%s%s%s", a, b ? b : "", c ? c : "");
}

static void mark_error(struct walk *w, struct entry *e, const char *what)
{
	e->error = true;
	e->kind = "error";
	set_note(e, what, NULL, NULL);
	w->n_errors++;
}

/* A scalar string attribute (fixed or variable length) as a new string, or NULL. */
static char *read_str_attr(hid_t obj, const char *name)
{
	hid_t a = -1, ft = -1, mt = -1, sp = -1;
	char *out = NULL;

	if (H5Aexists(obj, name) <= 0)
		return NULL;
	a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0)
		goto done;
	ft = H5Aget_type(a);
	sp = H5Aget_space(a);
	if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1)
		goto done;
	if (H5Tis_variable_str(ft) > 0) {
		char *v = NULL;
		mt = H5Tcopy(H5T_C_S1);
		/* HDF5 converts no strings between character sets: read in the file's. */
		if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
		    H5Tset_cset(mt, H5Tget_cset(ft)) < 0 || H5Aread(a, mt, &v) < 0)
			goto done;
		if (v) {
			out = tool_xstrdup(v);
			H5free_memory(v);
		}
	} else {
		size_t n = H5Tget_size(ft);
		/* A hostile size could ask for gigabytes; kinds and layer names are short. */
		if (n == 0 || n > 65536)
			goto done;
		mt = H5Tcopy(H5T_C_S1);
		if (mt < 0 || H5Tset_size(mt, n + 1) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0)
			goto done;
		out = tool_xmalloc(n + 1);
		memset(out, 0, n + 1);
		if (H5Aread(a, mt, out) < 0) {
			free(out);
			out = NULL;
		}
	}
done:
	if (mt >= 0)
		H5Tclose(mt);
	if (sp >= 0)
		H5Sclose(sp);
	if (ft >= 0)
		H5Tclose(ft);
	if (a >= 0)
		H5Aclose(a);
	return out;
}

/* A 1-d array of variable-length strings (nnh5_keys, nnh5_layers), or NULL (*n = 0). */
static char **read_keys_attr(hid_t obj, const char *name, size_t *n)
{
	hid_t a = -1, ft = -1, mt = -1, sp = -1;
	char **out = NULL;
	hssize_t np;

	*n = 0;
	if (H5Aexists(obj, name) <= 0)
		return NULL;
	a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0)
		goto done;
	ft = H5Aget_type(a);
	sp = H5Aget_space(a);
	if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) <= 0)
		goto done;
	np = H5Sget_simple_extent_npoints(sp);
	if (np <= 0 || np > 10000000)
		goto done;
	mt = H5Tcopy(H5T_C_S1);
	if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0)
		goto done;
	{
		char **raw = calloc((size_t)np, sizeof *raw);
		if (!raw)
			goto done;
		if (H5Aread(a, mt, raw) >= 0) {
			out = tool_xmalloc((size_t)np * sizeof *out);
			for (hssize_t i = 0; i < np; i++)
				out[i] = tool_xstrdup(raw[i] ? raw[i] : "");
			*n = (size_t)np;
			H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
		}
		free(raw);
	}
done:
	if (mt >= 0)
		H5Tclose(mt);
	if (sp >= 0)
		H5Sclose(sp);
	if (ft >= 0)
		H5Tclose(ft);
	if (a >= 0)
		H5Aclose(a);
	return out;
}

/* What a dataset's type is: an nnh5 dtype name (loadable) or a description. */
static void classify_type(struct entry *e, hid_t dset, hid_t type)
{
	H5T_class_t cls = H5Tget_class(type);
	size_t size = H5Tget_size(type);

	e->loadable = false;
	switch (cls) {
	case H5T_INTEGER: {
		bool sign = H5Tget_sign(type) == H5T_SGN_2;
		if (size == 1 || size == 2 || size == 4 || size == 8) {
			snprintf(e->dtype, sizeof e->dtype, "%sint%zu", sign ? "" : "u", size * 8);
			e->loadable = true;
		} else {
			snprintf(e->dtype, sizeof e->dtype, "int(%zu bytes)", size);
		}
		break;
	}
	case H5T_FLOAT:
		if (size == 4 || size == 8) {
			snprintf(e->dtype, sizeof e->dtype, "float%zu", size * 8);
			e->loadable = true;
		} else if (size == 2) {
			size_t spos, epos, esize, mpos, msize;
			char *tag = read_str_attr(dset, "nnh5_dtype");
			if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) >= 0 &&
			    spos == 15 && mpos == 0 && (msize == 10 || msize == 7)) {
				snprintf(e->dtype, sizeof e->dtype, "%s",
					 msize == 7 || (tag && !strcmp(tag, "bfloat16")) ? "bfloat16"
											 : "float16");
				e->loadable = true;
			} else {
				snprintf(e->dtype, sizeof e->dtype, "float(2 bytes)");
			}
			free(tag);
		} else {
			snprintf(e->dtype, sizeof e->dtype, "float(%zu bytes)", size);
		}
		break;
	case H5T_ENUM:
		if (size == 1 && H5Tget_nmembers(type) == 2) {
			snprintf(e->dtype, sizeof e->dtype, "bool");
			e->loadable = true;
		} else {
			snprintf(e->dtype, sizeof e->dtype, "enum");
		}
		break;
	case H5T_STRING: snprintf(e->dtype, sizeof e->dtype, "string"); break;
	case H5T_COMPOUND: snprintf(e->dtype, sizeof e->dtype, "compound"); break;
	case H5T_ARRAY: snprintf(e->dtype, sizeof e->dtype, "array"); break;
	case H5T_VLEN: snprintf(e->dtype, sizeof e->dtype, "vlen"); break;
	case H5T_REFERENCE: snprintf(e->dtype, sizeof e->dtype, "reference"); break;
	case H5T_OPAQUE: snprintf(e->dtype, sizeof e->dtype, "opaque"); break;
	case H5T_BITFIELD: snprintf(e->dtype, sizeof e->dtype, "bitfield"); break;
	default: snprintf(e->dtype, sizeof e->dtype, "unknown"); break;
	}
}

static void describe_dataset(struct walk *w, struct entry *e, hid_t d)
{
	hid_t type = H5Dget_type(d), space = H5Dget_space(d);
	size_t elsize;

	e->is_dataset = true;
	e->kind = "tensor";
	if (type < 0 || space < 0) {
		mark_error(w, e, "cannot read the dataset's type or shape");
		goto done;
	}
	classify_type(e, d, type);
	if (!e->loadable)
		e->kind = "dataset";
	elsize = H5Tget_size(type);
	switch (H5Sget_simple_extent_type(space)) {
	case H5S_SCALAR:
		e->has_shape = true;
		e->ndim = 0;
		e->numel = 1;
		break;
	case H5S_SIMPLE: {
		int nd = H5Sget_simple_extent_ndims(space);
		if (nd < 0 || nd > TOOL_MAX_NDIM) {
			mark_error(w, e, "bad dataspace rank");
			goto done;
		}
		e->has_shape = true;
		e->ndim = nd;
		H5Sget_simple_extent_dims(space, e->dims, NULL);
		e->numel = 1;
		for (int i = 0; i < nd; i++) {
			if (e->dims[i] != 0 && e->numel > UINT64_MAX / e->dims[i])
				e->overflow = true;
			else
				e->numel *= e->dims[i];
		}
		break;
	}
	case H5S_NULL:
		e->has_shape = false;
		e->numel = 0;
		break;
	default:
		mark_error(w, e, "bad dataspace");
		goto done;
	}
	if (elsize != 0 && e->numel > UINT64_MAX / elsize)
		e->overflow = true;
	else
		e->bytes = e->numel * elsize;
done:
	if (type >= 0)
		H5Tclose(type);
	if (space >= 0)
		H5Sclose(space);
}

static const char *group_kind(const char *attr, struct entry *e)
{
	static const char *const kinds[] = {"list", "dict", "state_dict", "model", "checkpoint"};

	if (!attr)
		return "group";
	for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
		if (!strcmp(attr, kinds[i]))
			return kinds[i];
	/* A single-tensor file's root says "tensor", but it is still a group. */
	if (strcmp(attr, "tensor") != 0)
		set_note(e, "unknown nnh5_kind '", attr, "'");
	return "group";
}

struct link {
	char *name;
	H5L_type_t type;
};

struct links {
	struct link *v;
	size_t n, cap;
};

static herr_t collect_link(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
	struct links *l = data;
	(void)g;
	/* A group with millions of links is hostile or not a model file; stop collecting. */
	if (l->n >= 1000000)
		return 1;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = tool_xrealloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n].name = tool_xstrdup(name);
	l->v[l->n].type = info->type;
	l->n++;
	return 0;
}

static void free_links(struct links *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

/* Move the link key names (or, for a dotted key, its first component) to position placed. */
static size_t place_key(struct links *l, size_t placed, const char *key)
{
	size_t klen = strlen(key);

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = placed; i < l->n; i++) {
			const char *nm = l->v[i].name;
			size_t nlen = strlen(nm);
			bool match = pass == 0 ? !strcmp(nm, key)
					       : nlen < klen && !strncmp(nm, key, nlen) && key[nlen] == '.';
			if (match) {
				struct link t = l->v[i];
				memmove(&l->v[placed + 1], &l->v[placed], (i - placed) * sizeof *l->v);
				l->v[placed] = t;
				return placed + 1;
			}
		}
	}
	return placed;
}

/*
 * The group's links in the format's order: nnh5_keys first (a state dict's
 * dotted keys name their first component), then creation order when the
 * group indexes it, else name order.
 */
static int list_links(struct links *l, hid_t g)
{
	hid_t gcpl = H5Gget_create_plist(g);
	unsigned flags = 0;
	hsize_t idx = 0;
	int rc = -1;
	char **keys;
	size_t nkeys, placed = 0;

	memset(l, 0, sizeof *l);
	if (gcpl >= 0) {
		if (H5Pget_link_creation_order(gcpl, &flags) < 0)
			flags = 0;
		H5Pclose(gcpl);
	}
	if (flags & H5P_CRT_ORDER_INDEXED)
		rc = H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_link, l);
	if (rc < 0) {
		free_links(l);
		memset(l, 0, sizeof *l);
		idx = 0;
		rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link, l);
	}
	if (rc < 0)
		return -1;
	/* A model's children go in forward order, parameters or not; then the keys. */
	for (int which = 0; which < 2; which++) {
		keys = read_keys_attr(g, which ? "nnh5_keys" : "nnh5_layers", &nkeys);
		for (size_t k = 0; k < nkeys; k++) {
			placed = place_key(l, placed, keys[k]);
			free(keys[k]);
		}
		free(keys);
	}
	return 0;
}

static const char *seen_path(const struct walk *w, haddr_t addr)
{
	for (size_t i = 0; i < w->n_seen; i++)
		if (w->seen[i] == addr)
			return w->seen_path[i];
	return NULL;
}

static void add_seen(struct walk *w, haddr_t addr, const char *path)
{
	if (w->n_seen == w->cap_seen) {
		w->cap_seen = w->cap_seen ? 2 * w->cap_seen : 32;
		w->seen = tool_xrealloc(w->seen, w->cap_seen * sizeof *w->seen);
		w->seen_path = tool_xrealloc(w->seen_path, w->cap_seen * sizeof *w->seen_path);
	}
	w->seen[w->n_seen] = addr;
	w->seen_path[w->n_seen++] = tool_xstrdup(path);
}

static char *join(const char *parent, const char *name)
{
	size_t a = strlen(parent), b = strlen(name);
	char *p = tool_xmalloc(a + b + 2);
	memcpy(p, parent, a);
	if (a == 0 || parent[a - 1] != '/')
		p[a++] = '/';
	memcpy(p + a, name, b + 1);
	return p;
}

static void walk_group(struct walk *w, hid_t g, struct entry *ge, bool reserved);

/* Describe the object name of the open group g (link type ltype) as a new entry. */
static void walk_child(struct walk *w, hid_t g, const char *parent, const char *name,
		       H5L_type_t ltype, int depth, bool reserved)
{
	char *path = join(parent, name);
	struct entry *e = add_entry(w, path, name, depth);
	H5O_info_t oi;

	e->reserved = reserved || strncmp(name, "nnh5_", 5) == 0;
	if (ltype != H5L_TYPE_HARD) {
		H5L_info_t li;
		char *val = NULL;
		e->kind = "link";
		if (H5Lget_info(g, name, &li, w->lapl) >= 0 && li.u.val_size > 0 &&
		    li.u.val_size < 65536) {
			val = tool_xmalloc(li.u.val_size + 1);
			if (H5Lget_val(g, name, val, li.u.val_size, w->lapl) < 0) {
				free(val);
				val = NULL;
			} else {
				val[li.u.val_size] = '\0';
			}
		}
		if (ltype == H5L_TYPE_SOFT) {
			set_note(e, "soft link to ", val ? val : "?", ": not followed");
		} else if (ltype == H5L_TYPE_EXTERNAL) {
			const char *file = NULL, *obj = NULL;
			unsigned fl;
			if (val && H5Lunpack_elink_val(val, li.u.val_size, &fl, &file, &obj) >= 0 &&
			    file && obj) {
				size_t n = strlen(file) + strlen(obj) + 40;
				free(e->note);
				e->note = tool_xmalloc(n);
				snprintf(e->note, n, "external link to %s:%s: refused", file, obj);
			} else {
				set_note(e, "external link: refused", NULL, NULL);
			}
		} else {
			set_note(e, "user-defined link: not followed", NULL, NULL);
		}
		free(val);
		free(path);
		return;
	}
	if (H5Oget_info_by_name(g, name, &oi, w->lapl) < 0) {
		mark_error(w, e, "cannot read the object header");
		free(path);
		return;
	}
	if (oi.type == H5O_TYPE_DATASET) {
		hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
		if (d < 0)
			mark_error(w, e, "cannot open the dataset");
		else
			describe_dataset(w, e, d);
		if (d >= 0)
			H5Dclose(d);
	} else if (oi.type == H5O_TYPE_GROUP) {
		const char *other = seen_path(w, oi.addr);
		e->is_group = true;
		e->kind = "group";
		if (other) {
			/* Either a second hard link or a cycle; listing it again could never end. */
			set_note(e, "hard link to ", other, ": listed there");
		} else if (depth >= TOOL_MAX_DEPTH) {
			set_note(e, "nested too deep: not listed", NULL, NULL);
		} else {
			hid_t cg = H5Gopen2(g, name, H5P_DEFAULT);
			add_seen(w, oi.addr, path);
			if (cg < 0) {
				mark_error(w, e, "cannot open the group");
			} else {
				walk_group(w, cg, e, e->reserved);
				H5Gclose(cg);
			}
		}
	} else if (oi.type == H5O_TYPE_NAMED_DATATYPE) {
		e->kind = "datatype";
	} else {
		mark_error(w, e, "unknown object type");
	}
	free(path);
}

/* ge: the group's entry, already added; fills its kind and walks its links. */
static void walk_group(struct walk *w, hid_t g, struct entry *ge, bool reserved)
{
	struct links l;
	char *kind = read_str_attr(g, "nnh5_kind");
	char *layer = read_str_attr(g, "nnh5_layer_type");
	/* w->v may move while children are added: keep what is needed by value. */
	char *path = tool_xstrdup(ge->path);
	int depth = ge->depth;

	ge->is_group = true;
	ge->kind = group_kind(kind, ge);
	ge->layer = layer;
	free(kind);
	if (list_links(&l, g) < 0) {
		mark_error(w, ge, "cannot list the group's links");
		free(path);
		return;
	}
	for (size_t i = 0; i < l.n; i++)
		walk_child(w, g, path, l.v[i].name, l.v[i].type, depth + 1, reserved);
	free_links(&l);
	free(path);
}

/* Is every component of path reached by a hard link? Reports the first that is not. */
static int check_hard_path(const char *cmd, const char *file, hid_t fid, const char *path,
			   hid_t lapl)
{
	char *buf = tool_xstrdup(path);
	int rc = 0;

	for (char *p = buf + 1; *p && rc == 0; p++) {
		char *slash = strchr(p, '/');
		H5L_info_t li;
		if (slash)
			*slash = '\0';
		if (H5Lexists(fid, buf, lapl) <= 0 || H5Lget_info(fid, buf, &li, lapl) < 0) {
			fprintf(stderr, "nnh5 %s: '", cmd);
			tool_put(stderr, file);
			fputs("' has no object '", stderr);
			tool_put(stderr, buf);
			fputs("'\n", stderr);
			rc = -1;
		} else if (li.type != H5L_TYPE_HARD) {
			fprintf(stderr, "nnh5 %s: '", cmd);
			tool_put(stderr, file);
			fputs("': '", stderr);
			tool_put(stderr, buf);
			fputs("' is a soft or external link: not followed\n", stderr);
			rc = -1;
		}
		if (!slash)
			break;
		*slash = '/';
		p = slash;
	}
	free(buf);
	return rc;
}

int tool_walk(struct walk *w, const char *cmd, const char *file, hid_t fid, const char *path)
{
	H5O_info_t oi;
	struct entry *e;
	const char *slash;
	bool reserved = strstr(path, "/nnh5_") != NULL;

	memset(w, 0, sizeof *w);
	w->lapl = H5Pcreate(H5P_LINK_ACCESS);
	if (w->lapl >= 0)
		H5Pset_elink_cb(w->lapl, deny_elink, NULL);
	if (check_hard_path(cmd, file, fid, path, w->lapl) < 0)
		return -1;
	slash = strrchr(path, '/');
	e = add_entry(w, path, strcmp(path, "/") ? slash + 1 : "/", 0);
	e->reserved = reserved;
	if (H5Oget_info_by_name(fid, path, &oi, w->lapl) < 0) {
		mark_error(w, e, "cannot read the object header");
		return 0;
	}
	if (oi.type == H5O_TYPE_GROUP) {
		hid_t g = H5Gopen2(fid, path, H5P_DEFAULT);
		add_seen(w, oi.addr, path);
		if (g < 0) {
			mark_error(w, e, "cannot open the group");
		} else {
			walk_group(w, g, e, reserved);
			H5Gclose(g);
		}
	} else if (oi.type == H5O_TYPE_DATASET) {
		hid_t d = H5Dopen2(fid, path, H5P_DEFAULT);
		if (d < 0) {
			mark_error(w, e, "cannot open the dataset");
		} else {
			describe_dataset(w, e, d);
			H5Dclose(d);
		}
	} else {
		e->kind = "datatype";
	}
	return 0;
}

void tool_walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		free(w->v[i].name);
		free(w->v[i].layer);
		free(w->v[i].note);
	}
	for (size_t i = 0; i < w->n_seen; i++)
		free(w->seen_path[i]);
	free(w->seen_path);
	free(w->seen);
	free(w->v);
	if (w->lapl >= 0)
		H5Pclose(w->lapl);
	memset(w, 0, sizeof *w);
}
