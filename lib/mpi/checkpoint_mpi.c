/*
 * lib/mpi/checkpoint_mpi.c - a checkpoint folder shared by the ranks of a
 * communicator (nnh5/mpi.h, doc/MPI.md "Checkpoints").
 *
 * Rank 0 owns the folder through the serial manager (lib/checkpoint): its
 * lock, the removal of temporary files left by interrupted saves, the
 * retention policy and the index. Every rank writes its shards into one
 * file per step, ckpt-<step>.h5, in the serial checkpoint's layout (root
 * attributes step, epoch, metrics; one state dict per section), committed
 * by the collective commit of lib/mpi/file_mpi.c: nothing is renamed into
 * place unless every rank wrote its part. So serial nnh5, `nnh5 ckpt` and
 * the serial manager read these checkpoints as their own.
 */
#include "mpi/mpi_internal.h"
#include "checkpoint/checkpoint_internal.h"
#include "checkpoint/manager_internal.h"
#include "file/file_internal.h"

#include <stdio.h>
#include <string.h>

/* A save staged for the background thread: copies of everything it reads. */
struct job {
	nnh5_checkpoint *summary;
	size_t nsec;
	nnh5_mpi_section *secs;
	nnh5_dict **dicts;
	nnh5_mpi_sharding *shardings;
	int64_t *bounds; /* the uneven bounds the shardings point into */
	char **names;
};

struct nnh5_mpi_checkpoints {
	MPI_Comm comm;
	int rank;
	char *dir;
	bool durable;
	nnh5_checkpoint_manager *serial; /* rank 0 only */
	/*
	 * Async: one thread per rank writes staged saves over its own
	 * communicator (bg_comm, a duplicate) and makes every HDF5 call while a
	 * save is in flight; the caller's thread makes none until it waited.
	 */
	bool async;
	nnh5_busy_policy busy;
	MPI_Comm bg_comm;
	nnh5__background bg; /* jobs are struct job; a failure is agreed by the save itself */
	unsigned char *arena; /* staging buffer: reused, grown only for a bigger save */
	size_t arena_size;
};

static int save_now(nnh5_mpi_checkpoints *m, MPI_Comm comm, const nnh5_checkpoint *summary,
		    size_t nsections, const nnh5_mpi_section *sections);
static int start_worker(nnh5_mpi_checkpoints *m);

int nnh5_mpi_checkpoints_open(nnh5_mpi_checkpoints **out, MPI_Comm comm, const char *dir,
			      const nnh5_checkpoint_options *opts)
{
	nnh5_checkpoint_options defaults = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_mpi_checkpoints *m;
	int rc = NNH5_OK;

	*out = NULL;
	if (!opts)
		opts = &defaults;
	m = nnh5__calloc(1, sizeof *m);
	if (!m)
		return nnh5__nomem();
	m->comm = MPI_COMM_NULL;
	m->bg_comm = MPI_COMM_NULL;
	if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS) {
		nnh5__free(m);
		return nnh5__error(NNH5_ERR_INVALID, "MPI_Comm_dup failed");
	}
	MPI_Comm_rank(m->comm, &m->rank);
	m->durable = opts->durable;
	m->async = opts->async;
	m->busy = opts->busy;
	if (opts->version == NNH5_CHECKPOINT_OPTIONS_VERSION &&
	    opts->compression != NNH5_COMPRESSION_NONE)
		rc = nnh5__error(NNH5_ERR_INVALID,
				 "checkpoint folder '%s': compression '%s' is not available for "
				 "collective saves (they store contiguous datasets)",
				 dir ? dir : "(null)", nnh5_compression_name(opts->compression));
	else if (m->async) {
		int provided = MPI_THREAD_SINGLE;
		MPI_Query_thread(&provided);
		if (provided < MPI_THREAD_MULTIPLE)
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "checkpoint folder '%s': async collective saves need MPI "
					 "initialized with MPI_Init_thread(MPI_THREAD_MULTIPLE) (the "
					 "background thread makes collective MPI calls); MPI provides "
					 "level %d",
					 dir ? dir : "(null)", provided);
		else if (m->busy != NNH5_BUSY_WAIT && m->busy != NNH5_BUSY_SKIP)
			rc = nnh5__error(NNH5_ERR_INVALID, "checkpoint folder '%s': unknown busy policy %d",
					 dir ? dir : "(null)", (int)m->busy);
		else if (MPI_Comm_dup(m->comm, &m->bg_comm) != MPI_SUCCESS)
			rc = nnh5__error(NNH5_ERR_INVALID, "MPI_Comm_dup failed");
	}
	if (!rc && !(m->dir = nnh5__strdup(dir ? dir : "")))
		rc = nnh5__nomem();
	if (!rc && m->rank == 0) {
		/* Rank 0's serial manager only keeps the folder; the writing thread is ours. */
		nnh5_checkpoint_options so = *opts;
		so.async = false;
		rc = nnh5_checkpoint_manager_open(&m->serial, dir, &so);
	}
	if (!rc && m->async)
		rc = start_worker(m);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc) {
		nnh5_mpi_checkpoints_close(m);
		return rc;
	}
	*out = m;
	return NNH5_OK;
}

