/*
 * nnh5/map.h - lazy, zero-copy loading: tensors that are views of the file's
 * bytes, mapped read-only into memory.
 *
 * nnh5_map_open() opens a file for reading and maps it (mmap, PROT_READ,
 * shared) without reading any tensor data. nnh5_map_tensor() and
 * nnh5_map_state_dict() then hand out tensors whose elements are the file's
 * own bytes: nothing is copied, and the operating system reads a page from
 * the file (or the page cache) only when it is first touched. Opening a
 * 10 GiB file and using one tensor costs about what it costs on a 1 MiB
 * file. nnh5 stores every dataset of 4 KiB or more contiguous and aligned to
 * 4 KiB (doc/FORMAT.md), so its tensors map as they are.
 *
 * Lifetime: a mapped tensor is a read-only view (nnh5_tensor_mutable_data()
 * gives NULL, nnh5_tensor_owns_data() false). Its elements stay valid until
 * nnh5_map_close(); after that, reading them crashes (SIGSEGV). The tensor
 * structs themselves still belong to the caller and are freed with
 * nnh5_tensor_free() or with the dict holding them, before or after the
 * close. The file must not be truncated or rewritten in place while it is
 * mapped (reading a page that no longer exists raises SIGBUS); nnh5's own
 * saves replace a file by renaming a new one over it, which leaves existing
 * maps showing the old content.
 *
 * Datasets that cannot be mapped - compact ones (under 4 KiB: the data lives
 * inside HDF5's metadata), chunked or compressed ones, data stored in
 * another byte order or type that needs converting, never-written datasets -
 * are read into memory instead, as nnh5_file_read_tensor() reads them
 * (checksums verified as the open options say), unless copy_unmappable is
 * off, in which case they are refused with NNH5_ERR_FORMAT. Such tensors own
 * their data and outlive the map. nnh5_map_is_mapped() tells them apart.
 *
 * Bool tensors are the exception to "nothing is read": a mapped bool
 * tensor's bytes are checked to be 0 or 1 when it is handed out (its pages
 * are read into the page cache), as every reader checks them
 * (doc/FORMAT.md, "bool"; NNH5_ERR_FORMAT otherwise).
 *
 * Checksums: checking a tensor's stored checksum (doc/FORMAT.md,
 * "Checksums") means reading every one of its bytes, which is exactly what
 * a lazy load avoids. So mapped tensors are not verified by default:
 * nnh5_map_verify() checks one tensor or everything under a group when the
 * caller wants it, and the option verify checks each mapped tensor as it is
 * handed out (touching all its bytes once; the pages then stay in the page
 * cache, not in the process). A map checks what nnh5_file_read_tensor()
 * checks before touching any data (the load policy: storage that reads other
 * files or runs unknown filters is refused), and that each mapped tensor
 * lies inside the file.
 *
 * A map must not be used by two threads at once; the tensors it handed out
 * may be read from any thread.
 */
#ifndef NNH5_MAP_H
#define NNH5_MAP_H

#include "dict.h"
#include "file.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_map nnh5_map;

#define NNH5_MAP_OPTIONS_VERSION 1

/* Options of nnh5_map_open(). Initialise with NNH5_MAP_OPTIONS_INIT. */
typedef struct nnh5_map_options {
	unsigned int version; /* NNH5_MAP_OPTIONS_VERSION */
	/*
	 * Verify each mapped tensor's checksum when it is handed out (default
	 * false: that reads all its bytes). A mismatch fails the call with
	 * NNH5_ERR_CHECKSUM.
	 */
	bool verify;
	/*
	 * Read datasets that cannot be mapped into memory (default true);
	 * false refuses them with NNH5_ERR_FORMAT.
	 */
	bool copy_unmappable;
	/*
	 * Options for opening the file (NULL: NNH5_OPEN_OPTIONS_INIT). Their
	 * checksum settings apply to the datasets read into memory, and
	 * require_checksums also to mapped ones (a mapped tensor without a
	 * stored checksum is then refused).
	 */
	const nnh5_open_options *file;
} nnh5_map_options;

#define NNH5_MAP_OPTIONS_INIT { NNH5_MAP_OPTIONS_VERSION, false, true, NULL }

/*
 * Open path for lazy loading and map it read-only. Reads the file's
 * metadata as nnh5_file_open() does; reads no tensor data.
 * *out is freed by nnh5_map_close().
 * Errors: those of nnh5_file_open() (NNH5_ERR_NOT_FOUND, NNH5_ERR_FORMAT,
 * ...), NNH5_ERR_INVALID (unknown options version), NNH5_ERR_IO (the file
 * cannot be mapped), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_map_open(nnh5_map **out, const char *path, const nnh5_map_options *opts);

/*
 * Unmap and close. Mapped tensors' elements become invalid (see Lifetime
 * above); the tensor structs are still the caller's to free. NULL is a no-op.
 */
NNH5_API void nnh5_map_close(nnh5_map *m);

/*
 * The open file underneath (borrowed, valid until nnh5_map_close()): for
 * kinds, attributes and plain reads. Do not close it.
 */
NNH5_API nnh5_file *nnh5_map_file(nnh5_map *m);

/*
 * The dataset name as a tensor: a read-only view of the mapped file when
 * it can be mapped, else (copy_unmappable) a new owning tensor read into
 * memory. Free *out with nnh5_tensor_free().
 * Errors: those of nnh5_file_read_tensor(); NNH5_ERR_FORMAT also for a
 * dataset that cannot be mapped when copy_unmappable is off, and for one
 * whose data lies beyond the end of the file; NNH5_ERR_CHECKSUM with the
 * option verify.
 */
NNH5_API int nnh5_map_tensor(nnh5_tensor **out, nnh5_map *m, const char *name);

/*
 * The group name as a state dict (keys "hidden.weight", in stored order, as
 * nnh5_file_read_state_dict() gives them), every tensor as nnh5_map_tensor()
 * gives it. Costs metadata only: no tensor data is read for mapped tensors.
 * Free *out with nnh5_dict_free() (before or after the close).
 * Errors: those of nnh5_file_read_state_dict() and nnh5_map_tensor().
 */
NNH5_API int nnh5_map_state_dict(nnh5_dict **out, nnh5_map *m, const char *name);

/* As nnh5_map_state_dict() with the keys of nnh5_file_read_dict() ("sub/x"). */
NNH5_API int nnh5_map_dict(nnh5_dict **out, nnh5_map *m, const char *name);

/*
 * Check the data of the dataset name, or of every dataset below the group
 * name, against the checksums stored with it: reads every byte (through
 * the map where it can). *checked (may be NULL) is the number of datasets
 * whose checksum was compared; datasets without one are skipped, or refused
 * when the file options require checksums.
 * Errors: NNH5_ERR_CHECKSUM (the message names the first damaged dataset),
 * and those of nnh5_map_tensor() and nnh5_map_state_dict().
 */
NNH5_API int nnh5_map_verify(size_t *checked, nnh5_map *m, const char *name);

/* true if t's elements lie in m's mapping (a view), false for a copy or another tensor. */
NNH5_API bool nnh5_map_is_mapped(const nnh5_map *m, const nnh5_tensor *t);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_MAP_H */
