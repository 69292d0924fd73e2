/*
 * nnh5_verify.c - `nnh5 verify FILE` and `nnh5 dump FILE [PATH]`.
 *
 * verify checks what a file can prove about itself, one line per check:
 * that it opens (HDF5 metadata carries checksums, so this catches flipped
 * metadata bits), its format version, that every tensor loads, that every
 * group's stored key order agrees with its tensors, and that
 * every model rebuilds and reproduces its stored probe. Exit 0 when all
 * pass, 1 when any fails.
 *
 * Both see the file through the library's walk: every object a load
 * would refuse (an external link, a soft link crossing one, external
 * storage, a virtual dataset, a bad name, nesting past the limits) is a
 * failed check naming the object, so verify fails every file some loader
 * would refuse.
 *
 * dump runs h5dump (fork and execvp, no shell, so no quoting issues with
 * hostile names) with the flags that fit the object, so users get h5dump's
 * exact view without remembering them, but only after the walk found
 * nothing below the object that the load policy refuses: h5dump itself
 * follows external links and prints external storage. NNH5_H5DUMP
 * overrides the program.
 */
#include "nnh5_util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nnh5/file.h>
#include <nnh5/nn.h>
#include <nnh5/untrusted.h>

static const char verify_usage[] =
	"usage: nnh5 verify [--tolerance X] [--untrusted [--memory MB] [--timeout S]] FILE\n"
	"       nnh5 verify DIR\n"
	"\n"
	"Check FILE, one line per check: it opens, its nnh5 format version is\n"
	"known, nothing in it is refused by the load policy (external links, soft\n"
	"links through them, external storage, virtual datasets, bad names,\n"
	"nesting or sizes past the limits), every tensor loads and matches its\n"
	"stored checksum (tensors written without one say so), every group's\n"
	"stored key order agrees with its tensors, every model rebuilds from the\n"
	"file and its stored probe gives the stored output (bitwise, and the\n"
	"largest absolute difference). Exit status 0 when every check passes,\n"
	"1 otherwise.\n"
	"For a checkpoint folder DIR: load every checkpoint (all checksums), newest\n"
	"first, and name the step a resumed run would start from.\n"
	"\n"
	"  --tolerance X   accept a probe whose output differs by at most X\n"
	"                  (another BLAS may differ in the last bits; default 0:\n"
	"                  bitwise identity required)\n"
	"  --untrusted     for a file from a stranger: make every check inside a\n"
	"                  child process with limited memory, CPU time and no file\n"
	"                  writes, so that even a crash of HDF5's parser is only a\n"
	"                  failed check (the load policy refuses external links,\n"
	"                  external storage, virtual datasets, unknown filters and\n"
	"                  oversized data in both modes)\n"
	"  --memory MB     --untrusted: the child's address space (default 4096)\n"
	"  --timeout S     --untrusted: kill the child after S seconds (default 120)\n"
	"  --help          this help\n";

static const char dump_usage[] =
	"usage: nnh5 dump [--attrs | --header] FILE [PATH]\n"
	"\n"
	"Run h5dump on FILE with the flags that fit: the header (-H) of the file\n"
	"or of the group PATH, the data of the dataset PATH (-d). Refused (exit 2,\n"
	"naming each object and why) when anything below PATH is refused by the\n"
	"load policy: h5dump would follow external links and print external raw\n"
	"storage and virtual datasets, which read other files.\n"
	"\n"
	"  --attrs    header and attribute values only (-A)\n"
	"  --header   header only, also for a dataset (-H)\n"
	"  --help     this help\n"
	"\n"
	"The NNH5_H5DUMP environment variable names another h5dump program.\n";

static int n_fail;

static void check(bool ok, const char *fmt_what, const char *path)
{
	if (!ok)
		n_fail++;
	printf("%-4s  %s", ok ? "ok" : "FAIL", fmt_what);
	if (path)
		tool_put(stdout, path);
}

/* One line per check of an untrusted-mode report, as the in-process checks print them. */
static void print_entry(const char *file, const nnh5_untrusted_entry *e)
{
	bool ok = e->status == NNH5_OK;

	switch (e->kind) {
	case NNH5_CHECK_OPEN:
		check(ok, "file opens: ", file);
		break;
	case NNH5_CHECK_WALK:
		check(false, "groups list: ", e->object);
		break;
	case NNH5_CHECK_TENSOR:
		check(ok, "tensor loads: ", e->object);
		if (ok)
			fputs(e->has_checksum ? " (checksum ok)" : " (no checksum)", stdout);
		break;
	case NNH5_CHECK_SKIPPED:
		printf("%-4s  ", "skip");
		tool_put(stdout, e->object);
		fputs(": not a tensor", stdout);
		break;
	case NNH5_CHECK_MODEL:
		check(ok, "model rebuilds: ", e->object);
		if (ok)
			printf(" (%zu layers, %s)", e->count, e->message);
		break;
	case NNH5_CHECK_PROBE:
		check(ok, "model probe: ", e->object);
		if (e->count)
			printf(": %s, max abs diff %.6g over %zu elements",
			       e->bitwise_equal ? "bitwise identical" : "NOT bitwise identical",
			       e->max_abs_diff, e->count);
		break;
	}
	if (e->status != NNH5_OK && e->message[0]) {
		fputs(": ", stdout);
		tool_put_message(stdout, e->message);
	}
	putchar('\n');
}

