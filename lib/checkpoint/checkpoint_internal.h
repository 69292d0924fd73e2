/*
 * lib/checkpoint/checkpoint_internal.h - what the checkpoint manager uses of a
 * checkpoint beyond the public API: writing/reading through an open file,
 * summaries (everything but the tensors), and staging copies.
 */
#ifndef NNH5_CHECKPOINT_INTERNAL_H
#define NNH5_CHECKPOINT_INTERNAL_H

#include "core/internal.h"
#include "nnh5/file.h"

#include <nnh5/checkpoint.h>

/* Write c into f (opened with NNH5_CREATE), in the layout of doc/FORMAT.md. */
int nnh5__checkpoint_write(nnh5_file *f, const nnh5_checkpoint *c);

/* Read the checkpoint in f. */
int nnh5__checkpoint_read(nnh5_checkpoint **out, nnh5_file *f);

/* nnh5_checkpoint_save() with durability chosen. */
int nnh5__checkpoint_save_ext(const char *path, const nnh5_checkpoint *c, bool durable,
			      int compression);

/*
 * The step, epoch and metrics of the checkpoint at path, without its
 * tensors (a checkpoint with no sections). Errors: as nnh5_checkpoint_load().
 */
int nnh5__checkpoint_load_summary(nnh5_checkpoint **out, const char *path);

/* A copy of c's step, epoch, metrics and metadata, without sections. */
int nnh5__checkpoint_summary(nnh5_checkpoint **out, const nnh5_checkpoint *c);

/* Bytes a staging buffer needs for c's tensors (each padded to 64 bytes). */
int nnh5__checkpoint_bytes(size_t *out, const nnh5_checkpoint *c);

/*
 * A copy of c whose tensors are views into arena (at least
 * nnh5__checkpoint_bytes() long), their bytes copied there.
 */
int nnh5__checkpoint_stage(nnh5_checkpoint **out, const nnh5_checkpoint *c, unsigned char *arena,
			   size_t arena_size);

/*
 * Tests only: while hold is set, an asynchronous manager's worker leaves a
 * staged save waiting instead of writing it (so "a save in flight" can be
 * arranged without timing). Clearing it lets the worker go on.
 */
void nnh5__checkpoint_manager_hold(nnh5_checkpoint_manager *m, bool hold);

#endif /* NNH5_CHECKPOINT_INTERNAL_H */
