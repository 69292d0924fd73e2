/*
 * bench/io_bench.c - how fast does nnh5 save and load, and at what memory
 * cost? One run measures, on the same tensors and the same machine:
 *
 *   workloads: the seed MLP's state dict (4 tensors), a ~512 MiB state dict
 *   of 240 float32 tensors (20 transformer blocks of 12 tensors), and 10,000
 *   tensors of 1 KiB in 1,000 modules;
 *
 *   methods: raw write() / write()+fsync / read() of the same bytes into one
 *   file (the physical limit; reads go into newly allocated buffers, one per
 *   tensor, as a load must), nnh5 saves with durable off and on (the
 *   default), nnh5 loads with checksum verification on (the default) and off,
 *   and, through a Python script (bench/peers.py) when Debian's python3-torch
 *   and python3-h5py are installed, torch.save / torch.load and h5py;
 *
 *   lazy loading (nnh5/map.h): open the 512 MiB file and read one 4 KiB
 *   tensor, against the same on a 1 MiB file; map a whole state dict.
 *
 * Every timed operation starts after sync(), so writeback of an earlier
 * file does not land on the next one, and every save writes a new file (the
 * previous round's is removed, untimed, before); files stay in the page cache, so loads
 * measure the library, not the disk. Each round runs every method once, in
 * turn, so machine noise spreads over all of them; the table shows medians.
 * Peak memory is measured once per method in a fresh process: the peak
 * resident size during the operation (VmHWM, reset through
 * /proc/self/clear_refs) minus the resident size before it.
 *
 * Usage: io_bench [--reps N] [--dir DIR] [--peers SCRIPT] [--only mlp|big|small] [--keep]
 * The files (about 2 GiB with the peers) are removed at the end unless --keep.
 * bench/speed.sh runs this and bench/nn_bench for the table in doc/SPEED.md.
 */
#define _GNU_SOURCE /* sync() */
#include <nnh5.h>
#include <nnh5/map.h>

#include "bench_util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

static void die(const char *what)
{
	fprintf(stderr, "io_bench: %s: %s\n", what, nnh5_error_message());
	exit(1);
}

