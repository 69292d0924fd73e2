/*
 * lib/checkpoint/checkpoint_manager.c - a folder of checkpoints: the public
 * API (open, save, latest, load, steps, close), reading the folder into the
 * entries, and a synchronous save (save, record, retention, index).
 *
 * Files: "ckpt-<step>.h5" (the checkpoints, folder.c), "index.h5" (derived:
 * rewritten after every save, never trusted by latest(), index.c),
 * ".nnh5-lock" (the flock that keeps a second manager out, lock.c). What
 * the folder holds is the truth; the manager's list of entries mirrors it.
 * Retention is in retention.c, background saves in worker.c.
 */
#include "checkpoint/checkpoint_internal.h"
#include "checkpoint/manager_internal.h"
#include "nnh5/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Reading the folder                                                  */

/* Read the folder into the entries (with summaries); clean: remove our leftovers. */
static int scan(nnh5_checkpoint_manager *m, bool clean)
{
	int64_t *steps;
	size_t n, removed = 0;
	int rc = nnh5__ckpt_list(&steps, &n, m->dir, clean ? &removed : NULL);

	if (rc)
		return rc;
	m->leftovers += removed;
	if (n > m->cap) {
		struct nnh5__ckpt_entry *ne = nnh5__realloc(m->e, n * sizeof *ne);
		if (!ne) {
			nnh5__free(steps);
			return nnh5__nomem();
		}
		m->e = ne;
		m->cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		m->e[i].step = steps[i];
		m->e[i].summary = NULL;
	}
	m->n = n;
	nnh5__free(steps);
	for (size_t i = 0; i < m->n; i++) {
		char *p;
		rc = nnh5__ckpt_step_path(&p, m->dir, m->e[i].step);
		if (rc)
			return rc;
		/* A damaged file stays an entry without summary: retention still ages it out. */
		if (nnh5__checkpoint_load_summary(&m->e[i].summary, p) != NNH5_OK)
			nnh5_error_clear();
		nnh5__free(p);
	}
	if (removed)
		nnh5__ckpt_sync_dir(m);
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Saving (in the caller's thread or the worker)                       */

/* Insert or replace the entry of summary's step, keeping the order. */
static int record(nnh5_checkpoint_manager *m, nnh5_checkpoint *summary)
{
	int64_t step = nnh5_checkpoint_step(summary);
	size_t i = 0;

	while (i < m->n && m->e[i].step < step)
		i++;
	if (i < m->n && m->e[i].step == step) {
		nnh5_checkpoint_free(m->e[i].summary);
		m->e[i].summary = summary;
		return NNH5_OK;
	}
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 16;
		struct nnh5__ckpt_entry *ne = nnh5__realloc(m->e, ncap * sizeof *ne);
		if (!ne)
			return nnh5__nomem();
		m->e = ne;
		m->cap = ncap;
	}
	memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
	m->e[i].step = step;
	m->e[i].summary = summary;
	m->n++;
	return NNH5_OK;
}

int nnh5__ckpt_save_now(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	nnh5_checkpoint *summary;
	char *path;
	int rc;

	rc = nnh5__checkpoint_summary(&summary, c);
	if (rc)
		return rc;
	rc = nnh5__ckpt_step_path(&path, m->dir, nnh5_checkpoint_step(c));
	if (!rc)
		rc = nnh5__checkpoint_save_ext(path, c, m->opt.durable, m->opt.compression);
	nnh5__free(path);
	if (rc) {
		nnh5_checkpoint_free(summary);
		return rc;
	}
	return nnh5__ckpt_committed(m, summary);
}

int nnh5__ckpt_committed(nnh5_checkpoint_manager *m, nnh5_checkpoint *summary)
{
	long long step = (long long)nnh5_checkpoint_step(summary);
	int rc = record(m, summary);

	if (rc) {
		nnh5_checkpoint_free(summary);
		return rc;
	}
	/* Committed: what follows cannot undo the checkpoint, and says so if it fails. */
	rc = nnh5__ckpt_apply_retention(m, (int64_t)step);
	if (!rc)
		rc = nnh5__ckpt_write_index(m);
	if (rc)
		return nnh5__error_wrap(rc, "checkpoint step %lld was committed, but retention or "
					    "the index failed",
					step);
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* The public API                                                      */

static void manager_free(nnh5_checkpoint_manager *m)
{
	for (size_t i = 0; i < m->n; i++)
		nnh5_checkpoint_free(m->e[i].summary);
	nnh5__free(m->e);
	nnh5__free(m->arena);
	nnh5__free(m->best_metric);
	nnh5__ckpt_unlock(m);
	nnh5__free(m->dir);
	nnh5__free(m);
}

static int check_options(const nnh5_checkpoint_options *o, const char *dir)
{
	if (o->version != NNH5_CHECKPOINT_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID,
				   "checkpoint folder '%s': unknown options version %u", dir,
				   o->version);
	if (o->keep_best > 0 && (!o->best_metric || !*o->best_metric))
		return nnh5__error(NNH5_ERR_INVALID,
				   "checkpoint folder '%s': keep_best = %u needs best_metric", dir,
				   o->keep_best);
	if (o->keep_every < 0)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint folder '%s': keep_every < 0", dir);
	if (o->busy != NNH5_BUSY_WAIT && o->busy != NNH5_BUSY_SKIP)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint folder '%s': unknown busy policy %d",
				   dir, (int)o->busy);
	if (o->compression < NNH5_COMPRESSION_NONE || o->compression > NNH5_COMPRESSION_ARCHIVE)
		return nnh5__error(NNH5_ERR_INVALID,
				   "checkpoint folder '%s': unknown compression profile %d", dir,
				   o->compression);
	return NNH5_OK;
}

int nnh5_checkpoint_manager_open(nnh5_checkpoint_manager **out, const char *dir,
				 const nnh5_checkpoint_options *opts)
{
	nnh5_checkpoint_options defaults = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	struct stat st;
	int rc;

	*out = NULL;
	if (!dir || !*dir)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint folder: empty path");
	if (!opts)
		opts = &defaults;
	rc = check_options(opts, dir);
	if (rc)
		return rc;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return nnh5__error(NNH5_ERR_IO, "checkpoint folder '%s': cannot create: %s", dir,
				   strerror(errno));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return nnh5__error(NNH5_ERR_IO, "checkpoint folder '%s': not a folder", dir);
	m = nnh5__calloc(1, sizeof *m);
	if (!m)
		return nnh5__nomem();
	m->lock_fd = -1;
	m->opt = *opts;
	m->dir = nnh5__strdup(dir);
	if (opts->best_metric)
		m->best_metric = nnh5__strdup(opts->best_metric);
	m->opt.best_metric = m->best_metric;
	if (!m->dir || (opts->best_metric && !m->best_metric)) {
		manager_free(m);
		return nnh5__nomem();
	}
	rc = nnh5__ckpt_lock(m);
	if (!rc)
		rc = scan(m, true);
	if (!rc && m->opt.async)
		rc = nnh5__ckpt_start_worker(m);
	if (rc) {
		manager_free(m);
		return rc;
	}
	*out = m;
	return NNH5_OK;
}

int nnh5_checkpoint_manager_close(nnh5_checkpoint_manager *m)
{
	int rc;

	if (!m)
		return NNH5_OK;
	nnh5__checkpoint_manager_hold(m, false);
	rc = nnh5__ckpt_wait_idle(m);
	nnh5__ckpt_stop_worker(m);
	manager_free(m);
	return rc;
}

int nnh5_checkpoint_manager_save(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	if (!m || !c)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint save: %s is NULL",
				   m ? "checkpoint" : "manager");
	return m->bg.started ? nnh5__ckpt_save_async(m, c) : nnh5__ckpt_save_now(m, c);
}

