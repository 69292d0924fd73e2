/*
 * xcheck - the C half of the h5py/h5dump cross-check (run by h5py_check.py).
 *
 * `xcheck write DIR` writes a corpus of nnh5 files into DIR, with the one-call
 * nnh5_save_* functions and with the nnh5_file_* handle API, and describes
 * every object in DIR/manifest.json. Tensor values follow a formula that the
 * Python side recomputes exactly (small integers and binary fractions that
 * every dtype represents): with k = (i * mul + add) mod m, element i is
 * k - sub + big for integers, (k - sub) / div for floats, and
 * (i * mul + add) mod 3 == 0 for bool.
 *
 * `xcheck verify DIR` reads DIR/manifest.json (written by Python next to files
 * h5py made) and checks every object with nnh5: dtype, shape, bytes, key
 * order, attributes, and expected errors (status and message). It prints one
 * line per failed check and exits 1 if any check failed.
 */
#include <nnh5/save.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct formula {
	int64_t mul, add, mod, sub, div;
	int64_t big; /* added to integers (as two's complement for uint64) */
};

/* ---------------------------------------------------------------- values */

/* binary16 bits of a float that is zero or a normal binary16 number. */
static uint16_t half_bits(float f)
{
	uint32_t b;
	uint16_t sign;
	int32_t e;

	memcpy(&b, &f, sizeof b);
	sign = (uint16_t)((b >> 16) & 0x8000u);
	if ((b & 0x7fffffffu) == 0)
		return sign;
	e = (int32_t)((b >> 23) & 0xffu) - 127 + 15;
	if (e <= 0 || e >= 31 || (b & 0x1fffu) != 0) {
		fprintf(stderr, "xcheck: internal: %g is not an exact half\n", (double)f);
		exit(2);
	}
	return (uint16_t)(sign | (uint16_t)((uint32_t)e << 10) | (uint16_t)((b >> 13) & 0x3ffu));
}

/* bfloat16 bits of a float that bfloat16 represents exactly. */
static uint16_t bf16_bits(float f)
{
	uint32_t b;

	memcpy(&b, &f, sizeof b);
	if (b & 0xffffu) {
		fprintf(stderr, "xcheck: internal: %g is not an exact bfloat16\n", (double)f);
		exit(2);
	}
	return (uint16_t)(b >> 16);
}

/* Fill n elements of dtype at buf (little-endian host) from the formula. */
static void fill(unsigned char *buf, nnh5_dtype dt, size_t n, const struct formula *fm)
{
	size_t es = nnh5_dtype_size((int)dt);

	for (size_t i = 0; i < n; i++) {
		int64_t lin = (int64_t)i * fm->mul + fm->add;
		int64_t k = ((lin % fm->mod) + fm->mod) % fm->mod;
		uint64_t u = (uint64_t)(k - fm->sub) + (uint64_t)fm->big;
		double d = (double)(k - fm->sub) / (double)fm->div;
		unsigned char *p = buf + i * es;

		switch (dt) {
		case NNH5_BOOL: p[0] = (unsigned char)(((lin % 3) + 3) % 3 == 0); break;
		case NNH5_INT8: case NNH5_UINT8: p[0] = (unsigned char)u; break;
		case NNH5_INT16: case NNH5_UINT16: { uint16_t v = (uint16_t)u; memcpy(p, &v, 2); } break;
		case NNH5_INT32: case NNH5_UINT32: { uint32_t v = (uint32_t)u; memcpy(p, &v, 4); } break;
		case NNH5_INT64: case NNH5_UINT64: memcpy(p, &u, 8); break;
		case NNH5_FLOAT16: { uint16_t v = half_bits((float)d); memcpy(p, &v, 2); } break;
		case NNH5_BFLOAT16: { uint16_t v = bf16_bits((float)d); memcpy(p, &v, 2); } break;
		case NNH5_FLOAT32: { float v = (float)d; memcpy(p, &v, 4); } break;
		case NNH5_FLOAT64: memcpy(p, &d, 8); break;
		/* The formula keeps float8 values exact (default_formula). */
		case NNH5_FLOAT8_E4M3FN: p[0] = nnh5_double_to_float8_e4m3fn(d); break;
		case NNH5_FLOAT8_E5M2: p[0] = nnh5_double_to_float8_e5m2(d); break;
		/* Complex: real part d, imaginary part 0 - d (+0 when d is 0). */
		case NNH5_COMPLEX64: { float v[2] = { (float)d, (float)(0.0 - d) }; memcpy(p, v, 8); } break;
		case NNH5_COMPLEX128: { double v[2] = { d, 0.0 - d }; memcpy(p, v, 16); } break;
		default: break;
		}
	}
}

