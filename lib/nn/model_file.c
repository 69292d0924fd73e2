/*
 * lib/nn/model_file.c - models in files: the state dict group with
 * nnh5_kind "model", the architecture as plain attributes (nnh5_layers on
 * the group, nnh5_layer_type and hyperparameters on each child's subgroup),
 * the optional probe under nnh5_probe/, rebuilding a model from all that,
 * and verifying the probe. doc/FORMAT.md, "Models", is the layout.
 */
#include "nn/nn_internal.h"
#include "file/file_internal.h"
#include "nnh5/dict.h"
#include "nnh5/file.h"
#include "nnh5/save.h"
#include "nnh5/nn.h"

#include <math.h>
#include <string.h>

static int write_layer_attrs(nnh5_file *f, const char *path, const nnh5__layer *l)
{
	int rc = nnh5__file_set_attr_string(f, path, "nnh5_layer_type", nnh5_layer_type_name(l->type));
	switch (l->type) {
	case NNH5_LAYER_LINEAR:
	case NNH5_LAYER_LAZY_LINEAR:
		/* a LazyLinear that has not inferred its input says so with in_features -1 */
		if (!rc)
			rc = nnh5_file_set_attr_int(f, path, "in_features", l->in_features);
		if (!rc)
			rc = nnh5_file_set_attr_int(f, path, "out_features", l->out_features);
		if (!rc)
			rc = nnh5_file_set_attr_int(f, path, "bias", l->has_bias ? 1 : 0);
		break;
	case NNH5_LAYER_FLATTEN:
		if (!rc)
			rc = nnh5_file_set_attr_int(f, path, "start_dim", l->start_dim);
		if (!rc)
			rc = nnh5_file_set_attr_int(f, path, "end_dim", l->end_dim);
		break;
	case NNH5_LAYER_DROPOUT:
		if (!rc)
			rc = nnh5_file_set_attr_float(f, path, "p", l->p);
		break;
	default:
		break;
	}
	return rc;
}

int nnh5_file_write_model(nnh5_file *f, const char *name, nnh5_model *m,
			  const nnh5_tensor *probe_input)
{
	nnh5_dict *sd = NULL;
	nnh5_tensor *probe_out = NULL;
	const char **names = NULL;
	char *path = NULL;
	int rc;

	/* run the probe first: a LazyLinear it materialises is then saved with its parameters */
	if (probe_input) {
		rc = nnh5_model_forward(&probe_out, m, probe_input);
		if (rc)
			return nnh5__error_wrap(rc, "write model '%s' in '%s': probe", name,
						nnh5_file_path(f));
	}
	rc = nnh5_model_state_dict(&sd, m);
	if (rc)
		goto done;
	rc = nnh5__file_write_state_dict_kind(f, name, sd, "model");
	if (rc)
		goto done;
	names = nnh5__calloc(m->n_layers ? m->n_layers : 1, sizeof(*names));
	if (!names) {
		rc = nnh5__nomem();
		goto done;
	}
	for (size_t i = 0; i < m->n_layers; i++) {
		const nnh5__layer *l = &m->layers[i];
		names[i] = l->name;
		path = nnh5__path_join(name, l->name);
		if (!path) {
			rc = nnh5__nomem();
			goto done;
		}
		/* parameter-less children get an empty group to carry their attributes */
		if (!nnh5_file_has(f, path))
			rc = nnh5__file_create_group(f, path);
		if (!rc)
			rc = write_layer_attrs(f, path, l);
		nnh5__free(path);
		path = NULL;
		if (rc)
			goto done;
	}
	rc = nnh5__file_set_attr_strings(f, name, "nnh5_layers", names, m->n_layers);
	if (!rc)
		rc = nnh5__file_set_attr_string(f, name, "nnh5_model_dtype", nnh5_dtype_name(m->dtype));
	if (!rc && probe_input) {
		char *probe = nnh5__path_join(name, "nnh5_probe");
		char *in = probe ? nnh5__path_join(probe, "input") : NULL;
		char *out = probe ? nnh5__path_join(probe, "output") : NULL;
		if (!probe || !in || !out)
			rc = nnh5__nomem();
		if (!rc)
			rc = nnh5__file_create_group(f, probe);
		if (!rc)
			rc = nnh5_file_write_tensor(f, in, probe_input);
		if (!rc)
			rc = nnh5_file_write_tensor(f, out, probe_out);
		nnh5__free(probe);
		nnh5__free(in);
		nnh5__free(out);
	}
done:
	if (rc)
		rc = nnh5__error_wrap(rc, "write model '%s' in '%s'", name, nnh5_file_path(f));
	nnh5__free(names);
	nnh5_dict_free(sd);
	nnh5_tensor_free(probe_out);
	return rc;
}

