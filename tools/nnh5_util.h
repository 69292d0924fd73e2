/*
 * nnh5_util.h - what the subcommands of the nnh5 tool share: the walk of an
 * arbitrary HDF5 file into a flat list of entries, escaping of untrusted
 * names for the terminal, and small formatting helpers.
 *
 * The walk uses HDF5 directly (not the library's readers) because the tool
 * must describe any HDF5 file, including objects nnh5 cannot load, and must
 * stay in control of link traversal on hostile files.
 */
#ifndef NNH5_TOOL_UTIL_H
#define NNH5_TOOL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <hdf5.h>

#define EXIT_DIFFERS 1
#define EXIT_USAGE 2

/* HDF5's own rank limit; the tool refuses files claiming more. */
#define TOOL_MAX_NDIM 32
/* Deeper nesting than this is almost certainly hostile, and recursion must stay bounded. */
#define TOOL_MAX_DEPTH 64

/* One object (or link) met while walking. Strings are raw bytes from the file. */
struct entry {
	char *path;      /* absolute, '/'-separated */
	char *name;      /* last component, "/" for the root */
	int depth;       /* 0 for the walk's root */
	bool is_group;
	bool is_dataset;
	bool loadable;   /* a dataset whose type nnh5 loads */
	bool reserved;   /* at or below an nnh5_* link */
	bool error;      /* could not be read: the file is damaged */
	const char *kind; /* static: tensor, list, dict, state_dict, model, checkpoint, group, link, datatype, dataset, error */
	char dtype[48];  /* nnh5 dtype name, or what the HDF5 type is */
	bool has_shape;  /* false for a null dataspace */
	int ndim;
	hsize_t dims[TOOL_MAX_NDIM];
	uint64_t numel;
	uint64_t bytes;
	bool overflow;   /* numel or bytes overflowed 64 bits */
	char *layer;     /* nnh5_layer_type of a model child, or NULL */
	char *note;      /* why a link was not followed, what failed, ... or NULL */
};

struct walk {
	struct entry *v;
	size_t n, cap;
	size_t n_errors;
	haddr_t *seen;       /* addresses of groups already listed */
	char **seen_path;
	size_t n_seen, cap_seen;
	hid_t lapl;          /* refuses external links */
};

/* Silence HDF5's error stack printing (the tool reports errors itself). */
void tool_init_hdf5(void);

/* One option of a subcommand: a flag (flag set) or a number (number set). */
struct tool_opt {
	const char *name; /* "--json" */
	bool *flag;
	double *number;   /* a non-negative finite value: "--atol X" or "--atol=X" */
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
 * Open path read-only with HDF5. On failure prints a message naming the file
 * to stderr (prefixed by cmd) and returns a negative id.
 */
hid_t tool_open(const char *cmd, const char *path);

/*
 * Normalise a user's object path into a new string: leading '/', no empty
 * components, no trailing '/'. NULL when it has "." or ".." components.
 */
char *tool_norm_path(const char *path);

/*
 * Walk the object at path (a normalised absolute path) of fid into w.
 * Returns 0, or -1 with a message on stderr when path does not exist or is
 * reached through anything but hard links (then w is empty).
 */
int tool_walk(struct walk *w, const char *cmd, const char *file, hid_t fid, const char *path);
void tool_walk_free(struct walk *w);

/* A new string with control characters, backslashes and invalid UTF-8 escaped. Never NULL. */
char *tool_escape(const char *s);
/* Print s escaped. */
void tool_put(FILE *fp, const char *s);
/* "(256, 20)", "()" for a scalar, "null" for a null dataspace. */
void tool_shape_str(char *buf, size_t n, const struct entry *e);
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

/* nnh5_ckpt.c: checkpoint folders (ls DIR, verify DIR). */
bool tool_is_folder(const char *path);
int tool_ls_folder(const char *dir);
int tool_verify_folder(const char *dir);

#endif /* NNH5_TOOL_UTIL_H */
