/*
 * lib/file.c - open nnh5 files: tensors, lists, dicts, state dicts and
 * attributes in HDF5, in the layout doc/FORMAT.md promises.
 *
 * Every public entry point silences HDF5's error printing for its duration
 * (restoring the caller's setting) and turns HDF5 failures into an nnh5
 * status with a message naming the file, the object and the problem.
 */
#include "atomic.h"
#include "file_internal.h"
#include "h5util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FORMAT_VERSION 1
/* Datasets smaller than this go in the object header (compact layout). */
#define COMPACT_LIMIT 4096
/* Large datasets start on this boundary so they can be mapped from disk. */
#define ALIGNMENT 4096
/* Deepest group nesting a reader follows (guards against hostile files). */
#define MAX_DEPTH 64

struct nnh5_file {
	hid_t fid;
	char *path;
	nnh5_mode mode;
	nnh5__atomic atomic;
	hid_t gcpl;         /* groups: creation order tracked and indexed */
	hid_t dcpl_compact; /* datasets below COMPACT_LIMIT */
	hid_t dcpl_contig;  /* the others: contiguous, no fill */
	hid_t ftype[NNH5_DTYPE_COUNT];
	/*
	 * A write failed part-way: the file may hold a half-written object, so
	 * it must never be committed, even if later calls succeed.
	 */
	bool failed;
};

#define ENTER nnh5__h5quiet quiet_; nnh5__h5_quiet_begin(&quiet_)
#define LEAVE(rc) do { int rc_ = (rc); nnh5__h5_quiet_end(&quiet_); return rc_; } while (0)

const char *nnh5_kind_name(int kind)
{
	switch (kind) {
	case NNH5_KIND_TENSOR: return "tensor";
	case NNH5_KIND_LIST: return "list";
	case NNH5_KIND_DICT: return "dict";
	case NNH5_KIND_STATE_DICT: return "state_dict";
	case NNH5_KIND_GROUP: return "group";
	case NNH5_KIND_MODEL: return "model";
	case NNH5_KIND_CHECKPOINT: return "checkpoint";
	default: return "unknown";
	}
}

static int kind_from_name(const char *s)
{
	for (int k = NNH5_KIND_TENSOR; k <= NNH5_KIND_CHECKPOINT; k++)
		if (strcmp(s, nnh5_kind_name(k)) == 0)
			return k;
	return -1;
}

hid_t nnh5__file_hid(nnh5_file *f)
{
	return f->fid;
}

bool nnh5__file_writable(const nnh5_file *f)
{
	return f->mode == NNH5_CREATE;
}

const char *nnh5_file_path(const nnh5_file *f)
{
	return f->path;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */

static bool is_root(const char *name)
{
	return name[0] == '\0' || strcmp(name, "/") == 0;
}

/*
 * Object paths: optional leading '/', components separated by single '/',
 * none empty, "." or "..".
 */
static int check_path(const nnh5_file *f, const char *name)
{
	const char *p = name;

	if (!name)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object name is NULL", f->path);
	if (is_root(name))
		return NNH5_OK;
	if (*p == '/')
		p++;
	for (;;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': object name '%s' has an empty, '.' or '..' component",
					   f->path, name);
		if (!end)
			return NNH5_OK;
		p = end + 1;
	}
}

static int check_writable(const nnh5_file *f, const char *what)
{
	if (f->mode != NNH5_CREATE || f->fid < 0)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': cannot %s: file is open for reading",
				   f->path, what);
	return NNH5_OK;
}

/*
 * Remember a failure that may have left partial data in a file being
 * written. Refusals before anything is written (bad names, existing
 * objects) leave the file as it was and do not count.
 */
static int note_write(nnh5_file *f, int rc)
{
	if (rc != NNH5_OK && rc != NNH5_ERR_INVALID && rc != NNH5_ERR_EXISTS &&
	    rc != NNH5_ERR_NOT_FOUND && f->mode == NNH5_CREATE)
		f->failed = true;
	return rc;
}

/* Does every component of name exist? Reports the first that does not. */
static int check_exists(nnh5_file *f, const char *name)
{
	char buf[4096];
	size_t n = strlen(name);

	if (is_root(name))
		return NNH5_OK;
	if (n >= sizeof buf)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object name too long", f->path);
	memcpy(buf, name, n + 1);
	for (char *p = buf + (buf[0] == '/');; p++) {
		char *end = strchr(p, '/');
		if (end)
			*end = '\0';
		htri_t e = H5Lexists(f->fid, buf, H5P_DEFAULT);
		if (e > 0)
			e = H5Oexists_by_name(f->fid, buf, H5P_DEFAULT);
		if (e <= 0) {
			H5Eclear2(H5E_DEFAULT);
			return nnh5__error(NNH5_ERR_NOT_FOUND, "'%s': object '%s' not found%s%s%s",
					   f->path, name, end ? " ('" : "", end ? buf : "",
					   end ? "' is missing)" : "");
		}
		if (!end)
			return NNH5_OK;
		*end = '/';
		p = end;
	}
}

/* The object type at name (which must exist). */
static int object_type(H5O_type_t *out, nnh5_file *f, hid_t loc, const char *name)
{
	H5O_info_t info;

	if (H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect object '%s'", f->path,
				      name);
	*out = info.type;
	return NNH5_OK;
}

bool nnh5_file_has(nnh5_file *f, const char *name)
{
	ENTER;
	bool has = check_path(f, name) == NNH5_OK && check_exists(f, name) == NNH5_OK;
	nnh5_error_clear();
	LEAVE(has);
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

static hid_t vlen_utf8_type(void)
{
	hid_t t = H5Tcopy(H5T_C_S1);

	if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
		H5Tclose(t);
		return -1;
	}
	return t;
}

/* Write a scalar (n == 0) or 1-d attribute on loc, replacing an existing one. */
static int attr_write(hid_t loc, const char *name, hid_t type, const void *buf, size_t n,
		      bool array)
{
	hsize_t dim = n;
	hid_t space, attr;
	herr_t st;

	if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0)
		return -1;
	space = array ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_SCALAR);
	if (space < 0)
		return -1;
	attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
	H5Sclose(space);
	if (attr < 0)
		return -1;
	st = (array && n == 0) ? 0 : H5Awrite(attr, type, buf);
	H5Aclose(attr);
	return st < 0 ? -1 : 0;
}

