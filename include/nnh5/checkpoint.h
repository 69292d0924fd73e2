/*
 * nnh5/checkpoint.h - training checkpoints that survive crashes.
 *
 * An nnh5_checkpoint holds everything needed to resume training exactly:
 * named state dicts ("model", "optimizer", any other), the position (step,
 * epoch), random generator states, metrics (loss, accuracy, ...), extra
 * tensors (a simulation's own state) and string metadata. It is saved as
 * one HDF5 file (doc/FORMAT.md, "Checkpoints") with a checksum on every
 * tensor, which loading always verifies.
 *
 * An nnh5_checkpoint_manager keeps a folder of them:
 *   - every save is atomic (temporary file beside the target, fsync,
 *     rename, fsync of the folder); leftovers of interrupted saves are
 *     removed when the manager opens the folder;
 *   - retention: keep the last N, the best N by a named metric, and every
 *     K-th step for ever; old files are deleted only after the new one is
 *     committed;
 *   - latest() returns the newest checkpoint that loads and verifies,
 *     skipping damaged or partial ones and saying why;
 *   - an index file (index.h5) that nnh5 ls and h5py read: the steps kept,
 *     their metrics, the best one;
 *   - asynchronous saving: the caller pays only for copying the tensors into
 *     a staging buffer (reused between saves); a background thread writes
 *     and commits. At most one save is in flight.
 *
 * Thread rules: a checkpoint or a manager must not be used by two threads at
 * once. The manager's own background thread touches only its staged copy.
 */
#ifndef NNH5_CHECKPOINT_H
#define NNH5_CHECKPOINT_H

#include "dict.h"
#include "file.h"
#include "rng.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_checkpoint nnh5_checkpoint;

/* ------------------------------------------------------------------ */
/* Contents                                                            */

/*
 * A new empty checkpoint at training step step (>= 0), epoch 0.
 * Free with nnh5_checkpoint_free(). Errors: NNH5_ERR_INVALID (step < 0),
 * NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_new(nnh5_checkpoint **out, int64_t step);

/* Free the checkpoint and everything it owns. NULL is a no-op. */
NNH5_API void nnh5_checkpoint_free(nnh5_checkpoint *c);

NNH5_API int64_t nnh5_checkpoint_step(const nnh5_checkpoint *c);
NNH5_API int64_t nnh5_checkpoint_epoch(const nnh5_checkpoint *c);
/* Errors: NNH5_ERR_INVALID (epoch < 0). */
NNH5_API int nnh5_checkpoint_set_epoch(nnh5_checkpoint *c, int64_t epoch);

/*
 * Store sd as the state dict called section ("model", "optimizer", ...).
 * On success the checkpoint owns sd (its tensors may be views, e.g. of a
 * model's parameters: they are read when the checkpoint is saved, so keep
 * what they view alive and unchanged until then; an asynchronous save copies
 * them before it returns). Setting a section again replaces it. Section
 * names are one path component of printable UTF-8, not "metrics" and not
 * starting with "nnh5_"; "rng" and "extra" are used by the calls below.
 * Errors: NNH5_ERR_INVALID (bad name; the caller still owns sd),
 * NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_set_state(nnh5_checkpoint *c, const char *section, nnh5_dict *sd);

/* The state dict section (borrowed), or NULL if the checkpoint has none. */
NNH5_API const nnh5_dict *nnh5_checkpoint_state(const nnh5_checkpoint *c, const char *section);

/* Number of sections, and the i-th section's name in order (NULL past the end). */
NNH5_API size_t nnh5_checkpoint_num_states(const nnh5_checkpoint *c);
NNH5_API const char *nnh5_checkpoint_state_name(const nnh5_checkpoint *c, size_t i);

/*
 * An extra tensor (section "extra", key name): a simulation's own state,
 * say. On success the checkpoint owns t. Errors: as nnh5_dict_set().
 */
NNH5_API int nnh5_checkpoint_set_tensor(nnh5_checkpoint *c, const char *name, nnh5_tensor *t);
/* The extra tensor name (borrowed), or NULL. */
NNH5_API const nnh5_tensor *nnh5_checkpoint_tensor(const nnh5_checkpoint *c, const char *name);

/*
 * Save a copy of a generator's state under name (section "rng": a uint64
 * tensor of 6 words: s[0..3], the bits of spare, has_spare).
 * Errors: NNH5_ERR_INVALID, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_set_rng(nnh5_checkpoint *c, const char *name, const nnh5_rng *rng);
/*
 * Restore the generator state saved under name into *out.
 * Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_FORMAT (not a valid state).
 */
NNH5_API int nnh5_checkpoint_get_rng(nnh5_rng *out, const nnh5_checkpoint *c, const char *name);

