/*
 * tests/test_saving.c - what an atomic save does to the path it replaces
 * (doc/SAVING.md, "Nothing is lost"): symbolic links are followed, the old
 * file's mode, owner and group are kept, a file the process could not write
 * is refused, devices, FIFOs, sockets and folders are refused before anything
 * is written, every legal name fits its temporary name, and the process
 * umask is never touched. Cases that need root (owners, devices) skip
 * without it.
 */
#define _GNU_SOURCE /* makedev, syscall */
#include "testutil.h"

#include "store/atomic.h"
#include "file/save_direct.h" /* nnh5__save_direct_taken */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Every umask() call the library makes lands here (the executable's symbol
 * interposes libc's for the shared library). umask(0) then umask(old) opens
 * a window in which another thread creates world-writable files.
 */
static volatile int umask_calls;

mode_t umask(mode_t mask);
mode_t umask(mode_t mask)
{
	umask_calls++;
	return (mode_t)syscall(SYS_umask, mask);
}

/* Every fsync() the library makes lands here too. */
static volatile int fsync_calls;

int fsync(int fd);
int fsync(int fd)
{
	fsync_calls++;
	return (int)syscall(SYS_fsync, fd);
}

static nnh5_tensor *small(double v)
{
	int64_t shape[] = { 4 };
	return tu_seq(NNH5_FLOAT32, 1, shape, 1.0, v);
}

/* Save a tensor whose first element is v; returns the status. */
static int save_value(const char *path, double v)
{
	nnh5_tensor *t = small(v);
	int rc = nnh5_save_tensor(path, t);
	nnh5_tensor_free(t);
	return rc;
}

static double load_value(const char *path)
{
	nnh5_tensor *t;
	ok(nnh5_load_tensor(&t, path));
	double v = nnh5_tensor_get(t, 0);
	nnh5_tensor_free(t);
	return v;
}