/* Read the int attribute attr of a child into *out, a format error if absent. */
static int child_int(int64_t *out, nnh5_file *f, const char *path, const char *child,
		     const char *type, const char *attr)
{
	int rc = nnh5_file_get_attr_int(out, f, path, attr);
	if (rc)
		return nnh5__error_wrap(rc == NNH5_ERR_NOT_FOUND ? NNH5_ERR_FORMAT : rc,
					"child '%s' (%s): attribute '%s'", child, type, attr);
	return NNH5_OK;
}

/* A child as the file's attributes describe it, before anything is built. */
struct spec {
	const char *name; /* borrowed from the nnh5_layers list */
	nnh5_layer_type type;
	int64_t in, out, bias, start, end;
	double p;
};

/* Read the attributes of the child described by the subgroup path into *sp. */
static int read_spec(struct spec *sp, nnh5_file *f, const char *path, const char *child)
{
	char *tname = NULL;
	int rc = nnh5_file_get_attr_string(&tname, f, path, "nnh5_layer_type");
	if (rc)
		return nnh5__error_wrap(rc == NNH5_ERR_NOT_FOUND ? NNH5_ERR_FORMAT : rc,
					"child '%s': no layer type (attribute 'nnh5_layer_type')",
					child);
	memset(sp, 0, sizeof(*sp));
	sp->name = child;
	if (nnh5_layer_type_from_name(&sp->type, tname)) {
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "child '%s': unknown layer type '%s' (nnh5 rebuilds only Linear, LazyLinear, ReLU, Sigmoid, Tanh, GELU, Flatten, Dropout)",
				 child, tname);
		nnh5_free(tname);
		return rc;
	}
	switch (sp->type) {
	case NNH5_LAYER_LINEAR:
	case NNH5_LAYER_LAZY_LINEAR:
		rc = child_int(&sp->in, f, path, child, tname, "in_features");
		if (!rc)
			rc = child_int(&sp->out, f, path, child, tname, "out_features");
		if (!rc)
			rc = child_int(&sp->bias, f, path, child, tname, "bias");
		break;
	case NNH5_LAYER_FLATTEN:
		rc = child_int(&sp->start, f, path, child, tname, "start_dim");
		if (!rc)
			rc = child_int(&sp->end, f, path, child, tname, "end_dim");
		break;
	case NNH5_LAYER_DROPOUT:
		rc = nnh5_file_get_attr_float(&sp->p, f, path, "p");
		if (rc)
			rc = nnh5__error_wrap(rc == NNH5_ERR_NOT_FOUND ? NNH5_ERR_FORMAT : rc,
					      "child '%s' (Dropout): attribute 'p'", child);
		break;
	default:
		break;
	}
	nnh5_free(tname);
	return rc;
}

/*
 * The architecture against what the file stores, before a parameter is
 * allocated: the attributes alone cost nothing to forge (a 24 KB file can
 * declare Linear(20000, 20000)), so a Linear is built only when its stored
 * weight has exactly the declared (out_features, in_features), and a
 * LazyLinear with a stored weight only when that has out_features rows.
 * The model then holds no more than the stored state dict sd, which the load
 * policy's caps bound; declared sizes whose bytes would overflow never match
 * a stored tensor. The strict load that follows checks the rest (biases,
 * dtypes, unexpected keys) before copying.
 */
