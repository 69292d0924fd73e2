/*
 * tests/test_checkpoint.c - checkpoints (lib/checkpoint/checkpoint.c) and the folder
 * manager (lib/checkpoint/checkpoint_manager.c): contents round trip, retention
 * policies over many saves, the index, latest() skipping damaged files,
 * leftovers, the folder lock (and fork), full disks, asynchronous saves, and
 * steps up to INT64_MAX.
 * (Killing a training process and resuming is in tests/crash/.)
 */
#define _DEFAULT_SOURCE /* DT_REG, nanosleep */
#include "testutil.h"

#include "checkpoint/checkpoint_internal.h"
#include "nnh5.h"

#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static nnh5_tensor *noise(nnh5_dtype dtype, int64_t rows, int64_t cols, uint64_t seed)
{
	int64_t shape[] = { rows, cols };
	nnh5_tensor *t;
	nnh5_rng r;

	nnh5_rng_seed(&r, seed);
	ok(nnh5_tensor_randn(&t, dtype, 2, shape, &r));
	return t;
}

/* A checkpoint of step with a model and an optimizer section, metrics, rng, extras. */
static nnh5_checkpoint *sample(int64_t step, double loss, int64_t rows)
{
	nnh5_checkpoint *c;
	nnh5_dict *model, *optim;
	nnh5_rng r;

	ok(nnh5_checkpoint_new(&c, step));
	ok(nnh5_checkpoint_set_epoch(c, step / 10));
	ok(nnh5_dict_new(&model));
	ok(nnh5_dict_set(model, "hidden.weight", noise(NNH5_FLOAT32, rows, 20, (uint64_t)step)));
	ok(nnh5_dict_set(model, "hidden.bias", noise(NNH5_FLOAT32, 1, rows, (uint64_t)step + 1)));
	ok(nnh5_dict_set(model, "out.weight", noise(NNH5_FLOAT64, 3, rows, (uint64_t)step + 2)));
	ok(nnh5_checkpoint_set_state(c, "model", model));
	ok(nnh5_dict_new(&optim));
	ok(nnh5_dict_set(optim, "hidden.weight.momentum_buffer",
			 noise(NNH5_FLOAT32, rows, 20, (uint64_t)step + 3)));
	ok(nnh5_checkpoint_set_state(c, "optimizer", optim));
	nnh5_rng_seed(&r, (uint64_t)step);
	(void)nnh5_rng_normal(&r); /* leaves a spare deviate in the state */
	ok(nnh5_checkpoint_set_rng(c, "data", &r));
	ok(nnh5_checkpoint_set_metric(c, "loss", loss));
	ok(nnh5_checkpoint_set_metric(c, "accuracy", 1.0 - loss / 10));
	ok(nnh5_checkpoint_set_tensor(c, "sim.state", noise(NNH5_FLOAT64, 2, 2, 99)));
	ok(nnh5_checkpoint_set_meta(c, "run", "test-run"));
	return c;
}

static void assert_same_dict(const nnh5_dict *a, const nnh5_dict *b)
{
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(nnh5_dict_len(a), nnh5_dict_len(b));
	for (size_t i = 0; i < nnh5_dict_len(a); i++) {
		assert_string_equal(nnh5_dict_key(a, i), nnh5_dict_key(b, i));
		assert_true(nnh5_tensor_bitwise_equal(nnh5_dict_value(a, i), nnh5_dict_value(b, i)));
	}
}

