/*
 * tests/hostile/test_hostile.c - every file of the hostile corpus
 * (make_corpus.py) is refused with its own status and message, in a child
 * process whose address space is capped (RLIMIT_AS, 1 GiB: the deflate
 * bomb declares 4 GiB, so a load that allocated it would fail with
 * NNH5_ERR_NOMEM instead of the policy's refusal), so a crash or a runaway
 * allocation is a failed check, never a crashed test run. Each file is also
 * loaded from memory (nnh5_file_open_image) and inspected in untrusted mode
 * (nnh5_untrusted_check), which must report the same refusal.
 *
 * `test_hostile --load FILE` only loads FILE every way nnh5 can (for
 * strace_check.py, which watches which files that opens).
 *
 * test_crashers: files that crash HDF5's parser are contained by untrusted mode.
 *
 * Usage: test_hostile CORPUS_DIR CRASHERS_DIR
 */
#define _GNU_SOURCE
#include "../testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nnh5/map.h>
#include <nnh5/untrusted.h>
#include <nnh5/walk.h>

static const char *corpus;
static const char *crashers;

enum how {
	STATE_DICT, /* nnh5_load_state_dict(FILE) */
	DICT,       /* nnh5_load_dict(FILE) */
	TENSOR,     /* nnh5_file_read_tensor(FILE, object) */
	GROUP,      /* nnh5_file_read_state_dict(FILE, object) */
};

struct hostile {
	const char *file;
	enum how how;
	const char *object;
	int status;
	const char *needle[3];
};

static const struct hostile cases[] = {
	{ "external_link.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "'/evil' is an external link (to another file): refused" } },
	{ "external_link.h5", TENSOR, "evil", NNH5_ERR_UNSAFE, { "'evil' is an external link" } },
	{ "external_link_group.h5", GROUP, "evil/y", NNH5_ERR_UNSAFE,
	  { "'evil' is an external link" } },
	{ "external_storage.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/raw' stores its data in external files: refused" } },
	{ "external_passwd.h5", TENSOR, "passwd", NNH5_ERR_UNSAFE,
	  { "dataset 'passwd' stores its data in external files" } },
	{ "virtual.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/vds' is a virtual dataset (reads other files): refused" } },
	{ "unknown_filter.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/filtered' uses filter 32123", "allowed: deflate, shuffle, fletcher32" } },
	{ "blosc_params.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/x' uses filter 32001", "blosc with parameters nnh5 does not write" } },
	{ "lz4_params.h5", TENSOR, "x", NNH5_ERR_UNSAFE,
	  { "dataset 'x' uses filter 32004", "LZ4 with parameters nnh5 does not write" } },
	{ "huge_2e62.h5", STATE_DICT, NULL, NNH5_ERR_OVERFLOW,
	  { "dataset '/huge' declares 4611686018427387904 bytes", "max_tensor_bytes" } },
	{ "huge_overflow.h5", TENSOR, "huge", NNH5_ERR_OVERFLOW,
	  { "dataset 'huge' declares a size that overflows 64 bits" } },
	{ "sparse.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/sparse' declares 1073741824 bytes but stores 4096", "100:1" } },
	{ "deflate_bomb.h5", STATE_DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/bomb' declares 4294967296 bytes but stores", "compression bomb" } },
	{ "overlap.h5", DICT, NULL, NNH5_ERR_UNSAFE,
	  { "dataset '/b': its data (bytes 2048..10240) overlaps the data of another dataset" } },
	{ "outside.h5", STATE_DICT, NULL, NNH5_ERR_FORMAT, { "dataset '/b'", "outside the file" } },
	{ "cycle.h5", STATE_DICT, NULL, NNH5_ERR_FORMAT,
	  { "group '/a/loop' links back to its own ancestor (a cycle)" } },
	{ "soft_cycle.h5", STATE_DICT, NULL, NNH5_ERR_FORMAT,
	  { "the soft link '/s1' -> '/s2'", "a cycle of soft links" } },
	{ "bad_utf8.h5", STATE_DICT, NULL, NNH5_ERR_FORMAT,
	  { "the name 'bad\\xff\\xfe', which is not valid UTF-8: refused" } },
	{ "control_name.h5", DICT, NULL, NNH5_ERR_FORMAT,
	  { "the name 'evil\\x1b[31mred\\x07', which is made with control characters" } },
	{ "long_name.h5", STATE_DICT, NULL, NNH5_ERR_OVERFLOW,
	  { "a name of 5000 bytes", "max_name_length" } },
	{ "bad_utf8_attr.h5", DICT, NULL, NNH5_ERR_FORMAT,
	  { "attribute 'nnh5_keys': string 0 ('w\\xff') is not valid UTF-8" } },
	{ "groups_100k.h5", STATE_DICT, NULL, NNH5_ERR_OVERFLOW,
	  { "group '/' holds more than 10000 groups (max_groups)" } },
	{ "deep.h5", STATE_DICT, NULL, NNH5_ERR_OVERFLOW, { "nested deeper than 64 groups" } },
};
#define N_CASES (sizeof cases / sizeof cases[0])

