/* Counter-based random numbers for Rand-K: every rank derives the same indices from
 * (seed, step, tensor id, block) without communicating. Integer-only, so portable bit for bit. */
#ifndef TERSE_COMPRESS_RNG_H
#define TERSE_COMPRESS_RNG_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64's finalizer: a bijection with full avalanche. */
static inline uint64_t terse__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The stream key of one block. */
uint64_t terse__rng_key(uint64_t seed, uint64_t step, uint32_t tensor_id, uint64_t block);

/* Draw number ctr of the stream key: splitmix64 seeked to ctr (counter-based, O(1)). */
static inline uint64_t terse__rng_draw(uint64_t key, uint64_t ctr)
{
    return terse__mix64(key + (ctr + 1) * 0x9e3779b97f4a7c15ull);
}

/*
 * k distinct indices of [0, nb), uniformly among the k-subsets (Floyd's algorithm on the keyed
 * stream, membership in a bitmap), written to idx in increasing order. bitmap: scratch of
 * (nb + 63) / 64 words. 1 <= k <= nb.
 */
void terse__randk_indices(uint64_t key, size_t nb, size_t k, uint64_t *idx, uint64_t *bitmap);

/* The n/k scale of Rand-K as a float (computed in double, rounded once). */
float terse__randk_scale(size_t nb, size_t k);

#endif