static void symlink_is_followed(void **state)
{
	struct stat st;
	char target[4096], link[4096], rel[4096];
	(void)state;
	snprintf(target, sizeof target, "%s", tu_path("real.h5"));
	snprintf(link, sizeof link, "%s", tu_path("link.h5"));
	snprintf(rel, sizeof rel, "%s", tu_path("rel.h5"));
	unlink(link);
	unlink(rel);
	ok(save_value(target, 1));
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(symlink("link.h5", rel), 0); /* relative, through a second link */
	ok(save_value(link, 2));
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_true(load_value(target) == 2);
	ok(save_value(rel, 3));
	assert_int_equal(lstat(rel, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_true(load_value(target) == 3);
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);

	/* A dangling link: the save creates the file it names. */
	char dangling[4096], made[4096];
	snprintf(dangling, sizeof dangling, "%s", tu_path("dangling.h5"));
	snprintf(made, sizeof made, "%s", tu_path("made-through-link.h5"));
	unlink(dangling);
	unlink(made);
	assert_int_equal(symlink("made-through-link.h5", dangling), 0);
	ok(save_value(dangling, 4));
	assert_int_equal(lstat(dangling, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_true(load_value(made) == 4);

	/* A loop of links is an error, and nothing is written. */
	char loop[4096];
	snprintf(loop, sizeof loop, "%s", tu_path("loop.h5"));
	unlink(loop);
	assert_int_equal(symlink("loop.h5", loop), 0);
	fails(NNH5_ERR_IO, save_value(loop, 5), "loop.h5", "link");
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
}

static void hard_link_keeps_old_content(void **state)
{
	char a[4096], b[4096];
	(void)state;
	snprintf(a, sizeof a, "%s", tu_path("hard-a.h5"));
	snprintf(b, sizeof b, "%s", tu_path("hard-b.h5"));
	unlink(b);
	ok(save_value(a, 1));
	assert_int_equal(link(a, b), 0);
	ok(save_value(a, 2));
	assert_true(load_value(a) == 2);
	assert_true(load_value(b) == 1); /* documented: the other name keeps the old file */
}

static void mode_is_kept(void **state)
{
	const mode_t modes[] = { 0600, 0640, 0660, 0604, 0755 };
	const char *p = tu_path("mode.h5");
	struct stat st;
	(void)state;
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		ok(save_value(p, 1));
		assert_int_equal(chmod(p, modes[i]), 0);
		ok(save_value(p, 2));
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, modes[i]);
	}
}

static void new_file_gets_umask_mode(void **state)
{
	const char *p = tu_path("new-mode.h5");
	struct stat st;
	(void)state;
	mode_t old = (mode_t)syscall(SYS_umask, 027);
	unlink(p);
	umask_calls = 0;
	ok(save_value(p, 1));
	assert_int_equal(umask_calls, 0); /* the process umask is never changed */
	syscall(SYS_umask, old);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
}

/*
 * A private file is never exposed through its temporary file: when a file
 * created anew would be readable by more people than the replaced one, the
 * placeholder gets the old owner and mode before it holds a byte, and the
 * save writes into it (a->prepared). Otherwise the fast path stays.
 */
static void private_file_never_widened(void **state)
{
	const char *p = tu_path("private.h5");
	struct stat st;
	nnh5__atomic a;
	(void)state;
	mode_t old = (mode_t)syscall(SYS_umask, 022);
	ok(save_value(p, 1));
	assert_int_equal(chmod(p, 0600), 0);
	ok(nnh5__atomic_begin(&a, p, false));
	assert_true(a.prepared);
	assert_int_equal(stat(a.tmp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	nnh5__atomic_abort(&a);
	assert_int_equal(chmod(p, 0644), 0);
	ok(nnh5__atomic_begin(&a, p, false));
	assert_false(a.prepared); /* 0644 under umask 022: nothing to hide */
	nnh5__atomic_abort(&a);
	if (geteuid() == 0) {
		assert_int_equal(chown(p, 12345, 12345), 0);
		ok(nnh5__atomic_begin(&a, p, false));
		assert_true(a.prepared); /* another owner: created by root it would not be theirs */
		assert_int_equal(stat(a.tmp, &st), 0);
		assert_int_equal(st.st_uid, 12345);
		assert_int_equal(st.st_mode & 07777, 0644);
		nnh5__atomic_abort(&a);
	}
	/* The whole save through the prepared placeholder. */
	assert_int_equal(chmod(p, 0600), 0);
	ok(save_value(p, 2));
	assert_true(load_value(p) == 2);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	syscall(SYS_umask, old);
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
}

static void owner_is_kept(void **state)
{
	const char *p = tu_path("owner.h5");
	struct stat st;
	(void)state;
	if (geteuid() != 0) {
		skip(); /* giving a file to another user needs root */
		return;
	}
	ok(save_value(p, 1));
	assert_int_equal(chown(p, 12345, 23456), 0);
	assert_int_equal(chmod(p, 0600), 0);
	ok(save_value(p, 2));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_uid, 12345);
	assert_int_equal(st.st_gid, 23456);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(load_value(p) == 2);
}

/* In a child running as an unprivileged user (when we are root): a read-only file is refused. */
static void read_only_refused(void **state)
{
	char dir[4096];
	(void)state;
	snprintf(dir, sizeof dir, "%s", tu_path("ro"));
	mkdir(dir, 0755);
	/* The scratch folder is 0700 (mkdtemp): let the other user in. */
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	assert_int_equal(chmod(dir, 0755), 0);
	*slash = '/';
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char p[4200];
		if (geteuid() == 0 && (chown(dir, 65534, 65534) < 0 || setgid(65534) < 0 ||
				       setuid(65534) < 0))
			_exit(2);
		snprintf(p, sizeof p, "%s/ro.h5", dir);
		if (save_value(p, 1) != NNH5_OK || chmod(p, 0444) < 0)
			_exit(3);
		int rc = save_value(p, 2);
		if (rc != NNH5_ERR_IO || !strstr(nnh5_error_message(), "not writable"))
			_exit(4);
		struct stat st;
		if (stat(p, &st) < 0 || (st.st_mode & 07777) != 0444 || load_value(p) != 1)
			_exit(5);
		/* Its own writable file in the same folder is replaced as usual. */
		if (chmod(p, 0644) < 0 || save_value(p, 3) != NNH5_OK || load_value(p) != 3)
			_exit(6);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void expect_refused(const char *p, const char *kind)
{
	struct stat before, after;
	assert_int_equal(lstat(p, &before), 0);
	fails(NNH5_ERR_INVALID, save_value(p, 1), kind, "only regular files");
	assert_int_equal(lstat(p, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_mode, after.st_mode);
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
}

static void special_files_refused(void **state)
{
	const char *fifo = tu_path("fifo.h5");
	(void)state;
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0644), 0);
	expect_refused(fifo, "a FIFO"); /* and does not block: nobody reads the FIFO */

	char folder[4096];
	snprintf(folder, sizeof folder, "%s", tu_path("folder.h5"));
	mkdir(folder, 0755);
	expect_refused(folder, "a folder");

	char sock[4096];
	snprintf(sock, sizeof sock, "%s", tu_path("sock.h5"));
	unlink(sock);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(sock) < sizeof sa.sun_path) { /* a longer scratch path: no socket case */
		memcpy(sa.sun_path, sock, strlen(sock) + 1);
		assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
		expect_refused(sock, "a socket");
	}
	close(s);

	/* A link to a FIFO is followed, and what it leads to is refused. */
	char link[4096];
	snprintf(link, sizeof link, "%s", tu_path("to-fifo.h5"));
	unlink(link);
	assert_int_equal(symlink("fifo.h5", link), 0);
	fails(NNH5_ERR_INVALID, save_value(link, 1), "a FIFO");

	if (geteuid() != 0)
		return;
	char dev[4096];
	snprintf(dev, sizeof dev, "%s", tu_path("null-copy"));
	unlink(dev);
	assert_int_equal(mknod(dev, S_IFCHR | 0666, makedev(1, 3)), 0);
	expect_refused(dev, "a character device");
}

/*
 * Saving to /dev/null as root must leave the device alone. The child works
 * on a private /dev (a tmpfs in its own mount namespace holding a copy of
 * the device), so even a failing run cannot harm the real one.
 */
static void dev_null_refused(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat st;
		if (!tu_private_mounts())
			_exit(77);
		if (mount("nnh5-test-dev", "/dev", "tmpfs", 0, "mode=0755") < 0 ||
		    mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3)) < 0)
			_exit(77);
		int rc = save_value("/dev/null", 1);
		if (rc != NNH5_ERR_INVALID || !strstr(nnh5_error_message(), "character device"))
			_exit(1);
		if (stat("/dev/null", &st) < 0 || !S_ISCHR(st.st_mode))
			_exit(2);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		skip();
		return;
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void long_names_fit(void **state)
{
	(void)state;
	for (size_t len = 236; len <= 255; len++) {
		char name[256];
		char p[4400];
		memset(name, 'n', len);
		memcpy(name + len - 3, ".h5", 3);
		name[len] = '\0';
		snprintf(p, sizeof p, "%s", tu_path(name));
		ok(save_value(p, (double)len));
		assert_true(load_value(p) == (double)len);
		ok(save_value(p, (double)len + 1)); /* and over an existing one */
		assert_true(load_value(p) == (double)len + 1);
		unlink(p);
	}
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);
}