/*
 * Files whose links lead out of the file or multiply what a load
 * materialises: refused by every loader (the one-call loaders, reads
 * through a handle of the group and of the tensor named, the lazy map, the
 * walk with keep_going, untrusted mode), each with needle in its message.
 */
struct link_case {
	const char *file;
	int status;
	const char *needle[2];
	const char *group;       /* what nnh5_file_read_state_dict and the map load ("/") */
	const char *tensor;      /* what nnh5_file_read_tensor and nnh5_map_tensor load, or NULL */
	bool load_tensor;        /* nnh5_load_tensor refuses it too */
	uint64_t max_load_bytes; /* the handles' cap (0: default) */
	/* Aliases load as copies (copy_aliases): only loads that take options are tried. */
	bool copy_aliases;
};

static const struct link_case link_cases[] = {
	{ "soft_via_external.h5", NNH5_ERR_UNSAFE,
	  { "'/nnh5_hidden' is an external link (to another file): refused", "elsewhere/target.h5" },
	  "/", "s", true, 0, false },
	{ "soft_outside_group.h5", NNH5_ERR_UNSAFE,
	  { "'/elsewhere' is an external link (to another file): refused", "elsewhere/target.h5" },
	  "model", "model/hidden/weight", true, 0, false },
	{ "soft_tensor.h5", NNH5_ERR_UNSAFE,
	  { "'/nnh5_ext' is an external link (to another file): refused", "elsewhere/target.h5" },
	  "/", "tensor", true, 0, false },
	{ "soft_chain.h5", NNH5_ERR_UNSAFE,
	  { "'/nnh5_ext' is an external link (to another file): refused", "elsewhere/target.h5" },
	  "/", "a", true, 0, false },
	{ "soft_relative.h5", NNH5_ERR_UNSAFE,
	  { "nnh5_sub' is an external link (to another file): refused", "'/grp' in" }, "g", "g/s",
	  false, 0, false },
	{ "soft_group.h5", NNH5_ERR_UNSAFE, { "s' is a soft link to a group: refused", "soft_group" },
	  "s", "s/x", true, 0, false },
	{ "soft_group_external.h5", NNH5_ERR_UNSAFE,
	  { "'/nnh5_ext' is an external link (to another file): refused", "elsewhere/target.h5" },
	  "s", "s/y", true, 0, false },
	{ "soft_long_chain.h5", NNH5_ERR_FORMAT, { "more than 16 soft links in a row", "c00" }, "/",
	  "c00", true, 0, false },
	{ "soft_cycle.h5", NNH5_ERR_FORMAT, { "a cycle of soft links", "s1" }, "/", "s1", true, 0, false },
	{ "reserved_external.h5", NNH5_ERR_UNSAFE,
	  { "'/nnh5_probe' is an external link (to another file): refused", "elsewhere/target.h5" },
	  "/", NULL, true, 0, false },
	{ "external_link.h5", NNH5_ERR_UNSAFE,
	  { "evil' is an external link (to another file): refused", "elsewhere/target.h5" }, "/",
	  "evil", true, 0, false },
	{ "aliases_200.h5", NNH5_ERR_OVERFLOW, { "another name of '/data'", "alias" }, "/", NULL,
	  false, UINT64_C(64) << 20, true },
	{ "deep.h5", NNH5_ERR_OVERFLOW, { "nested deeper than 64 groups", "max_depth" }, "/", NULL,
	  false, 0, false },
};
#define N_LINK_CASES (sizeof link_cases / sizeof link_cases[0])