#define CHECK(call)                      \
	do {                             \
		if ((call) != NNH5_OK)   \
			die(#call);      \
	} while (0)

/* ------------------------------------------------------------------ */
/* Workloads                                                           */

typedef struct workload {
	const char *id;    /* mlp, big, small */
	char label[64];
	nnh5_dict *sd;
	size_t bytes;      /* the tensors' bytes */
	char nnh5_path[4096], raw_path[4096];
} workload;

static nnh5_rng rng;

static void add(nnh5_dict *sd, const char *key, size_t ndim, const int64_t *shape)
{
	nnh5_tensor *t;
	CHECK(nnh5_tensor_uniform(&t, NNH5_FLOAT32, ndim, shape, -1.0, 1.0, &rng));
	CHECK(nnh5_dict_set(sd, key, t));
}

static void build_mlp(nnh5_dict *sd)
{
	add(sd, "hidden.weight", 2, (int64_t[]){ 256, 20 });
	add(sd, "hidden.bias", 1, (int64_t[]){ 256 });
	add(sd, "output.weight", 2, (int64_t[]){ 10, 256 });
	add(sd, "output.bias", 1, (int64_t[]){ 10 });
}

/* 20 blocks of 12 tensors, d = 1024, ffn = 1216: 240 tensors, ~511 MiB. */
#define BIG_D 1024
#define BIG_FFN 1216
static void build_big(nnh5_dict *sd)
{
	char key[128];
	for (int l = 0; l < 20; l++) {
#define T(name, ...)                                                                   \
	do {                                                                           \
		const int64_t s_[] = { __VA_ARGS__ };                                   \
		snprintf(key, sizeof key, "layers.%d.%s", l, name);                    \
		add(sd, key, sizeof s_ / sizeof s_[0], s_);                             \
	} while (0)
		T("ln1.weight", BIG_D);
		T("ln1.bias", BIG_D);
		T("attn.qkv.weight", 3 * BIG_D, BIG_D);
		T("attn.qkv.bias", 3 * BIG_D);
		T("attn.proj.weight", BIG_D, BIG_D);
		T("attn.proj.bias", BIG_D);
		T("ln2.weight", BIG_D);
		T("ln2.bias", BIG_D);
		T("mlp.fc1.weight", BIG_FFN, BIG_D);
		T("mlp.fc1.bias", BIG_FFN);
		T("mlp.fc2.weight", BIG_D, BIG_FFN);
		T("mlp.fc2.bias", BIG_D);
#undef T
	}
}

/* 1,000 modules of 10 tensors of 256 float32 (1 KiB). */
static void build_small(nnh5_dict *sd)
{
	char key[64];
	for (int m = 0; m < 1000; m++)
		for (int j = 0; j < 10; j++) {
			snprintf(key, sizeof key, "layers.%d.t%d", m, j);
			add(sd, key, 1, (int64_t[]){ 256 });
		}
}

static void build(workload *w, const char *dir)
{
	CHECK(nnh5_dict_new(&w->sd));
	if (strcmp(w->id, "mlp") == 0)
		build_mlp(w->sd);
	else if (strcmp(w->id, "big") == 0)
		build_big(w->sd);
	else
		build_small(w->sd);
	w->bytes = 0;
	for (size_t i = 0; i < nnh5_dict_len(w->sd); i++)
		w->bytes += nnh5_tensor_nbytes(nnh5_dict_value(w->sd, i));
	if (strcmp(w->id, "mlp") == 0)
		snprintf(w->label, sizeof w->label, "seed MLP, 4 tensors, %.1f KiB",
			 (double)w->bytes / 1024.0);
	else if (strcmp(w->id, "big") == 0)
		snprintf(w->label, sizeof w->label, "240 tensors, %.1f MiB", (double)w->bytes / MIB);
	else
		snprintf(w->label, sizeof w->label, "10,000 x 1 KiB in 1,000 modules");
	snprintf(w->nnh5_path, sizeof w->nnh5_path, "%s/%s.h5", dir, w->id);
	snprintf(w->raw_path, sizeof w->raw_path, "%s/%s.raw", dir, w->id);
}

/* ------------------------------------------------------------------ */
/* Methods                                                             */

typedef enum method {
	RAW_WRITE,
	RAW_WRITE_FSYNC,
	NNH5_SAVE_FAST,    /* durable = false */
	NNH5_SAVE,         /* the default: durable */
	RAW_READ,
	NNH5_LOAD,         /* the default: checksums verified */
	NNH5_LOAD_NOVERIFY,
	METHOD_COUNT
} method;

static const char *method_name[METHOD_COUNT] = {
	"raw write()",
	"raw write() + fsync",
	"nnh5 save, durable off",
	"nnh5 save (default: durable)",
	"raw read() into new buffers",
	"nnh5 load (default: verify checksums)",
	"nnh5 load, verify off",
};

static void write_all(int fd, const void *p, size_t n, const char *path)
{
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "io_bench: write '%s': %s\n", path, strerror(errno));
			exit(1);
		}
		c += k;
		n -= (size_t)k;
	}
}

static void raw_write(const workload *w, bool do_fsync)
{
	int fd = open(w->raw_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(w->raw_path);
		exit(1);
	}
	for (size_t i = 0; i < nnh5_dict_len(w->sd); i++) {
		const nnh5_tensor *t = nnh5_dict_value(w->sd, i);
		write_all(fd, nnh5_tensor_data(t), nnh5_tensor_nbytes(t), w->raw_path);
	}
	if (do_fsync && fsync(fd) < 0) {
		perror("fsync");
		exit(1);
	}
	close(fd);
}

/* Read every tensor's bytes into its own new buffer; *bufs to free later. */
static void raw_read(void ***bufs, const workload *w)
{
	size_t n = nnh5_dict_len(w->sd);
	void **b = malloc(n * sizeof *b);
	int fd = open(w->raw_path, O_RDONLY);
	if (fd < 0 || !b) {
		perror(w->raw_path);
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		size_t want = nnh5_tensor_nbytes(nnh5_dict_value(w->sd, i)), got = 0;
		b[i] = malloc(want);
		while (got < want) {
			ssize_t k = read(fd, (char *)b[i] + got, want - got);
			if (k <= 0) {
				fprintf(stderr, "io_bench: read '%s' failed\n", w->raw_path);
				exit(1);
			}
			got += (size_t)k;
		}
	}
	close(fd);
	*bufs = b;
}

