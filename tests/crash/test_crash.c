/*
 * tests/crash/test_crash.c - saving never leaves a torn file, and a failed
 * save leaves the previous file intact and no temporary file behind.
 *
 * The kill test forks a child that saves ~21 MiB state dicts to one target
 * over and over (alternating nnh5_save_state_dict and the handle API), each
 * iteration with different content derived from the iteration number. The
 * parent SIGKILLs it after a seeded random delay (NNH5_CRASH_SEED), then
 * checks that the target is absent (only possible before the first commit)
 * or loads completely as exactly one whole iteration: the last one the child
 * reported as committed, or the one in flight when the kill landed between
 * the rename and the report. NNH5_CRASH_TRIALS sets the number of trials.
 * A killed child may leave its ".<name>.nnh5-tmp-XXXXXX" file behind: that is
 * expected (a later save never reads it; cleaning such leftovers up belongs
 * to whoever owns the folder); they are counted, checked to never be the
 * target, and removed here.
 *
 * The failure tests cover every save path: a tensor, a list, a dict, a
 * state dict and a model, each saved in one call and written through an
 * open handle (then discarded or closed). They run in children (results
 * passed back by exit status):
 * RLIMIT_FSIZE with SIGXFSZ ignored (write() fails with EFBIG), a full tmpfs
 * and a read-only bind mount, both inside a private mount namespace
 * (unshare), so nothing stays mounted once the child exits; they are skipped
 * with a message when the namespace cannot be created. Two tests pin
 * library behaviour found wanting: close after a failed write must not
 * commit (test_fsize_transient_then_close), and error messages must be one
 * line (test_failed_write_message_one_line).
 */
#define _GNU_SOURCE
#include "../testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TMP_MARK ".nnh5-tmp-"
#define GOOD_ITER 7
#define SKIP_STATUS 77

/* ------------------------------------------------------------------ */
/* Content: every byte is a function of (iteration, tensor index)       */

struct spec {
	const char *key;
	nnh5_dtype dtype;
	size_t ndim;
	int64_t shape[2];
};

/* ~21 MiB: contiguous and compact datasets, several dtypes and modules. */
static const struct spec big_specs[] = {
	{ "encoder.weight", NNH5_FLOAT32, 2, { 1024, 2048 } }, /* 8 MiB */
	{ "encoder.bias", NNH5_FLOAT32, 1, { 2048, 0 } },
	{ "decoder.weight", NNH5_FLOAT64, 2, { 1024, 1024 } }, /* 8 MiB */
	{ "decoder.bias", NNH5_BFLOAT16, 1, { 1024, 0 } },
	{ "embed.table", NNH5_INT64, 2, { 512, 1024 } }, /* 4 MiB */
	{ "embed.mask", NNH5_UINT8, 1, { 1 << 20, 0 } }, /* 1 MiB */
	{ "head.scale", NNH5_FLOAT16, 1, { 4, 0 } },     /* compact */
};
#define N_BIG (sizeof big_specs / sizeof big_specs[0])

/* The "previous good file" of the failure tests: ~70 KiB. */
static const struct spec small_specs[] = {
	{ "fc.weight", NNH5_FLOAT32, 2, { 64, 256 } },
	{ "fc.bias", NNH5_FLOAT32, 1, { 64, 0 } },
	{ "out.weight", NNH5_INT64, 1, { 256, 0 } },
};
#define N_SMALL (sizeof small_specs / sizeof small_specs[0])

/* Larger than every limit the failure tests set (8 MiB + a little). */
static const struct spec fail_specs[] = {
	{ "layer.weight", NNH5_FLOAT32, 2, { 1024, 2048 } },
	{ "layer.bias", NNH5_FLOAT32, 1, { 2048, 0 } },
};
#define N_FAIL (sizeof fail_specs / sizeof fail_specs[0])

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

/* Word 0 is the iteration itself; the rest are pseudo-random bits of it. */
static void fill(nnh5_tensor *t, uint64_t iter, size_t idx)
{
	unsigned char *p = nnh5_tensor_mutable_data(t);
	size_t n = nnh5_tensor_nbytes(t);
	uint64_t base = mix64(iter * 0x100000001b3u + idx);

	for (size_t off = 0, j = 0; off < n; off += 8, j++) {
		uint64_t w = j == 0 ? iter : mix64(base ^ j);
		memcpy(p + off, &w, n - off < 8 ? n - off : 8);
	}
}

