/*
 * tools/nnh5_convert.c - `nnh5 convert IN OUT`: weights from one format into
 * another, tensor by tensor.
 *
 * Sources: nnh5 (and any HDF5 file the loaders accept), Keras files
 * (nnh5/keras.h), safetensors files and sharded Hugging Face folders
 * (nnh5/safetensors.h). Sinks: nnh5, safetensors files and folders. An nnh5
 * file is written with nnh5_file_write_state_dict_stream(), which asks for
 * one tensor at a time and frees it once written, so memory stays near the
 * largest tensor (a Keras source is imported whole: Keras files are small).
 * safetensors output from an nnh5 file is streamed the same way: the walk
 * describes every tensor (dtype, shape: no data), which lays out the file
 * or the folder's shards, then each tensor is read, put through a
 * nnh5_safetensors_writer and freed. A safetensors file is written from
 * views of its mapping, one at a time, each one's pages released once
 * written (a sharded folder input is loaded whole).
 * Every input is read through the library, so a conversion refuses what a
 * load refuses; the output is written through the library's atomic save, so
 * OUT appears complete or not at all.
 */
/* madvise() is not POSIX (posix_madvise's DONTNEED does nothing in glibc). */
#define _DEFAULT_SOURCE
#include "nnh5_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nnh5/dict.h>
#include <nnh5/keras.h>
#include <nnh5/nn.h>
#include <nnh5/safetensors.h>
#include <nnh5/save.h>

static const char convert_usage[] =
	"usage: nnh5 convert [--from FORMAT] [--to FORMAT] [--state-dict] [--lenient]\n"
	"                    [--shard-size BYTES] [--quiet] IN OUT\n"
	"\n"
	"Convert the weights of IN into OUT, one tensor at a time. FORMAT is\n"
	"nnh5, keras (IN only) or safetensors (a .safetensors file, or a folder\n"
	"of shards with model.safetensors.index.json). Without --from/--to the\n"
	"format comes from the path: a folder or a name ending in '/' is a\n"
	"sharded safetensors folder, *.safetensors a safetensors file; an HDF5\n"
	"IN is a Keras file when it has Keras' layout (model_weights,\n"
	"layer_names, or layers/<name>/vars) and no nnh5 kind, else nnh5.\n"
	"A Keras full model (Sequential of Dense, Flatten, Dropout) becomes an\n"
	"nnh5 model; Keras weights become a state dict (Dense kernels\n"
	"transposed to PyTorch's (out, in)). An nnh5 model written as nnh5 stays\n"
	"a model; otherwise tensors keep their keys (nnh5 groups joined with\n"
	"'.'). IN is read as a load reads it (what a load refuses is refused);\n"
	"OUT is replaced atomically (a folder file by file, its index last).\n"
	"\n"
	"  --from FORMAT       read IN as nnh5, keras or safetensors\n"
	"  --to FORMAT         write OUT as nnh5 or safetensors\n"
	"  --state-dict        write a Keras full model's weights as a state dict\n"
	"  --lenient           accept safetensors files with whitespace before the\n"
	"                      header or bytes after the data\n"
	"  --shard-size BYTES  most bytes of tensors per shard of a folder (default\n"
	"                      5000000000, as Hugging Face)\n"
	"  --quiet             no progress on a terminal\n"
	"  --help              this help\n"
	"\n"
	"exit status: 0 converted, 2 usage, unreadable or refused input, or\n"
	"failed write (OUT untouched)\n";

enum fmt { FMT_AUTO, FMT_NNH5, FMT_KERAS, FMT_ST, FMT_ST_DIR };

static int parse_fmt(enum fmt *out, const char *s, bool in)
{
	if (!s)
		*out = FMT_AUTO;
	else if (!strcmp(s, "nnh5"))
		*out = FMT_NNH5;
	else if (in && !strcmp(s, "keras"))
		*out = FMT_KERAS;
	else if (!strcmp(s, "safetensors"))
		*out = FMT_ST;
	else {
		fprintf(stderr, "nnh5 convert: unknown %s format '", in ? "input" : "output");
		tool_put(stderr, s);
		fprintf(stderr, "' (%s)\n", in ? "nnh5, keras, safetensors" : "nnh5, safetensors");
		return -1;
	}
	return 0;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);
	return a >= b && !strcmp(s + a - b, tail);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* safetensors by path: a folder (or a name ending in '/') or *.safetensors. */