static struct formula default_formula(nnh5_dtype dt, int64_t mul, int64_t add)
{
	struct formula fm = { mul, add, 97, 48, 1, 0 };

	if (nnh5_dtype_is_float((int)dt) || nnh5_dtype_is_complex((int)dt))
		fm.div = 4;
	/* k/4 for |k| <= 8 is exact in both float8 formats. */
	if (dt == NNH5_FLOAT8_E4M3FN || dt == NNH5_FLOAT8_E5M2) {
		fm.mod = 17;
		fm.sub = 8;
	}
	switch (dt) {
	case NNH5_UINT8: case NNH5_UINT16: case NNH5_UINT32: fm.sub = 0; break;
	case NNH5_UINT64: fm.sub = 0; fm.big = INT64_MIN; break; /* 2^63: the top bit */
	case NNH5_INT64: fm.big = -((int64_t)3 << 40); break;
	case NNH5_INT32: fm.big = -((int64_t)1 << 20); break;
	default: break;
	}
	return fm;
}

/* -------------------------------------------------------------- writing */

static cJSON *manifest_files;

static void die(const char *what, int rc)
{
	fprintf(stderr, "xcheck write: %s: %s: %s\n", what, nnh5_status_name(rc),
		nnh5_error_message());
	exit(2);
}

static nnh5_tensor *make_tensor(nnh5_dtype dt, size_t ndim, const int64_t *shape,
				const struct formula *fm)
{
	nnh5_tensor *t = NULL;
	int rc = nnh5_tensor_new(&t, dt, ndim, shape);

	if (rc)
		die("tensor_new", rc);
	if (nnh5_tensor_numel(t))
		fill(nnh5_tensor_mutable_data(t), dt, nnh5_tensor_numel(t), fm);
	return t;
}

static cJSON *tensor_spec(nnh5_dtype dt, size_t ndim, const int64_t *shape,
			  const struct formula *fm)
{
	cJSON *o = cJSON_CreateObject(), *s = cJSON_CreateArray(), *f = cJSON_CreateObject();
	char big[32];

	cJSON_AddStringToObject(o, "kind", "tensor");
	cJSON_AddStringToObject(o, "dtype", nnh5_dtype_name((int)dt));
	for (size_t i = 0; i < ndim; i++)
		cJSON_AddItemToArray(s, cJSON_CreateNumber((double)shape[i]));
	cJSON_AddItemToObject(o, "shape", s);
	cJSON_AddNumberToObject(f, "mul", (double)fm->mul);
	cJSON_AddNumberToObject(f, "add", (double)fm->add);
	cJSON_AddNumberToObject(f, "mod", (double)fm->mod);
	cJSON_AddNumberToObject(f, "sub", (double)fm->sub);
	cJSON_AddNumberToObject(f, "div", (double)fm->div);
	snprintf(big, sizeof big, "%" PRId64, fm->big);
	cJSON_AddStringToObject(f, "big", big);
	cJSON_AddItemToObject(o, "formula", f);
	return o;
}

/* A manifest entry for one file; objects and attrs are filled by the caller. */
static cJSON *file_entry(const char *name, const char *api)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "file", name);
	cJSON_AddStringToObject(e, "api", api);
	cJSON_AddItemToObject(e, "objects", cJSON_CreateArray());
	cJSON_AddItemToObject(e, "attrs", cJSON_CreateArray());
	cJSON_AddItemToArray(manifest_files, e);
	return e;
}

static void add_object(cJSON *entry, const char *path, cJSON *obj)
{
	cJSON_AddStringToObject(obj, "path", path);
	cJSON_AddItemToArray(cJSON_GetObjectItem(entry, "objects"), obj);
}

