/*
 * tests/tool/ckpt_trainer.c - checkpoint folders for test_ckpt_folder.py.
 *
 *   ckpt_trainer DIR STEP...      save a checkpoint of each step (keep every one)
 *   ckpt_trainer --run DIR SECS   a trainer: keep_last 2, fast (non-durable)
 *                                 saves of steps 1, 2, ... for SECS seconds;
 *                                 prints the number of saves
 */
#include <nnh5.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int save_step(nnh5_checkpoint_manager *m, int64_t step)
{
	int64_t shape[] = { 16, 16 };
	nnh5_checkpoint *c;
	nnh5_dict *d;
	nnh5_tensor *t;
	nnh5_rng r;
	int rc;

	nnh5_rng_seed(&r, (uint64_t)step);
	if ((rc = nnh5_checkpoint_new(&c, step)) != NNH5_OK)
		return rc;
	if ((rc = nnh5_dict_new(&d)) == NNH5_OK &&
	    (rc = nnh5_tensor_randn(&t, NNH5_FLOAT32, 2, shape, &r)) == NNH5_OK &&
	    (rc = nnh5_dict_set(d, "w", t)) != NNH5_OK)
		nnh5_tensor_free(t);
	if (rc == NNH5_OK)
		rc = nnh5_checkpoint_set_state(c, "model", d);
	else
		nnh5_dict_free(d);
	if (rc == NNH5_OK)
		rc = nnh5_checkpoint_set_metric(c, "loss", 1.0 / (double)(step % 1000 + 1));
	if (rc == NNH5_OK)
		rc = nnh5_checkpoint_manager_save(m, c);
	nnh5_checkpoint_free(c);
	return rc;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	nnh5_checkpoint_options o = NNH5_CHECKPOINT_OPTIONS_INIT;
	nnh5_checkpoint_manager *m;
	bool run = argc == 4 && strcmp(argv[1], "--run") == 0;
	long saves = 0;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: ckpt_trainer DIR STEP... | --run DIR SECONDS\n");
		return 2;
	}
	o.keep_last = run ? 2 : 0;
	o.durable = !run;
	if ((rc = nnh5_checkpoint_manager_open(&m, argv[run ? 2 : 1], &o)) != NNH5_OK)
		goto fail;
	if (run) {
		double end = now() + atof(argv[3]);
		for (int64_t step = 1; now() < end; step++, saves++)
			if ((rc = save_step(m, step)) != NNH5_OK)
				goto fail;
		printf("%ld\n", saves);
	} else {
		for (int i = 2; i < argc; i++)
			if ((rc = save_step(m, strtoll(argv[i], NULL, 10))) != NNH5_OK)
				goto fail;
	}
	if ((rc = nnh5_checkpoint_manager_close(m)) != NNH5_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "ckpt_trainer: %s\n", nnh5_error_message());
	return 1;
}
