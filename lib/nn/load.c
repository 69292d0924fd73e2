/*
 * lib/nn/load.c - load_state_dict: select and rename source keys, match
 * them against the model's parameters, validate everything (shapes, dtypes,
 * LazyLinear inference), and only then copy, converting float8, float16, bfloat16,
 * float32 and float64 to the model's dtype. A strict failure lists every
 * missing key, unexpected key and shape mismatch in one message.
 */
#include "nn/nn_internal.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/save.h"
#include "nnh5/nn.h"

#include <stdio.h>
#include <string.h>

/* One model parameter and what the source offers for it. */
typedef struct slot {
	nnh5__layer *layer;
	bool is_bias;
	char *key;               /* "hidden.weight" */
	const nnh5_tensor *src;  /* matched source tensor, or NULL */
	const char *src_key;     /* its key in the source */
	bool offered;            /* the source had the key (src may be dropped later) */
	bool ok;                 /* src has the right shape */
} slot;

typedef struct strlist {
	char **v;
	size_t n, cap;
} strlist;

static int strlist_push(strlist *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		char **v = nnh5__realloc(l->v, cap * sizeof(*v));
		if (!v)
			return nnh5__nomem();
		l->v = v;
		l->cap = cap;
	}
	char *c = nnh5__strdup(s);
	if (!c)
		return nnh5__nomem();
	l->v[l->n++] = c;
	return NNH5_OK;
}

static void strings_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		nnh5__free(v[i]);
	nnh5__free(v);
}

void nnh5_load_result_free(nnh5_load_result *r)
{
	if (!r)
		return;
	strings_free(r->missing, r->n_missing);
	strings_free(r->unexpected, r->n_unexpected);
	for (size_t i = 0; i < r->n_mismatched; i++)
		nnh5__free(r->mismatched[i].key);
	nnh5__free(r->mismatched);
	nnh5__free(r);
}

/* The expected shape of a slot; for a LazyLinear weight not yet inferred, in is -1. */
static size_t expected_shape(const slot *s, int64_t *shape)
{
	if (s->is_bias) {
		shape[0] = s->layer->out_features;
		return 1;
	}
	shape[0] = s->layer->out_features;
	shape[1] = s->layer->in_features;
	return 2;
}

static bool shape_ok(const slot *s, const nnh5_tensor *t)
{
	int64_t e[2];
	size_t nd = expected_shape(s, e);
	if (nnh5_tensor_ndim(t) != nd)
		return false;
	for (size_t k = 0; k < nd; k++) {
		int64_t d = nnh5_tensor_dim(t, k);
		if (e[k] < 0) {
			/* a LazyLinear's width: any size BLAS can take */
			if (d < 1 || d > INT32_MAX)
				return false;
		} else if (d != e[k]) {
			return false;
		}
	}
	return true;
}

/* Copy src (any float dtype, same element count) into dst (float32 or float64). */
static void copy_convert(nnh5_tensor *dst, const nnh5_tensor *src)
{
	size_t n = nnh5_tensor_numel(dst);
	void *d = nnh5_tensor_mutable_data(dst);
	const void *s = nnh5_tensor_data(src);
	nnh5_dtype dd = nnh5_tensor_dtype(dst), sd = nnh5_tensor_dtype(src);
	if (n == 0)
		return;
	if (dd == sd) {
		memcpy(d, s, nnh5_tensor_nbytes(dst));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		double v;
		float f = 0.0f;
		bool is_float = true;
		switch (sd) {
		case NNH5_FLOAT16:
			f = nnh5_half_to_float(((const uint16_t *)s)[i]);
			break;
		case NNH5_BFLOAT16:
			f = nnh5_bfloat16_to_float(((const uint16_t *)s)[i]);
			break;
		case NNH5_FLOAT32:
			f = ((const float *)s)[i];
			break;
		case NNH5_FLOAT8_E4M3FN:
			f = (float)nnh5_float8_e4m3fn_to_double(((const uint8_t *)s)[i]);
			break;
		case NNH5_FLOAT8_E5M2:
			f = (float)nnh5_float8_e5m2_to_double(((const uint8_t *)s)[i]);
			break;
		default:
			is_float = false;
			break;
		}
		v = is_float ? (double)f : ((const double *)s)[i];
		if (dd == NNH5_FLOAT32)
			((float *)d)[i] = is_float ? f : (float)v;
		else
			((double *)d)[i] = v;
	}
}