static char *join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (!p)
		exit(2);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* One container under construction: the nnh5 object and its manifest spec. */
struct container {
	nnh5_dict *dict;
	nnh5_list *list;
	cJSON *spec, *keys, *items;
};

static void container_init(struct container *c, const char *kind)
{
	int rc = 0;

	memset(c, 0, sizeof *c);
	if (!strcmp(kind, "list"))
		rc = nnh5_list_new(&c->list);
	else
		rc = nnh5_dict_new(&c->dict);
	if (rc)
		die("container", rc);
	c->spec = cJSON_CreateObject();
	cJSON_AddStringToObject(c->spec, "kind", kind);
	c->items = cJSON_AddArrayToObject(c->spec, "items");
	if (c->dict)
		c->keys = cJSON_AddArrayToObject(c->spec, "keys");
}

static void container_add(struct container *c, const char *key, nnh5_dtype dt, size_t ndim,
			  const int64_t *shape, const struct formula *fm)
{
	nnh5_tensor *t = make_tensor(dt, ndim, shape, fm);
	cJSON *ts = tensor_spec(dt, ndim, shape, fm);
	int rc;

	if (c->list) {
		rc = nnh5_list_append(c->list, t);
	} else {
		rc = nnh5_dict_set(c->dict, key, t);
		cJSON_AddStringToObject(ts, "key", key);
		cJSON_AddItemToArray(c->keys, cJSON_CreateString(key));
	}
	if (rc)
		die("container add", rc);
	cJSON_AddItemToArray(c->items, ts);
}

static void container_free(struct container *c)
{
	nnh5_list_free(c->list);
	nnh5_dict_free(c->dict);
}

static void build_list12(struct container *c)
{
	container_init(c, "list");
	for (int i = 0; i < 12; i++) {
		nnh5_dtype dt = (nnh5_dtype)(i % NNH5_DTYPE_COUNT);
		int64_t shape[2] = { i + 1, 2 };
		struct formula fm = default_formula(dt, 1 + i, 3 * i);
		container_add(c, NULL, dt, (size_t)(i % 3), shape, &fm);
	}
}

static void build_dict(struct container *c)
{
	static const char *const keys[] = { "zeta", "alpha", "Mid", "beta10", "beta2",
					    "gr\xc3\xb6\xc3\x9f" "e", "_last" };
	container_init(c, "dict");
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		nnh5_dtype dt = (nnh5_dtype)((i * 5 + 3) % NNH5_DTYPE_COUNT);
		int64_t shape[2] = { 2, (int64_t)i + 1 };
		struct formula fm = default_formula(dt, 7, (int64_t)i);
		container_add(c, keys[i], dt, 2, shape, &fm);
	}
}

static void build_state_dict(struct container *c)
{
	static const char *const keys[] = { "layer2.w", "hidden.weight", "layer10.w",
					    "a.b.c.d", "hidden.bias", "layer2.b", "a.b.e",
					    "a.z", "Zout.weight" };
	container_init(c, "state_dict");
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		nnh5_dtype dt = i == 2 ? NNH5_FLOAT64 : i % 2 ? NNH5_FLOAT32 : NNH5_BFLOAT16;
		int64_t shape[2] = { (int64_t)i + 1, 3 };
		struct formula fm = default_formula(dt, 3, (int64_t)i * 11);
		container_add(c, keys[i], dt, i % 3 ? 2 : 1, shape, &fm);
	}
}

static void add_attr(nnh5_file *f, cJSON *entry, const char *obj, const char *name,
		     const char *type, const char *s, int64_t iv, double fv)
{
	cJSON *a = cJSON_CreateObject();
	int rc;

	cJSON_AddStringToObject(a, "obj", obj);
	cJSON_AddStringToObject(a, "name", name);
	cJSON_AddStringToObject(a, "type", type);
	if (!strcmp(type, "string")) {
		rc = nnh5_file_set_attr_string(f, obj, name, s);
		cJSON_AddStringToObject(a, "value", s);
	} else if (!strcmp(type, "int")) {
		char buf[32];
		rc = nnh5_file_set_attr_int(f, obj, name, iv);
		snprintf(buf, sizeof buf, "%" PRId64, iv);
		cJSON_AddStringToObject(a, "value", buf); /* exact beyond 2^53 */
	} else {
		rc = nnh5_file_set_attr_float(f, obj, name, fv);
		cJSON_AddNumberToObject(a, "value", fv);
	}
	if (rc)
		die(name, rc);
	cJSON_AddItemToArray(cJSON_GetObjectItem(entry, "attrs"), a);
}