int nnh5_mpi_checkpoints_close(nnh5_mpi_checkpoints *m)
{
	int rc;

	if (!m)
		return NNH5_OK;
	/* A background save finishes first; its unreported failure is the close's. */
	int bg = nnh5__background_wait(&m->bg);
	nnh5__background_stop(&m->bg);
	rc = nnh5_checkpoint_manager_close(m->serial);
	if (m->comm != MPI_COMM_NULL) {
		rc = nnh5__mpi_agree(m->comm, rc);
		MPI_Comm_free(&m->comm);
	}
	if (m->bg_comm != MPI_COMM_NULL)
		MPI_Comm_free(&m->bg_comm);
	if (bg)
		rc = nnh5__error(bg, "%s", m->bg.msg);
	nnh5__free(m->arena);
	nnh5__free(m->dir);
	nnh5__free(m);
	return rc;
}

/* dir/ckpt-<step>.h5 (caller frees). */
static int step_path(char **out, const nnh5_mpi_checkpoints *m, int64_t step)
{
	return nnh5__ckpt_step_path(out, m->dir, step);
}

static int write_sections(nnh5_mpi_file *f, const nnh5_checkpoint *summary, size_t nsec,
			  const nnh5_mpi_section *secs, MPI_Comm comm)
{
	const char **names = nnh5__calloc(nsec ? nsec : 1, sizeof *names);
	int rc = names ? NNH5_OK : nnh5__nomem();

	/*
	 * The sections first, on the direct path ("Direct metadata" in
	 * doc/MPI.md); then the root's attributes and metrics as the serial
	 * writer writes them, through lib/file, which switches the file to the
	 * API path once, after the tensors.
	 */
	rc = nnh5__mpi_agree(comm, rc);
	for (size_t i = 0; !rc && i < nsec; i++) {
		names[i] = secs[i].name;
		rc = nnh5_mpi_write_state_dict(f, secs[i].name, secs[i].local, secs[i].shardings);
	}
	if (!rc)
		rc = nnh5__mpi_agree(comm, nnh5__checkpoint_write(nnh5__mpi_file_handle(f), summary));
	if (!rc)
		rc = nnh5__mpi_agree(comm, nnh5__file_set_attr_strings(nnh5__mpi_file_handle(f), "/",
								       "nnh5_sections", names, nsec));
	nnh5__free(names);
	return rc;
}

/* The local checks of a save's arguments. */
static int check_save(const nnh5_checkpoint *summary, size_t nsections,
		      const nnh5_mpi_section *sections)
{
	if (!summary)
		return nnh5__error(NNH5_ERR_INVALID, "checkpoint: no summary");
	if (nnh5_checkpoint_num_states(summary) != 0)
		return nnh5__error(NNH5_ERR_INVALID,
				   "checkpoint step %lld: the summary holds sections; collective "
				   "saves take them as nnh5_mpi_section",
				   (long long)nnh5_checkpoint_step(summary));
	for (size_t i = 0; i < nsections; i++)
		if (!sections[i].name || !*sections[i].name || !sections[i].local ||
		    (nnh5_dict_len(sections[i].local) && !sections[i].shardings))
			return nnh5__error(NNH5_ERR_INVALID,
					   "checkpoint step %lld: section %zu has no name, state "
					   "dict or shardings",
					   (long long)nnh5_checkpoint_step(summary), i);
	return NNH5_OK;
}

