/*
 * lib/formats/keras.c - Keras weights files and Sequential models into nnh5
 * (include/nnh5/keras.h; layouts in doc/FORMATS.md, "Keras").
 *
 * Nothing here opens an HDF5 object itself: attributes, groups and tensors
 * are read through lib/file (the one walk and its policy), so a Keras file
 * from a stranger meets the same refusals as any nnh5 load. What this file
 * adds is Keras' naming: which attribute lists the layers, which the
 * weights, and how a Dense kernel becomes a PyTorch Linear weight.
 */
#include "core/internal.h"
#include "file/file_internal.h"
#include "nnh5/keras.h"
#include "nnh5/walk.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

/* A new string "a/b" (either part may be "" or "/"); NULL when out of memory. */
static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = nnh5__malloc(la + lb + 2);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	if (la == 0 || a[la - 1] != '/')
		s[la++] = '/';
	memcpy(s + la, b, lb + 1);
	return s;
}

/* Append the strings of list (taken over) to *all. */
static int strings_append(char ***all, size_t *n, char **list, size_t k)
{
	char **grown = nnh5__realloc(*all, (*n + k + 1) * sizeof *grown);

	if (!grown) {
		nnh5__strings_free(list, k);
		return nnh5__nomem();
	}
	memcpy(grown + *n, list, k * sizeof *list);
	*all = grown;
	*n += k;
	nnh5__free(list);
	return NNH5_OK;
}

/*
 * The list attribute name on obj, or its split form name0, name1, ...
 * (Keras splits an attribute longer than HDF5's 64 KiB header limit:
 * save_attributes_to_hdf5_group). *found says whether either exists.
 */
static int read_split_list(char ***out, size_t *n, bool *found, nnh5_file *f, const char *obj,
			   const char *name)
{
	char part[96];
	char **list;
	size_t k;
	int rc;

	*out = NULL;
	*n = 0;
	*found = false;
	rc = nnh5__file_attr_get_strings(&list, &k, f, obj, name, false);
	if (rc == NNH5_OK) {
		*found = true;
		*out = list;
		*n = k;
		return NNH5_OK;
	}
	if (rc != NNH5_ERR_NOT_FOUND)
		return rc;
	nnh5_error_clear();
	for (unsigned chunk = 0;; chunk++) {
		/* Each part holds a name at least: no more parts than names. */
		if (chunk > f->policy.max_tensors) {
			nnh5__strings_free(*out, *n);
			*out = NULL;
			*n = 0;
			return nnh5__error(NNH5_ERR_OVERFLOW,
					   "'%s': object '%s': more than %llu attributes %s0, %s1, ... "
					   "(max_tensors)",
					   f->path, obj, (unsigned long long)f->policy.max_tensors, name,
					   name);
		}
		snprintf(part, sizeof part, "%s%u", name, chunk);
		rc = nnh5__file_attr_get_strings(&list, &k, f, obj, part, false);
		if (rc == NNH5_ERR_NOT_FOUND && chunk > 0) {
			nnh5_error_clear();
			break;
		}
		if (rc == NNH5_ERR_NOT_FOUND) {
			nnh5_error_clear();
			return NNH5_OK;
		}
		if (!rc && *n + k > f->policy.max_tensors) {
			nnh5__strings_free(list, k);
			rc = nnh5__error(NNH5_ERR_OVERFLOW,
					 "'%s': object '%s': attributes %s0..%u hold more than %llu "
					 "names (max_tensors)",
					 f->path, obj, name, chunk,
					 (unsigned long long)f->policy.max_tensors);
		}
		if (!rc)
			rc = strings_append(out, n, list, k);
		if (rc) {
			nnh5__strings_free(*out, *n);
			*out = NULL;
			*n = 0;
			return rc;
		}
		*found = true;
	}
	if (!*out)
		*out = nnh5__calloc(1, sizeof **out);
	return *out ? NNH5_OK : nnh5__nomem();
}