static nnh5_dict *make_dict(const struct spec *specs, size_t n, uint64_t iter)
{
	nnh5_dict *d;

	if (nnh5_dict_new(&d))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		nnh5_tensor *t;
		if (nnh5_tensor_new(&t, specs[i].dtype, specs[i].ndim, specs[i].shape)) {
			nnh5_dict_free(d);
			return NULL;
		}
		fill(t, iter, i);
		if (nnh5_dict_set(d, specs[i].key, t)) {
			nnh5_tensor_free(t);
			nnh5_dict_free(d);
			return NULL;
		}
	}
	return d;
}

static void refill(nnh5_dict *d, uint64_t iter)
{
	for (size_t i = 0; i < nnh5_dict_len(d); i++)
		fill(nnh5_dict_value(d, i), iter, i);
}

/*
 * Does d hold exactly the tensors of expect (same keys, dtypes, shapes and
 * bytes)? Writes the first difference to why.
 */
static bool dict_matches(const nnh5_dict *d, const nnh5_dict *expect, char *why, size_t n)
{
	if (nnh5_dict_len(d) != nnh5_dict_len(expect)) {
		snprintf(why, n, "%zu tensors, expected %zu", nnh5_dict_len(d),
			 nnh5_dict_len(expect));
		return false;
	}
	for (size_t i = 0; i < nnh5_dict_len(expect); i++) {
		const char *key = nnh5_dict_key(expect, i);
		const nnh5_tensor *t = nnh5_dict_get(d, key);
		if (!t) {
			snprintf(why, n, "key '%s' missing", key);
			return false;
		}
		if (!nnh5_tensor_bitwise_equal(t, nnh5_dict_value(expect, i))) {
			snprintf(why, n, "tensor '%s' differs", key);
			return false;
		}
	}
	return true;
}

/* Load path as a state dict and compare with specs at iter (child-safe: no cmocka). */
static bool file_matches(const char *path, const struct spec *specs, size_t n, uint64_t iter,
			 char *why, size_t whylen)
{
	nnh5_dict *d, *expect;
	int rc = nnh5_load_state_dict(&d, path);
	bool same;

	if (rc) {
		snprintf(why, whylen, "load failed: %s: %s", nnh5_status_name(rc),
			 nnh5_error_message());
		return false;
	}
	expect = make_dict(specs, n, iter);
	if (!expect) {
		nnh5_dict_free(d);
		snprintf(why, whylen, "out of memory");
		return false;
	}
	same = dict_matches(d, expect, why, whylen);
	nnh5_dict_free(d);
	nnh5_dict_free(expect);
	return same;
}

/* ------------------------------------------------------------------ */
/* Folders                                                              */

/* A fresh empty folder under the scratch folder (static buffer). */
static const char *fresh_dir(const char *name)
{
	static char buf[4096];
	snprintf(buf, sizeof buf, "%s", tu_path(name));
	if (mkdir(buf, 0777) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", buf, strerror(errno));
	return buf;
}

static void join(char *out, size_t n, const char *dir, const char *name)
{
	if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
		abort();
}

/* Files in dir whose name contains TMP_MARK; -1 if dir cannot be read. */
static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, TMP_MARK))
			n++;
	closedir(d);
	return n;
}

/* Remove every file in dir, then dir. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[8192];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		join(p, sizeof p, dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Is dir (or anything below it) a mount point in this process's namespace? */
static bool mounted_at(const char *dir)
{
	char real[4096], line[8192];
	FILE *m;
	bool found = false;

	if (!realpath(dir, real))
		return false;
	m = fopen("/proc/self/mountinfo", "r");
	if (!m)
		return false;
	while (fgets(line, sizeof line, m)) {
		char mp[4096];
		/* id parent major:minor root mount-point ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 &&
		    strncmp(mp, real, strlen(real)) == 0)
			found = true;
	}
	fclose(m);
	return found;
}

/* ------------------------------------------------------------------ */
/* Children                                                             */

/* Wait for pid; its exit status, or 128 + signal. */
static int reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fail_msg("waitpid: %s", strerror(errno));
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static pid_t fork_or_fail(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	return pid;
}

/* Save sd through the handle API: one write per tensor plus an attribute. */
static int save_with_handle(const char *target, const nnh5_dict *sd, uint64_t iter)
{
	nnh5_file *f;
	int rc = nnh5_file_open(&f, target, NNH5_CREATE);

	if (rc)
		return rc;
	rc = nnh5_file_set_attr_int(f, "/", "crash_iter", (int64_t)iter);
	for (size_t i = 0; !rc && i < nnh5_dict_len(sd); i++) {
		char name[256];
		snprintf(name, sizeof name, "%s", nnh5_dict_key(sd, i));
		for (char *c = name; *c; c++)
			if (*c == '.')
				*c = '/';
		rc = nnh5_file_write_tensor(f, name, nnh5_dict_value(sd, i));
	}
	if (rc) {
		nnh5_file_discard(f);
		return rc;
	}
	return nnh5_file_close(f);
}

/* The kill test's child: save iterations 0, 1, 2, ... until killed. */
static _Noreturn void saver_child(const char *target, int report_fd)
{
	nnh5_dict *sd = make_dict(big_specs, N_BIG, 0);

	if (!sd)
		_exit(3);
	for (uint64_t iter = 0;; iter++) {
		int rc;
		refill(sd, iter);
		rc = iter % 2 == 0 ? nnh5_save_state_dict(target, sd)
				   : save_with_handle(target, sd, iter);
		if (rc) {
			fprintf(stderr, "child: save %llu failed: %s: %s\n",
				(unsigned long long)iter, nnh5_status_name(rc),
				nnh5_error_message());
			_exit(4);
		}
		/* Committed: tell the parent (8 bytes < PIPE_BUF, so atomic). */
		if (write(report_fd, &iter, sizeof iter) != (ssize_t)sizeof iter)
			_exit(5);
	}
}

/* ------------------------------------------------------------------ */
/* Kill test                                                            */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state = mix64(rng_state);
	return rng_state;
}

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end)
		fail_msg("%s='%s' is not a number", name, s);
	return v;
}

