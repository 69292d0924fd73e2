/*
 * tools/nnh5_convert.c - `nnh5 convert IN OUT`: weights from one format into
 * another, tensor by tensor.
 *
 * Sources: nnh5 (and any HDF5 file the loaders accept) and Keras files
 * (nnh5/keras.h). Sink: nnh5. A state dict is written with
 * nnh5_file_write_state_dict_stream(), which asks for one tensor at a time
 * and frees it once written, so memory stays near the largest tensor of an
 * nnh5 source (a Keras source is imported whole: Keras files are small).
 * Every input is read through the library, so a conversion refuses what a
 * load refuses; the output is written through the library's atomic save, so
 * OUT appears complete or not at all.
 */
#include "nnh5_util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nnh5/dict.h>
#include <nnh5/keras.h>
#include <nnh5/nn.h>
#include <nnh5/save.h>

static const char convert_usage[] =
	"usage: nnh5 convert [--from FORMAT] [--to FORMAT] [--state-dict] [--quiet] IN OUT\n"
	"\n"
	"Convert the weights of IN into OUT, one tensor at a time. FORMAT is\n"
	"nnh5 or keras (IN only); without --from/--to it comes from the file:\n"
	"IN is a Keras file when it has Keras' layout (model_weights,\n"
	"layer_names, or layers/<name>/vars) and no nnh5 kind, else nnh5; OUT\n"
	"is nnh5. A Keras full model (Sequential of Dense, Flatten, Dropout)\n"
	"becomes an nnh5 model that `nnh5 verify` and nnh5_load_model() rebuild;\n"
	"Keras weights become a state dict (Dense kernels transposed to\n"
	"PyTorch's (out, in)). An nnh5 model stays a model; other nnh5 files\n"
	"become a state dict of their tensors. IN is read as a load reads it\n"
	"(what a load refuses is refused); OUT is replaced atomically.\n"
	"\n"
	"  --from FORMAT  read IN as nnh5 or keras\n"
	"  --to FORMAT    write OUT as nnh5\n"
	"  --state-dict   write a Keras full model's weights as a state dict\n"
	"  --quiet        no progress on a terminal\n"
	"  --help         this help\n"
	"\n"
	"exit status: 0 converted, 2 usage, unreadable or refused input, or\n"
	"failed write (OUT untouched)\n";

enum fmt { FMT_AUTO, FMT_NNH5, FMT_KERAS };

static int parse_fmt(enum fmt *out, const char *s, bool in)
{
	if (!s)
		*out = FMT_AUTO;
	else if (!strcmp(s, "nnh5"))
		*out = FMT_NNH5;
	else if (in && !strcmp(s, "keras"))
		*out = FMT_KERAS;
	else {
		fprintf(stderr, "nnh5 convert: unknown %s format '", in ? "input" : "output");
		tool_put(stderr, s);
		fprintf(stderr, "' (%s)\n", in ? "nnh5, keras" : "nnh5");
		return -1;
	}
	return 0;
}

/* Progress on stderr when it is a terminal and the conversion is large or takes a while. */
#define PROGRESS_BYTES ((uint64_t)64 << 20)

struct progress {
	bool on;
	bool shown;
	struct timespec start, last;
	uint64_t total, done;
	size_t n, i;
};

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) * 1e-9;
}