static enum fmt fmt_of_path(const char *path)
{
	if (is_dir(path) || ends_with(path, "/"))
		return FMT_ST_DIR;
	if (ends_with(path, ".safetensors"))
		return FMT_ST;
	return FMT_AUTO;
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
	nnh5_safetensors **shards; /* a safetensors file (one) or folder */
	size_t *shard_of;   /* key i's shard */
	size_t nshards;
	const void *prev;   /* the mapped bytes handed out last (safetensors) */
	size_t prev_len;
	char **paths;
	char **keys;
	uint64_t *bytes;
	nnh5_dtype *dtypes; /* an nnh5 source: what the walk describes */
	size_t *ndims;
	int64_t **shapes;
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
	s->dtypes = tool_xrealloc(s->dtypes, (s->n + 1) * sizeof *s->dtypes);
	s->ndims = tool_xrealloc(s->ndims, (s->n + 1) * sizeof *s->ndims);
	s->shapes = tool_xrealloc(s->shapes, (s->n + 1) * sizeof *s->shapes);
	s->dtypes[s->n] = e->dtype;
	s->ndims[s->n] = e->ndim;
	s->shapes[s->n] = tool_xmalloc((e->ndim ? e->ndim : 1) * sizeof **s->shapes);
	if (e->ndim)
		memcpy(s->shapes[s->n], e->shape, e->ndim * sizeof **s->shapes);
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
		free(s->shapes[i]);
	}
	free(s->paths);
	free(s->keys);
	free(s->bytes);
	free(s->dtypes);
	free(s->ndims);
	free(s->shapes);
}

