/*
 * nnh5/mpi.h - nnh5 over MPI and Parallel HDF5 (libnnh5_mpi only).
 *
 * Sharded tensors in one shared file: every logical tensor is one global
 * HDF5 dataset, written collectively by the ranks of a communicator, each
 * passing its local shard and a sharding description saying where the
 * shard sits in the global tensor. The file is an ordinary nnh5 file (the
 * serial writer's layout, attributes and checksums): serial nnh5, h5py and
 * h5dump read the full tensors with no MPI. Any rank count reads any
 * hyperslab back collectively (resharding), from these files and from
 * files written by serial nnh5 or h5py.
 *
 * Collective means: every rank of the communicator makes the call, in the
 * same order, with the same name (and, for writes, a consistent sharding).
 * Every collective function returns the same status on every rank, with
 * the message of the lowest rank that failed ("rank R: ..."), a rank whose
 * failure is not NNH5_ERR_CHECKSUM first (a mismatch can be the
 * consequence of another rank's failed read); a failure on one rank never
 * leaves the others waiting.
 *
 * Parallel HDF5 (Debian's 1.10 build) is not thread-safe: in each rank one
 * thread makes every nnh5 and HDF5 call. doc/MPI.md describes the whole.
 *
 * Include it only when building against libnnh5_mpi
 * (`pkg-config --cflags --libs nnh5-mpi`, which defines NNH5_MPI).
 */
#ifndef NNH5_MPI_H
#define NNH5_MPI_H

#ifndef NNH5_MPI
#error "<nnh5/mpi.h> belongs to libnnh5_mpi: build with `pkg-config --cflags --libs nnh5-mpi`"
#endif

#include <mpi.h>

#include "checkpoint.h"
#include "dict.h"
#include "file.h"
#include "nn.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNH5_MPI_SHARDING_VERSION 1

/*
 * Where this rank's shard sits in a global tensor. The global tensor of
 * shape[0..ndim) is cut along each dimension d into parts[d] pieces (a
 * process grid; 1 = not split); this rank holds the piece at coord[d] in
 * every dimension. Pieces along d are given by bounds[d], an array of
 * parts[d] + 1 non-decreasing offsets from 0 to shape[d] (uneven splits,
 * empty pieces allowed), or, when bounds[d] is NULL, by the even split:
 * piece i starts at i * (n / p) + min(i, n % p), so the first n % p pieces
 * hold one element more. Ranks holding a copy of a piece another rank
 * writes (data parallelism, replicated tensors) set replica > 0 and write
 * nothing; the writing copy has replica 0. A replicated tensor is parts
 * all 1 with replica = the rank (rank 0 writes it).
 *
 * Every piece must be written by exactly one rank with replica 0 (checked:
 * a write whose ranks disagree on name, shape, parts, bounds or dtype, or leave a
 * piece unwritten or written twice, is refused on every rank).
 * Initialise with NNH5_MPI_SHARDING_INIT.
 */
typedef struct nnh5_mpi_sharding {
	unsigned int version; /* NNH5_MPI_SHARDING_VERSION */
	size_t ndim;
	int64_t shape[NNH5_MAX_NDIM];
	int parts[NNH5_MAX_NDIM];
	int coord[NNH5_MAX_NDIM];
	const int64_t *bounds[NNH5_MAX_NDIM]; /* borrowed; read during the call only */
	int replica;
} nnh5_mpi_sharding;

#define NNH5_MPI_SHARDING_INIT { NNH5_MPI_SHARDING_VERSION, 0, { 0 }, { 0 }, { 0 }, { NULL }, 0 }

/*
 * Fill s for a tensor of ndim dimensions and the given global shape, not
 * split (parts 1, coord 0, even bounds, replica 0). Errors:
 * NNH5_ERR_INVALID (ndim > NNH5_MAX_NDIM, a negative size).
 */
NNH5_API int nnh5_mpi_sharding_init(nnh5_mpi_sharding *s, size_t ndim, const int64_t *shape);

/*
 * This rank's piece under s: start[d] and count[d] for d < s->ndim.
 * Errors: NNH5_ERR_INVALID (a malformed description: coord outside parts,
 * bounds not from 0 to shape[d] or decreasing, unknown version).
 */
