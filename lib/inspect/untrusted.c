/*
 * lib/inspect/untrusted.c - inspect a stranger's file in a child process with
 * resource limits (nnh5/untrusted.h).
 *
 * The child opens the file with the caller's load policy, walks it with the
 * walk every load makes (lib/file/walk.c: the same refusals, with the same
 * messages, and the format's own objects too), loads every dataset and
 * rebuilds every model, and writes one record per
 * check into a pipe; the parent reads the records (checking every length:
 * a child that ran hostile input is not trusted either), waits for the
 * child by its pid and turns a crash, a hang or a limit into an error.
 */
#define _GNU_SOURCE
#include "file/file_internal.h"
#include "file/walk.h"
#include "nnh5/untrusted.h"
#include "nnh5/file.h"
#include "nnh5/nn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MEMORY (UINT64_C(4) << 30)
#define DEFAULT_CPU 60
#define DEFAULT_TIMEOUT 120
/* What the parent accepts from the child. */
#define MAX_REPORT_BYTES ((size_t)256 << 20)
#define MAX_STRING 65536
#define PIPE_FD 3

/* One record on the pipe; kind 0 ends the report. */
struct wire {
	int32_t kind, status, dtype;
	uint32_t ndim;
	int64_t shape[NNH5_MAX_NDIM];
	uint8_t has_checksum, bitwise;
	uint8_t pad[6];
	double max_abs_diff;
	uint64_t count;
	uint32_t len_object, len_message;
};

/* ------------------------------------------------------------------ */
/* The child                                                            */