static int verify_untrusted(const char *file, double tol, double memory_mb, double timeout)
{
	nnh5_untrusted_options o = NNH5_UNTRUSTED_OPTIONS_INIT;
	nnh5_untrusted_report *r = NULL;
	int rc;

	o.tolerance = tol;
	if (memory_mb > 0)
		o.max_memory = (uint64_t)memory_mb << 20;
	if (timeout > 0)
		o.timeout_seconds = (unsigned)timeout;
	n_fail = 0;
	printf("%-4s  untrusted mode: every check runs in a child process (memory %llu MiB, "
	       "timeout %u s)\n",
	       "info", (unsigned long long)(o.max_memory ? o.max_memory >> 20 : 4096),
	       o.timeout_seconds ? o.timeout_seconds : 120);
	rc = nnh5_untrusted_check(&r, file, &o);
	for (size_t i = 0; r && i < r->n_entries; i++)
		print_entry(file, &r->entries[i]);
	if (rc != NNH5_OK && (!r || r->crashed || r->timed_out || r->n_failed == 0)) {
		check(false, "inspection: ", file);
		fputs(": ", stdout);
		tool_put_message(stdout, nnh5_error_message());
		putchar('\n');
	}
	printf("%s: %d check%s failed\n", n_fail ? "FAILED" : "OK", n_fail, n_fail == 1 ? "" : "s");
	nnh5_untrusted_report_free(r);
	return n_fail ? EXIT_DIFFERS : 0;
}

/*
 * A group's stored key order (nnh5_keys), checked as the loaders check it (a
 * damaged list fails the load): one line for each group that has a list.
 */
static void verify_keys(nnh5_file *f, const struct entry *e)
{
	bool listed = false;
	int rc = nnh5_file_check_keys(&listed, f, e->path);

	if (rc == NNH5_OK && !listed)
		return;
	check(rc == NNH5_OK, "key order: ", e->path);
	if (rc != NNH5_OK) {
		fputs(": ", stdout);
		tool_put_message(stdout, nnh5_error_message());
	}
	putchar('\n');
}

/* One line per entry of the walk: what a load would do with it. */
static void verify_entry(nnh5_file *f, const struct entry *e)
{
	if (e->type == NNH5_ENTRY_REFUSED) {
		check(false, "", e->path);
		fputs(": ", stdout);
		tool_put_message(stdout, e->message);
		putchar('\n');
	} else if (e->type == NNH5_ENTRY_DATASET) {
		printf("%-4s  ", "skip");
		tool_put(stdout, e->path);
		fputs(": ", stdout);
		tool_put(stdout, e->type_desc);
		fputs(e->null_space ? " dataset with a null dataspace, not a tensor\n"
				    : " dataset, not a tensor\n",
		      stdout);
	} else if (e->type == NNH5_ENTRY_TENSOR) {
		nnh5_tensor *t = NULL;
		uint64_t sum;
		bool has_sum = false;
		/* Aliases load too: a load materialises each name, and the caps count each. */
		bool has_blocks = false;
		int rc = nnh5_file_stored_checksum(&sum, &has_sum, f, e->path);
		if (rc == NNH5_OK)
			rc = nnh5_file_read_tensor(&t, f, e->path);
		/* Serial loads do not read the block checksums (doc/FORMAT.md): checked here. */
		if (rc == NNH5_OK)
			rc = nnh5_file_check_blocks(&has_blocks, f, e->path, t);
		check(rc == NNH5_OK, "tensor loads: ", e->path);
		if (rc != NNH5_OK) {
			fputs(": ", stdout);
			tool_put_message(stdout, nnh5_error_message());
		} else {
			fputs(has_sum ? " (checksum ok" : " (no checksum", stdout);
			if (has_blocks)
				fputs(", block checksums ok", stdout);
			if (e->alias_of) {
				fputs(", alias of ", stdout);
				tool_put(stdout, e->alias_of);
			}
			putchar(')');
		}
		putchar('\n');
		nnh5_tensor_free(t);
	} else if (e->link != NNH5_LINK_HARD || e->alias_of) {
		char *note = tool_entry_note(e);
		printf("%-4s  ", "info");
		tool_put(stdout, e->path);
		fputs(": ", stdout);
		fputs(note, stdout);
		putchar('\n');
		free(note);
	}
}

