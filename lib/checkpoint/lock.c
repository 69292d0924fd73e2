/*
 * lib/checkpoint/lock.c - the folder lock: an flock() on dir/.nnh5-lock,
 * held while a manager is open, so two trainers cannot share a folder.
 *
 * flock() belongs to the open file description, and fork() shares that with
 * the child: a child that outlives the manager (a data loader worker, say)
 * would keep the folder locked, and reopening it would fail with
 * NNH5_ERR_BUSY. So every lock descriptor is registered here, and a
 * pthread_atfork() handler closes them all in the child (the parent's copy
 * keeps the lock). O_CLOEXEC covers exec, and posix_spawn()/vfork(), which
 * run no fork handlers, exec at once. The child must not use the parent's
 * manager (it has neither the lock nor the worker thread).
 */
#define _DEFAULT_SOURCE /* flock() */
#include "checkpoint/manager_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The live managers holding a lock. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static nnh5_checkpoint_manager **registry;
static size_t registry_n, registry_cap;

static void before_fork(void)
{
	pthread_mutex_lock(&registry_mu);
}

static void after_fork_parent(void)
{
	pthread_mutex_unlock(&registry_mu);
}

static void after_fork_child(void)
{
	for (size_t i = 0; i < registry_n; i++) {
		close(registry[i]->lock_fd);
		registry[i]->lock_fd = -1;
	}
	registry_n = 0;
	pthread_mutex_unlock(&registry_mu);
}

static int atfork_rc;

static void install_handlers(void)
{
	atfork_rc = pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Add m to the registry (registry_mu held). */
static int register_locked(nnh5_checkpoint_manager *m)
{
	if (registry_n == registry_cap) {
		size_t ncap = registry_cap ? registry_cap * 2 : 4;
		nnh5_checkpoint_manager **nr = nnh5__realloc(registry, ncap * sizeof *nr);
		if (!nr)
			return nnh5__nomem();
		registry = nr;
		registry_cap = ncap;
	}
	registry[registry_n++] = m;
	return NNH5_OK;
}

int nnh5__ckpt_lock(nnh5_checkpoint_manager *m)
{
	char *p;
	int rc = nnh5__ckpt_join(&p, m->dir, NNH5__CKPT_LOCK_NAME);

	if (rc)
		return rc;
	pthread_once(&registry_once, install_handlers);
	if (atfork_rc != 0) {
		nnh5__free(p);
		return nnh5__error(NNH5_ERR_NOMEM,
				   "checkpoint folder '%s': cannot install the fork handler", m->dir);
	}
	/* Held from open() to registration: a fork meanwhile would keep the descriptor. */
	pthread_mutex_lock(&registry_mu);
	m->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (m->lock_fd < 0)
		rc = nnh5__error(NNH5_ERR_IO, "checkpoint folder '%s': cannot create '%s': %s",
				 m->dir, NNH5__CKPT_LOCK_NAME, strerror(errno));
	else if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0)
		rc = nnh5__error(errno == EWOULDBLOCK ? NNH5_ERR_BUSY : NNH5_ERR_IO,
				 "checkpoint folder '%s' is in use by another checkpoint manager "
				 "(lock '%s': %s)",
				 m->dir, NNH5__CKPT_LOCK_NAME, strerror(errno));
	else
		rc = register_locked(m);
	if (rc && m->lock_fd >= 0) {
		close(m->lock_fd);
		m->lock_fd = -1;
	}
	pthread_mutex_unlock(&registry_mu);
	nnh5__free(p);
	return rc;
}

void nnh5__ckpt_unlock(nnh5_checkpoint_manager *m)
{
	pthread_mutex_lock(&registry_mu);
	for (size_t i = 0; i < registry_n; i++)
		if (registry[i] == m) {
			registry[i] = registry[--registry_n];
			break;
		}
	if (m->lock_fd >= 0)
		close(m->lock_fd); /* releases the flock */
	m->lock_fd = -1;
	pthread_mutex_unlock(&registry_mu);
}