static bool put_all(const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(PIPE_FD, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

static void emit(struct wire *w, const char *object, const char *message)
{
	size_t lo = strlen(object), lm = strlen(message);

	w->len_object = (uint32_t)(lo < MAX_STRING ? lo : MAX_STRING - 1);
	w->len_message = (uint32_t)(lm < MAX_STRING ? lm : MAX_STRING - 1);
	if (!put_all(w, sizeof *w) || !put_all(object, w->len_object) ||
	    !put_all(message, w->len_message))
		_exit(4);
}

static void emit_simple(nnh5_check_kind kind, int status, const char *object, const char *message)
{
	struct wire w;

	memset(&w, 0, sizeof w);
	w.kind = kind;
	w.status = status;
	emit(&w, object, message);
}

/* The tensor the walk described: load it (verifying its checksum) and report it. */
static void check_tensor(nnh5_file *f, const nnh5__item *it)
{
	nnh5_tensor *t = NULL;
	struct wire w;
	int rc = it->e->type == NNH5_ENTRY_TENSOR ? nnh5__dataset_read(&t, f, it->ds, it->display)
						   : nnh5__dataset_not_tensor(f, it->ds, it->display);

	memset(&w, 0, sizeof w);
	w.kind = rc == NNH5_ERR_TYPE ? NNH5_CHECK_SKIPPED : NNH5_CHECK_TENSOR;
	w.status = rc;
	if (t) {
		w.dtype = nnh5_tensor_dtype(t);
		w.ndim = (uint32_t)nnh5_tensor_ndim(t);
		memcpy(w.shape, nnh5_tensor_shape(t), w.ndim * sizeof w.shape[0]);
		w.count = nnh5_tensor_nbytes(t);
		w.has_checksum = it->ds->has_checksum == 1;
	}
	emit(&w, it->e->path, rc ? nnh5_error_message() : "");
	nnh5_error_clear();
	nnh5_tensor_free(t);
}

static void check_model(nnh5_file *f, const char *path, double tol)
{
	nnh5_model *m = NULL;
	nnh5_verify_result vr;
	struct wire w;
	char probe[4200];
	int rc = nnh5_file_read_model(&m, f, path);

	memset(&w, 0, sizeof w);
	w.kind = NNH5_CHECK_MODEL;
	w.status = rc;
	w.count = m ? nnh5_model_len(m) : 0;
	emit(&w, path, rc ? nnh5_error_message() : nnh5_dtype_name(nnh5_model_dtype(m)));
	nnh5_model_free(m);
	nnh5__file_display_name(probe, sizeof probe, path, "nnh5_probe");
	if (rc || !nnh5_file_has(f, probe))
		return;
	rc = nnh5_file_verify_model(&vr, f, path);
	memset(&w, 0, sizeof w);
	w.kind = NNH5_CHECK_PROBE;
	w.status = rc;
	if (!rc) {
		w.bitwise = vr.bitwise_equal;
		w.max_abs_diff = vr.max_abs_diff;
		w.count = vr.numel;
		if (!vr.bitwise_equal && !(vr.max_abs_diff <= tol))
			w.status = nnh5__error(NNH5_ERR_CHECKSUM,
					       "'%s': model '%s': the probe's output differs from the "
					       "stored one by up to %g",
					       nnh5_file_path(f), path, vr.max_abs_diff);
	}
	emit(&w, path, w.status ? nnh5_error_message() : "");
}

/* A group's nnh5_keys and nnh5_layers, read as loads read them; a WALK entry on failure. */
static void check_group_attrs(nnh5_file *f, const char *group)
{
	static const char *const names[] = { "nnh5_keys", "nnh5_layers" };
	char **strings;
	size_t n;
	int rc = NNH5_OK;

	for (size_t i = 0; !rc && i < sizeof names / sizeof names[0]; i++)
		if (nnh5__file_has_attr(f, group, names[i])) {
			rc = nnh5__file_get_attr_strings(&strings, &n, f, group, names[i]);
			if (!rc)
				nnh5__strings_free(strings, n);
		}
	if (rc) {
		emit_simple(NNH5_CHECK_WALK, rc, group, nnh5_error_message());
		nnh5_error_clear();
	}
}

/* The paths of the model groups met, checked once the walk is over. */
struct inspection {
	nnh5_file *f;
	char **models;
	size_t n, cap;
	bool failed;
};

/*
 * One entry of the walk every load makes (lib/file/walk.c), with the
 * format's own objects and every refusal reported: what a load would
 * refuse is reported with the same status and message.
 */
static int inspect_cb(const nnh5__item *it, void *p)
{
	struct inspection *in = p;
	const nnh5_entry *e = it->e;

	switch (e->type) {
	case NNH5_ENTRY_REFUSED:
		emit_simple(NNH5_CHECK_WALK, e->status, e->path, e->message);
		in->failed = true;
		break;
	case NNH5_ENTRY_GROUP:
		check_group_attrs(in->f, e->path);
		if (e->kind == NNH5_KIND_MODEL && !e->alias_of) {
			if (in->n == in->cap) {
				size_t cap = in->cap ? 2 * in->cap : 8, bytes;
				char **q;
				if (!nnh5__mul_size(cap, sizeof *q, &bytes) ||
				    !(q = nnh5__realloc(in->models, bytes)))
					return nnh5__nomem();
				in->models = q;
				in->cap = cap;
			}
			if (!(in->models[in->n] = nnh5__strdup(e->path)))
				return nnh5__nomem();
			in->n++;
		}
		break;
	case NNH5_ENTRY_TENSOR:
	case NNH5_ENTRY_DATASET:
		check_tensor(in->f, it);
		break;
	default:
		break;
	}
	return NNH5_OK;
}

static void inspect(const char *path, const nnh5_untrusted_options *o)
{
	struct inspection in = { NULL, NULL, 0, 0, false };
	nnh5__walk_options wo = { true, true, true, true, false, true, !o->open.copy_aliases,
				  H5O_TYPE_UNKNOWN, NULL };
	nnh5_file *f;
	int rc = nnh5_file_open_ext(&f, path, NNH5_READ, &o->open);

	emit_simple(NNH5_CHECK_OPEN, rc, "/", rc ? nnh5_error_message() : "");
	if (rc)
		return;
	in.f = f;
	nnh5__h5quiet quiet;
	nnh5__h5_quiet_begin(&quiet);
	rc = nnh5__walk(f, "/", &wo, inspect_cb, &in);
	nnh5__h5_quiet_end(&quiet);
	if (rc)
		emit_simple(NNH5_CHECK_WALK, rc, "/", nnh5_error_message());
	/* Models rebuild from what the walk accepted: only when it refused nothing. */
	for (size_t i = 0; !rc && !in.failed && i < in.n; i++)
		check_model(f, in.models[i], o->tolerance);
	for (size_t i = 0; i < in.n; i++)
		nnh5__free(in.models[i]);
	nnh5__free(in.models);
	nnh5_file_discard(f);
}

static void close_other_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, PIPE_FD + 1, ~0U, 0) == 0)
		return;
#endif
	struct rlimit rl;
	long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur
									      : 65536;
	for (long fd = PIPE_FD + 1; fd < max; fd++)
		close((int)fd);
}