/*
 * The umask race, measured: one thread saves in a loop while another
 * creates plain files with mode 0666 under umask 022 and checks that each
 * got 0644. One second (NNH5_RACE_SECONDS sets another); the figures go
 * to stderr.
 */
static volatile int race_stop;
static char race_path[4200]; /* tu_path() is not for two threads */

static void *race_saver(void *arg)
{
	long *saves = arg;
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_tensor *t = small(1);
	o.durable = false; /* many saves a second: the window opens often */
	while (!race_stop) {
		nnh5_file *f;
		if (nnh5_file_open_ext(&f, race_path, NNH5_CREATE, &o) != NNH5_OK)
			break;
		if (nnh5_file_write_tensor(f, "t", t) != NNH5_OK || nnh5_file_close(f) != NNH5_OK)
			break;
		(*saves)++;
	}
	nnh5_tensor_free(t);
	return NULL;
}

static void umask_race(void **state)
{
	pthread_t th;
	long saves = 0, files = 0, wrong = 0;
	struct timespec t0, t;
	const char *secs = getenv("NNH5_RACE_SECONDS");
	long limit = (secs ? atol(secs) : 1) * 1000000000L;
	(void)state;
	char p[4200];
	mode_t old = (mode_t)syscall(SYS_umask, 022);
	snprintf(race_path, sizeof race_path, "%s", tu_path("race.h5"));
	snprintf(p, sizeof p, "%s", tu_path("race-plain"));
	race_stop = 0;
	assert_int_equal(pthread_create(&th, NULL, race_saver, &saves), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		struct stat st;
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0666);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		close(fd);
		unlink(p);
		files++;
		if ((st.st_mode & 07777) != 0644)
			wrong++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < limit);
	race_stop = 1;
	pthread_join(th, NULL);
	syscall(SYS_umask, old);
	fprintf(stderr, "umask race: %ld saves beside %ld file creations in %ld s, %ld with the "
			"wrong mode\n",
		saves, files, limit / 1000000000L, wrong);
	assert_true(saves > 0);
	assert_int_equal(wrong, 0);
}

/* Save a one-key dict (state dict when state); returns the status. */
static int save_key(const char *path, const char *key, bool state)
{
	nnh5_dict *d;
	ok(nnh5_dict_new(&d));
	ok(nnh5_dict_set(d, key, small(1)));
	int rc = state ? nnh5_save_state_dict(path, d) : nnh5_save_dict(path, d);
	nnh5_dict_free(d);
	return rc;
}

