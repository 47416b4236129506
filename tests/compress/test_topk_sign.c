/* Unit tests: spec parsing, Top-K, sign, casts, blocks, huge tensors. */
#include "test_util.h"

typedef struct kv {
    uint32_t key;
    uint32_t idx;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key > y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : 1;
}

/* Reference Top-K by full sort: (|v| desc, index asc), first k; mask[i] = kept. */
static void ref_topk(const float *v, size_t nb, size_t k, unsigned char *mask)
{
    kv_t *a = malloc(nb * sizeof(*a));
    for (size_t i = 0; i < nb; i++)
        a[i] = (kv_t){terse__f32_bits(v[i]) & 0x7fffffffu, (uint32_t)i};
    qsort(a, nb, sizeof(*a), kv_cmp);
    memset(mask, 0, nb);
    for (size_t j = 0; j < k; j++)
        mask[a[j].idx] = 1;
    free(a);
}

/* Compresses with topk, checks dense/rem against the reference and the round trip. */
static void check_topk(const char *s, const float *v, size_t n)
{
    terse_compressor_t c = spec(s);
    float *dense = malloc(n * 4), *rem = malloc(n * 4), *acc = calloc(n, 4);
    unsigned char *mask = malloc(n);
    size_t len;
    uint8_t *wire = test_compress(&c, v, n, 5, 9, &len, dense, rem);
    size_t bs = c.block_size ? c.block_size : n;
    for (size_t s0 = 0; s0 < n; s0 += bs) {
        size_t nb = n - s0 < bs ? n - s0 : bs;
        ref_topk(v + s0, nb, terse__compress_k(c.ratio, nb), mask + s0);
    }
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        float zero = terse__f32_from_bits(terse__f32_bits(v[i]) & 0x80000000u);
        float want_d = mask[i] ? v[i] : zero, want_r = mask[i] ? zero : v[i];
        ok = terse__f32_bits(dense[i]) == terse__f32_bits(want_d) &&
             terse__f32_bits(rem[i]) == terse__f32_bits(want_r);
        /* the invariant, bit for bit */
        float sum = dense[i] + rem[i];
        ok = ok && terse__f32_bits(sum) == terse__f32_bits(v[i]);
        if (!ok)
            fprintf(stderr, "%s n %zu: element %zu differs\n", s, n, i);
    }
    CHECK(ok);
    /* without dense/rem the encoder may build the message from the selection's candidates
     * alone (no second pass over the block): the same bytes */
    size_t len2;
    uint8_t *wire2 = test_compress(&c, v, n, 5, 9, &len2, NULL, NULL);
    CHECK(len2 == len && !memcmp(wire, wire2, len));
    free(wire2);
    CHECK_EQ_INT(terse_decompress(&c, wire, len, n, 5, 9, acc), TERSE_OK);
    for (size_t i = 0; i < n; i++)
        if (mask[i] && terse__f32_bits(acc[i]) != terse__f32_bits(v[i] + 0.0f)) {
            CHECK(!"decoded value differs");
            break;
        } else if (!mask[i] && acc[i] != 0.0f) {
            CHECK(!"decoded a dropped value");
            break;
        }
    free(dense), free(rem), free(acc), free(mask), free(wire);
}