static void nnh5_save(const workload *w, bool durable)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	o.durable = durable;
	CHECK(nnh5_file_open_ext(&f, w->nnh5_path, NNH5_CREATE, &o));
	CHECK(nnh5_file_write_state_dict(f, "/", w->sd));
	CHECK(nnh5_file_close(f));
}

static nnh5_dict *nnh5_load(const workload *w, bool verify)
{
	nnh5_open_options o = NNH5_OPEN_OPTIONS_INIT;
	nnh5_file *f;
	nnh5_dict *d;
	o.verify_checksums = verify;
	CHECK(nnh5_file_open_ext(&f, w->nnh5_path, NNH5_READ, &o));
	CHECK(nnh5_file_read_state_dict(&d, f, "/"));
	CHECK(nnh5_file_close(f));
	return d;
}

/*
 * Before a save, remove the file the previous round wrote (untimed): every
 * method then writes a new file. Replacing an existing file would add the
 * filesystem's cost of freeing the old one's blocks (on this ext4 with
 * discard, 0.3 to 1.5 s for 512 MiB), the same for every method and nothing
 * to do with the writer. Then sync(), so no writeback is pending.
 */
static void prepare(const workload *w, method m)
{
	if (m == RAW_WRITE || m == RAW_WRITE_FSYNC)
		unlink(w->raw_path);
	else if (m == NNH5_SAVE || m == NNH5_SAVE_FAST)
		unlink(w->nnh5_path);
	sync();
}

/* Method m on w, once: what a load made comes back in *bufs or *d. */
static void perform(const workload *w, method m, void ***bufs, nnh5_dict **d)
{
	switch (m) {
	case RAW_WRITE: raw_write(w, false); break;
	case RAW_WRITE_FSYNC: raw_write(w, true); break;
	case NNH5_SAVE_FAST: nnh5_save(w, false); break;
	case NNH5_SAVE: nnh5_save(w, true); break;
	case RAW_READ: raw_read(bufs, w); break;
	case NNH5_LOAD: *d = nnh5_load(w, true); break;
	case NNH5_LOAD_NOVERIFY: *d = nnh5_load(w, false); break;
	default: break;
	}
}

/* Run method m once on w; returns milliseconds (what it allocated is freed after timing). */
static double run(const workload *w, method m)
{
	void **bufs = NULL;
	nnh5_dict *d = NULL;
	double t0, t1;

	prepare(w, m);
	t0 = bench_now_ms();
	perform(w, m, &bufs, &d);
	t1 = bench_now_ms();
	if (bufs) {
		for (size_t i = 0; i < nnh5_dict_len(w->sd); i++)
			free(bufs[i]);
		free(bufs);
	}
	if (d) {
		if (nnh5_dict_len(d) != nnh5_dict_len(w->sd)) {
			fprintf(stderr, "io_bench: %s: loaded %zu tensors, expected %zu\n", w->id,
				nnh5_dict_len(d), nnh5_dict_len(w->sd));
			exit(1);
		}
		nnh5_dict_free(d);
	}
	return t1 - t0;
}

/* ------------------------------------------------------------------ */
/* Peak memory                                                         */

/*
 * In a fresh process (this program, run with --measure): build w, then run m
 * once and print the resident bytes it added at its peak. A fresh process,
 * because memory an earlier round freed stays in this one's heap and would
 * hide new allocations.
 */
static int measure_main(const workload *w, method m)
{
	double r = -1;

	prepare(w, m);
	if (bench_reset_peak()) {
		long before = bench_status_kib("VmRSS:");
		void **bufs = NULL;
		nnh5_dict *d = NULL;
		perform(w, m, &bufs, &d);
		r = (double)(bench_status_kib("VmHWM:") - before) * 1024.0;
	}
	printf("%.0f\n", r);
	return 0;
}

/* Bytes the operation added at its peak, measured by a fresh process; -1 if unknown. */
static double peak_extra(const workload *w, method m, const char *dir)
{
	char cmd[8400], self[4096];
	double extra = -1;
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(cmd, sizeof cmd, "'%s' --measure %s %d --dir '%s'", self, w->id, (int)m, dir);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	if (fscanf(p, "%lf", &extra) != 1)
		extra = -1;
	pclose(p);
	return extra;
}

/* ------------------------------------------------------------------ */
/* Lazy loading                                                        */

