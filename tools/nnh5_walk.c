/*
 * nnh5_walk.c - the nnh5 tool's view of a file: the library's walk
 * (nnh5_file_walk(), include/nnh5/walk.h) collected into a flat list the
 * subcommands can sort, align and search.
 *
 * The tool adds no rule of its own here: which links are followed, what a
 * dataset's dtype is, what is refused and why all come from the library,
 * so `nnh5 ls` shows and `nnh5 verify` judges exactly what a load sees.
 * Objects nnh5 does not load (strings, compounds, named datatypes) are
 * still listed, as the walk reports them.
 */
#include "nnh5_util.h"

#include <stdlib.h>
#include <string.h>

nnh5_file *tool_open(const char *cmd, const char *path)
{
	nnh5_file *f = NULL;

	if (nnh5_file_open(&f, path, NNH5_READ) != NNH5_OK) {
		fprintf(stderr, "nnh5 %s: ", cmd);
		tool_put_message(stderr, nnh5_error_message());
		fputc('\n', stderr);
		return NULL;
	}
	return f;
}

static char *dup_or_null(const char *s)
{
	return s ? tool_xstrdup(s) : NULL;
}

struct collect {
	struct walk *w;
	bool first_only;
};

static int collect_entry(const nnh5_entry *ne, void *ctx)
{
	struct collect *c = ctx;
	struct walk *w = c->w;
	struct entry *e;

	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->v = tool_xrealloc(w->v, w->cap * sizeof *w->v);
	}
	e = &w->v[w->n++];
	memset(e, 0, sizeof *e);
	e->path = tool_xstrdup(ne->path);
	e->name = tool_xstrdup(ne->name);
	e->depth = ne->depth;
	e->type = ne->type;
	e->link = ne->link;
	e->link_target = dup_or_null(ne->link_target);
	e->alias_of = dup_or_null(ne->alias_of);
	e->reserved = ne->reserved;
	e->kind = ne->kind;
	if (ne->type == NNH5_ENTRY_TENSOR || ne->type == NNH5_ENTRY_DATASET) {
		e->dtype = ne->dtype;
		e->type_desc = tool_xstrdup(ne->type_desc ? ne->type_desc : "?");
		e->null_space = ne->null_space;
		e->ndim = ne->null_space ? 0 : ne->ndim;
		e->shape = tool_xmalloc((e->ndim ? e->ndim : 1) * sizeof *e->shape);
		if (e->ndim)
			memcpy(e->shape, ne->shape, e->ndim * sizeof *e->shape);
		e->numel = ne->numel;
		e->nbytes = ne->nbytes;
	}
	if (ne->type == NNH5_ENTRY_REFUSED) {
		e->status = ne->status;
		e->message = tool_xstrdup(ne->message ? ne->message : "refused");
		w->n_refused++;
	}
	return c->first_only ? 1 : 0;
}

int tool_walk(struct walk *w, const char *cmd, nnh5_file *f, const char *path, bool first_only)
{
	nnh5_walk_options o = NNH5_WALK_OPTIONS_INIT;
	struct collect c = { w, first_only };
	int rc;

	memset(w, 0, sizeof *w);
	o.reserved = true;
	o.keep_going = true;
	rc = nnh5_file_walk(f, path, &o, collect_entry, &c);
	if (rc != NNH5_OK && !(first_only && rc == 1 && w->n == 1)) {
		fprintf(stderr, "nnh5 %s: ", cmd);
		tool_put_message(stderr, nnh5_error_message());
		fputc('\n', stderr);
		tool_walk_free(w);
		return -1;
	}
	/* A model's layers say what they are (also when listed without their model). */
	for (size_t i = 0; i < w->n; i++) {
		struct entry *e = &w->v[i];
		char *layer = NULL;
		if (e->type != NNH5_ENTRY_GROUP || e->alias_of)
			continue;
		if (nnh5_file_get_attr_string(&layer, f, e->path, "nnh5_layer_type") == NNH5_OK) {
			e->layer = tool_xstrdup(layer);
			nnh5_free(layer);
		}
	}
	return 0;
}

void tool_walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		struct entry *e = &w->v[i];
		free(e->path);
		free(e->name);
		free(e->link_target);
		free(e->alias_of);
		free(e->type_desc);
		free(e->shape);
		free(e->message);
		free(e->layer);
	}
	free(w->v);
	memset(w, 0, sizeof *w);
}

const char *tool_entry_kind(const struct entry *e)
{
	/* A single-tensor file's root says "tensor", but it is still a group. */
	if (e->type == NNH5_ENTRY_GROUP)
		return e->kind == NNH5_KIND_TENSOR ? "group" : nnh5_kind_name((int)e->kind);
	return nnh5_entry_type_name((int)e->type);
}

char *tool_entry_note(const struct entry *e)
{
	/* Raw strings from the file are escaped here; the library's message already is. */
	char *parts[2] = { NULL, NULL }, *out;
	size_t n = 0, len;

	if (e->type == NNH5_ENTRY_REFUSED)
		return tool_escape_message(e->message);
	if (e->link != NNH5_LINK_HARD) {
		const char *t = e->link_target ? e->link_target : "?";
		const char *what = e->link == NNH5_LINK_SOFT ? "soft link to "
				   : e->link == NNH5_LINK_EXTERNAL ? "external link to "
				   : "user-defined link ";
		char *esc = tool_escape(t);
		parts[n] = tool_xmalloc(strlen(what) + strlen(esc) + 1);
		strcpy(parts[n], what);
		strcat(parts[n++], esc);
		free(esc);
	}
	/* A soft link's target is where it was met first: say it once. */
	if (e->alias_of && !(e->link_target && !strcmp(e->link_target, e->alias_of))) {
		char *esc = tool_escape(e->alias_of);
		parts[n] = tool_xmalloc(strlen(esc) + 10);
		strcpy(parts[n], "alias of ");
		strcat(parts[n++], esc);
		free(esc);
	}
	if (n == 0)
		return NULL;
	if (n == 1)
		return parts[0];
	len = strlen(parts[0]) + strlen(parts[1]) + 3;
	out = tool_xmalloc(len);
	snprintf(out, len, "%s, %s", parts[0], parts[1]);
	free(parts[0]);
	free(parts[1]);
	return out;
}
