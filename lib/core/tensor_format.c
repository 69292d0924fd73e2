/*
 * lib/core/tensor_format.c - nnh5_tensor_format(): a tensor as text, character
 * for character what PyTorch 1.13 prints for repr(tensor) with the default
 * print options (precision 4, threshold 1000, edgeitems 3, linewidth 80,
 * sci_mode None). The structure follows torch/_tensor_str.py (_Formatter,
 * _vector_str, _tensor_str_with_formatter, get_summarized_data,
 * _add_suffixes) so that the two can be compared rule by rule; users paste
 * our output next to torch's and expect them to be identical.
 *
 * torch 1.13 has no uint16, uint32 or uint64. Those tensors print as torch
 * prints an integer tensor holding the same values, with the suffix
 * "dtype=uint16" (uint32, uint64): there is no torch.uint16 to name, and
 * dropping the suffix would make them look like int64.
 */
#include "core/internal.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* torch's default print options. */
#define PRECISION_FMT_F "%.4f"
#define PRECISION_FMT_E "%.4e"
#define THRESHOLD 1000
#define EDGEITEMS 3
#define LINEWIDTH 80

/* "%.4f" of the largest double is 315 characters; everything else is shorter. */
#define ELEM_MAX 400

/* The prefix torch prints; its length is the indent of continuation lines. */
static const char PREFIX[] = "tensor(";
#define PREFIX_LEN (sizeof PREFIX - 1)