static void assert_same_checkpoint(const nnh5_checkpoint *a, const nnh5_checkpoint *b)
{
	assert_int_equal(nnh5_checkpoint_step(a), nnh5_checkpoint_step(b));
	assert_int_equal(nnh5_checkpoint_epoch(a), nnh5_checkpoint_epoch(b));
	assert_int_equal(nnh5_checkpoint_num_states(a), nnh5_checkpoint_num_states(b));
	for (size_t i = 0; i < nnh5_checkpoint_num_states(a); i++) {
		const char *name = nnh5_checkpoint_state_name(a, i);
		assert_string_equal(name, nnh5_checkpoint_state_name(b, i));
		assert_same_dict(nnh5_checkpoint_state(a, name), nnh5_checkpoint_state(b, name));
	}
	assert_int_equal(nnh5_checkpoint_num_metrics(a), nnh5_checkpoint_num_metrics(b));
	for (size_t i = 0; i < nnh5_checkpoint_num_metrics(a); i++) {
		double x, y;
		const char *name = nnh5_checkpoint_metric_name(a, i);
		assert_string_equal(name, nnh5_checkpoint_metric_name(b, i));
		ok(nnh5_checkpoint_metric(&x, a, name));
		ok(nnh5_checkpoint_metric(&y, b, name));
		assert_memory_equal(&x, &y, sizeof x);
	}
	assert_string_equal(nnh5_checkpoint_meta(a, "run"), nnh5_checkpoint_meta(b, "run"));
}

static void contents_round_trip(void **state)
{
	nnh5_checkpoint *c = sample(120, 0.25, 16), *back;
	nnh5_rng saved, restored;
	(void)state;
	ok(nnh5_checkpoint_save(tu_path("one.h5"), c));
	ok(nnh5_checkpoint_load(&back, tu_path("one.h5")));
	assert_same_checkpoint(c, back);
	assert_non_null(nnh5_checkpoint_tensor(back, "sim.state"));
	/* the generator continues exactly where it was, spare deviate included */
	ok(nnh5_checkpoint_get_rng(&saved, c, "data"));
	ok(nnh5_checkpoint_get_rng(&restored, back, "data"));
	assert_int_equal(saved.has_spare, 1);
	for (int i = 0; i < 100; i++) {
		double x = nnh5_rng_normal(&saved), y = nnh5_rng_normal(&restored);
		assert_memory_equal(&x, &y, sizeof x);
	}
	fails(NNH5_ERR_NOT_FOUND, nnh5_checkpoint_get_rng(&saved, back, "nope"), "nope");
	/* h5py-style view: plain attributes and groups */
	nnh5_file *f;
	int64_t step;
	double loss;
	ok(nnh5_file_open(&f, tu_path("one.h5"), NNH5_READ));
	ok(nnh5_file_get_attr_int(&step, f, "/", "step"));
	ok(nnh5_file_get_attr_float(&loss, f, "metrics", "loss"));
	assert_int_equal(step, 120);
	assert_true(loss == 0.25);
	assert_true(nnh5_file_has(f, "model/hidden/weight"));
	nnh5_file_discard(f);
	nnh5_checkpoint_free(c);
	nnh5_checkpoint_free(back);
}

static void bad_contents_are_refused(void **state)
{
	nnh5_checkpoint *c;
	nnh5_dict *d;
	double v;
	(void)state;
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_new(&c, -1), "negative");
	ok(nnh5_checkpoint_new(&c, 1));
	ok(nnh5_dict_new(&d));
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_state(c, "a/b", d), "'a/b'");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_state(c, "metrics", d), "'metrics'");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_state(c, "nnh5_x", d), "'nnh5_x'");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_state(c, "", d), "''");
	ok(nnh5_checkpoint_set_state(c, "ok", d)); /* the caller's d now belongs to c */
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_meta(c, "step", "x"), "'step'");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_meta(c, "nnh5_kind", "x"), "'nnh5_kind'");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_meta(c, "m", "\xff"), "not UTF-8");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_metric(c, "", 1), "metric");
	fails(NNH5_ERR_NOT_FOUND, nnh5_checkpoint_metric(&v, c, "loss"), "'loss'");
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_set_epoch(c, -2), "negative");
	nnh5_checkpoint_free(c);
	/* a file that is not a checkpoint */
	nnh5_tensor *t = noise(NNH5_FLOAT32, 2, 2, 1);
	ok(nnh5_save_tensor(tu_path("tensor.h5"), t));
	fails(NNH5_ERR_FORMAT, nnh5_checkpoint_load(&c, tu_path("tensor.h5")), "tensor.h5",
	      "not a checkpoint");
	nnh5_tensor_free(t);
}

/* A fresh folder under the scratch folder. */
static const char *folder(const char *name)
{
	static char buf[4096];
	snprintf(buf, sizeof buf, "%s", tu_path(name));
	return buf;
}