static _Noreturn void child(int wfd, const char *path, const nnh5_untrusted_options *o)
{
	int null = open("/dev/null", O_RDWR);
	struct rlimit cpu = { o->max_cpu_seconds, o->max_cpu_seconds + 1 };
	struct rlimit zero = { 0, 0 };
	struct rlimit files = { 256, 256 };

	if (wfd != PIPE_FD) {
		if (dup2(wfd, PIPE_FD) < 0)
			_exit(3);
		close(wfd);
	}
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(3);
	close_other_fds();
	/*
	 * The caller's handlers (crash reporters, test frameworks) must not run
	 * here: a fatal signal has to kill the child for the parent to see it.
	 */
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	signal(SIGXFSZ, SIG_IGN); /* a write fails with EFBIG instead */
	if (setrlimit(RLIMIT_CPU, &cpu) < 0 || setrlimit(RLIMIT_FSIZE, &zero) < 0 ||
	    setrlimit(RLIMIT_CORE, &zero) < 0)
		_exit(3);
	/* Best effort: valgrind, for one, refuses to change it. */
	setrlimit(RLIMIT_NOFILE, &files);
#if !defined(__SANITIZE_ADDRESS__)
	struct rlimit as = { o->max_memory, o->max_memory };
	if (setrlimit(RLIMIT_AS, &as) < 0)
		_exit(3);
#endif
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	alarm(o->timeout_seconds);
	nnh5_error_clear();
	inspect(path, o);
	emit_simple(0, NNH5_OK, "", "");
	_exit(0);
}

/* ------------------------------------------------------------------ */
/* The parent                                                           */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the child's report until EOF or the deadline; *timed_out when it passed. */
static int read_report(nnh5__strbuf *sb, int fd, int64_t deadline, bool *timed_out)
{
	char buf[65536];

	*timed_out = false;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (left <= 0) {
			*timed_out = true;
			return NNH5_OK;
		}
		int pr = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return nnh5__error(NNH5_ERR_IO, "untrusted check: poll: %s", strerror(errno));
		if (pr == 0)
			continue;
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NNH5_OK;
		if (sb->len + (size_t)r > MAX_REPORT_BYTES)
			return NNH5_OK; /* the rest is dropped: the report is incomplete */
		nnh5__strbuf_putn(sb, buf, (size_t)r);
		if (sb->oom)
			return nnh5__nomem();
	}
}

/* Parse records; false when they are malformed or the end record is missing. */
static int parse_report(nnh5_untrusted_report *r, const char *p, size_t n, bool *complete)
{
	size_t at = 0, cap = 0;

	*complete = false;
	while (n - at >= sizeof(struct wire)) {
		struct wire w;
		memcpy(&w, p + at, sizeof w);
		at += sizeof w;
		if (w.kind == 0) {
			*complete = true;
			return NNH5_OK;
		}
		if (w.kind < NNH5_CHECK_OPEN || w.kind > NNH5_CHECK_PROBE || w.ndim > NNH5_MAX_NDIM ||
		    w.len_object >= MAX_STRING || w.len_message >= MAX_STRING ||
		    n - at < (size_t)w.len_object + w.len_message)
			return NNH5_OK;
		if (r->n_entries == cap) {
			size_t ncap = cap ? 2 * cap : 16, bytes;
			nnh5_untrusted_entry *q;
			if (!nnh5__mul_size(ncap, sizeof *q, &bytes) ||
			    !(q = nnh5__realloc(r->entries, bytes)))
				return nnh5__nomem();
			r->entries = q;
			cap = ncap;
		}
		nnh5_untrusted_entry *e = &r->entries[r->n_entries];
		char *obj = nnh5__malloc(w.len_object + 1), *msg = nnh5__malloc(w.len_message + 1);
		if (!obj || !msg) {
			nnh5__free(obj);
			nnh5__free(msg);
			return nnh5__nomem();
		}
		memcpy(obj, p + at, w.len_object);
		obj[w.len_object] = '\0';
		at += w.len_object;
		memcpy(msg, p + at, w.len_message);
		msg[w.len_message] = '\0';
		at += w.len_message;
		memset(e, 0, sizeof *e);
		e->kind = (nnh5_check_kind)w.kind;
		e->status = w.status;
		e->object = obj;
		e->message = msg;
		e->dtype = w.dtype >= 0 && w.dtype < NNH5_DTYPE_COUNT ? (nnh5_dtype)w.dtype : NNH5_UINT8;
		e->ndim = w.ndim;
		memcpy(e->shape, w.shape, sizeof e->shape);
		e->has_checksum = w.has_checksum;
		e->count = (size_t)w.count;
		e->bitwise_equal = w.bitwise;
		e->max_abs_diff = w.max_abs_diff;
		r->n_entries++;
		if (e->kind == NNH5_CHECK_TENSOR && e->status == NNH5_OK) {
			r->n_tensors++;
			r->tensor_bytes += w.count;
		}
		if (e->status != NNH5_OK && e->kind != NNH5_CHECK_SKIPPED)
			r->n_failed++;
	}
	return NNH5_OK;
}

