/*
 * lib/store/rawio.c - move a tensor's bytes between memory and a contiguous
 * dataset's storage in the file with pwrite()/pread(), computing the
 * checksum (doc/FORMAT.md, "Checksums") on the way.
 *
 * HDF5 would move the same bytes with one big write or read and leave the
 * checksum to a second pass over memory. Here each piece of a few MiB is
 * hashed just before it is written or just after it is read, while it is in
 * the CPU cache, and XXH3 runs the AVX2/AVX-512 code of libxxhash's
 * dispatcher where it has one (NNH5_XXH_DISPATCH): 24-40 GB/s on cached data
 * against 10-15 GB/s for its default code. (Hashing in a helper thread, in
 * parallel with the copy, was slower on the project's busy 2-core machine:
 * the second core is rarely free.)
 *
 * Used only where the stored bytes are exactly the tensor's bytes (same
 * type, little-endian host) and the dataset is contiguous; everything else
 * goes through H5Dwrite/H5Dread.
 */
#include "store/rawio.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "core/xxh.h"

/* Syscalls cost nothing at this size, and a piece still fits in the cache. */
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
