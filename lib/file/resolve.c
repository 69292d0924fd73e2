/*
 * lib/file/resolve.c - how every reader reaches an object by name: each
 * path component and each link is resolved here, before HDF5 follows
 * anything (lib/file/walk.h says the rules), and the link access list that
 * refuses external links as a second line of defence.
 */
#include "file/resolve.h"
#include "store/h5util.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Link access                                                         */

static herr_t refuse_elink(const char *parent_file, const char *parent_group,
			   const char *child_file, const char *child_object, unsigned *flags,
			   hid_t fapl, void *data)
{
	(void)parent_file;
	(void)parent_group;
	(void)child_file;
	(void)child_object;
	(void)flags;
	(void)fapl;
	(void)data;
	return -1;
}

hid_t nnh5__file_lapl(nnh5_file *f)
{
	if (f->policy.allow_external)
		return H5P_DEFAULT;
	if (f->lapl > 0)
		return f->lapl;
	hid_t l = H5Pcreate(H5P_LINK_ACCESS);
	if (l >= 0 && H5Pset_elink_cb(l, refuse_elink, NULL) < 0) {
		H5Pclose(l);
		l = -1;
	}
	H5Eclear2(H5E_DEFAULT);
	/* Without it the walk's own refusal still stands: it is the second line. */
	if (l < 0)
		return H5P_DEFAULT;
	f->lapl = l;
	return l;
}

/* ------------------------------------------------------------------ */
/* Resolving names                                                     */


/*
 * parent + "/" + name into out (n bytes: the caller checked they fit); an
 * empty parent gives name alone (messages show names as the caller gave them).
 */
static void join(char *out, size_t n, const char *parent, const char *name)
{
	size_t lp = strcmp(parent, "/") == 0 ? 0 : strlen(parent), ln = strlen(name);
	size_t slash = lp > 0 || parent[0] == '/'; /* "" + name: a relative name as given */

	if (lp + ln + 2 > n)
		ln = lp + 2 > n ? 0 : n - lp - 2;
	memmove(out, parent, lp);
	if (slash)
		out[lp] = '/';
	memcpy(out + lp + slash, name, ln);
	out[lp + slash + ln] = '\0';
}

static const char *link_kind_text(H5L_type_t t)
{
	return t == H5L_TYPE_EXTERNAL ? "an external link (to another file)" : "a user-defined link";
}

/*
 * The refusal of the external or user-defined link name in group gid
 * (shown as path): it names the file and object it points to.
 */
int nnh5__refuse_link(struct nnh5__resolver *r, hid_t gid, const char *name, const char *path,
		       const H5L_info_t *li)
{
	char esc[512], val[NNH5__PATH_BYTES], fesc[512], oesc[512];
	const char *file = NULL, *obj = NULL;
	unsigned flags;

	nnh5__escape(esc, sizeof esc, path);
	if (li->type == H5L_TYPE_EXTERNAL && li->u.val_size <= sizeof val &&
	    H5Lget_val(gid, name, val, sizeof val, nnh5__file_lapl(r->f)) >= 0 &&
	    H5Lunpack_elink_val(val, li->u.val_size, &flags, &file, &obj) >= 0 && file && obj) {
		H5Eclear2(H5E_DEFAULT);
		return nnh5__error(NNH5_ERR_UNSAFE,
				   "'%s': '%s' is an external link (to another file): refused; it "
				   "points to '%s' in '%s'%s",
				   r->f->path, esc, nnh5__escape(oesc, sizeof oesc, obj),
				   nnh5__escape(fesc, sizeof fesc, file), r->via);
	}
	H5Eclear2(H5E_DEFAULT);
	return nnh5__error(NNH5_ERR_UNSAFE, "'%s': '%s' is %s: refused%s", r->f->path, esc,
			   link_kind_text(li->type), r->via);
}

static int follow(nnh5__obj *out, struct nnh5__resolver *r, hid_t base, const char *base_path,
		  const char *rel);