static int check_spec(const struct spec *sp, const nnh5_dict *sd)
{
	bool lazy = sp->type == NNH5_LAYER_LAZY_LINEAR;
	char have[256] = "";
	int rc = NNH5_OK;

	if (sp->type != NNH5_LAYER_LINEAR && !lazy)
		return NNH5_OK;
	size_t n = strlen(sp->name) + sizeof(".weight");
	char *key = nnh5__malloc(n);
	if (!key)
		return nnh5__nomem();
	snprintf(key, n, "%s.weight", sp->name);
	const nnh5_tensor *w = nnh5_dict_get(sd, key);
	if (w)
		nnh5__shape_str(have, sizeof(have), nnh5_tensor_ndim(w), nnh5_tensor_shape(w));
	if (w && nnh5_tensor_ndim(w) == 2 && nnh5_tensor_dim(w, 0) == sp->out &&
	    (lazy || nnh5_tensor_dim(w, 1) == sp->in))
		rc = NNH5_OK;
	else if (lazy && w)
		rc = nnh5__error(NNH5_ERR_SHAPE,
				 "child '%s' declares LazyLinear(out_features=%lld) but the file stores '%s' as %s: refused before allocating its parameters",
				 sp->name, (long long)sp->out, key, have);
	else if (!lazy) /* a LazyLinear without a stored weight stays lazy: nothing is allocated */
		rc = nnh5__error(NNH5_ERR_SHAPE,
				 "child '%s' declares Linear(in_features=%lld, out_features=%lld) but the file %s '%s'%s%s: refused before allocating its parameters",
				 sp->name, (long long)sp->in, (long long)sp->out,
				 w ? "stores" : "has no parameter", key, w ? " as " : "", have);
	nnh5__free(key);
	return rc;
}

/* Add the child sp describes (its parameters come from the file later). */
static int add_spec(nnh5_model *m, const struct spec *sp)
{
	int rc = NNH5_OK;

	switch (sp->type) {
	case NNH5_LAYER_LINEAR:
		rc = nnh5_model_add_linear(m, sp->name, sp->in, sp->out, sp->bias != 0);
		break;
	case NNH5_LAYER_LAZY_LINEAR:
		rc = nnh5_model_add_lazy_linear(m, sp->name, sp->out, sp->bias != 0);
		break;
	case NNH5_LAYER_FLATTEN:
		rc = nnh5_model_add_flatten(m, sp->name, sp->start, sp->end);
		break;
	case NNH5_LAYER_DROPOUT:
		rc = nnh5_model_add_dropout(m, sp->name, sp->p);
		break;
	case NNH5_LAYER_RELU:
		rc = nnh5_model_add_relu(m, sp->name);
		break;
	case NNH5_LAYER_SIGMOID:
		rc = nnh5_model_add_sigmoid(m, sp->name);
		break;
	case NNH5_LAYER_TANH:
		rc = nnh5_model_add_tanh(m, sp->name);
		break;
	case NNH5_LAYER_GELU:
		rc = nnh5_model_add_gelu(m, sp->name);
		break;
	}
	/* hyperparameters the add functions refuse are a damaged file */
	if (rc == NNH5_ERR_INVALID || rc == NNH5_ERR_EXISTS)
		rc = nnh5__error_wrap(NNH5_ERR_FORMAT, "child '%s'", sp->name);
	return rc;
}

/* Remove the keys below reserved "nnh5_" links (the probe) that a reader may have listed. */
static int drop_reserved(nnh5_dict *sd)
{
	size_t i = 0;
	while (i < nnh5_dict_len(sd)) {
		const char *k = nnh5_dict_key(sd, i);
		bool reserved = strncmp(k, "nnh5_", 5) == 0 || strstr(k, ".nnh5_") != NULL;
		if (reserved) {
			int rc = nnh5_dict_remove(sd, k);
			if (rc)
				return rc;
		} else {
			i++;
		}
	}
	return NNH5_OK;
}