static int attr_set(nnh5_file *f, const char *obj, const char *name, hid_t type,
		    const void *buf, size_t n, bool array)
{
	hid_t oid;
	int rc;

	rc = check_writable(f, "set an attribute");
	if (!rc)
		rc = check_path(f, obj);
	if (!rc)
		rc = check_exists(f, obj);
	if (rc)
		return rc;
	if (!name || !*name)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object '%s': empty attribute name",
				   f->path, obj);
	oid = H5Oopen(f->fid, is_root(obj) ? "/" : obj, H5P_DEFAULT);
	if (oid < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot open object '%s'", f->path, obj);
	if (attr_write(oid, name, type, buf, n, array) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': cannot write attribute '%s'",
				    f->path, obj, name);
	H5Oclose(oid);
	return rc;
}

static int set_string(nnh5_file *f, const char *obj, const char *name, const char *value)
{
	hid_t t;
	int rc;

	if (!value || !nnh5__utf8_valid(value))
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': object '%s': attribute '%s': value is %s", f->path, obj,
				   name, value ? "not valid UTF-8" : "NULL");
	t = vlen_utf8_type();
	if (t < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "cannot create a string type");
	rc = attr_set(f, obj, name, t, &value, 0, false);
	H5Tclose(t);
	return rc;
}

int nnh5__file_set_attr_string(nnh5_file *f, const char *obj, const char *name,
			       const char *value)
{
	ENTER;
	LEAVE(note_write(f, set_string(f, obj, name, value)));
}

int nnh5__file_set_attr_int(nnh5_file *f, const char *obj, const char *name, int64_t value)
{
	ENTER;
	LEAVE(note_write(f, attr_set(f, obj, name, H5T_STD_I64LE, &value, 0, false)));
}

int nnh5__file_set_attr_float(nnh5_file *f, const char *obj, const char *name, double value)
{
	ENTER;
	LEAVE(note_write(f, attr_set(f, obj, name, H5T_IEEE_F64LE, &value, 0, false)));
}

static int set_strings(nnh5_file *f, const char *obj, const char *name,
		       const char *const *values, size_t n)
{
	hid_t t;
	int rc;

	for (size_t i = 0; i < n; i++)
		if (!values[i] || !nnh5__utf8_valid(values[i]))
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': object '%s': attribute '%s': string %zu is %s",
					   f->path, obj, name, i,
					   values[i] ? "not valid UTF-8" : "NULL");
	t = vlen_utf8_type();
	if (t < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "cannot create a string type");
	rc = attr_set(f, obj, name, t, values, n, true);
	H5Tclose(t);
	return rc;
}

int nnh5__file_set_attr_strings(nnh5_file *f, const char *obj, const char *name,
				const char *const *values, size_t n)
{
	ENTER;
	LEAVE(note_write(f, set_strings(f, obj, name, values, n)));
}

static int check_user_attr(const nnh5_file *f, const char *obj, const char *name)
{
	if (name && strncmp(name, "nnh5_", 5) == 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': object '%s': attribute name '%s' is reserved (nnh5_*)",
				   f->path, obj ? obj : "", name);
	return NNH5_OK;
}

int nnh5_file_set_attr_string(nnh5_file *f, const char *obj, const char *name,
			      const char *value)
{
	int rc = check_user_attr(f, obj, name);
	return rc ? rc : nnh5__file_set_attr_string(f, obj, name, value);
}

int nnh5_file_set_attr_int(nnh5_file *f, const char *obj, const char *name, int64_t value)
{
	int rc = check_user_attr(f, obj, name);
	return rc ? rc : nnh5__file_set_attr_int(f, obj, name, value);
}

int nnh5_file_set_attr_float(nnh5_file *f, const char *obj, const char *name, double value)
{
	int rc = check_user_attr(f, obj, name);
	return rc ? rc : nnh5__file_set_attr_float(f, obj, name, value);
}

