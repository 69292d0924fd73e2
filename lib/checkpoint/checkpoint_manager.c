/*
 * lib/checkpoint/checkpoint_manager.c - a folder of checkpoints: atomic saves,
 * retention, the index, latest(), and saving in a background thread.
 *
 * Files: "ckpt-<12-digit step>.h5" (the checkpoints), "index.h5" (derived:
 * rewritten after every save, never trusted by latest()), ".nnh5-lock" (the
 * flock that keeps a second manager out). What the folder holds is the
 * truth; the manager's list of entries mirrors it.
 *
 * Asynchronous saves: the caller's thread copies the tensors into one
 * staging buffer (reused, grown only when a checkpoint is bigger) and hands
 * the staged copy to a worker thread, which does exactly what a synchronous
 * save does. While a save is in flight the caller's thread touches neither
 * the staging buffer nor the entries: every call first waits for the worker
 * (or, for a save under NNH5_BUSY_SKIP, returns NNH5_ERR_BUSY).
 */
#define _DEFAULT_SOURCE /* flock() */
#include "store/atomic.h"
#include "checkpoint/checkpoint_internal.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "ckpt-"
#define SUFFIX ".h5"
#define STEP_DIGITS 12
#define INDEX_NAME "index.h5"
#define LOCK_NAME ".nnh5-lock"

struct entry {
	int64_t step;
	nnh5_checkpoint *summary; /* step, epoch, metrics; NULL if the file did not load */
};

struct nnh5_checkpoint_manager {
	char *dir;
	int lock_fd;
	nnh5_checkpoint_options opt;
	char *best_metric;
	struct entry *e; /* sorted by step */
	size_t n, cap;
	size_t leftovers;

	/* asynchronous saving */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t worker;
	bool worker_started;
	bool stop;
	nnh5_checkpoint *job; /* staged, waiting or being written; NULL when idle */
	int bg_rc;            /* failure of the last background save, not yet reported */
	char bg_msg[1536];
	unsigned char *arena; /* staging buffer */
	size_t arena_size;
	bool hold; /* tests: the worker waits before writing while set */
};

/* ------------------------------------------------------------------ */
/* Names and the folder                                                */

static int join(char **out, const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = nnh5__malloc(n);

	*out = NULL;
	if (!p)
		return nnh5__nomem();
	snprintf(p, n, "%s/%s", dir, name);
	*out = p;
	return NNH5_OK;
}

static int step_path(char **out, const nnh5_checkpoint_manager *m, int64_t step)
{
	char name[64];

	snprintf(name, sizeof name, PREFIX "%0*lld" SUFFIX, STEP_DIGITS, (long long)step);
	return join(out, m->dir, name);
}

/* Parse "ckpt-000000000120.h5"; false for any other name. */
static bool parse_step(const char *name, int64_t *step)
{
	size_t plen = strlen(PREFIX);
	int64_t v = 0;

	if (strncmp(name, PREFIX, plen) != 0 || strlen(name) != plen + STEP_DIGITS + strlen(SUFFIX) ||
	    strcmp(name + plen + STEP_DIGITS, SUFFIX) != 0)
		return false;
	for (size_t i = 0; i < STEP_DIGITS; i++) {
		char ch = name[plen + i];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (ch - '0');
	}
	*step = v;
	return true;
}

/* A temporary file of an interrupted save of ours: ".ckpt-...h5.nnh5-tmp-*" or ".index.h5...". */
static bool is_leftover(const char *name)
{
	const char *mark = strstr(name, NNH5__TMP_MARK);

	if (!mark || name[0] != '.')
		return false;
	if (strncmp(name + 1, INDEX_NAME, strlen(INDEX_NAME)) == 0 &&
	    name + 1 + strlen(INDEX_NAME) == mark)
		return true;
	size_t len = (size_t)(mark - (name + 1));
	char base[128];
	int64_t step;
	if (len >= sizeof base)
		return false;
	memcpy(base, name + 1, len);
	base[len] = '\0';
	return parse_step(base, &step);
}

static void sync_dir(const nnh5_checkpoint_manager *m)
{
	int fd;

	if (!m->opt.durable)
		return;
	fd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return (x->step > y->step) - (x->step < y->step);
}