/* path, on the way to r->name, does not exist. */
static int not_found(const struct nnh5__resolver *r, const char *path)
{
	char esc[512], pesc[512];
	const char *name = r->name && !r->hops ? r->name : path;
	bool whole = strcmp(name, path) == 0 || (name[0] != '/' && strcmp(name, path + 1) == 0);

	nnh5__escape(esc, sizeof esc, name);
	nnh5__escape(pesc, sizeof pesc, path);
	return nnh5__error(NNH5_ERR_NOT_FOUND, "'%s': object '%s' not found%s%s%s%s", r->f->path,
			   esc, whole ? "" : " ('", whole ? "" : pesc, whole ? "" : "' is missing)",
			   r->via);
}

/* FNV-1a: tells link names apart in the cycle check (the hop limit backs it). */
static uint64_t name_hash(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
	return h;
}

/* Follow the soft link name of group cur (shown as path) to the object it names. */
int nnh5__follow_soft(hid_t *next, struct nnh5__resolver *r, hid_t cur, const char *cur_path,
		       const char *name, const char *path, const H5L_info_t *li)
{
	char target[NNH5__PATH_BYTES], esc[512], tesc[512];
	H5O_info_t gi;
	nnh5__obj obj;
	hid_t base;
	int rc;

	nnh5__escape(esc, sizeof esc, path);
	if (li->u.val_size == 0 || li->u.val_size > sizeof target ||
	    H5Lget_val(cur, name, target, sizeof target, nnh5__file_lapl(r->f)) < 0 ||
	    H5Oget_info2(cur, &gi, H5O_INFO_BASIC) < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot read the soft link '%s'",
				      r->f->path, esc);
	target[sizeof target - 1] = '\0';
	nnh5__escape(tesc, sizeof tesc, target);
	/* The same link again while following it: a cycle, whatever the hop count. */
	uint64_t h = name_hash(name);
	for (unsigned i = 0; i < r->hops; i++)
		if (r->stack[i].fileno == gi.fileno && r->stack[i].group == gi.addr &&
		    r->stack[i].name == h)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "'%s': the soft link '%s' -> '%s' leads back to itself (a "
					   "cycle of soft links)",
					   r->f->path, esc, tesc);
	if (r->hops >= NNH5__MAX_HOPS)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': the soft link '%s' -> '%s' is reached through more than %d "
				   "soft links in a row: refused%s",
				   r->f->path, esc, tesc, NNH5__MAX_HOPS, r->via);
	r->stack[r->hops].fileno = gi.fileno;
	r->stack[r->hops].group = gi.addr;
	r->stack[r->hops].name = h;
	r->hops++;
	if (!r->via[0])
		snprintf(r->via, sizeof r->via, " (met resolving the soft link '%s' -> '%s')", esc,
			 tesc);
	/* Absolute targets start at the root of the file holding the link. */
	if (target[0] == '/') {
		base = H5Gopen2(cur, "/", nnh5__file_lapl(r->f));
		if (base < 0)
			return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open the root group",
					      r->f->path);
		rc = follow(&obj, r, base, "/", target);
		H5Gclose(base);
	} else {
		rc = follow(&obj, r, cur, cur_path, target);
	}
	r->hops--;
	if (rc)
		return rc;
	if (obj.type == H5O_TYPE_GROUP) {
		H5Oclose(obj.id);
		return nnh5__error(NNH5_ERR_UNSAFE, "'%s': '%s' is a soft link to a group: refused",
				   r->f->path, esc);
	}
	*next = obj.id;
	return NNH5_OK;
}

/*
 * Follow the components of rel from the open group base (base_path: its
 * path, for messages), one at a time, and open what rel names.
 */