/* A layer name usable as a key component: non-empty, no '/'. */
static int check_layer_name(nnh5_file *f, const char *name)
{
	char esc[128];

	if (name[0] && !strchr(name, '/'))
		return NNH5_OK;
	return nnh5__error(NNH5_ERR_FORMAT, "'%s': Keras layer name '%s' is %s: refused", f->path,
			   nnh5__escape(esc, sizeof esc, name), name[0] ? "a path" : "empty");
}

/*
 * A new tensor: the 2-d Keras kernel k (in, units) transposed to PyTorch's
 * (units, in), same dtype.
 */
static int transpose(nnh5_tensor **out, const nnh5_tensor *k)
{
	int64_t rows = k->shape[0], cols = k->shape[1];
	int64_t shape[2] = { cols, rows };
	size_t es = nnh5_dtype_size(k->dtype);
	const unsigned char *src = k->data;
	unsigned char *dst;
	int rc = nnh5_tensor_new(out, k->dtype, 2, shape);

	if (rc)
		return rc;
	dst = (*out)->data;
	for (int64_t i = 0; i < rows; i++)
		for (int64_t j = 0; j < cols; j++)
			memcpy(dst + ((size_t)j * (size_t)rows + (size_t)i) * es,
			       src + ((size_t)i * (size_t)cols + (size_t)j) * es, es);
	return NNH5_OK;
}

/* What a weight is, from its name: the last path component without ":0". */
typedef enum { ROLE_OTHER, ROLE_KERNEL, ROLE_BIAS } role;

static role role_of(const char *wname)
{
	const char *base = strrchr(wname, '/');
	size_t len;

	base = base ? base + 1 : wname;
	len = strcspn(base, ":");
	if (len == 6 && !strncmp(base, "kernel", 6))
		return ROLE_KERNEL;
	if (len == 4 && !strncmp(base, "bias", 4))
		return ROLE_BIAS;
	return ROLE_OTHER;
}

static void shape_str(char *buf, size_t n, const nnh5_tensor *t)
{
	size_t used = (size_t)snprintf(buf, n, "(");
	for (size_t i = 0; i < t->ndim && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
					 (long long)t->shape[i]);
	if (used < n)
		snprintf(buf + used, n - used, ")");
}

/*
 * Put layer's weights (kernel and, when present, bias, any order, both
 * owned and taken over) into sd as "<layer>.weight" (transposed) and
 * "<layer>.bias". cls is the layer's class when the file says it.
 */
static int add_dense(nnh5_dict *sd, nnh5_file *f, const char *layer, const char *cls,
		     nnh5_tensor *kernel, nnh5_tensor *bias)
{
	char s1[96], s2[96];
	char *key = nnh5__malloc(strlen(layer) + 8);
	nnh5_tensor *w = NULL;
	int rc = key ? NNH5_OK : nnh5__nomem();

	if (rc) {
		/* out of memory: nothing more to say */
	} else if (!kernel || kernel->ndim != 2) {
		if (kernel)
			shape_str(s1, sizeof s1, kernel);
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': Keras layer '%s'%s%s%s: %s%s, not a Dense kernel (in, units): "
				 "only Dense, Flatten, Dropout and InputLayer layers are imported",
				 f->path, layer, cls ? " (class " : "", cls ? cls : "", cls ? ")" : "",
				 kernel ? "a kernel of shape " : "no kernel", kernel ? s1 : "");
	} else if (bias && (bias->ndim != 1 || bias->shape[0] != kernel->shape[1])) {
		shape_str(s1, sizeof s1, kernel);
		shape_str(s2, sizeof s2, bias);
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': Keras layer '%s': bias of shape %s does not fit kernel of "
				 "shape %s",
				 f->path, layer, s2, s1);
	}
	if (!rc)
		rc = transpose(&w, kernel);
	if (!rc) {
		sprintf(key, "%s.weight", layer);
		rc = nnh5_dict_set(sd, key, w);
		if (rc)
			nnh5_tensor_free(w);
	}
	if (!rc && bias) {
		sprintf(key, "%s.bias", layer);
		rc = nnh5_dict_set(sd, key, bias);
		if (!rc)
			bias = NULL;
	}
	nnh5_tensor_free(kernel);
	nnh5_tensor_free(bias);
	nnh5__free(key);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Layouts                                                             */