static char *ckpt_file(const char *dir, int64_t step)
{
	static char buf[4096];
	snprintf(buf, sizeof buf, "%.4000s/ckpt-%012lld.h5", dir, (long long)step);
	return buf;
}

/* Steps of the checkpoint files in dir, by listing it (not through the manager). */
static size_t files_in(int64_t *steps, size_t max, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		long long s;
		char tail[8];
		if (sscanf(e->d_name, "ckpt-%12lld%7s", &s, tail) == 2 && strcmp(tail, ".h5") == 0) {
			assert_true(n < max);
			steps[n++] = s;
		}
	}
	closedir(d);
	for (size_t i = 1; i < n; i++) /* insertion sort */
		for (size_t j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
			int64_t tmp = steps[j];
			steps[j] = steps[j - 1];
			steps[j - 1] = tmp;
		}
	return n;
}

static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".nnh5-tmp-"))
			n++;
	closedir(d);
	return n;
}

static void keep_last_n(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	const char *dir = folder("last");
	int64_t steps[64];
	(void)state;
	o.keep_last = 3;
	ok(nnh5_checkpoint_manager_open(&m, dir, &o));
	for (int64_t s = 1; s <= 20; s++) {
		nnh5_checkpoint *c = sample(s * 10, 1.0 / (double)s, 4);
		ok(nnh5_checkpoint_manager_save(m, c));
		nnh5_checkpoint_free(c);
		size_t n = files_in(steps, 64, dir);
		size_t want = s < 3 ? (size_t)s : 3;
		assert_int_equal(n, want);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(steps[i], (s - (int64_t)n + 1 + (int64_t)i) * 10);
	}
	ok(nnh5_checkpoint_manager_close(m));
}

/* The policy, computed independently: newest N, best B by loss (min), multiples of K. */
static bool expect_kept(const int64_t *all, const double *loss, size_t n, size_t i, unsigned last,
			unsigned best, int64_t every)
{
	if (i + last >= n || (every && all[i] % every == 0))
		return true;
	size_t better = 0; /* entries strictly better, or equal and newer */
	for (size_t j = 0; j < n; j++)
		if (loss[j] < loss[i] || (loss[j] == loss[i] && all[j] > all[i]))
			better++;
	return better < best;
}

static void keep_best_and_every(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	const char *dir = folder("best");
	int64_t all[64], kept[64];
	double loss[64];
	nnh5_rng r;
	(void)state;
	o.keep_last = 2;
	o.keep_best = 3;
	o.best_metric = "loss";
	o.keep_every = 7;
	nnh5_rng_seed(&r, 5);
	ok(nnh5_checkpoint_manager_open(&m, dir, &o));
	for (size_t s = 0; s < 40; s++) {
		all[s] = (int64_t)s + 1;
		loss[s] = floor(nnh5_rng_uniform(&r) * 20) / 4; /* ties happen */
		nnh5_checkpoint *c = sample(all[s], loss[s], 2);
		ok(nnh5_checkpoint_manager_save(m, c));
		nnh5_checkpoint_free(c);
		/* what must exist now: the policy over everything saved so far */
		size_t n = files_in(kept, 64, dir), k = 0;
		for (size_t i = 0; i <= s; i++) {
			bool want = expect_kept(all, loss, s + 1, i, 2, 3, 7);
			bool have = k < n && kept[k] == all[i];
			if (want != have)
				fail_msg("after step %zu: step %lld %s", s + 1, (long long)all[i],
					 want ? "missing" : "not deleted");
			k += have;
		}
		assert_int_equal(k, n);
	}
	ok(nnh5_checkpoint_manager_close(m));

	/* The index lists exactly the files, their metrics and the best step. */
	nnh5_dict *idx;
	nnh5_file *f;
	int64_t best_step;
	char *metric;
	size_t n = files_in(kept, 64, dir);
	ok(nnh5_load_state_dict(&idx, tu_path("best/index.h5")));
	const nnh5_tensor *st = nnh5_dict_get(idx, "steps"), *ls = nnh5_dict_get(idx, "metrics.loss");
	assert_non_null(st);
	assert_non_null(ls);
	assert_int_equal(nnh5_tensor_numel(st), n);
	size_t best_i = 0;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(((const int64_t *)nnh5_tensor_data(st))[i], kept[i]);
		assert_true(((const double *)nnh5_tensor_data(ls))[i] == loss[kept[i] - 1]);
		if (loss[kept[i] - 1] <= loss[kept[best_i] - 1])
			best_i = i;
	}
	ok(nnh5_file_open(&f, tu_path("best/index.h5"), NNH5_READ));
	ok(nnh5_file_get_attr_int(&best_step, f, "/", "best_step"));
	ok(nnh5_file_get_attr_string(&metric, f, "/", "best_metric"));
	assert_int_equal(best_step, kept[best_i]);
	assert_string_equal(metric, "loss");
	nnh5_free(metric);
	nnh5_file_discard(f);
	nnh5_dict_free(idx);
}

