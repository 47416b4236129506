/* Tiny harness for the compressor unit tests: one CTest entry per case (argv[1] names it). */
#ifndef TERSE_TEST_COMPRESS_UTIL_H
#define TERSE_TEST_COMPRESS_UTIL_H

#include "compress/compress.h"
#include "compress/kernels.h"
#include "compress/wire.h"
#include "core/half.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_, b_); \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case_t;

static int test_main(int argc, char **argv, const test_case_t *cases, size_t ncases)
{
    int ran = 0;
    for (size_t i = 0; i < ncases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        int before = test_failures;
        cases[i].fn();
        printf("%s %s\n", test_failures == before ? "ok  " : "FAIL", cases[i].name);
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "no test case named %s\n", argc > 1 ? argv[1] : "?");
        return 2;
    }
    terse__compress_scratch_release();
    return test_failures ? 1 : 0;
}

static uint64_t test_rng_state = 0x1234567887654321ull;

static uint64_t test_rand(void)
{
    uint64_t x = test_rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return test_rng_state = x;
}

/* Uniform in [-1, 1). */
static float test_uniform(void)
{
    return (float)((double)(test_rand() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

/* Roughly normal (sum of 4 uniforms): spread exponents like gradients. */
static void test_fill(float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (test_uniform() + test_uniform() + test_uniform() + test_uniform()) *
               (float)(1 + test_rand() % 4);
}

static int bits_equal(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static terse_compressor_t spec(const char *s)
{
    terse_compressor_t c;
    if (terse_compressor_parse(s, &c) != TERSE_OK) {
        fprintf(stderr, "bad spec %s\n", s);
        abort();
    }
    return c;
}

/* Compresses all blocks and checks the call succeeded; returns the wire (malloc'd). */
static uint8_t *test_compress(const terse_compressor_t *c, const float *v, size_t n, uint32_t tid,
                              uint64_t step, size_t *len_p, float *dense, float *rem)
{
    size_t cap = terse_compress_max_bytes(c, n);
    uint8_t *wire = malloc(cap ? cap : 1);
    terse_status_t st = terse_compress(c, v, n, tid, step, wire, cap, len_p, dense, rem);
    CHECK_EQ_INT(st, TERSE_OK);
    CHECK(*len_p <= cap);
    return wire;
}

static const char *const all_specs[] = {
    "none", "fp16", "bf16", "sign", "topk:0.01", "topk:0.3", "randk:0.05", "induced:0.02,0.05",
};
#define N_SPECS (sizeof(all_specs) / sizeof(all_specs[0]))

#endif