static bool group_exists(nnh5_file *f, const char *name)
{
	nnh5_kind k;
	bool yes = nnh5_file_kind(&k, f, name) == NNH5_OK;

	nnh5_error_clear();
	return yes;
}

static bool has_list_attr(nnh5_file *f, const char *obj, const char *name)
{
	char part[96];

	snprintf(part, sizeof part, "%s0", name);
	return nnh5__file_has_attr(f, obj, name) || nnh5__file_has_attr(f, obj, part);
}

static int layout_of(nnh5_keras_layout *out, nnh5_file *f)
{
	*out = 0;
	if (group_exists(f, "/model_weights") && has_list_attr(f, "/model_weights", "layer_names"))
		*out = NNH5_KERAS_LEGACY_MODEL;
	else if (has_list_attr(f, "/", "layer_names"))
		*out = NNH5_KERAS_LEGACY_WEIGHTS;
	else if (group_exists(f, "/layers"))
		*out = NNH5_KERAS_V3_WEIGHTS;
	else
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': not a Keras file (no model_weights, no layer_names "
				   "attribute, no layers group)",
				   nnh5_file_path(f));
	return NNH5_OK;
}

/* The weights of one legacy layer group (base/layer) into sd. */
static int legacy_layer(nnh5_dict *sd, nnh5_file *f, const char *base, const char *layer)
{
	char **wn = NULL;
	size_t nw = 0;
	bool found;
	nnh5_tensor *kernel = NULL, *bias = NULL;
	char *gpath = join(base, layer);
	int rc;

	if (!gpath)
		return nnh5__nomem();
	rc = check_layer_name(f, layer);
	if (!rc && !group_exists(f, gpath))
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': Keras layer '%s' is listed in layer_names but has no group "
				 "'%s'",
				 f->path, layer, gpath);
	if (!rc)
		rc = read_split_list(&wn, &nw, &found, f, gpath, "weight_names");
	if (!rc && !found)
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': Keras layer '%s' has no weight_names attribute", f->path,
				 layer);
	for (size_t i = 0; i < nw && !rc; i++) {
		role r = role_of(wn[i]);
		char *wpath = join(gpath, wn[i]);
		nnh5_tensor *t = NULL;
		if (!wpath) {
			rc = nnh5__nomem();
			break;
		}
		rc = nnh5_file_read_tensor(&t, f, wpath);
		if (rc == NNH5_ERR_NOT_FOUND)
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': Keras layer '%s': weight '%s' is listed in "
					 "weight_names but missing",
					 f->path, layer, wn[i]);
		nnh5__free(wpath);
		if (rc)
			break;
		if (r == ROLE_KERNEL && !kernel) {
			kernel = t;
		} else if (r == ROLE_BIAS && !bias) {
			bias = t;
		} else {
			nnh5_tensor_free(t);
			rc = nnh5__error(NNH5_ERR_FORMAT,
					 "'%s': Keras layer '%s': weight '%s' is not a Dense kernel "
					 "or bias: only Dense, Flatten, Dropout and InputLayer layers "
					 "are imported",
					 f->path, layer, wn[i]);
		}
	}
	if (!rc && (kernel || bias)) {
		rc = add_dense(sd, f, layer, NULL, kernel, bias);
		kernel = bias = NULL;
	}
	nnh5_tensor_free(kernel);
	nnh5_tensor_free(bias);
	nnh5__strings_free(wn, nw);
	nnh5__free(gpath);
	return rc;
}

static int read_legacy(nnh5_dict *sd, nnh5_file *f, const char *base)
{
	char **names;
	size_t n;
	bool found;
	int rc = read_split_list(&names, &n, &found, f, base, "layer_names");

	for (size_t i = 0; i < n && !rc; i++)
		rc = legacy_layer(sd, f, base, names[i]);
	nnh5__strings_free(names, n);
	return rc;
}

/* The groups directly below /layers, in stored order. */
struct layer_list {
	char **names;
	size_t n;
	int rc;
};