static void flip_data_byte(const char *path, const char *dataset)
{
	hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	hid_t did = H5Dopen2(fid, dataset, H5P_DEFAULT);
	haddr_t off = H5Dget_offset(did);
	assert_true(off != HADDR_UNDEF);
	H5Dclose(did);
	H5Fclose(fid);
	FILE *fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, (long)off + 10, SEEK_SET);
	int ch = fgetc(fp);
	fseek(fp, (long)off + 10, SEEK_SET);
	fputc(ch ^ 0x20, fp);
	fclose(fp);
}

static void truncate_file(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
}

static void latest_skips_damaged(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	nnh5_checkpoint *c, *back;
	const char *dir = folder("latest");
	char *report;
	(void)state;
	o.keep_last = 0;
	ok(nnh5_checkpoint_manager_open(&m, dir, &o));
	fails(NNH5_ERR_NOT_FOUND, nnh5_checkpoint_manager_latest(&back, &report, m),
	      "no checkpoint loads");
	for (int64_t s = 1; s <= 3; s++) {
		c = sample(s, 0.5, 64); /* 64x20 float32: contiguous data */
		ok(nnh5_checkpoint_manager_save(m, c));
		nnh5_checkpoint_free(c);
	}
	ok(nnh5_checkpoint_manager_latest(&back, &report, m));
	assert_int_equal(nnh5_checkpoint_step(back), 3);
	assert_null(report);
	nnh5_checkpoint_free(back);

	/* damaged tensor data in the newest: reported, the previous one is latest */
	flip_data_byte(ckpt_file(dir, 3), "/model/hidden/weight");
	ok(nnh5_checkpoint_manager_latest(&back, &report, m));
	assert_int_equal(nnh5_checkpoint_step(back), 2);
	assert_non_null(report);
	assert_non_null(strstr(report, "step 3 skipped"));
	assert_non_null(strstr(report, "damaged"));
	assert_non_null(strstr(report, "hidden/weight"));
	nnh5_free(report);
	c = sample(2, 0.5, 64);
	assert_same_checkpoint(c, back);
	nnh5_checkpoint_free(c);
	nnh5_checkpoint_free(back);
	/* skipping verification (an explicit choice) loads the damaged bytes as stored */
	nnh5_open_options fast = NNH5_OPEN_OPTIONS_INIT;
	fast.verify_checksums = false;
	fails(NNH5_ERR_CHECKSUM, nnh5_checkpoint_load(&back, ckpt_file(dir, 3)), "damaged");
	ok(nnh5_checkpoint_load_ext(&back, ckpt_file(dir, 3), &fast));
	c = sample(3, 0.5, 64);
	assert_false(nnh5_tensor_bitwise_equal(
		nnh5_dict_get(nnh5_checkpoint_state(c, "model"), "hidden.weight"),
		nnh5_dict_get(nnh5_checkpoint_state(back, "model"), "hidden.weight")));
	nnh5_checkpoint_free(c);
	nnh5_checkpoint_free(back);

	/* a truncated one too */
	truncate_file(ckpt_file(dir, 2));
	ok(nnh5_checkpoint_manager_latest(&back, &report, m));
	assert_int_equal(nnh5_checkpoint_step(back), 1);
	assert_non_null(strstr(report, "step 3 skipped"));
	assert_non_null(strstr(report, "step 2 skipped"));
	nnh5_free(report);
	nnh5_checkpoint_free(back);

	/* nothing loads: an error listing every reason */
	truncate_file(ckpt_file(dir, 1));
	fails(NNH5_ERR_NOT_FOUND, nnh5_checkpoint_manager_latest(&back, &report, m),
	      "no checkpoint loads", "step 1 skipped", "step 3 skipped");
	assert_null(back);
	ok(nnh5_checkpoint_manager_close(m));
}

