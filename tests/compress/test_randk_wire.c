/* Unit tests: Rand-K, induced, unbiasedness, non-finite input, corrupt messages, kernels. */
#include "test_util.h"

#include "compress/rng.h"

static void t_randk_indices(void)
{
    size_t nb = 1000, k = 37;
    uint64_t a[1000], b[1000], bm[16];
    terse__randk_indices(terse__rng_key(1, 2, 3, 4), nb, k, a, bm);
    int ok = 1;
    for (size_t j = 0; j < k; j++)
        ok &= a[j] < nb && (j == 0 || a[j] > a[j - 1]); /* distinct and sorted */
    CHECK(ok);
    terse__randk_indices(terse__rng_key(1, 2, 3, 4), nb, k, b, bm);
    CHECK(!memcmp(a, b, k * 8)); /* same key, same indices */
    uint64_t keys[4] = {terse__rng_key(2, 2, 3, 4), terse__rng_key(1, 3, 3, 4),
                        terse__rng_key(1, 2, 4, 4), terse__rng_key(1, 2, 3, 5)};
    for (int q = 0; q < 4; q++) {
        terse__randk_indices(keys[q], nb, k, b, bm);
        CHECK(memcmp(a, b, k * 8) != 0); /* any field changed: other indices */
    }
    terse__randk_indices(7, nb, nb, b, bm); /* k = nb: everything */
    for (size_t j = 0; j < nb; j++)
        ok &= b[j] == j;
    CHECK(ok);
    /* uniform: every index drawn about equally often */
    size_t cnt[50] = {0}, trials = 20000;
    for (size_t t = 0; t < trials; t++) {
        terse__randk_indices(terse__rng_key(t, 0, 0, 0), 50, 5, b, bm);
        for (int j = 0; j < 5; j++)
            cnt[b[j]]++;
    }
    for (int i = 0; i < 50; i++) /* mean 2000, sd ~42 */
        ok &= cnt[i] > 1780 && cnt[i] < 2220;
    CHECK(ok);
}

static void t_randk_rules(void)
{
    size_t n = 1000;
    float *v = malloc(n * 4), *d = malloc(n * 4), *r = malloc(n * 4), *acc = calloc(n, 4);
    test_fill(v, n);
    const char *specs[] = {"randk:0.05,seed=11", "randk:0.05,seed=11,block=64", "randk:1",
                           "randk:1e-9,block=300"};
    for (int s = 0; s < 4; s++) {
        terse_compressor_t c = spec(specs[s]);
        size_t len, bs = c.block_size ? c.block_size : n, kept = 0, want = 0;
        uint8_t *w = test_compress(&c, v, n, 3, 77, &len, d, r);
        for (size_t s0 = 0; s0 < n; s0 += bs) {
            size_t nb = n - s0 < bs ? n - s0 : bs, k = terse__compress_k(c.ratio, nb);
            float sc = terse__randk_scale(nb, k);
            want += k;
            for (size_t i = s0; i < s0 + nb; i++) {
                if (terse__f32_bits(d[i]) == (terse__f32_bits(v[i]) & 0x80000000u)) {
                    CHECK(terse__f32_bits(r[i]) == terse__f32_bits(v[i])); /* untouched */
                    CHECK(terse__f32_bits(d[i] + r[i]) == terse__f32_bits(v[i]));
                } else {
                    kept++;
                    CHECK(terse__f32_bits(d[i]) == terse__f32_bits(sc * v[i]));
                    CHECK(terse__f32_bits(r[i]) == terse__f32_bits(terse__remainder(v[i], d[i])));
                }
            }
        }
        CHECK_EQ_INT(kept, want);
        CHECK_EQ_INT(len, 56 + 4 * want); /* only values travel */
        memset(acc, 0, n * 4);
        CHECK_EQ_INT(terse_decompress(&c, w, len, n, 3, 77, acc), TERSE_OK);
        int ok = 1;
        for (size_t i = 0; i < n; i++)
            ok &= acc[i] == d[i]; /* the decoder regenerated the encoder's indices */
        CHECK(ok);
        /* another seed is another compressor: the parameter hash refuses it */
        c.seed ^= 1;
        CHECK_EQ_INT(terse_decompress(&c, w, len, n, 3, 77, acc), TERSE_ERR_CORRUPT);
        free(w);
    }
    free(v), free(d), free(r), free(acc);
}