static void sb_repeat(nnh5__strbuf *sb, char c, size_t n)
{
	if (!nnh5__strbuf_reserve(sb, n))
		return;
	memset(sb->p + sb->len, c, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

/* How elements look: torch's _Formatter state. */
struct formatter {
	bool floating;
	bool int_mode;
	bool sci_mode;
	size_t width;
};

/* Everything the recursive printers need. */
struct ctx {
	const nnh5_tensor *t;
	bool summarize;
	size_t stride[NNH5_MAX_NDIM];
	struct formatter f;
	/* Complex tensors: f formats the real parts, f_imag the imaginary parts. */
	bool complex;
	struct formatter f_imag;
	unsigned part; /* the part elem_float reads while a formatter is built: 0 real, 1 imaginary */
	/* Scratch for the formatter's passes over the shown elements. */
	size_t count;
	double min_abs;
	double max_abs;
};

/*
 * Element i of a float tensor as torch sees it: float16/bfloat16 go through
 * float, like self.float(); float8 values are exact in double. For complex,
 * part 0 is the real part and 1 the imaginary part (torch's .real, .imag).
 */
static double elem_part(const nnh5_tensor *t, size_t i, unsigned part)
{
	switch (t->dtype) {
	case NNH5_FLOAT8_E4M3FN:
		return nnh5_float8_e4m3fn_to_double(((const uint8_t *)t->data)[i]);
	case NNH5_FLOAT8_E5M2:
		return nnh5_float8_e5m2_to_double(((const uint8_t *)t->data)[i]);
	case NNH5_COMPLEX64:
		return (double)((const float *)t->data)[2 * i + part];
	case NNH5_COMPLEX128:
		return ((const double *)t->data)[2 * i + part];
	case NNH5_FLOAT16:
		return (double)nnh5_half_to_float(((const uint16_t *)t->data)[i]);
	case NNH5_BFLOAT16:
		return (double)nnh5_bfloat16_to_float(((const uint16_t *)t->data)[i]);
	case NNH5_FLOAT32:
		return (double)((const float *)t->data)[i];
	case NNH5_FLOAT64:
		return ((const double *)t->data)[i];
	default:
		assert(!"not a float dtype");
		return 0.0;
	}
}

static double elem_float(const struct ctx *c, size_t i)
{
	return elem_part(c->t, i, c->part);
}

static bool dtype_unsigned(nnh5_dtype d)
{
	return d == NNH5_UINT8 || d == NNH5_UINT16 || d == NNH5_UINT32 || d == NNH5_UINT64;
}

static int64_t elem_signed(const nnh5_tensor *t, size_t i)
{
	switch (t->dtype) {
	case NNH5_INT8:
		return ((const int8_t *)t->data)[i];
	case NNH5_INT16:
		return ((const int16_t *)t->data)[i];
	case NNH5_INT32:
		return ((const int32_t *)t->data)[i];
	case NNH5_INT64:
		return ((const int64_t *)t->data)[i];
	default:
		assert(!"not a signed integer dtype");
		return 0;
	}
}

static uint64_t elem_unsigned(const nnh5_tensor *t, size_t i)
{
	switch (t->dtype) {
	case NNH5_UINT8:
		return ((const uint8_t *)t->data)[i];
	case NNH5_UINT16:
		return ((const uint16_t *)t->data)[i];
	case NNH5_UINT32:
		return ((const uint32_t *)t->data)[i];
	case NNH5_UINT64:
		return ((const uint64_t *)t->data)[i];
	default:
		assert(!"not an unsigned integer dtype");
		return 0;
	}
}

/*
 * Python prints every NaN as "nan" whatever its sign bit, where glibc
 * prints "-nan"; infinities agree but are spelled out for symmetry.
 */
static int nonfinite_str(char *buf, size_t n, double x)
{
	if (isnan(x))
		return snprintf(buf, n, "nan");
	return snprintf(buf, n, x < 0 ? "-inf" : "inf");
}

/* Python's "{:.4f}". glibc and Python both round the exact binary value half-even. */
static size_t str_fixed(char *buf, size_t n, double x)
{
	int r = isfinite(x) ? snprintf(buf, n, PRECISION_FMT_F, x) : nonfinite_str(buf, n, x);
	return r < 0 ? 0 : (size_t)r;
}

/* Python's "{:.4e}": like C, at least two exponent digits. */
static size_t str_sci(char *buf, size_t n, double x)
{
	int r = isfinite(x) ? snprintf(buf, n, PRECISION_FMT_E, x) : nonfinite_str(buf, n, x);
	return r < 0 ? 0 : (size_t)r;
}

/* Python's "{:.0f}" plus the "." torch adds to finite values to mark a float tensor. */
static size_t str_intfloat(char *buf, size_t n, double x)
{
	int r = isfinite(x) ? snprintf(buf, n, "%.0f.", x) : nonfinite_str(buf, n, x);
	return r < 0 ? 0 : (size_t)r;
}

/* x unpadded in the float mode of f. */
static size_t float_str(char *buf, size_t n, const struct formatter *f, double x)
{
	if (f->sci_mode)
		return str_sci(buf, n, x);
	if (f->int_mode)
		return str_intfloat(buf, n, x);
	return str_fixed(buf, n, x);
}

/* Element i unpadded, as Python's "{}" (integers, bool) or the float mode chosen. */
static size_t elem_str(char *buf, size_t n, const struct ctx *c, size_t i)
{
	const nnh5_tensor *t = c->t;
	int r;

	if (c->f.floating)
		return float_str(buf, n, &c->f, elem_float(c, i));
	if (t->dtype == NNH5_BOOL)
		r = snprintf(buf, n, "%s", ((const uint8_t *)t->data)[i] ? "True" : "False");
	else if (dtype_unsigned(t->dtype))
		r = snprintf(buf, n, "%" PRIu64, elem_unsigned(t, i));
	else
		r = snprintf(buf, n, "%" PRId64, elem_signed(t, i));
	return r < 0 ? 0 : (size_t)r;
}

/*
 * torch's complex element: the real part padded to its formatter's width,
 * then the imaginary part padded to its own, "j" appended and the padding
 * stripped, joined with "+" unless it starts with a sign. Not padded further.
 */
static void put_complex(nnh5__strbuf *sb, const struct ctx *c, size_t i)
{
	char buf[ELEM_MAX];
	size_t n = float_str(buf, sizeof buf, &c->f, elem_part(c->t, i, 0));

	if (n < c->f.width)
		sb_repeat(sb, ' ', c->f.width - n);
	nnh5__strbuf_putn(sb, buf, n);
	n = float_str(buf, sizeof buf, &c->f_imag, elem_part(c->t, i, 1));
	if (buf[0] != '-' && buf[0] != '+')
		nnh5__strbuf_putn(sb, "+", 1);
	nnh5__strbuf_putn(sb, buf, n);
	nnh5__strbuf_putn(sb, "j", 1);
}

/* Element i right-aligned to the common width (torch pads on the left). */
static void put_elem(nnh5__strbuf *sb, const struct ctx *c, size_t i)
{
	char buf[ELEM_MAX];
	size_t n;

	if (c->complex) {
		put_complex(sb, c, i);
		return;
	}
	n = elem_str(buf, sizeof buf, c, i);

	if (n < c->f.width)
		sb_repeat(sb, ' ', c->f.width - n);
	nnh5__strbuf_putn(sb, buf, n);
}

/*
 * Call fn for every element that will be shown, so that the formatter only
 * looks at those (torch builds it from get_summarized_data()).
 */
typedef void (*visit_fn)(struct ctx *c, size_t i);

static void visit_shown(struct ctx *c, size_t d, size_t off, visit_fn fn)
{
	size_t n, k;

	if (d == c->t->ndim) {
		fn(c, off);
		return;
	}
	n = (size_t)c->t->shape[d];
	for (k = 0; k < n; k++) {
		if (c->summarize && n > 2 * EDGEITEMS && k == EDGEITEMS)
			k = n - EDGEITEMS;
		visit_shown(c, d + 1, off + k * c->stride[d], fn);
	}
}

static void width_of_elem(struct ctx *c, size_t i)
{
	char buf[ELEM_MAX];
	size_t n = elem_str(buf, sizeof buf, c, i);

	if (n > c->f.width)
		c->f.width = n;
}

/* First pass over floats: the range of nonzero finite magnitudes and whether all are integers. */
static void scan_float(struct ctx *c, size_t i)
{
	double x = elem_float(c, i);
	double a;

	if (!isfinite(x) || x == 0.0)
		return;
	a = fabs(x);
	if (c->count == 0 || a < c->min_abs)
		c->min_abs = a;
	if (c->count == 0 || a > c->max_abs)
		c->max_abs = a;
	c->count++;
	if (x != ceil(x))
		c->f.int_mode = false;
}

/* Second pass over floats: torch measures the width on nonzero finite values only. */
static void width_of_float(struct ctx *c, size_t i)
{
	double x = elem_float(c, i);

	if (!isfinite(x) || x == 0.0)
		return;
	width_of_elem(c, i);
}

static void build_formatter(struct ctx *c)
{
	c->f.floating = nnh5_dtype_is_float(c->t->dtype) || c->complex;
	c->f.int_mode = true;
	c->f.sci_mode = false;
	c->f.width = 1;

	if (!c->f.floating) {
		visit_shown(c, 0, 0, width_of_elem);
		return;
	}
	c->count = 0;
	visit_shown(c, 0, 0, scan_float);
	if (c->count == 0)
		return; /* nothing but zeros, nan and inf: int mode, width 1 */
	if (c->max_abs / c->min_abs > 1000.0 || c->max_abs > 1.0e8 ||
	    (!c->f.int_mode && c->min_abs < 1.0e-4))
		c->f.sci_mode = true;
	visit_shown(c, 0, 0, width_of_float);
}

/* torch's _vector_str: one row, wrapped so that lines stay within linewidth. */
static void put_vector(nnh5__strbuf *sb, const struct ctx *c, size_t off, size_t dim,
		       size_t indent)
{
	size_t n = (size_t)c->t->shape[dim];
	/* torch counts a complex element as both widths and the "j". */
	size_t elem_len = c->f.width + 2 + (c->complex ? c->f_imag.width + 1 : 0);
	size_t per_line = indent < LINEWIDTH ? (LINEWIDTH - indent) / elem_len : 0;
	bool elide = c->summarize && n > 2 * EDGEITEMS;
	size_t item = 0; /* position in torch's list of strings, "..." included */
	size_t k;

	if (per_line < 1)
		per_line = 1;
	nnh5__strbuf_putn(sb, "[", 1);
	for (k = 0; k < n; k++, item++) {
		if (item > 0) {
			if (item % per_line == 0) {
				nnh5__strbuf_putn(sb, ",\n", 2);
				sb_repeat(sb, ' ', indent + 1);
			} else {
				nnh5__strbuf_putn(sb, ", ", 2);
			}
		}
		if (elide && k == EDGEITEMS) {
			/* The ellipsis counts as one item of the line, whatever the width. */
			nnh5__strbuf_puts(sb, " ...");
			k = n - EDGEITEMS - 1;
			continue;
		}
		put_elem(sb, c, off + k * c->stride[dim]);
	}
	nnh5__strbuf_putn(sb, "]", 1);
}

/* torch's _tensor_str_with_formatter for the sub-tensor starting at dimension dim. */
static void put_tensor(nnh5__strbuf *sb, const struct ctx *c, size_t off, size_t dim,
		       size_t indent)
{
	size_t rank = c->t->ndim - dim;
	size_t n, k;
	bool elide;

	if (rank == 0) {
		put_elem(sb, c, off);
		return;
	}
	if (rank == 1) {
		put_vector(sb, c, off, dim, indent);
		return;
	}
	n = (size_t)c->t->shape[dim];
	elide = c->summarize && n > 2 * EDGEITEMS;
	nnh5__strbuf_putn(sb, "[", 1);
	for (k = 0; k < n; k++) {
		if (k > 0) {
			/* Deeper blocks are separated by rank-2 blank lines. */
			nnh5__strbuf_putn(sb, ",", 1);
			sb_repeat(sb, '\n', rank - 1);
			sb_repeat(sb, ' ', indent + 1);
		}
		if (elide && k == EDGEITEMS) {
			nnh5__strbuf_puts(sb, "...");
			nnh5__strbuf_putn(sb, ",", 1);
			sb_repeat(sb, '\n', rank - 1);
			sb_repeat(sb, ' ', indent + 1);
			k = n - EDGEITEMS;
		}
		put_tensor(sb, c, off + k * c->stride[dim], dim + 1, indent + 1);
	}
	nnh5__strbuf_putn(sb, "]", 1);
}

/* str(self.dtype) in torch; NULL for torch's defaults when the tensor is not empty. */
static const char *dtype_suffix(nnh5_dtype d)
{
	switch (d) {
	case NNH5_BOOL:
		return "dtype=torch.bool";
	case NNH5_INT8:
		return "dtype=torch.int8";
	case NNH5_INT16:
		return "dtype=torch.int16";
	case NNH5_INT32:
		return "dtype=torch.int32";
	case NNH5_INT64:
		return "dtype=torch.int64";
	case NNH5_UINT8:
		return "dtype=torch.uint8";
	/* Not torch dtypes (see the top of the file). */
	case NNH5_UINT16:
		return "dtype=uint16";
	case NNH5_UINT32:
		return "dtype=uint32";
	case NNH5_UINT64:
		return "dtype=uint64";
	case NNH5_FLOAT16:
		return "dtype=torch.float16";
	case NNH5_BFLOAT16:
		return "dtype=torch.bfloat16";
	case NNH5_FLOAT32:
		return "dtype=torch.float32";
	case NNH5_FLOAT64:
		return "dtype=torch.float64";
	case NNH5_FLOAT8_E4M3FN:
		return "dtype=torch.float8_e4m3fn";
	case NNH5_FLOAT8_E5M2:
		return "dtype=torch.float8_e5m2";
	case NNH5_COMPLEX64:
		return "dtype=torch.complex64";
	case NNH5_COMPLEX128:
		return "dtype=torch.complex128";
	default:
		return "dtype=invalid";
	}
}

/*
 * torch's _add_suffixes: a suffix goes on the last line unless that would
 * pass linewidth, else on a new line at the prefix's indent. torch counts
 * the last line two characters long (len - rfind + 1), and so do we.
 */
static void add_suffix(nnh5__strbuf *sb, const char *suffix, size_t *last_line_len)
{
	size_t n = strlen(suffix);

	if (*last_line_len + n + 2 > LINEWIDTH) {
		nnh5__strbuf_putn(sb, ",\n", 2);
		sb_repeat(sb, ' ', PREFIX_LEN);
		*last_line_len = PREFIX_LEN + n;
	} else {
		nnh5__strbuf_putn(sb, ", ", 2);
		*last_line_len += n + 2;
	}
	nnh5__strbuf_putn(sb, suffix, n);
}

static size_t torch_last_line_len(const nnh5__strbuf *sb)
{
	size_t i = sb->len;

	while (i > 0 && sb->p[i - 1] != '\n')
		i--;
	/* i is rfind("\n") + 1, and rfind gives -1 when there is no newline. */
	return sb->len - i + 2;
}

/* Python's str(tuple(shape)), e.g. "(0, 3)" or "(0,)". */
static void put_shape_suffix(nnh5__strbuf *sb, const nnh5_tensor *t, size_t *last_line_len)
{
	nnh5__strbuf s = {0};
	char num[32];
	size_t d;

	nnh5__strbuf_puts(&s, "size=(");
	for (d = 0; d < t->ndim; d++) {
		snprintf(num, sizeof num, "%s%" PRId64, d ? ", " : "", t->shape[d]);
		nnh5__strbuf_puts(&s, num);
	}
	nnh5__strbuf_puts(&s, t->ndim == 1 ? ",)" : ")");
	if (s.oom)
		sb->oom = true;
	else
		add_suffix(sb, s.p, last_line_len);
	nnh5__free(s.p);
}

int nnh5_tensor_format(char **out, const nnh5_tensor *t)
{
	nnh5__strbuf sb = {0};
	size_t last_line_len;
	size_t d;

	assert(out && t);
	*out = NULL;

	nnh5__strbuf_puts(&sb, PREFIX);
	if (t->numel == 0) {
		nnh5__strbuf_puts(&sb, "[]");
		last_line_len = torch_last_line_len(&sb);
		/* Like NumPy, torch names the shape of an empty tensor unless it is (0,). */
		if (t->ndim != 1)
			put_shape_suffix(&sb, t, &last_line_len);
		/* With no elements the dtype cannot be guessed, so only float32 goes unnamed. */
		if (t->dtype != NNH5_FLOAT32)
			add_suffix(&sb, dtype_suffix(t->dtype), &last_line_len);
	} else {
		struct ctx c;

		memset(&c, 0, sizeof c);
		c.t = t;
		c.summarize = t->numel > THRESHOLD;
		for (d = t->ndim; d-- > 0;)
			c.stride[d] = d + 1 == t->ndim ? 1 : c.stride[d + 1] * (size_t)t->shape[d + 1];
		c.complex = nnh5_dtype_is_complex((int)t->dtype);
		if (c.complex) {
			c.part = 1;
			build_formatter(&c);
			c.f_imag = c.f;
			c.part = 0;
		}
		build_formatter(&c);
		put_tensor(&sb, &c, 0, 0, PREFIX_LEN);
		last_line_len = torch_last_line_len(&sb);
		/* torch's has_default_dtype: complex64 is the default complex type. */
		if (t->dtype != NNH5_FLOAT32 && t->dtype != NNH5_INT64 && t->dtype != NNH5_BOOL &&
		    t->dtype != NNH5_COMPLEX64)
			add_suffix(&sb, dtype_suffix(t->dtype), &last_line_len);
	}
	nnh5__strbuf_putn(&sb, ")", 1);

	if (sb.oom) {
		nnh5__free(sb.p);
		return nnh5__nomem();
	}
	*out = sb.p;
	return NNH5_OK;
}