static void write_file_tensor(nnh5_file *f, cJSON *entry, const char *name, nnh5_dtype dt,
			      size_t ndim, const int64_t *shape, const struct formula *fm)
{
	nnh5_tensor *t = make_tensor(dt, ndim, shape, fm);
	int rc = nnh5_file_write_tensor(f, name, t);

	if (rc)
		die(name, rc);
	nnh5_tensor_free(t);
	add_object(entry, name, tensor_spec(dt, ndim, shape, fm));
}

static int cmd_write(const char *dir)
{
	static const int64_t shapes[4][4] = { { 17 }, { 3, 5 }, { 2, 3, 4 }, { 2, 1, 3, 2 } };
	cJSON *root = cJSON_CreateObject();
	struct container c;
	char *path, *text;
	nnh5_file *f;
	cJSON *e;
	FILE *out;
	int rc;

	cJSON_AddStringToObject(root, "writer", "nnh5");
	manifest_files = cJSON_AddArrayToObject(root, "files");

	/* One-call saves: one tensor of every dtype, ranks 1..4. */
	for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
		char name[64];
		size_t ndim = (size_t)(d % 4) + 1;
		struct formula fm = default_formula((nnh5_dtype)d, 5, d);
		nnh5_tensor *t = make_tensor((nnh5_dtype)d, ndim, shapes[d % 4], &fm);
		snprintf(name, sizeof name, "save_%s.h5", nnh5_dtype_name(d));
		path = join(dir, name);
		if ((rc = nnh5_save_tensor(path, t)))
			die(path, rc);
		free(path);
		nnh5_tensor_free(t);
		e = file_entry(name, "save");
		add_object(e, "/tensor", tensor_spec((nnh5_dtype)d, ndim, shapes[d % 4], &fm));
	}

	/* A rank-8 tensor. */
	{
		static const int64_t s8[8] = { 2, 1, 2, 1, 2, 1, 2, 3 };
		struct formula fm = default_formula(NNH5_FLOAT32, 1, 0);
		nnh5_tensor *t = make_tensor(NNH5_FLOAT32, 8, s8, &fm);
		path = join(dir, "save_rank8.h5");
		if ((rc = nnh5_save_tensor(path, t)))
			die(path, rc);
		free(path);
		nnh5_tensor_free(t);
		e = file_entry("save_rank8.h5", "save");
		add_object(e, "/tensor", tensor_spec(NNH5_FLOAT32, 8, s8, &fm));
	}

	/* A list of 12, a dict, a state dict, each the root of its own file. */
	build_list12(&c);
	path = join(dir, "save_list12.h5");
	if ((rc = nnh5_save_list(path, c.list)))
		die(path, rc);
	free(path);
	add_object(file_entry("save_list12.h5", "save"), "/", c.spec);
	container_free(&c);

	build_dict(&c);
	path = join(dir, "save_dict.h5");
	if ((rc = nnh5_save_dict(path, c.dict)))
		die(path, rc);
	free(path);
	add_object(file_entry("save_dict.h5", "save"), "/", c.spec);
	container_free(&c);

	build_state_dict(&c);
	path = join(dir, "save_state_dict.h5");
	if ((rc = nnh5_save_state_dict(path, c.dict)))
		die(path, rc);
	free(path);
	add_object(file_entry("save_state_dict.h5", "save"), "/", c.spec);
	container_free(&c);

	/* The handle API: many named objects and attributes in one file. */
	path = join(dir, "handle_multi.h5");
	if ((rc = nnh5_file_open(&f, path, NNH5_CREATE)))
		die(path, rc);
	e = file_entry("handle_multi.h5", "file");
	for (int d = 0; d < NNH5_DTYPE_COUNT; d++) {
		char name[64];
		static const int64_t z1[2] = { 0, 3 }, z2[3] = { 4, 0, 2 };
		struct formula fm = default_formula((nnh5_dtype)d, 3, 1 + d);
		snprintf(name, sizeof name, "scalars/%s", nnh5_dtype_name(d));
		write_file_tensor(f, e, name, (nnh5_dtype)d, 0, NULL, &fm);
		snprintf(name, sizeof name, "empty/%s", nnh5_dtype_name(d));
		write_file_tensor(f, e, name, (nnh5_dtype)d, d % 2 ? 2 : 3, d % 2 ? z1 : z2,
				  &fm);
	}
	{
		/* Sizes around 4 KiB: contiguous always, aligned from 4 KiB on. */
		static const int64_t big[2] = { 32, 40 }, b4k[1] = { 4096 }, s4k[1] = { 4095 },
				     f64[1] = { 1000 }, small[1] = { 10 };
		struct formula fm = default_formula(NNH5_FLOAT32, 1, 0);
		write_file_tensor(f, e, "sizes/big_f32", NNH5_FLOAT32, 2, big, &fm);
		fm = default_formula(NNH5_UINT8, 1, 0);
		write_file_tensor(f, e, "sizes/exact4k_u8", NNH5_UINT8, 1, b4k, &fm);
		write_file_tensor(f, e, "sizes/under4k_u8", NNH5_UINT8, 1, s4k, &fm);
		fm = default_formula(NNH5_FLOAT64, 1, 5);
		write_file_tensor(f, e, "sizes/big_f64", NNH5_FLOAT64, 1, f64, &fm);
		fm = default_formula(NNH5_INT16, 1, 5);
		write_file_tensor(f, e, "sizes/small_i16", NNH5_INT16, 1, small, &fm);
		fm = default_formula(NNH5_INT64, 2, 9);
		write_file_tensor(f, e, "x", NNH5_INT64, 1, small, &fm);
	}
	build_list12(&c);
	if ((rc = nnh5_file_write_list(f, "containers/mylist", c.list)))
		die("write_list", rc);
	add_object(e, "containers/mylist", c.spec);
	container_free(&c);
	build_dict(&c);
	if ((rc = nnh5_file_write_dict(f, "containers/mydict", c.dict)))
		die("write_dict", rc);
	add_object(e, "containers/mydict", c.spec);
	container_free(&c);
	build_state_dict(&c);
	if ((rc = nnh5_file_write_state_dict(f, "model/params", c.dict)))
		die("write_state_dict", rc);
	add_object(e, "model/params", c.spec);
	container_free(&c);

	add_attr(f, e, "/", "title", "string", "cross-check corpus", 0, 0);
	add_attr(f, e, "/", "unicode", "string", "\xce\xb1\xce\xb2\xce\xb3 \xe2\x86\x92 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", 0, 0);
	add_attr(f, e, "/", "empty_string", "string", "", 0, 0);
	add_attr(f, e, "/", "epoch", "int", NULL, 42, 0);
	add_attr(f, e, "/", "negative", "int", NULL, -((int64_t)1 << 62) - 7, 0);
	add_attr(f, e, "/", "lr", "float", NULL, 0, 0.0009765625);
	add_attr(f, e, "/", "third", "float", NULL, 0, 1.0 / 3.0);
	add_attr(f, e, "containers/mydict", "note", "string", "caf\xc3\xa9", 0, 0);
	add_attr(f, e, "containers/mydict", "count", "int", NULL, 7, 0);
	add_attr(f, e, "model/params/hidden", "units", "int", NULL, 128, 0);
	add_attr(f, e, "model/params", "scale", "float", NULL, 0, -2.5);
	add_attr(f, e, "x", "unit", "string", "m\xc2\xb2/s", 0, 0);
	add_attr(f, e, "x", "bias", "float", NULL, 0, 0.125);
	add_attr(f, e, "x", "rank", "int", NULL, -1, 0);
	if ((rc = nnh5_file_close(f)))
		die(path, rc);
	free(path);

	path = join(dir, "manifest.json");
	text = cJSON_Print(root);
	out = fopen(path, "w");
	if (!out || !text || fputs(text, out) < 0 || fclose(out) != 0) {
		fprintf(stderr, "xcheck write: %s: %s\n", path, strerror(errno));
		return 2;
	}
	free(path);
	cJSON_free(text);
	cJSON_Delete(root);
	return 0;
}

