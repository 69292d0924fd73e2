/*
 * examples/mpi_train.c - data-parallel training with sharded optimizer
 * state, checkpointed collectively, resumable on another rank count.
 *
 *   mpirun -np 3 build/examples/mpi_train --dir run --steps 40 --every 5
 *   (kill it, or pass --die-at 17 to have rank 1 SIGKILL itself at step 17)
 *   mpirun -np 2 build/examples/mpi_train --dir run --steps 40 --every 5 --resume
 *   (--keep N: the newest N checkpoints are kept, default 2; 0 keeps all;
 *   --async: checkpoints are staged and written by a background thread
 *   while training goes on, which needs MPI_THREAD_MULTIPLE)
 *
 * A linear model W (12 x 5) learns a fixed target from a global batch of
 * 12 samples per step, split over the ranks (data parallelism). The ranks
 * exchange per-sample gradients and sum them in sample order, so every
 * rank count computes the same bits. Each rank owns a block of W's rows
 * and their momentum (the optimizer state is sharded, as ZeRO-1 shards
 * it): it updates its rows, then the ranks gather the new W. A checkpoint
 * every --every steps holds W and the momentum, each rank writing its rows
 * into one shared file (nnh5_mpi_checkpoints_save); --resume reads the
 * newest one back with whatever rank count runs now. The last step writes
 * W to DIR/final.h5, the same bytes whatever the rank count and however
 * often the run was interrupted.
 */
#include <nnh5.h>
#include <nnh5/mpi.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROWS 12
#define COLS 5
#define BATCH 12

static int rank, nranks;

static void die(const char *what, int rc)
{
	if (rank == 0)
		fprintf(stderr, "mpi_train: %s: %s: %s\n", what, nnh5_status_name(rc),
			nnh5_error_message());
	MPI_Finalize();
	exit(1);
}

