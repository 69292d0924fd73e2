/*
 * lib/store/atomic.h - the atomic-replace protocol every nnh5 save goes through:
 * write a temporary file beside the target, fsync it, rename it over the
 * target, fsync the folder. Readers of the target see the old file or the
 * new one, never a mixture, even across a crash or a power cut.
 *
 * What the target is (doc/SAVING.md, "Nothing is lost"): a symbolic link is
 * followed (the file it leads to is replaced, the link stays); an existing
 * regular file lends its mode, owner and group to the new one and must be
 * writable by the process; anything else (folder, device, FIFO, socket) is
 * refused before anything is written.
 */
#ifndef NNH5_ATOMIC_H
#define NNH5_ATOMIC_H

#include "core/internal.h"

#include <sys/types.h>

/*
 * Temporary files are named ".<target name>.nnh5-tmp-XXXXXX" in the target's
 * folder; a target name too long for that is cut to NNH5__TMP_BASE_MAX bytes
 * in the temporary name, so every legal name (up to NAME_MAX) can be saved.
 */
#define NNH5__TMP_MARK ".nnh5-tmp-"
#define NNH5__TMP_BASE_MAX (255 - 1 - (sizeof NNH5__TMP_MARK - 1) - 6)

typedef struct nnh5__atomic {
	char *shown;  /* the path the caller gave (messages) */
	char *target; /* the file replaced: shown, with symbolic links followed */
	char *tmp;    /* NULL once committed or aborted */
	bool durable;
	bool existed; /* target was a regular file: mode, uid, gid are its own */
	/*
	 * The placeholder already has the target's owner and mode: the caller
	 * must open it with truncation rather than create the file anew (a new
	 * file would be readable by more people until nnh5__atomic_adopt()).
	 */
	bool prepared;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	/* Bytes written since writeback was last started (nnh5__atomic_wrote()). */
	uint64_t unsynced;
	/* How often writeback was started before the commit's fsync. */
	unsigned writebacks;
} nnh5__atomic;

/*
 * Check the target and reserve the name of the temporary file (an empty
 * placeholder file the caller may replace, unless a->prepared). Errors: NNH5_ERR_INVALID (a
 * folder, device, FIFO or socket), NNH5_ERR_IO (not writable, the folder
 * refuses, too many links), NNH5_ERR_NOMEM.
 */
int nnh5__atomic_begin(nnh5__atomic *a, const char *target, bool durable);

/*
 * Give the temporary file open at fd the replaced file's mode, owner and
 * group (as far as the process may: an owner it may not give is kept as it
 * is). New files keep the mode they were created with (0666 less the umask,
 * applied by the kernel). Call it before any data is written; a no-op when
 * a->prepared. Errors: NNH5_ERR_IO.
 */
int nnh5__atomic_adopt(nnh5__atomic *a, int fd);

/*
 * Note that n more bytes were written to the temporary file at fd. A durable
 * save starts the kernel's writeback of the whole file (without waiting for
 * it) every NNH5__WRITE_BEHIND bytes, so the disk writes while the save goes
 * on and the commit's fsync waits only for the rest. A non-durable save
 * never asks the disk for anything. Never fails: the fsync still decides.
 */
#define NNH5__WRITE_BEHIND ((uint64_t)8 << 20)
void nnh5__atomic_wrote(nnh5__atomic *a, int fd, uint64_t n);

/* fsync the temporary file, rename it over the target, fsync the folder.
 * On failure the temporary file is removed and the target is untouched. */
int nnh5__atomic_commit(nnh5__atomic *a);

/* Remove the temporary file (if any) and free a. */
void nnh5__atomic_abort(nnh5__atomic *a);

#endif /* NNH5_ATOMIC_H */