/* Read the folder: checkpoint entries (with summaries), remove our leftovers. */
static int scan(nnh5_checkpoint_manager *m, bool clean)
{
	DIR *d = opendir(m->dir);
	struct dirent *de;
	int rc = NNH5_OK;

	if (!d)
		return nnh5__error(NNH5_ERR_IO, "checkpoint folder '%s': %s", m->dir, strerror(errno));
	while (!rc && (errno = 0, de = readdir(d)) != NULL) {
		int64_t step;
		if (clean && is_leftover(de->d_name)) {
			char *p;
			rc = join(&p, m->dir, de->d_name);
			if (!rc && unlink(p) == 0)
				m->leftovers++;
			nnh5__free(p);
			continue;
		}
		if (!parse_step(de->d_name, &step))
			continue;
		if (m->n == m->cap) {
			size_t ncap = m->cap ? m->cap * 2 : 16;
			struct entry *ne = nnh5__realloc(m->e, ncap * sizeof *ne);
			if (!ne) {
				rc = nnh5__nomem();
				break;
			}
			m->e = ne;
			m->cap = ncap;
		}
		m->e[m->n].step = step;
		m->e[m->n].summary = NULL;
		m->n++;
	}
	closedir(d);
	if (rc)
		return rc;
	if (m->n)
		qsort(m->e, m->n, sizeof *m->e, cmp_entry);
	for (size_t i = 0; i < m->n; i++) {
		char *p;
		rc = step_path(&p, m, m->e[i].step);
		if (rc)
			return rc;
		/* A damaged file stays an entry without summary: retention still ages it out. */
		if (nnh5__checkpoint_load_summary(&m->e[i].summary, p) != NNH5_OK)
			nnh5_error_clear();
		nnh5__free(p);
	}
	if (clean && m->leftovers)
		sync_dir(m);
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Retention and the index                                             */

static bool metric_of(const struct entry *e, const char *name, double *v)
{
	if (!e->summary || !name || nnh5_checkpoint_metric(v, e->summary, name) != NNH5_OK) {
		nnh5_error_clear();
		return false;
	}
	return !isnan(*v);
}

struct ranked {
	size_t i;
	int64_t step;
	double v;
	bool max;
};

/* Better metric first; equal metrics: newer step first. */
static int cmp_ranked(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->v != y->v)
		return (x->max ? x->v > y->v : x->v < y->v) ? -1 : 1;
	return (x->step < y->step) - (x->step > y->step);
}

/* Mark in keep[] what the policy keeps; newest is the step just saved. */
static int retention_marks(bool *keep, const nnh5_checkpoint_manager *m, int64_t newest)
{
	const nnh5_checkpoint_options *o = &m->opt;
	struct ranked *r;
	size_t nr = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct entry *e = &m->e[i];
		keep[i] = e->step == newest || o->keep_last == 0 || m->n - i <= o->keep_last ||
			  (o->keep_every > 0 && e->step % o->keep_every == 0);
	}
	if (o->keep_best == 0)
		return NNH5_OK;
	r = nnh5__malloc(m->n * sizeof *r);
	if (!r)
		return nnh5__nomem();
	for (size_t i = 0; i < m->n; i++) {
		double v;
		if (metric_of(&m->e[i], m->best_metric, &v))
			r[nr++] = (struct ranked){ i, m->e[i].step, v, o->best_is_max };
	}
	if (nr)
		qsort(r, nr, sizeof *r, cmp_ranked);
	for (size_t k = 0; k < nr && k < o->keep_best; k++)
		keep[r[k].i] = true;
	nnh5__free(r);
	return NNH5_OK;
}

/*
 * Delete what the policy does not keep. A file that cannot be deleted stays
 * listed, and the next save tries again.
 */
static int apply_retention(nnh5_checkpoint_manager *m, int64_t newest)
{
	bool *keep;
	size_t w = 0;
	bool removed = false;
	int rc;

	if (m->n == 0)
		return NNH5_OK;
	keep = nnh5__malloc(m->n * sizeof *keep);
	if (!keep)
		return nnh5__nomem();
	rc = retention_marks(keep, m, newest);
	for (size_t i = 0; !rc && i < m->n; i++) {
		char *p = NULL;
		if (!keep[i]) {
			rc = step_path(&p, m, m->e[i].step);
			if (!rc && (unlink(p) == 0 || errno == ENOENT)) {
				nnh5_checkpoint_free(m->e[i].summary);
				nnh5__free(p);
				removed = true;
				continue;
			}
			nnh5__free(p);
		}
		m->e[w++] = m->e[i];
	}
	if (!rc)
		m->n = w;
	nnh5__free(keep);
	if (removed)
		sync_dir(m);
	return rc;
}