/* Is a leftover temporary file a complete, loadable state dict? Checked in a child
 * (HDF5 may misbehave on a torn file). 0: loads, 1: does not, else crashed. */
static int probe_leftover(const char *path)
{
	pid_t pid = fork_or_fail();

	if (pid == 0) {
		nnh5_dict *d;
		_exit(nnh5_load_state_dict(&d, path) == NNH5_OK ? 0 : 1);
	}
	return reap(pid);
}

struct kill_stats {
	unsigned trials, before_first, after_committed, after_inflight;
	unsigned leftovers, leftovers_loadable, leftovers_torn;
	/* Where the kills landed, as far as the files tell. */
	unsigned in_hdf5, before_rename, after_rename, between;
	unsigned long max_commits;
};

static void kill_trial(unsigned trial, unsigned long max_delay_us, struct kill_stats *s)
{
	char dirname[64], target[4096], why[512], dir[4096];
	int fds[2];
	pid_t pid;
	unsigned long delay_us = (unsigned long)(rng_next() % (max_delay_us + 1));
	int64_t last = -1, k = -1;
	unsigned torn_here = 0;
	uint64_t v;
	int status;

	snprintf(dirname, sizeof dirname, "kill-%u", trial);
	snprintf(dir, sizeof dir, "%s", fresh_dir(dirname));
	join(target, sizeof target, dir, "model.h5");
	if (pipe(fds) < 0)
		fail_msg("pipe: %s", strerror(errno));
	pid = fork_or_fail();
	if (pid == 0) {
		close(fds[0]);
		saver_child(target, fds[1]);
	}
	close(fds[1]);
	struct timespec ts = { (time_t)(delay_us / 1000000), (long)(delay_us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	kill(pid, SIGKILL);
	status = reap(pid);
	if (status != 128 + SIGKILL)
		fail_msg("trial %u: the saving child ended with status %d before the kill", trial,
			 status);
	/* Every save the child reported as committed, in order. */
	while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
		if ((int64_t)v != last + 1)
			fail_msg("trial %u: child reported iteration %llu after %lld", trial,
				 (unsigned long long)v, (long long)last);
		last = (int64_t)v;
	}
	close(fds[0]);
	if ((unsigned long)(last + 1) > s->max_commits)
		s->max_commits = (unsigned long)(last + 1);

	if (!tu_exists(target)) {
		/* Only possible if no save has been committed yet. */
		if (last >= 0)
			fail_msg("trial %u (kill after %lu us): target missing although iteration "
				 "%lld was committed",
				 trial, delay_us, (long long)last);
		s->before_first++;
	} else {
		nnh5_dict *d;
		int rc = nnh5_load_state_dict(&d, target);
		if (rc)
			fail_msg("trial %u (kill after %lu us, last commit %lld): torn target: "
				 "%s: %s",
				 trial, delay_us, (long long)last, nnh5_status_name(rc),
				 nnh5_error_message());
		const nnh5_tensor *first = nnh5_dict_get(d, big_specs[0].key);
		if (!first || nnh5_tensor_nbytes(first) < 8)
			fail_msg("trial %u: target lacks '%s'", trial, big_specs[0].key);
		memcpy(&k, nnh5_tensor_data(first), sizeof k);
		/* The last reported commit, or the save killed between rename and report. */
		if (k < 0 || (k != last && k != last + 1))
			fail_msg("trial %u: target holds iteration %lld, last committed %lld", trial,
				 (long long)k, (long long)last);
		nnh5_dict *expect = make_dict(big_specs, N_BIG, (uint64_t)k);
		assert_non_null(expect);
		if (!dict_matches(d, expect, why, sizeof why))
			fail_msg("trial %u (kill after %lu us): target is not one whole "
				 "iteration %lld: %s",
				 trial, delay_us, (long long)k, why);
		nnh5_dict_free(expect);
		nnh5_dict_free(d);
		/* Handle-API iterations (odd) carry their number as an attribute. */
		nnh5_file *f;
		int64_t a = -1;
		ok(nnh5_file_open(&f, target, NNH5_READ));
		rc = nnh5_file_get_attr_int(&a, f, "/", "crash_iter");
		nnh5_file_close(f);
		if (k % 2 ? rc != NNH5_OK || a != k : rc != NNH5_ERR_NOT_FOUND)
			fail_msg("trial %u: iteration %lld: attribute crash_iter %s (%lld)", trial,
				 (long long)k, nnh5_status_name(rc), (long long)a);
		if (k == last)
			s->after_committed++;
		else
			s->after_inflight++;
	}

	/* Leftovers: at most the one save in flight, never named like the target. */
	DIR *dd = opendir(dir);
	struct dirent *e;
	char prefix[64];
	unsigned here = 0;
	snprintf(prefix, sizeof prefix, ".model.h5" TMP_MARK);
	assert_non_null(dd);
	while ((e = readdir(dd)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, "model.h5") == 0)
			continue;
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
		    strlen(e->d_name) != strlen(prefix) + 6)
			fail_msg("trial %u: unexpected file '%s' in %s", trial, e->d_name, dir);
		char p[8192];
		join(p, sizeof p, dir, e->d_name);
		here++;
		if (probe_leftover(p) == 0) {
			s->leftovers_loadable++;
		} else {
			s->leftovers_torn++;
			torn_here++;
		}
	}
	closedir(dd);
	if (here > 1)
		fail_msg("trial %u: %u temporary files left, at most 1 save was in flight", trial,
			 here);
	s->leftovers += here;
	if (here && torn_here)
		s->in_hdf5++;
	else if (here)
		s->before_rename++;
	else if (k >= 0 && k == last + 1)
		s->after_rename++;
	else
		s->between++;
	s->trials++;
	remove_dir(dir);
}