/* Sanitizers and valgrind reserve far more address space than they use. */
static bool can_cap_memory(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return false;
#else
	const char *pre = getenv("LD_PRELOAD");
	return !(pre && strstr(pre, "vgpreload"));
#endif
}


/* Load c's file as c says, through f. */
static int load_with(nnh5_file *f, const struct hostile *c)
{
	nnh5_dict *d = NULL;
	nnh5_tensor *t = NULL;
	int rc;

	switch (c->how) {
	case STATE_DICT: rc = nnh5_file_read_state_dict(&d, f, "/"); break;
	case DICT: rc = nnh5_file_read_dict(&d, f, "/"); break;
	case TENSOR: rc = nnh5_file_read_tensor(&t, f, c->object); break;
	default: rc = nnh5_file_read_state_dict(&d, f, c->object); break;
	}
	nnh5_dict_free(d);
	nnh5_tensor_free(t);
	return rc;
}

/* In the child: 0 when rc and msg are as wanted (needles: up to n, NULL-ended); else prints why. */
static int expect(const char *file, const char *how, int want, const char *const *needle,
		  size_t n, int rc, const char *msg)
{
	if (rc != want) {
		printf("%s (%s): %s, expected %s: %s\n", file, how, nnh5_status_name(rc),
		       nnh5_status_name(want), msg);
		return 1;
	}
	for (size_t i = 0; i < n && needle[i]; i++)
		if (!strstr(msg, needle[i])) {
			printf("%s (%s): message lacks '%s': %s\n", file, how, needle[i], msg);
			return 1;
		}
	return 0;
}

static int check_result(const struct hostile *c, const char *how, int rc, const char *msg)
{
	return expect(c->file, how, c->status, c->needle, 3, rc, msg);
}

/*
 * Run fn(arg) in a child whose address space is capped (1 GiB) and that
 * dies after 120 s; true when it exited 0. file names it in reports.
 */