/* Open attribute name on obj for reading; checks it holds one value (or n). */
static int attr_open(hid_t *attr, hid_t *type, hsize_t *count, nnh5_file *f, const char *obj,
		     const char *name)
{
	hid_t oid, space;
	int rc;

	*attr = *type = -1;
	rc = check_path(f, obj);
	if (!rc)
		rc = check_exists(f, obj);
	if (rc)
		return rc;
	oid = H5Oopen(f->fid, is_root(obj) ? "/" : obj, H5P_DEFAULT);
	if (oid < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open object '%s'", f->path, obj);
	if (!name || H5Aexists(oid, name) <= 0) {
		H5Oclose(oid);
		H5Eclear2(H5E_DEFAULT);
		return nnh5__error(NNH5_ERR_NOT_FOUND, "'%s': object '%s': no attribute '%s'",
				   f->path, obj, name ? name : "(null)");
	}
	*attr = H5Aopen(oid, name, H5P_DEFAULT);
	H5Oclose(oid);
	if (*attr < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': object '%s': cannot open attribute '%s'",
				      f->path, obj, name);
	*type = H5Aget_type(*attr);
	space = H5Aget_space(*attr);
	hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
	int ndims = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
	if (space >= 0)
		H5Sclose(space);
	if (*type < 0 || npoints < 0 || ndims > 1) {
		H5Aclose(*attr);
		if (*type >= 0)
			H5Tclose(*type);
		*attr = *type = -1;
		return nnh5__h5_error(NNH5_ERR_TYPE,
				      "'%s': object '%s': attribute '%s' is not a scalar or list",
				      f->path, obj, name);
	}
	*count = (hsize_t)npoints;
	return NNH5_OK;
}

static void attr_close(hid_t attr, hid_t type)
{
	if (type >= 0)
		H5Tclose(type);
	if (attr >= 0)
		H5Aclose(attr);
}

/* Read n strings (fixed or variable length) of an open attribute. */
static int read_strings(char **out, hsize_t n, hid_t attr, hid_t type, nnh5_file *f,
			const char *obj, const char *name)
{
	int rc = NNH5_OK;
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	if (H5Tis_variable_str(type) > 0) {
		hid_t mt = vlen_utf8_type();
		char **tmp = nnh5__calloc(n ? n : 1, sizeof *tmp);
		hid_t space = H5Aget_space(attr);
		if (!tmp || mt < 0 || space < 0) {
			rc = tmp ? nnh5__h5_error(NNH5_ERR_HDF5, "string type") : nnh5__nomem();
		} else if (H5Aread(attr, mt, tmp) < 0) {
			rc = nnh5__h5_error(NNH5_ERR_FORMAT,
					    "'%s': object '%s': cannot read attribute '%s'", f->path,
					    obj, name);
		} else {
			for (i = 0; i < n && !rc; i++) {
				out[i] = nnh5__strdup(tmp[i] ? tmp[i] : "");
				if (!out[i])
					rc = nnh5__nomem();
			}
			H5Dvlen_reclaim(mt, space, H5P_DEFAULT, tmp);
		}
		if (space >= 0)
			H5Sclose(space);
		if (mt >= 0)
			H5Tclose(mt);
		nnh5__free(tmp);
	} else {
		size_t sz = H5Tget_size(type), total;
		hid_t mt = H5Tcopy(type);
		char *buf;
		if (!nnh5__mul_size(sz, n, &total))
			return nnh5__error(NNH5_ERR_OVERFLOW, "attribute too large");
		buf = nnh5__calloc(total ? total : 1, 1);
		if (!buf || mt < 0) {
			rc = buf ? nnh5__h5_error(NNH5_ERR_HDF5, "string type") : nnh5__nomem();
		} else if (H5Aread(attr, mt, buf) < 0) {
			rc = nnh5__h5_error(NNH5_ERR_FORMAT,
					    "'%s': object '%s': cannot read attribute '%s'", f->path,
					    obj, name);
		} else {
			for (i = 0; i < n && !rc; i++) {
				out[i] = nnh5__malloc(sz + 1);
				if (!out[i]) {
					rc = nnh5__nomem();
					break;
				}
				memcpy(out[i], buf + i * sz, sz);
				out[i][sz] = '\0';
				/* Fixed-length strings are NUL- or space-padded. */
				for (size_t k = strlen(out[i]); k > 0 && out[i][k - 1] == ' '; k--)
					out[i][k - 1] = '\0';
			}
		}
		if (mt >= 0)
			H5Tclose(mt);
		nnh5__free(buf);
	}
	if (rc)
		for (i = 0; i < n; i++) {
			nnh5__free(out[i]);
			out[i] = NULL;
		}
	return rc;
}

static int get_strings(char ***out, size_t *n, nnh5_file *f, const char *obj, const char *name,
		       bool want_scalar)
{
	hid_t attr, type;
	hsize_t count;
	int rc;

	*out = NULL;
	*n = 0;
	rc = attr_open(&attr, &type, &count, f, obj, name);
	if (rc)
		return rc;
	if (H5Tget_class(type) != H5T_STRING || (want_scalar && count != 1)) {
		attr_close(attr, type);
		return nnh5__error(NNH5_ERR_TYPE, "'%s': object '%s': attribute '%s' is not %s",
				   f->path, obj, name, want_scalar ? "a string" : "a list of strings");
	}
	char **arr = nnh5__calloc(count ? count : 1, sizeof *arr);
	if (!arr) {
		attr_close(attr, type);
		return nnh5__nomem();
	}
	rc = read_strings(arr, count, attr, type, f, obj, name);
	attr_close(attr, type);
	if (rc) {
		nnh5__free(arr);
		return rc;
	}
	*out = arr;
	*n = (size_t)count;
	return NNH5_OK;
}

void nnh5__strings_free(char **strings, size_t n)
{
	if (!strings)
		return;
	for (size_t i = 0; i < n; i++)
		nnh5__free(strings[i]);
	nnh5__free(strings);
}

int nnh5__file_get_attr_strings(char ***out, size_t *n, nnh5_file *f, const char *obj,
				const char *name)
{
	ENTER;
	LEAVE(get_strings(out, n, f, obj, name, false));
}

int nnh5_file_get_attr_string(char **out, nnh5_file *f, const char *obj, const char *name)
{
	char **arr;
	size_t n;
	int rc;

	ENTER;
	*out = NULL;
	rc = get_strings(&arr, &n, f, obj, name, true);
	if (!rc) {
		*out = arr[0];
		nnh5__free(arr);
	}
	LEAVE(rc);
}

static int get_number(void *out, bool want_int, nnh5_file *f, const char *obj,
		      const char *name)
{
	hid_t attr, type;
	hsize_t count;
	H5T_class_t cls;
	int rc;

	rc = attr_open(&attr, &type, &count, f, obj, name);
	if (rc)
		return rc;
	cls = H5Tget_class(type);
	if (count != 1 || (cls != H5T_INTEGER && (want_int || cls != H5T_FLOAT))) {
		attr_close(attr, type);
		return nnh5__error(NNH5_ERR_TYPE, "'%s': object '%s': attribute '%s' is not %s",
				   f->path, obj, name, want_int ? "an integer" : "a number");
	}
	if (want_int && H5Tget_sign(type) == H5T_SGN_NONE && H5Tget_size(type) == 8) {
		uint64_t u;
		if (H5Aread(attr, H5T_NATIVE_UINT64, &u) < 0)
			rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot read attribute '%s'",
					    f->path, name);
		else if (u > (uint64_t)INT64_MAX)
			rc = nnh5__error(NNH5_ERR_OVERFLOW,
					 "'%s': object '%s': attribute '%s' = %llu exceeds int64",
					 f->path, obj, name, (unsigned long long)u);
		else
			*(int64_t *)out = (int64_t)u;
	} else if (H5Aread(attr, want_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, out) < 0) {
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': object '%s': cannot read attribute '%s'",
				    f->path, obj, name);
	}
	attr_close(attr, type);
	return rc;
}

int nnh5_file_get_attr_int(int64_t *out, nnh5_file *f, const char *obj, const char *name)
{
	ENTER;
	LEAVE(get_number(out, true, f, obj, name));
}

int nnh5_file_get_attr_float(double *out, nnh5_file *f, const char *obj, const char *name)
{
	ENTER;
	LEAVE(get_number(out, false, f, obj, name));
}

