/*
 * lib/file/file_attr.c - attributes of objects in an open file: strings, integers,
 * floats and string arrays, with nnh5_ names reserved for the library.
 * Uses file.c's name checks; file.c never calls this module.
 */
#include "file/file_internal.h"
#include "file/walk.h"
#include "store/h5util.h"
#include "nnh5/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

/* The most bytes of fixed-length strings one attribute read allocates. */
#define MAX_FIXED_STRINGS ((size_t)64 << 20)

int nnh5__file_attr_set(nnh5_file *f, const char *obj, const char *name, hid_t type,
		    const void *buf, size_t n, bool array)
{
	hid_t oid;
	int rc;

	nnh5__obj o;

	rc = nnh5__file_check_writable(f, "set an attribute");
	if (rc)
		return rc;
	if (!name || !*name)
		return nnh5__error(NNH5_ERR_INVALID, "'%s': object '%s': empty attribute name",
				   f->path, obj);
	rc = nnh5__resolve(&o, f, obj);
	if (rc)
		return rc;
	oid = o.id;
	if (nnh5__h5_attr_write(oid, name, type, buf, n, array) < 0)
		rc = nnh5__h5_error(NNH5_ERR_HDF5, "'%s': object '%s': cannot write attribute '%s'",
				    f->path, obj, name);
	H5Oclose(oid);
	return rc;
}

int nnh5__file_attr_put_string(nnh5_file *f, const char *obj, const char *name, const char *value)
{
	hid_t t;
	int rc;

	if (!value || !nnh5__utf8_valid(value))
		return nnh5__error(NNH5_ERR_INVALID,
				   "'%s': object '%s': attribute '%s': value is %s", f->path, obj,
				   name, value ? "not valid UTF-8" : "NULL");
	t = nnh5__h5_vlen_utf8();
	if (t < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "cannot create a string type");
	rc = nnh5__file_attr_set(f, obj, name, t, &value, 0, false);
	H5Tclose(t);
	return rc;
}

int nnh5__file_set_attr_string(nnh5_file *f, const char *obj, const char *name,
			       const char *value)
{
	ENTER;
	LEAVE(nnh5__file_note_write(f, nnh5__file_attr_put_string(f, obj, name, value)));
}

int nnh5__file_set_attr_int(nnh5_file *f, const char *obj, const char *name, int64_t value)
{
	ENTER;
	LEAVE(nnh5__file_note_write(f, nnh5__file_attr_set(f, obj, name, H5T_STD_I64LE, &value, 0, false)));
}

int nnh5__file_set_attr_float(nnh5_file *f, const char *obj, const char *name, double value)
{
	ENTER;
	LEAVE(nnh5__file_note_write(f, nnh5__file_attr_set(f, obj, name, H5T_IEEE_F64LE, &value, 0, false)));
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
	t = nnh5__h5_vlen_utf8();
	if (t < 0)
		return nnh5__h5_error(NNH5_ERR_HDF5, "cannot create a string type");
	rc = nnh5__file_attr_set(f, obj, name, t, values, n, true);
	H5Tclose(t);
	return rc;
}

int nnh5__file_set_attr_strings(nnh5_file *f, const char *obj, const char *name,
				const char *const *values, size_t n)
{
	ENTER;
	LEAVE(nnh5__file_note_write(f, set_strings(f, obj, name, values, n)));
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

static void attr_close_early(hid_t attr, hid_t type)
{
	H5Tclose(type);
	H5Aclose(attr);
}

/* Open attribute name of the open object oid (obj in messages); it must exist. */
static int attr_open_on(hid_t *attr, nnh5_file *f, hid_t oid, const char *obj, const char *name)
{
	/* Open first: asking whether it exists first is a second lookup. */
	*attr = name ? H5Aopen(oid, name, H5P_DEFAULT) : -1;
	if (*attr >= 0)
		return NNH5_OK;
	H5Eclear2(H5E_DEFAULT);
	if (!name || H5Aexists(oid, name) <= 0) {
		H5Eclear2(H5E_DEFAULT);
		return nnh5__error(NNH5_ERR_NOT_FOUND, "'%s': object '%s': no attribute '%s'",
				   f->path, obj, name ? name : "(null)");
	}
	return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': object '%s': cannot open attribute '%s'",
			      f->path, obj, name);
}

/*
 * Open attribute name for reading, on the open object oid, or when oid is
 * -1 on the object obj resolves to; checks it holds one value (or n).
 */