static bool in_capped_child(int (*fn)(const void *), const void *arg, const char *file)
{
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (can_cap_memory()) {
			struct rlimit as = { (rlim_t)1 << 30, (rlim_t)1 << 30 };
			if (setrlimit(RLIMIT_AS, &as) < 0)
				_exit(3);
		}
		alarm(120);
		int r = fn(arg);
		fflush(stdout);
		_exit(r);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		assert_int_equal(errno, EINTR);
	if (WIFSIGNALED(st))
		printf("%s: the loading child died of signal %d\n", file, WTERMSIG(st));
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int run_case(const void *arg)
{
	const struct hostile *c = arg;
	char path[4096];
	nnh5_file *f;
	int rc, bad = 0;

	snprintf(path, sizeof path, "%s/%s", corpus, c->file);
	/* From disk. */
	rc = nnh5_file_open(&f, path, NNH5_READ);
	if (rc == NNH5_OK) {
		rc = load_with(f, c);
		nnh5_file_close(f);
	}
	bad |= check_result(c, "file", rc, nnh5_error_message());
	/* From memory: the same policy, the same refusal. */
	size_t n;
	char *img = tu_slurp(path, &n);
	if (!img) {
		printf("%s: cannot read it\n", c->file);
		return 1;
	}
	rc = nnh5_file_open_image(&f, img, n, c->file, NULL);
	free(img);
	if (rc == NNH5_OK) {
		rc = load_with(f, c);
		nnh5_file_close(f);
	}
	bad |= check_result(c, "image", rc, nnh5_error_message());
	return bad;
}

static void test_corpus(void **state)
{
	unsigned failed = 0;
	(void)state;
	for (size_t i = 0; i < N_CASES; i++) {
		if (in_capped_child(run_case, &cases[i], cases[i].file))
			printf("# hostile: %-24s refused\n", cases[i].file);
		else
			failed++;
	}
	if (failed)
		fail_msg("%u of %zu hostile cases were not refused as expected", failed, N_CASES);
}

/* Untrusted mode reports the same refusals, and the caller never loads anything. */
static void test_untrusted(void **state)
{
	unsigned failed = 0;
	(void)state;
	for (size_t i = 0; i < N_CASES; i++) {
		const struct hostile *c = &cases[i];
		nnh5_untrusted_report *r = NULL;
		char path[4096];
		if (c->how != STATE_DICT && c->how != DICT)
			continue;
		snprintf(path, sizeof path, "%s/%s", corpus, c->file);
		int rc = nnh5_untrusted_check(&r, path, NULL);
		if (rc != c->status) {
			printf("%s (untrusted): %s, expected %s: %s\n", c->file,
			       nnh5_status_name(rc), nnh5_status_name(c->status),
			       nnh5_error_message());
			failed++;
		} else if (!strstr(nnh5_error_message(), c->needle[0])) {
			printf("%s (untrusted): message lacks '%s': %s\n", c->file, c->needle[0],
			       nnh5_error_message());
			failed++;
		}
		nnh5_untrusted_report_free(r);
	}
	if (failed)
		fail_msg("%u hostile files were not refused in untrusted mode", failed);
}

static int link_result(const struct link_case *c, const char *how, int rc, const char *msg)
{
	return expect(c->file, how, c->status, c->needle, 2, rc, msg);
}

/* The walk with keep_going: some entry is refused as the loads are. */
struct refusals {
	const struct link_case *c;
	unsigned matching, refused, entries;
};

static int count_refusals(const nnh5_entry *e, void *ctx)
{
	struct refusals *r = ctx;

	r->entries++;
	if (e->type != NNH5_ENTRY_REFUSED)
		return 0;
	r->refused++;
	if (e->status == r->c->status && e->message && strstr(e->message, r->c->needle[0]))
		r->matching++;
	return 0;
}

/* Every loader on c's file (in a child with capped memory): 0 if all refused it. */
static int run_link_case(const void *arg)
{
	const struct link_case *c = arg;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_map_options mo = NNH5_MAP_OPTIONS_INIT;
	nnh5_tensor *t = NULL;
	nnh5_dict *d = NULL;
	nnh5_file *f;
	nnh5_map *m;
	char path[4096];
	int bad = 0;

	snprintf(path, sizeof path, "%s/%s", corpus, c->file);
	o.max_load_bytes = c->max_load_bytes;
	o.copy_aliases = c->copy_aliases;
	mo.file = &o;
	if (!c->copy_aliases) {
		bad |= link_result(c, "load_state_dict", nnh5_load_state_dict(&d, path),
				   nnh5_error_message());
		nnh5_dict_free(d);
		bad |= link_result(c, "load_dict", nnh5_load_dict(&d, path), nnh5_error_message());
		nnh5_dict_free(d);
	}
	if (c->load_tensor) {
		bad |= link_result(c, "load_tensor", nnh5_load_tensor(&t, path), nnh5_error_message());
		nnh5_tensor_free(t);
	}
	if (nnh5_file_open_ext(&f, path, NNH5_READ, &o) != NNH5_OK) {
		printf("%s: cannot open: %s\n", c->file, nnh5_error_message());
		return 1;
	}
	bad |= link_result(c, "file_read_state_dict", nnh5_file_read_state_dict(&d, f, c->group),
			   nnh5_error_message());
	nnh5_dict_free(d);
	if (c->tensor) {
		bad |= link_result(c, "file_read_tensor", nnh5_file_read_tensor(&t, f, c->tensor),
				   nnh5_error_message());
		nnh5_tensor_free(t);
	}
	nnh5_walk_options wo = NNH5_WALK_OPTIONS_INIT;
	struct refusals r = { c, 0, 0, 0 };
	wo.keep_going = true;
	int rc = nnh5_file_walk(f, "/", &wo, count_refusals, &r);
	if (rc != NNH5_OK || r.matching == 0) {
		printf("%s (walk): %s, %u entries, %u refused, none as the loads: %s\n", c->file,
		       nnh5_status_name(rc), r.entries, r.refused, nnh5_error_message());
		bad = 1;
	}
	nnh5_file_close(f);
	if (nnh5_map_open(&m, path, &mo) != NNH5_OK) {
		printf("%s: cannot map: %s\n", c->file, nnh5_error_message());
		return 1;
	}
	bad |= link_result(c, "map_state_dict", nnh5_map_state_dict(&d, m, c->group),
			   nnh5_error_message());
	nnh5_dict_free(d);
	if (c->tensor) {
		bad |= link_result(c, "map_tensor", nnh5_map_tensor(&t, m, c->tensor),
				   nnh5_error_message());
		nnh5_tensor_free(t);
	}
	nnh5_map_close(m);
	return bad;
}

static void test_links(void **state)
{
	unsigned failed = 0;
	(void)state;
	for (size_t i = 0; i < N_LINK_CASES; i++) {
		const struct link_case *c = &link_cases[i];
		bool ok = in_capped_child(run_link_case, c, c->file);
		/* Untrusted mode, with the same cap. */
		nnh5_untrusted_options uo = NNH5_UNTRUSTED_OPTIONS_INIT;
		nnh5_untrusted_report *r = NULL;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", corpus, c->file);
		uo.open.max_load_bytes = c->max_load_bytes;
		uo.open.copy_aliases = c->copy_aliases;
		int rc = nnh5_untrusted_check(&r, path, &uo);
		if (rc != c->status || !strstr(nnh5_error_message(), c->needle[0])) {
			printf("%s (untrusted): %s, expected %s: %s\n", c->file, nnh5_status_name(rc),
			       nnh5_status_name(c->status), nnh5_error_message());
			ok = false;
		}
		nnh5_untrusted_report_free(r);
		if (ok)
			printf("# hostile: %-24s refused by every loader\n", c->file);
		else
			failed++;
	}
	if (failed)
		fail_msg("%u of %zu link cases were not refused by every loader", failed,
			 N_LINK_CASES);
}

/* Aliases load tied to their first name (copies with copy_aliases); the walk names them. */
static int note_alias(const nnh5_entry *e, void *ctx)
{
	unsigned *aliases = ctx;

	if (e->type == NNH5_ENTRY_TENSOR && e->alias_of && strcmp(e->alias_of, "/a") == 0)
		(*aliases)++;
	return 0;
}

static void test_aliases_load(void **state)
{
	char path[4096];
	nnh5_dict *d = NULL;
	nnh5_file *f;
	unsigned aliases = 0;
	(void)state;
	snprintf(path, sizeof path, "%s/aliases_ok.h5", corpus);
	assert_int_equal(nnh5_load_state_dict(&d, path), NNH5_OK);
	assert_int_equal(nnh5_dict_len(d), 3);
	const nnh5_tensor *a = nnh5_dict_get(d, "a");
	assert_non_null(a);
	assert_true(nnh5_tensor_bitwise_equal(a, nnh5_dict_get(d, "hard")));
	assert_true(nnh5_tensor_bitwise_equal(a, nnh5_dict_get(d, "soft")));
	/* One tensor under three keys. */
	assert_true(nnh5_tensor_tied(a, nnh5_dict_get(d, "hard")));
	assert_true(nnh5_tensor_tied(a, nnh5_dict_get(d, "soft")));
	nnh5_dict_free(d);
	/* With copy_aliases: three copies. */
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	o.copy_aliases = true;
	assert_int_equal(nnh5_file_open_ext(&f, path, NNH5_READ, &o), NNH5_OK);
	assert_int_equal(nnh5_file_read_state_dict(&d, f, "/"), NNH5_OK);
	nnh5_file_close(f);
	a = nnh5_dict_get(d, "a");
	assert_true(nnh5_tensor_bitwise_equal(a, nnh5_dict_get(d, "soft")));
	assert_ptr_not_equal(nnh5_tensor_data(a), nnh5_tensor_data(nnh5_dict_get(d, "soft")));
	assert_false(nnh5_tensor_tied(a, nnh5_dict_get(d, "hard")));
	nnh5_dict_free(d);
	assert_int_equal(nnh5_file_open(&f, path, NNH5_READ), NNH5_OK);
	assert_int_equal(nnh5_file_walk(f, "/", NULL, note_alias, &aliases), NNH5_OK);
	assert_int_equal(aliases, 2);
	nnh5_file_close(f);
}

/*
 * 201 names of one 8 MiB dataset load tied (one buffer, counted once):
 * under a cap of 16 MiB, in a child whose address space is capped, through
 * the one-call load, a handle and the map; the walk refuses nothing.
 */
static int load_aliases_tied(const void *arg)
{
	const char *path = arg;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_map_options mo = NNH5_MAP_OPTIONS_INIT;
	nnh5_dict *d = NULL;
	nnh5_file *f;
	nnh5_map *m;
	int bad = 0;

	o.max_load_bytes = UINT64_C(16) << 20;
	mo.file = &o;
	for (int how = 0; how < 3; how++) {
		int rc = how == 0   ? nnh5_load_state_dict(&d, path)
			 : how == 1 ? nnh5_file_open_ext(&f, path, NNH5_READ, &o)
			 : nnh5_map_open(&m, path, &mo);
		if (!rc && how == 1) {
			rc = nnh5_file_read_dict(&d, f, "/");
			nnh5_file_close(f);
		} else if (!rc && how == 2) {
			rc = nnh5_map_state_dict(&d, m, "/");
		}
		const nnh5_tensor *first = d ? nnh5_dict_get(d, "data") : NULL;
		size_t tied = 0;
		for (size_t i = 0; d && i < nnh5_dict_len(d); i++)
			tied += nnh5_tensor_tied(first, nnh5_dict_value(d, i));
		if (rc || !d || nnh5_dict_len(d) != 201 || tied != 201) {
			printf("aliases_200.h5 (load %d): %s, %zu keys, %zu tied: %s\n", how,
			       nnh5_status_name(rc), d ? nnh5_dict_len(d) : 0, tied,
			       nnh5_error_message());
			bad = 1;
		}
		nnh5_dict_free(d);
		d = NULL;
		if (how == 2)
			nnh5_map_close(m);
	}
	return bad;
}

static void test_aliases_tied(void **state)
{
	char path[4096];
	(void)state;
	snprintf(path, sizeof path, "%s/aliases_200.h5", corpus);
	assert_true(in_capped_child(load_aliases_tied, path, "aliases_200.h5"));
}

/*
 * Files that crash or hang HDF5 1.10.8's parser (found by the corruption
 * campaign and the fuzzer: the .crash files in tests/hostile/crashers/). Loaded in a
 * child they crash or hang it (reported, not asserted: a fixed HDF5 may
 * refuse them cleanly); untrusted mode must turn each into an error.
 */
static void test_crashers(void **state)
{
	DIR *d = opendir(crashers);
	struct dirent *e;
	unsigned n = 0, failed = 0;
	(void)state;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		nnh5_untrusted_options o = NNH5_UNTRUSTED_OPTIONS_INIT;
		nnh5_untrusted_report *r = NULL;
		if (!strstr(e->d_name, ".crash"))
			continue;
		snprintf(path, sizeof path, "%s/%s", crashers, e->d_name);
		n++;
		/* Directly, in a child of our own, with a short CPU limit. */
		fflush(stdout);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct rlimit cpu = { 2, 3 }, core = { 0, 0 };
			nnh5_dict *dd;
			nnh5_model *m;
			/* Die of the crash: cmocka's handlers would go on running tests here. */
			signal(SIGSEGV, SIG_DFL);
			signal(SIGBUS, SIG_DFL);
			signal(SIGABRT, SIG_DFL);
			signal(SIGILL, SIG_DFL);
			signal(SIGFPE, SIG_DFL);
			setrlimit(RLIMIT_CPU, &cpu);
			setrlimit(RLIMIT_CORE, &core);
			int rc = strstr(e->d_name, "model") ? nnh5_load_model(&m, path)
							    : nnh5_load_state_dict(&dd, path);
			_exit(rc == NNH5_OK ? 0 : 1);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0)
			assert_int_equal(errno, EINTR);
		o.max_cpu_seconds = 2;
		o.timeout_seconds = 10;
		int rc = nnh5_untrusted_check(&r, path, &o);
		printf("# hostile: %s: a plain load %s; untrusted mode: %s: %.160s\n", e->d_name,
		       WIFSIGNALED(st) ? (WTERMSIG(st) == SIGXCPU || WTERMSIG(st) == SIGKILL
					  ? "hangs"
					  : "crashes")
				       : WEXITSTATUS(st) ? "fails cleanly" : "succeeds",
		       nnh5_status_name(rc), nnh5_error_message());
		if (rc == NNH5_OK)
			failed++;
		nnh5_untrusted_report_free(r);
	}
	closedir(d);
	assert_true(n >= 3);
	if (failed)
		fail_msg("%u crashers passed untrusted mode", failed);
}

