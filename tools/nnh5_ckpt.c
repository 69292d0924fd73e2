/*
 * nnh5_ckpt.c - `nnh5 ls DIR` and `nnh5 verify DIR` for a checkpoint folder
 * (doc/FORMAT.md, "A checkpoint folder").
 *
 * Both only read: they do not take the folder's lock or remove leftovers
 * (that is the manager's job), so they are safe to run beside a training
 * process. ls lists the checkpoint files present (the truth) with the
 * epochs and metrics the index recorded for them; verify loads every
 * checkpoint, checksums included, newest first, and names the one
 * nnh5_checkpoint_manager_latest() would resume from. The file names and
 * the index's columns are the library's (nnh5_checkpoint_folder_steps(),
 * nnh5_checkpoint_file_name(), NNH5_CHECKPOINT_INDEX_*).
 *
 * Beside a running trainer, retention may remove a file between the listing
 * and its load: such a file is reported as removed, not as damaged, and
 * verify reads the folder again until it has seen a checkpoint that loads
 * or the folder holds none (a bounded number of rounds).
 */
#include "nnh5_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nnh5.h>

bool tool_is_folder(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The checkpoint file of step in dir, into buf. */
static void ckpt_path(char *buf, size_t n, const char *dir, int64_t step)
{
	char name[64];

	if (nnh5_checkpoint_file_name(name, sizeof name, step) != NNH5_OK)
		snprintf(name, sizeof name, "?");
	snprintf(buf, n, "%s/%s", dir, name);
}

/* The index's row for step, or -1. */
static long index_row(const nnh5_dict *idx, int64_t step)
{
	const nnh5_tensor *steps = idx ? nnh5_dict_get(idx, NNH5_CHECKPOINT_INDEX_STEPS) : NULL;

	if (!steps || nnh5_tensor_dtype(steps) != NNH5_INT64)
		return -1;
	for (size_t i = 0; i < nnh5_tensor_numel(steps); i++)
		if (((const int64_t *)nnh5_tensor_data(steps))[i] == step)
			return (long)i;
	return -1;
}

/* Readings of a folder that lists no checkpoint before it counts as empty. */
#define EMPTY_ROUNDS 5

/* Steps of the checkpoint files in dir, ascending; prints why on failure. */
static int folder_steps(int64_t **steps, size_t *n, const char *dir, const char *cmd)
{
	/*
	 * A listing made while a trainer renames new checkpoints in and removes
	 * old ones may miss them all (readdir is not atomic against renames):
	 * an empty listing is read again a few times, a short while apart,
	 * before the folder counts as empty.
	 */
	for (int round = 0; nnh5_checkpoint_folder_steps(steps, n, dir) == NNH5_OK; round++) {
		if (*n > 0 || round == EMPTY_ROUNDS)
			return 0;
		nnh5_free(*steps);
		*steps = NULL;
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	fprintf(stderr, "nnh5 %s: ", cmd);
	tool_put(stderr, nnh5_error_message());
	fputc('\n', stderr);
	return EXIT_USAGE;
}

int tool_ls_folder(const char *dir)
{
	char ipath[4200];
	nnh5_dict *idx = NULL;
	nnh5_file *f = NULL;
	int64_t *steps, best = -1, latest = -1;
	char *metric = NULL, *mode = NULL;
	size_t n;
	int rc = folder_steps(&steps, &n, dir, "ls");

	if (rc)
		return rc;
	snprintf(ipath, sizeof ipath, "%s/%s", dir, NNH5_CHECKPOINT_INDEX_FILE);
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
	printf(": checkpoint folder, %zu checkpoint%s", n, n == 1 ? "" : "s");
	if (metric && best >= 0) {
		printf(", best step %lld by ", (long long)best);
		tool_put(stdout, metric);
		printf(" (%s)", mode ? mode : "?");
	}
	if (!idx)
		printf(" (no readable %s: metrics unknown)", NNH5_CHECKPOINT_INDEX_FILE);
	putchar('\n');
	/* header: step, epoch, then every metric column of the index */
	printf("  %12s  %6s", "step", "epoch");
	for (size_t k = 0; idx && k < nnh5_dict_len(idx); k++) {
		const char *name = nnh5_checkpoint_index_metric(nnh5_dict_key(idx, k));
		if (name)
			printf("  %12.12s", name);
	}
	printf("  file\n");
	for (size_t i = 0; i < n; i++) {
		long row = index_row(idx, steps[i]);
		const nnh5_tensor *ep = idx ? nnh5_dict_get(idx, NNH5_CHECKPOINT_INDEX_EPOCHS) : NULL;
		char name[64];
		printf("  %12lld", (long long)steps[i]);
		if (row >= 0 && ep && nnh5_tensor_dtype(ep) == NNH5_INT64 &&
		    (size_t)row < nnh5_tensor_numel(ep))
			printf("  %6lld", (long long)((const int64_t *)nnh5_tensor_data(ep))[row]);
		else
			printf("  %6s", "-");
		for (size_t k = 0; idx && k < nnh5_dict_len(idx); k++) {
			const nnh5_tensor *col = nnh5_dict_value(idx, k);
			if (!nnh5_checkpoint_index_metric(nnh5_dict_key(idx, k)))
				continue;
			if (row >= 0 && (size_t)row < nnh5_tensor_numel(col) &&
			    !isnan(nnh5_tensor_get(col, (size_t)row)))
				printf("  %12.6g", nnh5_tensor_get(col, (size_t)row));
			else
				printf("  %12s", "-");
		}
		if (nnh5_checkpoint_file_name(name, sizeof name, steps[i]) != NNH5_OK)
			snprintf(name, sizeof name, "?");
		printf("  %s%s%s%s\n", name, row < 0 ? "  (not in the index)" : "",
		       steps[i] == best ? "  best" : "", steps[i] == latest ? "  latest" : "");
	}
	nnh5_free(steps);
	nnh5_free(metric);
	nnh5_free(mode);
	nnh5_dict_free(idx);
	return 0;
}

/* Rounds of reading the folder again when retention removed what verify was reading. */
#define VERIFY_ROUNDS 100

/* Was step's file removed (by retention beside us) since it was listed? */
static bool removed_since(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 && errno == ENOENT;
}

/* Verify one checkpoint; 1 loaded, 0 damaged, -1 removed meanwhile. */
static int verify_one(const char *dir, int64_t step)
{
	char path[4200];
	nnh5_checkpoint *c = NULL;
	int rc;

	ckpt_path(path, sizeof path, dir, step);
	rc = nnh5_checkpoint_load(&c, path);
	if (rc != NNH5_OK && removed_since(path)) {
		printf("gone  checkpoint step %lld: removed by retention while verifying\n",
		       (long long)step);
		return -1;
	}
	printf("%-4s  checkpoint step %lld", rc == NNH5_OK ? "ok" : "FAIL", (long long)step);
	if (rc == NNH5_OK) {
		size_t tensors = 0;
		for (size_t s = 0; s < nnh5_checkpoint_num_states(c); s++)
			tensors += nnh5_dict_len(
				nnh5_checkpoint_state(c, nnh5_checkpoint_state_name(c, s)));
		printf(": %zu tensors verified", tensors);
	} else {
		fputs(": ", stdout);
		tool_put_message(stdout, nnh5_error_message());
	}
	putchar('\n');
	nnh5_checkpoint_free(c);
	return rc == NNH5_OK;
}

/* Is step in the sorted array v? */
static bool seen_step(const int64_t *v, size_t n, int64_t step)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == step)
			return true;
	return false;
}