/* A collective save over comm, as nnh5_mpi_checkpoints_save() promises it. */
static int save_now(nnh5_mpi_checkpoints *m, MPI_Comm comm, const nnh5_checkpoint *summary,
		    size_t nsections, const nnh5_mpi_section *sections)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_mpi_file *f = NULL;
	char *path = NULL;
	int rc = NNH5_OK;

	rc = check_save(summary, nsections, sections);
	if (!rc)
		rc = step_path(&path, m, nnh5_checkpoint_step(summary));
	rc = nnh5__mpi_agree(comm, rc);
	o.durable = m->durable;
	if (!rc)
		rc = nnh5_mpi_file_create(&f, comm, path, &o);
	if (!rc) {
		rc = write_sections(f, summary, nsections, sections, comm);
		if (rc)
			nnh5_mpi_file_discard(f);
		else
			rc = nnh5_mpi_file_close(f);
	}
	nnh5__free(path);
	if (rc)
		return rc;
	/* Committed on every rank's word: rank 0 records it, applies retention, writes the index. */
	if (m->rank == 0) {
		nnh5_checkpoint *s = NULL;
		rc = nnh5__checkpoint_summary(&s, summary);
		if (!rc)
			rc = nnh5__ckpt_committed(m->serial, s);
	}
	return nnh5__mpi_agree(comm, rc);
}

/* ------------------------------------------------------------------ */
/* Asynchronous saves                                                  */

static void job_free(void *job)
{
	struct job *j = job;

	if (!j)
		return;
	nnh5_checkpoint_free(j->summary);
	for (size_t i = 0; i < j->nsec; i++) {
		nnh5_dict_free(j->dicts ? j->dicts[i] : NULL);
		nnh5__free(j->names ? j->names[i] : NULL);
	}
	nnh5__free(j->secs);
	nnh5__free(j->dicts);
	nnh5__free(j->names);
	nnh5__free(j->shardings);
	nnh5__free(j->bounds);
	nnh5__free(j);
}

/* Staged tensors start on 64-byte boundaries in the staging buffer. */
#define STAGE_ALIGN ((size_t)64)

/*
 * Copy everything a save reads (the summary, every shard into the staging
 * buffer, the shardings and their bounds) so that the caller may change or
 * free its tensors as soon as nnh5_mpi_checkpoints_save() returns. The
 * background thread is idle: the buffer is free to grow and fill.
 */