static int count_nothing(const nnh5_entry *e, void *ctx)
{
	(void)e;
	(void)ctx;
	return 0;
}

/* --load FILE: every loader, for strace_check.py. Exit 0 whatever they say. */
static int load_everything(const char *path)
{
	nnh5_tensor *t;
	nnh5_dict *d;
	nnh5_list *l;
	nnh5_file *f;
	nnh5_untrusted_report *r;
	size_t n;
	char *img;

	nnh5_load_tensor(&t, path);
	nnh5_tensor_free(t);
	nnh5_load_state_dict(&d, path);
	nnh5_dict_free(d);
	nnh5_load_dict(&d, path);
	nnh5_dict_free(d);
	nnh5_load_list(&l, path);
	nnh5_list_free(l);
	if (nnh5_file_open(&f, path, NNH5_READ) == NNH5_OK) {
		/* Every object named in the corpus, explicitly. */
		static const char *const names[] = { "evil", "evil/x", "evil/y", "raw", "passwd",
						     "vds", "filtered", "s", "s/x", "s/y", "tensor",
						     "a", "c00", "g", "g/s", "model",
						     "model/hidden/weight", "nnh5_hidden/x",
						     "nnh5_ext/x", "nnh5_probe" };
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			nnh5_kind k;
			uint64_t sum;
			bool has;
			nnh5_file_kind(&k, f, names[i]);
			nnh5_file_stored_checksum(&sum, &has, f, names[i]);
			nnh5_file_read_tensor(&t, f, names[i]);
			nnh5_tensor_free(t);
			nnh5_file_read_dict(&d, f, names[i]);
			nnh5_dict_free(d);
			nnh5_file_read_state_dict(&d, f, names[i]);
			nnh5_dict_free(d);
			char *s;
			nnh5_file_get_attr_string(&s, f, names[i], "nnh5_kind");
			free(s);
		}
		nnh5_walk_options wo = NNH5_WALK_OPTIONS_INIT;
		wo.keep_going = true;
		wo.reserved = true;
		nnh5_file_walk(f, "/", &wo, count_nothing, NULL);
		nnh5_file_close(f);
	}
	img = tu_slurp(path, &n);
	if (img && nnh5_file_open_image(&f, img, n, path, NULL) == NNH5_OK) {
		nnh5_file_read_state_dict(&d, f, "/");
		nnh5_dict_free(d);
		nnh5_file_close(f);
	}
	free(img);
	nnh5_map *m;
	if (nnh5_map_open(&m, path, NULL) == NNH5_OK) {
		static const char *const names[] = { "/", "s", "tensor", "a", "g/s", "model",
						     "model/hidden/weight", "evil" };
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			nnh5_map_state_dict(&d, m, names[i]);
			nnh5_dict_free(d);
			nnh5_map_tensor(&t, m, names[i]);
			nnh5_tensor_free(t);
		}
		nnh5_map_close(m);
	}
	nnh5_untrusted_check(&r, path, NULL);
	nnh5_untrusted_report_free(r);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--load") == 0)
		return load_everything(argv[2]);
	if (argc != 3) {
		fprintf(stderr, "usage: test_hostile CORPUS_DIR CRASHERS_DIR | --load FILE\n");
		return 2;
	}
	corpus = argv[1];
	crashers = argv[2];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_untrusted),
		cmocka_unit_test(test_links),
		cmocka_unit_test(test_aliases_load),
		cmocka_unit_test(test_aliases_tied),
		cmocka_unit_test(test_crashers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
