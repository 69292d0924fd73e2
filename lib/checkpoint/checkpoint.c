/*
 * lib/checkpoint/checkpoint.c - a checkpoint's contents and its file (doc/FORMAT.md,
 * "Checkpoints"): named state dicts, step and epoch, metrics, generator
 * states, extra tensors and string metadata.
 */
#include "checkpoint/checkpoint_internal.h"
#include "file/file_internal.h"
#include "file/walk.h"
#include "nnh5/dict.h"
#include "nnh5/rng.h"
#include "nnh5/file.h"
#include "nnh5/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct section {
	char *name;
	nnh5_dict *sd;
};

struct metric {
	char *name;
	double value;
};

struct meta {
	char *name;
	char *value;
};

struct nnh5_checkpoint {
	int64_t step, epoch;
	struct section *sec;
	size_t nsec, capsec;
	struct metric *met;
	size_t nmet, capmet;
	struct meta *meta;
	size_t nmeta, capmeta;
};

#define RNG_WORDS 6

/* Make room for one more element in a growable array. */
static int grow(void **p, size_t *cap, size_t len, size_t size)
{
	size_t ncap;
	void *np;

	if (len < *cap)
		return NNH5_OK;
	ncap = *cap ? *cap * 2 : 4;
	np = nnh5__realloc(*p, ncap * size);
	if (!np)
		return nnh5__nomem();
	*p = np;
	*cap = ncap;
	return NNH5_OK;
}

int nnh5_checkpoint_new(nnh5_checkpoint **out, int64_t step)
{
	nnh5_checkpoint *c;

	*out = NULL;
	if (step < 0)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: step %lld is negative",
				   (long long)step);
	c = nnh5__calloc(1, sizeof *c);
	if (!c)
		return nnh5__nomem();
	c->step = step;
	*out = c;
	return NNH5_OK;
}

void nnh5_checkpoint_free(nnh5_checkpoint *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nsec; i++) {
		nnh5__free(c->sec[i].name);
		nnh5_dict_free(c->sec[i].sd);
	}
	for (size_t i = 0; i < c->nmet; i++)
		nnh5__free(c->met[i].name);
	for (size_t i = 0; i < c->nmeta; i++) {
		nnh5__free(c->meta[i].name);
		nnh5__free(c->meta[i].value);
	}
	nnh5__free(c->sec);
	nnh5__free(c->met);
	nnh5__free(c->meta);
	nnh5__free(c);
}

int64_t nnh5_checkpoint_step(const nnh5_checkpoint *c)
{
	return c->step;
}

int64_t nnh5_checkpoint_epoch(const nnh5_checkpoint *c)
{
	return c->epoch;
}

int nnh5_checkpoint_set_epoch(nnh5_checkpoint *c, int64_t epoch)
{
	if (epoch < 0)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: epoch %lld is negative",
				   (long long)epoch);
	c->epoch = epoch;
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */

static bool valid_section_name(const char *name)
{
	if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strcmp(name, "metrics") == 0 ||
	    strncmp(name, "nnh5_", 5) == 0 || !nnh5__utf8_valid(name))
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static struct section *find_section(const nnh5_checkpoint *c, const char *name)
{
	for (size_t i = 0; i < c->nsec; i++)
		if (strcmp(c->sec[i].name, name) == 0)
			return &c->sec[i];
	return NULL;
}

int nnh5_checkpoint_set_state(nnh5_checkpoint *c, const char *section, nnh5_dict *sd)
{
	struct section *s;
	char *name;
	int rc;

	if (!valid_section_name(section))
		return nnh5__error(NNH5_ERR_INVALID,
				   "checkpoint: section name '%s' is not allowed (one path component "
				   "of printable UTF-8, not 'metrics', not starting with 'nnh5_')",
				   section ? section : "(null)");
	if (!sd)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: section '%s': state dict is NULL",
				   section);
	s = find_section(c, section);
	if (s) {
		if (s->sd != sd)
			nnh5_dict_free(s->sd);
		s->sd = sd;
		return NNH5_OK;
	}
	rc = grow((void **)&c->sec, &c->capsec, c->nsec, sizeof *c->sec);
	if (rc)
		return rc;
	name = nnh5__strdup(section);
	if (!name)
		return nnh5__nomem();
	c->sec[c->nsec].name = name;
	c->sec[c->nsec].sd = sd;
	c->nsec++;
	return NNH5_OK;
}