/* The source key renamed by opts, as a new string in *out; *out NULL when the key is not selected. */
static int map_key(char **out, const char *key, const nnh5_load_options *o)
{
	*out = NULL;
	if (o->n_renames == 0) {
		*out = nnh5__strdup(key);
		return *out ? NNH5_OK : nnh5__nomem();
	}
	for (size_t i = 0; i < o->n_renames; i++) {
		const char *from = o->renames[i].from ? o->renames[i].from : "";
		const char *to = o->renames[i].to ? o->renames[i].to : "";
		size_t fl = strlen(from);
		if (strncmp(key, from, fl) == 0) {
			char *s = nnh5__malloc(strlen(to) + strlen(key + fl) + 1);
			if (!s)
				return nnh5__nomem();
			strcpy(s, to);
			strcat(s, key + fl);
			*out = s;
			return NNH5_OK;
		}
	}
	return NNH5_OK;
}

static int build_slots(slot **out, size_t *n, nnh5_model *m)
{
	size_t cap = 0;
	for (size_t i = 0; i < m->n_layers; i++)
		if (nnh5__layer_has_params(&m->layers[i]))
			cap += m->layers[i].has_bias ? 2 : 1;
	slot *s = nnh5__calloc(cap ? cap : 1, sizeof(*s));
	if (!s)
		return nnh5__nomem();
	size_t k = 0;
	for (size_t i = 0; i < m->n_layers; i++) {
		nnh5__layer *l = &m->layers[i];
		if (!nnh5__layer_has_params(l))
			continue;
		for (int b = 0; b < (l->has_bias ? 2 : 1); b++) {
			s[k].layer = l;
			s[k].is_bias = b;
			s[k].key = nnh5__malloc(strlen(l->name) + 8);
			if (!s[k].key) {
				for (size_t j = 0; j < k; j++)
					nnh5__free(s[j].key);
				nnh5__free(s);
				return nnh5__nomem();
			}
			sprintf(s[k].key, "%s.%s", l->name, b ? "bias" : "weight");
			k++;
		}
	}
	*out = s;
	*n = k;
	return NNH5_OK;
}

/*
 * true for a LazyLinear that has not inferred its input and for which the
 * source offers nothing: its state dict has no keys, so none are missing.
 */
static bool lazy_unoffered(const slot *slots, size_t ns, const nnh5__layer *l)
{
	if (l->in_features >= 0)
		return false;
	for (size_t i = 0; i < ns; i++)
		if (slots[i].layer == l && slots[i].offered)
			return false;
	return true;
}

/* Fill *res with the three lists (in model order, then source order). */
static int collect(nnh5_load_result *res, const slot *slots, size_t ns, const strlist *unexpected)
{
	strlist miss = { 0 };
	size_t nmis = 0;
	for (size_t i = 0; i < ns; i++) {
		if (!slots[i].src && !lazy_unoffered(slots, ns, slots[i].layer)) {
			if (strlist_push(&miss, slots[i].key))
				goto nomem;
		} else if (!slots[i].ok) {
			nmis++;
		}
	}
	res->missing = miss.v;
	res->n_missing = miss.n;
	miss.v = NULL;
	res->mismatched = nmis ? nnh5__calloc(nmis, sizeof(*res->mismatched)) : NULL;
	if (nmis && !res->mismatched)
		goto nomem;
	for (size_t i = 0; i < ns; i++) {
		if (!slots[i].src || slots[i].ok)
			continue;
		nnh5_shape_mismatch *mm = &res->mismatched[res->n_mismatched];
		mm->key = nnh5__strdup(slots[i].key);
		if (!mm->key)
			goto nomem;
		res->n_mismatched++;
		mm->model_ndim = expected_shape(&slots[i], mm->model_shape);
		mm->source_ndim = nnh5_tensor_ndim(slots[i].src);
		memcpy(mm->source_shape, nnh5_tensor_shape(slots[i].src),
		       mm->source_ndim * sizeof(int64_t));
	}
	for (size_t i = 0; i < unexpected->n; i++) {
		char *c = nnh5__strdup(unexpected->v[i]);
		if (!c)
			goto nomem;
		char **v = nnh5__realloc(res->unexpected, (res->n_unexpected + 1) * sizeof(*v));
		if (!v) {
			nnh5__free(c);
			goto nomem;
		}
		res->unexpected = v;
		res->unexpected[res->n_unexpected++] = c;
	}
	return NNH5_OK;
nomem:
	strings_free(miss.v, miss.n);
	return nnh5__nomem();
}

