/*
 * lib/file_internal.h - what other library modules (models, checkpoints,
 * tools) may use of an open file beyond the public API: attributes with
 * reserved "nnh5_" names, string-array attributes, plain groups, and state
 * dicts stored under another kind.
 */
#ifndef NNH5_FILE_INTERNAL_H
#define NNH5_FILE_INTERNAL_H

#include "internal.h"

#include <hdf5.h>

/* The HDF5 file id (borrowed; valid until the file is closed). */
hid_t nnh5__file_hid(nnh5_file *f);

/* true if f was opened with NNH5_CREATE and is still writable. */
bool nnh5__file_writable(const nnh5_file *f);

/* Create the group name (and missing parents), tracking creation order. */
int nnh5__file_create_group(nnh5_file *f, const char *name);

/*
 * Write sd as a state dict at name with nnh5_kind = kind ("state_dict",
 * "model", "checkpoint"): the layout of nnh5_file_write_state_dict().
 */
int nnh5__file_write_state_dict_kind(nnh5_file *f, const char *name, const nnh5_dict *sd,
				     const char *kind);

/* Attribute setters without the reserved-name check (for "nnh5_" names). */
int nnh5__file_set_attr_string(nnh5_file *f, const char *obj, const char *name,
			       const char *value);
int nnh5__file_set_attr_int(nnh5_file *f, const char *obj, const char *name, int64_t value);
int nnh5__file_set_attr_float(nnh5_file *f, const char *obj, const char *name, double value);

/* A 1-d attribute of n variable-length UTF-8 strings. */
int nnh5__file_set_attr_strings(nnh5_file *f, const char *obj, const char *name,
				const char *const *values, size_t n);
/*
 * Read a 1-d (or scalar) string attribute into a new array of n new strings;
 * free with nnh5__strings_free(*out, *n).
 */
int nnh5__file_get_attr_strings(char ***out, size_t *n, nnh5_file *f, const char *obj,
				const char *name);
void nnh5__strings_free(char **strings, size_t n);

/* true if the object at obj has an attribute called name. */
bool nnh5__file_has_attr(nnh5_file *f, const char *obj, const char *name);

#endif /* NNH5_FILE_INTERNAL_H */