const nnh5_dict *nnh5_checkpoint_state(const nnh5_checkpoint *c, const char *section)
{
	const struct section *s = section ? find_section(c, section) : NULL;
	return s ? s->sd : NULL;
}

size_t nnh5_checkpoint_num_states(const nnh5_checkpoint *c)
{
	return c->nsec;
}

const char *nnh5_checkpoint_state_name(const nnh5_checkpoint *c, size_t i)
{
	return i < c->nsec ? c->sec[i].name : NULL;
}

/* The section name, created empty if missing (borrowed). */
static int section_dict(nnh5_dict **out, nnh5_checkpoint *c, const char *name)
{
	struct section *s = find_section(c, name);
	nnh5_dict *d;
	int rc;

	if (s) {
		*out = s->sd;
		return NNH5_OK;
	}
	rc = nnh5_dict_new(&d);
	if (rc)
		return rc;
	rc = nnh5_checkpoint_set_state(c, name, d);
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

int nnh5_checkpoint_set_tensor(nnh5_checkpoint *c, const char *name, nnh5_tensor *t)
{
	nnh5_dict *d;
	int rc;

	if (!name || !*name || !t)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: extra tensor: %s",
				   t ? "empty name" : "tensor is NULL");
	rc = section_dict(&d, c, "extra");
	return rc ? rc : nnh5_dict_set(d, name, t);
}

const nnh5_tensor *nnh5_checkpoint_tensor(const nnh5_checkpoint *c, const char *name)
{
	const nnh5_dict *d = nnh5_checkpoint_state(c, "extra");
	return d && name ? nnh5_dict_get(d, name) : NULL;
}

int nnh5_checkpoint_set_rng(nnh5_checkpoint *c, const char *name, const nnh5_rng *rng)
{
	int64_t shape[] = { RNG_WORDS };
	nnh5_tensor *t;
	nnh5_dict *d;
	uint64_t *w;
	int rc;

	if (!name || !*name || !rng)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: generator state: %s",
				   rng ? "empty name" : "state is NULL");
	rc = section_dict(&d, c, "rng");
	if (rc)
		return rc;
	rc = nnh5_tensor_new(&t, NNH5_UINT64, 1, shape);
	if (rc)
		return rc;
	w = nnh5_tensor_mutable_data(t);
	memcpy(w, rng->s, sizeof rng->s);
	memcpy(&w[4], &rng->spare, sizeof w[4]);
	w[5] = rng->has_spare;
	rc = nnh5_dict_set(d, name, t);
	if (rc)
		nnh5_tensor_free(t);
	return rc;
}

int nnh5_checkpoint_get_rng(nnh5_rng *out, const nnh5_checkpoint *c, const char *name)
{
	const nnh5_dict *d = nnh5_checkpoint_state(c, "rng");
	const nnh5_tensor *t = d && name ? nnh5_dict_get(d, name) : NULL;
	const uint64_t *w;

	if (!t)
		return nnh5__error(NNH5_ERR_NOT_FOUND, "checkpoint step %lld: no generator state '%s'",
				   (long long)c->step, name ? name : "(null)");
	if (nnh5_tensor_dtype(t) != NNH5_UINT64 || nnh5_tensor_ndim(t) != 1 ||
	    nnh5_tensor_numel(t) != RNG_WORDS)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "checkpoint step %lld: generator state '%s' is not %d uint64 words",
				   (long long)c->step, name, RNG_WORDS);
	w = nnh5_tensor_data(t);
	if ((w[0] | w[1] | w[2] | w[3]) == 0 || w[5] > 1)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "checkpoint step %lld: generator state '%s' is invalid", (long long)c->step,
				   name);
	memcpy(out->s, w, sizeof out->s);
	memcpy(&out->spare, &w[4], sizeof out->spare);
	out->has_spare = w[5];
	return NNH5_OK;
}

