/* float16 / bfloat16 <-> float32 conversions, round to nearest even, exact and portable. */
#ifndef TERSE_CORE_HALF_H
#define TERSE_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline float terse__f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint32_t terse__f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float terse__half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* Subnormal halves are exact floats: man * 2^-24. */
        float f = (float)man * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31)
        return terse__f32_from_bits(sign | 0x7f800000u | (man << 13));
    return terse__f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t terse__float_to_half(float f)
{
    uint32_t u = terse__f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u) /* Inf or NaN (keep NaN quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00u | (absu > 0x7f800000u ? 0x200u | ((absu >> 13) & 0x3ffu) : 0));
    if (absu >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absu < 0x38800000u) { /* below 2^-14: subnormal half or zero */
        /* Adding 0.5 forces rounding at the half-subnormal ulp (2^-24) using the FPU's RNE. */
        float a = terse__f32_from_bits(absu) + 0.5f;
        return (uint16_t)(sign | (terse__f32_bits(a) - 0x3f000000u));
    }
    uint32_t mant_odd = (absu >> 13) & 1u;
    absu += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (absu >> 13));
}

static inline float terse__bf16_to_float(uint16_t b)
{
    return terse__f32_from_bits((uint32_t)b << 16);
}

static inline uint16_t terse__float_to_bf16(float f)
{
    uint32_t u = terse__f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
