/*
 * nnh5.c - the nnh5 command-line tool: the dispatcher and `nnh5 ls`.
 *
 * Users inspect model files from a terminal: `ls` shows what a file holds
 * in nnh5's terms (tensors, dicts, state dicts, models), `show` one tensor's
 * values and statistics, `diff` two files key by key, `verify` what a file
 * can prove about itself, and `dump` runs h5dump with the right flags.
 * Exit codes: 0 success, 1 differs or invalid, 2 usage or I/O error.
 * Output is stable (no addresses, no timestamps) so scripts and golden
 * tests can compare it.
 */
#include "nnh5_util.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <nnh5/common.h>

static const char usage_text[] =
	"usage: nnh5 <command> [options] ...\n"
	"\n"
	"Inspect nnh5 (and any HDF5) files.\n"
	"\n"
	"commands:\n"
	"  ls FILE [PATH]       list what the file holds: kind, dtype, shape, bytes, totals\n"
	"  ls DIR               list a checkpoint folder: steps, epochs, metrics, best\n"
	"  show FILE PATH       one tensor's values, statistics and histogram\n"
	"  diff A B [PATH]      compare two files key by key\n"
	"  verify FILE          check that every tensor loads and every model probe matches\n"
	"  verify DIR           load every checkpoint of a folder; say which one to resume from\n"
	"  dump FILE [PATH]     run h5dump with the flags that fit\n"
	"  convert IN OUT       convert between nnh5, safetensors and Keras files\n"
	"\n"
	"options:\n"
	"  --help               this help (nnh5 COMMAND --help for a command's)\n"
	"  --version            the tool's and the library's version\n"
	"\n"
	"exit status: 0 success, 1 differs or invalid, 2 usage or I/O error\n";

static const char ls_usage[] =
	"usage: nnh5 ls [--json] FILE [PATH]\n"
	"       nnh5 ls DIR\n"
	"\n"
	"List the objects of FILE (or below PATH) as a tree: kind (tensor, list,\n"
	"dict, state_dict, model, checkpoint, group), dtype, shape and size in\n"
	"bytes, then totals. Links are resolved as a load resolves them: a soft\n"
	"link to a dataset of the file is followed, a second name of a dataset\n"
	"says so (alias of), and what a load would refuse (external links, soft\n"
	"links through them or to groups, cycles, external storage, virtual\n"
	"datasets, bad names, nesting past the limits) is listed as refused, with\n"
	"the reason. Nothing outside FILE is ever opened.\n"
	"For a checkpoint folder DIR: one line per checkpoint file present, with\n"
	"its epoch and metrics from DIR/index.h5, and the best and latest steps.\n"
	"\n"
	"  --json   print a JSON object: {\"file\", \"path\", \"entries\": [{\"path\",\n"
	"           \"kind\", \"dtype\", \"shape\", \"bytes\", ...}], \"totals\"}\n"
	"  --help   this help\n";

static bool has_data(const struct entry *e)
{
	return e->type == NNH5_ENTRY_TENSOR || e->type == NNH5_ENTRY_DATASET;
}

static const char *dtype_col(const struct entry *e)
{
	if (e->type == NNH5_ENTRY_TENSOR)
		return nnh5_dtype_name(e->dtype);
	return e->type == NNH5_ENTRY_DATASET ? e->type_desc : "";
}

static void ls_totals(const struct walk *w, uint64_t *tensors, uint64_t *reserved, uint64_t *params,
		      uint64_t *bytes)
{
	*tensors = *reserved = *params = *bytes = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct entry *e = &w->v[i];
		/* An alias is the same data under a second name: the file holds it once. */
		if (!has_data(e) || e->alias_of)
			continue;
		*bytes += e->nbytes;
		if (e->type != NNH5_ENTRY_TENSOR)
			continue;
		(*tensors)++;
		/* Probes and other nnh5_* datasets are not parameters of the model. */
		if (e->reserved)
			(*reserved)++;
		else
			*params += e->numel;
	}
}

static cJSON *add_str(cJSON *o, const char *key, const char *raw)
{
	char *esc = tool_escape(raw);
	cJSON *r = cJSON_AddStringToObject(o, key, esc);
	free(esc);
	return r;
}