/* ------------------------------------------------------------------ */
/* Metrics and metadata                                                */

static bool valid_attr_name(const char *name)
{
	return name && *name && nnh5__utf8_valid(name);
}

int nnh5_checkpoint_set_metric(nnh5_checkpoint *c, const char *name, double value)
{
	char *copy;
	int rc;

	if (!valid_attr_name(name))
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: metric name is %s",
				   name ? "empty or not UTF-8" : "NULL");
	for (size_t i = 0; i < c->nmet; i++)
		if (strcmp(c->met[i].name, name) == 0) {
			c->met[i].value = value;
			return NNH5_OK;
		}
	rc = grow((void **)&c->met, &c->capmet, c->nmet, sizeof *c->met);
	if (rc)
		return rc;
	copy = nnh5__strdup(name);
	if (!copy)
		return nnh5__nomem();
	c->met[c->nmet].name = copy;
	c->met[c->nmet].value = value;
	c->nmet++;
	return NNH5_OK;
}

int nnh5_checkpoint_metric(double *out, const nnh5_checkpoint *c, const char *name)
{
	for (size_t i = 0; name && i < c->nmet; i++)
		if (strcmp(c->met[i].name, name) == 0) {
			*out = c->met[i].value;
			return NNH5_OK;
		}
	return nnh5__error(NNH5_ERR_NOT_FOUND, "checkpoint step %lld: no metric '%s'",
			   (long long)c->step, name ? name : "(null)");
}

size_t nnh5_checkpoint_num_metrics(const nnh5_checkpoint *c)
{
	return c->nmet;
}

const char *nnh5_checkpoint_metric_name(const nnh5_checkpoint *c, size_t i)
{
	return i < c->nmet ? c->met[i].name : NULL;
}

int nnh5_checkpoint_set_meta(nnh5_checkpoint *c, const char *name, const char *value)
{
	char *n, *v;
	int rc;

	if (!valid_attr_name(name) || strcmp(name, "step") == 0 || strcmp(name, "epoch") == 0 ||
	    strncmp(name, "nnh5_", 5) == 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "checkpoint: metadata name '%s' is not allowed (empty, not UTF-8, "
				   "'step', 'epoch' or starting with 'nnh5_')",
				   name ? name : "(null)");
	if (!value || !nnh5__utf8_valid(value))
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: metadata '%s': value is %s", name,
				   value ? "not UTF-8" : "NULL");
	v = nnh5__strdup(value);
	if (!v)
		return nnh5__nomem();
	for (size_t i = 0; i < c->nmeta; i++)
		if (strcmp(c->meta[i].name, name) == 0) {
			nnh5__free(c->meta[i].value);
			c->meta[i].value = v;
			return NNH5_OK;
		}
	rc = grow((void **)&c->meta, &c->capmeta, c->nmeta, sizeof *c->meta);
	n = rc ? NULL : nnh5__strdup(name);
	if (!n) {
		nnh5__free(v);
		return rc ? rc : nnh5__nomem();
	}
	c->meta[c->nmeta].name = n;
	c->meta[c->nmeta].value = v;
	c->nmeta++;
	return NNH5_OK;
}

