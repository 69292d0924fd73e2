/*
 * nnh5_show.c - `nnh5 show FILE PATH`: one tensor, printed as PyTorch
 * prints it (summarised when large), with the statistics people compute by
 * hand when a model misbehaves (range, mean, spread, NaN/Inf/zero counts)
 * and a small histogram, so a diverged or corrupted layer is visible at a
 * glance. `--full` prints every value instead, one per line with its index.
 */
#include "nnh5_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nnh5/file.h>

static const char show_usage[] =
	"usage: nnh5 show [--full] FILE PATH\n"
	"\n"
	"Print the tensor at PATH as PyTorch does (large tensors summarised with\n"
	"\"...\"), then statistics (min, max, mean, std, L2 norm over the finite\n"
	"values; NaN, Inf and zero counts) and a histogram of the finite values.\n"
	"\n"
	"  --full   print every value, one per line: [index] value\n"
	"  --help   this help\n";

#define HIST_BINS 10
#define HIST_WIDTH 40

/* Element i printed exactly enough to read it back (ints exactly, floats round-trip). */
static void format_elem(char *buf, size_t n, const nnh5_tensor *t, size_t i)
{
	const void *d = nnh5_tensor_data(t);

	switch (nnh5_tensor_dtype(t)) {
	case NNH5_BOOL: snprintf(buf, n, "%s", ((const uint8_t *)d)[i] ? "True" : "False"); break;
	case NNH5_INT8: snprintf(buf, n, "%d", ((const int8_t *)d)[i]); break;
	case NNH5_INT16: snprintf(buf, n, "%d", ((const int16_t *)d)[i]); break;
	case NNH5_INT32: snprintf(buf, n, "%ld", (long)((const int32_t *)d)[i]); break;
	case NNH5_INT64: snprintf(buf, n, "%lld", (long long)((const int64_t *)d)[i]); break;
	case NNH5_UINT8: snprintf(buf, n, "%u", ((const uint8_t *)d)[i]); break;
	case NNH5_UINT16: snprintf(buf, n, "%u", ((const uint16_t *)d)[i]); break;
	case NNH5_UINT32: snprintf(buf, n, "%lu", (unsigned long)((const uint32_t *)d)[i]); break;
	case NNH5_UINT64: snprintf(buf, n, "%llu", (unsigned long long)((const uint64_t *)d)[i]); break;
	case NNH5_FLOAT64: snprintf(buf, n, "%.17g", ((const double *)d)[i]); break;
	case NNH5_COMPLEX64:
		snprintf(buf, n, "%.9g%+.9gj", (double)((const float *)d)[2 * i],
			 (double)((const float *)d)[2 * i + 1]);
		break;
	case NNH5_COMPLEX128:
		snprintf(buf, n, "%.17g%+.17gj", ((const double *)d)[2 * i],
			 ((const double *)d)[2 * i + 1]);
		break;
	default: snprintf(buf, n, "%.9g", nnh5_tensor_get(t, i)); break;
	}
}

static void print_full(const nnh5_tensor *t)
{
	size_t nd = nnh5_tensor_ndim(t), numel = nnh5_tensor_numel(t);
	const int64_t *shape = nnh5_tensor_shape(t);
	int64_t idx[NNH5_MAX_NDIM] = {0};
	char buf[64];

	for (size_t i = 0; i < numel; i++) {
		putchar('[');
		for (size_t k = 0; k < nd; k++)
			printf("%s%lld", k ? ", " : "", (long long)idx[k]);
		format_elem(buf, sizeof buf, t, i);
		printf("] %s\n", buf);
		for (size_t k = nd; k-- > 0;) {
			if (++idx[k] < shape[k])
				break;
			idx[k] = 0;
		}
	}
}

/* The value statistics are taken over: the element, or its magnitude for complex. */
static double stat_value(const nnh5_tensor *t, size_t i)
{
	const void *d = nnh5_tensor_data(t);

	switch (nnh5_tensor_dtype(t)) {
	case NNH5_COMPLEX64:
		return hypot(((const float *)d)[2 * i], ((const float *)d)[2 * i + 1]);
	case NNH5_COMPLEX128:
		return hypot(((const double *)d)[2 * i], ((const double *)d)[2 * i + 1]);
	default:
		return nnh5_tensor_get(t, i);
	}
}