static int ls_json(const struct walk *w, const char *file, const char *path)
{
	cJSON *root = cJSON_CreateObject(), *arr, *tot;
	uint64_t tensors, reserved, params, bytes;
	char *text;

	add_str(root, "file", file);
	add_str(root, "path", path);
	arr = cJSON_AddArrayToObject(root, "entries");
	for (size_t i = 0; i < w->n; i++) {
		const struct entry *e = &w->v[i];
		cJSON *o = cJSON_CreateObject();
		char *note = tool_entry_note(e);
		add_str(o, "path", e->path);
		cJSON_AddStringToObject(o, "kind", tool_entry_kind(e));
		if (has_data(e))
			add_str(o, "dtype", dtype_col(e));
		else
			cJSON_AddNullToObject(o, "dtype");
		if (has_data(e) && !e->null_space) {
			cJSON *s = cJSON_AddArrayToObject(o, "shape");
			for (size_t k = 0; k < e->ndim; k++)
				cJSON_AddItemToArray(s, cJSON_CreateNumber((double)e->shape[k]));
		} else {
			cJSON_AddNullToObject(o, "shape");
		}
		if (has_data(e))
			cJSON_AddNumberToObject(o, "bytes", (double)e->nbytes);
		else
			cJSON_AddNullToObject(o, "bytes");
		cJSON_AddNumberToObject(o, "depth", (double)e->depth);
		if (e->reserved)
			cJSON_AddTrueToObject(o, "reserved");
		cJSON_AddStringToObject(o, "link", nnh5_link_type_name((int)e->link));
		if (e->link_target)
			add_str(o, "link_target", e->link_target);
		if (e->alias_of)
			add_str(o, "alias_of", e->alias_of);
		if (e->type == NNH5_ENTRY_REFUSED) {
			cJSON_AddStringToObject(o, "status", nnh5_status_name(e->status));
			char *msg = tool_escape_message(e->message);
			cJSON_AddStringToObject(o, "message", msg);
			free(msg);
		}
		if (e->layer)
			add_str(o, "layer", e->layer);
		if (note)
			cJSON_AddStringToObject(o, "note", note);
		free(note);
		cJSON_AddItemToArray(arr, o);
	}
	ls_totals(w, &tensors, &reserved, &params, &bytes);
	tot = cJSON_AddObjectToObject(root, "totals");
	cJSON_AddNumberToObject(tot, "tensors", (double)tensors);
	cJSON_AddNumberToObject(tot, "reserved_tensors", (double)reserved);
	cJSON_AddNumberToObject(tot, "parameters", (double)params);
	cJSON_AddNumberToObject(tot, "bytes", (double)bytes);
	cJSON_AddNumberToObject(tot, "refused", (double)w->n_refused);
	text = cJSON_Print(root);
	if (text) {
		puts(text);
		cJSON_free(text);
	}
	cJSON_Delete(root);
	return text ? 0 : -1;
}