static int collect_layers(const nnh5_entry *e, void *ctx)
{
	struct layer_list *l = ctx;
	char **grown;

	if (e->depth != 1)
		return 0;
	if (e->type != NNH5_ENTRY_GROUP)
		return l->rc = nnh5__error(NNH5_ERR_FORMAT,
					   "Keras 3 weights: '%s' is not a layer group", e->path);
	grown = nnh5__realloc(l->names, (l->n + 1) * sizeof *grown);
	if (!grown)
		return l->rc = nnh5__nomem();
	l->names = grown;
	l->names[l->n] = nnh5__strdup(e->name);
	if (!l->names[l->n])
		return l->rc = nnh5__nomem();
	l->n++;
	return 0;
}

/* One Keras 3 layer: /layers/<name>/vars/0 (kernel), vars/1 (bias). */
static int v3_layer(nnh5_dict *sd, nnh5_file *f, const char *layer)
{
	char path[600];
	nnh5_list *vars = NULL;
	nnh5_tensor *kernel = NULL, *bias = NULL;
	size_t nv;
	int rc;

	snprintf(path, sizeof path, "/layers/%s/layers", layer);
	if (group_exists(f, path))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' holds nested layers: only Dense, Flatten, "
				   "Dropout and InputLayer layers are imported",
				   f->path, layer);
	snprintf(path, sizeof path, "/layers/%s/vars", layer);
	if (!group_exists(f, path))
		return NNH5_OK;
	rc = nnh5_file_read_list(&vars, f, path);
	if (rc)
		return rc;
	nv = nnh5_list_len(vars);
	if (nv > 2 || (nv == 2 && nnh5_tensor_ndim(nnh5_list_get(vars, 1)) != 1)) {
		nnh5_list_free(vars);
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' has %zu variables that are not a Dense "
				   "kernel and bias: only Dense, Flatten, Dropout and InputLayer layers "
				   "are imported",
				   f->path, layer, nv);
	}
	/* Layers hold a few tensors: a copy out of the list costs little. */
	if (nv >= 1)
		rc = nnh5_tensor_clone(&kernel, nnh5_list_get(vars, 0));
	if (!rc && nv == 2)
		rc = nnh5_tensor_clone(&bias, nnh5_list_get(vars, 1));
	nnh5_list_free(vars);
	if (!rc && nv)
		return add_dense(sd, f, layer, NULL, kernel, bias);
	nnh5_tensor_free(kernel);
	nnh5_tensor_free(bias);
	return rc;
}

static int read_v3(nnh5_dict *sd, nnh5_file *f)
{
	struct layer_list l = { NULL, 0, NNH5_OK };
	int rc = nnh5_file_walk(f, "/layers", NULL, collect_layers, &l);

	if (l.rc)
		rc = l.rc;
	for (size_t i = 0; i < l.n && !rc; i++)
		rc = v3_layer(sd, f, l.names[i]);
	nnh5__strings_free(l.names, l.n);
	return rc;
}

int nnh5_keras_layout_of(nnh5_keras_layout *out, nnh5_file *f)
{
	ENTER;
	LEAVE(layout_of(out, f));
}

static int read_state_dict(nnh5_dict **out, nnh5_file *f)
{
	nnh5_keras_layout layout;
	nnh5_dict *sd = NULL;
	int rc;

	*out = NULL;
	rc = layout_of(&layout, f);
	if (!rc)
		rc = nnh5_dict_new(&sd);
	if (!rc) {
		if (layout == NNH5_KERAS_V3_WEIGHTS)
			rc = read_v3(sd, f);
		else
			rc = read_legacy(sd, f,
					 layout == NNH5_KERAS_LEGACY_MODEL ? "/model_weights" : "/");
	}
	if (rc) {
		nnh5_dict_free(sd);
		return rc;
	}
	*out = sd;
	return NNH5_OK;
}

int nnh5_keras_read_state_dict(nnh5_dict **out, nnh5_file *f)
{
	ENTER;
	LEAVE(read_state_dict(out, f));
}

/* ------------------------------------------------------------------ */
/* Sequential models                                                   */