NNH5_API int nnh5_mpi_sharding_box(int64_t *start, int64_t *count, const nnh5_mpi_sharding *s);

typedef struct nnh5_mpi_file nnh5_mpi_file;

/*
 * Collective: create the file at path, shared by every rank of comm (which
 * is duplicated; the caller keeps its own). As nnh5_file_open_ext() with
 * NNH5_CREATE: the ranks write a temporary file beside path that only
 * nnh5_mpi_file_close() puts in its place, and only when every rank
 * succeeded. opts may be NULL (defaults; opts->durable as for serial
 * files). *out is freed by nnh5_mpi_file_close() or nnh5_mpi_file_discard().
 * Errors: those of nnh5_file_open_ext(), NNH5_ERR_INVALID
 * (opts->compression other than NNH5_COMPRESSION_NONE: the collective
 * writers store contiguous datasets, and refuse rather than ignore it),
 * NNH5_ERR_HDF5 (the MPI-IO driver refused).
 */
NNH5_API int nnh5_mpi_file_create(nnh5_mpi_file **out, MPI_Comm comm, const char *path,
				  const nnh5_open_options *opts);

/*
 * Collective: open the existing file at path for collective reads by every
 * rank of comm, through the MPI-IO driver. The file goes through the
 * checks of nnh5_file_open_ext() (a regular HDF5 file, checked by rank 0;
 * the load policy of opts on every object read). opts may be NULL.
 */
NNH5_API int nnh5_mpi_file_open(nnh5_mpi_file **out, MPI_Comm comm, const char *path,
				const nnh5_open_options *opts);

/*
 * Collective: write the tensor name (missing groups are created) from the
 * local shards of every rank: local is this rank's piece under s (dtype
 * the same on every rank, shape the piece's count; ranks with s->replica >
 * 0 pass their copy, which is not written). The dataset is the serial
 * writer's (contiguous, the nnh5_xxh3 checksum of the global data, the
 * nnh5_dtype attribute of bfloat16) plus an attribute nnh5_sharding that
 * records s compactly (doc/MPI.md). Data moves in one collective
 * transfer (H5FD_MPIO_COLLECTIVE; a tensor of at most 1 MiB written whole
 * by one rank moves in one MPI_File_write_at_all of every rank at the end
 * of the call, doc/MPI.md "Collective I/O"). A tensor split over several ranks gets
 * its checksum at nnh5_mpi_file_close(), hashed from the file (doc/MPI.md,
 * "Checksums"). Errors: NNH5_ERR_INVALID (bad name, sharding, dtype or
 * shape; ranks that disagree), NNH5_ERR_EXISTS, NNH5_ERR_IO, NNH5_ERR_HDF5.
 * A failure after the dataset was created marks the file failed: its
 * close commits nothing.
 */
NNH5_API int nnh5_mpi_write_sharded(nnh5_mpi_file *f, const char *name, const nnh5_tensor *local,
				    const nnh5_mpi_sharding *s);

/*
 * Collective: write the state dict name ("/" or NULL: the root) whose
 * tensors are shards: local holds this rank's shard of every tensor,
 * shardings[i] describes the i-th key's (in local's order, the same keys in
 * the same order on every rank). The layout is nnh5_file_write_state_dict()'s
 * (a key "a.b" is the dataset a/b, the key order in nnh5_keys), so serial
 * nnh5_file_read_state_dict() reads the global tensors back. Every key is
 * checked before anything is created, in two collective calls for all
 * keys, and the write ends in one agreement: the number of agreements does
 * not grow with the number of keys; the small whole tensors' bytes move in
 * one collective write. Tied keys (nnh5_tensor_tied() shards with the same
 * split, on every rank whose shard is not empty) are stored once, the
 * later key a hard link, as the serial savers store a tie; a tie some
 * ranks do not hold is two datasets. A write holding a tie makes its hard
 * links through Parallel HDF5 (one more agreement, and the file's later
 * writes go through HDF5 too). The same status on every rank.
 * Errors: as nnh5_mpi_write_sharded().
 */
NNH5_API int nnh5_mpi_write_state_dict(nnh5_mpi_file *f, const char *name, const nnh5_dict *local,
				       const nnh5_mpi_sharding *shardings);

