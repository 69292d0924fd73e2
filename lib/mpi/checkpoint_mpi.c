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

struct nnh5_mpi_checkpoints {
	MPI_Comm comm;
	int rank;
	char *dir;
	bool durable;
	nnh5_checkpoint_manager *serial; /* rank 0 only */
};

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
	if (MPI_Comm_dup(comm, &m->comm) != MPI_SUCCESS) {
		nnh5__free(m);
		return nnh5__error(NNH5_ERR_INVALID, "MPI_Comm_dup failed");
	}
	MPI_Comm_rank(m->comm, &m->rank);
	m->durable = opts->durable;
	if (opts->async)
		rc = nnh5__error(NNH5_ERR_INVALID,
				 "checkpoint folder '%s': collective saves are synchronous (async "
				 "is not supported with MPI)",
				 dir ? dir : "(null)");
	if (!rc && !(m->dir = nnh5__strdup(dir ? dir : "")))
		rc = nnh5__nomem();
	if (!rc && m->rank == 0)
		rc = nnh5_checkpoint_manager_open(&m->serial, dir, opts);
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
	rc = nnh5_checkpoint_manager_close(m->serial);
	if (m->comm != MPI_COMM_NULL) {
		rc = nnh5__mpi_agree(m->comm, rc);
		MPI_Comm_free(&m->comm);
	}
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

	/* The root's attributes and metrics as the serial writer writes them (no sections yet). */
	if (!rc)
		rc = nnh5__checkpoint_write(nnh5__mpi_file_handle(f), summary);
	rc = nnh5__mpi_agree(comm, rc);
	for (size_t i = 0; !rc && i < nsec; i++) {
		names[i] = secs[i].name;
		rc = nnh5_mpi_write_state_dict(f, secs[i].name, secs[i].local, secs[i].shardings);
	}
	if (!rc)
		rc = nnh5__mpi_agree(comm, nnh5__file_set_attr_strings(nnh5__mpi_file_handle(f), "/",
								       "nnh5_sections", names, nsec));
	nnh5__free(names);
	return rc;
}

int nnh5_mpi_checkpoints_save(nnh5_mpi_checkpoints *m, const nnh5_checkpoint *summary,
			      size_t nsections, const nnh5_mpi_section *sections)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_mpi_file *f = NULL;
	char *path = NULL;
	int rc = NNH5_OK;

	if (nnh5_checkpoint_num_states(summary) != 0)
		rc = nnh5__error(NNH5_ERR_INVALID,
				 "checkpoint step %lld: the summary holds sections; collective "
				 "saves take them as nnh5_mpi_section",
				 (long long)nnh5_checkpoint_step(summary));
	for (size_t i = 0; !rc && i < nsections; i++)
		if (!sections[i].name || !*sections[i].name || !sections[i].local ||
		    (nnh5_dict_len(sections[i].local) && !sections[i].shardings))
			rc = nnh5__error(NNH5_ERR_INVALID,
					 "checkpoint step %lld: section %zu has no name, state "
					 "dict or shardings",
					 (long long)nnh5_checkpoint_step(summary), i);
	if (!rc)
		rc = step_path(&path, m, nnh5_checkpoint_step(summary));
	rc = nnh5__mpi_agree(m->comm, rc);
	o.durable = m->durable;
	if (!rc)
		rc = nnh5_mpi_file_create(&f, m->comm, path, &o);
	if (!rc) {
		rc = write_sections(f, summary, nsections, sections, m->comm);
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
	return nnh5__mpi_agree(m->comm, rc);
}

int nnh5_mpi_checkpoints_latest(int64_t *step, nnh5_mpi_checkpoints *m)
{
	int64_t found = -1;
	int rc = NNH5_OK;

	*step = -1;
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