bool nnh5__file_has_attr(nnh5_file *f, const char *obj, const char *name)
{
	ENTER;
	htri_t e = H5Aexists_by_name(f->fid, is_root(obj) ? "/" : obj, name, H5P_DEFAULT);
	H5Eclear2(H5E_DEFAULT);
	LEAVE(e > 0);
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

static void release(nnh5_file *f)
{
	if (f->gcpl > 0)
		H5Pclose(f->gcpl);
	if (f->dcpl_compact > 0)
		H5Pclose(f->dcpl_compact);
	if (f->dcpl_contig > 0)
		H5Pclose(f->dcpl_contig);
	for (int i = 0; i < NNH5_DTYPE_COUNT; i++)
		if (f->ftype[i] > 0)
			H5Tclose(f->ftype[i]);
	nnh5__free(f->path);
	nnh5__free(f);
}

static int create_plists(nnh5_file *f)
{
	unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;

	f->gcpl = H5Pcreate(H5P_GROUP_CREATE);
	f->dcpl_compact = H5Pcreate(H5P_DATASET_CREATE);
	f->dcpl_contig = H5Pcreate(H5P_DATASET_CREATE);
	if (f->gcpl < 0 || f->dcpl_compact < 0 || f->dcpl_contig < 0 ||
	    H5Pset_link_creation_order(f->gcpl, order) < 0 ||
	    H5Pset_attr_creation_order(f->gcpl, order) < 0 ||
	    /* Dense attribute storage lifts the 64 KiB limit on key lists. */
	    H5Pset_attr_phase_change(f->gcpl, 0, 0) < 0 ||
	    H5Pset_layout(f->dcpl_compact, H5D_COMPACT) < 0 ||
	    H5Pset_layout(f->dcpl_contig, H5D_CONTIGUOUS) < 0 ||
	    H5Pset_fill_time(f->dcpl_compact, H5D_FILL_TIME_NEVER) < 0 ||
	    H5Pset_fill_time(f->dcpl_contig, H5D_FILL_TIME_NEVER) < 0 ||
	    H5Pset_alloc_time(f->dcpl_contig, H5D_ALLOC_TIME_LATE) < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create property lists", f->path);
	return NNH5_OK;
}

static int open_create(nnh5_file *f, bool durable)
{
	unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
	hid_t fcpl = -1, fapl = -1;
	int rc;

	rc = nnh5__atomic_begin(&f->atomic, f->path, durable);
	if (rc)
		return rc;
	rc = create_plists(f);
	if (rc)
		goto fail;
	fcpl = H5Pcreate(H5P_FILE_CREATE);
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fcpl < 0 || fapl < 0 || H5Pset_link_creation_order(fcpl, order) < 0 ||
	    H5Pset_attr_creation_order(fcpl, order) < 0 ||
	    H5Pset_attr_phase_change(fcpl, 0, 0) < 0 ||
	    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
	    H5Pset_alignment(fapl, ALIGNMENT, ALIGNMENT) < 0 ||
	    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "save '%s': cannot set up file properties",
				    f->path);
		goto fail;
	}
	f->fid = H5Fcreate(f->atomic.tmp, H5F_ACC_TRUNC, fcpl, fapl);
	if (f->fid < 0) {
		rc = nnh5__h5_error(NNH5_ERR_IO, "save '%s': cannot create temporary file '%s'",
				    f->path, f->atomic.tmp);
		goto fail;
	}
	rc = attr_set(f, "/", "nnh5_format_version", H5T_STD_I64LE,
		      &(int64_t){ FORMAT_VERSION }, 0, false);
	if (!rc)
		rc = set_string(f, "/", "nnh5_writer", "nnh5 " NNH5_VERSION_STRING);
	if (rc)
		goto fail;
	H5Pclose(fcpl);
	H5Pclose(fapl);
	return NNH5_OK;
fail:
	if (f->fid >= 0)
		H5Fclose(f->fid);
	f->fid = -1;
	if (fcpl >= 0)
		H5Pclose(fcpl);
	if (fapl >= 0)
		H5Pclose(fapl);
	nnh5__atomic_abort(&f->atomic);
	return rc;
}

static int open_read(nnh5_file *f)
{
	struct stat st;
	hid_t fapl;
	int64_t version;
	int rc;

	if (stat(f->path, &st) < 0)
		return nnh5__error(errno == ENOENT ? NNH5_ERR_NOT_FOUND : NNH5_ERR_IO,
				   "open '%s': %s", f->path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': is a folder", f->path);
	fapl = H5Pcreate(H5P_FILE_ACCESS);
	if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
		if (fapl >= 0)
			H5Pclose(fapl);
		return nnh5__h5_error(NNH5_ERR_HDF5, "open '%s': file properties", f->path);
	}
	f->fid = H5Fopen(f->path, H5F_ACC_RDONLY, fapl);
	H5Pclose(fapl);
	if (f->fid < 0) {
		htri_t is = H5Fis_hdf5(f->path);
		return nnh5__h5_error(NNH5_ERR_FORMAT, "open '%s': %s", f->path,
				      is > 0 ? "damaged HDF5 file" : "not an HDF5 file (or damaged)");
	}
	if (H5Aexists(f->fid, "nnh5_format_version") > 0) {
		rc = get_number(&version, true, f, "/", "nnh5_format_version");
		if (rc)
			return rc;
		if (version > FORMAT_VERSION || version < 1)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "open '%s': nnh5 format version %lld is not supported "
					   "(this library reads version %d)",
					   f->path, (long long)version, FORMAT_VERSION);
	}
	H5Eclear2(H5E_DEFAULT);
	return NNH5_OK;
}

int nnh5_file_open_ext(nnh5_file **out, const char *path, nnh5_mode mode,
		       const nnh5_open_options *opts)
{
	nnh5_open_options defaults = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	int rc;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (opts->version != NNH5_OPEN_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': unknown options version %u",
				   path ? path : "(null)", opts->version);
	if (!path || !*path)
		return nnh5__error(NNH5_ERR_INVALID, "open: empty path");
	if (mode != NNH5_READ && mode != NNH5_CREATE)
		return nnh5__error(NNH5_ERR_INVALID, "open '%s': invalid mode %d", path, (int)mode);
	f = nnh5__calloc(1, sizeof *f);
	if (!f)
		return nnh5__nomem();
	f->fid = -1;
	f->mode = mode;
	f->path = nnh5__strdup(path);
	if (!f->path) {
		nnh5__free(f);
		return nnh5__nomem();
	}
	ENTER;
	rc = mode == NNH5_CREATE ? open_create(f, opts->durable) : open_read(f);
	if (rc) {
		if (f->fid >= 0)
			H5Fclose(f->fid);
		release(f);
		LEAVE(rc);
	}
	*out = f;
	LEAVE(NNH5_OK);
}

int nnh5_file_open(nnh5_file **out, const char *path, nnh5_mode mode)
{
	return nnh5_file_open_ext(out, path, mode, NULL);
}

int nnh5_file_close(nnh5_file *f)
{
	int rc = NNH5_OK;

	if (!f)
		return NNH5_OK;
	ENTER;
	if (f->failed) {
		/* Keep the earlier failure's message: it says what went wrong. */
		char why[1024];
		snprintf(why, sizeof why, "%s", nnh5_error_message());
		if (f->fid >= 0)
			H5Fclose(f->fid);
		H5Eclear2(H5E_DEFAULT);
		f->fid = -1;
		nnh5__atomic_abort(&f->atomic);
		rc = nnh5__error(NNH5_ERR_IO,
				 "save '%s': not committed because an earlier write failed "
				 "(the previous file is unchanged)%s%s",
				 f->path, why[0] ? ": " : "", why);
		release(f);
		LEAVE(rc);
	}
	if (f->fid >= 0 && H5Fclose(f->fid) < 0)
		rc = nnh5__h5_error(f->mode == NNH5_CREATE ? NNH5_ERR_IO : NNH5_ERR_HDF5,
				    "'%s': closing the file failed", f->path);
	f->fid = -1;
	if (f->mode == NNH5_CREATE) {
		if (rc)
			nnh5__atomic_abort(&f->atomic);
		else
			rc = nnh5__atomic_commit(&f->atomic);
	}
	release(f);
	LEAVE(rc);
}