/*
 * Collective: read the hyperslab start[0..ndim), count[0..ndim) of the
 * tensor name into a new tensor of shape count (each rank its own slab;
 * any slab, a count of 0 included). Every dataset is described and judged
 * by the load policy before its data is read. With opts->verify_checksums
 * (the default) the stored checksum is compared when the ranks' slabs tile
 * the tensor along dimension 0 (whole rows, following each other from row
 * 0 to the end, none read twice: a checksum chain over the ranks, the same
 * verdict on every rank) or, otherwise, when this rank's slab is the whole
 * tensor; other partial slabs are not checked (`nnh5 verify` checks the
 * file). Plain contiguous data read as one run per rank moves in
 * MPI_File_read_at_all (doc/MPI.md, "Collective I/O").
 * Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_SHAPE (ndim differs, the slab leaves
 * the tensor), NNH5_ERR_CHECKSUM (a verified tensor is damaged),
 * NNH5_ERR_FORMAT (also: the file was cut after the open), the load errors
 * of nnh5_file_read_tensor().
 */
NNH5_API int nnh5_mpi_read_slab(nnh5_tensor **out, nnh5_mpi_file *f, const char *name,
				size_t ndim, const int64_t *start, const int64_t *count);

/*
 * Collective: read this rank's piece of the tensor name under s (any
 * sharding, whatever the file was written with). s->shape must be the
 * stored shape (NNH5_ERR_SHAPE otherwise); s->replica is ignored.
 */
NNH5_API int nnh5_mpi_read_sharded(nnh5_tensor **out, nnh5_mpi_file *f, const char *name,
				   const nnh5_mpi_sharding *s);

/*
 * Collective: nnh5_mpi_read_sharded() into dst, a tensor the caller owns
 * and keeps (not NULL): the stored dtype and exactly this rank's piece's
 * shape (nnh5_mpi_sharding_box()), writable. Its data is overwritten in
 * place, nothing is allocated for the data, and the caller may reuse dst
 * for the next load of the same piece (memory already touched loads
 * faster than fresh memory). On failure dst's contents are unspecified
 * (the bytes may have been read before a checksum mismatch was found).
 * Errors: as nnh5_mpi_read_sharded(); NNH5_ERR_INVALID (dst read-only or
 * of another dtype), NNH5_ERR_SHAPE (dst's shape is not the piece's).
 */
NNH5_API int nnh5_mpi_read_sharded_into(nnh5_tensor *dst, nnh5_mpi_file *f, const char *name,
					const nnh5_mpi_sharding *s);

/*
 * Collective: read this rank's pieces of the n tensors keys[i] of the state
 * dict name ("/" or NULL: the root), each under shardings[i], into a new
 * dict (keys in the order given; the same keys on every rank). The inverse
 * of nnh5_mpi_write_state_dict() for any rank count, and the way to read a
 * serial state dict sharded. Errors: as nnh5_mpi_read_sharded().
 */
NNH5_API int nnh5_mpi_read_state_dict(nnh5_dict **out, nnh5_mpi_file *f, const char *name,
				      size_t n, const char *const *keys,
				      const nnh5_mpi_sharding *shardings);

/* How the data transfers of a file went (nnh5_mpi_file_io_stats()). */
typedef struct nnh5_mpi_io_stats {
	uint64_t transfers;  /* collective H5Dwrite/H5Dread calls made */
	uint64_t collective; /* of those, how many HDF5 ran collectively */
	/*
	 * H5Pget_mpio_no_collective_cause()'s global cause of the last transfer
	 * that fell back to independent I/O (0 if none did).
	 */
	uint32_t last_cause;
	/*
	 * Reads made on purpose with independent MPI-IO calls, not counted in
	 * transfers: reads of slabs that tile the tensor along dimension 0
	 * (disjoint runs of the file), verified ones hashing each rank's bytes
	 * as they come in (doc/MPI.md, "Collective I/O").
	 */
	uint64_t independent;
} nnh5_mpi_io_stats;

/*
 * This rank's counts of the collective transfers made through f and how
 * many ran collectively (H5Pget_mpio_actual_io_mode() after each one).
 * Local (not collective).
 */
NNH5_API void nnh5_mpi_file_io_stats(nnh5_mpi_io_stats *out, const nnh5_mpi_file *f);

