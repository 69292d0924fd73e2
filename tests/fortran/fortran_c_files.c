/*
 * tests/fortran/fortran_c_files.c - the C side of tests/fortran/roundtrip.py:
 * the arrays of spec.py written and checked through the C API, and the
 * forward pass whose output the Fortran module must match bit for bit.
 *
 *   fortran_c_files write DIR          DIR/c_<type>_<tag>.h5 and DIR/c_sd.h5
 *   fortran_c_files check DIR P        DIR/P_<type>_<tag>.h5 and DIR/P_sd.h5
 *                                      bitwise equal to what write writes
 *   fortran_c_files forward MODEL X Y  Y = the forward pass of X (nnh5_model_forward)
 *   fortran_c_files mlp MODEL          a small float32 MLP (4 -> 8 -> 2) saved to MODEL
 */
#include <nnh5.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct type_spec {
	const char *name;
	nnh5_dtype dtype;
} type_spec;

static const type_spec types[] = {
	{ "i8", NNH5_INT8 },     { "i16", NNH5_INT16 },   { "i32", NNH5_INT32 }, { "i64", NNH5_INT64 },
	{ "r32", NNH5_FLOAT32 }, { "r64", NNH5_FLOAT64 }, { "l", NNH5_BOOL },
	{ "c32", NNH5_COMPLEX64 }, { "c64", NNH5_COMPLEX128 },
};

/* spec.py's SHAPES, in Fortran order (reversed for C below) */
typedef struct shape_spec {
	const char *tag;
	size_t ndim;
	int64_t fshape[4];
} shape_spec;

static const shape_spec shapes[] = {
	{ "r0", 0, { 0 } },       { "r1", 1, { 3 } },       { "r2", 2, { 3, 2 } },
	{ "r3", 3, { 3, 2, 4 } }, { "r4", 4, { 2, 3, 1, 2 } }, { "e1", 1, { 0 } },
	{ "e2", 2, { 3, 0 } },
};

#define N_TYPES (sizeof(types) / sizeof(types[0]))
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static float val_f32(int64_t k)
{
	return k == 0 ? FLT_MAX : k == 1 ? -FLT_MIN / 2 : k == 2 ? -0.0f : (float)(k - 7) * 0.375f;
}

static double val_f64(int64_t k)
{
	return k == 0 ? DBL_MAX : k == 1 ? -DBL_MIN / 2 : k == 2 ? -0.0 : (double)(k - 7) * 0.375;
}

/* spec.py's val(): element k of each type */
static void put(void *data, nnh5_dtype dt, int64_t k)
{
	switch (dt) {
	case NNH5_INT8:
		((int8_t *)data)[k] = (int8_t)(((k * 37 + 11) % 256) - 128);
		break;
	case NNH5_INT16:
		((int16_t *)data)[k] = (int16_t)(((k * 4099 + 7) % 65536) - 32768);
		break;
	case NNH5_INT32:
		((int32_t *)data)[k] = (int32_t)(((k * 1000003 + 5) % 4294967296LL) - 2147483648LL);
		break;
	case NNH5_INT64:
		((int64_t *)data)[k] = k == 0 ? INT64_MIN
				     : k == 1 ? INT64_MAX
						: k * 123456789012345LL - 2000000000000000LL;
		break;
	case NNH5_FLOAT32:
		((float *)data)[k] = val_f32(k);
		break;
	case NNH5_FLOAT64:
		((double *)data)[k] = val_f64(k);
		break;
	case NNH5_COMPLEX64: /* real part element k's, imaginary part element k + 3's */
		((float *)data)[2 * k] = val_f32(k);
		((float *)data)[2 * k + 1] = val_f32(k + 3);
		break;
	case NNH5_COMPLEX128:
		((double *)data)[2 * k] = val_f64(k);
		((double *)data)[2 * k + 1] = val_f64(k + 3);
		break;
	case NNH5_BOOL:
		((bool *)data)[k] = k % 3 == 0;
		break;
	default:
		break;
	}
}