/* The one strict-mode message. */
static int strict_error(const nnh5_load_result *r)
{
	nnh5__strbuf b = { 0 };
	const char *sep = "";
	nnh5__strbuf_printf(&b, "load_state_dict: ");
	if (r->n_missing) {
		nnh5__strbuf_printf(&b, "missing keys:");
		for (size_t i = 0; i < r->n_missing; i++)
			nnh5__strbuf_printf(&b, "%s '%s'", i ? "," : "", r->missing[i]);
		sep = "; ";
	}
	if (r->n_unexpected) {
		nnh5__strbuf_printf(&b, "%sunexpected keys:", sep);
		for (size_t i = 0; i < r->n_unexpected; i++)
			nnh5__strbuf_printf(&b, "%s '%s'", i ? "," : "", r->unexpected[i]);
		sep = "; ";
	}
	if (r->n_mismatched) {
		nnh5__strbuf_printf(&b, "%ssize mismatch:", sep);
		for (size_t i = 0; i < r->n_mismatched; i++) {
			const nnh5_shape_mismatch *mm = &r->mismatched[i];
			char e[32 * 22], s[32 * 22];
			nnh5__shape_str(e, sizeof(e), mm->model_ndim, mm->model_shape);
			/* a LazyLinear's open width prints as -1: say what it means */
			char *q = strstr(e, "-1");
			if (q && mm->model_ndim == 2 && mm->model_shape[1] < 0)
				snprintf(e, sizeof(e), "(%lld, any)", (long long)mm->model_shape[0]);
			nnh5__strbuf_printf(&b, "%s '%s': model %s, source %s", i ? "," : "", mm->key, e,
				nnh5__shape_str(s, sizeof(s), mm->source_ndim, mm->source_shape));
		}
	}
	if (b.oom) {
		nnh5__free(b.p);
		return nnh5__nomem();
	}
	int rc = nnh5__error(NNH5_ERR_SHAPE, "%s", b.p);
	nnh5__free(b.p);
	return rc;
}

