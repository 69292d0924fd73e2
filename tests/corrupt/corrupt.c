/*
 * tests/corrupt/corrupt.c - the corruption campaign: random single-byte
 * changes and truncations of saved nnh5 files (a tensor, a state dict, a
 * model), each loaded in a child process (fork) so that a crash is counted,
 * never fatal. Every load is classified:
 *
 *   equal     loaded, and equal to what was saved (the change hit padding
 *             or unused bytes)
 *   detected  refused with an error
 *   WRONG     loaded without an error but different from what was saved
 *   crashed   the child died of a signal or looped past its CPU limit; a
 *             handler in the child names the first frame outside the C
 *             library: inside HDF5's parser (what the untrusted mode
 *             contains) or elsewhere (a bug)
 *
 * The run fails if any load is WRONG, or crashes outside HDF5. Usage: corrupt N [SEED]: N cases
 * split evenly over the three files (default seed 1). Crashing inputs are
 * kept in the scratch folder as crash-<kind>-<case>.h5 for inspection.
 */
#define _GNU_SOURCE
#include "../testutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum kind { K_TENSOR, K_STATE_DICT, K_MODEL, K_COUNT };
static const char *const kind_name[K_COUNT] = { "tensor", "state dict", "model" };
static const char *const kind_file[K_COUNT] = { "tensor.h5", "state.h5", "model.h5" };

/* Child exit statuses (away from 1, which sanitizers use for their reports). */
enum outcome { EQUAL = 10, DETECTED = 11, WRONG = 12, CRASH_HDF5 = 13, CRASH_OTHER = 14 };

struct counts {
	unsigned long cases, equal, detected, wrong, crashed, crashed_hdf5, flips, truncations;
};

/*
 * In the child: on a fatal signal, find the first frame outside the C
 * library and say whose code crashed (HDF5's, or anyone else's: a bug to
 * fix), then exit with CRASH_HDF5 or CRASH_OTHER.
 */
static volatile sig_atomic_t crash_code;

static void on_crash(int sig)
{
	void *frames[48];
	const char *lib = "?", *sym = "?";
	char line[512];

	/* A second signal while reporting the first (a heap already wrecked): keep the first. */
	if (crash_code)
		_exit(crash_code);
	crash_code = CRASH_OTHER;
	int n = backtrace(frames, 48);
	for (int i = 2; i < n; i++) {
		Dl_info info;
		if (!dladdr(frames[i], &info) || !info.dli_fname)
			continue;
		if (strstr(info.dli_fname, "libc.so") || strstr(info.dli_fname, "libpthread") ||
		    strstr(info.dli_fname, "linux-vdso"))
			continue;
		lib = info.dli_fname;
		sym = info.dli_sname ? info.dli_sname : "?";
		break;
	}
	bool hdf5 = strstr(lib, "libhdf5") != NULL;
	crash_code = hdf5 ? CRASH_HDF5 : CRASH_OTHER;
	/* No stdio here: the heap may be what broke. */
	int len = snprintf(line, sizeof line, "# corrupt:   %s (signal %d) in %s (%s)\n",
			   sig == SIGXCPU ? "hang" : "crash", sig, sym, hdf5 ? "HDF5" : lib);
	if (len > 0 && write(1, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1) < 0)
		_exit(crash_code);
	_exit(crash_code);
}

/*
 * A crash whose first frame outside the C library is not HDF5's is often
 * HDF5's all the same: an overflow inside HDF5 wrecks the heap and glibc
 * aborts later, in whoever frees next. Re-run such a case under valgrind,
 * which stops at the first invalid access: whose code made it? Returns
 * true when that frame is HDF5's (false also when valgrind is missing).
 */
#if !defined(__SANITIZE_ADDRESS__)
static bool valgrind_blames_hdf5(int kind, const char *file)
{
	char cmd[8192], line[1024];
	bool in_report = false, hdf5 = false, decided = false;
	FILE *p;

	snprintf(cmd, sizeof cmd,
		 "valgrind -q --error-limit=no /proc/%ld/exe --load %d '%s' 2>&1 >/dev/null",
		 (long)getpid(), kind, file);
	p = popen(cmd, "r");
	if (!p)
		return false;
	while (fgets(line, sizeof line, p)) {
		if (!decided && strstr(line, "Invalid "))
			in_report = true;
		else if (in_report && !decided && (strstr(line, " at 0x") || strstr(line, " by 0x")) &&
			 !strstr(line, "vgpreload") && !strstr(line, "libc.so")) {
			hdf5 = strstr(line, "libhdf5") != NULL;
			decided = true;
			printf("# corrupt:   valgrind: first invalid access from:%s", strchr(line, ':') + 1);
		}
	}
	pclose(p);
	return hdf5;
}
#endif