const char *nnh5_checkpoint_meta(const nnh5_checkpoint *c, const char *name)
{
	for (size_t i = 0; name && i < c->nmeta; i++)
		if (strcmp(c->meta[i].name, name) == 0)
			return c->meta[i].value;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The file                                                            */

int nnh5__checkpoint_write(nnh5_file *f, const nnh5_checkpoint *c)
{
	const char **names = NULL;
	int rc;

	rc = nnh5__file_set_attr_string(f, "/", "nnh5_kind", "checkpoint");
	if (!rc)
		rc = nnh5__file_set_attr_int(f, "/", "step", c->step);
	if (!rc)
		rc = nnh5__file_set_attr_int(f, "/", "epoch", c->epoch);
	for (size_t i = 0; !rc && i < c->nmeta; i++)
		rc = nnh5__file_set_attr_string(f, "/", c->meta[i].name, c->meta[i].value);
	if (!rc && c->nsec) {
		names = nnh5__malloc(c->nsec * sizeof *names);
		if (!names)
			rc = nnh5__nomem();
		for (size_t i = 0; !rc && i < c->nsec; i++)
			names[i] = c->sec[i].name;
	}
	if (!rc)
		rc = nnh5__file_set_attr_strings(f, "/", "nnh5_sections", names, c->nsec);
	nnh5__free(names);
	if (!rc)
		rc = nnh5__file_create_group(f, "metrics");
	for (size_t i = 0; !rc && i < c->nmet; i++)
		rc = nnh5__file_set_attr_float(f, "metrics", c->met[i].name, c->met[i].value);
	for (size_t i = 0; !rc && i < c->nsec; i++)
		rc = nnh5_file_write_state_dict(f, c->sec[i].name, c->sec[i].sd);
	return rc;
}

int nnh5__checkpoint_save_ext(const char *path, const nnh5_checkpoint *c, bool durable,
			      int compression)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	int rc;

	o.durable = durable;
	o.compression = compression;
	rc = nnh5_file_open_ext(&f, path, NNH5_CREATE, &o);
	if (rc)
		return rc;
	rc = nnh5__checkpoint_write(f, c);
	if (rc) {
		nnh5_file_discard(f);
		return rc;
	}
	return nnh5_file_close(f);
}

int nnh5_checkpoint_save(const char *path, const nnh5_checkpoint *c)
{
	if (!c)
		return nnh5__error(NNH5_ERR_INVALID, "save checkpoint '%s': checkpoint is NULL",
				   path ? path : "(null)");
	return nnh5__checkpoint_save_ext(path, c, true, NNH5_COMPRESSION_NONE);
}

/* Attribute names of an object in creation order (HDF5 iteration). */
struct names {
	char **v;
	size_t n, cap;
	bool oom;
};

static herr_t collect_name(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
	struct names *nm = data;
	char *copy;

	(void)loc;
	(void)info;
	if (grow((void **)&nm->v, &nm->cap, nm->n, sizeof *nm->v) || !(copy = nnh5__strdup(name))) {
		nm->oom = true;
		return -1;
	}
	nm->v[nm->n++] = copy;
	return 0;
}

static int attr_names(struct names *nm, nnh5_file *f, const char *obj)
{
	hsize_t idx = 0;
	nnh5__obj o;
	herr_t st;

	memset(nm, 0, sizeof *nm);
	int rc = nnh5__resolve(&o, f, obj);
	if (rc)
		return rc;
	hid_t oid = o.id;
	st = H5Aiterate2(oid, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_name, nm);
	if (st < 0 && !nm->oom) { /* no creation order recorded: name order */
		H5Eclear2(H5E_DEFAULT);
		idx = 0;
		for (size_t i = 0; i < nm->n; i++)
			nnh5__free(nm->v[i]);
		nm->n = 0;
		st = H5Aiterate2(oid, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, nm);
	}
	H5Oclose(oid);
	if (nm->oom)
		return nnh5__nomem();
	if (st < 0)
		return nnh5__h5_error(NNH5_ERR_FORMAT, "'%s': cannot list the attributes of '%s'",
				      nnh5_file_path(f), obj);
	return NNH5_OK;
}

static void names_free(struct names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		nnh5__free(nm->v[i]);
	nnh5__free(nm->v);
}