static void test_kill_during_save(void **state)
{
	(void)state;
	struct kill_stats s = { 0 };
	unsigned long trials = env_ulong("NNH5_CRASH_TRIALS", 20);
	unsigned long seed = env_ulong("NNH5_CRASH_SEED", 20240611);
	unsigned long max_delay_us = env_ulong("NNH5_CRASH_MAX_DELAY_US", 400000);

	assert_true(trials >= 1);
	rng_state = seed;
	for (unsigned i = 0; i < trials; i++)
		kill_trial(i, max_delay_us, &s);
	printf("# crash: %u trials (seed %lu, kill after 0..%lu us)\n", s.trials, seed,
	       max_delay_us);
	printf("# crash: kills before the first commit (no target): %u\n", s.before_first);
	printf("# crash: kills after it: %u (target = last reported commit: %u, = save "
	       "killed between rename and report: %u)\n",
	       s.after_committed + s.after_inflight, s.after_committed, s.after_inflight);
	printf("# crash: most commits by one child: %lu\n", s.max_commits);
	printf("# crash: kill landed (judged from the files): while HDF5 wrote (torn "
	       "temporary file): %u; after HDF5 closed, before the rename (fsync): %u; after "
	       "the rename (folder fsync, report): %u; outside a save (no temporary file, "
	       "e.g. filling the tensors): %u\n",
	       s.in_hdf5, s.before_rename, s.after_rename, s.between);
	printf("# crash: leftover temporary files: %u (%u loadable, %u torn/incomplete); "
	       "expected after SIGKILL, never read in place of the target\n",
	       s.leftovers, s.leftovers_loadable, s.leftovers_torn);
	assert_int_equal(s.trials, trials);
}

/* ------------------------------------------------------------------ */
/* Failed saves                                                         */

/*
 * VIA_HANDLE_CLOSE_RECOVERED: the write fails, then the cause goes away
 * (space is freed: here the soft RLIMIT_FSIZE is raised) before close. The
 * file still holds a half-written dataset, so close must not commit it.
 */
enum how { VIA_SAVE, VIA_HANDLE_DISCARD, VIA_HANDLE_CLOSE, VIA_HANDLE_CLOSE_RECOVERED };
static const char *const how_name[] = { "one-call save", "handle + discard", "handle + close",
					"handle + close after the cause went away" };