int nnh5_checkpoint_manager_wait(nnh5_checkpoint_manager *m)
{
	return m ? nnh5__ckpt_wait_idle(m) : NNH5_OK;
}

/* Forget the entries and read the folder again (files may have been damaged or removed). */
static int rescan(nnh5_checkpoint_manager *m)
{
	for (size_t i = 0; i < m->n; i++)
		nnh5_checkpoint_free(m->e[i].summary);
	m->n = 0;
	return scan(m, false);
}

int nnh5_checkpoint_manager_latest(nnh5_checkpoint **out, char **report,
				   nnh5_checkpoint_manager *m)
{
	nnh5__strbuf why = { 0 };
	int rc;

	*out = NULL;
	if (report)
		*report = NULL;
	rc = nnh5__ckpt_wait_idle(m);
	if (!rc)
		rc = rescan(m);
	for (size_t i = m->n; !rc && i-- > 0;) {
		char *p;
		rc = nnh5__ckpt_step_path(&p, m->dir, m->e[i].step);
		if (rc)
			break;
		rc = nnh5_checkpoint_load(out, p);
		nnh5__free(p);
		if (rc == NNH5_OK || rc == NNH5_ERR_NOMEM)
			break;
		nnh5__strbuf_printf(&why, "%sstep %lld skipped: %s", why.len ? "\n" : "",
				    (long long)m->e[i].step, nnh5_error_message());
		rc = NNH5_OK;
	}
	if (!rc && !*out)
		rc = nnh5__error(NNH5_ERR_NOT_FOUND, "checkpoint folder '%s': no checkpoint loads%s%s",
				 m->dir, why.len ? ": " : "", why.len ? why.p : "");
	if (!rc && why.oom) {
		nnh5_checkpoint_free(*out);
		*out = NULL;
		rc = nnh5__nomem();
	}
	if (!rc && report && why.len) {
		*report = why.p;
		why.p = NULL;
	}
	nnh5__free(why.p);
	return rc;
}

int nnh5_checkpoint_manager_load(nnh5_checkpoint **out, nnh5_checkpoint_manager *m, int64_t step)
{
	char *p;
	int rc;

	*out = NULL;
	rc = nnh5__ckpt_wait_idle(m);
	if (rc)
		return rc;
	if (step < 0)
		return nnh5__error(NNH5_ERR_NOT_FOUND, "checkpoint folder '%s': no step %lld", m->dir,
				   (long long)step);
	rc = nnh5__ckpt_step_path(&p, m->dir, step);
	if (rc)
		return rc;
	rc = nnh5_checkpoint_load(out, p);
	nnh5__free(p);
	return rc;
}

int nnh5_checkpoint_manager_steps(int64_t **out, size_t *n, nnh5_checkpoint_manager *m)
{
	int64_t *v = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = nnh5__ckpt_wait_idle(m);
	if (!rc)
		rc = rescan(m);
	if (rc)
		return rc;
	if (m->n) {
		v = nnh5__malloc(m->n * sizeof *v);
		if (!v)
			return nnh5__nomem();
		for (size_t i = 0; i < m->n; i++)
			v[i] = m->e[i].step;
	}
	*out = v;
	*n = m->n;
	return NNH5_OK;
}

size_t nnh5_checkpoint_manager_leftovers_removed(const nnh5_checkpoint_manager *m)
{
	return m->leftovers;
}