static int read_metrics_and_meta(nnh5_checkpoint *c, nnh5_file *f)
{
	struct names nm;
	int rc;

	rc = attr_names(&nm, f, "metrics");
	for (size_t i = 0; !rc && i < nm.n; i++) {
		double v;
		rc = nnh5_file_get_attr_float(&v, f, "metrics", nm.v[i]);
		if (!rc)
			rc = nnh5_checkpoint_set_metric(c, nm.v[i], v);
	}
	names_free(&nm);
	if (rc)
		return rc;
	rc = attr_names(&nm, f, "/");
	for (size_t i = 0; !rc && i < nm.n; i++) {
		char *v;
		if (strncmp(nm.v[i], "nnh5_", 5) == 0 || strcmp(nm.v[i], "step") == 0 ||
		    strcmp(nm.v[i], "epoch") == 0)
			continue;
		rc = nnh5_file_get_attr_string(&v, f, "/", nm.v[i]);
		if (rc == NNH5_ERR_TYPE) { /* another program's non-string attribute: not ours */
			nnh5_error_clear();
			rc = NNH5_OK;
			continue;
		}
		if (!rc)
			rc = nnh5_checkpoint_set_meta(c, nm.v[i], v);
		nnh5__free(v);
	}
	names_free(&nm);
	return rc;
}

/* Step, epoch, metrics and metadata of the checkpoint in f (no sections). */
static int read_summary(nnh5_checkpoint **out, nnh5_file *f)
{
	const char *path = nnh5_file_path(f);
	nnh5_checkpoint *c = NULL;
	char *kind = NULL;
	int64_t step, epoch;
	int rc;

	*out = NULL;
	rc = nnh5_file_get_attr_string(&kind, f, "/", "nnh5_kind");
	if (rc == NNH5_ERR_NOT_FOUND || (!rc && strcmp(kind, "checkpoint") != 0))
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s' is not a checkpoint (its nnh5_kind is %s%s%s)",
				 path, kind ? "'" : "", kind ? kind : "missing", kind ? "'" : "");
	nnh5__free(kind);
	if (!rc)
		rc = nnh5_file_get_attr_int(&step, f, "/", "step");
	if (!rc)
		rc = nnh5_file_get_attr_int(&epoch, f, "/", "epoch");
	if (!rc && (step < 0 || epoch < 0))
		rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': negative step or epoch", path);
	if (!rc)
		rc = nnh5_checkpoint_new(&c, step);
	if (!rc)
		rc = nnh5_checkpoint_set_epoch(c, epoch);
	if (!rc)
		rc = read_metrics_and_meta(c, f);
	if (rc) {
		nnh5_checkpoint_free(c);
		return rc;
	}
	*out = c;
	return NNH5_OK;
}

static int open_checkpoint(nnh5_file **f, const char *path, const nnh5_open_options *opts)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;

	if (opts)
		return nnh5_file_open_ext(f, path, NNH5_READ, opts);
	o.verify_checksums = true;
	o.require_checksums = true;
	return nnh5_file_open_ext(f, path, NNH5_READ, &o);
}

int nnh5__checkpoint_read(nnh5_checkpoint **out, nnh5_file *f)
{
	nnh5_checkpoint *c = NULL;
	char **secs = NULL;
	size_t nsecs = 0;
	int rc;

	*out = NULL;
	rc = read_summary(&c, f);
	if (!rc)
		rc = nnh5__file_get_attr_strings(&secs, &nsecs, f, "/", "nnh5_sections");
	for (size_t i = 0; !rc && i < nsecs; i++) {
		nnh5_dict *sd;
		if (!valid_section_name(secs[i]) || find_section(c, secs[i])) {
			rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': invalid or repeated section name '%s'",
					 nnh5_file_path(f), secs[i]);
			break;
		}
		rc = nnh5_file_read_state_dict(&sd, f, secs[i]);
		if (!rc) {
			rc = nnh5_checkpoint_set_state(c, secs[i], sd);
			if (rc)
				nnh5_dict_free(sd);
		}
	}
	if (secs)
		nnh5__strings_free(secs, nsecs);
	if (rc) {
		nnh5_checkpoint_free(c);
		return rc;
	}
	*out = c;
	return NNH5_OK;
}

int nnh5__checkpoint_load_summary(nnh5_checkpoint **out, const char *path)
{
	nnh5_file *f;
	int rc;

	*out = NULL;
	rc = open_checkpoint(&f, path, NULL);
	if (rc)
		return rc;
	rc = read_summary(out, f);
	nnh5_file_discard(f);
	return rc;
}