/* Rebuild the model at entry i and run its stored probe. */
static void verify_model(nnh5_file *f, const struct walk *w, size_t i, double tol)
{
	const struct entry *e = &w->v[i];
	nnh5_model *m = NULL;
	nnh5_verify_result vr;
	bool has_probe = false;
	int rc;

	for (size_t j = i + 1; j < w->n && w->v[j].depth > e->depth; j++)
		if (w->v[j].depth == e->depth + 1 && !strcmp(w->v[j].name, "nnh5_probe") &&
		    w->v[j].type == NNH5_ENTRY_GROUP)
			has_probe = true;
	rc = nnh5_file_read_model(&m, f, e->path);
	check(rc == NNH5_OK, "model rebuilds: ", e->path);
	if (rc != NNH5_OK) {
		fputs(": ", stdout);
		tool_put_message(stdout, nnh5_error_message());
		putchar('\n');
		return;
	}
	printf(" (%zu layers, %s)\n", nnh5_model_len(m), nnh5_dtype_name(nnh5_model_dtype(m)));
	nnh5_model_free(m);
	if (!has_probe) {
		printf("%-4s  model ", "info");
		tool_put(stdout, e->path);
		printf(": no stored probe\n");
		return;
	}
	rc = nnh5_file_verify_model(&vr, f, e->path);
	if (rc != NNH5_OK) {
		check(false, "model probe: ", e->path);
		fputs(": ", stdout);
		tool_put_message(stdout, nnh5_error_message());
		putchar('\n');
		return;
	}
	check(vr.bitwise_equal || vr.max_abs_diff <= tol, "model probe: ", e->path);
	printf(": %s, max abs diff %.6g over %zu elements\n",
	       vr.bitwise_equal ? "bitwise identical" : "NOT bitwise identical", vr.max_abs_diff,
	       vr.numel);
}

int cmd_verify(int argc, char **argv)
{
	double tol = 0, memory_mb = 0, timeout = 0;
	bool untrusted = false;
	const struct tool_opt opts[] = { { "--tolerance", NULL, &tol, NULL },
					 { "--untrusted", &untrusted, NULL, NULL },
					 { "--memory", NULL, &memory_mb, NULL },
					 { "--timeout", NULL, &timeout, NULL },
					 { NULL, NULL, NULL, NULL } };
	const char *file;
	struct walk w;
	nnh5_file *f = NULL;
	int64_t version;
	int st = tool_args(argc, argv, "verify", verify_usage, opts, &file, 1, 1, "missing FILE");

	if (st >= 0)
		return st;
	if (tool_is_folder(file)) {
		if (!untrusted)
			return tool_verify_folder(file);
		fprintf(stderr, "nnh5 verify: --untrusted checks one file, not a folder\n");
		return EXIT_USAGE;
	}
	/* Nothing of the file is parsed in this process. */
	if (untrusted)
		return verify_untrusted(file, tol, memory_mb, timeout);
	n_fail = 0;
	f = tool_open("verify", file);
	if (!f)
		return EXIT_USAGE;
	check(true, "file opens: ", file);
	putchar('\n');
	if (tool_walk(&w, "verify", f, "/", false) < 0) {
		/* The walk's message stays the thread's last one. */
		check(false, "file walks: ", file);
		fputs(": ", stdout);
		tool_put_message(stdout, nnh5_error_message());
		printf("\nFAILED: %d check%s failed\n", n_fail, n_fail == 1 ? "" : "s");
		nnh5_file_discard(f);
		return EXIT_DIFFERS;
	}
	if (nnh5_file_get_attr_int(&version, f, "/", "nnh5_format_version") == NNH5_OK) {
		check(version >= 1 && version <= 1, "format version ", NULL);
		printf("%lld%s\n", (long long)version, version == 1 ? "" : " (this tool knows 1)");
	} else {
		printf("%-4s  format version: none (not written by nnh5)\n", "info");
	}
	for (size_t i = 0; i < w.n; i++)
		verify_entry(f, &w.v[i]);
	for (size_t i = 0; i < w.n; i++)
		if (w.v[i].type == NNH5_ENTRY_GROUP && !w.v[i].alias_of)
			verify_keys(f, &w.v[i]);
	for (size_t i = 0; i < w.n; i++)
		if (w.v[i].type == NNH5_ENTRY_GROUP && w.v[i].kind == NNH5_KIND_MODEL &&
		    !w.v[i].alias_of)
			verify_model(f, &w, i, tol);
	nnh5_file_discard(f);
	printf("%s: %d check%s failed\n", n_fail ? "FAILED" : "OK", n_fail, n_fail == 1 ? "" : "s");
	tool_walk_free(&w);
	return n_fail ? EXIT_DIFFERS : 0;
}

