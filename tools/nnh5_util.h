/*
 * nnh5_util.h - what the subcommands of the nnh5 tool share: a file's
 * entries as the library's walk reports them (nnh5_walk.c), escaping of
 * untrusted names and formatting for the terminal (nnh5_format.c), and the
 * command-line parser (nnh5_args.c).
 *
 * The tool never opens a file with HDF5 itself: every file goes through
 * nnh5_file_open() and every object through nnh5_file_walk(), so what the
 * tool lists, verifies and dumps is judged by the same load policy as a
 * load (kinds, dtypes, link rules, limits), and a file the library refuses
 * to open (not HDF5, damaged, not a regular file) is refused here too.
 */
#ifndef NNH5_TOOL_UTIL_H
#define NNH5_TOOL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <nnh5/file.h>
#include <nnh5/walk.h>

#define EXIT_DIFFERS 1
#define EXIT_USAGE 2

/* One nnh5_entry, copied: every string owned by the walk it belongs to. */
struct entry {
	char *path;
	char *name;
	size_t depth;
	nnh5_entry_type type;
	nnh5_link_type link;
	char *link_target;  /* NULL for hard links */
	char *alias_of;     /* NULL unless met before under another name */
	bool reserved;
	nnh5_kind kind;     /* groups */
	nnh5_dtype dtype;   /* tensors */
	char *type_desc;    /* tensors and datasets, else NULL */
	bool null_space;
	size_t ndim;
	int64_t *shape;
	uint64_t numel;
	uint64_t nbytes;
	int status;         /* refused entries */
	char *message;      /* refused entries, else NULL */
	char *layer;        /* nnh5_layer_type of a model's child group, or NULL */
};

struct walk {
	struct entry *v;
	size_t n, cap;
	size_t n_refused;
};

/* One option of a subcommand: a flag (flag set), a number (number set) or a word (text set). */
struct tool_opt {
	const char *name; /* "--json" */
	bool *flag;
	double *number;   /* a non-negative finite value: "--atol X" or "--atol=X" */
	const char **text; /* any value: "--to X" or "--to=X" (borrowed from argv) */
};

/*
 * Parse argv for subcommand cmd: --help prints usage, opts (terminated by a
 * NULL name) set their targets, the positionals go to pos[0..npos-1], at
 * least nreq of them (else "missing" is printed). Returns -1 to go on, or the
 * exit status to return (0 after --help, EXIT_USAGE after a message).
 */
int tool_args(int argc, char **argv, const char *cmd, const char *usage,
	      const struct tool_opt *opts, const char **pos, int nreq, int npos,
	      const char *missing);

/*
 * Open path for reading with the library (its checks: a regular file,
 * HDF5, not damaged). On failure prints the library's message, prefixed by
 * cmd, to stderr and returns NULL. Close with nnh5_file_discard().
 */
nnh5_file *tool_open(const char *cmd, const char *path);

/*
 * Normalise a user's object path into a new string: leading '/', no empty
 * components, no trailing '/'. NULL when it has "." or ".." components.
 */
char *tool_norm_path(const char *path);

/*
 * Walk the object at path (a normalised absolute path) of f into w with
 * nnh5_file_walk(), the format's own nnh5_* objects included, refused
 * objects reported as entries (w->n_refused counts them). With first_only,
 * only the object at path itself. Returns 0, or -1 with a message on
 * stderr (prefixed by cmd) when the walk fails as a whole (path missing or
 * unreachable without crossing what the policy refuses); w is then empty.
 */
int tool_walk(struct walk *w, const char *cmd, nnh5_file *f, const char *path, bool first_only);
void tool_walk_free(struct walk *w);

/* What an entry is, in one word: tensor, dataset, datatype, refused, or a group's kind. */
const char *tool_entry_kind(const struct entry *e);
/*
 * Why an entry reads differently from a plain object, as a new string or
 * NULL: the link that names it and the name it was met under first, or
 * the refusal's message. Print it with tool_put_message().
 */
char *tool_entry_note(const struct entry *e);

/* A new string with control characters, backslashes and invalid UTF-8 escaped. Never NULL. */
char *tool_escape(const char *s);
/* Print s escaped. */
void tool_put(FILE *fp, const char *s);
/*
 * The same for the library's messages, which escape the names they quote
 * already: backslashes are kept, anything else unsafe is still escaped.
 */
char *tool_escape_message(const char *s);
void tool_put_message(FILE *fp, const char *s);
/* "(256, 20)", "()" for a scalar, "null" for a null dataspace. */
void tool_shape_str(char *buf, size_t n, bool null_space, size_t ndim, const int64_t *shape);
/* 12345678 as "12,345,678". */
void tool_group_digits(char *buf, size_t n, uint64_t v);

void *tool_xmalloc(size_t n);
void *tool_xrealloc(void *p, size_t n);
char *tool_xstrdup(const char *s);

int cmd_ls(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_convert(int argc, char **argv);

/* nnh5_ckpt.c: checkpoint folders (ls DIR, verify DIR). */
bool tool_is_folder(const char *path);
int tool_ls_folder(const char *dir);
int tool_verify_folder(const char *dir);

#endif /* NNH5_TOOL_UTIL_H */