int nnh5_file_read_model(nnh5_model **out, nnh5_file *f, const char *name)
{
	nnh5_kind kind;
	char **layers = NULL;
	size_t n = 0;
	char *dtname = NULL;
	nnh5_dtype dtype = NNH5_FLOAT32;
	struct spec *specs = NULL;
	nnh5_model *m = NULL;
	nnh5_dict *sd = NULL;
	int rc;

	*out = NULL;
	rc = nnh5_file_kind(&kind, f, name);
	if (rc)
		goto done;
	if (kind != NNH5_KIND_MODEL) {
		rc = nnh5__error(NNH5_ERR_FORMAT, "object '%s' is a %s, not a model (no architecture)",
				 name, nnh5_kind_name(kind));
		goto done;
	}
	rc = nnh5__file_get_attr_strings(&layers, &n, f, name, "nnh5_layers");
	if (rc) {
		rc = nnh5__error_wrap(rc == NNH5_ERR_NOT_FOUND ? NNH5_ERR_FORMAT : rc,
				      "attribute 'nnh5_layers'");
		layers = NULL;
		n = 0;
		goto done;
	}
	if (nnh5__file_has_attr(f, name, "nnh5_model_dtype")) {
		rc = nnh5_file_get_attr_string(&dtname, f, name, "nnh5_model_dtype");
		if (!rc && (nnh5_dtype_from_name(&dtype, dtname) || !nnh5_dtype_is_float(dtype)))
			rc = nnh5__error(NNH5_ERR_FORMAT, "attribute 'nnh5_model_dtype': '%s' is not a float dtype",
					 dtname);
		if (rc)
			goto done;
		if (dtype != NNH5_FLOAT32 && dtype != NNH5_FLOAT64)
			dtype = NNH5_FLOAT32;
	}
	specs = nnh5__calloc(n ? n : 1, sizeof(*specs));
	if (!specs) {
		rc = nnh5__nomem();
		goto done;
	}
	for (size_t i = 0; !rc && i < n; i++) {
		char *path = nnh5__path_join(name, layers[i]);
		if (!path) {
			rc = nnh5__nomem();
			break;
		}
		if (!nnh5_file_has(f, path))
			rc = nnh5__error(NNH5_ERR_FORMAT, "child '%s': no group '%s'", layers[i], path);
		else
			rc = read_spec(&specs[i], f, path, layers[i]);
		nnh5__free(path);
	}
	/* the stored parameters first (within the load policy's caps), then what is built from them */
	if (!rc)
		rc = nnh5_file_read_state_dict(&sd, f, name);
	if (!rc)
		rc = drop_reserved(sd);
	for (size_t i = 0; !rc && i < n; i++)
		rc = check_spec(&specs[i], sd);
	if (!rc)
		rc = nnh5_model_new(&m, dtype, 0);
	for (size_t i = 0; !rc && i < n; i++)
		rc = add_spec(m, &specs[i]);
	if (!rc)
		rc = nnh5_model_load_state_dict(NULL, m, sd, NULL);
	if (rc)
		goto done;
	*out = m;
	m = NULL;
done:
	if (rc)
		rc = nnh5__error_wrap(rc, "read model '%s' in '%s'", name, nnh5_file_path(f));
	nnh5__free(specs);
	nnh5__strings_free(layers, n);
	nnh5_free(dtname);
	nnh5_dict_free(sd);
	nnh5_model_free(m);
	return rc;
}

/* Compare the recomputed output y with the stored one. */
static void compare(nnh5_verify_result *r, const nnh5_tensor *stored, const nnh5_tensor *y)
{
	r->bitwise_equal = nnh5_tensor_bitwise_equal(stored, y);
	r->numel = nnh5_tensor_numel(y);
	r->max_abs_diff = 0.0;
	for (size_t i = 0; i < r->numel; i++) {
		double a = nnh5_tensor_get(stored, i), b = nnh5_tensor_get(y, i);
		double d;
		if (isnan(a) || isnan(b))
			d = isnan(a) && isnan(b) ? 0.0 : (double)INFINITY;
		else if (a == b) /* Inf == Inf: no difference */
			d = 0.0;
		else
			d = fabs(a - b);
		if (d > r->max_abs_diff || isnan(d))
			r->max_abs_diff = d;
	}
}