/*
 * A metric (loss, accuracy, ...), stored as a float64 attribute of the
 * file's "metrics" group. Setting it again replaces the value.
 * Errors: NNH5_ERR_INVALID (empty or non-UTF-8 name), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_set_metric(nnh5_checkpoint *c, const char *name, double value);
/* The metric name. Errors: NNH5_ERR_NOT_FOUND. */
NNH5_API int nnh5_checkpoint_metric(double *out, const nnh5_checkpoint *c, const char *name);
/* Number of metrics and the i-th name (NULL past the end), in the order set. */
NNH5_API size_t nnh5_checkpoint_num_metrics(const nnh5_checkpoint *c);
NNH5_API const char *nnh5_checkpoint_metric_name(const nnh5_checkpoint *c, size_t i);

/*
 * String metadata (a root attribute of the file; names "step", "epoch" and
 * "nnh5_*" are taken). Both strings are copied and must be UTF-8.
 * Errors: NNH5_ERR_INVALID, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_set_meta(nnh5_checkpoint *c, const char *name, const char *value);
/* The metadata value (borrowed), or NULL. */
NNH5_API const char *nnh5_checkpoint_meta(const nnh5_checkpoint *c, const char *name);

/* ------------------------------------------------------------------ */
/* One file                                                            */

/*
 * Save c to path atomically and durably (fsync of the file and its folder).
 * Errors: those of nnh5_file_open() and the writes (NNH5_ERR_IO on a full
 * disk: the previous file at path is untouched and no temporary is left).
 */
NNH5_API int nnh5_checkpoint_save(const char *path, const nnh5_checkpoint *c);

/*
 * Load the checkpoint at path into a new checkpoint that owns its tensors.
 * Every tensor must carry its checksum and match it.
 * Errors: NNH5_ERR_NOT_FOUND, NNH5_ERR_FORMAT (not a checkpoint, damaged),
 * NNH5_ERR_CHECKSUM (damaged tensor data, or a tensor without checksum),
 * NNH5_ERR_NOMEM, and those of nnh5_file_read_state_dict().
 */
NNH5_API int nnh5_checkpoint_load(nnh5_checkpoint **out, const char *path);

/*
 * nnh5_checkpoint_load() with the file options opts (NULL: as
 * nnh5_checkpoint_load()). With opts->verify_checksums false the hashing
 * pass is skipped and damaged tensor data loads as stored: for a quick look
 * at a checkpoint already verified, never for resuming from an unknown one.
 * opts->require_checksums as in nnh5_file_open_ext().
 * Errors: as nnh5_checkpoint_load(), NNH5_ERR_INVALID (bad options).
 */
NNH5_API int nnh5_checkpoint_load_ext(nnh5_checkpoint **out, const char *path,
				      const nnh5_open_options *opts);

/* ------------------------------------------------------------------ */
/* A folder of checkpoints                                             */

typedef struct nnh5_checkpoint_manager nnh5_checkpoint_manager;

/* What an asynchronous save does while another is still being written. */
typedef enum nnh5_busy_policy {
	NNH5_BUSY_WAIT = 0, /* wait for it to finish, then stage the new one */
	NNH5_BUSY_SKIP = 1, /* skip the new save: nnh5_checkpoint_manager_save() returns NNH5_ERR_BUSY */
} nnh5_busy_policy;

#define NNH5_CHECKPOINT_OPTIONS_VERSION 1

/* Options of nnh5_checkpoint_manager_open(). Initialise with NNH5_CHECKPOINT_OPTIONS_INIT. */
/* Mirrored field by field in fortran/nnh5.f90 (c_checkpoint_options): change both. */
typedef struct nnh5_checkpoint_options {
	unsigned int version;  /* NNH5_CHECKPOINT_OPTIONS_VERSION */
	unsigned int keep_last; /* keep the newest N steps (default 3; 0 keeps every step) */
	unsigned int keep_best; /* also keep the best N by best_metric (default 0) */
	const char *best_metric; /* metric keep_best ranks by (copied); required when keep_best > 0 */
	bool best_is_max;       /* higher best_metric is better (default false: lower is) */
	int64_t keep_every;     /* also keep every step that is a multiple of it (default 0: none) */
	bool async;             /* save in a background thread (default false) */
	nnh5_busy_policy busy;  /* async: what a save does while another is in flight */
	bool durable;           /* fsync each file and the folder (default true) */
	/*
	 * The compression profile of each checkpoint file (nnh5_compression in
	 * nnh5/file.h; default NNH5_COMPRESSION_NONE). Unknown values:
	 * NNH5_ERR_INVALID at the open.
	 */
	int compression;
} nnh5_checkpoint_options;

#define NNH5_CHECKPOINT_OPTIONS_INIT \
	{ NNH5_CHECKPOINT_OPTIONS_VERSION, 3, 0, NULL, false, 0, false, NNH5_BUSY_WAIT, true, 0 }

