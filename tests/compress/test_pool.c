/* The compression pool (core/pool.h) and the parallel block-range codec driver: the static
 * partition, parts on fixed threads, nesting and concurrent submitters, and encode / decode on
 * 3 threads giving the one-thread bytes, status and message for every codec, including NaN
 * input and corrupt messages whose first bad block lies in a later part. */
#pragma GCC diagnostic ignored "-Wunused-function" /* test_util.h helpers this file skips */
#include "test_util.h"

#include "core/pool.h"

#include <pthread.h>

enum { MAXP = 8 };

typedef struct seen {
    pthread_t who[MAXP];
    int hits[MAXP], nparts[MAXP], nested[MAXP];
} seen_t;

static void record(void *arg, int part, int nparts)
{
    seen_t *s = arg;
    s->who[part] = pthread_self();
    s->hits[part]++;
    s->nparts[part] = nparts;
    s->nested[part] = terse__pool_acquire(4); /* inside a part: must run inline */
}

static void test_partition(void)
{
    for (size_t n = 0; n < 50; n++)
        for (int np = 1; np <= 7; np++) {
            size_t prev = 0;
            for (int i = 0; i <= np; i++) {
                size_t lo = terse__pool_part_lo(n, i, np);
                CHECK(lo >= prev);
                prev = lo;
            }
            CHECK_EQ_INT(terse__pool_part_lo(n, 0, np), 0);
            CHECK_EQ_INT(terse__pool_part_lo(n, np, np), n);
        }
    CHECK_EQ_INT(terse__pool_acquire(4), 1); /* no pool yet: inline */
    CHECK_EQ_INT(terse__pool_start(4, NULL, NULL, NULL), 0);
    CHECK_EQ_INT(terse__pool_size(), 4);
    pthread_t first[MAXP];
    for (int round = 0; round < 20; round++) {
        seen_t s = {0};
        int np = terse__pool_acquire(3);
        CHECK_EQ_INT(np, 3);
        terse__pool_run(np, record, &s);
        terse__pool_release();
        for (int i = 0; i < np; i++) {
            CHECK_EQ_INT(s.hits[i], 1);
            CHECK_EQ_INT(s.nparts[i], 3);
            CHECK_EQ_INT(s.nested[i], 1);
            if (round == 0)
                first[i] = s.who[i];
            CHECK(pthread_equal(first[i], s.who[i])); /* a part keeps its thread */
        }
        CHECK(pthread_equal(s.who[0], pthread_self()));
        CHECK(!pthread_equal(s.who[1], s.who[2]));
    }
    CHECK_EQ_INT(terse__pool_acquire(9), 4); /* clamped to the pool */
    terse__pool_release();
    terse__pool_stop();
    CHECK_EQ_INT(terse__pool_size(), 1);
}

/* Two submitters at once: one gets the pool, the other runs inline; neither waits. */
typedef struct submitter {
    int runs, inline_runs;
    size_t sum;
} submitter_t;

static void add_part(void *arg, int part, int nparts)
{
    size_t *sum = arg;
    size_t lo = terse__pool_part_lo(100000, part, nparts), hi = terse__pool_part_lo(100000, part + 1, nparts);
    size_t s = 0;
    for (size_t i = lo; i < hi; i++)
        s += i;
    __atomic_fetch_add(sum, s, __ATOMIC_RELAXED);
}

static void *submit_loop(void *arg)
{
    submitter_t *u = arg;
    for (int k = 0; k < 2000; k++) {
        int np = terse__pool_acquire(3);
        size_t sum = 0;
        terse__pool_run(np, add_part, &sum);
        if (np > 1)
            terse__pool_release(), u->runs++;
        else
            u->inline_runs++;
        u->sum += sum == (size_t)100000 * 99999 / 2 ? 0 : 1;
    }
    return NULL;
}