static void t_parse_format(void)
{
    const char *good[] = {"none",
                          "fp16",
                          "bf16",
                          "sign",
                          "topk:0.01",
                          "randk:0.5",
                          "induced:0.01,0.02",
                          "topk:1,block=4096",
                          "randk:0.01,seed=7",
                          "induced:0.1,0.1,block=8,seed=3",
                          "sign,block=1,nonfinite=pass",
                          "topk:0.001,seed=1,block=2"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        terse_compressor_t c, d;
        char buf[128], buf2[128];
        CHECK_EQ_INT(terse_compressor_parse(good[i], &c), TERSE_OK);
        CHECK_EQ_INT(terse_compressor_validate(&c), TERSE_OK);
        CHECK_EQ_INT(terse_compressor_format(&c, buf, sizeof(buf)), TERSE_OK);
        CHECK_EQ_INT(terse_compressor_parse(buf, &d), TERSE_OK);
        CHECK_EQ_INT(terse_compressor_format(&d, buf2, sizeof(buf2)), TERSE_OK);
        CHECK(!strcmp(buf, buf2));
        CHECK(c.kind == d.kind && c.ratio == d.ratio && c.randk_ratio == d.randk_ratio &&
              c.block_size == d.block_size && c.nonfinite_passthrough == d.nonfinite_passthrough);
    }
    terse_compressor_t c = spec("topk:0.01,block=4096,seed=7");
    char buf[64];
    CHECK_EQ_INT(terse_compressor_format(&c, buf, sizeof(buf)), TERSE_OK);
    CHECK(!strcmp(buf, "topk:0.01,block=4096,seed=7"));
    CHECK_EQ_INT(terse_compressor_format(&c, buf, 5), TERSE_ERR_INVALID_ARG);
    const char *bad[] = {"",
                         "topk",
                         "topk:",
                         "topk:0",
                         "topk:1.5",
                         "topk:-0.1",
                         "topk:nan",
                         "sign:0.1",
                         "induced:0.1",
                         "induced:0.1,",
                         "randk:0.1,block=",
                         "randk:0.1,block=x",
                         "randk:0.1,seed=1,seed=2",
                         "fp16,foo=1",
                         "topk:0.1,",
                         "zstd",
                         "topk:0.1x",
                         "none,nonfinite=maybe",
                         "sign,block=99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        terse_compressor_t x;
        if (terse_compressor_parse(bad[i], &x) != TERSE_ERR_INVALID_ARG) {
            fprintf(stderr, "accepted bad spec '%s'\n", bad[i]);
            CHECK(0);
        }
    }
    terse_compressor_t inv = {.kind = TERSE_COMPRESSOR_TOPK, .ratio = 0};
    CHECK_EQ_INT(terse_compressor_validate(&inv), TERSE_ERR_INVALID_ARG);
    inv.kind = (terse_compressor_kind_t)42;
    CHECK_EQ_INT(terse_compressor_validate(&inv), TERSE_ERR_INVALID_ARG);
    CHECK_EQ_INT(terse_compress_max_bytes(&inv, 10), 0);
}

static void t_k_rounding(void)
{
    CHECK_EQ_INT(terse__compress_k(0.5, 7), 3);
    CHECK_EQ_INT(terse__compress_k(0.1, 19), 1);
    CHECK_EQ_INT(terse__compress_k(0.1, 20), 2);
    CHECK_EQ_INT(terse__compress_k(1e-9, 1000), 1);
    CHECK_EQ_INT(terse__compress_k(1.0, 1000), 1000);
    CHECK_EQ_INT(terse__compress_k(1.0, 1), 1);
    CHECK_EQ_INT(terse__compress_k(0.999, 1000), 999);
    CHECK_EQ_INT(terse__compress_k(0.01, 4096), 40);
    /* the wire carries exactly k values: count the kept entries of distinct values */
    float v[103];
    for (int i = 0; i < 103; i++)
        v[i] = (float)(i + 1) * (i % 2 ? 1.0f : -1.0f);
    const char *s[] = {"topk:0.05", "topk:0.05,block=10", "topk:1e-6", "topk:1"};
    size_t want[] = {5, 10 * 1 + 1 /* ten blocks of 10 -> 1 each, last of 3 -> 1 */, 1, 103};
    for (int t = 0; t < 4; t++) {
        terse_compressor_t c = spec(s[t]);
        float dense[103];
        size_t len, kept = 0;
        uint8_t *w = test_compress(&c, v, 103, 0, 0, &len, dense, NULL);
        for (int i = 0; i < 103; i++)
            kept += dense[i] != 0.0f;
        CHECK_EQ_INT(kept, want[t]);
        free(w);
    }
}