static void touch(const char *dir, const char *name)
{
	char p[4096];
	snprintf(p, sizeof p, "%.3000s/%.1000s", dir, name);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("partial", fp);
	fclose(fp);
}

static void leftovers_removed_and_folder_locked(void **state)
{
	nnh5_checkpoint_manager *m, *m2;
	const char *dir = folder("leftovers");
	(void)state;
	assert_int_equal(mkdir(dir, 0755), 0);
	touch(dir, ".ckpt-000000000005.h5.nnh5-tmp-a1b2c3");
	touch(dir, ".index.h5.nnh5-tmp-x9y8z7");
	touch(dir, ".notes.txt.nnh5-tmp-keep12"); /* not the manager's: left alone */
	touch(dir, "ckpt-000000000007.h5");       /* a partial checkpoint: latest skips it */
	ok(nnh5_checkpoint_manager_open(&m, dir, NULL));
	assert_int_equal(nnh5_checkpoint_manager_leftovers_removed(m), 2);
	assert_int_equal(count_tmp(dir), 1);
	fails(NNH5_ERR_BUSY, nnh5_checkpoint_manager_open(&m2, dir, NULL), "in use");
	nnh5_checkpoint *c;
	char *report;
	fails(NNH5_ERR_NOT_FOUND, nnh5_checkpoint_manager_latest(&c, &report, m), "step 7 skipped");
	ok(nnh5_checkpoint_manager_close(m));
	ok(nnh5_checkpoint_manager_open(&m2, dir, NULL)); /* the lock went with the first */
	ok(nnh5_checkpoint_manager_close(m2));
}

/* In the full-disk child: report a failed check and exit non-zero. */
#define CHILD_CHECK(cond, ...)                                                    \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "full disk, line %d: ", __LINE__);      \
			fprintf(stderr, __VA_ARGS__);                           \
			fprintf(stderr, " (%s)\n", nnh5_error_message());       \
			_exit(1);                                               \
		}                                                               \
	} while (0)

static void full_disk_child(const char *dir, bool async)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	nnh5_checkpoint *c, *back;
	char *report;
	int64_t steps[8];
	int rc;

	o.keep_last = 1;
	o.async = async;
	CHILD_CHECK(nnh5_checkpoint_manager_open(&m, dir, &o) == NNH5_OK, "open");
	c = sample(1, 0.5, 2048); /* ~0.5 MiB of tensors */
	CHILD_CHECK(nnh5_checkpoint_manager_save(m, c) == NNH5_OK, "first save");
	CHILD_CHECK(nnh5_checkpoint_manager_wait(m) == NNH5_OK, "first save (wait)");
	nnh5_checkpoint_free(c);
	c = sample(2, 0.4, 2048); /* does not fit beside the first */
	rc = nnh5_checkpoint_manager_save(m, c);
	if (async) {
		CHILD_CHECK(rc == NNH5_OK, "async save is only staged");
		rc = nnh5_checkpoint_manager_wait(m);
		CHILD_CHECK(strstr(nnh5_error_message(), "background save failed"), "message");
	}
	CHILD_CHECK(rc == NNH5_ERR_IO, "second save fails with NNH5_ERR_IO, got %s",
		    nnh5_status_name(rc));
	CHILD_CHECK(strstr(nnh5_error_message(), "ckpt-000000000002.h5"), "message names it");
	CHILD_CHECK(nnh5_checkpoint_manager_wait(m) == NNH5_OK, "reported once");
	/* step 1 was neither replaced nor deleted by retention, and is latest */
	CHILD_CHECK(files_in(steps, 8, dir) == 1 && steps[0] == 1, "step 1 kept");
	CHILD_CHECK(count_tmp(dir) == 0, "no temporary file");
	CHILD_CHECK(nnh5_checkpoint_manager_latest(&back, &report, m) == NNH5_OK, "latest");
	CHILD_CHECK(nnh5_checkpoint_step(back) == 1 && !report, "latest is step 1");
	nnh5_checkpoint_free(back);
	CHILD_CHECK(nnh5_checkpoint_manager_close(m) == NNH5_OK, "close");
	nnh5_checkpoint_free(c);
}