static void test_concurrent(void)
{
    CHECK_EQ_INT(terse__pool_start(3, NULL, NULL, NULL), 0);
    submitter_t u[3] = {{0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, submit_loop, &u[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(u[i].sum, 0); /* every run, pooled or inline, summed everything once */
        CHECK_EQ_INT(u[i].runs + u[i].inline_runs, 2000);
    }
    CHECK(u[0].runs + u[1].runs + u[2].runs > 0);
    terse__pool_stop();
}

static const char *const specs[] = {"topk:0.01,block=20000", "sign,block=20000",
                                    "randk:0.05,block=20000,seed=4",
                                    "induced:0.01,0.02,block=20000", "fp16,block=20000",
                                    "bf16,block=20000", "none,block=20000"};

/* Encode and every decode op on one thread and on the pool: the same bytes and outcome. */
static void one_codec(const char *spec, size_t n, size_t bad_at, int corrupt_at)
{
    terse_compressor_t c;
    CHECK_EQ_INT(terse_compressor_parse(spec, &c), TERSE_OK);
    float *v = malloc(n * 4), *o1 = malloc(n * 4), *o3 = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        v[i] = test_uniform() * 3.0f;
    if (bad_at < n)
        v[bad_at] = NAN;
    char m1[256], m3[256];
    terse__crange_t r1, r3;
    size_t nb = terse__compress_nblocks(&c, n);
    CHECK_EQ_INT(terse__crange_init(&r1, &c, m1, sizeof(m1)), TERSE_OK);
    CHECK_EQ_INT(terse__crange_at(&r1, n, 3, 7, 0, nb), TERSE_OK);
    r3 = r1;
    r3.msg = m3;
    size_t cap = terse__crange_max_bytes(&r1), l1 = 0, l3 = 0;
    uint8_t *w1 = calloc(cap, 1), *w3 = calloc(cap, 1);
    terse__cenc_args_t a1 = {.v = v, .wire = w1, .wire_cap = cap, .remainder_out = o1};
    terse__cenc_args_t a3 = {.v = v, .wire = w3, .wire_cap = cap, .remainder_out = o3};
    m1[0] = m3[0] = 0;
    terse_status_t s1 = terse__cblocks_encode(&r1, terse__cview_local(), &a1, &l1);
    unsigned long before = terse__pool_parallel_runs();
    terse_status_t s3 = terse__cblocks_encode_par(&r3, &a3, &l3);
    CHECK(terse__pool_parallel_runs() > before);
    CHECK_EQ_INT(s3, s1);
    CHECK(!strcmp(m1, m3));
    if (s1 != TERSE_OK || s3 != TERSE_OK) {
        CHECK_EQ_INT(s1, TERSE_ERR_NONFINITE);
        goto out;
    }
    CHECK_EQ_INT(l3, l1);
    CHECK(!memcmp(w1, w3, l1));
    CHECK(!memcmp(o1, o3, n * 4));
    if (corrupt_at == 0) /* the last byte: padding bits of a sign bitmap */
        w1[l1 - 1] ^= 0x5a, w3[l1 - 1] ^= 0x5a;
    if (corrupt_at == 1) /* the last value: a NaN */
        memcpy(w1 + l1 - 4, "\0\0\xc0\x7f", 4), memcpy(w3 + l1 - 4, "\0\0\xc0\x7f", 4);
    for (int op = TERSE__CDEC_CHECK; op <= TERSE__CDEC_REMAINDER; op++) {
        if (op == TERSE__CDEC_REMAINDER && !terse__compress_has_remainder(&c))
            continue;
        for (size_t i = 0; i < n; i++)
            o1[i] = o3[i] = (float)(i % 3);
        terse__cdec_args_t d1 = {.wire = w1, .wire_len = l1, .op = (terse__cdec_op_t)op,
                                 .out = o1, .v = v};
        terse__cdec_args_t d3 = {.wire = w3, .wire_len = l1, .op = (terse__cdec_op_t)op,
                                 .out = o3, .v = v};
        m1[0] = m3[0] = 0;
        s1 = terse__cblocks_decode(&r1, terse__cview_local(), &d1);
        s3 = terse__cblocks_decode_par(&r3, &d3);
        CHECK_EQ_INT(s3, s1);
        CHECK(!strcmp(m1, m3));
        CHECK(!memcmp(o1, o3, n * 4));
        CHECK(corrupt_at < 0 || s1 == TERSE_ERR_CORRUPT);
    }
out:
    free(v), free(o1), free(o3), free(w1), free(w3);
}

static void test_codecs(void)
{
    CHECK_EQ_INT(terse__pool_start(3, NULL, NULL, terse__compress_scratch_release), 0);
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        one_codec(specs[s], 300001, SIZE_MAX, -1);
        one_codec(specs[s], 300001, 250003, -1); /* NaN in the last part only */
        one_codec(specs[s], 300001, 7, -1);      /* ... and in the first */
    }
    /* sign: a padding bit of the last block set; randk: a NaN value in the last block */
    one_codec("sign,block=20000", 300001, SIZE_MAX, 0);
    one_codec("randk:0.05,block=20000,seed=4", 300001, SIZE_MAX, 1);
    terse__pool_stop();
}

int main(int argc, char **argv)
{
    static const test_case_t cases[] = {
        {"pool_partition", test_partition},
        {"pool_concurrent", test_concurrent},
        {"pool_codecs", test_codecs},
    };
    return test_main(argc, argv, cases, sizeof(cases) / sizeof(cases[0]));
}