/*
 * Collective: close f. A file being written gets the checksums of its
 * sharded tensors, is flushed (MPI_File_sync on every rank), and when every
 * rank succeeded so far, rank 0 renames it over the target and fsyncs the
 * folder; otherwise nothing is committed and the previous file at path is
 * unchanged. The same status on every rank. NULL is a no-op.
 * Errors: NNH5_ERR_IO (a rank's write, flush, fsync or rename failed).
 */
NNH5_API int nnh5_mpi_file_close(nnh5_mpi_file *f);

/* Collective: abandon f (a file being written is removed). NULL is a no-op. */
NNH5_API void nnh5_mpi_file_discard(nnh5_mpi_file *f);

/*
 * Collective: open the nnh5 file at path on every rank of comm with one
 * open of the file: rank root opens it (the regular-file checks of
 * nnh5_file_open_ext()), reads its bytes and broadcasts them; every rank
 * then opens them as an in-memory image (nnh5_file_open_image()), so every
 * object read goes through the load policy of opts on every rank. For the
 * simulations whose ranks all need the same model or state dict: N opens
 * of one file are the metadata storm parallel file systems fall over
 * under. *out is an ordinary read-only nnh5_file, local to the rank (close
 * it with nnh5_file_close()); each rank holds a copy of the file's bytes
 * until then. Files larger than opts->max_load_bytes (default 64 GiB) are
 * refused with NNH5_ERR_OVERFLOW.
 * Errors: those of nnh5_file_open_ext() and nnh5_file_open_image().
 */
NNH5_API int nnh5_mpi_file_open_shared(nnh5_file **out, MPI_Comm comm, int root,
				       const char *path, const nnh5_open_options *opts);

/*
 * Collective: nnh5_load_state_dict() of path on every rank, with the file
 * opened by root alone: the state dict at name ("/" or NULL: the root).
 * Root loads it: a whole file as nnh5 writes it by the same direct reader,
 * load policy and checksums as nnh5_load_state_dict() (one open); anything
 * that reader declines, and a group of the file, through HDF5's API on the
 * file's bytes read once (a second open, on root). Root then broadcasts
 * the keys, dtypes, shapes and ties, and the elements straight from its
 * tensors into the other ranks' (no rank parses the file again or holds
 * its bytes): every rank gets the same keys in the same order, bitwise
 * equal tensors, tied where root's are. The ranks trust root's judgement
 * of the file. *out is the caller's (nnh5_dict_free()); NULL on failure.
 * Every rank returns the same status (a failure on any rank fails all).
 * Errors: those of nnh5_mpi_file_open_shared() and nnh5_load_state_dict();
 * NNH5_ERR_NOMEM on any rank.
 */
NNH5_API int nnh5_mpi_load_state_dict(nnh5_dict **out, MPI_Comm comm, int root, const char *path,
				      const char *name);

/*
 * Collective: nnh5_load_model() of path on every rank through
 * nnh5_mpi_file_open_shared() (one open, root reads): a model every rank
 * can run. *out is the caller's (nnh5_model_free()); NULL on failure.
 * Every rank returns the same status (a failure on any rank fails all).
 * Errors: those of nnh5_mpi_file_open_shared() and nnh5_file_read_model().
 */
NNH5_API int nnh5_mpi_load_model(nnh5_model **out, MPI_Comm comm, int root, const char *path);

/* ------------------------------------------------------------------ */
/* Collective checkpoints                                              */

typedef struct nnh5_mpi_checkpoints nnh5_mpi_checkpoints;

/* One section of a collective checkpoint ("model", "optimizer", ...). */
typedef struct nnh5_mpi_section {
	const char *name;
	const nnh5_dict *local;              /* this rank's shards; same keys, same order everywhere */
	const nnh5_mpi_sharding *shardings;  /* one per key of local */
} nnh5_mpi_section;

