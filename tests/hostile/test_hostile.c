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

#include <nnh5/untrusted.h>

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
	{ "soft_cycle.h5", STATE_DICT, NULL, NNH5_ERR_FORMAT, { "cannot inspect '/s1'" } },
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

/* In the child: 0 on a pass; else prints why and returns 1. */
static int check_result(const struct hostile *c, const char *how, int rc, const char *msg)
{
	if (rc != c->status) {
		printf("%s (%s): %s, expected %s: %s\n", c->file, how, nnh5_status_name(rc),
		       nnh5_status_name(c->status), msg);
		return 1;
	}
	for (int i = 0; i < 3 && c->needle[i]; i++)
		if (!strstr(msg, c->needle[i])) {
			printf("%s (%s): message lacks '%s': %s\n", c->file, how, c->needle[i], msg);
			return 1;
		}
	return 0;
}

static int run_case(const struct hostile *c)
{
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
			int r = run_case(&cases[i]);
			fflush(stdout);
			_exit(r);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0)
			assert_int_equal(errno, EINTR);
		if (WIFSIGNALED(st)) {
			printf("%s: the loading child died of signal %d\n", cases[i].file,
			       WTERMSIG(st));
			failed++;
		} else if (WEXITSTATUS(st) != 0) {
			failed++;
		} else {
			printf("# hostile: %-24s refused\n", cases[i].file);
		}
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
						     "vds", "filtered" };
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
		}
		nnh5_file_close(f);
	}
	img = tu_slurp(path, &n);
	if (img && nnh5_file_open_image(&f, img, n, path, NULL) == NNH5_OK) {
		nnh5_file_read_state_dict(&d, f, "/");
		nnh5_dict_free(d);
		nnh5_file_close(f);
	}
	free(img);
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
		cmocka_unit_test(test_crashers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
