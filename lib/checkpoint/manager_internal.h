/*
 * lib/checkpoint/manager_internal.h - the checkpoint folder manager's state,
 * shared by its files (and by nothing else):
 *   folder.c      names of the files in a folder, and reading the folder;
 *   lock.c        the folder lock (and why a forked child does not hold it);
 *   retention.c   what retention keeps, the best checkpoint by a metric;
 *   index.c       the index file (index.h5), derived from the entries;
 *   worker.c      saving in a background thread (background.c runs it);
 *   checkpoint_manager.c  the public API: open, save, latest, close.
 *
 * What the folder holds is the truth; the entries mirror it. While a save
 * is in flight only the worker touches the entries and the staging buffer:
 * every other call first waits for it (nnh5__ckpt_wait_idle()).
 */
#ifndef NNH5_CHECKPOINT_MANAGER_INTERNAL_H
#define NNH5_CHECKPOINT_MANAGER_INTERNAL_H

#include "checkpoint/background.h"
#include "core/internal.h"
#include "nnh5/checkpoint.h"

#define NNH5__CKPT_LOCK_NAME ".nnh5-lock"
/* Index columns of metrics: "metrics.<name>" (nnh5_checkpoint_index_metric()). */
#define NNH5__CKPT_METRIC_PREFIX "metrics."

struct nnh5__ckpt_entry {
	int64_t step;
	nnh5_checkpoint *summary; /* step, epoch, metrics; NULL if the file did not load */
};

struct nnh5_checkpoint_manager {
	char *dir;
	int lock_fd;
	nnh5_checkpoint_options opt;
	char *best_metric;
	struct nnh5__ckpt_entry *e; /* sorted by step */
	size_t n, cap;
	size_t leftovers;

	/* asynchronous saving (worker.c): jobs are nnh5_checkpoint, staged */
	nnh5__background bg;
	unsigned char *arena; /* staging buffer */
	size_t arena_size;
};

/* folder.c */

/* dir + "/" + name, newly allocated. Errors: NNH5_ERR_NOMEM. */
int nnh5__ckpt_join(char **out, const char *dir, const char *name);

/* The path of step's checkpoint in dir, newly allocated. Errors: NNH5_ERR_NOMEM. */
int nnh5__ckpt_step_path(char **out, const char *dir, int64_t step);

/*
 * The steps of the checkpoint files in dir, ascending (NULL when *n is 0).
 * With removed not NULL, temporary files of interrupted saves of a manager
 * are deleted on the way and counted there.
 * Errors: NNH5_ERR_IO, NNH5_ERR_NOMEM.
 */
int nnh5__ckpt_list(int64_t **out, size_t *n, const char *dir, size_t *removed);

/* fsync the folder when the manager is durable (after files were removed). */
void nnh5__ckpt_sync_dir(const nnh5_checkpoint_manager *m);

/* lock.c */

/* Take the folder's lock (m->lock_fd). Errors: NNH5_ERR_BUSY, NNH5_ERR_IO, NNH5_ERR_NOMEM. */
int nnh5__ckpt_lock(nnh5_checkpoint_manager *m);

/* Release it (closes m->lock_fd). */
void nnh5__ckpt_unlock(nnh5_checkpoint_manager *m);

/* retention.c */

/* Delete what the policy does not keep; newest is the step just saved. Errors: NNH5_ERR_NOMEM. */
int nnh5__ckpt_apply_retention(nnh5_checkpoint_manager *m, int64_t newest);

/* The best entry by the metric (index into m->e), or m->n when none has it. */
size_t nnh5__ckpt_best_entry(const nnh5_checkpoint_manager *m);

/* index.c */

/* Rewrite index.h5 from the entries (atomically, like every save). */
int nnh5__ckpt_write_index(const nnh5_checkpoint_manager *m);

/* worker.c */

/* Start the background thread. Errors: NNH5_ERR_NOMEM. */
int nnh5__ckpt_start_worker(nnh5_checkpoint_manager *m);

/* Wait for the save in flight, stop the thread. */
void nnh5__ckpt_stop_worker(nnh5_checkpoint_manager *m);

/* Wait until no save is in flight; report once a failure the worker had. */
int nnh5__ckpt_wait_idle(nnh5_checkpoint_manager *m);

/* Stage c and hand it to the worker (or refuse under NNH5_BUSY_SKIP). */
int nnh5__ckpt_save_async(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c);

/* checkpoint_manager.c: save c, apply retention, rewrite the index (the worker calls it). */
int nnh5__ckpt_save_now(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c);

/*
 * The checkpoint of summary's step was just committed to its file (by
 * nnh5__ckpt_save_now(), or by the ranks of a collective save, lib/mpi):
 * record it (summary is taken, freed on failure), apply retention, rewrite
 * the index.
 */
int nnh5__ckpt_committed(nnh5_checkpoint_manager *m, nnh5_checkpoint *summary);

#endif /* NNH5_CHECKPOINT_MANAGER_INTERNAL_H */