/*
 * Open (creating it if needed) the folder dir as a checkpoint folder. Its
 * checkpoints are files "ckpt-<step, at least 12 digits>.h5" (steps from 0
 * to INT64_MAX); the manager takes an exclusive lock (flock on
 * dir/.nnh5-lock) so two trainers cannot share a folder, and removes
 * temporary files left by interrupted saves. The lock is not inherited: a
 * child made with fork() does not hold it (and must not use m), and the
 * descriptor is closed on exec.
 * Free with nnh5_checkpoint_manager_close().
 * Errors: NNH5_ERR_INVALID (bad options), NNH5_ERR_IO (cannot create or read
 * dir), NNH5_ERR_BUSY (another manager holds the folder), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_manager_open(nnh5_checkpoint_manager **out, const char *dir,
					  const nnh5_checkpoint_options *opts);

/*
 * Wait for the save in flight (if any), release the folder and free m.
 * Returns the background save's error if it failed and was not reported yet.
 * NULL is a no-op.
 */
NNH5_API int nnh5_checkpoint_manager_close(nnh5_checkpoint_manager *m);

/*
 * Save c as the checkpoint of its step (replacing an existing one of the
 * same step), then apply the retention policy and rewrite the index.
 * Synchronous managers return when all that is committed. Asynchronous ones
 * return once c's tensors and metadata are copied into the staging buffer:
 * the caller may then change or free c and what its tensors view.
 * A failure of an earlier background save is returned here (once) instead of
 * starting this save; call again to save.
 * Errors: NNH5_ERR_BUSY (async, NNH5_BUSY_SKIP and a save in flight), the
 * errors of nnh5_checkpoint_save(), NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_manager_save(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c);

/*
 * Wait until no save is in flight. Returns the background save's error if
 * it failed and was not reported yet, else NNH5_OK.
 */
NNH5_API int nnh5_checkpoint_manager_wait(nnh5_checkpoint_manager *m);

/*
 * The newest checkpoint in the folder that loads and verifies (waits for the
 * save in flight first). Damaged or partial files are skipped; if report is
 * not NULL, *report is a new string (free with nnh5_free()) with one line per
 * skipped file and why, or NULL when none was skipped.
 * Errors: NNH5_ERR_NOT_FOUND (no checkpoint loads; the message lists why
 * each was skipped), NNH5_ERR_NOMEM, and a pending background error.
 */
NNH5_API int nnh5_checkpoint_manager_latest(nnh5_checkpoint **out, char **report,
					    nnh5_checkpoint_manager *m);

/*
 * Load the checkpoint of step. Errors: NNH5_ERR_NOT_FOUND, and those of
 * nnh5_checkpoint_load().
 */
NNH5_API int nnh5_checkpoint_manager_load(nnh5_checkpoint **out, nnh5_checkpoint_manager *m,
					  int64_t step);

/*
 * The steps of the checkpoint files in the folder, ascending, in a new array
 * (free with nnh5_free(); NULL when *n is 0). Errors: NNH5_ERR_IO, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_manager_steps(int64_t **out, size_t *n, nnh5_checkpoint_manager *m);

/* Temporary files of interrupted saves removed when the folder was opened. */
NNH5_API size_t nnh5_checkpoint_manager_leftovers_removed(const nnh5_checkpoint_manager *m);

/* ------------------------------------------------------------------ */
/* Reading a checkpoint folder without a manager (tools, monitors)     */

/* The index file a manager rewrites after every save, and its columns. */
#define NNH5_CHECKPOINT_INDEX_FILE "index.h5"
#define NNH5_CHECKPOINT_INDEX_STEPS "steps"   /* int64: the steps kept, ascending */
#define NNH5_CHECKPOINT_INDEX_EPOCHS "epochs" /* int64: their epochs (-1: unknown) */

/*
 * If column is the index's column of a metric ("metrics.<name>", float64,
 * NaN where a checkpoint lacks it), the metric's name (a pointer into
 * column); else NULL.
 */
NNH5_API const char *nnh5_checkpoint_index_metric(const char *column);

/*
 * If name (a file name, no folder) is a checkpoint file of a folder, its
 * step in *step and true; else false. Exactly the names the manager writes:
 * "ckpt-" then the step in decimal, zero-padded to 12 digits (more for
 * larger steps, never with extra zeros), then ".h5".
 */
NNH5_API bool nnh5_checkpoint_file_step(int64_t *step, const char *name);

/*
 * The file name of step's checkpoint into buf (size bytes; 32 always
 * suffice). Errors: NNH5_ERR_INVALID (step < 0), NNH5_ERR_OVERFLOW (buf too small).
 */
NNH5_API int nnh5_checkpoint_file_name(char *buf, size_t size, int64_t step);

/*
 * The steps of the checkpoint files in dir, ascending, in a new array (free
 * with nnh5_free(); NULL when *n is 0). Reads only: no lock, no clean-up, so
 * it is safe beside a running manager (whose retention may remove a listed
 * file at any time). Errors: NNH5_ERR_IO, NNH5_ERR_NOMEM.
 */
NNH5_API int nnh5_checkpoint_folder_steps(int64_t **out, size_t *n, const char *dir);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_CHECKPOINT_H */