int tool_verify_folder(const char *dir)
{
	int64_t *steps = NULL, *done = NULL, resume = -1;
	size_t n = 0, ndone = 0, checked = 0, failed = 0, gone = 0;
	int rc = folder_steps(&steps, &n, dir, "verify");

	if (rc)
		return rc;
	for (int round = 0; round < VERIFY_ROUNDS; round++) {
		bool lost = false;
		int64_t *nd = realloc(done, (ndone + n + 1) * sizeof *nd);
		if (!nd) {
			fprintf(stderr, "nnh5 verify: out of memory\n");
			rc = EXIT_USAGE;
			break;
		}
		done = nd;
		for (size_t i = n; i-- > 0;) { /* newest first */
			if (seen_step(done, ndone, steps[i]))
				continue;
			done[ndone++] = steps[i];
			int r = verify_one(dir, steps[i]);
			if (r < 0) {
				gone++;
				lost = true;
				continue;
			}
			checked++;
			if (r == 0)
				failed++;
			else if (resume < 0)
				resume = steps[i];
		}
		/* Retention removed what we were reading: newer checkpoints exist; look again. */
		if (resume >= 0 || !lost)
			break;
		nnh5_free(steps);
		steps = NULL;
		rc = folder_steps(&steps, &n, dir, "verify");
		if (rc)
			break;
	}
	nnh5_free(steps);
	free(done);
	if (rc)
		return rc;
	if (resume >= 0)
		printf("resume from: step %lld\n", (long long)resume);
	else if (n == 0)
		printf("resume from: nothing (no checkpoint in the folder)\n");
	else
		printf("resume from: nothing (no checkpoint loads)\n");
	/* No checkpoint to resume from fails, as the exit status says. */
	if (checked == 0 && gone == 0) {
		printf("FAILED: no checkpoint to resume from\n");
	} else {
		printf("%s: %zu of %zu checkpoint%s failed", failed || resume < 0 ? "FAILED" : "OK",
		       failed, checked, checked == 1 ? "" : "s");
		if (gone)
			printf(" (%zu removed by retention while verifying)", gone);
		putchar('\n');
	}
	return failed || resume < 0 ? EXIT_DIFFERS : 0;
}
