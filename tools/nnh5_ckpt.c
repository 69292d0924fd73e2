/*
 * nnh5_ckpt.c - `nnh5 ls DIR` and `nnh5 verify DIR` for a checkpoint folder
 * (doc/FORMAT.md, "A checkpoint folder").
 *
 * Both only read: they do not take the folder's lock or remove leftovers
 * (that is the manager's job), so they are safe to run beside a training
 * process. ls lists the checkpoint files present (the truth) with the
 * epochs and metrics the index recorded for them; verify loads every
 * checkpoint, checksums included, newest first, and names the one
 * nnh5_checkpoint_manager_latest() would resume from.
 */
#define _DEFAULT_SOURCE /* DT_* */
#include "nnh5_util.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nnh5.h>

bool tool_is_folder(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_i64_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x < y) - (x > y);
}

/* Steps of the "ckpt-<12 digits>.h5" files in dir, newest first; -1 on error. */
static long list_steps(int64_t **out, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, cap = 0;
	int64_t *v = NULL;

	*out = NULL;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		const char *s = e->d_name;
		int64_t step = 0;
		bool okname = strncmp(s, "ckpt-", 5) == 0 && strlen(s) == 5 + 12 + 3 &&
			      strcmp(s + 17, ".h5") == 0;
		for (int i = 0; okname && i < 12; i++) {
			okname = s[5 + i] >= '0' && s[5 + i] <= '9';
			step = step * 10 + (s[5 + i] - '0');
		}
		if (!okname)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			int64_t *nv = realloc(v, cap * sizeof *nv);
			if (!nv) {
				free(v);
				closedir(d);
				return -1;
			}
			v = nv;
		}
		v[n++] = step;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof *v, cmp_i64_desc);
	*out = v;
	return (long)n;
}

static void ckpt_path(char *buf, size_t n, const char *dir, int64_t step)
{
	snprintf(buf, n, "%s/ckpt-%012lld.h5", dir, (long long)step);
}

/* The index's row for step, or -1. */
static long index_row(const nnh5_dict *idx, int64_t step)
{
	const nnh5_tensor *steps = idx ? nnh5_dict_get(idx, "steps") : NULL;

	if (!steps || nnh5_tensor_dtype(steps) != NNH5_INT64)
		return -1;
	for (size_t i = 0; i < nnh5_tensor_numel(steps); i++)
		if (((const int64_t *)nnh5_tensor_data(steps))[i] == step)
			return (long)i;
	return -1;
}

