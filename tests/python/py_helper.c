/*
 * tests/python/py_helper.c - the C side of the tests of tools/nnh5.py.
 *
 *   py_helper write KIND FILE [torch]
 *       write a corpus of every dtype (special values, NaN payloads, -0.0,
 *       infinities, scalars, empty and high-rank shapes, datasets on both
 *       sides of the compact limit) as one KIND (state_dict, dict, list or
 *       tensor) with the one-call nnh5_save_*, then print it as `dump` does.
 *       With "torch", only the dtypes PyTorch 1.13 has (no uint16/32/64).
 *   py_helper dump KIND FILE [require]
 *       load FILE's root as KIND (checksums verified; with "require", also
 *       refused when missing) and print one line per tensor:
 *       key TAB dtype TAB shape TAB stored checksum (hex, or -) TAB data (hex)
 *   py_helper roundtrip FILE
 *       write the corpus as each KIND to FILE, load it back and compare
 *       bitwise in C; prints the number of tensors compared.
 *   py_helper resave FILE_IN FILE_OUT
 *       load a state dict and save it again (nnh5_load/save_state_dict).
 *   py_helper model-forward MODEL IN OUT
 *       nnh5_load_model(MODEL), run the tensor in IN (nnh5_load_tensor) and
 *       save the output to OUT; prints the model (nnh5_model_format).
 *   py_helper model-verify MODEL
 *       nnh5_verify_model: prints "bitwise B max_abs_diff D numel N".
 *   py_helper version
 *
 * Errors print "py_helper: WHAT: STATUS_NAME: message" on stderr and exit 1.
 */
#include <nnh5.h>
#include <nnh5/nn.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
	fprintf(stderr, "py_helper: %s: %s: %s\n", what, nnh5_status_name(rc), nnh5_error_message());
	return 1;
}

/* ------------------------------------------------------------- the corpus */

#define N_SHAPES 8
#define MAX_RANK 32

struct shape {
	size_t ndim;
	int64_t dims[MAX_RANK];
};

/* scalar, empty, empty inside, small, non-square, rank 3, >= 4 KiB for every dtype, rank 32 */
static struct shape corpus_shape(int i)
{
	static const int64_t small[][3] = { { 0 }, { 0 }, { 2, 0, 3 }, { 5 }, { 3, 4 }, { 7, 3, 5 },
					   { 64, 80 } };
	static const size_t ndims[] = { 0, 1, 3, 1, 2, 3, 2 };
	struct shape s = { 0, { 0 } };

	if (i < N_SHAPES - 1) {
		s.ndim = ndims[i];
		memcpy(s.dims, small[i], s.ndim * sizeof(int64_t));
	} else {
		s.ndim = MAX_RANK;
		for (size_t d = 0; d < MAX_RANK; d++)
			s.dims[d] = d % 6 == 5 ? 2 : 1;
	}
	return s;
}

static uint64_t next_random(uint64_t *state)
{
	/* xorshift64*: random bit patterns, NaNs and denormals included */
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * UINT64_C(2685821657736338717);
}

/* -0, +inf, -inf, a quiet NaN with a payload, a signalling NaN, an all-ones NaN, a denormal */
static const uint16_t specials16[] = { 0x8000, 0x7c00, 0xfc00, 0x7e01, 0x7c01, 0xffff, 0x0001 };
static const uint16_t specials_bf16[] = { 0x8000, 0x7f80, 0xff80, 0x7fc1, 0x7f81, 0xffff, 0x0001 };
static const uint32_t specials32[] = { 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00001u,
				       0x7f800001u, 0xffffffffu, 0x00000001u };
static const uint64_t specials64[] = { UINT64_C(0x8000000000000000), UINT64_C(0x7ff0000000000000),
				       UINT64_C(0xfff0000000000000), UINT64_C(0x7ff8000000000001),
				       UINT64_C(0x7ff0000000000001), UINT64_C(0xffffffffffffffff),
				       UINT64_C(0x0000000000000001) };
#define N_SPECIALS 7

