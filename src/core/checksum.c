/* terse__checksum: four independent lanes over 8-byte words, then the tail, the length and a
 * final avalanche.
 *
 * Why a single flipped bit is always caught: every step below is a bijection of the state for
 * a fixed input word and of the input word for a fixed state (add, xor, rotate, multiply by an
 * odd constant), and the lanes are folded together by addition. A change confined to one word
 * therefore changes that lane's state, the change survives every later step (bijective), the
 * fold and the avalanche. Two multiplies per word, with a rotation between them, spread even a
 * top-bit difference over many bits, so low-weight multi-bit errors do not cancel out either.
 *
 * Speed: the lanes' dependency chains (add, rotate, multiply) run side by side, so the loop is
 * bound by multiplier throughput (two per 8 bytes), not by latency. */
#include "checksum.h"

#include <string.h>

/* Odd constants with balanced bits, drawn at random for this file. */
#define SUM_K1   0xaf07f81840ec2b3bull
#define SUM_K2   0x91f221762a93aa63ull
#define SUM_K3   0x9ba44ea90d4dd991ull
#define SUM_K4   0xe02e09d41746666full
#define SUM_K5   0xfa2bb7d76c8640c9ull
#define SUM_K6   0x8c726f8d0e56f303ull
#define SUM_K7   0x80d9d3f26edaaac7ull
#define SUM_INIT 0xcea686802297ee8full

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Unaligned little-endian load without undefined behaviour. */
static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* One word into one lane: bijective in @v for a fixed @w and in @w for a fixed @v. */
static inline uint64_t lane_step(uint64_t v, uint64_t w)
{
    return rotl64(v + w * SUM_K1, 29) * SUM_K2;
}

/* One word into the running hash of the tail (same property). */
static inline uint64_t tail_step(uint64_t h, uint64_t w)
{
    return rotl64(h ^ lane_step(0, w), 27) * SUM_K3 + SUM_K4;
}

uint64_t terse__checksum(const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i = 0;
    uint64_t h;
    if (len >= 32) {
        /* distinct starting states so that equal lanes of equal data still differ */
        uint64_t v0 = SUM_INIT, v1 = SUM_INIT + SUM_K1, v2 = SUM_INIT ^ SUM_K2,
                 v3 = SUM_INIT - SUM_K3;
        for (; len - i >= 32; i += 32) {
            v0 = lane_step(v0, load64(p + i));
            v1 = lane_step(v1, load64(p + i + 8));
            v2 = lane_step(v2, load64(p + i + 16));
            v3 = lane_step(v3, load64(p + i + 24));
        }
        h = rotl64(v0, 1) + rotl64(v1, 9) + rotl64(v2, 19) + rotl64(v3, 38);
    } else {
        h = SUM_INIT ^ SUM_K5;
    }
    for (; len - i >= 8; i += 8)
        h = tail_step(h, load64(p + i));
    if (i < len) {
        uint64_t w = 0; /* the last 1..7 bytes, zero-padded: the length below tells 0s apart */
        memcpy(&w, p + i, len - i);
        h = tail_step(h, w);
    }
    h ^= (uint64_t)len * SUM_K5;
    /* avalanche: every output bit depends on every bit of h */
    h ^= h >> 31;
    h *= SUM_K6;
    h ^= h >> 29;
    h *= SUM_K7;
    h ^= h >> 32;
    return h;
}
