/*
 * lib/rawio.c - move a tensor's bytes between memory and a contiguous
 * dataset's storage in the file with pwrite()/pread(), hashing each piece
 * while it is still in the CPU cache.
 *
 * HDF5 would move the same bytes with one big write or read, leaving the
 * checksum (doc/FORMAT.md, "Checksums") to a second pass over memory that
 * costs about a third of the copy itself. Pieces of a few MiB fit in the
 * last-level cache, so the hash reads them from cache: on save it runs just
 * before the kernel copies the piece into the page cache, on load just after
 * the kernel copied it out. Used only where the stored bytes are exactly the
 * tensor's bytes (same type, little-endian host) and the dataset is
 * contiguous; everything else goes through H5Dwrite/H5Dread.
 */
#include "rawio.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

/* Big enough that syscalls cost nothing, small enough to stay in cache. */
#define PIECE ((size_t)2 << 20)

int nnh5__raw_write(int fd, const void *data, size_t n, uint64_t offset, uint64_t *hash)
{
	const unsigned char *p = data;
	XXH3_state_t state;

	if (hash)
		XXH3_64bits_reset(&state);
	for (size_t done = 0; done < n;) {
		size_t piece = n - done < PIECE ? n - done : PIECE;
		if (hash)
			XXH3_64bits_update(&state, p + done, piece);
		for (size_t k = 0; k < piece;) {
			ssize_t w = pwrite(fd, p + done + k, piece - k, (off_t)(offset + done + k));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? errno : EIO;
			k += (size_t)w;
		}
		done += piece;
	}
	if (hash)
		*hash = XXH3_64bits_digest(&state);
	return 0;
}

int nnh5__raw_read(int fd, void *data, size_t n, uint64_t offset, uint64_t *hash)
{
	unsigned char *p = data;
	XXH3_state_t state;

	if (hash)
		XXH3_64bits_reset(&state);
	for (size_t done = 0; done < n;) {
		size_t piece = n - done < PIECE ? n - done : PIECE;
		for (size_t k = 0; k < piece;) {
			ssize_t r = pread(fd, p + done + k, piece - k, (off_t)(offset + done + k));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return errno;
			if (r == 0)
				return -1; /* end of file: the file is shorter than it claims */
			k += (size_t)r;
		}
		if (hash)
			XXH3_64bits_update(&state, p + done, piece);
		done += piece;
	}
	if (hash)
		*hash = XXH3_64bits_digest(&state);
	return 0;
}
