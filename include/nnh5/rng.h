/*
 * nnh5/rng.h - a small seeded random generator (xoshiro256**).
 *
 * The same seed gives the same sequence on every platform: integers and
 * uniform doubles are exact; normal deviates use the Marsaglia polar method,
 * whose only transcendental call is log(), so they are identical wherever the
 * C library's log() is (glibc on x86_64 and aarch64 are). The state is a
 * plain struct so that it can be stored in a checkpoint and restored.
 */
#ifndef NNH5_RNG_H
#define NNH5_RNG_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnh5_rng {
	uint64_t s[4];      /* xoshiro256** state; never all zero */
	double spare;       /* second deviate of the last polar-method pair */
	uint64_t has_spare; /* 1 if spare is valid */
} nnh5_rng;

/* Seed the generator (any 64-bit seed, 0 included) through splitmix64. */
NNH5_API void nnh5_rng_seed(nnh5_rng *rng, uint64_t seed);

/* The next 64 random bits. */
NNH5_API uint64_t nnh5_rng_u64(nnh5_rng *rng);

/* A uniform double in [0, 1) with 53 random bits. */
NNH5_API double nnh5_rng_uniform(nnh5_rng *rng);

/* A standard normal deviate (mean 0, standard deviation 1). */
NNH5_API double nnh5_rng_normal(nnh5_rng *rng);

#ifdef __cplusplus
}
#endif
#endif /* NNH5_RNG_H */