static void t_topk_ties(void)
{
    /* equal |v| (including sign differences and -0.0 vs 0.0): the lower index wins */
    float v[8] = {1.0f, -1.0f, 1.0f, 2.0f, -0.0f, 0.0f, -1.0f, 0.0f};
    terse_compressor_t c = spec("topk:0.375"); /* k = 3 */
    float dense[8];
    size_t len;
    uint8_t *w = test_compress(&c, v, 8, 0, 0, &len, dense, NULL);
    CHECK(dense[3] == 2.0f && dense[0] == 1.0f && dense[1] == -1.0f);
    CHECK(dense[2] == 0.0f && dense[6] == 0.0f);
    free(w);
    float z[6] = {-0.0f, 0.0f, -0.0f, 0.0f, 0.0f, 0.0f};
    c = spec("topk:0.5");
    w = test_compress(&c, z, 6, 0, 0, &len, dense, NULL);
    CHECK(terse__f32_bits(dense[0]) == 0x80000000u && terse__f32_bits(dense[2]) == 0x80000000u);
    free(w);
    check_topk("topk:0.375", v, 8);
    check_topk("topk:0.5", z, 6);
}

static void t_topk_reference(void)
{
    /* from 32768 elements and k <= nb/32 the threshold comes from a sample (kinds 3-5 try to
     * mislead it: sorted, and large values only between or only at the sampled positions;
     * kind 6 puts ties at the threshold among few enough candidates) */
    size_t sizes[] = {1, 2, 7, 8, 9, 100, 1000, 4097, 70000, 262144, 300001};
    const char *specs[] = {"topk:0.01",        "topk:0.1",
                           "topk:0.5",         "topk:1",
                           "topk:1e-9",        "topk:0.05,block=100",
                           "topk:0.2,block=7", "topk:0.01,block=4096"};
    for (size_t a = 0; a < sizeof(sizes) / sizeof(sizes[0]); a++) {
        size_t n = sizes[a];
        float *v = malloc(n * 4);
        for (int kind = 0; kind < 7; kind++) {
            if (kind >= 3 && n < 32768)
                continue;
            if (kind == 6) /* few distinct large values, then ties at the threshold, then noise */
                for (size_t i = 0; i < n; i++)
                    v[i] = i % 131 == 7  ? 100.0f + (float)i
                           : i % 89 == 5 ? (i % 2 ? 50.0f : -50.0f)
                                         : test_uniform() * 0.5f;
            else if (kind == 3) /* ascending magnitudes, alternating signs */
                for (size_t i = 0; i < n; i++)
                    v[i] = (float)i * (i % 2 ? 1.0f : -1.0f);
            else if (kind == 4 || kind == 5) { /* big values off (4) or on (5) the samples */
                for (size_t i = 0; i < n; i++)
                    v[i] = kind == 4 ? 3.0f + (float)(i % 13) : 0.5f;
                for (size_t i = 0; i < 1024; i++)
                    v[i * n / 1024] = kind == 4 ? 0.25f : 9.0f + (float)i;
            } else if (kind == 0)
                test_fill(v, n);
            else if (kind == 1) /* heavy ties: few distinct magnitudes */
                for (size_t i = 0; i < n; i++)
                    v[i] = (float)(int)(test_rand() % 5) * (test_rand() % 2 ? 1.0f : -1.0f);
            else if (kind == 2) /* one value repeated, plus a few larger: one histogram bin */
                for (size_t i = 0; i < n; i++)
                    v[i] = i % 97 == 3 ? 2.0f + (float)i : 1.5f;
            for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++)
                check_topk(specs[s], v, n);
        }
        free(v);
    }
}