static void t_induced_rules(void)
{
    size_t n = 500;
    float *v = malloc(n * 4), *d = malloc(n * 4), *r = malloc(n * 4), *td = malloc(n * 4);
    float *acc = calloc(n, 4);
    test_fill(v, n);
    const char *specs[] = {"induced:0.02,0.05,seed=5", "induced:0.5,0.5,block=50", "induced:1,1",
                           "induced:0.1,1e-9,block=7"};
    const char *topk[] = {"topk:0.02", "topk:0.5,block=50", "topk:1", "topk:0.1,block=7"};
    for (int s = 0; s < 4; s++) {
        terse_compressor_t c = spec(specs[s]), ct = spec(topk[s]);
        size_t len, tl;
        uint8_t *w = test_compress(&c, v, n, 9, 1, &len, d, r);
        uint8_t *tw = test_compress(&ct, v, n, 9, 1, &tl, td, NULL);
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            uint32_t zero = terse__f32_bits(v[i]) & 0x80000000u;
            if (terse__f32_bits(td[i]) != zero) { /* a Top-K entry: kept exactly */
                ok &= terse__f32_bits(d[i]) == terse__f32_bits(v[i]);
                ok &= terse__f32_bits(r[i]) == zero;
            } else if (terse__f32_bits(d[i]) != zero) { /* a Rand-K entry */
                ok &= terse__f32_bits(r[i]) == terse__f32_bits(terse__remainder(v[i], d[i]));
            } else {
                ok &= terse__f32_bits(r[i]) == terse__f32_bits(v[i]);
            }
        }
        CHECK(ok);
        memset(acc, 0, n * 4);
        CHECK_EQ_INT(terse_decompress(&c, w, len, n, 9, 1, acc), TERSE_OK);
        for (size_t i = 0; i < n; i++)
            ok &= acc[i] == d[i];
        CHECK(ok);
        free(w), free(tw);
    }
    free(v), free(d), free(r), free(td), free(acc);
}

/* Mean of C(v) over many seeds converges to v (5 standard errors). */
static void check_unbiased(const char *base, double var_factor)
{
    size_t n = 64, seeds = 20000;
    float v[64], d[64];
    double mean[64] = {0};
    test_fill(v, n);
    terse_compressor_t c = spec(base);
    for (size_t s = 0; s < seeds; s++) {
        c.seed = s;
        size_t len;
        uint8_t w[2048];
        CHECK_EQ_INT(terse_compress(&c, v, n, 0, 0, w, sizeof(w), &len, d, NULL), TERSE_OK);
        for (size_t i = 0; i < n; i++)
            mean[i] += d[i];
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double m = mean[i] / (double)seeds, tol = 5 * sqrt(var_factor / (double)seeds) * fabs(v[i]);
        if (fabs(m - v[i]) > tol + 1e-6) {
            fprintf(stderr, "%s element %zu: mean %g, v %g\n", base, i, m, (double)v[i]);
            ok = 0;
        }
    }
    CHECK(ok);
}

static void t_unbiased_randk(void)
{
    check_unbiased("randk:0.25", 3.0); /* Var = v^2 (n/k - 1) */
}

static void t_unbiased_induced(void)
{
    check_unbiased("induced:0.1,0.25", 3.0);
}

