/*
 * lib/checkpoint/retention.c - what a checkpoint folder keeps after a save:
 * the newest keep_last steps, the best keep_best by a metric, every
 * keep_every-th step for ever, and always the step just saved. Old files are
 * deleted only after the new one is committed (the caller's order).
 */
#include "checkpoint/manager_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool metric_of(const struct nnh5__ckpt_entry *e, const char *name, double *v)
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
		const struct nnh5__ckpt_entry *e = &m->e[i];
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
int nnh5__ckpt_apply_retention(nnh5_checkpoint_manager *m, int64_t newest)
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
			rc = nnh5__ckpt_step_path(&p, m->dir, m->e[i].step);
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
		nnh5__ckpt_sync_dir(m);
	return rc;
}

/* The best entry by the metric (index into m->e), or m->n when none has it. */
size_t nnh5__ckpt_best_entry(const nnh5_checkpoint_manager *m)
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