static nnh5_tensor *make(nnh5_dtype dt, const shape_spec *s)
{
	int64_t cshape[4];
	nnh5_tensor *t;
	for (size_t i = 0; i < s->ndim; i++)
		cshape[i] = s->fshape[s->ndim - 1 - i];
	if (nnh5_tensor_new(&t, dt, s->ndim, cshape))
		return NULL;
	for (int64_t k = 0; k < (int64_t)nnh5_tensor_numel(t); k++)
		put(nnh5_tensor_mutable_data(t), dt, k);
	return t;
}

static int fail(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, nnh5_error_message());
	return 1;
}

static int write_all(const char *dir)
{
	char path[4096], key[64];
	nnh5_dict *sd;
	if (nnh5_dict_new(&sd))
		return fail("dict");
	for (size_t i = 0; i < N_TYPES; i++) {
		for (size_t j = 0; j < N_SHAPES; j++) {
			nnh5_tensor *t = make(types[i].dtype, &shapes[j]);
			snprintf(path, sizeof(path), "%s/c_%s_%s.h5", dir, types[i].name, shapes[j].tag);
			snprintf(key, sizeof(key), "%s.%s", types[i].name, shapes[j].tag);
			if (!t || nnh5_save_tensor(path, t) || nnh5_dict_set(sd, key, t))
				return fail(path);
		}
	}
	snprintf(path, sizeof(path), "%s/c_sd.h5", dir);
	if (nnh5_save_state_dict(path, sd))
		return fail(path);
	nnh5_dict_free(sd);
	return 0;
}

static int check_all(const char *dir, const char *p)
{
	char path[4096], key[64];
	nnh5_dict *sd;
	int bad = 0;
	snprintf(path, sizeof(path), "%s/%s_sd.h5", dir, p);
	if (nnh5_load_state_dict(&sd, path))
		return fail(path);
	for (size_t i = 0; i < N_TYPES; i++) {
		for (size_t j = 0; j < N_SHAPES; j++) {
			nnh5_tensor *e = make(types[i].dtype, &shapes[j]), *b;
			snprintf(path, sizeof(path), "%s/%s_%s_%s.h5", dir, p, types[i].name,
				 shapes[j].tag);
			snprintf(key, sizeof(key), "%s.%s", types[i].name, shapes[j].tag);
			if (!e || nnh5_load_tensor(&b, path))
				return fail(path);
			if (!nnh5_tensor_bitwise_equal(b, e)) {
				fprintf(stderr, "FAILED: %s differs\n", path);
				bad++;
			}
			if (!nnh5_dict_get(sd, key) || !nnh5_tensor_bitwise_equal(nnh5_dict_get(sd, key), e)) {
				fprintf(stderr, "FAILED: %s_sd.h5 key %s differs\n", p, key);
				bad++;
			}
			nnh5_tensor_free(b);
			nnh5_tensor_free(e);
		}
	}
	nnh5_dict_free(sd);
	if (!bad)
		printf("ok: C read %s's files bitwise\n", p);
	return bad != 0;
}

static int forward(const char *model, const char *xpath, const char *ypath)
{
	nnh5_model *m;
	nnh5_tensor *x, *y;
	if (nnh5_load_model(&m, model) || nnh5_load_tensor(&x, xpath) || nnh5_model_forward(&y, m, x) ||
	    nnh5_save_tensor(ypath, y))
		return fail("forward");
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(m);
	return 0;
}

static int mlp(const char *path)
{
	nnh5_model *m;
	if (nnh5_model_new(&m, NNH5_FLOAT32, 7) || nnh5_model_add_linear(m, "fc1", 4, 8, true) ||
	    nnh5_model_add_relu(m, "act") || nnh5_model_add_linear(m, "fc2", 8, 2, true) ||
	    nnh5_save_model(path, m, NULL))
		return fail("mlp");
	nnh5_model_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "write"))
		return write_all(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "check"))
		return check_all(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "forward"))
		return forward(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(argv[1], "mlp"))
		return mlp(argv[2]);
	fprintf(stderr, "usage: fortran_c_files write DIR | check DIR PREFIX | forward MODEL X Y | "
			"mlp MODEL\n");
	return 2;
}