/* ------------------------------------------------------------ verifying */

static unsigned long n_checks, n_failed;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void check(bool ok, const char *where, const char *fmt, ...)
{
	va_list ap;

	n_checks++;
	if (ok)
		return;
	n_failed++;
	printf("FAIL %s: ", where);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int64_t json_int(const cJSON *o, const char *name, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);

	/* Decimal strings keep 64-bit values exact; beyond INT64_MAX they wrap
	 * to two's complement (the uint64 bit pattern). */
	if (cJSON_IsString(v) && v->valuestring[0] == '-')
		return strtoll(v->valuestring, NULL, 10);
	if (cJSON_IsString(v))
		return (int64_t)strtoull(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	return dflt;
}

static const char *json_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItem(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Compare tensor t with the spec (dtype, shape, formula values, bitwise). */
static void check_tensor(const char *where, const nnh5_tensor *t, const cJSON *spec)
{
	const char *dname = json_str(spec, "dtype");
	const cJSON *shape = cJSON_GetObjectItem(spec, "shape");
	const cJSON *fj = cJSON_GetObjectItem(spec, "formula");
	nnh5_dtype dt;
	struct formula fm;
	size_t ndim = (size_t)cJSON_GetArraySize(shape), numel = 1;
	unsigned char *want;
	bool same_shape;

	if (!dname || nnh5_dtype_from_name(&dt, dname)) {
		check(false, where, "manifest: bad dtype");
		return;
	}
	check(nnh5_tensor_dtype(t) == dt, where, "dtype %s, expected %s",
	      nnh5_dtype_name((int)nnh5_tensor_dtype(t)), dname);
	same_shape = nnh5_tensor_ndim(t) == ndim;
	for (size_t i = 0; i < ndim && same_shape; i++) {
		int64_t d = (int64_t)cJSON_GetArrayItem(shape, (int)i)->valuedouble;
		same_shape = nnh5_tensor_dim(t, i) == d;
		numel *= (size_t)d;
	}
	check(same_shape, where, "shape differs (rank %zu, expected rank %zu)",
	      nnh5_tensor_ndim(t), ndim);
	if (!same_shape || nnh5_tensor_dtype(t) != dt)
		return;
	fm.mul = json_int(fj, "mul", 1);
	fm.add = json_int(fj, "add", 0);
	fm.mod = json_int(fj, "mod", 97);
	fm.sub = json_int(fj, "sub", 0);
	fm.div = json_int(fj, "div", 1);
	fm.big = json_int(fj, "big", 0);
	want = calloc(numel ? numel : 1, nnh5_dtype_size((int)dt));
	if (!want)
		exit(2);
	fill(want, dt, numel, &fm);
	if (numel) {
		const unsigned char *got = nnh5_tensor_data(t);
		size_t es = nnh5_dtype_size((int)dt), bad = numel;
		for (size_t i = 0; i < numel; i++)
			if (memcmp(got + i * es, want + i * es, es)) {
				bad = i;
				break;
			}
		check(bad == numel, where, "element %zu differs (got %g)", bad,
		      bad < numel ? nnh5_tensor_get(t, bad) : 0.0);
	} else {
		check(true, where, "values");
	}
	free(want);
}

static void check_dict(const char *where, const nnh5_dict *d, const cJSON *spec)
{
	const cJSON *keys = cJSON_GetObjectItem(spec, "keys");
	const cJSON *items = cJSON_GetObjectItem(spec, "items");
	size_t n = (size_t)cJSON_GetArraySize(keys);
	char buf[1024];

	check(nnh5_dict_len(d) == n, where, "%zu keys, expected %zu", nnh5_dict_len(d), n);
	for (size_t i = 0; i < n && i < nnh5_dict_len(d); i++) {
		const char *want = cJSON_GetArrayItem(keys, (int)i)->valuestring;
		check(!strcmp(nnh5_dict_key(d, i), want), where, "key %zu is '%s', expected '%s'",
		      i, nnh5_dict_key(d, i), want);
	}
	for (const cJSON *it = items ? items->child : NULL; it; it = it->next) {
		const char *key = json_str(it, "key");
		nnh5_tensor *t = key ? nnh5_dict_get(d, key) : NULL;
		snprintf(buf, sizeof buf, "%.400s[%.400s]", where, key ? key : "?");
		check(t != NULL, buf, "missing key");
		if (t)
			check_tensor(buf, t, it);
	}
}

static void check_list(const char *where, const nnh5_list *l, const cJSON *spec)
{
	const cJSON *items = cJSON_GetObjectItem(spec, "items");
	size_t n = (size_t)cJSON_GetArraySize(items), i = 0;
	char buf[1024];

	check(nnh5_list_len(l) == n, where, "length %zu, expected %zu", nnh5_list_len(l), n);
	for (const cJSON *it = items ? items->child : NULL; it && i < nnh5_list_len(l);
	     it = it->next, i++) {
		snprintf(buf, sizeof buf, "%.400s[%zu]", where, i);
		check_tensor(buf, nnh5_list_get(l, i), it);
	}
}

/* Check an expected error, or an unexpected one. */
static bool check_status(const char *where, int rc, const cJSON *spec)
{
	const cJSON *err = cJSON_GetObjectItem(spec, "error");

	if (!err) {
		check(rc == NNH5_OK, where, "%s: %s", nnh5_status_name(rc), nnh5_error_message());
		return rc == NNH5_OK;
	}
	check(rc != NNH5_OK && !strcmp(nnh5_status_name(rc), json_str(err, "status")), where,
	      "status %s, expected %s (message: %s)", nnh5_status_name(rc),
	      json_str(err, "status"), rc ? nnh5_error_message() : "");
	if (rc != NNH5_OK) {
		const cJSON *subs = cJSON_GetObjectItem(err, "message_contains");
		for (const cJSON *s = subs ? subs->child : NULL; s; s = s->next)
			check(strstr(nnh5_error_message(), s->valuestring) != NULL, where,
			      "message '%s' does not mention '%s'", nnh5_error_message(),
			      s->valuestring);
	}
	return false;
}

static void verify_object(const char *fpath, const char *fname, nnh5_file *f, bool save,
			  const cJSON *obj)
{
	const char *kind = json_str(obj, "kind"), *opath = json_str(obj, "path");
	const char *fkind = json_str(obj, "file_kind");
	char where[512];
	int rc;

	snprintf(where, sizeof where, "%s:%s(%s)", fname, opath ? opath : "?", kind ? kind : "?");
	if (!kind || !opath) {
		check(false, where, "manifest: object without kind or path");
		return;
	}
	if (fkind && f) {
		nnh5_kind k = 0;
		rc = nnh5_file_kind(&k, f, opath);
		check(rc == NNH5_OK && !strcmp(nnh5_kind_name((int)k), fkind), where,
		      "nnh5_file_kind: %s (%s), expected %s", nnh5_kind_name((int)k),
		      nnh5_status_name(rc), fkind);
	}
	if (!strcmp(kind, "tensor")) {
		nnh5_tensor *t = NULL;
		rc = save ? nnh5_load_tensor(&t, fpath) : nnh5_file_read_tensor(&t, f, opath);
		if (check_status(where, rc, obj))
			check_tensor(where, t, obj);
		nnh5_tensor_free(t);
	} else if (!strcmp(kind, "list")) {
		nnh5_list *l = NULL;
		rc = save ? nnh5_load_list(&l, fpath) : nnh5_file_read_list(&l, f, opath);
		if (check_status(where, rc, obj))
			check_list(where, l, obj);
		nnh5_list_free(l);
	} else if (!strcmp(kind, "dict") || !strcmp(kind, "state_dict")) {
		bool sd = !strcmp(kind, "state_dict");
		nnh5_dict *d = NULL;
		if (save)
			rc = sd ? nnh5_load_state_dict(&d, fpath) : nnh5_load_dict(&d, fpath);
		else
			rc = sd ? nnh5_file_read_state_dict(&d, f, opath)
				: nnh5_file_read_dict(&d, f, opath);
		if (check_status(where, rc, obj))
			check_dict(where, d, obj);
		nnh5_dict_free(d);
	} else {
		check(false, where, "manifest: unknown kind");
	}
}

static void verify_attr(const char *fname, nnh5_file *f, const cJSON *a)
{
	const char *obj = json_str(a, "obj"), *name = json_str(a, "name");
	const char *type = json_str(a, "type");
	const cJSON *val = cJSON_GetObjectItem(a, "value");
	char where[512];
	int rc;

	snprintf(where, sizeof where, "%s:%s@%s", fname, obj ? obj : "?", name ? name : "?");
	if (!obj || !name || !type || (!val && !cJSON_GetObjectItem(a, "error"))) {
		check(false, where, "manifest: incomplete attribute");
		return;
	}
	if (!strcmp(type, "string")) {
		char *s = NULL;
		rc = nnh5_file_get_attr_string(&s, f, obj, name);
		if (check_status(where, rc, a))
			check(!strcmp(s, val->valuestring), where, "'%s', expected '%s'", s,
			      val->valuestring);
		nnh5_free(s);
	} else if (!strcmp(type, "int")) {
		int64_t v = 0, want = json_int(a, "value", 0);
		rc = nnh5_file_get_attr_int(&v, f, obj, name);
		if (check_status(where, rc, a))
			check(v == want, where, "%" PRId64 ", expected %" PRId64, v, want);
	} else {
		double v = 0, want = val ? val->valuedouble : 0.0;
		rc = nnh5_file_get_attr_float(&v, f, obj, name);
		if (check_status(where, rc, a))
			check(memcmp(&v, &want, sizeof v) == 0, where, "%.17g, expected %.17g", v,
			      want);
	}
}

static char *slurp(const char *path)
{
	FILE *in = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!in)
		return NULL;
	if (fseek(in, 0, SEEK_END) == 0 && (n = ftell(in)) >= 0 && fseek(in, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		if (fread(buf, 1, (size_t)n, in) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(in);
	return buf;
}

static int cmd_verify(const char *dir)
{
	char *mpath = join(dir, "manifest.json"), *text = slurp(mpath);
	cJSON *root = text ? cJSON_Parse(text) : NULL;
	const cJSON *files = cJSON_GetObjectItem(root, "files");

	if (!cJSON_IsArray(files)) {
		fprintf(stderr, "xcheck verify: %s: cannot read the manifest\n", mpath);
		return 2;
	}
	for (const cJSON *e = files->child; e; e = e->next) {
		const char *fname = json_str(e, "file"), *api = json_str(e, "api");
		const cJSON *objs = cJSON_GetObjectItem(e, "objects");
		const cJSON *attrs = cJSON_GetObjectItem(e, "attrs");
		char *fpath;
		nnh5_file *f = NULL;
		int rc;

		if (!fname || !api) {
			check(false, "manifest", "file entry without file or api");
			continue;
		}
		fpath = join(dir, fname);
		rc = nnh5_file_open(&f, fpath, NNH5_READ);
		check(rc == NNH5_OK, fname, "open: %s: %s", nnh5_status_name(rc),
		      nnh5_error_message());
		if (rc == NNH5_OK) {
			bool save = !strcmp(api, "save");
			for (const cJSON *o = objs ? objs->child : NULL; o; o = o->next)
				verify_object(fpath, fname, f, save, o);
			for (const cJSON *a = attrs ? attrs->child : NULL; a; a = a->next)
				verify_attr(fname, f, a);
			nnh5_file_discard(f);
		}
		free(fpath);
	}
	printf("xcheck verify: %lu checks, %lu failed\n", n_checks, n_failed);
	cJSON_Delete(root);
	free(text);
	free(mpath);
	return n_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "write"))
		return cmd_write(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "verify"))
		return cmd_verify(argv[2]);
	fprintf(stderr, "usage: xcheck write DIR | xcheck verify DIR\n");
	return 2;
}