/* One rule for names: what a save accepts, a load returns unchanged; the rest is refused. */
static void names_obey_the_load_rule(void **state)
{
	const char *p = tu_path("names.h5");
	char long_ok[1025], too_long[2001];
	(void)state;
	memset(long_ok, 'k', 1024);
	long_ok[1024] = '\0';
	memset(too_long, 'k', 2000);
	too_long[2000] = '\0';
	const char *good[] = { "gr\xc3\xb6\xc3\x9f" "e", "\xe6\x9d\x83\xe9\x87\x8d", "a b", long_ok };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		nnh5_dict *back;
		ok(save_key(p, good[i], false));
		ok(nnh5_load_dict(&back, p));
		assert_int_equal(nnh5_dict_len(back), 1);
		assert_string_equal(nnh5_dict_key(back, 0), good[i]);
		nnh5_dict_free(back);
	}
	ok(save_value(p, 7)); /* the file the refused saves must leave alone */
	fails(NNH5_ERR_INVALID, save_key(p, "a\x1b[31mb", false), "control characters", "refused");
	fails(NNH5_ERR_INVALID, save_key(p, "\xff", false), "not valid UTF-8");
	fails(NNH5_ERR_INVALID, save_key(p, "\xc3", false), "not valid UTF-8");
	fails(NNH5_ERR_INVALID, save_key(p, too_long, false), "longer than the limit", "1024");
	fails(NNH5_ERR_INVALID, save_key(p, "layer.\x7f.weight", true), "control characters");
	fails(NNH5_ERR_INVALID, save_key(p, "layer.\xff\xfe.weight", true), "not valid UTF-8");
	fails(NNH5_ERR_INVALID, save_key(p, "tab\there", true), "control characters");
	assert_true(load_value(p) == 7);
	assert_int_equal(tu_count_files(".nnh5-tmp-"), 0);

	/* Object names given to the file API obey it too, component by component. */
	nnh5_file *f;
	nnh5_tensor *t = small(1);
	ok(nnh5_file_open(&f, p, NNH5_CREATE));
	fails(NNH5_ERR_INVALID, nnh5_file_write_tensor(f, "ok/bad\nname", t), "control characters");
	fails(NNH5_ERR_INVALID, nnh5_file_write_tensor(f, "\xfe/x", t), "not valid UTF-8");
	ok(nnh5_file_write_tensor(f, "gr\xc3\xbcn/x", t));
	ok(nnh5_file_close(f));
	nnh5_tensor_free(t);
	ok(nnh5_file_open(&f, p, NNH5_READ));
	ok(nnh5_file_read_tensor(&t, f, "gr\xc3\xbcn/x"));
	nnh5_tensor_free(t);
	nnh5_file_discard(f);
}

/* The file at path, its bytes and size; asserted to exist. */
static char *bytes_of(const char *path, size_t *n)
{
	char *b = tu_slurp(path, n);
	assert_non_null(b);
	return b;
}

enum ext_kind { EXT_TENSOR, EXT_LIST, EXT_DICT, EXT_STATE_DICT };

static int save_kind(enum ext_kind k, const char *path, const void *obj,
		     const nnh5_open_options *o, bool ext)
{
	switch (k) {
	case EXT_TENSOR:
		return ext ? nnh5_save_tensor_ext(path, obj, o) : nnh5_save_tensor(path, obj);
	case EXT_LIST:
		return ext ? nnh5_save_list_ext(path, obj, o) : nnh5_save_list(path, obj);
	case EXT_DICT:
		return ext ? nnh5_save_dict_ext(path, obj, o) : nnh5_save_dict(path, obj);
	default:
		return ext ? nnh5_save_state_dict_ext(path, obj, o)
			   : nnh5_save_state_dict(path, obj);
	}
}

/*
 * nnh5_save_*_ext(): without compression the direct writer takes the save,
 * durable (fsyncs) or not (none), and writes the file the call without
 * options writes, byte for byte; with compression the API path writes a
 * file that loads back equal; invalid options are refused with no file left.
 */