/* obj's string member key, or NULL (json_string_value() is NULL for a non-string). */
static const char *json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* The activation after a Dense layer; NNH5_OK with *type 0 for linear. */
static int dense_activation(nnh5_layer_type *type, nnh5_file *f, const char *layer,
			    const char *act)
{
	static const struct {
		const char *keras;
		nnh5_layer_type type;
	} acts[] = { { "linear", 0 }, { "relu", NNH5_LAYER_RELU }, { "sigmoid", NNH5_LAYER_SIGMOID },
		     { "tanh", NNH5_LAYER_TANH }, { "gelu", NNH5_LAYER_GELU } };
	char esc[96];

	for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
		if (!strcmp(act, acts[i].keras)) {
			*type = acts[i].type;
			return NNH5_OK;
		}
	return nnh5__error(NNH5_ERR_FORMAT,
			   "'%s': Keras layer '%s' (class Dense): activation '%s' is not imported "
			   "(linear, relu, sigmoid, tanh, gelu are)",
			   f->path, layer, nnh5__escape(esc, sizeof esc, act));
}

static int add_activation(nnh5_model *m, const char *layer, nnh5_layer_type type)
{
	char name[300];

	snprintf(name, sizeof name, "%s_%s", layer, type == NNH5_LAYER_RELU ? "relu" :
			type == NNH5_LAYER_SIGMOID ? "sigmoid" : type == NNH5_LAYER_TANH ? "tanh" : "gelu");
	switch (type) {
	case NNH5_LAYER_RELU: return nnh5_model_add_relu(m, name);
	case NNH5_LAYER_SIGMOID: return nnh5_model_add_sigmoid(m, name);
	case NNH5_LAYER_TANH: return nnh5_model_add_tanh(m, name);
	default: return nnh5_model_add_gelu(m, name);
	}
}

/* sd's tensor "<layer><suffix>", or NULL (also when out of memory: then the caller's check fails). */
static const nnh5_tensor *lookup(const nnh5_dict *sd, const char *layer, const char *suffix)
{
	char *key = nnh5__malloc(strlen(layer) + strlen(suffix) + 1);
	const nnh5_tensor *t = NULL;

	if (key) {
		strcpy(key, layer);
		strcat(key, suffix);
		t = nnh5_dict_get(sd, key);
		nnh5__free(key);
	}
	return t;
}

/*
 * One Dense layer of the config: its units and activation checked, and,
 * when sd is given, a Linear (and its activation) added to m whose shapes
 * follow from sd, units and the features of the layer before.
 */
static int build_dense(nnh5_model *m, int64_t *features, size_t *n_keys, nnh5_file *f,
		       const nnh5_dict *sd, const char *name, const json_t *cfg)
{
	/* units as a number: 64 and 64.0 alike (Keras writes either). */
	double units = json_number_value(json_object_get(cfg, "units"));
	const json_t *use_bias = json_object_get(cfg, "use_bias");
	const char *act = json_str(cfg, "activation");
	const json_t *act_item = json_object_get(cfg, "activation");
	bool bias = !json_is_false(use_bias);
	nnh5_layer_type at = 0;
	char s[96];
	const nnh5_tensor *w, *b;
	int rc;

	if (!json_is_number(json_object_get(cfg, "units")) || units < 1 || units >= 2147483648.0 ||
	    units != (double)(int64_t)units)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' (class Dense): units missing or invalid",
				   f->path, name);
	if (act_item && !act && !json_is_null(act_item))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' (class Dense): activation is not a name",
				   f->path, name);
	rc = dense_activation(&at, f, name, act ? act : "linear");
	if (rc || !sd)
		return rc;
	w = lookup(sd, name, ".weight");
	b = lookup(sd, name, ".bias");
	if (!w)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' (class Dense): the file holds no kernel for it",
				   f->path, name);
	if (bias != (b != NULL))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' (class Dense): use_bias is %s but the file "
				   "holds %s",
				   f->path, name, bias ? "true" : "false", b ? "a bias" : "no bias");
	if (w->shape[0] != (int64_t)units || (*features >= 0 && w->shape[1] != *features)) {
		int64_t in = *features >= 0 ? *features : w->shape[1];
		/* The kernel as the file stores it: (in, out). */
		snprintf(s, sizeof s, "(%lld, %lld)", (long long)w->shape[1], (long long)w->shape[0]);
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': Keras layer '%s' (class Dense): kernel of shape %s, expected "
				   "(%lld, %lld) from units and the layer before",
				   f->path, name, s, (long long)in, (long long)units);
	}
	rc = nnh5_model_add_linear(m, name, w->shape[1], w->shape[0], bias);
	if (!rc && at)
		rc = add_activation(m, name, at);
	*features = w->shape[0];
	*n_keys += 1 + (b != NULL);
	return rc;
}