#define CHECK(call)                      \
	do {                             \
		int rc_ = (call);        \
		if (rc_)                 \
			die(#call, rc_); \
	} while (0)

/* A deterministic number in [-1, 1) from a counter. */
static float unit(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (float)((double)(x >> 11) / (double)(1ull << 53)) * 2.0f - 1.0f;
}

/* Rows [lo, hi) owned by rank r: the even split of nnh5_mpi_sharding. */
static void rows_of(int r, int *lo, int *hi)
{
	*lo = r * (ROWS / nranks) + (r < ROWS % nranks ? r : ROWS % nranks);
	int n = r + 1;
	*hi = n * (ROWS / nranks) + (n < ROWS % nranks ? n : ROWS % nranks);
}

/* The sharding of a ROWS x COLS tensor cut by rows over the ranks. */
static nnh5_mpi_sharding row_sharding(void)
{
	nnh5_mpi_sharding s = NNH5_MPI_SHARDING_INIT;
	int64_t shape[2] = { ROWS, COLS };

	CHECK(nnh5_mpi_sharding_init(&s, 2, shape));
	s.parts[0] = nranks;
	s.coord[0] = rank;
	return s;
}

int main(int argc, char **argv)
{
	const char *dir = "mpi_train_run";
	int steps = 40, every = 5, die_at = -1, keep = 2;
	bool resume = false, async = false;
	static float w[ROWS * COLS], target[ROWS * COLS];
	static float grads[BATCH][ROWS * COLS];
	float mom_local[ROWS * COLS] = { 0 };

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--async") == 0)
			async = true;
	/* Async checkpoints write from a background thread that makes collective MPI calls. */
	int provided;
	MPI_Init_thread(&argc, &argv, async ? MPI_THREAD_MULTIPLE : MPI_THREAD_SINGLE, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &nranks);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
			steps = atoi(argv[++i]);
		else if (strcmp(argv[i], "--every") == 0 && i + 1 < argc)
			every = atoi(argv[++i]);
		else if (strcmp(argv[i], "--die-at") == 0 && i + 1 < argc)
			die_at = atoi(argv[++i]);
		else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
			keep = atoi(argv[++i]);
		else if (strcmp(argv[i], "--resume") == 0)
			resume = true;
	}
	int lo, hi;
	rows_of(rank, &lo, &hi);
	for (int i = 0; i < ROWS * COLS; i++)
		target[i] = unit(1000000 + (uint64_t)i);

	nnh5_checkpoint_options co = NNH5_CHECKPOINT_OPTIONS_INIT;
	co.keep_last = (unsigned)keep;
	co.async = async;
	nnh5_mpi_checkpoints *ck;
	CHECK(nnh5_mpi_checkpoints_open(&ck, MPI_COMM_WORLD, dir, &co));
	nnh5_mpi_sharding sh[2] = { row_sharding(), row_sharding() };
	int start = 0;
	int64_t latest;
	if (resume && nnh5_mpi_checkpoints_latest(&latest, ck) == NNH5_OK) {
		/* W is read whole on every rank, the momentum by this rank's rows. */
		nnh5_mpi_sharding whole = row_sharding();
		whole.parts[0] = 1;
		whole.coord[0] = 0;
		const char *wk[] = { "weight" }, *mk[] = { "momentum" };
		nnh5_dict *model, *opt;
		CHECK(nnh5_mpi_checkpoints_load(&model, ck, latest, "model", 1, wk, &whole));
		CHECK(nnh5_mpi_checkpoints_load(&opt, ck, latest, "optimizer", 1, mk, &sh[1]));
		memcpy(w, nnh5_tensor_data(nnh5_dict_get(model, "weight")), sizeof w);
		memcpy(mom_local + lo * COLS, nnh5_tensor_data(nnh5_dict_get(opt, "momentum")),
		       (size_t)(hi - lo) * COLS * sizeof(float));
		nnh5_dict_free(model);
		nnh5_dict_free(opt);
		start = (int)latest;
		if (rank == 0)
			printf("resumed at step %d on %d ranks\n", start, nranks);
	}
	int *counts = malloc((size_t)nranks * sizeof *counts);
	int *displs = malloc((size_t)nranks * sizeof *displs);
	for (int step = start; step < steps; step++) {
		if (step == die_at && rank == (nranks > 1 ? 1 : 0))
			raise(SIGKILL);
		/* Samples [b0, b1) of this step's global batch are this rank's. */
		int b0 = rank * (BATCH / nranks) + (rank < BATCH % nranks ? rank : BATCH % nranks);
		int b1 = (rank + 1) * (BATCH / nranks) +
			 (rank + 1 < BATCH % nranks ? rank + 1 : BATCH % nranks);
		for (int b = b0; b < b1; b++) {
			float x[COLS], err[ROWS];
			for (int c = 0; c < COLS; c++)
				x[c] = unit((uint64_t)step * 7919 + (uint64_t)b * 31 + (uint64_t)c);
			for (int r = 0; r < ROWS; r++) {
				float y = 0, t = 0;
				for (int c = 0; c < COLS; c++) {
					y += w[r * COLS + c] * x[c];
					t += target[r * COLS + c] * x[c];
				}
				err[r] = y - t;
			}
			for (int r = 0; r < ROWS; r++)
				for (int c = 0; c < COLS; c++)
					grads[b][r * COLS + c] = err[r] * x[c];
		}
		/* Every per-sample gradient on every rank, summed in sample order. */
		for (int r = 0; r < nranks; r++) {
			int a = r * (BATCH / nranks) + (r < BATCH % nranks ? r : BATCH % nranks);
			int e = (r + 1) * (BATCH / nranks) +
				(r + 1 < BATCH % nranks ? r + 1 : BATCH % nranks);
			counts[r] = (e - a) * ROWS * COLS;
			displs[r] = a * ROWS * COLS;
		}
		MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, grads, counts, displs, MPI_FLOAT,
			       MPI_COMM_WORLD);
		/* This rank's rows: momentum SGD. */
		for (int i = lo * COLS; i < hi * COLS; i++) {
			float g = 0;
			for (int b = 0; b < BATCH; b++)
				g += grads[b][i];
			g /= BATCH;
			mom_local[i] = 0.9f * mom_local[i] + g;
			w[i] -= 0.05f * mom_local[i];
		}
		for (int r = 0; r < nranks; r++) {
			int a, e;
			rows_of(r, &a, &e);
			counts[r] = (e - a) * COLS;
			displs[r] = a * COLS;
		}
		MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, w, counts, displs, MPI_FLOAT,
			       MPI_COMM_WORLD);
		if ((step + 1) % every == 0 || step + 1 == steps) {
			int64_t shard[2] = { hi - lo, COLS };
			nnh5_tensor *wt, *mt;
			nnh5_dict *model, *opt;
			nnh5_checkpoint *summary;
			double loss = 0;
			for (int i = 0; i < ROWS * COLS; i++)
				loss += (double)(w[i] - target[i]) * (double)(w[i] - target[i]);
			CHECK(nnh5_tensor_view(&wt, NNH5_FLOAT32, 2, shard, w + lo * COLS,
					       (size_t)(hi - lo) * COLS * sizeof(float)));
			CHECK(nnh5_tensor_view(&mt, NNH5_FLOAT32, 2, shard, mom_local + lo * COLS,
					       (size_t)(hi - lo) * COLS * sizeof(float)));
			CHECK(nnh5_dict_new(&model));
			CHECK(nnh5_dict_new(&opt));
			CHECK(nnh5_dict_set(model, "weight", wt));
			CHECK(nnh5_dict_set(opt, "momentum", mt));
			CHECK(nnh5_checkpoint_new(&summary, step + 1));
			CHECK(nnh5_checkpoint_set_metric(summary, "distance", loss));
			nnh5_mpi_section secs[2] = { { "model", model, &sh[0] },
						     { "optimizer", opt, &sh[1] } };
			CHECK(nnh5_mpi_checkpoints_save(ck, summary, 2, secs));
			if (rank == 0)
				printf("step %d: distance to the target %.6f (checkpoint)\n", step + 1,
				       loss);
			nnh5_checkpoint_free(summary);
			nnh5_dict_free(model);
			nnh5_dict_free(opt);
		}
	}
	/* No other HDF5 call while a background save is in flight. */
	CHECK(nnh5_mpi_checkpoints_wait(ck));
	if (rank == 0) {
		char path[4096];
		int64_t shape[2] = { ROWS, COLS };
		nnh5_tensor *wt;
		snprintf(path, sizeof path, "%s/final.h5", dir);
		CHECK(nnh5_tensor_view(&wt, NNH5_FLOAT32, 2, shape, w, sizeof w));
		CHECK(nnh5_save_tensor(path, wt));
		nnh5_tensor_free(wt);
	}
	free(counts);
	free(displs);
	CHECK(nnh5_mpi_checkpoints_close(ck));
	MPI_Finalize();
	return 0;
}