static void t_topk_encodings(void)
{
    size_t n = 5000;
    float *v = malloc(n * 4);
    test_fill(v, n);
    const char *specs[] = {"topk:0.01", "topk:0.3", "topk:1", "topk:0.02,block=300"};
    for (int enc = 0; enc < TERSE__TOPK_ENC_COUNT; enc++) {
        terse__topk_force_encoding(enc);
        for (size_t s = 0; s < 4; s++) {
            terse_compressor_t c = spec(specs[s]);
            size_t len;
            uint8_t *w = test_compress(&c, v, n, 0, 0, &len, NULL, NULL);
            CHECK_EQ_INT(w[56], enc); /* first block's encoding byte follows the header */
            free(w);
            check_topk(specs[s], v, n);
        }
    }
    terse__topk_force_encoding(-1);
    /* the automatic choice: bitmap when dense, varint when clustered, uint32 when sparse */
    struct {
        const char *spec;
        size_t n;
        int enc;
    } cases[] = {{"topk:0.5", 4096, TERSE__TOPK_ENC_BITMAP},
                 {"topk:0.01", 4096, TERSE__TOPK_ENC_VARINT},
                 {"topk:1e-9", 1u << 22, TERSE__TOPK_ENC_ABS32}};
    for (int t = 0; t < 3; t++) {
        float *x = calloc(cases[t].n, 4);
        test_fill(x, 4096);
        x[cases[t].n - 7] = 100.0f; /* far from 0: a 4-byte varint for the 1-of-4M case */
        terse_compressor_t c = spec(cases[t].spec);
        size_t len;
        uint8_t *w = test_compress(&c, x, cases[t].n, 0, 0, &len, NULL, NULL);
        CHECK_EQ_INT(w[56], cases[t].enc);
        free(w);
        check_topk(cases[t].spec, x, cases[t].n);
        free(x);
    }
    free(v);
}

/* L1/n the way the spec fixes it: per chunk of 4096 elements, 16 double lanes in element order
 * and a fixed tree; the chunks' partials added in chunk order. */
static float ref_scale(const float *v, size_t nb)
{
    double l1 = 0.0;
    for (size_t c0 = 0; c0 < nb; c0 += 4096) {
        double l[16] = {0};
        for (size_t i = c0; i < nb && i < c0 + 4096; i++)
            l[(i - c0) % 16] += fabs((double)v[i]);
        double s[8];
        for (int i = 0; i < 8; i++)
            s[i] = l[i] + l[i + 8];
        for (int i = 0; i < 4; i++)
            s[i] += s[i + 4];
        l1 += (s[0] + s[2]) + (s[1] + s[3]);
    }
    return (float)(l1 / (double)nb);
}

static void t_sign_rules(void)
{
    size_t sizes[] = {1, 5, 8, 17, 1000, 4099, 12289, 70000};
    const char *specs[] = {"sign", "sign,block=8", "sign,block=13", "sign,block=1"};
    for (size_t a = 0; a < 8; a++) {
        size_t n = sizes[a];
        float *v = malloc(n * 4), *d = malloc(n * 4), *r = malloc(n * 4), *acc = calloc(n, 4);
        test_fill(v, n);
        v[0] = -0.0f; /* counts as + */
        if (n > 2)
            v[2] = 0.0f;
        for (size_t s = 0; s < 4; s++) {
            terse_compressor_t c = spec(specs[s]);
            size_t len, bs = c.block_size ? c.block_size : n;
            uint8_t *w = test_compress(&c, v, n, 1, 2, &len, d, r);
            CHECK_EQ_INT(len, 56 + ((n + bs - 1) / bs) * 4 + (n / bs) * ((bs + 7) / 8) +
                                  (n % bs ? (n % bs + 7) / 8 : 0));
            int ok = 1;
            for (size_t s0 = 0; s0 < n; s0 += bs) {
                size_t nb = n - s0 < bs ? n - s0 : bs;
                float sc = ref_scale(v + s0, nb);
                for (size_t i = s0; i < s0 + nb; i++) {
                    float want = v[i] < 0 ? -sc : sc;
                    ok &= terse__f32_bits(d[i]) == terse__f32_bits(want);
                    ok &= terse__f32_bits(r[i]) == terse__f32_bits(v[i] - want);
                    /* one float rounding: r is v - C rounded once */
                    double exact = (double)v[i] - (double)d[i];
                    ok &= fabs((double)r[i] - exact) <= 0x1p-24 * fabs(exact);
                }
            }
            CHECK(ok);
            CHECK(!(terse__f32_bits(d[0]) >> 31)); /* -0.0 is + */
            memset(acc, 0, n * 4);
            CHECK_EQ_INT(terse_decompress(&c, w, len, n, 1, 2, acc), TERSE_OK);
            CHECK(bits_equal(acc, d, n));
            free(w);
        }
        free(v), free(d), free(r), free(acc);
    }
}