static void ls_text(const struct walk *w, const char *file)
{
	size_t wname = 0, wkind = 0, wdtype = 0, wshape = 0, wbytes = 0;
	char buf[1024];
	uint64_t tensors, reserved, params, bytes;
	char **names = tool_xmalloc(w->n * sizeof *names);

	for (size_t i = 0; i < w->n; i++) {
		const struct entry *e = &w->v[i];
		char *esc = tool_escape(e->name);
		size_t n = strlen(esc);
		names[i] = tool_xmalloc(2 * e->depth + n + 2);
		memset(names[i], ' ', 2 * e->depth);
		snprintf(names[i] + 2 * e->depth, n + 2, "%s%s", esc,
			 e->type == NNH5_ENTRY_GROUP && strcmp(e->name, "/") ? "/" : "");
		free(esc);
		/* Columns align on the widest entry; a hostile name only widens them. */
		if (strlen(names[i]) > wname)
			wname = strlen(names[i]);
		if (strlen(tool_entry_kind(e)) > wkind)
			wkind = strlen(tool_entry_kind(e));
		if (has_data(e)) {
			esc = tool_escape(dtype_col(e));
			if (strlen(esc) > wdtype)
				wdtype = strlen(esc);
			free(esc);
			tool_shape_str(buf, sizeof buf, e->null_space, e->ndim, e->shape);
			if (strlen(buf) > wshape)
				wshape = strlen(buf);
			tool_group_digits(buf, sizeof buf, e->nbytes);
			if (strlen(buf) > wbytes)
				wbytes = strlen(buf);
		}
	}
	tool_put(stdout, file);
	fputs(":\n", stdout);
	for (size_t i = 0; i < w->n; i++) {
		const struct entry *e = &w->v[i];
		char shape[1024] = "", nbytes[64] = "";
		char *line, *dtype = tool_escape(dtype_col(e)), *note = tool_entry_note(e);
		size_t len, cap;
		if (has_data(e)) {
			tool_shape_str(shape, sizeof shape, e->null_space, e->ndim, e->shape);
			tool_group_digits(nbytes, sizeof nbytes, e->nbytes);
		}
		cap = wname + wkind + wdtype + wshape + wbytes + 16;
		line = tool_xmalloc(cap);
		snprintf(line, cap, "%-*s  %-*s  %-*s  %-*s  %*s", (int)wname, names[i], (int)wkind,
			 tool_entry_kind(e), (int)wdtype, dtype, (int)wshape, shape, (int)wbytes,
			 nbytes);
		/* Trailing blanks would make golden files fragile in editors. */
		len = strlen(line);
		while (len > 0 && line[len - 1] == ' ')
			line[--len] = '\0';
		fputs(line, stdout);
		free(line);
		free(dtype);
		if (e->layer) {
			fputs("  ", stdout);
			tool_put(stdout, e->layer);
		}
		if (note) {
			fputs("  (", stdout);
			fputs(note, stdout);
			fputs(")", stdout);
			free(note);
		}
		putchar('\n');
		free(names[i]);
	}
	free(names);
	ls_totals(w, &tensors, &reserved, &params, &bytes);
	{
		char p[64], b[64];
		tool_group_digits(p, sizeof p, params);
		tool_group_digits(b, sizeof b, bytes);
		printf("total: %llu tensor%s", (unsigned long long)tensors, tensors == 1 ? "" : "s");
		if (reserved)
			printf(" (%llu in nnh5_* groups)", (unsigned long long)reserved);
		printf(", %s parameters, %s bytes", p, b);
		if (w->n_refused)
			printf(", %zu refused", w->n_refused);
		putchar('\n');
	}
}

int cmd_ls(int argc, char **argv)
{
	bool json = false;
	const struct tool_opt opts[] = { { "--json", &json, NULL, NULL }, { NULL, NULL, NULL, NULL } };
	const char *pos[2], *file, *path;
	char *npath;
	struct walk w;
	nnh5_file *f;
	int rc = tool_args(argc, argv, "ls", ls_usage, opts, pos, 1, 2, "missing FILE");

	if (rc >= 0)
		return rc;
	file = pos[0];
	path = pos[1];
	if (!path && !json && tool_is_folder(file))
		return tool_ls_folder(file);
	npath = tool_norm_path(path ? path : "/");
	if (!npath) {
		fprintf(stderr, "nnh5 ls: PATH may not have '.' or '..' components\n");
		return EXIT_USAGE;
	}
	f = tool_open("ls", file);
	if (!f) {
		free(npath);
		return EXIT_USAGE;
	}
	if (tool_walk(&w, "ls", f, npath, false) < 0) {
		nnh5_file_discard(f);
		free(npath);
		return EXIT_USAGE;
	}
	if (json)
		rc = ls_json(&w, file, npath) < 0 ? EXIT_USAGE : 0;
	else
		(ls_text(&w, file), rc = 0);
	tool_walk_free(&w);
	nnh5_file_discard(f);
	free(npath);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{"ls", cmd_ls}, {"show", cmd_show}, {"diff", cmd_diff},
		{"verify", cmd_verify}, {"dump", cmd_dump}, {"convert", cmd_convert},
	};

	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		unsigned maj, min, rel;
		/* The tool's only HDF5 call: which HDF5 the library runs on. */
		H5get_libversion(&maj, &min, &rel);
		printf("nnh5 %s (library %s, HDF5 %u.%u.%u)\n", NNH5_VERSION_STRING, nnh5_version(),
		       maj, min, rel);
		return 0;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "nnh5: unknown command '");
	tool_put(stderr, argv[1]);
	fprintf(stderr, "'\n%s", usage_text);
	return EXIT_USAGE;
}