static void progress_tick(struct progress *p, bool final)
{
	struct timespec now;
	char done[32], total[32];

	if (!p->on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/*
	 * Nothing for small conversions (under 64 MiB, and done within a
	 * second); then at most 5 lines a second.
	 */
	if (!final && ((p->total < PROGRESS_BYTES && since(&p->start, &now) < 1.0) ||
		       (p->shown && since(&p->last, &now) < 0.2)))
		return;
	if (final && !p->shown)
		return;
	p->last = now;
	p->shown = true;
	tool_group_digits(done, sizeof done, p->done);
	tool_group_digits(total, sizeof total, p->total);
	fprintf(stderr, "\rnnh5 convert: %zu/%zu tensors, %s/%s bytes%s", p->i, p->n, done, total,
		final ? "\n" : "");
	fflush(stderr);
}

/* The tensors of an nnh5 source, found by the walk, read one at a time. */
struct nnh5_source {
	nnh5_file *f;
	nnh5_dict *sd;      /* a Keras import, whole */
	char **paths;
	char **keys;
	uint64_t *bytes;
	size_t n;
	bool bad;           /* a dataset that is not a tensor */
	struct progress *p;
};

static int collect_tensor(const nnh5_entry *e, void *ctx)
{
	struct nnh5_source *s = ctx;

	if (e->type == NNH5_ENTRY_DATASET) {
		fprintf(stderr, "nnh5 convert: '");
		tool_put(stderr, nnh5_file_path(s->f));
		fprintf(stderr, "': dataset '");
		tool_put(stderr, e->path);
		fprintf(stderr, "' is not a tensor (%s): refused\n", e->type_desc);
		s->bad = true;
		return 1;
	}
	if (e->type != NNH5_ENTRY_TENSOR)
		return 0;
	s->paths = tool_xrealloc(s->paths, (s->n + 1) * sizeof *s->paths);
	s->keys = tool_xrealloc(s->keys, (s->n + 1) * sizeof *s->keys);
	s->bytes = tool_xrealloc(s->bytes, (s->n + 1) * sizeof *s->bytes);
	s->paths[s->n] = tool_xstrdup(e->path);
	/* "/encoder/0/weight" is the state dict key "encoder.0.weight". */
	s->keys[s->n] = tool_xstrdup(e->path[0] == '/' ? e->path + 1 : e->path);
	for (char *c = s->keys[s->n]; *c; c++)
		if (*c == '/')
			*c = '.';
	s->bytes[s->n] = e->nbytes;
	s->n++;
	return 0;
}

static int fetch_nnh5(nnh5_tensor **out, size_t i, void *ctx)
{
	struct nnh5_source *s = ctx;
	int rc = nnh5_file_read_tensor(out, s->f, s->paths[i]);

	if (!rc) {
		s->p->i = i + 1;
		s->p->done += s->bytes[i];
		progress_tick(s->p, false);
	}
	return rc;
}

static int fetch_dict(nnh5_tensor **out, size_t i, void *ctx)
{
	struct nnh5_source *s = ctx;
	const nnh5_tensor *t = nnh5_dict_value(s->sd, i);

	s->p->i = i + 1;
	s->p->done += nnh5_tensor_nbytes(t);
	progress_tick(s->p, false);
	return nnh5_tensor_view_const(out, nnh5_tensor_dtype(t), nnh5_tensor_ndim(t),
				      nnh5_tensor_shape(t), nnh5_tensor_data(t), nnh5_tensor_nbytes(t));
}

static void source_free(struct nnh5_source *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->paths[i]);
		free(s->keys[i]);
	}
	free(s->paths);
	free(s->keys);
	free(s->bytes);
}

