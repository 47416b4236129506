/* Keyed index sampling for Rand-K and the Rand-K half of induced. */
#include "rng.h"

#include <string.h>

uint64_t terse__rng_key(uint64_t seed, uint64_t step, uint32_t tensor_id, uint64_t block)
{
    /* Chained bijections with distinct constants, so (seed, step, tensor, block) tuples that
     * differ in any field give unrelated streams. */
    uint64_t h = terse__mix64(seed + 0x72616e646b2d7631ull);
    h = terse__mix64(h ^ (step + 0x9e3779b97f4a7c15ull));
    h = terse__mix64(h ^ ((uint64_t)tensor_id + 0xc2b2ae3d27d4eb4full));
    h = terse__mix64(h ^ (block + 0x165667b19e3779f9ull));
    return h;
}

/* Uniform in [0, bound) by multiply-shift: bias below bound / 2^64, i.e. irrelevant. */
static inline uint64_t uniform_below(uint64_t r, uint64_t bound)
{
    return (uint64_t)(((unsigned __int128)r * bound) >> 64);
}

void terse__randk_indices(uint64_t key, size_t nb, size_t k, uint64_t *idx, uint64_t *bitmap)
{
    size_t words = (nb + 63) / 64;
    if (k == nb) {
        for (size_t i = 0; i < nb; i++)
            idx[i] = i;
        return;
    }
    memset(bitmap, 0, words * sizeof(uint64_t));
    /* Floyd: for j = nb-k .. nb-1 pick t in [0, j]; take t unless taken, else j. Each k-subset
     * comes out with equal probability, with exactly k draws. */
    for (size_t j = nb - k, c = 0; j < nb; j++, c++) {
        uint64_t t = uniform_below(terse__rng_draw(key, c), (uint64_t)j + 1);
        if (bitmap[t / 64] >> (t % 64) & 1)
            t = j;
        bitmap[t / 64] |= 1ull << (t % 64);
    }
    size_t cnt = 0;
    for (size_t w = 0; w < words; w++)
        for (uint64_t b = bitmap[w]; b; b &= b - 1)
            idx[cnt++] = w * 64 + (uint64_t)__builtin_ctzll(b);
}

float terse__randk_scale(size_t nb, size_t k)
{
    return (float)((double)nb / (double)k);
}