static void print_stats(const nnh5_tensor *t)
{
	size_t numel = nnh5_tensor_numel(t), nfin = 0, nnan = 0, ninf = 0, nzero = 0;
	double mn = INFINITY, mx = -INFINITY, mean = 0, m2 = 0, sumsq = 0;
	size_t hist[HIST_BINS] = {0}, hmax = 0;

	for (size_t i = 0; i < numel; i++) {
		double v = stat_value(t, i);
		if (isnan(v)) {
			nnan++;
			continue;
		}
		if (isinf(v)) {
			ninf++;
			continue;
		}
		if (v == 0)
			nzero++;
		nfin++;
		/* Welford: a plain sum of squares loses everything for large means. */
		double delta = v - mean;
		mean += delta / (double)nfin;
		m2 += delta * (v - mean);
		sumsq += v * v;
		if (v < mn)
			mn = v;
		if (v > mx)
			mx = v;
	}
	printf("\n");
	if (nnh5_dtype_is_complex((int)nnh5_tensor_dtype(t)))
		printf("statistics of the magnitudes |z|\n");
	if (nfin == 0) {
		printf("no finite values\n");
	} else {
		printf("min %.6g  max %.6g  mean %.6g  std %.6g  norm %.6g%s\n", mn, mx, mean,
		       nfin > 1 ? sqrt(m2 / (double)(nfin - 1)) : (double)NAN, sqrt(sumsq),
		       nnan || ninf ? "  (finite values)" : "");
	}
	printf("nan %zu  inf %zu  zero %zu  of %zu\n", nnan, ninf, nzero, numel);
	if (nfin == 0)
		return;
	double width = (mx - mn) / HIST_BINS;
	int nbins = mx > mn && isfinite(width) && width > 0 ? HIST_BINS : 1;
	for (size_t i = 0; i < numel; i++) {
		double v = stat_value(t, i);
		int b = 0;
		if (!isfinite(v))
			continue;
		if (nbins > 1) {
			b = (int)((v - mn) / width);
			if (b >= nbins)
				b = nbins - 1;
			if (b < 0)
				b = 0;
		}
		hist[b]++;
	}
	for (int b = 0; b < nbins; b++)
		if (hist[b] > hmax)
			hmax = hist[b];
	printf("histogram:\n");
	for (int b = 0; b < nbins; b++) {
		double lo = mn + b * width, hi = b == nbins - 1 ? mx : mn + (b + 1) * width;
		size_t bar = hmax ? (hist[b] * HIST_WIDTH + hmax - 1) / hmax : 0;
		if (nbins == 1)
			lo = hi = mn;
		printf("  [%11.4g, %11.4g%c %8zu%s", lo, hi, b == nbins - 1 ? ']' : ')', hist[b],
		       bar ? " " : "");
		for (size_t k = 0; k < bar; k++)
			putchar('#');
		putchar('\n');
	}
}

int cmd_show(int argc, char **argv)
{
	bool full = false;
	const struct tool_opt opts[] = { { "--full", &full, NULL, NULL }, { NULL, NULL, NULL, NULL } };
	const char *pos[2], *file, *path;
	char *npath = NULL, *text = NULL;
	struct walk w;
	nnh5_file *f = NULL;
	nnh5_tensor *t = NULL;
	int rc = tool_args(argc, argv, "show", show_usage, opts, pos, 2, 2, "needs FILE and PATH");

	if (rc >= 0)
		return rc;
	rc = EXIT_USAGE;
	file = pos[0];
	path = pos[1];
	npath = tool_norm_path(path);
	if (!npath) {
		fprintf(stderr, "nnh5 show: PATH may not have '.' or '..' components\n");
		return EXIT_USAGE;
	}
	f = tool_open("show", file);
	if (!f || tool_walk(&w, "show", f, npath, true) < 0)
		goto done;
	{
		const struct entry *e = &w.v[0];
		bool ok = e->type == NNH5_ENTRY_TENSOR;
		if (!ok) {
			fprintf(stderr, "nnh5 show: '");
			tool_put(stderr, file);
			fprintf(stderr, "': '");
			tool_put(stderr, npath);
			if (e->type == NNH5_ENTRY_REFUSED) {
				fputs("' is refused: ", stderr);
				tool_put_message(stderr, e->message);
				fputc('\n', stderr);
			} else if (e->type == NNH5_ENTRY_DATASET) {
				fputs("' holds ", stderr);
				tool_put(stderr, e->type_desc);
				fputs(" data, which nnh5 does not load as a tensor\n", stderr);
			} else {
				fprintf(stderr, "' is a %s, not a tensor (try nnh5 ls)\n",
					tool_entry_kind(e));
			}
		}
		tool_walk_free(&w);
		if (!ok)
			goto done;
	}
	if (nnh5_file_read_tensor(&t, f, npath) != NNH5_OK) {
		fprintf(stderr, "nnh5 show: ");
		tool_put_message(stderr, nnh5_error_message());
		fputc('\n', stderr);
		goto done;
	}
	{
		char shape[1024], n1[64], n2[64];
		tool_shape_str(shape, sizeof shape, false, nnh5_tensor_ndim(t), nnh5_tensor_shape(t));
		tool_group_digits(n1, sizeof n1, nnh5_tensor_numel(t));
		tool_group_digits(n2, sizeof n2, nnh5_tensor_nbytes(t));
		tool_put(stdout, npath);
		printf(": %s %s, %s element%s, %s bytes\n", nnh5_dtype_name(nnh5_tensor_dtype(t)),
		       shape, n1, nnh5_tensor_numel(t) == 1 ? "" : "s", n2);
	}
	if (full) {
		print_full(t);
	} else {
		if (nnh5_tensor_format(&text, t) != NNH5_OK) {
			fputs("nnh5 show: ", stderr);
			tool_put_message(stderr, nnh5_error_message());
			fputc('\n', stderr);
			goto done;
		}
		puts(text);
	}
	print_stats(t);
	rc = 0;
done:
	nnh5_free(text);
	nnh5_tensor_free(t);
	nnh5_file_discard(f);
	free(npath);
	return rc;
}
