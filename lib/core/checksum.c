/*
 * lib/core/checksum.c - the checksum nnh5 stores with every tensor it writes
 * (doc/FORMAT.md, "Checksums"): XXH3-64 (seed 0, from libxxhash) of the
 * tensor's bytes in their stored order, which is little-endian.
 */
#include "core/internal.h"

#include <string.h>
#include "core/xxh.h"

static bool host_is_little_endian(void)
{
	const uint16_t one = 1;
	unsigned char b;

	memcpy(&b, &one, 1);
	return b == 1;
}

void nnh5__checksum_update(void *state, const void *data, size_t nbytes, size_t elsize)
{
	if (elsize <= 1 || host_is_little_endian()) {
		XXH3_64bits_update(state, data, nbytes);
		return;
	}
	/* Big-endian host: hash the little-endian encoding, a block at a time. */
	unsigned char block[4096];
	const unsigned char *p = data;
	size_t per = sizeof block / elsize * elsize;

	for (size_t off = 0; off < nbytes; off += per) {
		size_t n = nbytes - off < per ? nbytes - off : per;
		for (size_t i = 0; i < n; i += elsize)
			for (size_t j = 0; j < elsize; j++)
				block[i + j] = p[off + i + elsize - 1 - j];
		XXH3_64bits_update(state, block, n);
	}
}

uint64_t nnh5__checksum(const void *data, size_t nbytes, size_t elsize)
{
	if (elsize <= 1 || host_is_little_endian())
		return XXH3_64bits(data, nbytes);
	XXH3_state_t state;

	XXH3_64bits_reset(&state);
	nnh5__checksum_update(&state, data, nbytes, elsize);
	return XXH3_64bits_digest(&state);
}

uint64_t nnh5_tensor_checksum(const nnh5_tensor *t)
{
	if (!t)
		return 0;
	return nnh5__checksum(t->data, t->nbytes, nnh5_dtype_size(t->dtype));
}

uint64_t nnh5__block_bytes(uint64_t *count, uint64_t nbytes)
{
	uint64_t b = NNH5__BLOCK_MIN;

	*count = 0;
	if (nbytes <= b)
		return 0;
	while ((nbytes - 1) / b + 1 > NNH5__BLOCKS_MAX)
		b <<= 1;
	*count = (nbytes - 1) / b + 1;
	return b;
}

int64_t nnh5__blocks_mismatch(const uint64_t *table, uint64_t count, uint64_t block_bytes,
			      const void *data, uint64_t nbytes, size_t elsize)
{
	const unsigned char *p = data;

	for (uint64_t i = 0; i < count; i++) {
		uint64_t at = i * block_bytes;
		uint64_t n = nbytes - at < block_bytes ? nbytes - at : block_bytes;
		if (nnh5__checksum(p + at, (size_t)n, elsize) != table[i])
			return (int64_t)i;
	}
	return -1;
}