/* One layer of the config: checked, and with sd, added to m (build_dense()). */
static int build_layer(nnh5_model *m, int64_t *features, size_t *n_keys, nnh5_file *f,
		       const nnh5_dict *sd, const json_t *layer, size_t index)
{
	const char *cls = json_str(layer, "class_name");
	const json_t *cfg = json_object_get(layer, "config");
	const char *name = json_str(cfg, "name");
	char esc1[96], esc2[96];
	int rc;

	if (!cls || !name)
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': model_config: layer %zu has no class_name or name", f->path,
				   index);
	rc = check_layer_name(f, name);
	if (rc)
		return rc;
	if (!strcmp(cls, "InputLayer"))
		return NNH5_OK;
	if (!strcmp(cls, "Dense"))
		return build_dense(m, features, n_keys, f, sd, name, cfg);
	if (!strcmp(cls, "Flatten")) {
		const char *fmt = json_str(cfg, "data_format");
		if (fmt && strcmp(fmt, "channels_last"))
			return nnh5__error(NNH5_ERR_FORMAT,
					   "'%s': Keras layer '%s' (class Flatten): data_format '%s' is "
					   "not imported (channels_last is)",
					   f->path, name, nnh5__escape(esc1, sizeof esc1, fmt));
		*features = -1;
		return sd ? nnh5_model_add_flatten(m, name, 1, -1) : NNH5_OK;
	}
	if (!strcmp(cls, "Dropout")) {
		/* 0.0 when absent or not a number. */
		double p = json_number_value(json_object_get(cfg, "rate"));
		return sd ? nnh5_model_add_dropout(m, name, p) : NNH5_OK;
	}
	return nnh5__error(NNH5_ERR_FORMAT,
			   "'%s': Keras layer '%s' of class '%s' is not imported (Dense, Flatten, "
			   "Dropout and InputLayer are)",
			   f->path, nnh5__escape(esc1, sizeof esc1, name),
			   nnh5__escape(esc2, sizeof esc2, cls));
}

/* The layer list of model_config (parsed into *root, which the caller deletes). */
static int config_layers(const json_t **layers, json_t **root, nnh5_file *f, const char *json)
{
	json_error_t e;
	const char *cls;
	char esc[96];

	*layers = NULL;
	/*
	 * Integers as doubles, as Python's json reads them for Keras: a seed
	 * past int64 is no reason to refuse (only units and rate are used). A
	 * name given twice keeps its last value, as json.loads does.
	 */
	*root = json_loads(json, JSON_DECODE_INT_AS_REAL, &e);
	if (!*root)
		return json_error_code(&e) == json_error_out_of_memory
			       ? nnh5__nomem()
			       : nnh5__error(NNH5_ERR_FORMAT,
					     "'%s': model_config is not valid JSON: %s at byte %d",
					     f->path, e.text, e.position);
	cls = json_str(*root, "class_name");
	*layers = json_object_get(*root, "config");
	/* Keras 2 before 2.2.3 wrote the layer list as the config itself. */
	if (json_is_object(*layers))
		*layers = json_object_get(*layers, "layers");
	if (!cls || strcmp(cls, "Sequential"))
		return nnh5__error(NNH5_ERR_FORMAT,
				   "'%s': model_config: model class '%s' is not imported (Sequential is)",
				   f->path, cls ? nnh5__escape(esc, sizeof esc, cls) : "(none)");
	if (!json_is_array(*layers))
		return nnh5__error(NNH5_ERR_FORMAT, "'%s': model_config: no layer list", f->path);
	return NNH5_OK;
}