/* What is saved: every kind of object, each larger than the limits (8 MiB + a little). */
enum what { W_TENSOR, W_LIST, W_DICT, W_STATE_DICT, W_MODEL, W_COUNT };
static const char *const what_name[W_COUNT] = { "tensor", "list", "dict", "state dict", "model" };

struct payload {
	nnh5_dict *sd;  /* fail_specs */
	nnh5_list *list;
	nnh5_model *model;
};

static bool payload_make(struct payload *p)
{
	memset(p, 0, sizeof *p);
	p->sd = make_dict(fail_specs, N_FAIL, 99);
	if (!p->sd || nnh5_list_new(&p->list))
		return false;
	for (size_t i = 0; i < nnh5_dict_len(p->sd); i++) {
		nnh5_tensor *t;
		if (nnh5_tensor_clone(&t, nnh5_dict_value(p->sd, i)) || nnh5_list_append(p->list, t))
			return false;
	}
	/* Linear(2048 -> 1024): an 8 MiB weight. */
	return nnh5_model_new(&p->model, NNH5_FLOAT32, 5) == NNH5_OK &&
	       nnh5_model_add_linear(p->model, "layer", 2048, 1024, true) == NNH5_OK &&
	       nnh5_model_add_relu(p->model, "act") == NNH5_OK;
}

static void payload_free(struct payload *p)
{
	nnh5_dict_free(p->sd);
	nnh5_list_free(p->list);
	nnh5_model_free(p->model);
}

static int save_payload(const char *target, enum what what, const struct payload *p)
{
	switch (what) {
	case W_TENSOR: return nnh5_save_tensor(target, nnh5_dict_value(p->sd, 0));
	case W_LIST: return nnh5_save_list(target, p->list);
	case W_DICT: return nnh5_save_dict(target, p->sd);
	case W_STATE_DICT: return nnh5_save_state_dict(target, p->sd);
	default: return nnh5_save_model(target, p->model, NULL);
	}
}

static int write_payload(nnh5_file *f, enum what what, const struct payload *p)
{
	switch (what) {
	case W_TENSOR: return nnh5_file_write_tensor(f, "t", nnh5_dict_value(p->sd, 0));
	case W_LIST: return nnh5_file_write_list(f, "/", p->list);
	case W_DICT: return nnh5_file_write_dict(f, "/", p->sd);
	case W_STATE_DICT: return nnh5_file_write_state_dict(f, "/", p->sd);
	default: return nnh5_file_write_model(f, "/", p->model, NULL);
	}
}

/*
 * In a child, with the target already holding small_specs at GOOD_ITER:
 * saving fail_specs must fail with IO or HDF5 naming the target, the target
 * must still load equal and no temporary file may remain. Returns an exit
 * status: 0 when all holds.
 */
static int failed_save_child(const char *dir, enum how how, enum what what)
{
	char target[4096], why[512];
	struct payload big;
	int rc;

	join(target, sizeof target, dir, "model.h5");
	if (!payload_make(&big))
		return 10;
	if (how == VIA_SAVE) {
		rc = save_payload(target, what, &big);
	} else {
		nnh5_file *f;
		rc = nnh5_file_open(&f, target, NNH5_CREATE);
		if (rc) {
			fprintf(stderr, "child %s: open failed: %s\n", how_name[how],
				nnh5_error_message());
			return 11;
		}
		rc = write_payload(f, what, &big);
		if (rc == NNH5_OK) {
			fprintf(stderr, "child %s: writing %s of data succeeded past the limit\n",
				how_name[how], "8 MiB");
			nnh5_file_discard(f);
			return 12;
		}
		if (rc != NNH5_ERR_IO && rc != NNH5_ERR_HDF5) {
			fprintf(stderr, "child %s: write: %s: %s\n", how_name[how],
				nnh5_status_name(rc), nnh5_error_message());
			return 13;
		}
		if (!strstr(nnh5_error_message(), target)) {
			fprintf(stderr, "child %s: write message lacks the path: %s\n",
				how_name[how], nnh5_error_message());
			return 14;
		}
		if (how == VIA_HANDLE_DISCARD) {
			nnh5_file_discard(f);
		} else {
			if (how == VIA_HANDLE_CLOSE_RECOVERED) {
				struct rlimit rl;
				getrlimit(RLIMIT_FSIZE, &rl);
				rl.rlim_cur = rl.rlim_max;
				if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
					return 9;
			}
			rc = nnh5_file_close(f);
			if (rc == NNH5_OK) {
				fprintf(stderr,
					"child %s: nnh5_file_close() committed a file whose "
					"write had failed\n",
					how_name[how]);
				return 15;
			}
		}
	}
	payload_free(&big);
	char shown[600];
	snprintf(shown, sizeof shown, "%s", nnh5_error_message());
	for (char *c = shown; *c; c++)
		if (*c == '\n')
			*c = ' ';
	printf("# crash: %s, %s, %s: %s: %.200s...\n", dir, what_name[what], how_name[how],
	       nnh5_status_name(rc), shown);
	fflush(stdout);
	if (how != VIA_HANDLE_DISCARD) {
		if (rc != NNH5_ERR_IO && rc != NNH5_ERR_HDF5) {
			fprintf(stderr, "child %s: %s, expected NNH5_ERR_IO or NNH5_ERR_HDF5: %s\n",
				how_name[how], nnh5_status_name(rc), nnh5_error_message());
			return 16;
		}
		if (!strstr(nnh5_error_message(), target)) {
			fprintf(stderr, "child %s: message lacks the path '%s': %s\n",
				how_name[how], target, nnh5_error_message());
			return 17;
		}
	}
	if (!file_matches(target, small_specs, N_SMALL, GOOD_ITER, why, sizeof why)) {
		fprintf(stderr, "child %s: previous file damaged: %s\n", how_name[how], why);
		return 18;
	}
	if (count_tmp(dir) != 0) {
		fprintf(stderr, "child %s: %d temporary file(s) left in %s\n", how_name[how],
			count_tmp(dir), dir);
		return 19;
	}
	return 0;
}