void nnh5_file_discard(nnh5_file *f)
{
	if (!f)
		return;
	ENTER;
	if (f->fid >= 0)
		H5Fclose(f->fid);
	H5Eclear2(H5E_DEFAULT);
	if (f->mode == NNH5_CREATE)
		nnh5__atomic_abort(&f->atomic);
	release(f);
	nnh5__h5_quiet_end(&quiet_);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

static hid_t create_group(nnh5_file *f, hid_t loc, const char *name)
{
	return H5Gcreate2(loc, name, H5P_DEFAULT, f->gcpl, H5P_DEFAULT);
}

/* Open (creating when missing) the group at path; path "" or "/" is the root. */
static int open_or_create_group(hid_t *out, nnh5_file *f, const char *path)
{
	char buf[4096];
	hid_t cur, next;
	size_t n = strlen(path);

	*out = -1;
	if (n >= sizeof buf)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object name too long", f->path);
	memcpy(buf, path, n + 1);
	cur = H5Gopen2(f->fid, "/", H5P_DEFAULT);
	if (cur < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot open the root group", f->path);
	for (char *p = buf + (buf[0] == '/'); *p;) {
		char *end = strchr(p, '/');
		if (end)
			*end = '\0';
		htri_t e = H5Lexists(cur, p, H5P_DEFAULT);
		if (e > 0) {
			H5O_info_t info;
			if (H5Oget_info_by_name2(cur, p, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0 ||
			    info.type != H5O_TYPE_GROUP) {
				H5Gclose(cur);
				return nnh5__error(NNH5_ERR_EXISTS,
						   "'%s': '%s' in '%s' exists and is not a group",
						   f->path, p, path);
			}
			next = H5Gopen2(cur, p, H5P_DEFAULT);
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
	rc = check_writable(f, "create a group");
	if (!rc)
		rc = check_path(f, name);
	if (!rc)
		rc = note_write(f, open_or_create_group(&g, f, name));
	if (!rc)
		H5Gclose(g);
	LEAVE(rc);
}

static hid_t file_type(nnh5_file *f, nnh5_dtype dtype)
{
	if (f->ftype[dtype] <= 0)
		f->ftype[dtype] = nnh5__h5_file_type(dtype);
	return f->ftype[dtype];
}

/* Create dataset leaf in loc from t; display is the object's full name for messages. */
static int write_dataset(nnh5_file *f, hid_t loc, const char *leaf, const nnh5_tensor *t,
			 const char *display)
{
	hsize_t dims[NNH5_MAX_NDIM];
	hid_t space, type, did;
	int rc = NNH5_OK;

	if (H5Lexists(loc, leaf, H5P_DEFAULT) > 0)
		return nnh5__error(NNH5_ERR_EXISTS, "'%s': object '%s' already exists", f->path,
				   display);
	for (size_t i = 0; i < t->ndim; i++)
		dims[i] = (hsize_t)t->shape[i];
	space = t->ndim ? H5Screate_simple((int)t->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
	type = file_type(f, t->dtype);
	if (space < 0 || type < 0) {
		if (space >= 0)
			H5Sclose(space);
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': cannot describe %s %zu-d",
				      f->path, display, nnh5_dtype_name((int)t->dtype), t->ndim);
	}
	did = H5Dcreate2(loc, leaf, type, space, H5P_DEFAULT,
			 t->nbytes < COMPACT_LIMIT ? f->dcpl_compact : f->dcpl_contig,
			 H5P_DEFAULT);
	H5Sclose(space);
	if (did < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create dataset '%s'", f->path,
				      display);
	/* Same file and memory type: HDF5 writes straight from t's memory. */
	if (t->nbytes && H5Dwrite(did, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': writing dataset '%s' failed", f->path,
				    display);
	if (!rc && t->dtype == NNH5_BFLOAT16) {
		hid_t st = vlen_utf8_type();
		const char *v = "bfloat16";
		if (st < 0 || attr_write(did, "nnh5_dtype", st, &v, 0, false) < 0)
			rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': dataset '%s': dtype attribute",
					    f->path, display);
		if (st >= 0)
			H5Tclose(st);
	}
	if (H5Dclose(did) < 0 && !rc)
		rc = nnh5__h5_error(NNH5_ERR_IO, "'%s': closing dataset '%s' failed", f->path,
				    display);
	return rc;
}

/* Split name into its parent path (in buf) and leaf. */
static const char *split_leaf(char *buf, size_t n, const char *name)
{
	const char *slash = strrchr(name, '/');

	if (!slash) {
		buf[0] = '\0';
		return name;
	}
	snprintf(buf, n, "%.*s", (int)(slash - name), name);
	return slash + 1;
}

int nnh5_file_write_tensor(nnh5_file *f, const char *name, const nnh5_tensor *t)
{
	char parent[4096];
	const char *leaf;
	hid_t g;
	int rc;

	ENTER;
	rc = check_writable(f, "write");
	if (!rc)
		rc = check_path(f, name);
	if (!rc && is_root(name))
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': a tensor cannot be the root group", f->path);
	if (!rc && strlen(name) >= sizeof parent)
		rc = nnh5__error(NNH5_ERR_INVALID, "'%s': object name too long", f->path);
	if (rc)
		LEAVE(rc);
	leaf = split_leaf(parent, sizeof parent, name);
	rc = note_write(f, open_or_create_group(&g, f, parent));
	if (rc)
		LEAVE(rc);
	rc = note_write(f, write_dataset(f, g, leaf, t, name));
	H5Gclose(g);
	LEAVE(rc);
}

/* Open the group for a new container at name (the root must still be empty). */
static int container_group(hid_t *out, nnh5_file *f, const char *name, const char *kind)
{
	int rc;

	*out = -1;
	rc = check_writable(f, "write");
	if (!rc)
		rc = check_path(f, name);
	if (rc)
		return rc;
	if (is_root(name)) {
		H5G_info_t info;
		if (H5Gget_info(f->fid, &info) < 0)
			return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': root group", f->path);
		if (info.nlinks > 0)
			return nnh5__error(NNH5_ERR_EXISTS,
					   "'%s': cannot write a %s at the root: it already holds objects",
					   f->path, kind);
	} else if (H5Lexists(f->fid, name[0] == '/' ? name + 1 : name, H5P_DEFAULT) > 0) {
		return nnh5__error(NNH5_ERR_EXISTS, "'%s': object '%s' already exists", f->path,
				   name);
	}
	H5Eclear2(H5E_DEFAULT);
	rc = open_or_create_group(out, f, name);
	if (rc)
		return rc;
	hid_t st = vlen_utf8_type();
	if (st < 0 || attr_write(*out, "nnh5_kind", st, &kind, 0, false) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': kind attribute", f->path, name);
	if (st >= 0)
		H5Tclose(st);
	if (rc) {
		H5Gclose(*out);
		*out = -1;
	}
	return rc;
}

static int write_keys_attr(nnh5_file *f, hid_t g, const nnh5_dict *d, const char *name)
{
	size_t n = nnh5_dict_len(d);
	const char **keys = nnh5__calloc(n ? n : 1, sizeof *keys);
	hid_t st;
	int rc = NNH5_OK;

	if (!keys)
		return nnh5__nomem();
	for (size_t i = 0; i < n; i++)
		keys[i] = nnh5_dict_key(d, i);
	st = vlen_utf8_type();
	if (st < 0 || attr_write(g, "nnh5_keys", st, keys, n, true) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': cannot write the key list",
				    f->path, name);
	if (st >= 0)
		H5Tclose(st);
	nnh5__free(keys);
	return rc;
}

static void display_name(char *buf, size_t n, const char *group, const char *rel)
{
	if (is_root(group))
		snprintf(buf, n, "/%s", rel);
	else
		snprintf(buf, n, "%s/%s", group, rel);
}

int nnh5_file_write_list(nnh5_file *f, const char *name, const nnh5_list *list)
{
	char leaf[32], disp[4200];
	hid_t g;
	int rc;

	ENTER;
	rc = note_write(f, container_group(&g, f, name, "list"));
	if (rc)
		LEAVE(rc);
	if (attr_write(g, "nnh5_length", H5T_STD_I64LE, &(int64_t){ (int64_t)nnh5_list_len(list) },
		       0, false) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': list '%s': length attribute", f->path, name);
	for (size_t i = 0; !rc && i < nnh5_list_len(list); i++) {
		snprintf(leaf, sizeof leaf, "%zu", i);
		display_name(disp, sizeof disp, name, leaf);
		rc = write_dataset(f, g, leaf, nnh5_list_get(list, i), disp);
	}
	H5Gclose(g);
	LEAVE(note_write(f, rc));
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
	return NNH5_OK;
}

int nnh5_file_write_dict(nnh5_file *f, const char *name, const nnh5_dict *d)
{
	char disp[4200];
	hid_t g;
	int rc = NNH5_OK;

	ENTER;
	for (size_t i = 0; !rc && i < nnh5_dict_len(d); i++)
		rc = check_dict_key(f, name ? name : "", nnh5_dict_key(d, i));
	if (!rc)
		rc = note_write(f, container_group(&g, f, name, "dict"));
	if (rc)
		LEAVE(rc);
	rc = write_keys_attr(f, g, d, name);
	for (size_t i = 0; !rc && i < nnh5_dict_len(d); i++) {
		display_name(disp, sizeof disp, name, nnh5_dict_key(d, i));
		rc = write_dataset(f, g, nnh5_dict_key(d, i), nnh5_dict_value(d, i), disp);
	}
	H5Gclose(g);
	LEAVE(note_write(f, rc));
}

static int check_state_key(const nnh5_file *f, const char *name, const nnh5_dict *sd,
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
		if (nnh5_dict_get(sd, prefix))
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': state dict '%s': keys '%s' and '%s' conflict ('%s' "
					   "would be both a tensor and a module)",
					   f->path, name, prefix, key, prefix);
	}
	if (strncmp(key, "nnh5_", 5) == 0 || strstr(key, ".nnh5_"))
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': state dict '%s': key '%s' uses a reserved name (nnh5_*)",
				   f->path, name, key);
	return NNH5_OK;
}

/*
 * Groups opened along the current key's module path, reused while
 * consecutive keys share it (state dicts list a module's tensors together).
 */
struct group_stack {
	hid_t ids[MAX_DEPTH + 1];
	char names[MAX_DEPTH + 1][256];
	size_t depth; /* ids[0] is the container */
};

static void stack_pop_to(struct group_stack *s, size_t depth)
{
	while (s->depth > depth)
		H5Gclose(s->ids[s->depth--]);
}

static int write_state_tensor(nnh5_file *f, struct group_stack *s, const char *name,
			      const char *key, const nnh5_tensor *t)
{
	char comp[MAX_DEPTH + 1][256], disp[4200], rel[4096];
	size_t ncomp = 0;
	const char *p = key;

	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (ncomp > MAX_DEPTH || len >= sizeof comp[0])
			return nnh5__error(NNH5_ERR_INVALID,
					   "'%s': state dict '%s': key '%s' is nested too deeply or "
					   "has a component longer than 255 bytes",
					   f->path, name, key);
		memcpy(comp[ncomp], p, len);
		comp[ncomp++][len] = '\0';
		if (!dot)
			break;
		p = dot + 1;
	}
	snprintf(rel, sizeof rel, "%s", key);
	for (char *c = rel; *c; c++)
		if (*c == '.')
			*c = '/';
	display_name(disp, sizeof disp, name, rel);
	/* Keep the common module prefix open; open or create the rest. */
	size_t keep = 0;
	while (keep < s->depth && keep < ncomp - 1 && strcmp(s->names[keep + 1], comp[keep]) == 0)
		keep++;
	stack_pop_to(s, keep);
	for (size_t i = keep; i < ncomp - 1; i++) {
		hid_t parent = s->ids[s->depth], g;
		if (H5Lexists(parent, comp[i], H5P_DEFAULT) > 0)
			g = H5Gopen2(parent, comp[i], H5P_DEFAULT);
		else
			g = create_group(f, parent, comp[i]);
		if (g < 0)
			return nnh5__h5_error(NNH5_ERR_HDF5, "'%s': cannot create group for key '%s'",
					      f->path, key);
		s->ids[++s->depth] = g;
		snprintf(s->names[s->depth], sizeof s->names[0], "%s", comp[i]);
	}
	return write_dataset(f, s->ids[s->depth], comp[ncomp - 1], t, disp);
}

int nnh5__file_write_state_dict_kind(nnh5_file *f, const char *name, const nnh5_dict *sd,
				     const char *kind)
{
	struct group_stack s;
	hid_t g;
	int rc = NNH5_OK;

	ENTER;
	if (!name)
		name = "/";
	for (size_t i = 0; !rc && i < nnh5_dict_len(sd); i++)
		rc = check_state_key(f, name, sd, nnh5_dict_key(sd, i));
	if (!rc)
		rc = note_write(f, container_group(&g, f, name, kind));
	if (rc)
		LEAVE(rc);
	rc = write_keys_attr(f, g, sd, name);
	s.ids[0] = g;
	s.depth = 0;
	for (size_t i = 0; !rc && i < nnh5_dict_len(sd); i++)
		rc = write_state_tensor(f, &s, name, nnh5_dict_key(sd, i), nnh5_dict_value(sd, i));
	stack_pop_to(&s, 0);
	H5Gclose(g);
	LEAVE(note_write(f, rc));
}

int nnh5_file_write_state_dict(nnh5_file *f, const char *name, const nnh5_dict *sd)
{
	return nnh5__file_write_state_dict_kind(f, name, sd, "state_dict");
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

/* Refuse storage that reads other files or runs unknown filters. */
static int check_storage(nnh5_file *f, hid_t did, const char *display)
{
	hid_t dcpl = H5Dget_create_plist(did);
	int rc = NNH5_OK;

	if (dcpl < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': dataset '%s': creation properties",
				      f->path, display);
	if (H5Pget_layout(dcpl) == H5D_VIRTUAL)
		rc = nnh5__error(NNH5_ERR_UNSAFE,
				 "'%s': dataset '%s' is a virtual dataset (reads other files): refused",
				 f->path, display);
	else if (H5Pget_external_count(dcpl) > 0)
		rc = nnh5__error(NNH5_ERR_UNSAFE,
				 "'%s': dataset '%s' stores its data in external files: refused",
				 f->path, display);
	int nf = rc ? 0 : H5Pget_nfilters(dcpl);
	for (int i = 0; i < nf && !rc; i++) {
		unsigned flags;
		size_t nelm = 0;
		char fname[64];
		H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelm, NULL,
						 sizeof fname, fname, NULL);
		if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE &&
		    id != H5Z_FILTER_FLETCHER32)
			rc = nnh5__error(NNH5_ERR_UNSAFE,
					 "'%s': dataset '%s' uses filter %d, which nnh5 does not "
					 "allow (allowed: deflate, shuffle, fletcher32)",
					 f->path, display, (int)id);
	}
	H5Pclose(dcpl);
	return rc;
}

static int read_dataset(nnh5_tensor **out, nnh5_file *f, hid_t loc, const char *rel,
			const char *display)
{
	int64_t shape[NNH5_MAX_NDIM];
	hsize_t dims[NNH5_MAX_NDIM];
	char desc[128];
	hid_t did, ftype = -1, mtype = -1, space = -1;
	nnh5_dtype dtype;
	nnh5_tensor *t = NULL;
	int ndim, rc;

	*out = NULL;
	did = H5Dopen2(loc, rel, H5P_DEFAULT);
	if (did < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open dataset '%s'", f->path,
				      display);
	rc = check_storage(f, did, display);
	if (rc)
		goto done;
	ftype = H5Dget_type(did);
	if (ftype < 0) {
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': dataset '%s': datatype", f->path, display);
		goto done;
	}
	if (nnh5__h5_dtype_of(&dtype, &mtype, ftype, desc, sizeof desc)) {
		rc = nnh5__error(NNH5_ERR_TYPE,
				 "'%s': dataset '%s' has HDF5 type %s, which nnh5 does not load as a "
				 "tensor",
				 f->path, display, desc);
		goto done;
	}
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
		shape[i] = (int64_t)dims[i];
	}
	rc = nnh5_tensor_new(&t, dtype, (size_t)ndim, shape);
	if (rc) {
		nnh5__error_wrap(rc, "'%s': dataset '%s'", f->path, display);
		goto done;
	}
	/* Straight into the tensor's memory: HDF5 converts only when the types differ. */
	if (t->nbytes && H5Dread(did, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
		rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': reading dataset '%s' failed", f->path,
				    display);
		goto done;
	}
	*out = t;
	t = NULL;
done:
	nnh5_tensor_free(t);
	if (space >= 0)
		H5Sclose(space);
	if (mtype >= 0)
		H5Tclose(mtype);
	if (ftype >= 0)
		H5Tclose(ftype);
	H5Dclose(did);
	return rc;
}

/* Check name exists and is an object of the wanted type. */
static int expect_object(nnh5_file *f, const char *name, H5O_type_t want)
{
	H5O_type_t type = H5O_TYPE_UNKNOWN;
	int rc = check_path(f, name);

	if (!rc)
		rc = check_exists(f, name);
	if (!rc)
		rc = object_type(&type, f, f->fid, is_root(name) ? "/" : name);
	if (!rc && type != want)
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is %s, not %s", f->path, name,
				 type == H5O_TYPE_GROUP ? "a group" : type == H5O_TYPE_DATASET
									  ? "a dataset"
									  : "a named datatype",
				 want == H5O_TYPE_GROUP ? "a group" : "a dataset");
	return rc;
}