static void fill(nnh5_tensor *t, uint64_t seed)
{
	unsigned char *p = nnh5_tensor_mutable_data(t);
	size_t n = nnh5_tensor_nbytes(t), es = nnh5_dtype_size((int)nnh5_tensor_dtype(t));
	size_t numel = nnh5_tensor_numel(t);
	uint64_t st = seed * UINT64_C(0x9e3779b97f4a7c15) + 1;

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)next_random(&st);
	for (size_t i = 0; i < numel && i < N_SPECIALS; i++) {
		switch (nnh5_tensor_dtype(t)) {
		case NNH5_FLOAT16: memcpy(p + i * es, &specials16[i], es); break;
		case NNH5_BFLOAT16: memcpy(p + i * es, &specials_bf16[i], es); break;
		case NNH5_FLOAT32: memcpy(p + i * es, &specials32[i], es); break;
		case NNH5_FLOAT64: memcpy(p + i * es, &specials64[i], es); break;
		default: break;
		}
	}
	if (nnh5_tensor_dtype(t) == NNH5_BOOL)
		for (size_t i = 0; i < n; i++)
			p[i] &= 1;
}

/* Leave out the dtypes PyTorch 1.13 does not have (uint16..64, float8). */
static bool torch_only;

/* The corpus as a dict of "<dtype>.t<shape index>" (state dict keys) or "<dtype>_t<i>". */
static int make_corpus(nnh5_dict **out, char sep)
{
	nnh5_dict *d;
	int rc = nnh5_dict_new(&d);

	for (int dt = 0; !rc && dt < NNH5_DTYPE_COUNT; dt++) {
		if (torch_only && (dt == NNH5_UINT16 || dt == NNH5_UINT32 || dt == NNH5_UINT64 ||
				   dt == NNH5_FLOAT8_E4M3FN || dt == NNH5_FLOAT8_E5M2))
			continue;
		for (int i = 0; !rc && i < N_SHAPES; i++) {
			struct shape s = corpus_shape(i);
			nnh5_tensor *t;
			char key[64];
			rc = nnh5_tensor_new(&t, (nnh5_dtype)dt, s.ndim, s.dims);
			if (rc)
				break;
			if (nnh5_tensor_nbytes(t))
				fill(t, (uint64_t)(dt * N_SHAPES + i));
			snprintf(key, sizeof key, "%s%ct%d", nnh5_dtype_name(dt), sep, i);
			rc = nnh5_dict_set(d, key, t);
			if (rc)
				nnh5_tensor_free(t);
		}
	}
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

/* ------------------------------------------------------------ printing */

/* The dataset path of entry i of a container of kind, for its stored checksum. */
static void dataset_path(char *buf, size_t n, const char *kind, const char *key)
{
	snprintf(buf, n, "%s", key);
	if (strcmp(kind, "state_dict") == 0)
		for (char *c = buf; *c; c++)
			if (*c == '.')
				*c = '/';
}

static void print_tensor(const char *key, const nnh5_tensor *t, const char *stored)
{
	const unsigned char *p = nnh5_tensor_data(t);

	printf("%s\t%s\t", key, nnh5_dtype_name((int)nnh5_tensor_dtype(t)));
	for (size_t d = 0; d < nnh5_tensor_ndim(t); d++)
		printf("%s%" PRId64, d ? "," : "", nnh5_tensor_dim(t, d));
	printf("\t%s\t", stored);
	for (size_t i = 0; i < nnh5_tensor_nbytes(t); i++)
		printf("%02x", p[i]);
	putchar('\n');
}

/* Print a dict; f (may be NULL) supplies the stored checksums. */
static int print_dict(const nnh5_dict *d, nnh5_file *f, const char *kind)
{
	for (size_t i = 0; i < nnh5_dict_len(d); i++) {
		char stored[32] = "-", path[4096];
		const char *key = nnh5_dict_key(d, i);
		const nnh5_tensor *t = nnh5_dict_value(d, i);
		if (f) {
			uint64_t sum;
			bool present;
			dataset_path(path, sizeof path, kind, key);
			int rc = nnh5_file_stored_checksum(&sum, &present, f, path);
			if (rc)
				return fail("stored checksum", rc);
			if (present)
				snprintf(stored, sizeof stored, "%016" PRIx64, sum);
		} else {
			snprintf(stored, sizeof stored, "%016" PRIx64, nnh5_tensor_checksum(t));
		}
		print_tensor(key, t, stored);
	}
	return 0;
}

/* Add a copy of t to d under key. */
static int add_copy(nnh5_dict *d, const char *key, const nnh5_tensor *t)
{
	nnh5_tensor *c;
	int rc = nnh5_tensor_clone(&c, t);

	if (!rc && (rc = nnh5_dict_set(d, key, c)))
		nnh5_tensor_free(c);
	return rc;
}

/* A list, or a single tensor, as a new dict keyed "0", "1", ... or "tensor". */
static int as_dict(nnh5_dict **out, const nnh5_list *list, const nnh5_dict *items,
		   const nnh5_tensor *single)
{
	nnh5_dict *d;
	int rc = nnh5_dict_new(&d);
	size_t n = list ? nnh5_list_len(list) : items ? nnh5_dict_len(items) : 1;

	for (size_t i = 0; !rc && i < n; i++) {
		char key[32];
		snprintf(key, sizeof key, "%zu", i);
		rc = add_copy(d, single ? "tensor" : key,
			      list ? nnh5_list_get(list, i) : items ? nnh5_dict_value(items, i) : single);
	}
	if (rc) {
		nnh5_dict_free(d);
		return rc;
	}
	*out = d;
	return NNH5_OK;
}

/* ----------------------------------------------------- reading and writing */

/* The tensor saved alone by `write tensor`: (3, 4) float32 with the special values. */
#define SINGLE_KEY "float32_t4"

/* Read the root of f as kind into a new dict (lists and tensors keyed as in as_dict). */
static int read_kind(nnh5_dict **out, nnh5_file *f, const char *kind)
{
	nnh5_list *list = NULL;
	nnh5_tensor *t = NULL;
	int rc;

	if (strcmp(kind, "state_dict") == 0)
		return nnh5_file_read_state_dict(out, f, "/");
	if (strcmp(kind, "dict") == 0)
		return nnh5_file_read_dict(out, f, "/");
	if (strcmp(kind, "list") == 0)
		rc = nnh5_file_read_list(&list, f, "/");
	else
		rc = nnh5_file_read_tensor(&t, f, "tensor");
	if (!rc)
		rc = as_dict(out, list, NULL, t);
	nnh5_list_free(list);
	nnh5_tensor_free(t);
	return rc;
}

/* The corpus of kind, and (in *shown) what a reader of the saved file gets back. */
static int corpus_of(nnh5_dict **corpus, nnh5_dict **shown, const char *kind)
{
	bool plain = strcmp(kind, "state_dict") == 0 || strcmp(kind, "dict") == 0;
	int rc = make_corpus(corpus, strcmp(kind, "state_dict") == 0 ? '.' : '_');

	*shown = NULL;
	if (rc || plain)
		return rc;
	if (strcmp(kind, "list") == 0)
		rc = as_dict(shown, NULL, *corpus, NULL);
	else
		rc = as_dict(shown, NULL, NULL, nnh5_dict_get(*corpus, SINGLE_KEY));
	if (rc)
		nnh5_dict_free(*corpus);
	return rc;
}

/* Save the corpus d as kind to path. */
static int save_kind(const char *path, const char *kind, const nnh5_dict *d)
{
	nnh5_list *list;
	int rc;

	if (strcmp(kind, "state_dict") == 0)
		return nnh5_save_state_dict(path, d);
	if (strcmp(kind, "dict") == 0)
		return nnh5_save_dict(path, d);
	if (strcmp(kind, "tensor") == 0)
		return nnh5_save_tensor(path, nnh5_dict_get(d, SINGLE_KEY));
	rc = nnh5_list_new(&list);
	for (size_t i = 0; !rc && i < nnh5_dict_len(d); i++) {
		nnh5_tensor *c;
		rc = nnh5_tensor_clone(&c, nnh5_dict_value(d, i));
		if (!rc && (rc = nnh5_list_append(list, c)))
			nnh5_tensor_free(c);
	}
	if (!rc)
		rc = nnh5_save_list(path, list);
	nnh5_list_free(list);
	return rc;
}

static bool known_kind(const char *kind)
{
	return !strcmp(kind, "state_dict") || !strcmp(kind, "dict") || !strcmp(kind, "list") ||
	       !strcmp(kind, "tensor");
}

static int do_write(const char *kind, const char *path)
{
	nnh5_dict *d, *shown;
	int rc = corpus_of(&d, &shown, kind);

	if (rc)
		return fail("corpus", rc);
	if ((rc = save_kind(path, kind, d)))
		rc = fail("save", rc);
	else
		rc = print_dict(shown ? shown : d, NULL, kind);
	nnh5_dict_free(shown);
	nnh5_dict_free(d);
	return rc;
}

static int do_dump(const char *kind, const char *path, bool require)
{
	nnh5_open_options opts = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	nnh5_dict *d;
	int rc;

	opts.require_checksums = require;
	if ((rc = nnh5_file_open_ext(&f, path, NNH5_READ, &opts)))
		return fail("open", rc);
	if ((rc = read_kind(&d, f, kind))) {
		nnh5_file_close(f);
		return fail("load", rc);
	}
	rc = print_dict(d, f, kind);
	nnh5_dict_free(d);
	nnh5_file_close(f);
	return rc;
}

static int do_roundtrip(const char *path)
{
	static const char *const kinds[] = { "state_dict", "dict", "list", "tensor" };
	size_t compared = 0;

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		nnh5_dict *d, *shown, *back = NULL;
		nnh5_file *f = NULL;
		int rc = corpus_of(&d, &shown, kinds[k]);
		if (rc)
			return fail(kinds[k], rc);
		const nnh5_dict *want = shown ? shown : d;
		rc = save_kind(path, kinds[k], d);
		if (!rc)
			rc = nnh5_file_open(&f, path, NNH5_READ);
		if (!rc)
			rc = read_kind(&back, f, kinds[k]);
		nnh5_file_close(f);
		if (rc)
			return fail(kinds[k], rc);
		if (nnh5_dict_len(back) != nnh5_dict_len(want)) {
			fprintf(stderr, "py_helper: roundtrip %s: %zu tensors back, %zu saved\n",
				kinds[k], nnh5_dict_len(back), nnh5_dict_len(want));
			return 1;
		}
		for (size_t i = 0; i < nnh5_dict_len(want); i++) {
			if (strcmp(nnh5_dict_key(back, i), nnh5_dict_key(want, i)) ||
			    !nnh5_tensor_bitwise_equal(nnh5_dict_value(back, i), nnh5_dict_value(want, i))) {
				fprintf(stderr, "py_helper: roundtrip %s: tensor %zu ('%s') differs\n",
					kinds[k], i, nnh5_dict_key(want, i));
				return 1;
			}
			compared++;
		}
		nnh5_dict_free(back);
		nnh5_dict_free(shown);
		nnh5_dict_free(d);
	}
	printf("roundtrip: %zu tensors bitwise equal\n", compared);
	return 0;
}

