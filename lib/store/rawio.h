/*
 * lib/store/rawio.h - a tensor's bytes to and from contiguous storage in a file,
 * in cache-sized pieces hashed on the way (lib/store/rawio.c).
 */
#ifndef NNH5_RAWIO_H
#define NNH5_RAWIO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Write n bytes of data at offset of fd. When hash is not NULL, *hash is
 * XXH3-64 (seed 0) of the bytes, computed piece by piece just before each
 * piece is written. Returns 0, or an errno value (EIO when nothing could be
 * written).
 */
int nnh5__raw_write(int fd, const void *data, size_t n, uint64_t offset, uint64_t *hash);

/*
 * Read n bytes at offset of fd into data, hashing each piece right after it
 * is read when hash is not NULL. Returns 0, an errno value, or -1 when the
 * file ends before offset + n.
 */
int nnh5__raw_read(int fd, void *data, size_t n, uint64_t offset, uint64_t *hash);

#endif /* NNH5_RAWIO_H */