static int fail(const char *what)
{
	fprintf(stderr, "nnh5 convert: %s", what ? what : "");
	tool_put_message(stderr, nnh5_error_message());
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/*
 * Write n keys through fetch into a new nnh5 file at out (atomic); meta (a
 * safetensors file's "__metadata__", may be NULL) becomes string attributes
 * of the root.
 */
static int write_stream(const char *out, const char *const *keys, size_t n,
			nnh5_tensor_source_fn fetch, void *ctx, const nnh5_safetensors *meta,
			struct progress *p)
{
	nnh5_file *o;
	int bad;

	if (nnh5_file_open(&o, out, NNH5_CREATE))
		return fail(NULL);
	bad = nnh5_file_write_state_dict_stream(o, "/", keys, n, fetch, ctx);
	for (size_t i = 0; !bad && meta && i < nnh5_safetensors_metadata_len(meta); i++)
		bad = nnh5_file_set_attr_string(o, "/", nnh5_safetensors_metadata_key(meta, i),
						nnh5_safetensors_metadata_value(meta, i));
	if (bad) {
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

/* ------------------------------------------------------------------ */
/* safetensors output                                                  */

struct sink {
	enum fmt fmt;       /* FMT_NNH5, FMT_ST or FMT_ST_DIR */
	const char *path;
	uint64_t shard_size;
};

/* sd (views or owned tensors) as a safetensors file or folder. */
static int write_safetensors(const struct sink *o, const nnh5_dict *sd, struct progress *p)
{
	p->n = nnh5_dict_len(sd);
	for (size_t i = 0; i < p->n; i++)
		p->total += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
	if (o->fmt == FMT_ST_DIR ? nnh5_safetensors_save_folder(o->path, sd, o->shard_size, 0, NULL,
								NULL)
				 : nnh5_safetensors_save(o->path, sd, 0, NULL, NULL))
		return fail(NULL);
	p->i = p->n;
	p->done = p->total;
	progress_tick(p, true);
	return 0;
}

/*
 * The n tensors described in s (dtypes, ndims, shapes), read one at a time
 * by fetch and written as a safetensors file or folder: memory stays near
 * the largest tensor.
 */
static int stream_safetensors(const struct sink *o, struct nnh5_source *s,
			      nnh5_tensor_source_fn fetch, struct progress *p)
{
	const char *const *keys = (const char *const *)s->keys;
	const int64_t *const *shapes = (const int64_t *const *)s->shapes;
	/* A safetensors file's "__metadata__" goes along (a folder's shards keep none). */
	const nnh5_safetensors *meta = s->nshards == 1 ? s->shards[0] : NULL;
	size_t nm = meta ? nnh5_safetensors_metadata_len(meta) : 0;
	const char **mk = tool_xmalloc((nm ? nm : 1) * sizeof *mk);
	const char **mv = tool_xmalloc((nm ? nm : 1) * sizeof *mv);
	nnh5_safetensors_writer *w;
	int rc;

	for (size_t i = 0; i < nm; i++) {
		mk[i] = nnh5_safetensors_metadata_key(meta, i);
		mv[i] = nnh5_safetensors_metadata_value(meta, i);
	}

	if (o->fmt == FMT_ST_DIR) {
		rc = nnh5_safetensors_save_folder_stream(o->path, s->n, keys, s->dtypes, s->ndims,
							 shapes, o->shard_size, nm, mk, mv, fetch,
							 s);
	} else {
		rc = nnh5_safetensors_writer_open(&w, o->path, s->n, keys, s->dtypes, s->ndims,
						  shapes, nm, mk, mv);
		for (size_t i = 0; !rc && i < s->n; i++) {
			nnh5_tensor *t = NULL;
			rc = fetch(&t, i, s);
			if (!rc)
				rc = nnh5_safetensors_writer_put(w, keys[i], t);
			nnh5_tensor_free(t);
		}
		if (rc)
			nnh5_safetensors_writer_discard(w);
		else
			rc = nnh5_safetensors_writer_commit(w);
	}
	free(mk);
	free(mv);
	if (rc) {
		if (p->shown)
			fputc('\n', stderr);
		return fail(NULL);
	}
	progress_tick(p, true);
	return 0;
}

/* A dict imported whole (Keras, a folder) into any output. */
static int write_dict(const struct sink *o, nnh5_dict *sd, struct progress *p)
{
	struct nnh5_source s = { .sd = sd, .p = p };
	size_t n = nnh5_dict_len(sd);
	const char **keys;
	int rc;

	if (o->fmt != FMT_NNH5)
		return write_safetensors(o, sd, p);
	keys = tool_xmalloc((n ? n : 1) * sizeof *keys);
	for (size_t i = 0; i < n; i++) {
		keys[i] = nnh5_dict_key(sd, i);
		p->total += nnh5_tensor_nbytes(nnh5_dict_value(sd, i));
	}
	p->n = n;
	rc = write_stream(o->path, keys, n, fetch_dict, &s, NULL, p);
	free(keys);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sources                                                             */

static int from_nnh5(nnh5_file *f, const struct sink *o, struct progress *p)
{
	struct nnh5_source s = { .f = f, .p = p };
	nnh5_kind kind;
	int rc;

	if (nnh5_file_kind(&kind, f, "/"))
		return fail(NULL);
	if (kind == NNH5_KIND_MODEL && o->fmt == FMT_NNH5) {
		/* A model keeps its architecture: models are small, convert in one go. */
		nnh5_model *m;
		if (nnh5_file_read_model(&m, f, "/"))
			return fail(NULL);
		rc = nnh5_save_model(o->path, m, NULL) ? fail(NULL) : 0;
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
	if (!rc && o->fmt == FMT_NNH5)
		rc = write_stream(o->path, (const char *const *)s.keys, s.n, fetch_nnh5, &s, NULL,
				  p);
	else if (!rc)
		rc = stream_safetensors(o, &s, fetch_nnh5, p);
	source_free(&s);
	return rc;
}

static int from_keras(nnh5_file *f, const struct sink *o, bool state_dict, struct progress *p)
{
	nnh5_keras_layout layout;
	nnh5_dict *sd;
	int rc;

	if (nnh5_keras_layout_of(&layout, f))
		return fail(NULL);
	if (layout == NNH5_KERAS_LEGACY_MODEL && !state_dict && o->fmt == FMT_NNH5) {
		nnh5_model *m;
		if (nnh5_keras_read_model(&m, f, NNH5_FLOAT32))
			return fail(NULL);
		rc = nnh5_save_model(o->path, m, NULL) ? fail(NULL) : 0;
		nnh5_model_free(m);
		return rc;
	}
	if (nnh5_keras_read_state_dict(&sd, f))
		return fail(NULL);
	rc = write_dict(o, sd, p);
	nnh5_dict_free(sd);
	return rc;
}

/*
 * Drop the pages of the tensor written last from this process: its bytes
 * are views of the mapped input, which would otherwise stay resident until
 * the close and make the conversion's memory the input's size. The pages
 * stay in the page cache; touching them again reads them back.
 */
static void release_prev(struct nnh5_source *s)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t a, b;

	if (!s->prev || !s->prev_len || page <= 0)
		return;
	a = (uintptr_t)s->prev & ~((uintptr_t)page - 1);
	b = (uintptr_t)s->prev + s->prev_len;
	madvise((void *)a, b - a, MADV_DONTNEED);
	s->prev = NULL;
}

static int fetch_st(nnh5_tensor **out, size_t i, void *ctx)
{
	struct nnh5_source *s = ctx;
	int rc;

	release_prev(s);
	rc = nnh5_safetensors_get(out, s->shards[s->shard_of[i]], s->keys[i]);
	if (!rc && nnh5_tensor_owns_data(*out) == false) {
		s->prev = nnh5_tensor_data(*out);
		s->prev_len = nnh5_tensor_nbytes(*out);
	}
	if (!rc) {
		s->p->i = i + 1;
		s->p->done += nnh5_tensor_nbytes(*out);
		progress_tick(s->p, false);
	}
	return rc;
}

static void add_key(struct nnh5_source *s, const char *key, size_t shard)
{
	s->keys = tool_xrealloc(s->keys, (s->n + 1) * sizeof *s->keys);
	s->shard_of = tool_xrealloc(s->shard_of, (s->n + 1) * sizeof *s->shard_of);
	s->keys[s->n] = tool_xstrdup(key);
	s->shard_of[s->n++] = shard;
}

static int open_shard(struct nnh5_source *s, const char *path, bool lenient)
{
	nnh5_safetensors_options so = NNH5_SAFETENSORS_OPTIONS_INIT;

	so.lenient = lenient;
	s->shards = tool_xrealloc(s->shards, (s->nshards + 1) * sizeof *s->shards);
	if (nnh5_safetensors_open(&s->shards[s->nshards], path, &so))
		return fail(NULL);
	s->nshards++;
	return 0;
}

/* A folder, loaded whole by the library (its index rules), then written out. */
static int from_folder(const char *in, bool lenient, const struct sink *o, struct progress *p)
{
	nnh5_safetensors_options so = NNH5_SAFETENSORS_OPTIONS_INIT;
	nnh5_dict *sd;
	int rc;

	so.lenient = lenient;
	if (nnh5_safetensors_load_folder(&sd, in, &so))
		return fail(NULL);
	rc = write_dict(o, sd, p);
	nnh5_dict_free(sd);
	return rc;
}

/* A file: its tensors are views of the mapping, released once written. */
static int from_safetensors(const char *in, bool folder, bool lenient, const struct sink *o,
			    struct progress *p)
{
	struct nnh5_source s = { .p = p };
	int rc;

	if (folder)
		return from_folder(in, lenient, o, p);
	rc = open_shard(&s, in, lenient);
	for (size_t i = 0; !rc && i < nnh5_safetensors_len(s.shards[0]); i++)
		add_key(&s, nnh5_safetensors_name(s.shards[0], i), 0);
	s.dtypes = tool_xmalloc((s.n ? s.n : 1) * sizeof *s.dtypes);
	s.ndims = tool_xmalloc((s.n ? s.n : 1) * sizeof *s.ndims);
	s.shapes = tool_xmalloc((s.n ? s.n : 1) * sizeof *s.shapes);
	for (size_t i = 0; i < s.n; i++)
		s.shapes[i] = NULL;
	for (size_t i = 0; !rc && i < s.n; i++) {
		/* Views cost no data (only a tensor not aligned to its element size is copied). */
		nnh5_tensor *t = NULL;
		if (nnh5_safetensors_get(&t, s.shards[0], s.keys[i])) {
			rc = fail(NULL);
			break;
		}
		p->total += nnh5_tensor_nbytes(t);
		s.dtypes[i] = nnh5_tensor_dtype(t);
		s.ndims[i] = nnh5_tensor_ndim(t);
		s.shapes[i] = tool_xmalloc((s.ndims[i] ? s.ndims[i] : 1) * sizeof **s.shapes);
		if (s.ndims[i])
			memcpy(s.shapes[i], nnh5_tensor_shape(t), s.ndims[i] * sizeof **s.shapes);
		nnh5_tensor_free(t);
	}
	p->n = s.n;
	if (!rc && o->fmt == FMT_NNH5) {
		rc = write_stream(o->path, (const char *const *)s.keys, s.n, fetch_st, &s,
				  s.shards[0], p);
		release_prev(&s);
	} else if (!rc) {
		/* Written out as safetensors again (resharding), one view at a time. */
		rc = stream_safetensors(o, &s, fetch_st, p);
		release_prev(&s);
	}
	for (size_t k = 0; k < s.nshards; k++)
		nnh5_safetensors_close(s.shards[k]);
	free(s.shards);
	free(s.shard_of);
	for (size_t i = 0; i < s.n; i++) {
		free(s.keys[i]);
		free(s.shapes ? s.shapes[i] : NULL);
	}
	free(s.keys);
	free(s.dtypes);
	free(s.ndims);
	free(s.shapes);
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
	bool quiet = false, state_dict = false, lenient = false;
	double shard_size = 5e9;
	const struct tool_opt opts[] = {
		{ "--from", NULL, NULL, &from }, { "--to", NULL, NULL, &to },
		{ "--state-dict", &state_dict, NULL, NULL }, { "--lenient", &lenient, NULL, NULL },
		{ "--shard-size", NULL, &shard_size, NULL }, { "--quiet", &quiet, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	struct progress p = { 0 };
	struct sink o;
	enum fmt fin, fout;
	nnh5_file *f;
	int rc = tool_args(argc, argv, "convert", convert_usage, opts, pos, 2, 2,
			   "needs IN and OUT");

	if (rc >= 0)
		return rc;
	if (parse_fmt(&fin, from, true) < 0 || parse_fmt(&fout, to, false) < 0)
		return EXIT_USAGE;
	if (shard_size < 1) {
		fprintf(stderr, "nnh5 convert: --shard-size wants at least 1 byte\n");
		return EXIT_USAGE;
	}
	p.on = !quiet && isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &p.start);
	/* --to safetensors and a folder path, or a folder path alone, make a folder. */
	o.path = pos[1];
	o.shard_size = (uint64_t)shard_size;
	o.fmt = fmt_of_path(pos[1]);
	if (fout == FMT_NNH5)
		o.fmt = FMT_NNH5;
	else if (fout == FMT_ST && o.fmt != FMT_ST_DIR)
		o.fmt = FMT_ST;
	else if (o.fmt == FMT_AUTO)
		o.fmt = FMT_NNH5;
	if (fin == FMT_AUTO || fin == FMT_ST) {
		enum fmt byp = fmt_of_path(pos[0]);
		if (byp != FMT_AUTO || fin == FMT_ST)
			return from_safetensors(pos[0], byp == FMT_ST_DIR, lenient, &o, &p);
	}
	f = tool_open("convert", pos[0]);
	if (!f)
		return EXIT_USAGE;
	if (fin == FMT_AUTO)
		fin = looks_keras(f) ? FMT_KERAS : FMT_NNH5;
	rc = fin == FMT_KERAS ? from_keras(f, &o, state_dict, &p) : from_nnh5(f, &o, &p);
	nnh5_file_discard(f);
	return rc;
}