typedef enum lazy_op {
	LAZY_ONE_BIG,   /* map open + one 4 KiB tensor of the 512 MiB file */
	LAZY_ONE_SMALL, /* the same on a 1 MiB file */
	EAGER_ONE_BIG,  /* nnh5_file_open + nnh5_file_read_tensor of that tensor */
	LAZY_ALL_BIG,   /* map open + the whole state dict as views (nothing touched) */
	LAZY_OP_COUNT
} lazy_op;

static const char *lazy_name[LAZY_OP_COUNT] = {
	"nnh5 map: open + one 4 KiB tensor (512 MiB file)",
	"nnh5 map: open + one 4 KiB tensor (1 MiB file)",
	"nnh5 file: open + read that 4 KiB tensor (512 MiB file)",
	"nnh5 map: open + all 240 tensors as views (512 MiB file)",
};

#define ONE_KEY "layers/10/ln1/weight"

static volatile float sink;

static double touch(const nnh5_tensor *t)
{
	const float *p = nnh5_tensor_data(t);
	float s = 0;
	for (size_t i = 0; i < nnh5_tensor_numel(t); i++)
		s += p[i];
	sink = s;
	return (double)s;
}

static double run_lazy(lazy_op op, const char *big, const char *small)
{
	nnh5_map *m;
	nnh5_file *f;
	nnh5_tensor *t;
	nnh5_dict *d;
	double t0 = bench_now_ms(), t1;

	switch (op) {
	case LAZY_ONE_BIG:
	case LAZY_ONE_SMALL:
		CHECK(nnh5_map_open(&m, op == LAZY_ONE_BIG ? big : small, NULL));
		CHECK(nnh5_map_tensor(&t, m, ONE_KEY));
		touch(t);
		t1 = bench_now_ms();
		nnh5_tensor_free(t);
		nnh5_map_close(m);
		break;
	case EAGER_ONE_BIG:
		CHECK(nnh5_file_open(&f, big, NNH5_READ));
		CHECK(nnh5_file_read_tensor(&t, f, ONE_KEY));
		touch(t);
		t1 = bench_now_ms();
		nnh5_tensor_free(t);
		nnh5_file_close(f);
		break;
	default:
		CHECK(nnh5_map_open(&m, big, NULL));
		CHECK(nnh5_map_state_dict(&d, m, "/"));
		t1 = bench_now_ms();
		nnh5_dict_free(d);
		nnh5_map_close(m);
		break;
	}
	return t1 - t0;
}

/* ------------------------------------------------------------------ */
/* Peers (torch, h5py) through bench/peers.py                          */

enum { TORCH_SAVE, TORCH_LOAD, H5PY_WRITE, H5PY_READ, PEER_COUNT };
static const char *peer_op[PEER_COUNT] = { "torch.save", "torch.load", "h5py.write",
					   "h5py.read" };

typedef struct peer_result {
	double ms[PEER_COUNT];   /* < 0: not measured */
	double peak[PEER_COUNT]; /* bytes, < 0: unknown */
} peer_result;

static void run_peers(peer_result *res, workload *ws, size_t nw, const char *script,
		      const char *dir, int reps)
{
	char cmd[16384];
	size_t len;

	for (size_t i = 0; i < nw; i++)
		for (int k = 0; k < PEER_COUNT; k++)
			res[i].ms[k] = res[i].peak[k] = -1;
	if (!script)
		return;
	len = (size_t)snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --reps %d --dir '%s'",
			       script, reps, dir);
	for (size_t i = 0; i < nw && len < sizeof cmd; i++)
		len += (size_t)snprintf(cmd + len, sizeof cmd - len, " %s='%s'", ws[i].id,
					ws[i].nnh5_path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	char line[512], id[64], op[64];
	double ms, peak;
	while (fgets(line, sizeof line, p)) {
		if (sscanf(line, "RESULT %63s %63s %lf %lf", id, op, &ms, &peak) != 4) {
			fputs(line, stderr);
			continue;
		}
		for (size_t i = 0; i < nw; i++)
			for (int k = 0; k < PEER_COUNT; k++)
				if (strcmp(ws[i].id, id) == 0 && strcmp(peer_op[k], op) == 0) {
					res[i].ms[k] = ms;
					res[i].peak[k] = peak;
				}
	}
	pclose(p);
}

/* ------------------------------------------------------------------ */
/* The table                                                           */