static void save_ext_options(void **state)
{
	const char *a = tu_path("ext_default.h5"), *b = tu_path("ext_options.h5");
	nnh5_dict *sd, *d;
	nnh5_list *list;
	int64_t shape[] = { 3, 50 };
	nnh5_tensor *one = tu_seq(NNH5_FLOAT64, 2, shape, 0.5, 1.0);
	(void)state;
	ok(nnh5_dict_new(&sd));
	ok(nnh5_dict_new(&d));
	ok(nnh5_list_new(&list));
	for (int i = 0; i < 200; i++) {
		char key[40];
		int64_t n = 16 + i % 7 * 40;
		snprintf(key, sizeof key, "layer%d.block%d.w", i / 10, i % 10);
		ok(nnh5_dict_set(sd, key, tu_seq(NNH5_FLOAT32, 1, &n, 0.25, i)));
		snprintf(key, sizeof key, "entry%d", i);
		ok(nnh5_dict_set(d, key, tu_seq(NNH5_INT64, 1, &n, 1.0, i)));
		if (i < 40)
			ok(nnh5_list_append(list, tu_seq(NNH5_FLOAT16, 1, &n, 0.5, i)));
	}
	const void *objs[] = { one, list, d, sd };
	for (int k = EXT_TENSOR; k <= EXT_STATE_DICT; k++) {
		nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
		size_t na, nb;
		uint64_t taken = nnh5__save_direct_taken();
		int syncs = fsync_calls;

		ok(save_kind(k, a, objs[k], NULL, false));
		assert_true(fsync_calls - syncs >= 2); /* the file, then its folder */
		/* durable: the direct writer, fsyncs as the call without options */
		syncs = fsync_calls;
		ok(save_kind(k, b, objs[k], &o, true));
		assert_true(fsync_calls - syncs >= 2);
		o.durable = false;
		syncs = fsync_calls;
		ok(save_kind(k, b, objs[k], &o, true));
		assert_int_equal(fsync_calls - syncs, 0);
		assert_int_equal(nnh5__save_direct_taken() - taken, 3);
		char *fa = bytes_of(a, &na), *fb = bytes_of(b, &nb);
		assert_int_equal(na, nb);
		assert_memory_equal(fa, fb, na);
		free(fa);
		free(fb);
		/* NULL options: the defaults, through the direct writer */
		ok(save_kind(k, b, objs[k], NULL, true));
		assert_int_equal(nnh5__save_direct_taken() - taken, 4);

		/* compression: HDF5's API path; loads back equal */
		o.compression = NNH5_COMPRESSION_FAST;
		ok(save_kind(k, b, objs[k], &o, true));
		assert_int_equal(nnh5__save_direct_taken() - taken, 4);
		if (k == EXT_STATE_DICT || k == EXT_DICT) {
			nnh5_dict *back;
			ok(k == EXT_DICT ? nnh5_load_dict(&back, b) : nnh5_load_state_dict(&back, b));
			assert_int_equal(nnh5_dict_len(back), 200);
			for (size_t i = 0; i < 200; i++) {
				const nnh5_dict *want = objs[k];
				assert_string_equal(nnh5_dict_key(back, i), nnh5_dict_key(want, i));
				assert_true(nnh5_tensor_equal(nnh5_dict_value(back, i),
							      nnh5_dict_value(want, i)));
			}
			nnh5_dict_free(back);
		}

		/* refused options: NNH5_ERR_INVALID, the previous file left as it was */
		o = (nnh5_open_options)NNH5_OPEN_OPTIONS_INIT;
		o.version = 999;
		fails(NNH5_ERR_INVALID, save_kind(k, b, objs[k], &o, true), "options version 999");
		o = (nnh5_open_options)NNH5_OPEN_OPTIONS_INIT;
		o.compression = 77;
		o.durable = false;
		fails(NNH5_ERR_INVALID, save_kind(k, b, objs[k], &o, true), b,
		      "compression profile 77");
		assert_int_equal(nnh5__save_direct_taken() - taken, 4);
		assert_true(tu_exists(b));
	}
	nnh5_tensor *back;
	ok(nnh5_save_tensor_ext(b, one, &(nnh5_open_options)NNH5_OPEN_OPTIONS_INIT));
	ok(nnh5_load_tensor(&back, b));
	assert_true(nnh5_tensor_equal(back, one));
	nnh5_tensor_free(back);
	nnh5_tensor_free(one);
	nnh5_list_free(list);
	nnh5_dict_free(d);
	nnh5_dict_free(sd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(symlink_is_followed),
		cmocka_unit_test(hard_link_keeps_old_content),
		cmocka_unit_test(mode_is_kept),
		cmocka_unit_test(new_file_gets_umask_mode),
		cmocka_unit_test(private_file_never_widened),
		cmocka_unit_test(owner_is_kept),
		cmocka_unit_test(read_only_refused),
		cmocka_unit_test(special_files_refused),
		cmocka_unit_test(dev_null_refused),
		cmocka_unit_test(long_names_fit),
		cmocka_unit_test(names_obey_the_load_rule),
		cmocka_unit_test(umask_race),
		cmocka_unit_test(save_ext_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