/* The message alone is encoded in one pass (sum and pack per L1 piece): the same bytes as the
 * two-pass encode that also writes C and the remainder, for blocks spanning several pieces
 * and ending off the piece, lane and byte boundaries; a NaN in a later block still fails the
 * call with the wire buffer untouched. */
static void t_sign_one_pass(void)
{
    size_t n = 70001;
    const char *specs[] = {"sign", "sign,block=10000", "sign,block=4097", "sign,block=13",
                           "sign,block=65536"};
    float *v = malloc(n * 4), *d = malloc(n * 4), *r = malloc(n * 4);
    test_fill(v, n);
    for (size_t i = 0; i < n; i += 7)
        v[i] = -v[i];
    v[4096] = -0.0f;
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        terse_compressor_t c = spec(specs[s]);
        size_t l1, l2;
        uint8_t *two = test_compress(&c, v, n, 3, 9, &l1, d, r);
        uint8_t *one = test_compress(&c, v, n, 3, 9, &l2, NULL, NULL);
        CHECK_EQ_INT(l1, l2);
        CHECK(l1 == l2 && !memcmp(one, two, l1));
        free(one), free(two);
        size_t cap = terse_compress_max_bytes(&c, n), len = 12345;
        uint8_t *w = malloc(cap), *w0 = malloc(cap);
        memset(w, 0xab, cap);
        memcpy(w0, w, cap);
        float keep = v[n - 3];
        v[n - 3] = NAN;
        CHECK_EQ_INT(terse_compress(&c, v, n, 3, 9, w, cap, &len, NULL, NULL),
                     TERSE_ERR_NONFINITE);
        CHECK(!memcmp(w, w0, cap));
        CHECK_EQ_INT(len, 12345);
        v[n - 3] = keep;
        free(w), free(w0);
    }
    free(v), free(d), free(r);
}

static void t_casts(void)
{
    size_t n = 1003;
    float *v = malloc(n * 4), *d = malloc(n * 4), *r = malloc(n * 4), *acc = calloc(n, 4);
    test_fill(v, n);
    v[1] = -0.0f;
    v[2] = 65504.0f;       /* largest half */
    v[3] = 1e-8f;          /* half subnormal */
    v[4] = 3e38f;          /* fine in bf16 */
    v[5] = 1.00048828125f; /* exactly between two halves: ties to even */
    const char *specs[] = {"none", "fp16", "bf16", "fp16,block=100"};
    for (int s = 0; s < 4; s++) {
        terse_compressor_t c = spec(specs[s]);
        if (c.kind == TERSE_COMPRESSOR_FP16)
            v[4] = 1.0f;
        size_t len;
        uint8_t *w = test_compress(&c, v, n, 0, 0, &len, d, r);
        CHECK_EQ_INT(len, 56 + n * (c.kind == TERSE_COMPRESSOR_NONE ? 4 : 2));
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            float want = c.kind == TERSE_COMPRESSOR_NONE ? v[i]
                         : c.kind == TERSE_COMPRESSOR_FP16
                             ? terse__half_to_float(terse__float_to_half(v[i]))
                             : terse__bf16_to_float(terse__float_to_bf16(v[i]));
            ok &= terse__f32_bits(d[i]) == terse__f32_bits(want);
            ok &= terse__f32_bits(d[i] + r[i]) == terse__f32_bits(v[i]); /* exact remainder */
            if (!ok) {
                fprintf(stderr, "%s element %zu: v %a d %a r %a\n", specs[s], i, v[i], d[i], r[i]);
                break;
            }
        }
        CHECK(ok);
        CHECK(c.kind != TERSE_COMPRESSOR_FP16 || d[5] == 1.0f);
        memset(acc, 0, n * 4);
        CHECK_EQ_INT(terse_decompress(&c, w, len, n, 0, 0, acc), TERSE_OK);
        for (size_t i = 0; i < n; i++)
            ok &= acc[i] == d[i];
        CHECK(ok);
        free(w);
    }
    /* overflow to Inf is a non-finite error unless passed through */
    terse_compressor_t c = spec("fp16");
    float big[3] = {1.0f, 70000.0f, 2.0f};
    uint8_t w[128];
    size_t len = 0;
    CHECK_EQ_INT(terse_compress(&c, big, 3, 0, 0, w, sizeof(w), &len, NULL, NULL),
                 TERSE_ERR_NONFINITE);
    c = spec("fp16,nonfinite=pass");
    CHECK_EQ_INT(terse_compress(&c, big, 3, 0, 0, w, sizeof(w), &len, d, NULL), TERSE_OK);
    CHECK(isinf(d[1]));
    free(v), free(d), free(r), free(acc);
}