static void save_good(const char *dir)
{
	char target[4096];
	nnh5_dict *d = make_dict(small_specs, N_SMALL, GOOD_ITER);

	assert_non_null(d);
	join(target, sizeof target, dir, "model.h5");
	ok(nnh5_save_state_dict(target, d));
	nnh5_dict_free(d);
}

/* Parent side: the previous file loads equal and no temporary file is there. */
static void assert_intact(const char *dir)
{
	char target[4096], why[512];

	join(target, sizeof target, dir, "model.h5");
	if (!file_matches(target, small_specs, N_SMALL, GOOD_ITER, why, sizeof why))
		fail_msg("%s: previous file damaged: %s", target, why);
	assert_int_equal(count_tmp(dir), 0);
}

/* In a child limited to 1 MiB files (hard limit: hard_max), run failed_save_child. */
static void fsize_case(enum how how, enum what what, rlim_t hard_max)
{
	char name[32], dir[4096];

	snprintf(name, sizeof name, "fsize-%d-%d", (int)how, (int)what);
	snprintf(dir, sizeof dir, "%s", fresh_dir(name));
	save_good(dir);
	pid_t pid = fork_or_fail();
	if (pid == 0) {
		struct rlimit rl = { 1 << 20, hard_max };
		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(2);
		_exit(failed_save_child(dir, how, what));
	}
	int st = reap(pid);
	if (st != 0)
		fail_msg("RLIMIT_FSIZE, %s, %s: child failed with status %d (see stderr)",
			 what_name[what], how_name[how], st);
	assert_intact(dir);
	remove_dir(dir);
}

static void test_fsize_limit(void **state)
{
	(void)state;
	for (int what = 0; what < W_COUNT; what++)
		for (int how = VIA_SAVE; how <= VIA_HANDLE_CLOSE; how++)
			fsize_case((enum how)how, (enum what)what, 1 << 20);
}

/*
 * A write fails (EFBIG), the cause goes away, the caller closes the handle:
 * the temporary file holds a half-written dataset, so nnh5_file_close()
 * must refuse to commit it (the target keeps its previous content).
 */
static void test_fsize_transient_then_close(void **state)
{
	(void)state;
	for (int what = 0; what < W_COUNT; what++)
		fsize_case(VIA_HANDLE_CLOSE_RECOVERED, (enum what)what, RLIM_INFINITY);
}