int nnh5_model_load_state_dict(nnh5_load_result **result, nnh5_model *m, const nnh5_dict *sd,
			       const nnh5_load_options *opts)
{
	nnh5_load_options defaults = NNH5_LOAD_OPTIONS_INIT;
	const nnh5_load_options *o = opts ? opts : &defaults;
	slot *slots = NULL;
	size_t ns = 0;
	strlist unexpected = { 0 };
	nnh5_load_result *res = NULL;
	/* new parameters for LazyLinear layers, allocated before anything changes */
	nnh5_tensor **lazy_w = NULL, **lazy_b = NULL;
	int rc;

	if (result)
		*result = NULL;
	if (o->version != NNH5_LOAD_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "load_state_dict: options version %u, expected %d",
				   o->version, NNH5_LOAD_OPTIONS_VERSION);
	if (o->n_renames && !o->renames)
		return nnh5__error(NNH5_ERR_INVALID, "load_state_dict: n_renames %zu without renames",
				   o->n_renames);
	rc = build_slots(&slots, &ns, m);
	if (rc)
		return rc;

	/* match the selected source keys against the model's parameters */
	for (size_t i = 0; i < nnh5_dict_len(sd); i++) {
		const char *key = nnh5_dict_key(sd, i);
		const nnh5_tensor *t = nnh5_dict_value(sd, i);
		char *mk;
		rc = map_key(&mk, key, o);
		if (rc)
			goto done;
		if (!mk)
			continue;
		slot *s = NULL;
		for (size_t k = 0; k < ns && !s; k++)
			if (strcmp(slots[k].key, mk) == 0)
				s = &slots[k];
		if (!s) {
			rc = strlist_push(&unexpected, mk);
			nnh5__free(mk);
			if (rc)
				goto done;
			continue;
		}
		if (s->src) {
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "load_state_dict: source keys '%s' and '%s' both load into '%s'",
					 s->src_key, key, mk);
			nnh5__free(mk);
			goto done;
		}
		nnh5__free(mk);
		if (!nnh5_dtype_is_float(nnh5_tensor_dtype(t))) {
			rc = nnh5__error(NNH5_ERR_TYPE,
					 "load_state_dict: '%s' holds %s, parameters need a float type",
					 key, nnh5_dtype_name(nnh5_tensor_dtype(t)));
			goto done;
		}
		s->src = t;
		s->src_key = key;
		s->offered = true;
		s->ok = shape_ok(s, t);
	}
	/* a LazyLinear's bias can only land once its weight has fixed the width */
	for (size_t k = 0; k < ns; k++) {
		if (slots[k].is_bias && slots[k].layer->in_features < 0 && slots[k].ok) {
			bool w_ok = false;
			for (size_t j = 0; j < ns; j++)
				if (slots[j].layer == slots[k].layer && !slots[j].is_bias)
					w_ok = slots[j].ok;
			if (!w_ok)
				slots[k].ok = false, slots[k].src = NULL;
		}
	}

	res = nnh5__calloc(1, sizeof(*res));
	if (!res) {
		rc = nnh5__nomem();
		goto done;
	}
	rc = collect(res, slots, ns, &unexpected);
	if (rc)
		goto done;
	if (o->strict && (res->n_missing || res->n_unexpected || res->n_mismatched)) {
		rc = strict_error(res);
		if (rc == NNH5_ERR_SHAPE && result) {
			*result = res;
			res = NULL;
		}
		goto done;
	}

	/* allocate the LazyLinear parameters the load materialises */
	lazy_w = nnh5__calloc(ns ? ns : 1, sizeof(*lazy_w));
	lazy_b = nnh5__calloc(ns ? ns : 1, sizeof(*lazy_b));
	if (!lazy_w || !lazy_b) {
		rc = nnh5__nomem();
		goto done;
	}
	for (size_t k = 0; k < ns; k++) {
		if (slots[k].is_bias || !slots[k].ok || slots[k].layer->in_features >= 0)
			continue;
		rc = nnh5__layer_alloc_params(&lazy_w[k], &lazy_b[k], m, slots[k].layer,
					      nnh5_tensor_dim(slots[k].src, 1));
		if (rc)
			goto done;
	}

	/* nothing can fail from here on */
	for (size_t k = 0; k < ns; k++) {
		if (lazy_w[k]) {
			nnh5__layer_install_params(m, slots[k].layer, nnh5_tensor_dim(slots[k].src, 1),
						   lazy_w[k], lazy_b[k]);
			lazy_w[k] = lazy_b[k] = NULL;
		}
	}
	for (size_t k = 0; k < ns; k++) {
		if (!slots[k].ok)
			continue;
		nnh5__layer *l = slots[k].layer;
		copy_convert(slots[k].is_bias ? l->bias : l->weight, slots[k].src);
		res->n_loaded++;
	}
	if (result) {
		*result = res;
		res = NULL;
	}
	rc = NNH5_OK;
done:
	for (size_t k = 0; k < ns; k++) {
		nnh5__free(slots[k].key);
		if (lazy_w && lazy_b) {
			nnh5_tensor_free(lazy_w[k]);
			nnh5_tensor_free(lazy_b[k]);
		}
	}
	nnh5__free(lazy_w);
	nnh5__free(lazy_b);
	nnh5__free(slots);
	strings_free(unexpected.v, unexpected.n);
	nnh5_load_result_free(res);
	return rc;
}
