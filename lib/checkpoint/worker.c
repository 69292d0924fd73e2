/*
 * lib/checkpoint/worker.c - asynchronous saves. The caller's thread copies
 * the tensors into one staging buffer (reused, grown only when a checkpoint
 * is bigger) and hands the staged copy to a worker thread, which does
 * exactly what a synchronous save does. While a save is in flight the
 * caller's thread touches neither the staging buffer nor the entries: every
 * call first waits for the worker (or, for a save under NNH5_BUSY_SKIP,
 * returns NNH5_ERR_BUSY).
 */
#include "checkpoint/checkpoint_internal.h"
#include "checkpoint/manager_internal.h"

#include <stdio.h>
#include <string.h>

static void *worker_main(void *arg)
{
	nnh5_checkpoint_manager *m = arg;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		while ((!m->job || m->hold) && !m->stop)
			pthread_cond_wait(&m->cv, &m->mu);
		if (!m->job)
			break;
		nnh5_checkpoint *job = m->job;
		pthread_mutex_unlock(&m->mu);
		int rc = nnh5__ckpt_save_now(m, job);
		char msg[sizeof m->bg_msg];
		msg[0] = '\0';
		if (rc)
			snprintf(msg, sizeof msg, "%s", nnh5_error_message());
		pthread_mutex_lock(&m->mu);
		nnh5_checkpoint_free(job);
		m->job = NULL;
		if (rc) {
			m->bg_rc = rc;
			memcpy(m->bg_msg, msg, sizeof msg);
		}
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* Wait (mu held) until the worker is idle; report once a failure it had. */
static int idle_locked(nnh5_checkpoint_manager *m)
{
	int rc;

	while (m->job)
		pthread_cond_wait(&m->cv, &m->mu);
	rc = m->bg_rc;
	if (rc) {
		m->bg_rc = NNH5_OK;
		nnh5__error(rc, "background save failed: %s", m->bg_msg);
	}
	return rc;
}

int nnh5__ckpt_wait_idle(nnh5_checkpoint_manager *m)
{
	int rc;

	if (!m->worker_started)
		return NNH5_OK;
	pthread_mutex_lock(&m->mu);
	rc = idle_locked(m);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int nnh5__ckpt_save_async(nnh5_checkpoint_manager *m, const nnh5_checkpoint *c)
{
	nnh5_checkpoint *staged;
	size_t need;
	int rc;

	pthread_mutex_lock(&m->mu);
	if (m->job && m->opt.busy == NNH5_BUSY_SKIP) {
		long long busy_step = (long long)nnh5_checkpoint_step(m->job);
		pthread_mutex_unlock(&m->mu);
		return nnh5__error(NNH5_ERR_BUSY,
				   "checkpoint step %lld skipped: step %lld is still being saved",
				   (long long)nnh5_checkpoint_step(c), busy_step);
	}
	rc = idle_locked(m);
	pthread_mutex_unlock(&m->mu);
	if (rc)
		return rc;
	/* The worker is idle: the staging buffer is ours until the job is handed over. */
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
	pthread_mutex_lock(&m->mu);
	m->job = staged;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return NNH5_OK;
}

int nnh5__ckpt_thread_start(pthread_t *t, pthread_mutex_t *mu, pthread_cond_t *cv,
			    void *(*fn)(void *), void *arg, const char *dir)
{
	if (pthread_mutex_init(mu, NULL) != 0)
		return nnh5__error(NNH5_ERR_NOMEM, "checkpoint folder '%s': cannot create a mutex",
				   dir);
	if (pthread_cond_init(cv, NULL) != 0) {
		pthread_mutex_destroy(mu);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot create a condition variable", dir);
	}
	if (pthread_create(t, NULL, fn, arg) != 0) {
		pthread_cond_destroy(cv);
		pthread_mutex_destroy(mu);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot start the saving thread", dir);
	}
	return NNH5_OK;
}

void nnh5__ckpt_thread_stop(pthread_t t, pthread_mutex_t *mu, pthread_cond_t *cv, bool *stop)
{
	pthread_mutex_lock(mu);
	*stop = true;
	pthread_cond_broadcast(cv);
	pthread_mutex_unlock(mu);
	pthread_join(t, NULL);
	pthread_cond_destroy(cv);
	pthread_mutex_destroy(mu);
}

int nnh5__ckpt_start_worker(nnh5_checkpoint_manager *m)
{
	int rc = nnh5__ckpt_thread_start(&m->worker, &m->mu, &m->cv, worker_main, m, m->dir);

	m->worker_started = rc == NNH5_OK;
	return rc;
}

void nnh5__ckpt_stop_worker(nnh5_checkpoint_manager *m)
{
	if (!m->worker_started)
		return;
	nnh5__ckpt_thread_stop(m->worker, &m->mu, &m->cv, &m->stop);
	m->worker_started = false;
}

void nnh5__checkpoint_manager_hold(nnh5_checkpoint_manager *m, bool hold)
{
	if (!m->worker_started)
		return;
	pthread_mutex_lock(&m->mu);
	m->hold = hold;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