static void catch_crashes(void)
{
	void *warm[2];
	backtrace(warm, 2); /* loads libgcc now, not inside the handler */
	signal(SIGSEGV, on_crash);
	signal(SIGBUS, on_crash);
	signal(SIGABRT, on_crash);
	signal(SIGFPE, on_crash);
	signal(SIGILL, on_crash);
	/* A hang: the CPU limit interrupts it where it loops (the hard limit kills). */
	struct rlimit cpu = { 5, 10 };
	setrlimit(RLIMIT_CPU, &cpu);
	signal(SIGXCPU, on_crash);
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = (rng_state += 0x9e3779b97f4a7c15u);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

/* ---- what is saved, and how a load is compared with it ---- */

static nnh5_dict *make_state_dict(void)
{
	static const struct {
		const char *key;
		nnh5_dtype dtype;
		size_t ndim;
		int64_t shape[2];
	} specs[] = {
		{ "hidden.weight", NNH5_FLOAT32, 2, { 16, 8 } },
		{ "hidden.bias", NNH5_FLOAT32, 1, { 16, 0 } },
		{ "embed.table", NNH5_INT64, 2, { 64, 16 } }, /* 8 KiB: contiguous */
		{ "norm.scale", NNH5_BFLOAT16, 1, { 8, 0 } },
		{ "output.weight", NNH5_FLOAT64, 2, { 4, 16 } },
		{ "output.mask", NNH5_BOOL, 1, { 4, 0 } },
	};
	nnh5_dict *d;
	ok(nnh5_dict_new(&d));
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		nnh5_tensor *t = tu_seq(specs[i].dtype, specs[i].ndim, specs[i].shape, 0.25,
					(double)i);
		if (specs[i].dtype == NNH5_BOOL)
			for (size_t k = 0; k < nnh5_tensor_numel(t); k++)
				ok(nnh5_tensor_set(t, k, (double)(k % 2)));
		ok(nnh5_dict_set(d, specs[i].key, t));
	}
	return d;
}

static nnh5_model *make_model(nnh5_tensor **probe)
{
	nnh5_model *m;
	ok(nnh5_model_new(&m, NNH5_FLOAT32, 7));
	ok(nnh5_model_add_linear(m, "hidden", 8, 16, true));
	ok(nnh5_model_add_relu(m, "act"));
	ok(nnh5_model_add_dropout(m, "drop", 0.25));
	ok(nnh5_model_add_linear(m, "output", 16, 4, false));
	ok(nnh5_model_add_flatten(m, "flat", 1, -1));
	*probe = tu_seq(NNH5_FLOAT32, 2, (int64_t[]){ 3, 8 }, 0.125, -1);
	return m;
}

static bool dicts_equal(const nnh5_dict *a, const nnh5_dict *b, char *why, size_t n)
{
	if (nnh5_dict_len(a) != nnh5_dict_len(b)) {
		snprintf(why, n, "%zu keys instead of %zu", nnh5_dict_len(a), nnh5_dict_len(b));
		return false;
	}
	for (size_t i = 0; i < nnh5_dict_len(b); i++) {
		if (strcmp(nnh5_dict_key(a, i), nnh5_dict_key(b, i)) != 0) {
			snprintf(why, n, "key %zu is '%s' instead of '%s'", i, nnh5_dict_key(a, i),
				 nnh5_dict_key(b, i));
			return false;
		}
		if (!nnh5_tensor_bitwise_equal(nnh5_dict_value(a, i), nnh5_dict_value(b, i))) {
			snprintf(why, n, "tensor '%s' differs", nnh5_dict_key(b, i));
			return false;
		}
	}
	return true;
}

/* The model as text (layers, hyperparameters) plus its parameters. */
static bool models_equal(nnh5_model *a, nnh5_model *b, char *why, size_t n)
{
	char *fa = NULL, *fb = NULL;
	nnh5_dict *sa = NULL, *sb = NULL;
	bool same = false;

	if (nnh5_model_format(&fa, a) || nnh5_model_format(&fb, b) ||
	    nnh5_model_state_dict(&sa, a) || nnh5_model_state_dict(&sb, b)) {
		snprintf(why, n, "cannot describe: %s", nnh5_error_message());
	} else if (strcmp(fa, fb) != 0 || nnh5_model_dtype(a) != nnh5_model_dtype(b)) {
		snprintf(why, n, "architecture differs: %s", fa);
		for (char *c = why; *c; c++)
			if (*c == '\n')
				*c = ' ';
	} else {
		same = dicts_equal(sa, sb, why, n);
	}
	nnh5_free(fa);
	nnh5_free(fb);
	nnh5_dict_free(sa);
	nnh5_dict_free(sb);
	return same;
}