/* A NaN/Inf anywhere fails the call, names tensor, block and element, and writes nothing. */
static void t_nonfinite(void)
{
    size_t n = 1000;
    float *v = malloc(n * 4), *d = malloc(n * 4), *r = malloc(n * 4);
    uint8_t *w = malloc(16384);
    test_fill(v, n);
    float bad[3] = {NAN, INFINITY, -INFINITY};
    size_t where[3] = {700, 0, 999};
    for (size_t s = 0; s < N_SPECS; s++) {
        for (int q = 0; q < 3; q++) {
            char sp[64], msg[160] = "", want[64];
            snprintf(sp, sizeof(sp), "%s,block=64", all_specs[s]);
            terse_compressor_t c = spec(sp);
            float saved = v[where[q]];
            v[where[q]] = bad[q];
            memset(d, 0xab, n * 4), memset(r, 0xab, n * 4), memset(w, 0xab, 16384);
            size_t len = 12345;
            CHECK_EQ_INT(terse__compress_blocks(&c, v, n, 3, 1, 0, 16, w, 16384, &len, d, r, msg,
                                                sizeof(msg)),
                         TERSE_ERR_NONFINITE);
            snprintf(want, sizeof(want), "tensor 3 block %zu: ", where[q] / 64);
            CHECK(strstr(msg, want) != NULL);
            snprintf(want, sizeof(want), "at element %zu", where[q]);
            CHECK(strstr(msg, want) != NULL);
            int untouched = len == 12345;
            for (size_t i = 0; i < n * 4; i++)
                untouched &= ((uint8_t *)d)[i] == 0xab && ((uint8_t *)r)[i] == 0xab;
            for (size_t i = 0; i < 16384; i++)
                untouched &= w[i] == 0xab;
            CHECK(untouched);
            /* passthrough: compresses */
            snprintf(sp, sizeof(sp), "%s,block=64,nonfinite=pass", all_specs[s]);
            c = spec(sp);
            CHECK_EQ_INT(terse__compress_blocks(&c, v, n, 3, 1, 0, 16, w, 16384, &len, d, r, msg,
                                                sizeof(msg)),
                         TERSE_OK);
            float *acc = calloc(n, 4);
            CHECK_EQ_INT(
                terse__decompress_blocks_add(&c, w, len, n, 3, 1, 0, 16, acc, msg, sizeof(msg)),
                TERSE_OK);
            free(acc);
            if (c.kind == TERSE_COMPRESSOR_TOPK || c.kind == TERSE_COMPRESSOR_NONE ||
                c.kind == TERSE_COMPRESSOR_INDUCED)
                CHECK(terse__f32_bits(d[where[q]]) == terse__f32_bits(bad[q])); /* kept first */
            v[where[q]] = saved;
        }
    }
    free(v), free(d), free(r), free(w);
}

/* Decodes a (possibly damaged) message into a canary accumulator. Returns the status; acc
 * must be untouched on failure. */
static terse_status_t try_decode(const terse_compressor_t *c, const uint8_t *w, size_t len,
                                 size_t n)
{
    float *acc = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        acc[i] = 7.0f;
    char msg[160];
    terse_status_t st = terse__decompress_blocks_add(
        c, w, len, n, 2, 3, 0, terse__compress_nblocks(c, n), acc, msg, sizeof(msg));
    if (st != TERSE_OK) {
        int untouched = 1;
        for (size_t i = 0; i < n; i++)
            untouched &= acc[i] == 7.0f;
        CHECK(untouched);
        CHECK(strstr(msg, "corrupt") != NULL || st != TERSE_ERR_CORRUPT);
    }
    free(acc);
    return st;
}