int nnh5__checkpoint_summary(nnh5_checkpoint **out, const nnh5_checkpoint *c)
{
	nnh5_checkpoint *s;
	int rc = nnh5_checkpoint_new(&s, c->step);

	if (rc)
		return rc;
	s->epoch = c->epoch;
	for (size_t i = 0; !rc && i < c->nmet; i++)
		rc = nnh5_checkpoint_set_metric(s, c->met[i].name, c->met[i].value);
	for (size_t i = 0; !rc && i < c->nmeta; i++)
		rc = nnh5_checkpoint_set_meta(s, c->meta[i].name, c->meta[i].value);
	if (rc) {
		nnh5_checkpoint_free(s);
		return rc;
	}
	*out = s;
	return NNH5_OK;
}

int nnh5_checkpoint_load(nnh5_checkpoint **out, const char *path)
{
	return nnh5_checkpoint_load_ext(out, path, NULL);
}

int nnh5_checkpoint_load_ext(nnh5_checkpoint **out, const char *path,
			     const nnh5_open_options *opts)
{
	nnh5_file *f;
	int rc;

	*out = NULL;
	rc = open_checkpoint(&f, path, opts);
	if (rc)
		return rc;
	rc = nnh5__checkpoint_read(out, f);
	nnh5_file_discard(f);
	return rc;
}

int nnh5__checkpoint_stage(nnh5_checkpoint **out, const nnh5_checkpoint *c, unsigned char *arena,
			   size_t arena_size)
{
	nnh5_checkpoint *s;
	size_t off = 0;
	int rc;

	rc = nnh5__checkpoint_summary(&s, c);
	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < c->nsec; i++) {
		const nnh5_dict *src = c->sec[i].sd;
		nnh5_dict *d;
		rc = nnh5_dict_new(&d);
		if (!rc) {
			rc = nnh5_checkpoint_set_state(s, c->sec[i].name, d);
			if (rc)
				nnh5_dict_free(d);
		}
		size_t *ties = NULL;
		if (!rc)
			rc = nnh5__dict_ties(&ties, src);
		for (size_t k = 0; !rc && k < nnh5_dict_len(src); k++) {
			const nnh5_tensor *t = nnh5_dict_value(src, k);
			size_t n = nnh5_tensor_nbytes(t);
			nnh5_tensor *v;
			/* A tie stays a tie: the staged copy of its first name, shared. */
			if (ties && ties[k] != SIZE_MAX) {
				rc = nnh5_tensor_share(&v, nnh5_dict_value(d, ties[k]));
				if (!rc && (rc = nnh5_dict_set(d, nnh5_dict_key(src, k), v)))
					nnh5_tensor_free(v);
				continue;
			}
			if (off + n > arena_size) {
				rc = nnh5__error(NNH5_ERR_INVALID, "checkpoint: staging buffer too small");
				break;
			}
			if (n)
				memcpy(arena + off, nnh5_tensor_data(t), n);
			rc = nnh5_tensor_view(&v, nnh5_tensor_dtype(t), nnh5_tensor_ndim(t),
					      nnh5_tensor_shape(t), arena + off, n);
			if (rc)
				break;
			rc = nnh5_dict_set(d, nnh5_dict_key(src, k), v);
			if (rc)
				nnh5_tensor_free(v);
			off += (n + 63) & ~(size_t)63;
		}
		nnh5__free(ties);
	}
	if (rc) {
		nnh5_checkpoint_free(s);
		return rc;
	}
	*out = s;
	return NNH5_OK;
}

int nnh5__checkpoint_bytes(size_t *out, const nnh5_checkpoint *c)
{
	size_t total = 0;

	for (size_t i = 0; i < c->nsec; i++)
		for (size_t k = 0; k < nnh5_dict_len(c->sec[i].sd); k++) {
			size_t n = nnh5_tensor_nbytes(nnh5_dict_value(c->sec[i].sd, k));
			size_t padded = (n + 63) & ~(size_t)63;
			if (padded < n || total + padded < total)
				return nnh5__error(NNH5_ERR_OVERFLOW, "checkpoint: size overflows");
			total += padded;
		}
	*out = total;
	return NNH5_OK;
}
