/*
 * tools/nnh5_args.c - the one command-line parser every subcommand uses:
 * --help, flags, options taking a non-negative number ("--atol 1e-6" or
 * "--atol=1e-6") or a word ("--to nnh5"), "--" to end options, and
 * positional arguments.
 */
#include "nnh5_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse_number(double *out, const char *cmd, const char *name, const char *s)
{
	char *end;

	if (!s) {
		fprintf(stderr, "nnh5 %s: %s needs a value\n", cmd, name);
		return -1;
	}
	*out = strtod(s, &end);
	if (end == s || *end || !isfinite(*out) || *out < 0) {
		fprintf(stderr, "nnh5 %s: %s wants a non-negative number\n", cmd, name);
		return -1;
	}
	return 0;
}

/* The option named by a ("--atol" or "--atol=..."); *value is set for the "=" form. */
static const struct tool_opt *find_opt(const struct tool_opt *opts, const char *a,
				       const char **value)
{
	*value = NULL;
	for (; opts && opts->name; opts++) {
		size_t n = strlen(opts->name);
		if (strncmp(a, opts->name, n) != 0)
			continue;
		if (a[n] == '\0')
			return opts;
		if (a[n] == '=' && (opts->number || opts->text)) {
			*value = a + n + 1;
			return opts;
		}
	}
	return NULL;
}

int tool_args(int argc, char **argv, const char *cmd, const char *usage,
	      const struct tool_opt *opts, const char **pos, int nreq, int npos,
	      const char *missing)
{
	bool opts_done = false;
	int got = 0;

	for (int i = 0; i < npos; i++)
		pos[i] = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *value;
		const struct tool_opt *o;

		if (!opts_done && !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 0;
		} else if (!opts_done && !strcmp(a, "--")) {
			opts_done = true;
		} else if (!opts_done && a[0] == '-' && a[1]) {
			o = find_opt(opts, a, &value);
			if (!o) {
				fprintf(stderr, "nnh5 %s: unknown option '", cmd);
				tool_put(stderr, a);
				fprintf(stderr, "'\n%s", usage);
				return EXIT_USAGE;
			}
			if (o->flag) {
				*o->flag = true;
			} else if (o->text) {
				if (!value)
					value = i + 1 < argc ? argv[++i] : NULL;
				if (!value) {
					fprintf(stderr, "nnh5 %s: %s needs a value\n", cmd, o->name);
					return EXIT_USAGE;
				}
				*o->text = value;
			} else {
				if (!value)
					value = i + 1 < argc ? argv[++i] : NULL;
				if (parse_number(o->number, cmd, o->name, value) < 0)
					return EXIT_USAGE;
			}
		} else if (got < npos) {
			pos[got++] = a;
		} else {
			fprintf(stderr, "nnh5 %s: too many arguments\n%s", cmd, usage);
			return EXIT_USAGE;
		}
	}
	if (got < nreq) {
		fprintf(stderr, "nnh5 %s: %s\n%s", cmd, missing, usage);
		return EXIT_USAGE;
	}
	return -1;
}