int tool_ls_folder(const char *dir)
{
	char ipath[4200];
	nnh5_dict *idx = NULL;
	nnh5_file *f = NULL;
	int64_t *steps, best = -1, latest = -1;
	char *metric = NULL, *mode = NULL;
	long n = list_steps(&steps, dir);

	if (n < 0) {
		fprintf(stderr, "nnh5 ls: cannot read folder '");
		tool_put(stderr, dir);
		fprintf(stderr, "'\n");
		return EXIT_USAGE;
	}
	snprintf(ipath, sizeof ipath, "%s/index.h5", dir);
	if (nnh5_load_state_dict(&idx, ipath) != NNH5_OK)
		idx = NULL;
	if (idx && nnh5_file_open(&f, ipath, NNH5_READ) == NNH5_OK) {
		if (nnh5_file_get_attr_int(&best, f, "/", "best_step") != NNH5_OK)
			best = -1;
		if (nnh5_file_get_attr_int(&latest, f, "/", "latest_step") != NNH5_OK)
			latest = -1;
		if (nnh5_file_get_attr_string(&metric, f, "/", "best_metric") != NNH5_OK)
			metric = NULL;
		if (nnh5_file_get_attr_string(&mode, f, "/", "best_mode") != NNH5_OK)
			mode = NULL;
		nnh5_file_discard(f);
	}
	tool_put(stdout, dir);
	printf(": checkpoint folder, %ld checkpoint%s", n, n == 1 ? "" : "s");
	if (metric && best >= 0) {
		printf(", best step %lld by ", (long long)best);
		tool_put(stdout, metric);
		printf(" (%s)", mode ? mode : "?");
	}
	if (!idx)
		printf(" (no readable index.h5: metrics unknown)");
	putchar('\n');
	/* header: step, epoch, then every metrics.* column of the index */
	printf("  %12s  %6s", "step", "epoch");
	for (size_t k = 0; idx && k < nnh5_dict_len(idx); k++)
		if (strncmp(nnh5_dict_key(idx, k), "metrics.", 8) == 0) {
			putchar(' ');
			printf(" %12.12s", nnh5_dict_key(idx, k) + 8);
		}
	printf("  file\n");
	for (long i = n - 1; i >= 0; i--) {
		long row = index_row(idx, steps[i]);
		const nnh5_tensor *ep = idx ? nnh5_dict_get(idx, "epochs") : NULL;
		char name[64];
		printf("  %12lld", (long long)steps[i]);
		if (row >= 0 && ep && nnh5_tensor_dtype(ep) == NNH5_INT64)
			printf("  %6lld", (long long)((const int64_t *)nnh5_tensor_data(ep))[row]);
		else
			printf("  %6s", "-");
		for (size_t k = 0; idx && k < nnh5_dict_len(idx); k++) {
			const nnh5_tensor *col = nnh5_dict_value(idx, k);
			if (strncmp(nnh5_dict_key(idx, k), "metrics.", 8) != 0)
				continue;
			if (row >= 0 && (size_t)row < nnh5_tensor_numel(col) &&
			    !isnan(nnh5_tensor_get(col, (size_t)row)))
				printf("  %12.6g", nnh5_tensor_get(col, (size_t)row));
			else
				printf("  %12s", "-");
		}
		snprintf(name, sizeof name, "ckpt-%012lld.h5", (long long)steps[i]);
		printf("  %s%s%s%s\n", name, row < 0 ? "  (not in the index)" : "",
		       steps[i] == best ? "  best" : "", steps[i] == latest ? "  latest" : "");
	}
	free(steps);
	nnh5_free(metric);
	nnh5_free(mode);
	nnh5_dict_free(idx);
	return 0;
}

int tool_verify_folder(const char *dir)
{
	int64_t *steps, resume = -1;
	long n = list_steps(&steps, dir);
	int failed = 0;

	if (n < 0) {
		fprintf(stderr, "nnh5 verify: cannot read folder '");
		tool_put(stderr, dir);
		fprintf(stderr, "'\n");
		return EXIT_USAGE;
	}
	for (long i = 0; i < n; i++) {
		char path[4200];
		nnh5_checkpoint *c = NULL;
		ckpt_path(path, sizeof path, dir, steps[i]);
		int rc = nnh5_checkpoint_load(&c, path);
		printf("%-4s  checkpoint step %lld", rc == NNH5_OK ? "ok" : "FAIL", (long long)steps[i]);
		if (rc == NNH5_OK) {
			size_t tensors = 0;
			for (size_t s = 0; s < nnh5_checkpoint_num_states(c); s++)
				tensors += nnh5_dict_len(
					nnh5_checkpoint_state(c, nnh5_checkpoint_state_name(c, s)));
			printf(": %zu tensors verified", tensors);
			if (resume < 0)
				resume = steps[i];
		} else {
			failed++;
			fputs(": ", stdout);
			tool_put_message(stdout, nnh5_error_message());
		}
		putchar('\n');
		nnh5_checkpoint_free(c);
	}
	if (resume >= 0)
		printf("resume from: step %lld\n", (long long)resume);
	else if (n == 0)
		printf("resume from: nothing (no checkpoint in the folder)\n");
	else
		printf("resume from: nothing (no checkpoint loads)\n");
	/* No checkpoint to resume from fails, as the exit status says. */
	if (n == 0)
		printf("FAILED: no checkpoint to resume from\n");
	else
		printf("%s: %d of %ld checkpoint%s failed\n", failed || resume < 0 ? "FAILED" : "OK",
		       failed, n, n == 1 ? "" : "s");
	free(steps);
	return failed || resume < 0 ? EXIT_DIFFERS : 0;
}