static void t_corrupt(void)
{
    size_t n = 300;
    float *v = malloc(n * 4);
    test_fill(v, n);
    const char *specs[] = {"none",
                           "fp16",
                           "bf16",
                           "sign",
                           "sign,block=37",
                           "topk:0.01",
                           "topk:0.5",
                           "topk:0.05,block=64",
                           "randk:0.1",
                           "induced:0.05,0.1",
                           "induced:0.3,0.3,block=50"};
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        for (int enc = -1; enc < TERSE__TOPK_ENC_COUNT; enc++) {
            terse_compressor_t c = spec(specs[s]);
            if (enc >= 0 && c.kind != TERSE_COMPRESSOR_TOPK && c.kind != TERSE_COMPRESSOR_INDUCED)
                continue;
            terse__topk_force_encoding(enc);
            size_t len;
            uint8_t *w = test_compress(&c, v, n, 2, 3, &len, NULL, NULL);
            uint8_t *m = malloc(len + 1);
            CHECK_EQ_INT(try_decode(&c, w, len, n), TERSE_OK);
            for (size_t l = 0; l < len; l++) /* every truncation */
                if (try_decode(&c, w, l, n) != TERSE_ERR_CORRUPT) {
                    fprintf(stderr, "%s: truncated to %zu accepted\n", specs[s], l);
                    CHECK(0);
                }
            memcpy(m, w, len);
            m[len] = 0;
            CHECK_EQ_INT(try_decode(&c, m, len + 1, n), TERSE_ERR_CORRUPT); /* trailing */
            for (size_t b = 0; b < 56; b++) {                               /* every header byte */
                memcpy(m, w, len);
                m[b] ^= 0x10;
                CHECK_EQ_INT(try_decode(&c, m, len, n), TERSE_ERR_CORRUPT);
            }
            for (int t = 0; t < 300; t++) { /* random damage: never a crash, acc safe */
                memcpy(m, w, len);
                int flips = 1 + (int)(test_rand() % 3);
                for (int f = 0; f < flips; f++)
                    m[56 + test_rand() % (len - 56)] ^= (uint8_t)(1u << (test_rand() % 8));
                terse_status_t st = try_decode(&c, m, len, n);
                CHECK(st == TERSE_OK || st == TERSE_ERR_CORRUPT);
            }
            free(m), free(w);
        }
    }
    terse__topk_force_encoding(-1);
    /* hand-made damage: one index of a 100-element block, k = 1 */
    float x[100] = {0};
    x[40] = 5.0f;
    x[41] = -4.0f;
    terse_compressor_t c = spec("topk:0.02"); /* k = 2 */
    uint8_t w[256];
    size_t len;
    terse__topk_force_encoding(TERSE__TOPK_ENC_ABS32);
    CHECK_EQ_INT(terse_compress(&c, x, 100, 2, 3, w, sizeof(w), &len, NULL, NULL), TERSE_OK);
    size_t ip = 56 + 1 + 8; /* header, encoding, 2 values */
    CHECK_EQ_INT(terse__get_u32(w + ip), 40);
    terse__put_u32(w + ip + 4, 100); /* out of range */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    terse__put_u32(w + ip + 4, 40); /* not increasing */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    terse__put_u32(w + ip + 4, 41);
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_OK);
    w[56] = 9; /* unknown encoding */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    w[56] = 0;
    terse__put_f32(w + 57, NAN); /* non-finite value */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    terse__topk_force_encoding(TERSE__TOPK_ENC_VARINT);
    CHECK_EQ_INT(terse_compress(&c, x, 100, 2, 3, w, sizeof(w), &len, NULL, NULL), TERSE_OK);
    CHECK_EQ_INT(len, ip + 2);
    CHECK(w[ip] == 40 && w[ip + 1] == 0);
    w[ip + 1] = 0x80; /* overlong: 0 written as 0x80 0x00 */
    w[ip + 2] = 0x00;
    CHECK_EQ_INT(try_decode(&c, w, len + 1, 100), TERSE_ERR_CORRUPT);
    w[ip + 1] = 59; /* 40 + 1 + 59 = 100: out of range */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    w[ip + 1] = 58;
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_OK);
    terse__topk_force_encoding(TERSE__TOPK_ENC_BITMAP);
    CHECK_EQ_INT(terse_compress(&c, x, 100, 2, 3, w, sizeof(w), &len, NULL, NULL), TERSE_OK);
    CHECK_EQ_INT(len, ip + 13);
    w[ip + 12] |= 0x10; /* padding bit (100 = 12 * 8 + 4) */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    w[ip + 12] = 0x08; /* in range, but 3 indices for k = 2 */
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    terse__topk_force_encoding(-1);
    uint64_t val = 0;
    uint8_t big[11] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0};
    CHECK_EQ_INT(terse__varint_get(big, big + 11, &val), 0); /* beyond 64 bits */
    big[9] = 0x01;
    CHECK_EQ_INT(terse__varint_get(big, big + 11, &val), 10);
    CHECK(val == UINT64_MAX);
    CHECK_EQ_INT(terse__varint_get(big, big + 5, &val), 0); /* truncated */
    /* sign: negative or NaN scale, padding bits */
    c = spec("sign");
    CHECK_EQ_INT(terse_compress(&c, x, 100, 2, 3, w, sizeof(w), &len, NULL, NULL), TERSE_OK);
    terse__put_f32(w + 56, -1.0f);
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    terse__put_f32(w + 56, NAN);
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    terse__put_f32(w + 56, 1.0f);
    w[56 + 4 + 12] |= 0x80;
    CHECK_EQ_INT(try_decode(&c, w, len, 100), TERSE_ERR_CORRUPT);
    /* a message for another compressor */
    terse_compressor_t other = spec("topk:0.03");
    CHECK_EQ_INT(try_decode(&other, w, len, 100), TERSE_ERR_CORRUPT);
    free(v);
}

/* Induced: a Rand-K value at a Top-K index must be +0. */
static void t_induced_overlap(void)
{
    float x[64];
    test_fill(x, 64);
    terse_compressor_t c = spec("induced:0.5,0.5,seed=1");
    uint8_t w[1024];
    size_t len;
    CHECK_EQ_INT(terse_compress(&c, x, 64, 2, 3, w, sizeof(w), &len, NULL, NULL), TERSE_OK);
    /* randk values are the last 4*32 bytes; with half the entries in each part some overlap */
    int zeros = 0;
    for (size_t j = 0; j < 32; j++) {
        uint8_t *p = w + len - 128 + 4 * j;
        if (terse__get_u32(p) == 0) {
            zeros++;
            terse__put_f32(p, 1.0f);
            CHECK_EQ_INT(try_decode(&c, w, len, 64), TERSE_ERR_CORRUPT);
            terse__put_f32(p, 0.0f);
        }
    }
    CHECK(zeros > 0);
    CHECK_EQ_INT(try_decode(&c, w, len, 64), TERSE_OK);
}

