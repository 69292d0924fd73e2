/*
 * lib/checkpoint/background.h - one background thread that runs one job at
 * a time: the serial checkpoint manager's asynchronous saves (worker.c) and
 * lib/mpi's collective ones run their saves through it.
 *
 * The owner submits a job only while the thread is idle (after
 * nnh5__background_wait()), so a job and what it points into (a staging
 * buffer) belong to the thread until it is done with them. A failed job's
 * status and message are kept until the owner takes them, once.
 */
#ifndef NNH5_CHECKPOINT_BACKGROUND_H
#define NNH5_CHECKPOINT_BACKGROUND_H

#include "core/internal.h"

#include <pthread.h>
#include <stdbool.h>

typedef struct nnh5__background {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool started;
	bool stop;
	bool hold;   /* tests: the thread waits before running a job while set */
	void *job;   /* waiting or running; NULL when idle */
	int rc;      /* failure of the last job, not yet taken */
	char msg[1536];
	/* Runs job in the thread; a failure's message is nnh5_error_message(). */
	int (*run)(void *owner, void *job);
	/* Frees job once run (in the thread, with the lock held: keep it short). */
	void (*release)(void *job);
	void *owner;
} nnh5__background;

/*
 * Start the thread in bg (zeroed by the caller). dir names the checkpoint
 * folder in messages. Errors: NNH5_ERR_NOMEM (no mutex, condition variable
 * or thread).
 */
int nnh5__background_start(nnh5__background *bg, int (*run)(void *owner, void *job),
			   void (*release)(void *job), void *owner, const char *dir);

/* Run the job in flight to its end, then stop and join the thread (nothing if not started). */
void nnh5__background_stop(nnh5__background *bg);

/*
 * Wait until no job is in flight. Returns the status of a failure not yet
 * taken (NNH5_OK if none, or if the thread was never started) and forgets
 * it; its message stays in bg->msg. Sets no error message: the caller words it.
 */
int nnh5__background_wait(nnh5__background *bg);

/*
 * If a job is in flight, call peek(job, arg) with the lock held and return
 * true; false when idle.
 */
bool nnh5__background_peek(nnh5__background *bg, void (*peek)(const void *job, void *arg),
			   void *arg);

/* Hand job to the idle thread (the caller waited); it is released when run. */
void nnh5__background_submit(nnh5__background *bg, void *job);

/* Tests: hold jobs back (true) or let them run (false). */
void nnh5__background_hold(nnh5__background *bg, bool hold);

#endif /* NNH5_CHECKPOINT_BACKGROUND_H */
