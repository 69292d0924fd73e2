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

/* Add the child described by the attributes of its subgroup path. */
static int read_child(nnh5_model *m, nnh5_file *f, const char *path, const char *child)
{
	char *tname = NULL;
	nnh5_layer_type type;
	int64_t in = 0, out = 0, bias = 0, s = 0, e = 0;
	double p = 0;
	int rc = nnh5_file_get_attr_string(&tname, f, path, "nnh5_layer_type");
	if (rc)
		return nnh5__error_wrap(rc == NNH5_ERR_NOT_FOUND ? NNH5_ERR_FORMAT : rc,
					"child '%s': no layer type (attribute 'nnh5_layer_type')",
					child);
	if (nnh5_layer_type_from_name(&type, tname)) {
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "child '%s': unknown layer type '%s' (nnh5 rebuilds only Linear, LazyLinear, ReLU, Sigmoid, Tanh, GELU, Flatten, Dropout)",
				 child, tname);
		nnh5_free(tname);
		return rc;
	}
	switch (type) {
	case NNH5_LAYER_LINEAR:
	case NNH5_LAYER_LAZY_LINEAR:
		rc = child_int(&in, f, path, child, tname, "in_features");
		if (!rc)
			rc = child_int(&out, f, path, child, tname, "out_features");
		if (!rc)
			rc = child_int(&bias, f, path, child, tname, "bias");
		/* a Linear's parameters come from the file; its own initial values are overwritten */
		if (!rc && type == NNH5_LAYER_LINEAR)
			rc = nnh5_model_add_linear(m, child, in, out, bias != 0);
		else if (!rc)
			rc = nnh5_model_add_lazy_linear(m, child, out, bias != 0);
		break;
	case NNH5_LAYER_FLATTEN:
		rc = child_int(&s, f, path, child, tname, "start_dim");
		if (!rc)
			rc = child_int(&e, f, path, child, tname, "end_dim");
		if (!rc)
			rc = nnh5_model_add_flatten(m, child, s, e);
		break;
	case NNH5_LAYER_DROPOUT:
		rc = nnh5_file_get_attr_float(&p, f, path, "p");
		if (rc)
			rc = nnh5__error_wrap(rc == NNH5_ERR_NOT_FOUND ? NNH5_ERR_FORMAT : rc,
					      "child '%s' (Dropout): attribute 'p'", child);
		else
			rc = nnh5_model_add_dropout(m, child, p);
		break;
	case NNH5_LAYER_RELU:
		rc = nnh5_model_add_relu(m, child);
		break;
	case NNH5_LAYER_SIGMOID:
		rc = nnh5_model_add_sigmoid(m, child);
		break;
	case NNH5_LAYER_TANH:
		rc = nnh5_model_add_tanh(m, child);
		break;
	case NNH5_LAYER_GELU:
		rc = nnh5_model_add_gelu(m, child);
		break;
	}
	/* hyperparameters the add functions refuse are a damaged file */
	if (rc == NNH5_ERR_INVALID || rc == NNH5_ERR_EXISTS)
		rc = nnh5__error_wrap(NNH5_ERR_FORMAT, "child '%s'", child);
	nnh5_free(tname);
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
		if (dtype == NNH5_FLOAT16 || dtype == NNH5_BFLOAT16)
			dtype = NNH5_FLOAT32;
	}
	rc = nnh5_model_new(&m, dtype, 0);
	for (size_t i = 0; !rc && i < n; i++) {
		char *path = nnh5__path_join(name, layers[i]);
		if (!path) {
			rc = nnh5__nomem();
			break;
		}
		if (!nnh5_file_has(f, path))
			rc = nnh5__error(NNH5_ERR_FORMAT, "child '%s': no group '%s'", layers[i], path);
		else
			rc = read_child(m, f, path, layers[i]);
		nnh5__free(path);
	}
	if (rc)
		goto done;
	rc = nnh5_file_read_state_dict(&sd, f, name);
	if (!rc)
		rc = drop_reserved(sd);
	if (!rc)
		rc = nnh5_model_load_state_dict(NULL, m, sd, NULL);
	if (rc)
		goto done;
	*out = m;
	m = NULL;
done:
	if (rc)
		rc = nnh5__error_wrap(rc, "read model '%s' in '%s'", name, nnh5_file_path(f));
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
