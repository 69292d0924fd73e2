/*
 * lib/core/rng.c - xoshiro256** seeded through splitmix64, uniform doubles and
 * normal deviates by the Marsaglia polar method.
 */
#include "core/internal.h"
#include "nnh5/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void nnh5_rng_seed(nnh5_rng *rng, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
	rng->spare = 0.0;
	rng->has_spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t nnh5_rng_u64(nnh5_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double nnh5_rng_uniform(nnh5_rng *rng)
{
	return (double)(nnh5_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double nnh5_rng_normal(nnh5_rng *rng)
{
	double u, v, s;

	if (rng->has_spare) {
		rng->has_spare = 0;
		return rng->spare;
	}
	do {
		u = 2.0 * nnh5_rng_uniform(rng) - 1.0;
		v = 2.0 * nnh5_rng_uniform(rng) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	s = sqrt(-2.0 * log(s) / s);
	rng->spare = v * s;
	rng->has_spare = 1;
	return u * s;
}