/* Every layer of the config into m (or, with sd NULL, only checked). */
static int build(nnh5_model *m, nnh5_file *f, const nnh5_dict *sd, const json_t *layers)
{
	int64_t features = -1;
	size_t n_keys = 0;
	char esc[96];
	int rc = NNH5_OK;

	for (size_t i = 0; i < json_array_size(layers) && !rc; i++)
		rc = build_layer(m, &features, &n_keys, f, sd, json_array_get(layers, i), i);
	if (rc || !sd || n_keys == nnh5_dict_len(sd))
		return rc;
	/* A weight the config has no layer for: say which. */
	for (size_t k = 0; k < nnh5_dict_len(sd); k++) {
		const char *key = nnh5_dict_key(sd, k);
		const char *dot = strrchr(key, '.');
		bool known = false;
		for (size_t c = 0; c < nnh5_model_len(m) && !known; c++) {
			const char *cn = nnh5_model_child_name(m, c);
			known = dot && strlen(cn) == (size_t)(dot - key) &&
				!strncmp(cn, key, (size_t)(dot - key));
		}
		if (!known)
			return nnh5__error(NNH5_ERR_FORMAT,
					   "'%s': weights '%s' belong to no Dense layer of model_config",
					   f->path, nnh5__escape(esc, sizeof esc, key));
	}
	return nnh5__error(NNH5_ERR_FORMAT, "'%s': the weights do not match model_config", f->path);
}

static int read_model(nnh5_model **out, nnh5_file *f, nnh5_dtype dtype)
{
	nnh5_keras_layout layout;
	nnh5_dict *sd = NULL;
	nnh5_model *m = NULL;
	json_t *root = NULL;
	const json_t *layers = NULL;
	char *json = NULL;
	int rc;

	*out = NULL;
	if (dtype != NNH5_FLOAT32 && dtype != NNH5_FLOAT64)
		return nnh5__error(NNH5_ERR_INVALID, "Keras model: dtype %s (float32 or float64)",
				   nnh5_dtype_name(dtype));
	rc = layout_of(&layout, f);
	if (!rc && layout != NNH5_KERAS_LEGACY_MODEL)
		rc = nnh5__error(NNH5_ERR_FORMAT,
				 "'%s': a Keras weights file without model_config: its weights load "
				 "as a state dict, not as a model",
				 f->path);
	if (!rc) {
		rc = nnh5_file_get_attr_string(&json, f, "/", "model_config");
		if (rc == NNH5_ERR_NOT_FOUND)
			rc = nnh5__error(NNH5_ERR_FORMAT, "'%s': no model_config attribute", f->path);
	}
	if (!rc)
		rc = config_layers(&layers, &root, f, json);
	/* The architecture first: an unknown layer is named by its class, not its weights. */
	if (!rc)
		rc = build(NULL, f, NULL, layers);
	if (!rc)
		rc = read_state_dict(&sd, f);
	if (!rc)
		rc = nnh5_model_new(&m, dtype, 0);
	if (!rc)
		rc = build(m, f, sd, layers);
	if (!rc)
		rc = nnh5_model_load_state_dict(NULL, m, sd, NULL);
	json_decref(root);
	nnh5_free(json);
	nnh5_dict_free(sd);
	if (rc) {
		nnh5_model_free(m);
		return rc;
	}
	*out = m;
	return NNH5_OK;
}

int nnh5_keras_read_model(nnh5_model **out, nnh5_file *f, nnh5_dtype dtype)
{
	ENTER;
	LEAVE(read_model(out, f, dtype));
}

int nnh5_keras_load_state_dict(nnh5_dict **out, const char *path)
{
	nnh5_file *f;
	int rc;

	*out = NULL;
	rc = nnh5_file_open(&f, path, NNH5_READ);
	if (rc)
		return rc;
	rc = nnh5_keras_read_state_dict(out, f);
	nnh5_file_close(f);
	return rc;
}

int nnh5_keras_load_model(nnh5_model **out, const char *path, nnh5_dtype dtype)
{
	nnh5_file *f;
	int rc;

	*out = NULL;
	rc = nnh5_file_open(&f, path, NNH5_READ);
	if (rc)
		return rc;
	rc = nnh5_keras_read_model(out, f, dtype);
	nnh5_file_close(f);
	return rc;
}