static int follow(nnh5__obj *out, struct nnh5__resolver *r, hid_t base, const char *base_path,
		  const char *rel)
{
	char path[NNH5__PATH_BYTES], comp[NNH5__PATH_BYTES], esc[512], pesc[512];
	hid_t cur = base, lapl = nnh5__file_lapl(r->f);
	const char *p = rel;
	H5O_info_t info;
	int rc = NNH5_OK;

	out->id = -1;
	if (H5Iinc_ref(base) < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot hold a group open", r->f->path);
	snprintf(path, sizeof path, "%s", base_path);
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		H5L_info_t li;
		hid_t next = -1;
		if (len == 0 || (len == 1 && p[0] == '.')) { /* "a//b" and "./a" as HDF5 reads them */
			p += len + (end != NULL);
			continue;
		}
		if (len >= sizeof comp || strlen(path) + len + 2 > sizeof path) {
			rc = nnh5__error(NNH5_ERR_INVALID, "'%s': object name '%s' is too long",
					 r->f->path, nnh5__escape(esc, sizeof esc, rel));
			break;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		size_t plen = strlen(path);
		if (H5Iget_type(cur) != H5I_GROUP) {
			nnh5__escape(pesc, sizeof pesc, path);
			join(path, sizeof path, path, comp);
			rc = nnh5__error(NNH5_ERR_NOT_FOUND,
					 "'%s': object '%s' not found ('%s' is not a group)%s",
					 r->f->path, nnh5__escape(esc, sizeof esc, path), pesc, r->via);
			break;
		}
		join(path, sizeof path, path, comp);
		/* One component: looks the link up without following it. */
		if (H5Lget_info(cur, comp, &li, lapl) < 0) {
			H5Eclear2(H5E_DEFAULT);
			rc = not_found(r, path);
			break;
		}
		if (li.type == H5L_TYPE_HARD) {
			next = H5Oopen_by_addr(cur, li.u.address);
		} else if (li.type == H5L_TYPE_SOFT) {
			/* Resolved from the group holding it: that group's path, for messages. */
			char *parent = nnh5__malloc(plen + 2);
			if (!parent) {
				rc = nnh5__nomem();
				break;
			}
			memcpy(parent, path, plen);
			parent[plen] = '\0';
			rc = nnh5__follow_soft(&next, r, cur, parent, comp, path, &li);
			nnh5__free(parent);
			if (rc)
				break;
		} else if (!r->f->policy.allow_external) {
			rc = nnh5__refuse_link(r, cur, comp, path, &li);
			break;
		} else {
			next = H5Oopen(cur, comp, H5P_DEFAULT);
		}
		if (next < 0) {
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open '%s'", r->f->path,
					    nnh5__escape(esc, sizeof esc, path));
			break;
		}
		H5Oclose(cur);
		cur = next;
		p += len + (end != NULL);
	}
	if (!rc && H5Oget_info2(cur, &info, H5O_INFO_BASIC) < 0)
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'", r->f->path,
				    nnh5__escape(esc, sizeof esc, path));
	if (rc) {
		H5Oclose(cur);
		return rc;
	}
	out->id = cur;
	out->type = info.type;
	out->fileno = info.fileno;
	out->addr = info.addr;
	return NNH5_OK;
}

void nnh5__resolver_init(struct nnh5__resolver *r, nnh5_file *f)
{
	r->f = f;
	r->name = NULL;
	r->hops = 0;
	r->via[0] = '\0';
}

int nnh5__resolve(nnh5__obj *out, nnh5_file *f, const char *name)
{
	struct nnh5__resolver r;
	hid_t root;
	int rc = nnh5__file_check_path(f, name);

	out->id = -1;
	if (rc)
		return rc;
	root = H5Gopen2(f->fid, "/", nnh5__file_lapl(f));
	if (root < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open the root group", f->path);
	nnh5__resolver_init(&r, f);
	r.name = name;
	rc = follow(out, &r, root, name[0] == '/' || nnh5__file_is_root(name) ? "/" : "", name);
	H5Gclose(root);
	return rc;
}

int nnh5__file_check_exists(nnh5_file *f, const char *name)
{
	nnh5__obj o;
	int rc = nnh5__resolve(&o, f, name);

	if (!rc)
		H5Oclose(o.id);
	return rc;
}