/* The best entry by the metric (index into m->e), or m->n when none has it. */
static size_t best_entry(const nnh5_checkpoint_manager *m)
{
	size_t best = m->n;
	double bv = 0;

	for (size_t i = 0; m->best_metric && i < m->n; i++) {
		double v;
		if (!metric_of(&m->e[i], m->best_metric, &v))
			continue;
		if (best == m->n || (m->opt.best_is_max ? v >= bv : v <= bv)) {
			best = i;
			bv = v;
		}
	}
	return best;
}

/* The union of the entries' metric names, in first-seen order (borrowed strings). */
static int metric_names(const char ***out, size_t *n, const nnh5_checkpoint_manager *m)
{
	size_t cap = 0, len = 0;
	const char **v = NULL;

	for (size_t i = 0; i < m->n; i++) {
		const nnh5_checkpoint *s = m->e[i].summary;
		for (size_t k = 0; s && k < nnh5_checkpoint_num_metrics(s); k++) {
			const char *name = nnh5_checkpoint_metric_name(s, k);
			bool seen = false;
			for (size_t j = 0; j < len && !seen; j++)
				seen = strcmp(v[j], name) == 0;
			if (seen)
				continue;
			if (len == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				const char **nv = nnh5__realloc(v, ncap * sizeof *nv);
				if (!nv) {
					nnh5__free(v);
					return nnh5__nomem();
				}
				v = nv;
				cap = ncap;
			}
			v[len++] = name;
		}
	}
	*out = v;
	*n = len;
	return NNH5_OK;
}

/* Add a new 1-d column of n elements to d under key; *col points at it. */
static int add_column(void **col, nnh5_dict *d, const char *key, nnh5_dtype dtype, size_t n)
{
	int64_t shape[] = { (int64_t)n };
	nnh5_tensor *t;
	int rc = nnh5_tensor_zeros(&t, dtype, 1, shape);

	if (rc)
		return rc;
	rc = nnh5_dict_set(d, key, t);
	if (rc) {
		nnh5_tensor_free(t);
		return rc;
	}
	*col = nnh5_tensor_mutable_data(t);
	return NNH5_OK;
}

