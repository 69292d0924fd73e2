/*
 * nnh5/save.h - one call to save or load one object per file
 * (torch.save / torch.load).
 *
 * Each save writes a whole new file atomically (see nnh5/file.h): a crash
 * leaves the previous file or the new one, never a torn one, and a failed
 * save leaves the previous file untouched and no temporary file behind.
 *
 * Layout: a tensor is the dataset "/tensor"; a list, dict or state dict is
 * the root group itself (so h5py users read f["hidden/weight"]).
 */
#ifndef NNH5_SAVE_H
#define NNH5_SAVE_H

#include "file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Save one tensor. Errors: those of nnh5_file_open() and nnh5_file_write_tensor(). */
NNH5_API int nnh5_save_tensor(const char *path, const nnh5_tensor *t);

/*
 * Load one tensor: "/tensor" if present, else the file's only dataset.
 * Errors: NNH5_ERR_FORMAT (no dataset, or several and none named "tensor"),
 * and those of nnh5_file_read_tensor().
 */
NNH5_API int nnh5_load_tensor(nnh5_tensor **out, const char *path);

NNH5_API int nnh5_save_list(const char *path, const nnh5_list *list);
NNH5_API int nnh5_load_list(nnh5_list **out, const char *path);

NNH5_API int nnh5_save_dict(const char *path, const nnh5_dict *dict);
NNH5_API int nnh5_load_dict(nnh5_dict **out, const char *path);

NNH5_API int nnh5_save_state_dict(const char *path, const nnh5_dict *sd);
NNH5_API int nnh5_load_state_dict(nnh5_dict **out, const char *path);

/*
 * nnh5_save_tensor(), nnh5_save_list(), nnh5_save_dict() and
 * nnh5_save_state_dict() with open options (nnh5/file.h; NULL: the
 * defaults): the same file and result as nnh5_file_open_ext(path,
 * NNH5_CREATE, opts), nnh5_file_write_*() of obj at the root (a tensor as
 * "/tensor") and nnh5_file_close(). Two options apply to a save:
 * opts->durable (false: no fsync of the file or its folder; the save stays
 * atomic against a process crash, but a power cut may lose it) and
 * opts->compression (a profile other than NNH5_COMPRESSION_NONE writes
 * through HDF5's API). The rest are load options and are ignored. Without
 * compression the file is written directly in the HDF5 format, durable or
 * not, as by the calls without options (doc/SPEED.md, "Direct HDF5
 * writer"). Errors: those of nnh5_file_open_ext() (NNH5_ERR_INVALID for an
 * unknown options version or compression profile) and of the write.
 */
NNH5_API int nnh5_save_tensor_ext(const char *path, const nnh5_tensor *t,
				  const nnh5_open_options *opts);
NNH5_API int nnh5_save_list_ext(const char *path, const nnh5_list *list,
				const nnh5_open_options *opts);
NNH5_API int nnh5_save_dict_ext(const char *path, const nnh5_dict *dict,
				const nnh5_open_options *opts);
NNH5_API int nnh5_save_state_dict_ext(const char *path, const nnh5_dict *sd,
				      const nnh5_open_options *opts);

/*
 * nnh5_load_list(), nnh5_load_dict() and nnh5_load_state_dict() with open
 * options (nnh5/file.h; NULL: the defaults): the same result or error as
 * nnh5_file_open_ext(path, NNH5_READ, opts) followed by
 * nnh5_file_read_list/dict/state_dict(f, "/") and nnh5_file_close(), with
 * the load policy's limits and the checksum switches of opts. Files as nnh5
 * writes them are read in bulk around HDF5's object layer (doc/SPEED.md,
 * "Direct HDF5 reader") unless opts allows external links, filter plugins
 * or copied aliases. *out is the caller's (nnh5_list_free/nnh5_dict_free).
 * Errors: those of nnh5_file_open_ext() and of the read.
 */
NNH5_API int nnh5_load_list_ext(nnh5_list **out, const char *path,
				const nnh5_open_options *opts);
NNH5_API int nnh5_load_dict_ext(nnh5_dict **out, const char *path,
				const nnh5_open_options *opts);
NNH5_API int nnh5_load_state_dict_ext(nnh5_dict **out, const char *path,
				      const nnh5_open_options *opts);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_SAVE_H */