/* common.h promises one-line messages; HDF5's write error carries ctime()'s newline. */
static void test_failed_write_message_one_line(void **state)
{
	(void)state;
	char dir[4096], target[4096];

	snprintf(dir, sizeof dir, "%s", fresh_dir("oneline"));
	join(target, sizeof target, dir, "model.h5");
	pid_t pid = fork_or_fail();
	if (pid == 0) {
		struct rlimit rl = { 1 << 20, 1 << 20 };
		nnh5_dict *big = make_dict(fail_specs, N_FAIL, 99);
		signal(SIGXFSZ, SIG_IGN);
		if (!big || setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(2);
		int rc = nnh5_save_state_dict(target, big);
		const char *msg = nnh5_error_message();
		nnh5_dict_free(big); /* valgrind checks the child's leaks too */
		if (rc == NNH5_OK)
			_exit(3);
		if (strchr(msg, '\n')) {
			fprintf(stderr, "message spans lines: [%s]\n", msg);
			_exit(4);
		}
		_exit(0);
	}
	int st = reap(pid);
	if (st != 0)
		fail_msg("failed save under RLIMIT_FSIZE: status %d (4: the message has a "
			 "newline, see stderr)",
			 st);
	assert_int_equal(count_tmp(dir), 0);
	remove_dir(dir);
}

static void test_full_disk(void **state)
{
	(void)state;
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", fresh_dir("tmpfs"));
	pid_t pid = fork_or_fail();
	if (pid == 0) {
		if (!tu_private_mounts())
			_exit(SKIP_STATUS);
		/* 4 MiB: the good file fits, the 8 MiB save does not. */
		if (mount("nnh5-crash", dir, "tmpfs", 0, "size=4m,mode=0777") < 0) {
			fprintf(stderr, "mount tmpfs: %s\n", strerror(errno));
			_exit(SKIP_STATUS);
		}
		for (int wh = 0; wh < W_COUNT * 3; wh++) {
			int what = wh / 3, how = VIA_SAVE + wh % 3;
			char target[4096];
			nnh5_dict *d = make_dict(small_specs, N_SMALL, GOOD_ITER);
			join(target, sizeof target, dir, "model.h5");
			if (!d || nnh5_save_state_dict(target, d)) {
				fprintf(stderr, "tmpfs: saving the good file: %s\n",
					nnh5_error_message());
				_exit(20);
			}
			nnh5_dict_free(d);
			int rc = failed_save_child(dir, (enum how)how, (enum what)what);
			if (rc) {
				fprintf(stderr, "tmpfs (ENOSPC), %s, %s: failed\n", what_name[what],
					how_name[how]);
				_exit(rc);
			}
		}
		umount2(dir, MNT_DETACH);
		/*
		 * exit(), not _exit(): HDF5's exit handler closes what is still
		 * open, and a file abandoned after ENOSPC must not be among it
		 * (it used to be, and crashed the process there).
		 */
		exit(0);
	}
	int st = reap(pid);
	if (mounted_at(dir))
		fail_msg("a mount was left behind at %s", dir);
	if (st == SKIP_STATUS) {
		printf("# crash: full-disk test skipped: cannot mount a tmpfs in a private "
		       "mount namespace here\n");
		remove_dir(dir);
		skip();
	}
	if (st != 0)
		fail_msg("full tmpfs: child failed with status %d (see stderr)", st);
	assert_int_equal(count_tmp(dir), 0);
	remove_dir(dir);
}

static void test_read_only_folder(void **state)
{
	(void)state;
	char dir[4096], target[4096];
	snprintf(dir, sizeof dir, "%s", fresh_dir("readonly"));
	save_good(dir);
	join(target, sizeof target, dir, "model.h5");
	pid_t pid = fork_or_fail();
	if (pid == 0) {
		char why[512];
		nnh5_file *f;
		if (!tu_private_mounts())
			_exit(SKIP_STATUS);
		if (mount(dir, dir, NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
			fprintf(stderr, "read-only bind mount: %s\n", strerror(errno));
			_exit(SKIP_STATUS);
		}
		/* Root ignores permissions, but not a read-only mount. */
		if (access(dir, W_OK) == 0 || errno != EROFS)
			_exit(21);
		struct payload big;
		if (!payload_make(&big))
			_exit(22);
		for (int what = 0; what < W_COUNT; what++) {
			int rc = save_payload(target, (enum what)what, &big);
			if (rc != NNH5_ERR_IO || !strstr(nnh5_error_message(), target)) {
				fprintf(stderr, "read-only save of a %s: %s: %s\n", what_name[what],
					nnh5_status_name(rc), nnh5_error_message());
				_exit(23);
			}
		}
		int rc = nnh5_file_open(&f, target, NNH5_CREATE);
		if (rc != NNH5_ERR_IO || !strstr(nnh5_error_message(), target)) {
			fprintf(stderr, "read-only open: %s: %s\n", nnh5_status_name(rc),
				nnh5_error_message());
			if (rc == NNH5_OK)
				nnh5_file_discard(f);
			_exit(24);
		}
		payload_free(&big);
		if (!file_matches(target, small_specs, N_SMALL, GOOD_ITER, why, sizeof why)) {
			fprintf(stderr, "read-only: previous file damaged: %s\n", why);
			_exit(25);
		}
		if (count_tmp(dir) != 0)
			_exit(26);
		umount2(dir, MNT_DETACH);
		_exit(0);
	}
	int st = reap(pid);
	if (mounted_at(dir))
		fail_msg("a mount was left behind at %s", dir);
	if (st == SKIP_STATUS) {
		printf("# crash: read-only test skipped: cannot make a read-only bind mount in a "
		       "private mount namespace here (chmod does not stop root)\n");
		remove_dir(dir);
		skip();
	}
	if (st != 0)
		fail_msg("read-only folder: child failed with status %d (see stderr)", st);
	assert_intact(dir);
	remove_dir(dir);
}

static void test_missing_folder(void **state)
{
	(void)state;
	nnh5_dict *d = make_dict(small_specs, N_SMALL, GOOD_ITER);
	nnh5_file *f = NULL;
	char abs_path[4096];

	assert_non_null(d);
	/* Relative, as a user would write it (the test runs in the build folder). */
	assert_false(tu_exists("nonexistent-dir"));
	fails(NNH5_ERR_IO, nnh5_save_state_dict("nonexistent-dir/x.h5", d),
	      "nonexistent-dir/x.h5");
	fails(NNH5_ERR_IO, nnh5_file_open(&f, "nonexistent-dir/x.h5", NNH5_CREATE),
	      "nonexistent-dir/x.h5");
	assert_null(f);
	assert_false(tu_exists("nonexistent-dir"));
	/* Absolute. */
	snprintf(abs_path, sizeof abs_path, "%s", tu_path("nonexistent-dir/x.h5"));
	fails(NNH5_ERR_IO, nnh5_save_state_dict(abs_path, d), abs_path);
	assert_false(tu_exists(abs_path));
	nnh5_dict_free(d);
}

static void test_discard_and_close(void **state)
{
	(void)state;
	char dir[4096], target[4096], why[512];
	nnh5_file *f;
	nnh5_dict *next = make_dict(small_specs, N_SMALL, GOOD_ITER + 1);

	assert_non_null(next);
	snprintf(dir, sizeof dir, "%s", fresh_dir("discard"));
	join(target, sizeof target, dir, "model.h5");

	/* A CREATE handle on a new target: nothing there until close commits. */
	ok(nnh5_file_open(&f, target, NNH5_CREATE));
	assert_int_equal(count_tmp(dir), 1);
	assert_false(tu_exists(target));
	nnh5_dict *good = make_dict(small_specs, N_SMALL, GOOD_ITER);
	assert_non_null(good);
	ok(nnh5_file_write_state_dict(f, "/", good));
	nnh5_dict_free(good);
	assert_false(tu_exists(target));
	ok(nnh5_file_close(f));
	assert_int_equal(count_tmp(dir), 0);
	assert_intact(dir);

	/* Discard: the target keeps its content, the temporary file goes. */
	ok(nnh5_file_open(&f, target, NNH5_CREATE));
	ok(nnh5_file_write_state_dict(f, "/", next));
	ok(nnh5_file_set_attr_string(f, "/", "note", "discarded"));
	assert_int_equal(count_tmp(dir), 1);
	if (!file_matches(target, small_specs, N_SMALL, GOOD_ITER, why, sizeof why))
		fail_msg("target changed while a CREATE handle was open: %s", why);
	nnh5_file_discard(f);
	assert_intact(dir);

	/* Discard right after open, with nothing written. */
	ok(nnh5_file_open(&f, target, NNH5_CREATE));
	nnh5_file_discard(f);
	assert_intact(dir);

	/* Close commits: the target now holds the new content. */
	ok(nnh5_file_open(&f, target, NNH5_CREATE));
	ok(nnh5_file_write_state_dict(f, "/", next));
	if (!file_matches(target, small_specs, N_SMALL, GOOD_ITER, why, sizeof why))
		fail_msg("target changed before close: %s", why);
	ok(nnh5_file_close(f));
	assert_int_equal(count_tmp(dir), 0);
	if (!file_matches(target, small_specs, N_SMALL, GOOD_ITER + 1, why, sizeof why))
		fail_msg("close did not commit: %s", why);

	/* And the one-call save replaces it again, leaving no temporary file. */
	nnh5_dict *again = make_dict(small_specs, N_SMALL, GOOD_ITER);
	assert_non_null(again);
	ok(nnh5_save_state_dict(target, again));
	nnh5_dict_free(again);
	assert_intact(dir);
	nnh5_dict_free(next);
	remove_dir(dir);
}

/* "--only NAME" runs one test (the slow suite runs only the kill test). */
int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--only") == 0)
		cmocka_set_test_filter(argv[2]);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discard_and_close),
		cmocka_unit_test(test_missing_folder),
		cmocka_unit_test(test_fsize_limit),
		cmocka_unit_test(test_fsize_transient_then_close),
		cmocka_unit_test(test_failed_write_message_one_line),
		cmocka_unit_test(test_full_disk),
		cmocka_unit_test(test_read_only_folder),
		cmocka_unit_test(test_kill_during_save),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