static int stage(struct job **out, nnh5_mpi_checkpoints *m, const nnh5_checkpoint *summary,
		 size_t nsec, const nnh5_mpi_section *secs)
{
	struct job *j = nnh5__calloc(1, sizeof *j);
	size_t nkeys = 0, nbounds = 0, k = 0, b = 0, need = 0, off = 0;
	int rc = j ? NNH5_OK : nnh5__nomem();

	*out = NULL;
	for (size_t i = 0; !rc && i < nsec; i++)
		for (size_t t = 0; t < nnh5_dict_len(secs[i].local); t++) {
			const nnh5_mpi_sharding *s = &secs[i].shardings[t];
			const nnh5_tensor *v = nnh5_dict_value(secs[i].local, t);
			size_t n = v ? nnh5_tensor_nbytes(v) : 0;
			nkeys++;
			if (n > SIZE_MAX - need - STAGE_ALIGN)
				rc = nnh5__error(NNH5_ERR_OVERFLOW,
						 "checkpoint: section '%s' is too large to stage",
						 secs[i].name);
			need += (n + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
			for (size_t d = 0; d < s->ndim && d < NNH5_MAX_NDIM; d++)
				if (s->bounds[d])
					nbounds += (size_t)s->parts[d] + 1;
		}
	if (!rc && need > m->arena_size) {
		nnh5__free(m->arena);
		m->arena_size = 0;
		if (!(m->arena = nnh5__malloc(need)))
			rc = nnh5__nomem();
		else
			m->arena_size = need;
	}
	if (!rc) {
		j->nsec = nsec;
		j->secs = nnh5__calloc(nsec ? nsec : 1, sizeof *j->secs);
		j->dicts = nnh5__calloc(nsec ? nsec : 1, sizeof *j->dicts);
		j->names = nnh5__calloc(nsec ? nsec : 1, sizeof *j->names);
		j->shardings = nnh5__calloc(nkeys ? nkeys : 1, sizeof *j->shardings);
		j->bounds = nnh5__calloc(nbounds ? nbounds : 1, sizeof *j->bounds);
		if (!j->secs || !j->dicts || !j->names || !j->shardings || !j->bounds)
			rc = nnh5__nomem();
	}
	if (!rc)
		rc = nnh5__checkpoint_summary(&j->summary, summary);
	for (size_t i = 0; !rc && i < nsec; i++) {
		size_t n = nnh5_dict_len(secs[i].local);
		if (!(j->names[i] = nnh5__strdup(secs[i].name)))
			rc = nnh5__nomem();
		if (!rc)
			rc = nnh5_dict_new(&j->dicts[i]);
		j->secs[i].name = j->names[i];
		j->secs[i].local = j->dicts[i];
		j->secs[i].shardings = &j->shardings[k];
		for (size_t t = 0; !rc && t < n; t++, k++) {
			nnh5_tensor *c = NULL;
			const nnh5_tensor *v = nnh5_dict_value(secs[i].local, t);
			size_t nb = v ? nnh5_tensor_nbytes(v) : 0;
			if (!v)
				rc = nnh5__error(NNH5_ERR_INVALID,
						 "checkpoint: section '%s': key %zu has no tensor",
						 secs[i].name, t);
			if (!rc && nb)
				memcpy(m->arena + off, nnh5_tensor_data(v), nb);
			if (!rc)
				rc = nnh5_tensor_view(&c, nnh5_tensor_dtype(v), nnh5_tensor_ndim(v),
						      nnh5_tensor_shape(v), m->arena + off, nb);
			off += (nb + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
			if (!rc && (rc = nnh5_dict_set(j->dicts[i], nnh5_dict_key(secs[i].local, t), c)))
				nnh5_tensor_free(c);
			j->shardings[k] = secs[i].shardings[t];
			for (size_t d = 0; !rc && d < j->shardings[k].ndim && d < NNH5_MAX_NDIM; d++) {
				if (!j->shardings[k].bounds[d])
					continue;
				size_t nbd = (size_t)j->shardings[k].parts[d] + 1;
				memcpy(&j->bounds[b], j->shardings[k].bounds[d], nbd * sizeof *j->bounds);
				j->shardings[k].bounds[d] = &j->bounds[b];
				b += nbd;
			}
		}
	}
	if (rc) {
		job_free(j);
		return rc;
	}
	*out = j;
	return NNH5_OK;
}

/*
 * The background thread's save: while it is in flight it makes every HDF5
 * call of the process and its collective MPI calls go over bg_comm, so they
 * never mix with the caller's on the manager's or the caller's own
 * communicator. The save ends in an agreement, so its outcome is the same
 * on every rank.
 */
static int run_save(void *owner, void *job)
{
	nnh5_mpi_checkpoints *m = owner;
	struct job *j = job;
	int rc = save_now(m, m->bg_comm, j->summary, j->nsec, j->secs);

	return rc ? nnh5__error_wrap(rc, "background save of step %lld failed",
				     (long long)nnh5_checkpoint_step(j->summary))
		  : NNH5_OK;
}

static int start_worker(nnh5_mpi_checkpoints *m)
{
	return nnh5__background_start(&m->bg, run_save, job_free, m, m->dir);
}

/* Wait for this rank's background save; its failure (agreed by the save) is this call's error. */
static int wait_report(nnh5_mpi_checkpoints *m)
{
	int rc = nnh5__background_wait(&m->bg);

	return rc ? nnh5__error(rc, "%s", m->bg.msg) : NNH5_OK;
}

int nnh5_mpi_checkpoints_wait(nnh5_mpi_checkpoints *m)
{
	return wait_report(m);
}

static void peek_step(const void *job, void *arg)
{
	*(uint64_t *)arg = (uint64_t)nnh5_checkpoint_step(((const struct job *)job)->summary);
}

static int save_async(nnh5_mpi_checkpoints *m, const nnh5_checkpoint *summary, size_t nsections,
		      const nnh5_mpi_section *sections)
{
	struct job *j = NULL;
	int rc = check_save(summary, nsections, sections);

	/* Skipped on every rank if a save is still in flight on any. */
	if (m->busy == NNH5_BUSY_SKIP) {
		uint64_t busy[2] = { 0, 0 };
		busy[0] = nnh5__background_peek(&m->bg, peek_step, &busy[1]);
		rc = nnh5__mpi_agree_max(m->comm, rc, busy, 2);
		if (!rc && busy[0])
			return nnh5__error(NNH5_ERR_BUSY,
					   "checkpoint step %lld skipped: step %lld is still being "
					   "saved",
					   (long long)nnh5_checkpoint_step(summary),
					   (long long)busy[1]);
		if (rc)
			return rc;
	}
	/* An earlier background failure is returned instead of starting this save. */
	int bg = wait_report(m);
	if (bg)
		return bg;
	if (!rc)
		rc = stage(&j, m, summary, nsections, sections);
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc) {
		job_free(j);
		return rc;
	}
	nnh5__background_submit(&m->bg, j);
	return NNH5_OK;
}

int nnh5_mpi_checkpoints_save(nnh5_mpi_checkpoints *m, const nnh5_checkpoint *summary,
			      size_t nsections, const nnh5_mpi_section *sections)
{
	if (m->async)
		return save_async(m, summary, nsections, sections);
	return save_now(m, m->comm, summary, nsections, sections);
}

int nnh5_mpi_checkpoints_latest(int64_t *step, nnh5_mpi_checkpoints *m)
{
	int64_t found = -1;
	int rc = NNH5_OK;

	*step = -1;
	rc = wait_report(m);
	if (rc)
		return rc; /* the same on every rank: the save agreed on it */
	if (m->rank == 0) {
		int64_t *steps = NULL;
		size_t n = 0;
		nnh5__strbuf why = { 0 };
		rc = nnh5_checkpoint_manager_steps(&steps, &n, m->serial);
		for (size_t i = n; !rc && found < 0 && i-- > 0;) {
			char *p = NULL;
			nnh5_checkpoint *s = NULL;
			rc = step_path(&p, m, steps[i]);
			if (!rc && nnh5__checkpoint_load_summary(&s, p) == NNH5_OK)
				found = steps[i];
			else if (!rc)
				nnh5__strbuf_printf(&why, "; %s", nnh5_error_message());
			nnh5_checkpoint_free(s);
			nnh5__free(p);
		}
		nnh5__free(steps);
		if (!rc && found < 0)
			rc = nnh5__error(NNH5_ERR_NOT_FOUND, "checkpoint folder '%s': no checkpoint loads%s",
					 m->dir, why.p ? why.p : "");
		nnh5__free(why.p);
	}
	rc = nnh5__mpi_agree(m->comm, rc);
	if (rc)
		return rc;
	MPI_Bcast(&found, 1, MPI_INT64_T, 0, m->comm);
	*step = found;
	return NNH5_OK;
}

int nnh5_mpi_checkpoints_load(nnh5_dict **out, nnh5_mpi_checkpoints *m, int64_t step,
			      const char *section, size_t n, const char *const *keys,
			      const nnh5_mpi_sharding *shardings)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_mpi_file *f;
	char *path = NULL;
	int rc;

	*out = NULL;
	rc = wait_report(m);
	if (rc)
		return rc;
	rc = nnh5__mpi_agree(m->comm, step_path(&path, m, step));
	o.require_checksums = true;
	if (!rc)
		rc = nnh5_mpi_file_open(&f, m->comm, path, &o);
	nnh5__free(path);
	if (rc)
		return rc;
	rc = nnh5_mpi_read_state_dict(out, f, section, n, keys, shardings);
	int crc = nnh5_mpi_file_close(f);
	if (!rc && crc) {
		nnh5_dict_free(*out);
		*out = NULL;
		rc = crc;
	}
	return rc;
}