int nnh5_file_verify_model(nnh5_verify_result *out, nnh5_file *f, const char *name)
{
	nnh5_model *m = NULL;
	nnh5_tensor *in = NULL, *stored = NULL, *y = NULL;
	char *probe = nnh5__path_join(name, "nnh5_probe");
	char *pin = probe ? nnh5__path_join(probe, "input") : NULL;
	char *pout = probe ? nnh5__path_join(probe, "output") : NULL;
	char a[256], b[256];
	int rc = NNH5_OK;

	memset(out, 0, sizeof(*out));
	if (!probe || !pin || !pout) {
		rc = nnh5__nomem();
		goto done;
	}
	if (!nnh5_file_has(f, pin) || !nnh5_file_has(f, pout)) {
		rc = nnh5__error(NNH5_ERR_NOT_FOUND, "verify model '%s' in '%s': no probe ('%s', '%s')",
				 name, nnh5_file_path(f), pin, pout);
		goto done;
	}
	rc = nnh5_file_read_model(&m, f, name);
	if (!rc)
		rc = nnh5_file_read_tensor(&in, f, pin);
	if (!rc)
		rc = nnh5_file_read_tensor(&stored, f, pout);
	if (!rc)
		rc = nnh5_model_forward(&y, m, in);
	if (rc) {
		rc = nnh5__error_wrap(rc, "verify model '%s' in '%s'", name, nnh5_file_path(f));
		goto done;
	}
	if (nnh5_tensor_dtype(stored) != nnh5_tensor_dtype(y) ||
	    nnh5_tensor_ndim(stored) != nnh5_tensor_ndim(y) ||
	    memcmp(nnh5_tensor_shape(stored), nnh5_tensor_shape(y),
		   nnh5_tensor_ndim(y) * sizeof(int64_t))) {
		rc = nnh5__error(NNH5_ERR_SHAPE,
				 "verify model '%s' in '%s': stored output %s %s, the model gives %s %s",
				 name, nnh5_file_path(f), nnh5_dtype_name(nnh5_tensor_dtype(stored)),
				 nnh5__shape_str(a, sizeof(a), nnh5_tensor_ndim(stored),
						 nnh5_tensor_shape(stored)),
				 nnh5_dtype_name(nnh5_tensor_dtype(y)),
				 nnh5__shape_str(b, sizeof(b), nnh5_tensor_ndim(y), nnh5_tensor_shape(y)));
		goto done;
	}
	compare(out, stored, y);
done:
	nnh5__free(probe);
	nnh5__free(pin);
	nnh5__free(pout);
	nnh5_model_free(m);
	nnh5_tensor_free(in);
	nnh5_tensor_free(stored);
	nnh5_tensor_free(y);
	return rc;
}

int nnh5_save_model(const char *path, nnh5_model *m, const nnh5_tensor *probe_input)
{
	nnh5_file *f;
	int rc = nnh5_file_open(&f, path, NNH5_CREATE);
	if (rc)
		return rc;
	rc = nnh5_file_write_model(f, "/", m, probe_input);
	if (rc) {
		nnh5_file_discard(f);
		return rc;
	}
	return nnh5_file_close(f);
}

int nnh5_load_model(nnh5_model **out, const char *path)
{
	nnh5_file *f;
	*out = NULL;
	int rc = nnh5_file_open(&f, path, NNH5_READ);
	if (rc)
		return rc;
	rc = nnh5_file_read_model(out, f, "/");
	nnh5_file_close(f);
	return rc;
}

int nnh5_verify_model(nnh5_verify_result *out, const char *path)
{
	nnh5_file *f;
	memset(out, 0, sizeof(*out));
	int rc = nnh5_file_open(&f, path, NNH5_READ);
	if (rc)
		return rc;
	rc = nnh5_file_verify_model(out, f, "/");
	nnh5_file_close(f);
	return rc;
}
