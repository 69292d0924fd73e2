/*
 * lib/checkpoint/index.c - the index file of a checkpoint folder
 * (index.h5): a state dict of columns, one row per kept step (steps,
 * epochs, kept_forever, metrics.<name>), and attributes naming the latest
 * and best steps and the retention policy. It is derived: rewritten after
 * every save, read by nnh5 ls and h5py, never trusted by latest().
 */
#include "checkpoint/manager_internal.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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
	rc = add_column(&steps, d, NNH5_CHECKPOINT_INDEX_STEPS, NNH5_INT64, m->n);
	if (!rc)
		rc = add_column(&epochs, d, NNH5_CHECKPOINT_INDEX_EPOCHS, NNH5_INT64, m->n);
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
		snprintf(key, sizeof key, NNH5__CKPT_METRIC_PREFIX "%s", names[k]);
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
	size_t best = nnh5__ckpt_best_entry(m);
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
		rc = nnh5_file_set_attr_string(f, "/", "file_pattern", "ckpt-<step, at least 12 digits>.h5");
	return rc;
}

/* Rewrite index.h5 from the entries (atomically, like every save). */
int nnh5__ckpt_write_index(const nnh5_checkpoint_manager *m)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_dict *d;
	nnh5_file *f;
	char *path;
	int rc;

	rc = index_dict(&d, m);
	if (rc)
		return rc;
	rc = nnh5__ckpt_join(&path, m->dir, NNH5_CHECKPOINT_INDEX_FILE);
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