int nnh5_file_read_tensor(nnh5_tensor **out, nnh5_file *f, const char *name)
{
	int rc;

	ENTER;
	*out = NULL;
	rc = expect_object(f, name, H5O_TYPE_DATASET);
	if (!rc)
		rc = read_dataset(out, f, f->fid, name, name);
	LEAVE(rc);
}

int nnh5_file_kind(nnh5_kind *out, nnh5_file *f, const char *name)
{
	H5O_type_t type = H5O_TYPE_UNKNOWN;
	char *kind = NULL;
	int rc, k;

	ENTER;
	rc = check_path(f, name);
	if (!rc)
		rc = check_exists(f, name);
	if (!rc)
		rc = object_type(&type, f, f->fid, is_root(name) ? "/" : name);
	if (rc)
		LEAVE(rc);
	if (type == H5O_TYPE_DATASET) {
		*out = NNH5_KIND_TENSOR;
		LEAVE(NNH5_OK);
	}
	if (type != H5O_TYPE_GROUP)
		LEAVE(nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' is a named datatype", f->path,
				  name));
	if (H5Aexists_by_name(f->fid, is_root(name) ? "/" : name, "nnh5_kind", H5P_DEFAULT) <= 0) {
		H5Eclear2(H5E_DEFAULT);
		*out = NNH5_KIND_GROUP;
		LEAVE(NNH5_OK);
	}
	char **arr;
	size_t n;
	rc = get_strings(&arr, &n, f, name, "nnh5_kind", true);
	if (rc)
		LEAVE(rc);
	kind = arr[0];
	nnh5__free(arr);
	k = kind_from_name(kind);
	if (k < 0 || k == NNH5_KIND_TENSOR)
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' has unknown nnh5_kind '%s'",
				 f->path, name, kind);
	else
		*out = (nnh5_kind)k;
	nnh5__free(kind);
	LEAVE(rc);
}