/* The index as a state dict: steps, epochs, kept_forever, metrics.<name>. */
static int index_dict(nnh5_dict **out, const nnh5_checkpoint_manager *m)
{
	const char **names = NULL;
	size_t nnames = 0;
	void *steps = NULL, *epochs = NULL, *forever = NULL;
	nnh5_dict *d;
	int rc;

	*out = NULL;
	rc = nnh5_dict_new(&d);
	if (rc)
		return rc;
	rc = add_column(&steps, d, "steps", NNH5_INT64, m->n);
	if (!rc)
		rc = add_column(&epochs, d, "epochs", NNH5_INT64, m->n);
	if (!rc)
		rc = add_column(&forever, d, "kept_forever", NNH5_BOOL, m->n);
	for (size_t i = 0; !rc && i < m->n; i++) {
		const nnh5_checkpoint *s = m->e[i].summary;
		((int64_t *)steps)[i] = m->e[i].step;
		((int64_t *)epochs)[i] = s ? nnh5_checkpoint_epoch(s) : -1;
		((uint8_t *)forever)[i] = m->opt.keep_every > 0 && m->e[i].step % m->opt.keep_every == 0;
	}
	if (!rc)
		rc = metric_names(&names, &nnames, m);
	for (size_t k = 0; !rc && k < nnames; k++) {
		void *col;
		char key[512];
		if (strchr(names[k], '/') || strlen(names[k]) >= sizeof key - 8)
			continue; /* not a dataset name: only in the checkpoint files */
		snprintf(key, sizeof key, "metrics.%s", names[k]);
		rc = add_column(&col, d, key, NNH5_FLOAT64, m->n);
		for (size_t i = 0; !rc && i < m->n; i++) {
			double v;
			if (!m->e[i].summary ||
			    nnh5_checkpoint_metric(&v, m->e[i].summary, names[k]) != NNH5_OK) {
				v = (double)NAN;
				nnh5_error_clear(); /* a missing metric is a NaN, not an error */
			}
			((double *)col)[i] = v;
		}
	}
	nnh5__free(names);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

static int write_index_attrs(nnh5_file *f, const nnh5_checkpoint_manager *m)
{
	size_t best = best_entry(m);
	int rc = NNH5_OK;

	if (m->n)
		rc = nnh5_file_set_attr_int(f, "/", "latest_step", m->e[m->n - 1].step);
	if (!rc && m->best_metric)
		rc = nnh5_file_set_attr_string(f, "/", "best_metric", m->best_metric);
	if (!rc && m->best_metric)
		rc = nnh5_file_set_attr_string(f, "/", "best_mode", m->opt.best_is_max ? "max" : "min");
	if (!rc && best < m->n)
		rc = nnh5_file_set_attr_int(f, "/", "best_step", m->e[best].step);
	if (!rc)
		rc = nnh5_file_set_attr_int(f, "/", "keep_last", m->opt.keep_last);
	if (!rc)
		rc = nnh5_file_set_attr_int(f, "/", "keep_best", m->opt.keep_best);
	if (!rc)
		rc = nnh5_file_set_attr_int(f, "/", "keep_every", m->opt.keep_every);
	if (!rc)
		rc = nnh5_file_set_attr_string(f, "/", "file_pattern", PREFIX "<step, 12 digits>" SUFFIX);
	return rc;
}

/* Rewrite index.h5 from the entries (atomically, like every save). */
static int write_index(const nnh5_checkpoint_manager *m)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_dict *d;
	nnh5_file *f;
	char *path;
	int rc;

	rc = index_dict(&d, m);
	if (rc)
		return rc;
	rc = join(&path, m->dir, INDEX_NAME);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	o.durable = m->opt.durable;
	rc = nnh5_file_open_ext(&f, path, NNH5_CREATE, &o);
	if (!rc) {
		rc = nnh5_file_write_state_dict(f, "/", d);
		if (!rc)
			rc = write_index_attrs(f, m);
		if (rc)
			nnh5_file_discard(f);
		else
			rc = nnh5_file_close(f);
	}
	nnh5__free(path);
	nnh5_dict_free(d);
	return rc;
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
		struct entry *ne = nnh5__realloc(m->e, ncap * sizeof *ne);
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

static int save_now(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	long long step = (long long)nnh5_checkpoint_step(c);
	nnh5_checkpoint *summary;
	char *path;
	int rc;

	rc = nnh5__checkpoint_summary(&summary, c);
	if (rc)
		return rc;
	rc = step_path(&path, m, nnh5_checkpoint_step(c));
	if (!rc)
		rc = nnh5__checkpoint_save_ext(path, c, m->opt.durable);
	nnh5__free(path);
	if (!rc)
		rc = record(m, summary);
	if (rc) {
		nnh5_checkpoint_free(summary);
		return rc;
	}
	/* Committed: what follows cannot undo the checkpoint, and says so if it fails. */
	rc = apply_retention(m, nnh5_checkpoint_step(c));
	if (!rc)
		rc = write_index(m);
	if (rc)
		return nnh5__error_wrap(rc, "checkpoint step %lld was committed, but retention or "
					    "the index failed",
					step);
	return NNH5_OK;
}

static void *worker_main(void *arg)
{
	nnh5_checkpoint_manager *m = arg;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		while ((!m->job || m->hold) && !m->stop)
			pthread_cond_wait(&m->cv, &m->mu);
		if (!m->job)
			break;
		nnh5_checkpoint *job = m->job;
		pthread_mutex_unlock(&m->mu);
		int rc = save_now(m, job);
		char msg[sizeof m->bg_msg];
		msg[0] = '\0';
		if (rc)
			snprintf(msg, sizeof msg, "%s", nnh5_error_message());
		pthread_mutex_lock(&m->mu);
		nnh5_checkpoint_free(job);
		m->job = NULL;
		if (rc) {
			m->bg_rc = rc;
			memcpy(m->bg_msg, msg, sizeof msg);
		}
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* Wait (mu held) until the worker is idle; report once a failure it had. */
static int idle_locked(nnh5_checkpoint_manager *m)
{
	int rc;

	while (m->job)
		pthread_cond_wait(&m->cv, &m->mu);
	rc = m->bg_rc;
	if (rc) {
		m->bg_rc = NNH5_OK;
		nnh5__error(rc, "background save failed: %s", m->bg_msg);
	}
	return rc;
}

static int wait_idle(nnh5_checkpoint_manager *m)
{
	int rc;

	if (!m->worker_started)
		return NNH5_OK;
	pthread_mutex_lock(&m->mu);
	rc = idle_locked(m);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int save_async(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	nnh5_checkpoint *staged;
	size_t need;
	int rc;

	pthread_mutex_lock(&m->mu);
	if (m->job && m->opt.busy == NNH5_BUSY_SKIP) {
		long long busy_step = (long long)nnh5_checkpoint_step(m->job);
		pthread_mutex_unlock(&m->mu);
		return nnh5__error(NNH5_ERR_BUSY,
				   "checkpoint step %lld skipped: step %lld is still being saved",
				   (long long)nnh5_checkpoint_step(c), busy_step);
	}
	rc = idle_locked(m);
	pthread_mutex_unlock(&m->mu);
	if (rc)
		return rc;
	/* The worker is idle: the staging buffer is ours until the job is handed over. */
	rc = nnh5__checkpoint_bytes(&need, c);
	if (rc)
		return rc;
	if (need > m->arena_size) {
		nnh5__free(m->arena);
		m->arena_size = 0;
		m->arena = nnh5__malloc(need);
		if (!m->arena)
			return nnh5__nomem();
		m->arena_size = need;
	}
	rc = nnh5__checkpoint_stage(&staged, c, m->arena, m->arena_size);
	if (rc)
		return rc;
	pthread_mutex_lock(&m->mu);
	m->job = staged;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
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
	if (m->lock_fd >= 0)
		close(m->lock_fd); /* releases the flock */
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
	return NNH5_OK;
}

static int lock_folder(nnh5_checkpoint_manager *m)
{
	char *p;
	int rc = join(&p, m->dir, LOCK_NAME);

	if (rc)
		return rc;
	m->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->lock_fd < 0)
		rc = nnh5__error(NNH5_ERR_IO, "checkpoint folder '%s': cannot create '%s': %s",
				 m->dir, LOCK_NAME, strerror(errno));
	else if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0)
		rc = nnh5__error(errno == EWOULDBLOCK ? NNH5_ERR_BUSY : NNH5_ERR_IO,
				 "checkpoint folder '%s' is in use by another checkpoint manager "
				 "(lock '%s': %s)",
				 m->dir, LOCK_NAME, strerror(errno));
	nnh5__free(p);
	return rc;
}

static int start_worker(nnh5_checkpoint_manager *m)
{
	if (pthread_mutex_init(&m->mu, NULL) != 0)
		return nnh5__error(NNH5_ERR_NOMEM, "checkpoint folder '%s': cannot create a mutex",
				   m->dir);
	if (pthread_cond_init(&m->cv, NULL) != 0) {
		pthread_mutex_destroy(&m->mu);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot create a condition variable", m->dir);
	}
	if (pthread_create(&m->worker, NULL, worker_main, m) != 0) {
		pthread_cond_destroy(&m->cv);
		pthread_mutex_destroy(&m->mu);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot start the saving thread", m->dir);
	}
	m->worker_started = true;
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
	rc = lock_folder(m);
	if (!rc)
		rc = scan(m, true);
	if (!rc && m->opt.async)
		rc = start_worker(m);
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
	rc = wait_idle(m);
	if (m->worker_started) {
		pthread_mutex_lock(&m->mu);
		m->stop = true;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->worker, NULL);
		pthread_cond_destroy(&m->cv);
		pthread_mutex_destroy(&m->mu);
	}
	manager_free(m);
	return rc;
}

int nnh5_checkpoint_manager_save(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	if (!m || !c)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint save: %s is NULL",
				   m ? "checkpoint" : "manager");
	return m->worker_started ? save_async(m, c) : save_now(m, c);
}

int nnh5_checkpoint_manager_wait(nnh5_checkpoint_manager *m)
{
	return m ? wait_idle(m) : NNH5_OK;
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
	rc = wait_idle(m);
	if (!rc)
		rc = rescan(m);
	for (size_t i = m->n; !rc && i-- > 0;) {
		char *p;
		rc = step_path(&p, m, m->e[i].step);
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
	rc = wait_idle(m);
	if (rc)
		return rc;
	if (step < 0)
		return nnh5__error(NNH5_ERR_NOT_FOUND, "checkpoint folder '%s': no step %lld", m->dir,
				   (long long)step);
	rc = step_path(&p, m, step);
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
	rc = wait_idle(m);
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

void nnh5__checkpoint_manager_hold(nnh5_checkpoint_manager *m, bool hold)
{
	if (!m->worker_started)
		return;
	pthread_mutex_lock(&m->mu);
	m->hold = hold;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

size_t nnh5_checkpoint_manager_leftovers_removed(const nnh5_checkpoint_manager *m)
{
	return m->leftovers;
}