struct expected {
	nnh5_tensor *tensor;
	nnh5_dict *sd;
	nnh5_model *model;
	nnh5_tensor *probe;
};

/* In the child: load path as kind, compare. Returns an outcome. */
static int load_and_compare(enum kind kind, const char *path, const struct expected *e)
{
	char why[512] = "";
	int rc, out;

	switch (kind) {
	case K_TENSOR: {
		nnh5_tensor *t;
		rc = nnh5_load_tensor(&t, path);
		out = rc ? DETECTED : nnh5_tensor_bitwise_equal(t, e->tensor) ? EQUAL : WRONG;
		if (out == WRONG)
			snprintf(why, sizeof why, "the tensor differs");
		nnh5_tensor_free(t);
		break;
	}
	case K_STATE_DICT: {
		nnh5_dict *d;
		rc = nnh5_load_state_dict(&d, path);
		out = rc ? DETECTED : dicts_equal(d, e->sd, why, sizeof why) ? EQUAL : WRONG;
		nnh5_dict_free(d);
		break;
	}
	default: {
		nnh5_model *m;
		nnh5_verify_result vr;
		rc = nnh5_load_model(&m, path);
		out = rc ? DETECTED : models_equal(m, e->model, why, sizeof why) ? EQUAL : WRONG;
		nnh5_model_free(m);
		/* The probe is part of what a model file promises. */
		if (out == EQUAL) {
			rc = nnh5_verify_model(&vr, path);
			if (rc)
				out = DETECTED;
			else if (!vr.bitwise_equal) {
				out = WRONG;
				snprintf(why, sizeof why, "the probe no longer matches");
			}
		}
		break;
	}
	}
	if (out == WRONG)
		fprintf(stderr, "WRONG: %s: %s\n", path, why);
	return out;
}

/* ---- files ---- */