/*
 * Collective: open (creating it if needed) the checkpoint folder dir for the
 * ranks of comm (duplicated). Rank 0 holds the folder as the serial
 * nnh5_checkpoint_manager_open() does (its lock, the removal of temporary
 * files of interrupted saves, retention by opts, the index). opts may be
 * NULL. Free with nnh5_mpi_checkpoints_close().
 *
 * opts->async: saves are staged (copied) and written by one background
 * thread per rank over a duplicate of comm. It needs MPI initialized with
 * MPI_Init_thread(MPI_THREAD_MULTIPLE). Parallel HDF5 is not thread-safe:
 * while a save is in flight (from nnh5_mpi_checkpoints_save() until
 * nnh5_mpi_checkpoints_wait(), or the next save, latest, load or close of
 * this manager, which wait first) the background thread makes every HDF5
 * call of the process, and no other thread may call HDF5 or any nnh5
 * function that opens, reads or writes a file. In-memory nnh5 calls
 * (tensors, dicts, nn forward passes) and MPI calls on other
 * communicators are allowed. opts->busy: NNH5_BUSY_WAIT, or NNH5_BUSY_SKIP
 * (a save is skipped on every rank when one is in flight on any rank).
 * Errors: those of nnh5_checkpoint_manager_open(), NNH5_ERR_INVALID (async
 * without MPI_THREAD_MULTIPLE, an unknown busy policy, opts->compression
 * other than NNH5_COMPRESSION_NONE: collective saves store contiguous
 * datasets), NNH5_ERR_NOMEM (the thread).
 */
NNH5_API int nnh5_mpi_checkpoints_open(nnh5_mpi_checkpoints **out, MPI_Comm comm,
				       const char *dir, const nnh5_checkpoint_options *opts);

/* Collective: release the folder and free m. NULL is a no-op. */
NNH5_API int nnh5_mpi_checkpoints_close(nnh5_mpi_checkpoints *m);

/*
 * Collective: save the checkpoint of summary's step (its step, epoch,
 * metrics and metadata, the same on every rank; summary holds no sections)
 * with the sections of this rank's shards, as one file ckpt-<step>.h5 in the
 * serial checkpoint layout (nnh5_checkpoint_load() reads it whole). One
 * commit for all ranks: the file replaces the step's previous one only if
 * every rank wrote its part (nnh5_mpi_file_close()); then rank 0 applies
 * retention and rewrites the index. The same status on every rank; on
 * failure nothing is committed and the previous checkpoints stay loadable.
 *
 * Async (opts->async at the open): waits for the save in flight (or, with
 * NNH5_BUSY_SKIP, returns NNH5_ERR_BUSY on every rank if one is in flight
 * on any), copies summary, the shards and the shardings, and returns; the
 * caller may change or free them at once. The background save's failure is
 * returned, the same on every rank, by the next call of this manager
 * (save, wait, latest, load or close), instead of doing what it asks.
 * Errors: those of nnh5_mpi_write_state_dict() and nnh5_mpi_file_close();
 * NNH5_ERR_BUSY, NNH5_ERR_NOMEM (staging).
 */
NNH5_API int nnh5_mpi_checkpoints_save(nnh5_mpi_checkpoints *m, const nnh5_checkpoint *summary,
				       size_t nsections, const nnh5_mpi_section *sections);

/*
 * Collective: wait until this manager's background save is done on every
 * rank. Returns its failure once (the same on every rank), NNH5_OK when it
 * succeeded, none was in flight, or the manager is synchronous.
 */
NNH5_API int nnh5_mpi_checkpoints_wait(nnh5_mpi_checkpoints *m);

/*
 * Collective: the newest step whose checkpoint file opens and holds a
 * checkpoint's summary (judged by rank 0, broadcast: every rank gets the
 * same step). Tensor data is verified when loaded (whole tensors) or by
 * `nnh5 verify`, not here (doc/MPI.md). Errors: NNH5_ERR_NOT_FOUND (none).
 */
NNH5_API int nnh5_mpi_checkpoints_latest(int64_t *step, nnh5_mpi_checkpoints *m);

/*
 * Collective: nnh5_mpi_read_state_dict() of section in step's checkpoint,
 * with checksums required (any rank count, any sharding).
 */
NNH5_API int nnh5_mpi_checkpoints_load(nnh5_dict **out, nnh5_mpi_checkpoints *m, int64_t step,
				       const char *section, size_t n, const char *const *keys,
				       const nnh5_mpi_sharding *shardings);

#ifdef __cplusplus
}
#endif

#endif /* NNH5_MPI_H */