/* Run argv; 127 (with a message) when the program is missing. */
static int run(char *const *args)
{
	int pfd[2], status, err = 0;
	pid_t pid;
	ssize_t r;

	fflush(stdout);
	fflush(stderr);
	/* The child reports a failed exec through a close-on-exec pipe. */
	if (pipe(pfd) < 0 || fcntl(pfd[1], F_SETFD, FD_CLOEXEC) < 0) {
		perror("nnh5 dump: pipe");
		return EXIT_USAGE;
	}
	pid = fork();
	if (pid < 0) {
		perror("nnh5 dump: fork");
		close(pfd[0]);
		close(pfd[1]);
		return EXIT_USAGE;
	}
	if (pid == 0) {
		close(pfd[0]);
		execvp(args[0], args);
		err = errno;
		if (write(pfd[1], &err, sizeof err) < 0)
			_exit(127);
		_exit(127);
	}
	close(pfd[1]);
	do
		r = read(pfd[0], &err, sizeof err);
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_USAGE;
	if (r == (ssize_t)sizeof err) {
		fprintf(stderr, "nnh5 dump: cannot run '");
		tool_put(stderr, args[0]);
		if (err == ENOENT)
			fprintf(stderr, "': h5dump is not installed (Debian: apt install hdf5-tools)\n");
		else
			fprintf(stderr, "': %s\n", strerror(err));
		return EXIT_USAGE;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status) == 0 ? 0 : EXIT_USAGE;
	fprintf(stderr, "nnh5 dump: h5dump was killed\n");
	return EXIT_USAGE;
}

int cmd_dump(int argc, char **argv)
{
	bool attrs = false, header = false;
	const struct tool_opt opts[] = { { "--attrs", &attrs, NULL, NULL }, { "--header", &header, NULL, NULL },
					 { NULL, NULL, NULL, NULL } };
	const char *pos[2], *file, *path, *prog;
	char *npath = NULL, *filearg = NULL;
	char *args[8];
	struct walk w;
	nnh5_file *f;
	int n = 0, rc = tool_args(argc, argv, "dump", dump_usage, opts, pos, 1, 2, "missing FILE");
	bool is_group;

	if (rc >= 0)
		return rc;
	file = pos[0];
	path = pos[1];
	npath = tool_norm_path(path ? path : "/");
	if (!npath) {
		fprintf(stderr, "nnh5 dump: PATH may not have '.' or '..' components\n");
		return EXIT_USAGE;
	}
	/*
	 * h5dump follows external links and prints external raw storage and
	 * virtual datasets, all of which read other files the file's author
	 * chose: walk the object first and run h5dump only when the load
	 * policy refuses nothing below it.
	 */
	f = tool_open("dump", file);
	if (!f || tool_walk(&w, "dump", f, npath, false) < 0) {
		nnh5_file_discard(f);
		free(npath);
		return EXIT_USAGE;
	}
	nnh5_file_discard(f);
	rc = 0;
	for (size_t i = 0; i < w.n; i++) {
		const struct entry *e = &w.v[i];
		if (e->type != NNH5_ENTRY_REFUSED)
			continue;
		if (rc == 0) {
			fprintf(stderr, "nnh5 dump: '");
			tool_put(stderr, file);
			fputs("': not dumping '", stderr);
			tool_put(stderr, npath);
			fputs("': h5dump would read what the load policy refuses:\n", stderr);
		}
		fputs("  ", stderr);
		tool_put(stderr, e->path);
		fputs(": ", stderr);
		tool_put_message(stderr, e->message);
		fputc('\n', stderr);
		rc = EXIT_USAGE;
	}
	is_group = w.n > 0 && w.v[0].type == NNH5_ENTRY_GROUP;
	tool_walk_free(&w);
	if (rc != 0) {
		free(npath);
		return rc;
	}
	prog = getenv("NNH5_H5DUMP");
	args[n++] = (char *)(uintptr_t)(prog && *prog ? prog : "h5dump");
	if (attrs)
		args[n++] = (char *)(uintptr_t)"-A";
	else if (header || is_group)
		args[n++] = (char *)(uintptr_t)"-H";
	if (strcmp(npath, "/") != 0) {
		args[n++] = (char *)(uintptr_t)(is_group ? "-g" : "-d");
		args[n++] = npath;
	}
	/* h5dump would take a file name starting with '-' for an option. */
	if (file[0] == '-') {
		size_t n_arg = strlen(file) + 3;
		filearg = tool_xmalloc(n_arg);
		snprintf(filearg, n_arg, "./%s", file);
	}
	args[n++] = filearg ? filearg : (char *)(uintptr_t)file;
	args[n] = NULL;
	rc = run(args);
	free(filearg);
	free(npath);
	return rc;
}