static int attr_open(hid_t *attr, hid_t *type, hsize_t *count, nnh5_file *f, hid_t oid,
		     const char *obj, const char *name)
{
	hid_t space;
	nnh5__obj o = { -1, H5O_TYPE_UNKNOWN, 0, 0 };
	int rc;

	*attr = *type = -1;
	if (oid < 0) {
		rc = nnh5__resolve(&o, f, obj);
		if (rc)
			return rc;
		oid = o.id;
	}
	rc = attr_open_on(attr, f, oid, obj, name);
	if (o.id >= 0)
		H5Oclose(o.id);
	if (rc)
		return rc;
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
	/* The load policy: a list attribute holds at most one string per tensor. */
	if ((uint64_t)npoints > f->policy.max_tensors) {
		attr_close_early(*attr, *type);
		*attr = *type = -1;
		return nnh5__error(NNH5_ERR_OVERFLOW,
				   "'%s': object '%s': attribute '%s' holds %lld values, more than "
				   "%llu (max_tensors)",
				   f->path, obj, name, (long long)npoints,
				   (unsigned long long)f->policy.max_tensors);
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
		/* HDF5 does not convert between ASCII and UTF-8: read in the file's set. */
		hid_t mt = nnh5__h5_vlen_utf8();
		if (mt >= 0 && H5Tget_cset(type) == H5T_CSET_ASCII)
			H5Tset_cset(mt, H5T_CSET_ASCII);
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
		hid_t mt;
		char *buf;
		if (!nnh5__mul_size(sz, n, &total) || total > MAX_FIXED_STRINGS)
			return nnh5__error(NNH5_ERR_OVERFLOW,
					   "'%s': object '%s': attribute '%s' is too large (%zu strings "
					   "of %zu bytes)",
					   f->path, obj, name, (size_t)n, sz);
		mt = H5Tcopy(type);
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
	/* Strings from a file are checked like the ones nnh5 writes. */
	for (i = 0; i < n && !rc; i++)
		if (!nnh5__utf8_valid(out[i])) {
			char esc[128];
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': object '%s': attribute '%s': string %zu ('%s') is not "
					 "valid UTF-8",
					 f->path, obj, name, i, nnh5__escape(esc, sizeof esc, out[i]));
		}
	if (rc)
		for (i = 0; i < n; i++) {
			nnh5__free(out[i]);
			out[i] = NULL;
		}
	return rc;
}

/* The strings of attribute name on oid (or, when -1, on what obj resolves to). */
static int get_strings(char ***out, size_t *n, nnh5_file *f, hid_t oid, const char *obj,
		       const char *name, bool want_scalar)
{
	hid_t attr, type;
	hsize_t count;
	int rc;

	*out = NULL;
	*n = 0;
	rc = attr_open(&attr, &type, &count, f, oid, obj, name);
	if (rc)
		return rc;
	/*
	 * An empty list is empty whatever its element type: h5py writes
	 * np.asarray([]), a float64 array of length 0, for a list of no
	 * strings (Keras' weight_names of a layer without weights).
	 */
	if (!want_scalar && count == 0 && H5Tget_class(type) != H5T_STRING) {
		attr_close(attr, type);
		*out = nnh5__calloc(1, sizeof **out);
		return *out ? NNH5_OK : nnh5__nomem();
	}
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

int nnh5__file_attr_get_strings(char ***out, size_t *n, nnh5_file *f, const char *obj,
				const char *name, bool want_scalar)
{
	return get_strings(out, n, f, -1, obj, name, want_scalar);
}

int nnh5__attr_get_strings_on(char ***out, size_t *n, nnh5_file *f, hid_t oid,
			      const char *display, const char *name, bool want_scalar)
{
	return get_strings(out, n, f, oid, display, name, want_scalar);
}

int nnh5__group_kind(nnh5_kind *out, nnh5_file *f, hid_t gid, const char *display)
{
	char **arr;
	size_t n;
	int rc, k;

	*out = NNH5_KIND_GROUP;
	rc = get_strings(&arr, &n, f, gid, display, "nnh5_kind", true);
	if (rc == NNH5_ERR_NOT_FOUND) {
		nnh5_error_clear();
		return NNH5_OK;
	}
	if (rc)
		return rc;
	k = nnh5__kind_from_name(arr[0]);
	if (k < 0) {
		char esc[256];
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': object '%s' has unknown nnh5_kind '%s'",
				 f->path, display, nnh5__escape(esc, sizeof esc, arr[0]));
	} else {
		*out = (nnh5_kind)k;
	}
	nnh5__strings_free(arr, n);
	return rc;
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
	LEAVE(nnh5__file_attr_get_strings(out, n, f, obj, name, false));
}

int nnh5_file_get_attr_string(char **out, nnh5_file *f, const char *obj, const char *name)
{
	char **arr;
	size_t n;
	int rc;

	ENTER;
	*out = NULL;
	rc = nnh5__file_attr_get_strings(&arr, &n, f, obj, name, true);
	if (!rc) {
		*out = arr[0];
		nnh5__free(arr);
	}
	LEAVE(rc);
}

int nnh5__file_attr_get_number(void *out, bool want_int, nnh5_file *f, const char *obj,
		      const char *name)
{
	hid_t attr, type;
	hsize_t count;
	H5T_class_t cls;
	int rc;

	rc = attr_open(&attr, &type, &count, f, -1, obj, name);
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
	LEAVE(nnh5__file_attr_get_number(out, true, f, obj, name));
}

int nnh5_file_get_attr_float(double *out, nnh5_file *f, const char *obj, const char *name)
{
	ENTER;
	LEAVE(nnh5__file_attr_get_number(out, false, f, obj, name));
}

bool nnh5__file_has_attr(nnh5_file *f, const char *obj, const char *name)
{
	nnh5__obj o;
	htri_t e = 0;

	ENTER;
	if (nnh5__resolve(&o, f, obj) == NNH5_OK) {
		e = H5Aexists(o.id, name);
		H5Oclose(o.id);
	}
	nnh5_error_clear();
	H5Eclear2(H5E_DEFAULT);
	LEAVE(e > 0);
}