static int fail(const char *what)
{
	fprintf(stderr, "nnh5 convert: %s", what ? what : "");
	tool_put_message(stderr, nnh5_error_message());
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* Write n keys through fetch into a new nnh5 file at out (atomic). */
static int write_stream(const char *out, const char *const *keys, size_t n,
			nnh5_tensor_source_fn fetch, void *ctx, struct progress *p)
{
	nnh5_file *o;

	if (nnh5_file_open(&o, out, NNH5_CREATE))
		return fail(NULL);
	if (nnh5_file_write_state_dict_stream(o, "/", keys, n, fetch, ctx)) {
		if (p->shown)
			fputc('\n', stderr);
		int rc = fail(NULL);
		nnh5_file_discard(o);
		return rc;
	}
	if (nnh5_file_close(o))
		return fail(NULL);
	progress_tick(p, true);
	return 0;
}

static int from_nnh5(nnh5_file *f, const char *out, struct progress *p)
{
	struct nnh5_source s = { f, NULL, NULL, NULL, NULL, 0, false, p };
	nnh5_kind kind;
	int rc;

	if (nnh5_file_kind(&kind, f, "/"))
		return fail(NULL);
	if (kind == NNH5_KIND_MODEL) {
		/* A model keeps its architecture: models are small, convert in one go. */
		nnh5_model *m;
		if (nnh5_file_read_model(&m, f, "/"))
			return fail(NULL);
		rc = nnh5_save_model(out, m, NULL) ? fail(NULL) : 0;
		nnh5_model_free(m);
		return rc;
	}
	rc = nnh5_file_walk(f, "/", NULL, collect_tensor, &s);
	if (rc && !s.bad)
		rc = fail(NULL);
	else if (rc)
		rc = EXIT_USAGE;
	for (size_t i = 0; !rc && i < s.n; i++)
		p->total += s.bytes[i];
	p->n = s.n;
	if (!rc)
		rc = write_stream(out, (const char *const *)s.keys, s.n, fetch_nnh5, &s, p);
	source_free(&s);
	return rc;
}

static int from_keras(nnh5_file *f, const char *out, bool state_dict, struct progress *p)
{
	nnh5_keras_layout layout;
	nnh5_dict *sd;
	int rc;

	if (nnh5_keras_layout_of(&layout, f))
		return fail(NULL);
	if (layout == NNH5_KERAS_LEGACY_MODEL && !state_dict) {
		nnh5_model *m;
		if (nnh5_keras_read_model(&m, f, NNH5_FLOAT32))
			return fail(NULL);
		rc = nnh5_save_model(out, m, NULL) ? fail(NULL) : 0;
		nnh5_model_free(m);
		return rc;
	}
	if (nnh5_keras_read_state_dict(&sd, f))
		return fail(NULL);
	size_t n = nnh5_dict_len(sd);
	const char **keys = tool_xmalloc((n ? n : 1) * sizeof *keys);
	for (size_t i = 0; i < n; i++) {
		keys[i] = nnh5_dict_key(sd, i);
		p->total += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
	}
	p->n = n;
	struct nnh5_source s = { f, sd, NULL, NULL, NULL, 0, false, p };
	rc = write_stream(out, keys, n, fetch_dict, &s, p);
	free(keys);
	nnh5_dict_free(sd);
	return rc;
}

/* IN is Keras when it has a Keras layout and no nnh5 kind on its root. */
static bool looks_keras(nnh5_file *f)
{
	nnh5_keras_layout layout;
	nnh5_kind kind;
	bool yes = nnh5_file_kind(&kind, f, "/") == NNH5_OK && kind == NNH5_KIND_GROUP &&
		   nnh5_keras_layout_of(&layout, f) == NNH5_OK;

	nnh5_error_clear();
	return yes;
}

int cmd_convert(int argc, char **argv)
{
	const char *from = NULL, *to = NULL, *pos[2];
	bool quiet = false, state_dict = false;
	const struct tool_opt opts[] = {
		{ "--from", NULL, NULL, &from }, { "--to", NULL, NULL, &to },
		{ "--state-dict", &state_dict, NULL, NULL }, { "--quiet", &quiet, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	struct progress p = { 0 };
	enum fmt fin, fout;
	nnh5_file *f;
	int rc = tool_args(argc, argv, "convert", convert_usage, opts, pos, 2, 2,
			   "needs IN and OUT");

	if (rc >= 0)
		return rc;
	if (parse_fmt(&fin, from, true) < 0 || parse_fmt(&fout, to, false) < 0)
		return EXIT_USAGE;
	p.on = !quiet && isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	f = tool_open("convert", pos[0]);
	if (!f)
		return EXIT_USAGE;
	if (fin == FMT_AUTO)
		fin = looks_keras(f) ? FMT_KERAS : FMT_NNH5;
	rc = fin == FMT_KERAS ? from_keras(f, pos[1], state_dict, &p) : from_nnh5(f, pos[1], &p);
	nnh5_file_discard(f);
	return rc;
}