static int do_resave(const char *in, const char *out)
{
	nnh5_dict *d;
	int rc = nnh5_load_state_dict(&d, in);

	if (rc)
		return fail("load", rc);
	rc = nnh5_save_state_dict(out, d);
	nnh5_dict_free(d);
	return rc ? fail("save", rc) : 0;
}

static int do_model_forward(const char *model, const char *in, const char *out)
{
	nnh5_model *m;
	nnh5_tensor *x, *y;
	char *text;
	int rc;

	if ((rc = nnh5_load_model(&m, model)))
		return fail("load_model", rc);
	if ((rc = nnh5_model_format(&text, m)))
		return fail("format", rc);
	printf("%s\n", text);
	nnh5_free(text);
	if ((rc = nnh5_load_tensor(&x, in)))
		return fail("load input", rc);
	if ((rc = nnh5_model_forward(&y, m, x)))
		return fail("forward", rc);
	if ((rc = nnh5_save_tensor(out, y)))
		return fail("save output", rc);
	nnh5_tensor_free(x);
	nnh5_tensor_free(y);
	nnh5_model_free(m);
	return 0;
}

static int do_model_verify(const char *model)
{
	nnh5_verify_result v;
	int rc = nnh5_verify_model(&v, model);

	if (rc)
		return fail("verify_model", rc);
	printf("bitwise %d max_abs_diff %.17g numel %zu\n", v.bitwise_equal ? 1 : 0, v.max_abs_diff,
	       v.numel);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "write") == 0 && known_kind(argv[2])) {
		torch_only = argc == 5 && strcmp(argv[4], "torch") == 0;
		return do_write(argv[2], argv[3]);
	}
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "dump") == 0 && known_kind(argv[2]))
		return do_dump(argv[2], argv[3], argc == 5 && strcmp(argv[4], "require") == 0);
	if (argc == 3 && strcmp(argv[1], "roundtrip") == 0)
		return do_roundtrip(argv[2]);
	if (argc == 4 && strcmp(argv[1], "resave") == 0)
		return do_resave(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "model-forward") == 0)
		return do_model_forward(argv[2], argv[3], argv[4]);
	if (argc == 3 && strcmp(argv[1], "model-verify") == 0)
		return do_model_verify(argv[2]);
	if (argc == 2 && strcmp(argv[1], "version") == 0) {
		printf("%s\n", nnh5_version());
		return 0;
	}
	fprintf(stderr, "usage: py_helper write|dump KIND FILE [require] | roundtrip FILE | "
			"resave IN OUT | model-forward MODEL IN OUT | model-verify MODEL | version\n"
			"KIND: state_dict, dict, list, tensor\n");
	return 2;
}
