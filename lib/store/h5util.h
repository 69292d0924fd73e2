/*
 * lib/store/h5util.h - HDF5 helpers shared by the file modules: silencing and
 * capturing HDF5's error stack, and mapping nnh5 dtypes to HDF5 types.
 */
#ifndef NNH5_H5UTIL_H
#define NNH5_H5UTIL_H

#include "core/internal.h"

#include <hdf5.h>

/*
 * HDF5 prints its error stack by default. Library entry points that call
 * HDF5 bracket the calls with quiet_begin/quiet_end, which turns the printing
 * off for the calling thread and restores the caller's setting afterwards.
 */
typedef struct nnh5__h5quiet {
	H5E_auto2_t func;
	void *data;
} nnh5__h5quiet;

void nnh5__h5_quiet_begin(nnh5__h5quiet *q);
void nnh5__h5_quiet_end(const nnh5__h5quiet *q);

/*
 * Record an error whose message ends with HDF5's innermost explanation
 * (" (HDF5: <function>: <description>)"), then clear HDF5's stack. When that
 * explanation is a format newer than the HDF5 in use (nnh5__h5_newer_format),
 * the message says the file was written by a newer HDF5 and names the
 * version nnh5 runs on.
 */
int nnh5__h5_error(int status, const char *fmt, ...) NNH5_PRINTF(2, 3);

/* The innermost HDF5 error description into buf ("" if none). */
void nnh5__h5_last_error(char *buf, size_t n);

/*
 * true if HDF5's current error stack says the file uses something newer than
 * the HDF5 nnh5 runs on: its innermost description is a version HDF5 does
 * not know (a superblock, object header, message, B-tree, heap or encoding
 * version: "bad version number for layout message", "wrong fixed array
 * header version", ...), a message marked "fail if unknown" or an unknown
 * datatype class. Such a file was written by a newer HDF5; it is not
 * damaged. (Damage to checksummed metadata fails its checksum first.)
 * nnh5__h5_error() says so in its message; callers that would call the file
 * damaged ask first. Leaves the stack as it is.
 */
bool nnh5__h5_newer_format(void);

/* A new HDF5 type id for dtype as stored in files / in memory; close with H5Tclose. */
hid_t nnh5__h5_file_type(nnh5_dtype dtype);
hid_t nnh5__h5_mem_type(nnh5_dtype dtype);

/*
 * Which nnh5 dtype a file datatype loads as. On success *mem is a new memory
 * type to read with (close it). On failure writes a description of the type
 * ("string (variable-length)", "compound of 3 members, 24 bytes", ...) into
 * desc and returns NNH5_ERR_TYPE without recording a message.
 */
int nnh5__h5_dtype_of(nnh5_dtype *out, hid_t *mem, hid_t ftype, char *desc, size_t n);

/* A variable-length UTF-8 string type (close it with H5Tclose). */
hid_t nnh5__h5_vlen_utf8(void);

/*
 * Write a scalar (array false) or 1-d attribute of n values on loc,
 * replacing an existing one. Returns 0, or -1 with the HDF5 error stack set.
 */
int nnh5__h5_attr_write(hid_t loc, const char *name, hid_t type, const void *buf, size_t n,
			bool array);

/*
 * Read the scalar integer attribute name of loc as int64 (HDF5 converts
 * other integer sizes). Returns 0, 1 when it is not one integer (nothing is
 * read), or -1 with the HDF5 error stack set.
 */
int nnh5__h5_attr_read_int64(int64_t *out, hid_t loc, const char *name);

/* true if s is valid UTF-8. */
bool nnh5__utf8_valid(const char *s);

#endif /* NNH5_H5UTIL_H */