/* One dataset found by a group walk. */
struct found {
	char *key;
	char *rel;
	size_t order; /* position in the walk */
};

struct walk {
	nnh5_file *f;
	const char *group; /* the container's name, for messages */
	char sep;          /* '/' for dicts, '.' for state dicts */
	struct found *items;
	size_t len, cap;
	haddr_t ancestors[MAX_DEPTH + 1];
	size_t depth;
	char rel[4096];
	char key[4096];
	int rc;
};

static int walk_group(struct walk *w, hid_t gid);

static int walk_add(struct walk *w)
{
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
	if (!it->key || !it->rel) {
		nnh5__free(it->key);
		nnh5__free(it->rel);
		return nnh5__nomem();
	}
	w->len++;
	return NNH5_OK;
}

static herr_t walk_cb(hid_t gid, const char *name, const H5L_info_t *linfo, void *data)
{
	struct walk *w = data;
	size_t rlen = strlen(w->rel), klen = strlen(w->key);
	H5O_info_t info;
	char disp[4200];

	if (strncmp(name, "nnh5_", 5) == 0)
		return 0; /* reserved for the format: never part of a dict */
	if (rlen + strlen(name) + 2 >= sizeof w->rel) {
		w->rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': group '%s': path too long", w->f->path,
				    w->group);
		return -1;
	}
	snprintf(w->rel + rlen, sizeof w->rel - rlen, "%s%s", rlen ? "/" : "", name);
	snprintf(w->key + klen, sizeof w->key - klen, "%s%s", klen ? (char[]){ w->sep, 0 } : "",
		 name);
	display_name(disp, sizeof disp, w->group, w->rel);
	if (linfo->type == H5L_TYPE_EXTERNAL) {
		w->rc = nnh5__error(NNH5_ERR_UNSAFE,
				    "'%s': '%s' is an external link (to another file): refused",
				    w->f->path, disp);
		return -1;
	}
	if (H5Oget_info_by_name2(gid, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
		w->rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot inspect '%s'", w->f->path, disp);
		return -1;
	}
	if (info.type == H5O_TYPE_DATASET) {
		w->rc = walk_add(w);
	} else if (info.type == H5O_TYPE_GROUP) {
		if (linfo->type != H5L_TYPE_HARD) {
			w->rc = nnh5__error(NNH5_ERR_UNSAFE,
					    "'%s': '%s' is a soft link to a group: refused", w->f->path,
					    disp);
			return -1;
		}
		for (size_t i = 0; i <= w->depth; i++)
			if (w->ancestors[i] == info.addr) {
				w->rc = nnh5__error(NNH5_ERR_FORMAT,
						    "'%s': group '%s' links back to its own ancestor "
						    "(a cycle)",
						    w->f->path, disp);
				return -1;
			}
		if (w->depth >= MAX_DEPTH) {
			w->rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': '%s' is nested deeper than %d groups",
					    w->f->path, disp, MAX_DEPTH);
			return -1;
		}
		hid_t sub = H5Gopen2(gid, name, H5P_DEFAULT);
		if (sub < 0) {
			w->rc = nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open group '%s'",
					       w->f->path, disp);
			return -1;
		}
		w->ancestors[++w->depth] = info.addr;
		w->rc = walk_group(w, sub);
		w->depth--;
		H5Gclose(sub);
	}
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
 * has one; keys it lists that are missing are ignored and datasets it does
 * not list follow in walk order, so nothing in the file is lost.
 */