/* The collectives write worker and server errors and outputs after a call from the messages:
 * terse__decompress_remainder must give encode's remainder bit for bit (signed zeros, ties,
 * sub-ranges, in place), validate like decode, and refuse codecs that cannot. */
static void t_remainder_rebuild(void)
{
    size_t n = 13003;
    float *v = malloc(n * 4), *rem = malloc(n * 4), *again = malloc(n * 4), *inpl = malloc(n * 4);
    test_fill(v, n);
    for (size_t i = 0; i < n; i += 7)
        v[i] = -v[i]; /* negatives among the kept values give -0 remainders */
    for (size_t i = 3; i < n; i += 97)
        v[i] = i % 2 ? -0.0f : 0.0f;
    v[500] = v[501] = v[502] = 3.5f; /* ties at the threshold */
    const char *specs[] = {"topk:0.01", "topk:0.3", "topk:0.05,block=64", "sign", "sign,block=64",
                           "topk:1.0,block=100"};
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        terse_compressor_t c = spec(specs[s]);
        CHECK(terse__compress_has_remainder(&c));
        size_t nb = terse__compress_nblocks(&c, n), first = nb > 2 ? 1 : 0, count = nb - first;
        size_t cap = terse__compress_blocks_max_bytes(&c, n, first, count), len;
        uint8_t *m = malloc(cap);
        char msg[128];
        for (size_t i = 0; i < n; i++)
            rem[i] = again[i] = 777.0f; /* blocks outside the range stay as they were */
        CHECK_EQ_INT(terse__compress_blocks(&c, v, n, 2, 5, first, count, m, cap, &len, NULL, rem,
                                            msg, sizeof(msg)),
                     TERSE_OK);
        CHECK_EQ_INT(terse__decompress_remainder(&c, m, len, n, 2, 5, first, count, v, again, msg,
                                                 sizeof(msg)),
                     TERSE_OK);
        CHECK(bits_equal(rem, again, n));
        memcpy(inpl, v, n * 4);
        CHECK_EQ_INT(terse__decompress_remainder(&c, m, len, n, 2, 5, first, count, inpl, inpl, msg,
                                                 sizeof(msg)),
                     TERSE_OK);
        size_t lo = first ? first * c.block_size : 0; /* first element of the range */
        CHECK(bits_equal(inpl + lo, rem + lo, n - lo));
        CHECK(bits_equal(inpl, v, lo));
        /* the same validation as decoding: another step or range is refused, nothing written */
        memcpy(inpl, again, n * 4);
        CHECK_EQ_INT(terse__decompress_remainder(&c, m, len, n, 2, 6, first, count, v, again, msg,
                                                 sizeof(msg)),
                     TERSE_ERR_CORRUPT);
        CHECK(bits_equal(inpl, again, n));
        CHECK_EQ_INT(terse__decompress_blocks_check(&c, m, len, n, 2, 5, first, count, msg,
                                                    sizeof(msg)),
                     TERSE_OK);
        CHECK_EQ_INT(terse__decompress_blocks_check(&c, m, len - 1, n, 2, 5, first, count, msg,
                                                    sizeof(msg)),
                     TERSE_ERR_CORRUPT);
        free(m);
    }
    /* set: out = 0 + C over the range's blocks, the bits of zeroing and adding, nothing else
     * written (sign does it in cache-sized pieces: blocks larger than a piece) */
    for (size_t s = 0; s <= N_SPECS; s++) {
        char sp[64];
        snprintf(sp, sizeof(sp), "%s,block=%s", s < N_SPECS ? all_specs[s] : "sign",
                 s < N_SPECS ? "64" : "5000");
        terse_compressor_t c = spec(sp);
        size_t nb = terse__compress_nblocks(&c, n), first = 1, count = nb - 2;
        size_t cap = terse__compress_blocks_max_bytes(&c, n, first, count), len;
        uint8_t *m = malloc(cap);
        char msg[128];
        CHECK_EQ_INT(terse__compress_blocks(&c, v, n, 2, 5, first, count, m, cap, &len, NULL, NULL,
                                            msg, sizeof(msg)),
                     TERSE_OK);
        for (size_t i = 0; i < n; i++)
            rem[i] = again[i] = 31.0f;
        size_t lo = first * c.block_size, hi = (first + count) * c.block_size;
        memset(rem + lo, 0, (hi - lo) * 4);
        CHECK_EQ_INT(terse__decompress_blocks_add(&c, m, len, n, 2, 5, first, count, rem, msg,
                                                  sizeof(msg)),
                     TERSE_OK);
        CHECK_EQ_INT(terse__decompress_blocks_set(&c, m, len, n, 2, 5, first, count, again, msg,
                                                  sizeof(msg)),
                     TERSE_OK);
        CHECK(bits_equal(rem, again, n));
        free(m);
    }
    terse_compressor_t r = spec("randk:0.05");
    CHECK(!terse__compress_has_remainder(&r));
    char msg[128];
    CHECK_EQ_INT(terse__decompress_remainder(&r, NULL, 0, n, 0, 0, 0, 1, v, rem, msg, sizeof(msg)),
                 TERSE_ERR_INVALID_ARG);
    free(v), free(rem), free(again), free(inpl);
}