static void full_disk_keeps_previous(void **state)
{
	(void)state;
	for (int async = 0; async < 2; async++) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", folder(async ? "full-async" : "full-sync"));
		assert_int_equal(mkdir(dir, 0755), 0);
		fflush(stdout);
		fflush(stderr);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (!tu_private_mounts() ||
			    mount("nnh5-ckpt", dir, "tmpfs", 0, "size=600k,mode=0777") < 0)
				_exit(77);
			full_disk_child(dir, async);
			umount2(dir, MNT_DETACH);
			exit(0); /* HDF5's exit handler must find nothing half-closed */
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			printf("# checkpoint: full-disk test skipped: cannot mount a tmpfs in a "
			       "private mount namespace here\n");
			skip();
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail_msg("full disk (%s): child failed (status %d, see stderr)",
				 async ? "async" : "sync", st);
	}
}

static bool same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	bool same = fa && fb;
	int x, y;
	while (same) {
		x = fgetc(fa);
		y = fgetc(fb);
		same = x == y;
		if (x == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static void async_equals_sync_and_copies(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *ms, *ma;
	const char *sync_dir = "sync", *async_dir = "async";
	char ds[4096], da[4096];
	(void)state;
	snprintf(ds, sizeof ds, "%s", tu_path(sync_dir));
	snprintf(da, sizeof da, "%s", tu_path(async_dir));
	o.keep_last = 0;
	ok(nnh5_checkpoint_manager_open(&ms, ds, &o));
	o.async = true;
	ok(nnh5_checkpoint_manager_open(&ma, da, &o));
	for (int64_t s = 1; s <= 5; s++) {
		nnh5_checkpoint *c = sample(s, 1.0 / (double)s, 128), *ref = sample(s, 1.0 / (double)s, 128);
		ok(nnh5_checkpoint_manager_save(ms, c));
		nnh5__checkpoint_manager_hold(ma, true); /* keep the async save in flight */
		ok(nnh5_checkpoint_manager_save(ma, c));
		/* The caller may change its tensors at once: the staged copy is written. */
		nnh5_tensor *w = nnh5_dict_get(nnh5_checkpoint_state(c, "model"), "hidden.weight");
		memset(nnh5_tensor_mutable_data(w), 0xab, nnh5_tensor_nbytes(w));
		nnh5_checkpoint_free(c);
		nnh5__checkpoint_manager_hold(ma, false);
		ok(nnh5_checkpoint_manager_wait(ma));
		/* Same bytes: files carry no timestamps, so sync and async agree exactly. */
		char fs[4096], fa[4096];
		snprintf(fs, sizeof fs, "%s", ckpt_file(ds, s));
		snprintf(fa, sizeof fa, "%s", ckpt_file(da, s));
		assert_true(same_bytes(fs, fa));
		nnh5_checkpoint *back;
		ok(nnh5_checkpoint_load(&back, fa));
		assert_same_checkpoint(ref, back);
		nnh5_checkpoint_free(back);
		nnh5_checkpoint_free(ref);
	}
	/* Skip policy: a second save while one is in flight returns NNH5_ERR_BUSY. */
	ok(nnh5_checkpoint_manager_close(ma));
	o.busy = NNH5_BUSY_SKIP;
	ok(nnh5_checkpoint_manager_open(&ma, da, &o));
	nnh5_checkpoint *c6 = sample(6, 0.1, 8), *c7 = sample(7, 0.1, 8);
	nnh5__checkpoint_manager_hold(ma, true);
	ok(nnh5_checkpoint_manager_save(ma, c6));
	fails(NNH5_ERR_BUSY, nnh5_checkpoint_manager_save(ma, c7), "step 7 skipped",
	      "step 6 is still being saved");
	/* close waits for the save in flight */
	ok(nnh5_checkpoint_manager_close(ma));
	int64_t steps[16];
	size_t n = files_in(steps, 16, da);
	assert_int_equal(steps[n - 1], 6);
	/* Wait policy: the second save waits, then both are written. */
	o.busy = NNH5_BUSY_WAIT;
	ok(nnh5_checkpoint_manager_open(&ma, da, &o));
	ok(nnh5_checkpoint_manager_save(ma, c6));
	ok(nnh5_checkpoint_manager_save(ma, c7));
	ok(nnh5_checkpoint_manager_close(ma));
	n = files_in(steps, 16, da);
	assert_int_equal(steps[n - 1], 7);
	nnh5_checkpoint_free(c6);
	nnh5_checkpoint_free(c7);
	ok(nnh5_checkpoint_manager_close(ms));
}

/* Steps anywhere in [0, INT64_MAX]: named, listed, retained and resumed in step order. */
static void huge_steps(void **state)
{
	const int64_t all[] = { 5, 999999999999LL, 1000000000000LL, 4000000000000000000LL,
				INT64_MAX - 1, INT64_MAX };
	const size_t n_all = sizeof all / sizeof all[0];
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	nnh5_checkpoint *c;
	int64_t *steps;
	size_t n;
	char name[64];
	(void)state;
	o.keep_last = 2;
	o.durable = false;
	ok(nnh5_checkpoint_manager_open(&m, folder("huge"), &o));
	for (size_t i = 0; i < n_all; i++) {
		c = sample(all[i], 1.0, 2);
		ok(nnh5_checkpoint_manager_save(m, c));
		nnh5_checkpoint_free(c);
		ok(nnh5_checkpoint_manager_steps(&steps, &n, m));
		assert_int_equal(n, i < 2 ? i + 1 : 2); /* retention removes the oldest */
		assert_true(steps[n - 1] == all[i]);
		nnh5_free(steps);
	}
	ok(nnh5_checkpoint_manager_latest(&c, NULL, m));
	assert_true(nnh5_checkpoint_step(c) == INT64_MAX);
	nnh5_checkpoint_free(c);
	ok(nnh5_checkpoint_manager_close(m));
	/* Reopened, and read without a manager: the same two steps. */
	ok(nnh5_checkpoint_folder_steps(&steps, &n, folder("huge")));
	assert_int_equal(n, 2);
	assert_true(steps[0] == INT64_MAX - 1 && steps[1] == INT64_MAX);
	nnh5_free(steps);

	/* Names: one per step, the old 12-digit ones unchanged. */
	const struct { const char *name; bool ok; int64_t step; } names[] = {
		{ "ckpt-000000000120.h5", true, 120 },
		{ "ckpt-999999999999.h5", true, 999999999999LL },
		{ "ckpt-1000000000000.h5", true, 1000000000000LL },
		{ "ckpt-9223372036854775807.h5", true, INT64_MAX },
		{ "ckpt-9223372036854775808.h5", false, 0 },  /* over INT64_MAX */
		{ "ckpt-0001000000000000.h5", false, 0 },     /* a second name for 10^12 */
		{ "ckpt-00000000120.h5", false, 0 },          /* 11 digits */
		{ "ckpt-00000000012a.h5", false, 0 },
		{ "ckpt-000000000120.h5.nnh5-tmp-x", false, 0 },
		{ "ckpt-99999999999999999999.h5", false, 0 },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		int64_t step = -1;
		assert_int_equal(nnh5_checkpoint_file_step(&step, names[i].name), names[i].ok);
		if (!names[i].ok)
			continue;
		assert_true(step == names[i].step);
		ok(nnh5_checkpoint_file_name(name, sizeof name, step));
		assert_string_equal(name, names[i].name);
	}
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_file_name(name, sizeof name, -1), "-1");
	fails(NNH5_ERR_OVERFLOW, nnh5_checkpoint_file_name(name, 10, 1), "too small");
	assert_string_equal(nnh5_checkpoint_index_metric("metrics.loss"), "loss");
	assert_null(nnh5_checkpoint_index_metric("steps"));
}

/*
 * A forked child (a data loader worker) that outlives the manager must not
 * keep the folder locked: the parent closes and reopens while it lives.
 */
static void fork_does_not_keep_lock(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m, *m2;
	const char *dir = folder("forked");
	int go[2];
	(void)state;
	o.async = true;
	ok(nnh5_checkpoint_manager_open(&m, dir, &o));
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char ch;
		close(go[1]);
		_exit(read(go[0], &ch, 1) == 0 ? 0 : 1); /* lives until the parent is done */
	}
	close(go[0]);
	nnh5_checkpoint *c = sample(1, 1.0, 2);
	ok(nnh5_checkpoint_manager_save(m, c));
	nnh5_checkpoint_free(c);
	ok(nnh5_checkpoint_manager_close(m));
	ok(nnh5_checkpoint_manager_open(&m2, dir, &o)); /* NNH5_ERR_BUSY when the child held it */
	fails(NNH5_ERR_BUSY, nnh5_checkpoint_manager_open(&m, dir, &o), "in use");
	ok(nnh5_checkpoint_manager_close(m2));
	close(go[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A compressed checkpoint folder: smaller files that load back equal, sync and async. */
static void compressed_checkpoints(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	char plain[4096], packed[4096], fp[4096];
	(void)state;
	o.keep_last = 0;
	snprintf(plain, sizeof plain, "%s", tu_path("ckpt-plain"));
	snprintf(packed, sizeof packed, "%s", tu_path("ckpt-packed"));
	ok(nnh5_checkpoint_manager_open(&m, plain, &o));
	nnh5_checkpoint *c = sample(1, 0.5, 8192);
	ok(nnh5_checkpoint_manager_save(m, c));
	ok(nnh5_checkpoint_manager_close(m));
	snprintf(fp, sizeof fp, "%s", ckpt_file(plain, 1));
	for (int async = 0; async < 2; async++) {
		o.compression = NNH5_COMPRESSION_ARCHIVE;
		o.async = async;
		ok(nnh5_checkpoint_manager_open(&m, packed, &o));
		ok(nnh5_checkpoint_manager_save(m, c));
		ok(nnh5_checkpoint_manager_close(m));
		struct stat a, b;
		assert_int_equal(stat(fp, &a), 0);
		assert_int_equal(stat(ckpt_file(packed, 1), &b), 0);
		assert_true(b.st_size < a.st_size);
		nnh5_checkpoint *back;
		ok(nnh5_checkpoint_load(&back, ckpt_file(packed, 1)));
		assert_same_checkpoint(c, back);
		nnh5_checkpoint_free(back);
	}
	nnh5_checkpoint_free(c);
	o.compression = 9;
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_manager_open(&m, packed, &o),
	      "unknown compression profile 9");
}

static void options_checked(void **state)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	(void)state;
	o.keep_best = 2;
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_manager_open(&m, folder("opts"), &o), "best_metric");
	o.keep_best = 0;
	o.version = 99;
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_manager_open(&m, folder("opts"), &o), "version");
	o.version = NNH5_CHECKPOINT_OPTIONS_VERSION;
	o.keep_every = -1;
	fails(NNH5_ERR_INVALID, nnh5_checkpoint_manager_open(&m, folder("opts"), &o), "keep_every");
	touch(tu_path(""), "plainfile");
	fails(NNH5_ERR_IO, nnh5_checkpoint_manager_open(&m, tu_path("plainfile"), NULL),
	      "not a folder");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(contents_round_trip),
		cmocka_unit_test(bad_contents_are_refused),
		cmocka_unit_test(keep_last_n),
		cmocka_unit_test(keep_best_and_every),
		cmocka_unit_test(latest_skips_damaged),
		cmocka_unit_test(leftovers_removed_and_folder_locked),
		cmocka_unit_test(full_disk_keeps_previous),
		cmocka_unit_test(async_equals_sync_and_copies),
		cmocka_unit_test(options_checked),
		cmocka_unit_test(compressed_checkpoints),
		cmocka_unit_test(huge_steps),
		cmocka_unit_test(fork_does_not_keep_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