static int apply_key_order(struct walk *w, const char *name)
{
	char **keys;
	size_t nkeys, next = 0;
	int rc;

	if (w->len == 0 || !nnh5__file_has_attr(w->f, name, "nnh5_keys"))
		return NNH5_OK;
	rc = get_strings(&keys, &nkeys, w->f, name, "nnh5_keys", false);
	if (rc)
		return rc;
	qsort(w->items, w->len, sizeof *w->items, cmp_found_key);
	for (size_t i = 0; i < w->len; i++)
		w->items[i].order += nkeys; /* unlisted ones go after the listed */
	for (size_t i = 0; i < nkeys; i++) {
		struct found probe = { keys[i], NULL, 0 };
		struct found *hit = bsearch(&probe, w->items, w->len, sizeof *w->items, cmp_found_key);
		if (hit && hit->order >= nkeys)
			hit->order = next++;
	}
	qsort(w->items, w->len, sizeof *w->items, cmp_found_order);
	nnh5__strings_free(keys, nkeys);
	return NNH5_OK;
}

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->len; i++) {
		nnh5__free(w->items[i].key);
		nnh5__free(w->items[i].rel);
	}
	nnh5__free(w->items);
}

static int read_walk(nnh5_dict **out, nnh5_file *f, const char *name, char sep)
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
	w.group = is_root(name) ? "/" : name;
	w.sep = sep;
	g = H5Gopen2(f->fid, w.group, H5P_DEFAULT);
	if (g < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot open group '%s'", f->path, name);
	H5O_info_t info;
	if (H5Oget_info2(g, &info, H5O_INFO_BASIC) >= 0)
		w.ancestors[0] = info.addr;
	rc = walk_group(&w, g);
	if (!rc)
		rc = apply_key_order(&w, w.group);
	if (!rc)
		rc = nnh5_dict_new(&d);
	for (size_t i = 0; !rc && i < w.len; i++) {
		nnh5_tensor *t;
		char disp[4200];
		display_name(disp, sizeof disp, w.group, w.items[i].rel);
		rc = read_dataset(&t, f, g, w.items[i].rel, disp);
		if (!rc && nnh5_dict_get(d, w.items[i].key)) {
			nnh5_tensor_free(t);
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': group '%s': two datasets map to the key '%s'", f->path,
					 w.group, w.items[i].key);
		}
		if (!rc) {
			rc = nnh5_dict_set(d, w.items[i].key, t);
			if (rc)
				nnh5_tensor_free(t);
		}
	}
	H5Gclose(g);
	walk_free(&w);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
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