/* Block ranges: messages for sub-ranges add up to the whole tensor's C(v), touch only their
 * blocks, and are rejected by a receiver expecting another range. */
static void t_block_ranges(void)
{
    size_t n = 1000;
    float *v = malloc(n * 4), *whole = malloc(n * 4), *part = malloc(n * 4), *acc = malloc(n * 4);
    test_fill(v, n);
    for (size_t s = 0; s < N_SPECS; s++) {
        char sp[64];
        snprintf(sp, sizeof(sp), "%s,block=64", all_specs[s]);
        terse_compressor_t c = spec(sp);
        CHECK_EQ_INT(terse__compress_nblocks(&c, n), 16);
        size_t len;
        uint8_t *w = test_compress(&c, v, n, 4, 8, &len, whole, NULL);
        free(w);
        memset(acc, 0, n * 4);
        for (size_t i = 0; i < n; i++)
            part[i] = 12345.0f;
        size_t first[] = {0, 3, 15}, count[] = {3, 12, 1};
        for (int q = 0; q < 3; q++) {
            size_t cap = terse__compress_blocks_max_bytes(&c, n, first[q], count[q]);
            uint8_t *m = malloc(cap);
            char msg[128];
            CHECK_EQ_INT(terse__compress_blocks(&c, v, n, 4, 8, first[q], count[q], m, cap, &len,
                                                part, NULL, msg, sizeof(msg)),
                         TERSE_OK);
            CHECK_EQ_INT(terse__decompress_blocks_add(&c, m, len, n, 4, 8, first[q], count[q], acc,
                                                      msg, sizeof(msg)),
                         TERSE_OK);
            /* a receiver expecting another range, tensor or step refuses it */
            CHECK_EQ_INT(terse__decompress_blocks_add(&c, m, len, n, 4, 8, first[q] ^ 1, count[q],
                                                      acc, msg, sizeof(msg)),
                         TERSE_ERR_CORRUPT);
            CHECK_EQ_INT(terse__decompress_blocks_add(&c, m, len, n, 5, 8, first[q], count[q], acc,
                                                      msg, sizeof(msg)),
                         TERSE_ERR_CORRUPT);
            CHECK_EQ_INT(terse__decompress_blocks_add(&c, m, len, n, 4, 9, first[q], count[q], acc,
                                                      msg, sizeof(msg)),
                         TERSE_ERR_CORRUPT);
            CHECK_EQ_INT(terse__decompress_blocks_add(&c, m, len, n + 1, 4, 8, first[q], count[q],
                                                      acc, msg, sizeof(msg)),
                         TERSE_ERR_CORRUPT);
            free(m);
        }
        CHECK(bits_equal(part, whole, n)); /* every block written exactly once */
        int ok = 1;
        for (size_t i = 0; i < n; i++)
            ok &= acc[i] == whole[i];
        CHECK(ok);
        /* out-of-range requests */
        char msg[128];
        CHECK_EQ_INT(terse__compress_blocks_max_bytes(&c, n, 10, 7), 0);
        CHECK_EQ_INT(terse__compress_blocks(&c, v, n, 0, 0, 16, 1, part, 4096, &len, NULL, NULL,
                                            msg, sizeof(msg)),
                     TERSE_ERR_INVALID_ARG);
    }
    free(v), free(whole), free(part), free(acc);
}