static void fmt_ms(char *buf, size_t n, double ms)
{
	if (ms < 0)
		snprintf(buf, n, "n/a");
	else if (ms < 10)
		snprintf(buf, n, "%.3f", ms);
	else
		snprintf(buf, n, "%.1f", ms);
}

static void fmt_mib(char *buf, size_t n, double bytes)
{
	if (bytes < 0)
		snprintf(buf, n, "n/a");
	else
		snprintf(buf, n, "%.1f", bytes / MIB);
}

static void row(const workload *w, const char *op, const char *what, double ms, double raw_ms,
		const char *raw_name, double torch_ms, double peak)
{
	char t[32], thr[32], vr[64] = "", vt[32] = "", pk[32];
	fmt_ms(t, sizeof t, ms);
	if (ms > 0)
		snprintf(thr, sizeof thr, "%.0f", (double)w->bytes / MIB / (ms / 1e3));
	else
		snprintf(thr, sizeof thr, "n/a");
	if (raw_ms > 0 && ms > 0 && raw_name)
		snprintf(vr, sizeof vr, "%.2fx %s", raw_ms / ms, raw_name);
	if (torch_ms > 0 && ms > 0)
		snprintf(vt, sizeof vt, "%.2fx", torch_ms / ms);
	fmt_mib(pk, sizeof pk, peak);
	printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", w->label, op, what, t, thr, vr, vt,
	       pk);
}

typedef struct target {
	char text[256];
	bool met;
} target;

static target targets[32];
static size_t n_targets;