static void spit(const char *path, const unsigned char *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static unsigned long n_cases = 1000;
static uint64_t seed = 1;

static void campaign(void **state)
{
	struct expected e = { 0 };
	struct counts c[K_COUNT];
	unsigned char *orig[K_COUNT], *buf;
	size_t size[K_COUNT];
	char path[K_COUNT][4096], mut[4096];
	unsigned long kept = 0, crashed_other = 0;
	(void)state;

	memset(c, 0, sizeof c);
	rng_state = seed;
	e.tensor = tu_seq(NNH5_FLOAT32, 2, (int64_t[]){ 32, 64 }, 0.5, -3); /* 8 KiB */
	e.sd = make_state_dict();
	e.model = make_model(&e.probe);
	for (int k = 0; k < K_COUNT; k++)
		snprintf(path[k], sizeof path[k], "%s", tu_path(kind_file[k]));
	ok(nnh5_save_tensor(path[K_TENSOR], e.tensor));
	ok(nnh5_save_state_dict(path[K_STATE_DICT], e.sd));
	ok(nnh5_save_model(path[K_MODEL], e.model, e.probe));
	for (int k = 0; k < K_COUNT; k++) {
		orig[k] = (unsigned char *)tu_slurp(path[k], &size[k]);
		assert_non_null(orig[k]);
		/* The unchanged file loads equal, or the campaign means nothing. */
		assert_int_equal(load_and_compare((enum kind)k, path[k], &e), EQUAL);
	}
	snprintf(mut, sizeof mut, "%s", tu_path("mutated.h5"));
	for (unsigned long i = 0; i < n_cases; i++) {
		enum kind k = (enum kind)(i % K_COUNT);
		size_t n = size[k];
		bool truncate_it = rnd() % 5 == 0;
		size_t at = (size_t)(rnd() % n);

		buf = malloc(n);
		assert_non_null(buf);
		memcpy(buf, orig[k], n);
		if (truncate_it) {
			c[k].truncations++;
			n = at;
		} else {
			c[k].flips++;
			buf[at] ^= (unsigned char)(1 + rnd() % 255);
		}
		spit(mut, buf, n);
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct rlimit core = { 0, 0 };
			setrlimit(RLIMIT_CORE, &core);
			catch_crashes();
			alarm(60);
			_exit(load_and_compare(k, mut, &e));
		}
		int st;
		while (waitpid(pid, &st, 0) < 0)
			assert_int_equal(errno, EINTR);
		c[k].cases++;
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (code == CRASH_HDF5 || code == CRASH_OTHER || code < EQUAL || code > CRASH_OTHER) {
#if !defined(__SANITIZE_ADDRESS__)
			if (code != CRASH_HDF5 && !getenv("NNH5_NO_VALGRIND")) {
				char again[128];
				snprintf(again, sizeof again, "recheck-%d-%lu.h5", (int)k, i);
				spit(tu_path(again), buf, n);
				if (valgrind_blames_hdf5((int)k, tu_path(again)))
					code = CRASH_HDF5;
				unlink(tu_path(again));
			}
#endif
			c[k].crashed++;
			c[k].crashed_hdf5 += code == CRASH_HDF5;
			crashed_other += code != CRASH_HDF5;
			printf("# corrupt: %s case %lu (%s at %zu): the loading child %s %d\n",
			       kind_name[k], i, truncate_it ? "truncated" : "byte changed", at,
			       WIFSIGNALED(st) ? "died of signal" : "crashed, exit status",
			       WIFSIGNALED(st) ? WTERMSIG(st) : code);
			if (kept++ < 20) {
				char keep[128];
				snprintf(keep, sizeof keep, "crash-%d-%lu.h5", (int)k, i);
				spit(tu_path(keep), buf, n);
			}
		} else if (code == EQUAL) {
			c[k].equal++;
		} else if (code == DETECTED) {
			c[k].detected++;
		} else {
			c[k].wrong++;
			printf("# corrupt: %s case %lu: WRONG data without an error (%s at offset "
			       "%zu)\n",
			       kind_name[k], i, truncate_it ? "truncated" : "byte changed", at);
		}
		free(buf);
	}
	struct counts t = { 0 };
	for (int k = 0; k < K_COUNT; k++) {
		printf("# corrupt: %-10s %6zu bytes: %5lu cases (%lu byte changes, %lu "
		       "truncations): %lu loaded equal, %lu detected, %lu wrong without error, "
		       "%lu crashed in a child (%lu inside HDF5)\n",
		       kind_name[k], size[k], c[k].cases, c[k].flips, c[k].truncations, c[k].equal,
		       c[k].detected, c[k].wrong, c[k].crashed, c[k].crashed_hdf5);
		t.cases += c[k].cases;
		t.equal += c[k].equal;
		t.detected += c[k].detected;
		t.wrong += c[k].wrong;
		t.crashed += c[k].crashed;
		t.crashed_hdf5 += c[k].crashed_hdf5;
		free(orig[k]);
	}
	printf("# corrupt: total %lu cases (seed %llu): %lu loaded equal, %lu detected, %lu wrong "
	       "without error, %lu crashed in a child (%lu inside HDF5)\n",
	       t.cases, (unsigned long long)seed, t.equal, t.detected, t.wrong, t.crashed,
	       t.crashed_hdf5);
	unlink(mut);
	nnh5_tensor_free(e.tensor);
	nnh5_tensor_free(e.probe);
	nnh5_dict_free(e.sd);
	nnh5_model_free(e.model);
	assert_int_equal(t.wrong, 0);
	/* A crash outside HDF5 is nnh5's own bug (sanitizer builds report theirs in stderr). */
#if !defined(__SANITIZE_ADDRESS__)
	assert_int_equal(crashed_other, 0);
#endif
}

int main(int argc, char **argv)
{
	/* --load KIND FILE: one load as the children do it (0 tensor, 1 state dict, 2 model). */
	if (argc == 4 && strcmp(argv[1], "--load") == 0) {
		struct expected e = { 0 };
		e.tensor = tu_seq(NNH5_FLOAT32, 2, (int64_t[]){ 32, 64 }, 0.5, -3);
		e.sd = make_state_dict();
		e.model = make_model(&e.probe);
		int out = load_and_compare((enum kind)atoi(argv[2]), argv[3], &e);
		printf("%s: %s\n", out == EQUAL ? "equal" : out == DETECTED ? "detected" : "WRONG",
		       nnh5_error_message());
		nnh5_tensor_free(e.tensor);
		nnh5_tensor_free(e.probe);
		nnh5_dict_free(e.sd);
		nnh5_model_free(e.model);
		return 0;
	}
	if (argc > 1)
		n_cases = strtoul(argv[1], NULL, 0);
	if (argc > 2)
		seed = strtoull(argv[2], NULL, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(campaign),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
