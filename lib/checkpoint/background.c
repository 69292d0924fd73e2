/*
 * lib/checkpoint/background.c - one background thread running one job at a
 * time (background.h).
 */
#include "checkpoint/background.h"

#include <stdio.h>
#include <string.h>

static void *thread_main(void *arg)
{
	nnh5__background *bg = arg;

	pthread_mutex_lock(&bg->mu);
	for (;;) {
		while ((!bg->job || bg->hold) && !bg->stop)
			pthread_cond_wait(&bg->cv, &bg->mu);
		if (!bg->job)
			break;
		void *job = bg->job;
		pthread_mutex_unlock(&bg->mu);
		int rc = bg->run(bg->owner, job);
		char msg[sizeof bg->msg];
		msg[0] = '\0';
		if (rc)
			snprintf(msg, sizeof msg, "%s", nnh5_error_message());
		pthread_mutex_lock(&bg->mu);
		bg->release(job);
		bg->job = NULL;
		if (rc) {
			bg->rc = rc;
			memcpy(bg->msg, msg, sizeof msg);
		}
		pthread_cond_broadcast(&bg->cv);
	}
	pthread_mutex_unlock(&bg->mu);
	return NULL;
}

int nnh5__background_start(nnh5__background *bg, int (*run)(void *owner, void *job),
			   void (*release)(void *job), void *owner, const char *dir)
{
	bg->run = run;
	bg->release = release;
	bg->owner = owner;
	if (pthread_mutex_init(&bg->mu, NULL) != 0)
		return nnh5__error(NNH5_ERR_NOMEM, "checkpoint folder '%s': cannot create a mutex",
				   dir);
	if (pthread_cond_init(&bg->cv, NULL) != 0) {
		pthread_mutex_destroy(&bg->mu);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot create a condition variable", dir);
	}
	if (pthread_create(&bg->thread, NULL, thread_main, bg) != 0) {
		pthread_cond_destroy(&bg->cv);
		pthread_mutex_destroy(&bg->mu);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot start the saving thread", dir);
	}
	bg->started = true;
	return NNH5_OK;
}

void nnh5__background_stop(nnh5__background *bg)
{
	if (!bg->started)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->stop = true;
	pthread_cond_broadcast(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
	pthread_join(bg->thread, NULL);
	pthread_cond_destroy(&bg->cv);
	pthread_mutex_destroy(&bg->mu);
	bg->started = false;
}

int nnh5__background_wait(nnh5__background *bg)
{
	int rc;

	if (!bg->started)
		return NNH5_OK;
	pthread_mutex_lock(&bg->mu);
	while (bg->job)
		pthread_cond_wait(&bg->cv, &bg->mu);
	rc = bg->rc;
	bg->rc = NNH5_OK;
	pthread_mutex_unlock(&bg->mu);
	return rc;
}

bool nnh5__background_peek(nnh5__background *bg, void (*peek)(const void *job, void *arg),
			   void *arg)
{
	bool busy = false;

	if (!bg->started)
		return false;
	pthread_mutex_lock(&bg->mu);
	if (bg->job) {
		busy = true;
		peek(bg->job, arg);
	}
	pthread_mutex_unlock(&bg->mu);
	return busy;
}

void nnh5__background_submit(nnh5__background *bg, void *job)
{
	pthread_mutex_lock(&bg->mu);
	bg->job = job;
	pthread_cond_broadcast(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
}

void nnh5__background_hold(nnh5__background *bg, bool hold)
{
	if (!bg->started)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->hold = hold;
	pthread_cond_broadcast(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
}