static void add_target(bool met, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_target(bool met, const char *fmt, ...)
{
	va_list ap;
	if (n_targets == sizeof targets / sizeof targets[0])
		return;
	va_start(ap, fmt);
	vsnprintf(targets[n_targets].text, sizeof targets[0].text, fmt, ap);
	va_end(ap);
	targets[n_targets++].met = met;
}

static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

int main(int argc, char **argv)
{
	int reps = 7;
	const char *dir = "io_bench_tmp", *peers = NULL, *only = NULL, *measure = NULL;
	int measure_method = 0;
	bool keep = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
			reps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--peers") == 0 && i + 1 < argc)
			peers = argv[++i];
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			only = argv[++i];
		else if (strcmp(argv[i], "--keep") == 0)
			keep = true;
		else if (strcmp(argv[i], "--measure") == 0 && i + 2 < argc) {
			measure = argv[++i];
			measure_method = atoi(argv[++i]);
		}
		else {
			fprintf(stderr,
				"usage: io_bench [--reps N] [--dir DIR] [--peers bench/peers.py] "
				"[--only mlp|big|small] [--keep]\n");
			return 2;
		}
	}
	if (reps < 1)
		reps = 1;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		perror(dir);
		return 1;
	}

	workload ws[3] = { { .id = "mlp" }, { .id = "big" }, { .id = "small" } };
	size_t nw = 0;
	nnh5_rng_seed(&rng, 7);
	if (measure) {
		for (size_t i = 0; i < 3; i++)
			if (strcmp(measure, ws[i].id) == 0 && measure_method >= 0 &&
			    measure_method < METHOD_COUNT) {
				build(&ws[i], dir);
				return measure_main(&ws[i], (method)measure_method);
			}
		return 2;
	}
	for (size_t i = 0; i < 3; i++)
		if (!only || strcmp(only, ws[i].id) == 0) {
			ws[nw] = ws[i];
			build(&ws[nw], dir);
			nw++;
		}
	double load0 = loadavg();

	/* Timed rounds: round 0 warms up (files, page cache, HDF5). */
	double *ms[3][METHOD_COUNT];
	for (size_t i = 0; i < nw; i++) {
		for (int m = 0; m < METHOD_COUNT; m++)
			ms[i][m] = calloc((size_t)reps, sizeof(double));
		for (int r = 0; r <= reps; r++)
			for (int m = 0; m < METHOD_COUNT; m++) {
				double t = run(&ws[i], (method)m);
				if (r > 0)
					ms[i][m][r - 1] = t;
			}
	}
	double med[3][METHOD_COUNT], peak[3][METHOD_COUNT];
	for (size_t i = 0; i < nw; i++)
		for (int m = 0; m < METHOD_COUNT; m++) {
			med[i][m] = bench_median(ms[i][m], (size_t)reps);
			peak[i][m] = peak_extra(&ws[i], (method)m, dir);
			free(ms[i][m]);
		}

	/* Lazy loading: the 512 MiB file and a 1 MiB file with the same key. */
	double lazy_med[LAZY_OP_COUNT];
	bool have_lazy = false;
	for (size_t i = 0; i < nw; i++) {
		if (strcmp(ws[i].id, "big") != 0)
			continue;
		char small[4200];
		nnh5_dict *sd;
		snprintf(small, sizeof small, "%s/one-mib.h5", dir);
		CHECK(nnh5_dict_new(&sd));
		add(sd, "layers.10.ln1.weight", 1, (int64_t[]){ 1024 });
		add(sd, "layers.10.fc.weight", 2, (int64_t[]){ 255, 1024 });
		CHECK(nnh5_save_state_dict(small, sd));
		nnh5_dict_free(sd);
		int n = reps * 15 + 1;
		double *v = calloc((size_t)n, sizeof *v);
		for (int op = 0; op < LAZY_OP_COUNT; op++) {
			run_lazy((lazy_op)op, ws[i].nnh5_path, small); /* warm up */
		}
		double *all[LAZY_OP_COUNT];
		for (int op = 0; op < LAZY_OP_COUNT; op++)
			all[op] = calloc((size_t)n, sizeof(double));
		for (int r = 0; r < n; r++)
			for (int op = 0; op < LAZY_OP_COUNT; op++)
				all[op][r] = run_lazy((lazy_op)op, ws[i].nnh5_path, small);
		for (int op = 0; op < LAZY_OP_COUNT; op++) {
			lazy_med[op] = bench_median(all[op], (size_t)n);
			free(all[op]);
		}
		free(v);
		have_lazy = true;
	}

	peer_result pr[3];
	run_peers(pr, ws, nw, peers, dir, reps);
	double load1 = loadavg();

	printf("nnh5 %s I/O benchmark: medians of %d runs (after one warm-up), files in the page "
	       "cache, load average %.1f before and %.1f after.\n",
	       nnh5_version(), reps, load0, load1);
	printf("MiB/s counts the tensors' bytes. \"vs raw\": raw time / this time (1.00x = the "
	       "speed of plain write()/read() of the same bytes). \"vs torch\": torch.save or "
	       "torch.load time / this time. Peak extra: resident memory the operation added at "
	       "its peak (for saves, beyond the tensors already in memory).\n\n");
	printf("| workload | op | method | median ms | MiB/s | vs raw | vs torch | peak extra MiB |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < nw; i++) {
		const workload *w = &ws[i];
		double tsave = pr[i].ms[TORCH_SAVE], tload = pr[i].ms[TORCH_LOAD];
		double rw = med[i][RAW_WRITE], rwf = med[i][RAW_WRITE_FSYNC], rr = med[i][RAW_READ];
		row(w, "save", method_name[RAW_WRITE], rw, rw, "write()", tsave, peak[i][RAW_WRITE]);
		row(w, "save", method_name[RAW_WRITE_FSYNC], rwf, rwf, "write()+fsync", tsave,
		    peak[i][RAW_WRITE_FSYNC]);
		row(w, "save", method_name[NNH5_SAVE_FAST], med[i][NNH5_SAVE_FAST], rw, "write()",
		    tsave, peak[i][NNH5_SAVE_FAST]);
		row(w, "save", method_name[NNH5_SAVE], med[i][NNH5_SAVE], rwf, "write()+fsync", tsave,
		    peak[i][NNH5_SAVE]);
		row(w, "save", "torch.save", tsave, rw, "write()", tsave, pr[i].peak[TORCH_SAVE]);
		row(w, "save", "h5py", pr[i].ms[H5PY_WRITE], rw, "write()", tsave,
		    pr[i].peak[H5PY_WRITE]);
		row(w, "load", method_name[RAW_READ], rr, rr, "read()", tload, peak[i][RAW_READ]);
		row(w, "load", method_name[NNH5_LOAD], med[i][NNH5_LOAD], rr, "read()", tload,
		    peak[i][NNH5_LOAD]);
		row(w, "load", method_name[NNH5_LOAD_NOVERIFY], med[i][NNH5_LOAD_NOVERIFY], rr,
		    "read()", tload, peak[i][NNH5_LOAD_NOVERIFY]);
		row(w, "load", "torch.load", tload, rr, "read()", tload, pr[i].peak[TORCH_LOAD]);
		row(w, "load", "h5py", pr[i].ms[H5PY_READ], rr, "read()", tload,
		    pr[i].peak[H5PY_READ]);

		double save_mem_limit = 16 * MIB, load_mem_limit = 0.05 * (double)w->bytes;
		if (strcmp(w->id, "big") == 0) {
			add_target(rw / med[i][NNH5_SAVE_FAST] >= 0.85,
				   "512 MiB save >= 0.85x raw write(): %.2fx (durable off); durable "
				   "save vs write()+fsync: %.2fx",
				   rw / med[i][NNH5_SAVE_FAST], rwf / med[i][NNH5_SAVE]);
			add_target(rr / med[i][NNH5_LOAD] >= 0.85,
				   "512 MiB load >= 0.85x raw read(): %.2fx with checksums verified, "
				   "%.2fx without",
				   rr / med[i][NNH5_LOAD], rr / med[i][NNH5_LOAD_NOVERIFY]);
		}
		if (strcmp(w->id, "small") == 0 && tsave > 0) {
			add_target(tsave / med[i][NNH5_SAVE_FAST] >= 2.0,
				   "10,000 tensors: save >= 2x faster than torch.save: %.2fx durable "
				   "off, %.2fx durable (default)",
				   tsave / med[i][NNH5_SAVE_FAST], tsave / med[i][NNH5_SAVE]);
			add_target(tload / med[i][NNH5_LOAD] >= 2.0,
				   "10,000 tensors: load >= 2x faster than torch.load: %.2fx verified "
				   "(default), %.2fx verify off",
				   tload / med[i][NNH5_LOAD], tload / med[i][NNH5_LOAD_NOVERIFY]);
		}
		double sp = peak[i][NNH5_SAVE] > peak[i][NNH5_SAVE_FAST] ? peak[i][NNH5_SAVE]
									  : peak[i][NNH5_SAVE_FAST];
		double lp = peak[i][NNH5_LOAD] - (double)w->bytes;
		if (peak[i][NNH5_SAVE] >= 0)
			add_target(sp <= save_mem_limit, "%s: save adds <= 16 MiB: %.1f MiB", w->label,
				   sp / MIB);
		if (peak[i][NNH5_LOAD] >= 0)
			add_target(lp <= load_mem_limit,
				   "%s: eager load peak <= 1.05x the tensor bytes: %.3fx (%.1f MiB over)",
				   w->label, peak[i][NNH5_LOAD] / (double)w->bytes, lp / MIB);
	}
	if (have_lazy) {
		printf("\n| lazy loading | median ms |\n|---|---|\n");
		for (int op = 0; op < LAZY_OP_COUNT; op++)
			printf("| %s | %.3f |\n", lazy_name[op], lazy_med[op]);
		add_target(lazy_med[LAZY_ONE_BIG] < 1.0 &&
				   lazy_med[LAZY_ONE_BIG] <= 2.0 * lazy_med[LAZY_ONE_SMALL],
			   "lazy open + one 4 KiB tensor < 1 ms and within 2x of a 1 MiB file: "
			   "%.3f ms vs %.3f ms (%.2fx)",
			   lazy_med[LAZY_ONE_BIG], lazy_med[LAZY_ONE_SMALL],
			   lazy_med[LAZY_ONE_BIG] / lazy_med[LAZY_ONE_SMALL]);
	}
	printf("\nTargets (issue 7):\n");
	for (size_t i = 0; i < n_targets; i++)
		printf("- %s %s\n", targets[i].met ? "met:   " : "MISSED:", targets[i].text);
	for (size_t i = 0; i < nw; i++) {
		if (!keep) {
			static const char *const peer_files[] = { ".pt", ".h5py.h5" };
			char p[4200];
			unlink(ws[i].nnh5_path);
			unlink(ws[i].raw_path);
			for (size_t k = 0; k < 2; k++) {
				snprintf(p, sizeof p, "%s/%s%s", dir, ws[i].id, peer_files[k]);
				unlink(p);
			}
		}
		nnh5_dict_free(ws[i].sd);
	}
	if (!keep) {
		char p[4200];
		snprintf(p, sizeof p, "%s/one-mib.h5", dir);
		unlink(p);
		rmdir(dir);
	}
	return 0;
}