void nnh5_untrusted_report_free(nnh5_untrusted_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_entries; i++) {
		nnh5__free((void *)(uintptr_t)r->entries[i].object);
		nnh5__free((void *)(uintptr_t)r->entries[i].message);
	}
	nnh5__free(r->entries);
	nnh5__free(r);
}

/* The overall status: the child's fate, else its first failed check. */
static int verdict(nnh5_untrusted_report *r, const char *path, int wst, bool complete,
		   const nnh5_untrusted_options *o)
{
	if (r->timed_out)
		return r->status = nnh5__error(NNH5_ERR_UNSAFE,
					       "'%s': inspecting the file took longer than %u s: the "
					       "checking process was killed",
					       path, o->timeout_seconds);
	if (WIFSIGNALED(wst)) {
		int sig = WTERMSIG(wst);
		r->crashed = true;
		r->signal = sig;
		return r->status = nnh5__error(
			       NNH5_ERR_UNSAFE,
			       "'%s': inspecting the file %s the checking process (signal %d, %s): "
			       "the file is damaged or hostile; nothing was loaded here",
			       path,
			       sig == SIGXCPU || sig == SIGALRM ? "exhausted the time limit of"
								: "crashed",
			       sig, strsignal(sig));
	}
	for (size_t i = 0; i < r->n_entries; i++) {
		const nnh5_untrusted_entry *e = &r->entries[i];
		if (e->status != NNH5_OK && e->kind != NNH5_CHECK_SKIPPED)
			return r->status = nnh5__error(e->status, "%s", e->message);
	}
	/*
	 * The end record is written just before the child exits, so a complete
	 * report stands even if something around the child (valgrind's leak
	 * check of it, for one) changed its exit status.
	 */
	if (!complete)
		return r->status = nnh5__error(NNH5_ERR_UNSAFE,
					       "'%s': the checking process ended without a complete "
					       "report (exit status %d)",
					       path, WIFEXITED(wst) ? WEXITSTATUS(wst) : -1);
	return r->status = NNH5_OK;
}

int nnh5_untrusted_check(nnh5_untrusted_report **out, const char *path,
			 const nnh5_untrusted_options *opts)
{
	nnh5_untrusted_options o = NNH5_UNTRUSTED_OPTIONS_INIT;
	nnh5_untrusted_report *r;
	nnh5__strbuf sb = { 0 };
	int fds[2], wst = 0, rc;
	bool complete = false;
	pid_t pid;

	*out = NULL;
	if (opts)
		o = *opts;
	if (o.version != NNH5_UNTRUSTED_OPTIONS_VERSION)
		return nnh5__error(NNH5_ERR_INVALID, "untrusted check: unknown options version %u",
				   o.version);
	if (!path || !*path)
		return nnh5__error(NNH5_ERR_INVALID, "untrusted check: empty path");
	if (!o.max_memory)
		o.max_memory = DEFAULT_MEMORY;
	if (!o.max_cpu_seconds)
		o.max_cpu_seconds = DEFAULT_CPU;
	if (!o.timeout_seconds)
		o.timeout_seconds = DEFAULT_TIMEOUT;
	if (pipe(fds) < 0)
		return nnh5__error(NNH5_ERR_IO, "untrusted check '%s': pipe: %s", path,
				   strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		return nnh5__error(NNH5_ERR_IO, "untrusted check '%s': fork: %s", path, strerror(err));
	}
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], path, &o);
	}
	close(fds[1]);
	/* Allocated after the fork: the child holds nothing it could leak. */
	r = nnh5__calloc(1, sizeof *r);
	if (!r) {
		close(fds[0]);
		kill(pid, SIGKILL);
		while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
			;
		return nnh5__nomem();
	}
	/* The child's own alarm fires first; this is the backstop. */
	int64_t deadline = now_ms() + (int64_t)o.timeout_seconds * 1000 + 2000;
	rc = read_report(&sb, fds[0], deadline, &r->timed_out);
	close(fds[0]);
	if (r->timed_out || rc)
		kill(pid, SIGKILL);
	/* End of the report is not the end of the child: wait, but not forever. */
	for (;;) {
		pid_t w = waitpid(pid, &wst, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		if (w == 0 && now_ms() > deadline) {
			r->timed_out = true;
			kill(pid, SIGKILL);
			while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (w == 0)
			nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	if (!rc)
		rc = parse_report(r, sb.p ? sb.p : "", sb.len, &complete);
	nnh5__free(sb.p);
	if (rc) {
		nnh5_untrusted_report_free(r);
		return rc;
	}
	*out = r;
	return verdict(r, path, wst, complete, &o);
}
