/*
 * tests/test_special_files.c - every entry point that reads a file by path
 * refuses what is not a regular file (FIFO, character device, folder,
 * socket, a symbolic link to one of them) with NNH5_ERR_INVALID naming the
 * path, and never blocks on it; a symbolic link to a regular file loads; a
 * file HDF5 cannot open is called damaged or not HDF5 by its signature.
 * An alarm turns a hang into a failure instead of a stuck test.
 */
#include "testutil.h"
#include "store/regular.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Seconds any one test may take before SIGALRM kills the program (a hang is a failure). */
#define HANG_LIMIT 60

static char good[700], fifo[700], fifo_link[700], folder[700], sock[700], good_link[700];

static int make_files(void **state)
{
	nnh5_tensor *t = tu_seq(NNH5_FLOAT32, 1, (int64_t[]){ 4 }, 1.0, 0.0);
	(void)state;
	snprintf(good, sizeof good, "%s", tu_path("good.h5"));
	snprintf(fifo, sizeof fifo, "%s", tu_path("fifo.h5"));
	snprintf(fifo_link, sizeof fifo_link, "%s", tu_path("fifo-link.h5"));
	snprintf(folder, sizeof folder, "%s", tu_path("folder.h5"));
	snprintf(sock, sizeof sock, "%s", tu_path("sock.h5"));
	snprintf(good_link, sizeof good_link, "%s", tu_path("good-link.h5"));
	ok(nnh5_save_tensor(good, t));
	nnh5_tensor_free(t);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(symlink(fifo, fifo_link), 0);
	assert_int_equal(symlink(good, good_link), 0);
	assert_int_equal(mkdir(folder, 0700), 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(sock) >= sizeof a.sun_path) {
		sock[0] = '\0'; /* a scratch folder too deep for a socket address: no socket case */
		return 0;
	}
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s >= 0);
	strcpy(a.sun_path, sock);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	close(s); /* the socket file stays */
	return 0;
}

/* The path in msg, and what it is. */
static void refused(int rc, const char *path, const char *what)
{
	if (rc != NNH5_ERR_INVALID)
		fail_msg("'%s' -> %s, expected NNH5_ERR_INVALID (%s)", path, nnh5_status_name(rc),
			 nnh5_error_message());
	tu_expect_message(path, path, what, "not a regular file", (const char *)NULL);
}

struct special {
	const char *path;
	const char *what;
};

static void every_loader_refuses(void **state)
{
	struct special cases[] = {
		{ fifo, "FIFO" },       { fifo_link, "FIFO" }, { "/dev/zero", "character device" },
		{ folder, "folder" }, { sock, "socket" },
	};
	(void)state;
	alarm(HANG_LIMIT);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *p = cases[i].path, *w = cases[i].what;
		if (!*p)
			continue;
		nnh5_file *f = (nnh5_file *)1;
		nnh5_tensor *t = (nnh5_tensor *)1;
		nnh5_dict *d = (nnh5_dict *)1;
		nnh5_list *l = (nnh5_list *)1;
		nnh5_model *m = (nnh5_model *)1;
		nnh5_map *map = (nnh5_map *)1;
		nnh5_checkpoint *c = (nnh5_checkpoint *)1;
		nnh5_untrusted_report *r = NULL;
		nnh5_verify_result v;

		refused(nnh5_file_open(&f, p, NNH5_READ), p, w);
		assert_null(f);
		refused(nnh5_load_tensor(&t, p), p, w);
		assert_null(t);
		refused(nnh5_load_dict(&d, p), p, w);
		refused(nnh5_load_state_dict(&d, p), p, w);
		assert_null(d);
		refused(nnh5_load_list(&l, p), p, w);
		assert_null(l);
		refused(nnh5_load_model(&m, p), p, w);
		assert_null(m);
		refused(nnh5_verify_model(&v, p), p, w);
		refused(nnh5_map_open(&map, p, NULL), p, w);
		assert_null(map);
		refused(nnh5_checkpoint_load(&c, p), p, w);
		assert_null(c);
		/* the child's open check refuses it: the report says so */
		refused(nnh5_untrusted_check(&r, p, NULL), p, w);
		assert_non_null(r);
		assert_int_equal(r->entries[0].kind, NNH5_CHECK_OPEN);
		nnh5_untrusted_report_free(r);
	}
	alarm(0);
}

static void link_to_regular_file_loads(void **state)
{
	nnh5_tensor *t;
	nnh5_map *map;
	(void)state;
	alarm(HANG_LIMIT);
	ok(nnh5_load_tensor(&t, good_link));
	assert_int_equal(nnh5_tensor_numel(t), 4);
	nnh5_tensor_free(t);
	ok(nnh5_map_open(&map, good_link, NULL));
	nnh5_map_close(map);
	fails(NNH5_ERR_NOT_FOUND, nnh5_load_tensor(&t, tu_path("absent.h5")), "absent.h5");
	alarm(0);
}

/* Write pad bytes of filler, then n bytes of data, as the file path. */
static void write_cut(const char *path, int filler, size_t pad, const char *data, size_t n)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	for (size_t i = 0; i < pad; i++)
		fputc(filler, fp);
	assert_int_equal(fwrite(data, 1, n, fp), n);
	fclose(fp);
}

/* The verdict on a file HDF5 cannot open reads the signature through the checked descriptor. */
static void damaged_or_not_hdf5(void **state)
{
	const char *path = tu_path("cut.h5");
	size_t n;
	char *bytes = tu_slurp(good, &n);
	nnh5_tensor *t;
	(void)state;
	assert_non_null(bytes);
	write_cut(path, 0, 0, bytes, 200);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, path), "cut.h5", "damaged HDF5 file");
	/* the signature after a 512-byte user block */
	write_cut(path, 'u', 512, bytes, 200);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, path), "cut.h5", "damaged HDF5 file");
	/* no signature anywhere HDF5 looks */
	write_cut(path, 'x', 5000, bytes, 0);
	fails(NNH5_ERR_FORMAT, nnh5_load_tensor(&t, path), "cut.h5", "not an HDF5 file");
	free(bytes);
}

/* The check after HDF5's open: a descriptor of another file is a replaced file. */
static void replaced_file_is_refused(void **state)
{
	nnh5__regular r;
	(void)state;
	ok(nnh5__regular_open(&r, good, "open"));
	int other = open(tu_path("folder.h5"), O_RDONLY | O_DIRECTORY);
	assert_true(other >= 0);
	fails(NNH5_ERR_IO, nnh5__regular_same(&r, other, good, "open"), "replaced", "good.h5");
	ok(nnh5__regular_same(&r, r.fd, good, "open"));
	fails(NNH5_ERR_IO, nnh5__regular_same(&r, -1, good, "open"), "cannot check");
	close(other);
	nnh5__regular_close(&r);
	nnh5__regular_close(&r);
	assert_int_equal(r.fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_loader_refuses),
		cmocka_unit_test(link_to_regular_file_loads),
		cmocka_unit_test(damaged_or_not_hdf5),
		cmocka_unit_test(replaced_file_is_refused),
	};
	signal(SIGALRM, SIG_DFL);
	return cmocka_run_group_tests(tests, make_files, NULL);
}