/* More than 2^24 elements (float counters would stop counting), in a few seconds. */
static void t_huge(void)
{
    size_t n = (1u << 24) + 4099;
    float *v = malloc(n * 4), *acc = calloc(n, 4);
    test_fill(v, n);
    v[n - 1] = 1000.0f; /* the largest, beyond 2^24 */
    terse_compressor_t c = spec("topk:0.001");
    size_t len;
    uint8_t *w = test_compress(&c, v, n, 0, 0, &len, NULL, NULL);
    CHECK_EQ_INT(terse_decompress(&c, w, len, n, 0, 0, acc), TERSE_OK);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += acc[i] != 0.0f;
    CHECK_EQ_INT(kept, terse__compress_k(0.001, n));
    CHECK(acc[n - 1] == 1000.0f);
    free(w);
    c = spec("sign");
    w = test_compress(&c, v, n, 0, 0, &len, NULL, NULL);
    CHECK_EQ_INT(len, 56 + 4 + (n + 7) / 8);
    memset(acc, 0, n * 4);
    CHECK_EQ_INT(terse_decompress(&c, w, len, n, 0, 0, acc), TERSE_OK);
    CHECK(acc[n - 1] > 0 && acc[n - 1] == acc[0] * (v[0] < 0 ? -1.0f : 1.0f));
    free(w);
    free(v), free(acc);
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"parse_format", t_parse_format},
        {"k_rounding", t_k_rounding},
        {"topk_ties", t_topk_ties},
        {"topk_reference", t_topk_reference},
        {"topk_encodings", t_topk_encodings},
        {"sign_rules", t_sign_rules},
        {"sign_one_pass", t_sign_one_pass},
        {"casts", t_casts},
        {"block_ranges", t_block_ranges},
        {"remainder_rebuild", t_remainder_rebuild},
        {"huge", t_huge},
    };
    return test_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