/* Every vector table gives the scalar table's bits, kernel by kernel and end to end. */
static void t_simd_identical(void)
{
    const char *tables[] = {"avx2", "avx512"};
    const terse__ckernels_t *S = &terse__ckernels_scalar;
    size_t maxn = 5000;
    float *v = malloc(maxn * 4), *d1 = malloc(maxn * 4), *d2 = malloc(maxn * 4);
    float *r1 = malloc(maxn * 4), *r2 = malloc(maxn * 4);
    uint8_t *o1 = malloc(maxn * 4), *o2 = malloc(maxn * 4);
    uint64_t *i1 = malloc(maxn * 8), *i2 = malloc(maxn * 8);
    uint32_t *k1 = malloc(maxn * 4), *k2 = malloc(maxn * 4);
    for (int t = 0; t < 2; t++) {
        if (!terse__ckernels_supported(tables[t])) {
            printf("skip %s: not supported by this cpu\n", tables[t]);
            continue;
        }
        const terse__ckernels_t *V = t == 0 ? &terse__ckernels_avx2 : &terse__ckernels_avx512;
        for (size_t n = 0; n < maxn; n = n < 70 ? n + 1 : n * 3 + 1) {
            for (int mode = 0; mode < 3; mode++) {
                for (size_t i = 0; i < n; i++) {
                    if (mode == 0) /* finite with ties and signed zeros */
                        v[i] = (float)(int)(test_rand() % 7 - 3) * 0.5f;
                    else if (mode == 1)
                        v[i] = test_uniform() * 1000.0f;
                    else /* any bits: NaN, Inf, subnormals, huge */
                        v[i] = terse__f32_from_bits((uint32_t)test_rand());
                }
                if (mode == 0 && n)
                    v[n / 2] = -0.0f;
                CHECK_EQ_INT(S->any_abs_ge(v, n, 0x7f800000u), V->any_abs_ge(v, n, 0x7f800000u));
                CHECK_EQ_INT(S->any_abs_ge(v, n, 0x3f000000u), V->any_abs_ge(v, n, 0x3f000000u));
                if (mode < 2) {
                    double l1[16] = {0}, l2[16] = {0};
                    CHECK_EQ_INT(S->l1_lanes(v, n, l1), V->l1_lanes(v, n, l2));
                    CHECK(!memcmp(l1, l2, sizeof(l1)));
                }
                memset(o1, 0, maxn), memset(o2, 0, maxn);
                S->sign_pack(v, n, 0.75f, o1, d1, r1);
                V->sign_pack(v, n, 0.75f, o2, d2, r2);
                CHECK(!memcmp(o1, o2, (n + 7) / 8) && bits_equal(d1, d2, n) &&
                      bits_equal(r1, r2, n));
                V->sign_pack(v, n, 0.75f, o2, NULL, NULL);
                CHECK(!memcmp(o1, o2, (n + 7) / 8));
                memcpy(d2, d1, n * 4);
                S->sign_add(o1, n, 0.25f, d1);
                V->sign_add(o1, n, 0.25f, d2);
                CHECK(bits_equal(d1, d2, n));
                uint32_t h1[2048] = {0}, h2[2048] = {0};
                CHECK_EQ_INT(S->topk_hist(v, n, h1), V->topk_hist(v, n, h2));
                CHECK(!memcmp(h1, h2, sizeof(h1)));
                uint32_t lo = n ? terse__f32_bits(v[n / 3]) & 0x7ff00000u : 0, hi = lo + 0xfffff;
                CHECK_EQ_INT(S->topk_collect(v, n, lo, hi, k1, NULL, n / 2),
                             V->topk_collect(v, n, lo, hi, k2, NULL, n / 2));
                CHECK(!memcmp(k1, k2, n / 2 * 4));
                {
                    uint32_t *x1 = calloc(n / 2 + 1, 4), *x2 = calloc(n / 2 + 1, 4);
                    size_t c1 = S->topk_collect(v, n, lo, hi, k1, x1, n / 2);
                    CHECK_EQ_INT(c1, V->topk_collect(v, n, lo, hi, k2, x2, n / 2));
                    CHECK(!memcmp(k1, k2, n / 2 * 4) && !memcmp(x1, x2, n / 2 * 4));
                    for (size_t j = 0; j < c1 && j < n / 2; j++) /* each key sits at its index */
                        CHECK((terse__f32_bits(v[x1[j]]) & 0x7fffffffu) == k1[j]);
                    free(x1);
                    free(x2);
                }
                uint32_t g1[1024] = {0}, g2[1024] = {0};
                S->topk_hist_range(v, n, lo, hi, 10, g1);
                V->topk_hist_range(v, n, lo, hi, 10, g2);
                CHECK(!memcmp(g1, g2, sizeof(g1)));
                uint32_t thr = n ? terse__f32_bits(v[n / 2]) & 0x7fffffffu : 0;
                size_t neq[3] = {0, 1, SIZE_MAX};
                for (int e = 0; e < 3; e++) {
                    size_t c1 = S->topk_gather(v, n, thr, neq[e], i1, o1, d1, r1);
                    size_t c2 = V->topk_gather(v, n, thr, neq[e], i2, o2, d2, r2);
                    CHECK_EQ_INT(c1, c2);
                    CHECK(!memcmp(i1, i2, c1 * 8) && !memcmp(o1, o2, c1 * 4));
                    CHECK(bits_equal(d1, d2, n) && bits_equal(r1, r2, n));
                }
                S->to_fp16(v, n, o1, d1, r1);
                V->to_fp16(v, n, o2, d2, r2);
                CHECK(!memcmp(o1, o2, 2 * n) && bits_equal(d1, d2, n) && bits_equal(r1, r2, n));
                S->to_bf16(v, n, o1, d1, r1);
                V->to_bf16(v, n, o2, d2, r2);
                CHECK(!memcmp(o1, o2, 2 * n) && bits_equal(d1, d2, n) && bits_equal(r1, r2, n));
                if (mode < 2) {
                    memcpy(d2, d1, n * 4);
                    S->add_bf16(o1, n, d1);
                    V->add_bf16(o1, n, d2);
                    CHECK(bits_equal(d1, d2, n));
                    S->to_fp16(v, n, o1, NULL, NULL);
                    S->add_fp16(o1, n, d1);
                    V->add_fp16(o1, n, d2);
                    CHECK(bits_equal(d1, d2, n));
                    S->add_f32((const uint8_t *)v, n, d1);
                    V->add_f32((const uint8_t *)v, n, d2);
                    CHECK(bits_equal(d1, d2, n));
                }
            }
        }
        /* end to end, through the dispatcher */
        size_t n = 4999;
        test_fill(v, n);
        for (size_t s = 0; s < N_SPECS; s++) {
            for (int blk = 0; blk < 2; blk++) {
                char sp[64];
                snprintf(sp, sizeof(sp), blk ? "%s,block=1000" : "%s", all_specs[s]);
                terse_compressor_t c = spec(sp);
                size_t l1, l2;
                CHECK_EQ_INT(terse__ckernels_set("scalar"), 0);
                uint8_t *w1 = test_compress(&c, v, n, 1, 1, &l1, d1, r1);
                CHECK_EQ_INT(terse__ckernels_set(tables[t]), 0);
                uint8_t *w2 = test_compress(&c, v, n, 1, 1, &l2, d2, r2);
                CHECK(l1 == l2 && !memcmp(w1, w2, l1));
                CHECK(bits_equal(d1, d2, n) && bits_equal(r1, r2, n));
                free(w1), free(w2);
            }
        }
        CHECK_EQ_INT(terse__ckernels_set("auto"), 0);
    }
    CHECK_EQ_INT(terse__ckernels_set("bogus"), -1);
    free(v), free(d1), free(d2), free(r1), free(r2), free(o1), free(o2), free(i1), free(i2);
    free(k1), free(k2);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"randk_indices", t_randk_indices},
        {"randk_rules", t_randk_rules},
        {"induced_rules", t_induced_rules},
        {"unbiased_randk", t_unbiased_randk},
        {"unbiased_induced", t_unbiased_induced},
        {"nonfinite", t_nonfinite},
        {"corrupt", t_corrupt},
        {"induced_overlap", t_induced_overlap},
        {"simd_identical", t_simd_identical},
    };
    return test_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
