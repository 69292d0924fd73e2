/*
 * lib/checkpoint/worker.c - asynchronous saves. The caller's thread copies
 * the tensors into one staging buffer (reused, grown only when a checkpoint
 * is bigger) and hands the staged copy to the background thread
 * (background.c), which does exactly what a synchronous save does. While a
 * save is in flight the caller's thread touches neither the staging buffer
 * nor the entries: every call first waits for it (or, for a save under
 * NNH5_BUSY_SKIP, returns NNH5_ERR_BUSY).
 */
#include "checkpoint/checkpoint_internal.h"
#include "checkpoint/manager_internal.h"

static int run_save(void *owner, void *job)
{
	return nnh5__ckpt_save_now(owner, job);
}

static void release_save(void *job)
{
	nnh5_checkpoint_free(job);
}

static void peek_step(const void *job, void *arg)
{
	*(int64_t *)arg = nnh5_checkpoint_step(job);
}

int nnh5__ckpt_wait_idle(nnh5_checkpoint_manager *m)
{
	int rc = nnh5__background_wait(&m->bg);

	return rc ? nnh5__error(rc, "background save failed: %s", m->bg.msg) : NNH5_OK;
}

int nnh5__ckpt_save_async(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	nnh5_checkpoint *staged;
	int64_t busy_step = 0;
	size_t need;
	int rc;

	if (m->opt.busy == NNH5_BUSY_SKIP && nnh5__background_peek(&m->bg, peek_step, &busy_step))
		return nnh5__error(NNH5_ERR_BUSY,
				   "checkpoint step %lld skipped: step %lld is still being saved",
				   (long long)nnh5_checkpoint_step(c), (long long)busy_step);
	rc = nnh5__ckpt_wait_idle(m);
	if (rc)
		return rc;
	/* The thread is idle: the staging buffer is ours until the job is handed over. */
	rc = nnh5__checkpoint_bytes(&need, c);
	if (rc)
		return rc;
	if (need > m->arena_size) {
		nnh5__free(m->arena);
		m->arena_size = 0;
		m->arena = nnh5__malloc(need);
		if (!m->arena)
			return nnh5__nomem();
		m->arena_size = need;
	}
	rc = nnh5__checkpoint_stage(&staged, c, m->arena, m->arena_size);
	if (rc)
		return rc;
	nnh5__background_submit(&m->bg, staged);
	return NNH5_OK;
}

int nnh5__ckpt_start_worker(nnh5_checkpoint_manager *m)
{
	return nnh5__background_start(&m->bg, run_save, release_save, m, m->dir);
}

void nnh5__ckpt_stop_worker(nnh5_checkpoint_manager *m)
{
	nnh5__background_stop(&m->bg);
}

void nnh5__checkpoint_manager_hold(nnh5_checkpoint_manager *m, bool hold)
{
	nnh5__background_hold(&m->bg, hold);
}
