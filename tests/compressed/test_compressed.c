/* Compressed allreduce under mpirun: the same bits on every rank, whatever the algorithm and
 * however tensors are fused; C(Delta) + e == Delta; failures on every rank with outputs intact.
 * Links the internal library so one process can switch TERSE_COMPRESSED_ALGO between calls. */
#include "../mpi/test_util.h"
#include "cbufs.h"

#include "coll/comm.h" /* next_seq: the call a fault injection names */
#include "core/config.h"

#include <math.h>

static const char *const algos[] = {"sparse_allgather", "sparse_rs_ag", "sign_allgather",
                                    "sign_a2a_ag", "dense", "auto"};
#define NALGO 6

static void fill_in(float *const *in, int rank, int seed)
{
    for (int j = 0; j < NT; j++) {
        uint64_t s = (uint64_t)(rank * 1000 + j * 17 + seed);
        for (size_t i = 0; i < sizes[j]; i++)
            in[j][i] = ((float)(lcg(&s) % 20001) - 10000.0f) / 1000.0f;
    }
}

static void fill(bufs_t *b, int rank, int seed)
{
    fill_in(b->in, rank, seed);
    for (int j = 0; j < NT; j++) {
        for (size_t i = 0; i < sizes[j]; i++) {
            b->out[j][i] = -12345.0f;
            b->werr[j][i] = -777.0f;
            b->serr[j][i] = (float)(i % 7) * 0.01f; /* same on every rank */
        }
    }
}

/* A communicator takes TERSE_COMPRESSED_ALGO when it is made (its settings snapshot): this
 * test switches the default of one it already has, through the internal settings, and sets
 * the variable too for the communicators made later. */
static void comm_use_algo(terse_comm_h comm, const char *name)
{
    setenv("TERSE_COMPRESSED_ALGO", name, 1);
    terse__config_reload();
    if (terse_compressed_algo_parse(name, &comm->settings.compressed_algo) != TERSE_OK)
        abort();
}

static terse_comm_h algo_comm; /* main's communicator, whose default set_algo switches */

static void set_algo(const char *name)
{
    comm_use_algo(algo_comm, name);
}

static int same(const bufs_t *a, const bufs_t *b)
{
    for (int j = 0; j < NT; j++)
        if (memcmp(a->out[j], b->out[j], sizes[j] * 4) || memcmp(a->werr[j], b->werr[j], sizes[j] * 4))
            return 0;
    return 1;
}

static const char *const specs[] = {"topk:0.05,block=64", "topk:0.3", "sign,block=100", "sign",
                                    "randk:0.1,block=64,seed=3", "induced:0.05,0.05,block=64",
                                    "fp16,block=128"};
#define NSPEC 7

/* Every algorithm gives the bits of sparse_allgather, two steps in a row (the second reads the
 * server errors the first one left). */
static void test_algos(terse_comm_h comm)
{
    for (int s = 0; s < NSPEC; s++) {
        for (int dw = 0; dw < 2; dw++) {
            bufs_t ref, cur;
            alloc_bufs(&ref);
            alloc_bufs(&cur);
            for (int a = 0; a < NALGO; a++) {
                bufs_t *b = a == 0 ? &ref : &cur;
                set_algo(algos[a]);
                fill(b, test_rank, 0);
                const char *name = "";
                for (uint64_t step = 0; step < 2; step++) {
                    terse_status_t st = run(comm, specs[s], dw, b, 0, NT, step, &name);
                    CHECK(st == TERSE_OK, "%s dw %d %s: %s (%s)", specs[s], dw, algos[a],
                          terse_status_name(st), terse_comm_last_error(comm));
                }
                if (a < NALGO - 1)
                    CHECK(!strcmp(name, algos[a]), "asked for %s, ran %s", algos[a], name);
                for (int j = 0; j < NT; j++)
                    CHECK(test_identical(b->out[j], sizes[j] * 4), "%s dw %d %s: tensor %d differs across ranks",
                          specs[s], dw, algos[a], j);
                if (a > 0)
                    CHECK(same(&ref, &cur), "%s dw %d: %s differs from %s", specs[s], dw, algos[a],
                          algos[0]);
                if (test_rank == 0 && a == NALGO - 1)
                    printf("%s dw %d: auto chose %s\n", specs[s], dw, name);
            }
            free_bufs(&ref);
            free_bufs(&cur);
        }
    }
    set_algo("auto");
}

static void set_pipeline(const char *bytes)
{
    setenv("TERSE_PIPELINE_BYTES", bytes, 1);
    terse__config_reload();
}

static int same_serr(const bufs_t *a, const bufs_t *b)
{
    for (int j = 0; j < NT; j++)
        if (memcmp(a->serr[j], b->serr[j], sizes[j] * 4))
            return 0;
    return 1;
}

/* Steps 0 and 1 of @spec on inputs of seeds 4 and 5 (the second step reads the e_s the first
 * left). @alias: 0 separate buffers, 1 out is in (in place), 2 worker_error is in (the input
 * becomes the error). Afterwards b->out and b->werr hold the results wherever they landed. */
static void two_steps(terse_comm_h comm, const char *spec, int dw, bufs_t *b, int alias)
{
    bufs_t v = *b;
    fill(b, test_rank, 4);
    for (int j = 0; j < NT; j++) {
        if (alias == 1)
            v.out[j] = v.in[j];
        if (alias == 2)
            v.werr[j] = v.in[j];
    }
    for (uint64_t step = 0; step < 2; step++) {
        if (step)
            fill_in(v.in, test_rank, 5);
        terse_status_t st = run(comm, spec, dw, &v, 0, NT, step, NULL);
        CHECK(st == TERSE_OK, "%s dw %d alias %d: %s (%s)", spec, dw, alias,
              terse_status_name(st), terse_comm_last_error(comm));
    }
    for (int j = 0; j < NT && alias; j++)
        memcpy(alias == 1 ? b->out[j] : b->werr[j], b->in[j], sizes[j] * 4);
}

/* Pipelining (TERSE_PIPELINE_BYTES: segments of a few elements, messages in many chunks) and
 * in-place buffers give the bits of unchunked calls on separate buffers: outputs, worker
 * errors and server errors, for every algorithm. */
static void test_pipeline(terse_comm_h comm)
{
    const char *chunk[] = {"256", "4100", "256", "256"};
    const int alias[] = {0, 0, 1, 2};
    for (int s = 0; s < NSPEC; s++) {
        for (int dw = 0; dw < 2; dw++) {
            for (int a = 0; a < NALGO; a++) {
                bufs_t ref, cur;
                alloc_bufs(&ref);
                alloc_bufs(&cur);
                set_algo(algos[a]);
                set_pipeline("0");
                two_steps(comm, specs[s], dw, &ref, 0);
                for (int c = 0; c < 4; c++) {
                    set_pipeline(chunk[c]);
                    two_steps(comm, specs[s], dw, &cur, alias[c]);
                    CHECK(same(&ref, &cur) && same_serr(&ref, &cur),
                          "%s dw %d %s: TERSE_PIPELINE_BYTES=%s in-place mode %d differs from "
                          "unpipelined separate buffers", specs[s], dw, algos[a], chunk[c],
                          alias[c]);
                }
                free_bufs(&ref);
                free_bufs(&cur);
            }
        }
    }
    set_pipeline("4194304");
    set_algo("auto");
}

/* One call with every tensor == one call per tensor. */
static void test_fusion(terse_comm_h comm)
{
    /* auto may pick different algorithms for the pieces; sparse_allgather keeps every e_s */
    for (int s = 0; s < 2 * NSPEC; s++) {
        set_algo(s < NSPEC ? "auto" : "sparse_allgather");
        for (int dw = 0; dw < 2; dw++) {
            bufs_t a, b;
            alloc_bufs(&a);
            alloc_bufs(&b);
            fill(&a, test_rank, 1);
            fill(&b, test_rank, 1);
            terse_status_t st = run(comm, specs[s % NSPEC], dw, &a, 0, NT, 5, NULL);
            CHECK(st == TERSE_OK, "fused %s: %s", specs[s % NSPEC], terse_comm_last_error(comm));
            for (int j = 0; j < NT; j++)
                CHECK((st = run(comm, specs[s % NSPEC], dw, &b, j, j + 1, 5, NULL)) == TERSE_OK,
                      "split %s: %s", specs[s % NSPEC], terse_comm_last_error(comm));
            CHECK(same(&a, &b), "%s dw %d: fused differs from separate calls", specs[s % NSPEC], dw);
            for (int j = 0; j < NT && s >= NSPEC; j++)
                CHECK(!memcmp(a.serr[j], b.serr[j], sizes[j] * 4), "%s: server errors differ",
                      specs[s % NSPEC]);
            free_bufs(&a);
            free_bufs(&b);
        }
    }
    set_algo("auto");
}

/* C(Delta) + e == Delta bit for bit (Top-K, Rand-K), and the single-way result is the rank-order
 * sum of every rank's C(Delta_k) divided by K. */
static void test_invariant(terse_comm_h comm)
{
    const char *exact[] = {"topk:0.05,block=64", "topk:0.3", "randk:0.1,block=64,seed=3"};
    for (int s = 0; s < 3; s++) {
        bufs_t b;
        alloc_bufs(&b);
        fill(&b, test_rank, 2);
        CHECK(run(comm, exact[s], 0, &b, 0, NT, 3, NULL) == TERSE_OK, "%s", exact[s]);
        terse_compressor_t c;
        terse_compressor_parse(exact[s], &c);
        for (int j = 0; j < NT; j++) {
            size_t n = sizes[j], cap = terse_compress_max_bytes(&c, n), len;
            void *wire = malloc(cap);
            float *dense = calloc(n, 4), *sum = calloc(n, 4), *all = malloc(n * 4 * (size_t)test_size);
            CHECK(terse_compress(&c, b.in[j], n, ids[j], 3, wire, cap, &len, dense, NULL) == TERSE_OK, "compress");
            /* bit-exact for Top-K; Rand-K scales by n/k, so v*s + (v - v*s) rounds */
            int topk = c.kind == TERSE_COMPRESSOR_TOPK;
            for (size_t i = 0; i < n; i++)
                CHECK(topk ? dense[i] + b.werr[j][i] == b.in[j][i]
                           : fabsf(dense[i] + b.werr[j][i] - b.in[j][i]) <= 1e-5f * fabsf(dense[i]) + 1e-30f,
                      "%s tensor %d elem %zu: C + e != Delta", exact[s], j, i);
            MPI_Allgather(dense, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
            for (int k = 0; k < test_size; k++)
                for (size_t i = 0; i < n; i++)
                    sum[i] += all[(size_t)k * n + i];
            for (size_t i = 0; i < n; i++)
                CHECK(b.out[j][i] == sum[i] / (float)test_size, "%s tensor %d elem %zu: %g != %g",
                      exact[s], j, i, b.out[j][i], sum[i] / (float)test_size);
            free(wire);
            free(dense);
            free(sum);
            free(all);
        }
        free_bufs(&b);
    }
}

static void expect_all_fail(terse_status_t st, terse_status_t want, const char *what, terse_comm_h comm)
{
    int failed = st != TERSE_OK, all = 0;
    MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CHECK(all, "%s: some rank did not fail (this rank %s)", what, terse_status_name(st));
    CHECK(want == TERSE_OK || st == want, "%s: got %s, want %s (%s)", what, terse_status_name(st),
          terse_status_name(want), terse_comm_last_error(comm));
}

static void untouched(const bufs_t *b, const char *what)
{
    for (int j = 0; j < NT; j++)
        for (size_t i = 0; i < sizes[j]; i++) {
            if (b->out[j][i] != -12345.0f || b->werr[j][i] != -777.0f ||
                b->serr[j][i] != (float)(i % 7) * 0.01f) {
                CHECK(0, "%s: tensor %d elem %zu written", what, j, i);
                return;
            }
        }
}

static void test_faults(terse_comm_h comm)
{
    for (int a = 0; a < NALGO - 1; a++) {
        set_algo(algos[a]);
        bufs_t b;
        alloc_bufs(&b);
        if (test_size > 1) {
            fill(&b, test_rank, 3);
            terse_status_t st = run(comm, test_rank == test_size - 1 ? "topk:0.2,block=64" : "topk:0.1,block=64",
                                    1, &b, 0, NT, 0, NULL);
            expect_all_fail(st, TERSE_ERR_MISMATCH, "mismatched compressor", comm);
            untouched(&b, "mismatched compressor");
            st = run(comm, "sign", 1, &b, 0, test_rank == 0 ? NT - 1 : NT, 0, NULL);
            expect_all_fail(st, TERSE_ERR_MISMATCH, "mismatched tensor list", comm);
            untouched(&b, "mismatched tensor list");
        }
        fill(&b, test_rank, 3);
        if (test_rank == test_size / 2)
            b.in[0][500] = NAN;
        terse_status_t st = run(comm, "topk:0.1,block=64", 1, &b, 0, NT, 0, NULL);
        expect_all_fail(st, TERSE_OK, "NaN on one rank", comm);
        if (test_rank == test_size / 2)
            CHECK(st == TERSE_ERR_NONFINITE, "NaN gives %s", terse_status_name(st));
        untouched(&b, "NaN on one rank");
        /* still works afterwards */
        fill(&b, test_rank, 3);
        CHECK(run(comm, "topk:0.1,block=64", 1, &b, 0, NT, 0, NULL) == TERSE_OK, "after faults: %s",
              terse_comm_last_error(comm));
        free_bufs(&b);
    }
    set_algo("auto");
}

/* ---- corrupt messages over the real transport (TERSE_FAULT_INJECT) ---- */

/* Arms the engine's test-only fault injection for this communicator's next call: @what is
 * "KIND:FIELDS" without rank and seq (NULL disarms). Every rank sets the same variable. */
static void inject_next(terse_comm_h comm, int rank, const char *what)
{
    if (!what) {
        unsetenv("TERSE_FAULT_INJECT");
    } else {
        char spec[128];
        const char *colon = strchr(what, ':');
        int klen = colon ? (int)(colon - what) : (int)strlen(what);
        snprintf(spec, sizeof(spec), "%.*s:rank=%d,seq=%u%s%s", klen, what, rank,
                 comm->next_seq, colon && colon[1] ? "," : "", colon ? colon + 1 : "");
        setenv("TERSE_FAULT_INJECT", spec, 1);
    }
    terse__config_reload();
}

/* Every rank fails with TERSE_ERR_CORRUPT and a message that names the sender. */
static void expect_corrupt(terse_comm_h comm, terse_status_t st, int sender, const char *what)
{
    char needle[32];
    expect_all_fail(st, TERSE_ERR_CORRUPT, what, comm);
    snprintf(needle, sizeof(needle), "from rank %d", sender);
    if (st != TERSE_OK)
        CHECK(strstr(terse_comm_last_error(comm), needle) != NULL, "%s: '%s' does not say '%s'",
              what, terse_comm_last_error(comm), needle);
}

/* Which faults each algorithm's messages can show: packed compressed messages are validated
 * by the decoders (framing, codec header, codec payload); dense float messages only by their
 * length. @owner: only schedules with a second (owner -> all) round. */
typedef struct fault_case {
    const char *fault;
    int packed;   /* 1: only where step 0 carries packed messages */
    int topk;     /* 1: only with Top-K (bytes inside its values / indices) */
    int step1;    /* 1: targets the second round (owner schedules and dense) */
    int dw;       /* double_way of the call */
} fault_case_t;

static const fault_case_t fault_cases[] = {
    {"corrupt:at=0,len=8", 1, 0, 0, 1},   /* first segment length: overruns the message */
    {"corrupt:at=16,len=8", 1, 0, 0, 1},  /* codec header field n of the first segment */
    {"corrupt:at=64,len=4", 1, 0, 0, 1},  /* Top-K index encoding byte / sign scale (NaN) */
    {"corrupt:at=69,len=4", 1, 1, 0, 0},  /* Top-K: the second value of the first block (NaN) */
    {"corrupt:at=89,len=2", 1, 1, 0, 1},  /* Top-K (k = 6 of 64): its first index */
    {"truncate:len=3", 0, 0, 0, 1},       /* 3 bytes short of what the header announces */
    {"truncate:len=1", 0, 0, 0, 0},
    {"corrupt:at=0,len=8,step=1", 1, 0, 1, 1}, /* owners' server messages (packed) */
    {"truncate:len=4,step=1", 0, 0, 1, 0},     /* owners' dense single-way results */
    {"truncate:len=4,step=1", 0, 0, 1, 1},
};
#define NFAULT (int)(sizeof(fault_cases) / sizeof(fault_cases[0]))

static void test_corrupt(terse_comm_h comm)
{
    if (test_size == 1)
        return;
    int tried = 0;
    for (int a = 0; a < NALGO - 1; a++) {
        const char *algo = algos[a];
        int sign = !strncmp(algo, "sign", 4), dense = !strcmp(algo, "dense");
        int owner = !strcmp(algo, "sparse_rs_ag") || !strcmp(algo, "sign_a2a_ag") || dense;
        const char *spec = sign ? "sign,block=100" : "topk:0.1,block=64";
        set_algo(algo);
        for (int f = 0; f < NFAULT; f++) {
            const fault_case_t *fc = &fault_cases[f];
            if ((fc->packed && dense) || (fc->topk && sign) || (fc->step1 && !owner))
                continue;
            /* a packed second round exists only double-way (single-way results are dense) */
            if (fc->step1 && fc->packed && (dense || !fc->dw))
                continue;
            int sender = (a + f) % test_size;
            char what[160];
            snprintf(what, sizeof(what), "%s dw %d, rank %d sends with %s", algo, fc->dw, sender,
                     fc->fault);
            bufs_t b;
            alloc_bufs(&b);
            fill(&b, test_rank, 4);
            inject_next(comm, sender, fc->fault);
            const char *ran = "";
            terse_status_t st = run(comm, spec, fc->dw, &b, 0, NT, 7, &ran);
            inject_next(comm, 0, NULL);
            CHECK(!strcmp(ran, algo), "%s: ran %s", what, ran);
            expect_corrupt(comm, st, sender, what);
            if (test_rank == 0)
                printf("%s -> %s\n", what, terse_comm_last_error(comm));
            untouched(&b, what);
            /* the communicator carries on: the same call again gives every rank the same bits */
            fill(&b, test_rank, 4);
            st = run(comm, spec, fc->dw, &b, 0, NT, 7, NULL);
            CHECK(st == TERSE_OK, "%s: the call after: %s (%s)", what, terse_status_name(st),
                  terse_comm_last_error(comm));
            for (int j = 0; j < NT; j++)
                CHECK(test_identical(b.out[j], sizes[j] * 4), "%s: call after: tensor %d differs", what, j);
            free_bufs(&b);
            tried++;
        }
    }
    CHECK(tried >= 20, "only %d fault cases ran", tried);
    set_algo("auto");
}

/* An EF state under test and its twin, which never sees the failed calls: after a failure
 * both must keep stepping to the same bits (SAEF, double-way, averaging every 3 steps). */
typedef struct ef_case {
    terse_ef_h ef, twin;
    bufs_t b, c;
    const float *d[NT];
    float *u[NT], *u2[NT];
    size_t len;
    uint8_t *s0, *s1, *s2;
} ef_case_t;

static void ef_case_open(terse_comm_h comm, ef_case_t *e, const char *spec)
{
    static const size_t cnt[NT] = {1000, 37, 1, 513};
    terse_ef_params_t prm = {.field_mask = TERSE_EF_FIELD_DOUBLE_WAY | TERSE_EF_FIELD_PERIOD,
                             .mode = TERSE_EF_MODE_SAEF, .ntensors = NT, .ids = ids,
                             .counts = cnt, .period = 3, .double_way = 1};
    memset(e, 0, sizeof(*e));
    terse_compressor_t c;
    prm.compressor = &c;
    CHECK(terse_compressor_parse(spec, &c) == TERSE_OK, "parse %s", spec);
    CHECK(terse_ef_create(comm, &prm, &e->ef) == TERSE_OK && terse_ef_create(comm, &prm, &e->twin) == TERSE_OK,
          "ef create");
    alloc_bufs(&e->b);
    alloc_bufs(&e->c);
    for (int j = 0; j < NT; j++)
        e->d[j] = e->b.in[j], e->u[j] = e->b.out[j], e->u2[j] = e->c.out[j];
    e->len = terse_ef_save_size(e->ef);
    e->s0 = malloc(e->len), e->s1 = malloc(e->len), e->s2 = malloc(e->len);
}

/* A failing exchange on e->ef: every rank fails naming @sender, the state is unchanged. */
static void ef_case_fail(terse_comm_h comm, ef_case_t *e, int sender, const char *fault, const char *what)
{
    size_t w;
    CHECK(terse_ef_prepare(e->ef, NULL, NULL) == TERSE_OK, "prepare");
    terse_ef_save(e->ef, e->s0, e->len, &w);
    uint64_t step = terse_ef_step(e->ef);
    inject_next(comm, sender, fault);
    terse_status_t st = terse_ef_exchange(e->ef, e->d, e->u);
    inject_next(comm, 0, NULL);
    expect_corrupt(comm, st, sender, what);
    terse_ef_save(e->ef, e->s1, e->len, &w);
    CHECK(!memcmp(e->s0, e->s1, e->len), "%s: a failed exchange changed the EF state", what);
    untouched(&e->b, what);
    CHECK(terse_ef_step(e->ef) == step, "%s: step %llu after a failed exchange", what,
          (unsigned long long)terse_ef_step(e->ef));
}

/* One good step on both states: the same update bits, identical across ranks. */
static void ef_case_step(terse_comm_h comm, ef_case_t *e, int t, const char *what)
{
    CHECK(terse_ef_prepare(e->ef, NULL, NULL) == TERSE_OK && terse_ef_prepare(e->twin, NULL, NULL) == TERSE_OK,
          "prepare");
    CHECK(terse_ef_exchange(e->ef, e->d, e->u) == TERSE_OK, "%s step %d: %s", what, t, terse_comm_last_error(comm));
    CHECK(terse_ef_exchange(e->twin, e->d, e->u2) == TERSE_OK, "%s twin step %d: %s", what, t,
          terse_comm_last_error(comm));
    for (int j = 0; j < NT; j++)
        CHECK(!memcmp(e->b.out[j], e->c.out[j], sizes[j] * 4), "%s step %d: tensor %d differs from the twin",
              what, t, j);
    CHECK(test_identical(e->b.out[0], sizes[0] * 4), "%s step %d: update differs across ranks", what, t);
}

static void ef_case_close(ef_case_t *e, const char *what)
{
    size_t w;
    terse_ef_save(e->ef, e->s1, e->len, &w);
    terse_ef_save(e->twin, e->s2, e->len, &w);
    CHECK(!memcmp(e->s1, e->s2, e->len), "%s: EF state differs from the twin's after the failure", what);
    free(e->s0);
    free(e->s1);
    free(e->s2);
    free_bufs(&e->b);
    free_bufs(&e->c);
    terse_ef_destroy(e->ef);
    terse_ef_destroy(e->twin);
}

/* Error feedback around a corrupt exchange: the state (terse_ef_save bytes) and the update
 * buffers stay as they were, and the next exchange gives the bits of a twin state that never
 * saw the failed call. */
static void test_ef_corrupt(terse_comm_h comm)
{
    if (test_size == 1)
        return;
    for (int a = 0; a < NALGO - 1; a++) {
        int sign = !strncmp(algos[a], "sign", 4), dense = !strcmp(algos[a], "dense");
        ef_case_t e;
        set_algo(algos[a]);
        ef_case_open(comm, &e, sign ? "sign,block=100" : "topk:0.1,block=64");
        for (int t = 0; t < 4; t++) {
            fill(&e.b, test_rank, 10 + t);
            if (t == 2) /* the failed call, on ef only */
                ef_case_fail(comm, &e, (a + 1) % test_size,
                             dense ? "truncate:len=4" : "corrupt:at=0,len=8", algos[a]);
            ef_case_step(comm, &e, t, algos[a]);
        }
        ef_case_close(&e, algos[a]);
    }
    set_algo("auto");
}

/* Hierarchical mode (run with TERSE_HIERARCHY=node and 2 emulated ranks per host, so ranks
 * 0,1 | 2,3 share hosts and 0 and 2 lead): a truncated host-internal message (a rank's Delta
 * going up, the result coming down) or a corrupt message between the leaders fails every
 * rank, names the sender, and leaves the EF state as it was; the next exchange works. */
static void test_hier_faults(terse_comm_h comm)
{
    static const struct {
        int sender;
        const char *fault;
    } faults[] = {
        {1, "truncate:len=4,step=1000"},        /* Delta up to the leader */
        {0, "truncate:len=4,step=1001,peer=1"}, /* the result down to a rank */
        {2, "corrupt:at=0,len=8,step=0"},       /* between the leaders */
    };
    if (test_size != 4 || comm->local_size != 2) {
        CHECK(test_size != 4, "hier_faults wants 2 ranks per host, got %d", comm->local_size);
        return;
    }
    ef_case_t e;
    ef_case_open(comm, &e, "topk:0.1,block=64");
    for (int t = 0; t < 4; t++) {
        fill(&e.b, test_rank, 20 + t);
        for (size_t f = 0; t == 1 && f < sizeof(faults) / sizeof(faults[0]); f++)
            ef_case_fail(comm, &e, faults[f].sender, faults[f].fault, faults[f].fault);
        ef_case_step(comm, &e, t, "hier");
    }
    ef_case_close(&e, "hier");
}

/* One tensor of one Top-K block, double-way: sparse_rs_ag splits the block over the owners
 * (coll/compressed/split.c) and must give sparse_allgather's out, worker error and, over the
 * slice this rank owns, server error; three steps in a row (each reads the e_s before). Sizes
 * below, at and above K, ratios whose k falls at slice boundaries (k = n: every element), and
 * data with ties across slices (a few distinct magnitudes) or mostly zeros (the bound is 0). */
static void single_fill(float *in, size_t n, int mode, int rank, int step)
{
    uint64_t s = (uint64_t)(rank * 7919 + step * 104729 + mode + 1);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = lcg(&s);
        if (mode == 0)
            in[i] = ((float)(r % 200001) - 100000.0f) / 997.0f;
        else if (mode == 1)
            in[i] = (float)((int)(r % 5) - 2); /* ties everywhere, -0.0 never */
        else
            in[i] = r % 50 ? 0.0f : (float)((int)(r % 7) - 3) * 0.5f;
    }
}

/* This rank's slice of an n-element block under the split (sign: whole 4096-element chunks,
 * compress/sign.h); 0 when the split does not apply and one owner serves the whole block. */
static int single_slice(int sign, size_t n, int K, int r, size_t *lo_p, size_t *hi_p)
{
    size_t nch = (n + 4095) / 4096, m = sign ? nch : n;
    size_t a = (size_t)(((unsigned __int128)m * (unsigned)r) / (unsigned)K),
           b = (size_t)(((unsigned __int128)m * (unsigned)(r + 1)) / (unsigned)K);
    *lo_p = sign ? (a * 4096 < n ? a * 4096 : n) : a;
    *hi_p = sign ? (b * 4096 < n ? b * 4096 : n) : b;
    return K > 1 && m >= (size_t)K;
}

/* One compressed call, waited for; *ran_p gets the algorithm it ran. */
static terse_status_t call_reporting_algo(terse_comm_h comm, const terse_callreduce_params_t *p,
                                          const char **ran_p)
{
    terse_request_h req = NULL;
    terse_status_t st = terse_icompressed_allreduce(comm, p, &req);
    if (st == TERSE_OK)
        st = terse_wait(req);
    if (req)
        *ran_p = terse_request_algorithm(req);
    terse_request_free(req);
    return st;
}

/* Runs three steps of one spec on one tensor with algorithm @algo; returns the last status. */
static terse_status_t single_run(terse_comm_h comm, const char *spec, const char *algo, float **B,
                                 size_t n, int mode, int nan_step, const char **ran_p)
{
    terse_status_t st = TERSE_OK;
    for (size_t i = 0; i < n; i++)
        B[3][i] = mode == 1 ? (float)(i % 3) * 0.5f : (float)(i % 7) * 0.01f;
    set_algo(algo);
    for (int step = 0; step < 3; step++) {
        single_fill(B[0], n, mode, test_rank, step);
        if (step == nan_step && test_rank == test_size - 1)
            B[0][n / 2] = NAN;
        terse_ctensor_t t = {.id = 3, .count = n, .in = B[0], .out = B[1],
                             .worker_error = B[2], .server_error = B[3]};
        terse_callreduce_params_t p = {
            .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_STEP,
            .tensors = &t, .ntensors = 1, .double_way = 1, .step = (uint64_t)step};
        terse_compressor_t c;
        p.compressor = &c;
        CHECK(terse_compressor_parse(spec, &c) == TERSE_OK, "%s", spec);
        st = call_reporting_algo(comm, &p, ran_p);
        if (step == nan_step)
            return st;
        CHECK(st == TERSE_OK, "single n %zu %s mode %d %s: %s (%s)", n, spec, mode, algo,
              terse_status_name(st), terse_comm_last_error(comm));
    }
    return st;
}

static void test_single(terse_comm_h comm)
{
    static const size_t ns[] = {1, 2, 3, 5, 16, 17, 100, 1009, 4096, 4097, 12289, 70001, 140001};
    static const char *sspecs[] = {"topk:0.01", "topk:0.2", "topk:0.25", "topk:0.5", "topk:1",
                                  "sign"};
    int K = test_size, r = test_rank;
    /* 16 ranks on a few cores: the large size, the sizes whose sign block has fewer chunks
     * than ranks and two of the ratios only at the lower counts */
    size_t nn = sizeof(ns) / sizeof(ns[0]) - (K > 8 ? 1 : 0);
    for (size_t a = 0; a < nn; a++) {
        size_t n = ns[a];
        if (K > 8 && n >= 4096 && n < 65536)
            continue;
        for (size_t b = 0; b < sizeof(sspecs) / sizeof(sspecs[0]); b++) {
            if (K > 8 && (b == 1 || b == 3))
                continue;
            int sign = !strncmp(sspecs[b], "sign", 4);
            const char *names[2] = {sign ? "sign_allgather" : "sparse_allgather",
                                    sign ? "sign_a2a_ag" : "sparse_rs_ag"};
            size_t lo, hi;
            int split = single_slice(sign, n, K, r, &lo, &hi);
            for (int mode = 0; mode < 3; mode++) {
                const char *spec = sspecs[b], *ran = "";
                float *buf[2][4];
                for (int v = 0; v < 2; v++)
                    for (int j = 0; j < 4; j++)
                        buf[v][j] = calloc(n, 4);
                for (int v = 0; v < 2; v++) {
                    single_run(comm, spec, names[v], buf[v], n, mode, -1, &ran);
                    CHECK(!strcmp(ran, names[v]), "ran %s", ran);
                }
                float **A = buf[0], **O = buf[1];
                CHECK(test_identical(O[1], n * 4), "single n %zu %s mode %d: out differs across ranks",
                      n, spec, mode);
                CHECK(!memcmp(A[1], O[1], n * 4), "single n %zu %s mode %d: out differs", n, spec,
                      mode);
                CHECK(!memcmp(A[2], O[2], n * 4), "single n %zu %s mode %d: worker error differs",
                      n, spec, mode);
                /* without the split one owner serves the whole block */
                CHECK(!split || !memcmp(A[3] + lo, O[3] + lo, (hi - lo) * 4),
                      "single n %zu %s mode %d: server error of slice [%zu, %zu) differs", n, spec,
                      mode, lo, hi);
                /* auto: the split from 3 ranks on sparse enough messages, the same bits */
                if (mode == 0 && split && K >= 3 && n >= 4097 && (sign || b == 0)) {
                    single_run(comm, spec, "auto", buf[1], n, mode, -1, &ran);
                    CHECK(!strcmp(ran, names[1]), "single n %zu %s: auto ran %s", n, spec, ran);
                    CHECK(!memcmp(A[1], O[1], n * 4), "single n %zu %s auto: out differs", n, spec);
                }
                /* NaN in one rank's input at step 1: every rank fails, out untouched */
                if (mode == 0 && split && n >= 4097) {
                    terse_status_t st[2];
                    for (int v = 0; v < 2; v++)
                        st[v] = single_run(comm, spec, names[v], buf[v], n, mode, 1, &ran);
                    CHECK(st[0] != TERSE_OK && st[0] == st[1], "single n %zu %s NaN: %s, %s", n,
                          spec, terse_status_name(st[0]), terse_status_name(st[1]));
                    CHECK(!memcmp(A[1], O[1], n * 4) && !memcmp(A[3] + lo, O[3] + lo, (hi - lo) * 4),
                          "single n %zu %s NaN: buffers differ", n, spec);
                }
                for (int v = 0; v < 2; v++)
                    for (int j = 0; j < 4; j++)
                        free(buf[v][j]);
            }
        }
    }
    set_algo("auto");
}

/* Top-K and sign lists of tensors whose whole blocks do not balance over the owners (a bucket of a few layers
 * of one block each, one big tensor beside small ones, slices that end exactly at tensor
 * boundaries, blocks larger than a slice beside blocks smaller than one): sparse_rs_ag splits
 * them over the owners by elements and must give sparse_allgather's outputs, worker errors and,
 * over this rank's slice of the fused elements, server errors, three steps in a row. Some
 * tensors have no worker or server error buffer. */
typedef struct list_case {
    const char *spec;
    int sparse;    /* sparse enough for auto to take an owner schedule */
    size_t n[6];
} list_case_t;

static terse_status_t list_run(terse_comm_h comm, const list_case_t *lc, size_t nt,
                               const char *algo, float *B[][4], int mode, int nan_step,
                               const char **ran_p)
{
    terse_status_t st = TERSE_OK;
    terse_ctensor_t t[6];
    terse_compressor_t c;
    CHECK(terse_compressor_parse(lc->spec, &c) == TERSE_OK, "%s", lc->spec);
    for (size_t j = 0; j < nt; j++)
        for (size_t i = 0; i < lc->n[j]; i++)
            B[j][3][i] = mode == 1 ? (float)(i % 3) * 0.5f : (float)((i + j) % 7) * 0.01f;
    set_algo(algo);
    for (int step = 0; step < 3; step++) {
        for (size_t j = 0; j < nt; j++) {
            single_fill(B[j][0], lc->n[j], mode, test_rank, step * 8 + (int)j);
            t[j] = (terse_ctensor_t){.id = (uint32_t)(10 + j), .count = lc->n[j], .in = B[j][0],
                                     .out = B[j][1], .worker_error = j == 2 ? NULL : B[j][2],
                                     .server_error = j == 1 ? NULL : B[j][3]};
        }
        if (step == nan_step && test_rank == test_size - 1)
            B[nt - 1][0][lc->n[nt - 1] / 2] = NAN;
        terse_callreduce_params_t p = {
            .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_STEP,
            .compressor = &c, .tensors = t, .ntensors = nt, .double_way = 1,
            .step = (uint64_t)step};
        st = call_reporting_algo(comm, &p, ran_p);
        if (step == nan_step)
            return st;
        CHECK(st == TERSE_OK, "list %s mode %d %s: %s (%s)", lc->spec, mode, algo,
              terse_status_name(st), terse_comm_last_error(comm));
    }
    return st;
}

/* Whether whole blocks share out over K owners, as the plan decides it (a block goes to the
 * owner whose even share of the elements holds its first element; enough blocks, every owner
 * serving at least a quarter of an even share): then the block owners serve the list and the
 * server errors are not split by elements. */
static int whole_blocks_balance(const list_case_t *lc, size_t nt, size_t N, size_t bs, int K)
{
    size_t nblk = 0, g = 0, *own = calloc((size_t)K + 1, sizeof(size_t));
    for (size_t j = 0; j < nt; g += lc->n[j++])
        for (size_t s = 0; s < lc->n[j]; s += bs ? bs : lc->n[j], nblk++) {
            int o = (int)(((unsigned __int128)(g + s) * (unsigned)K) / N);
            while (o + 1 < K &&
                   (size_t)(((unsigned __int128)N * (unsigned)(o + 1)) / (unsigned)K) <= g + s)
                o++;
            own[o] += bs && lc->n[j] - s > bs ? bs : lc->n[j] - s;
        }
    int ok = nblk >= (size_t)(2 * K);
    for (int r = 0; r < K && ok; r++)
        ok = own[r] >= N / (size_t)(4 * K) && own[0] > 0;
    free(own);
    return ok;
}

/* This rank's slice of the fused elements under the split: Top-K by elements, sign by the
 * blocks' 4096-element chunks in order; 0 when the split does not apply. */
static int list_slice(const list_case_t *lc, size_t nt, int sign, size_t bs, int K, int r,
                      size_t *lo_p, size_t *hi_p)
{
    size_t N = 0, C = 0;
    for (size_t j = 0; j < nt; j++) {
        N += lc->n[j];
        for (size_t s = 0; s < lc->n[j]; s += bs ? bs : lc->n[j]) {
            size_t nb = bs && lc->n[j] - s > bs ? bs : lc->n[j] - s;
            C += (nb + 4095) / 4096;
        }
    }
    size_t M = sign ? C : N, at[2];
    for (int e = 0; e < 2; e++) {
        size_t u = (size_t)(((unsigned __int128)M * (unsigned)(r + e)) / (unsigned)K);
        at[e] = N;
        if (!sign) {
            at[e] = u;
            continue;
        }
        for (size_t j = 0, g = 0, c = 0; j < nt && at[e] == N; g += lc->n[j++])
            for (size_t s = 0; s < lc->n[j]; s += bs ? bs : lc->n[j]) {
                size_t nb = bs && lc->n[j] - s > bs ? bs : lc->n[j] - s, nc = (nb + 4095) / 4096;
                if (u < c + nc) {
                    at[e] = g + s + (u - c) * 4096;
                    break;
                }
                c += nc;
            }
    }
    *lo_p = at[0];
    *hi_p = at[1];
    return K > 1 && M >= (size_t)K && !whole_blocks_balance(lc, nt, N, bs, K);
}

static void test_split_lists(terse_comm_h comm)
{
    int K = test_size, r = test_rank;
    /* 0-terminated sizes; in the third and tenth cases the tensors end where the 4-rank (and
     * 2-rank) slices do, and the last sign case has fewer chunks than 16 ranks */
    static const list_case_t cases[] = {
        {"topk:0.01", 1, {70001, 3, 5000, 12289, 1, 0}},
        {"topk:0.01", 1, {9000, 41000, 700, 0}},
        {"topk:0.1", 1, {2500, 2500, 2500, 2500, 0}},
        {"topk:0.05,block=3000", 1, {20000, 17, 4500, 0}},
        {"topk:0.5", 0, {5, 9000, 2, 777, 0}},
        {"topk:1", 0, {1000, 31, 0}},
        {"topk:0.2", 0, {40, 40, 40, 40, 40, 0}},
        {"sign", 1, {70001, 3, 5000, 12289, 1, 0}},
        {"sign", 1, {9000, 41000, 700, 0}},
        {"sign", 1, {8192, 8192, 8192, 8192, 0}},
        {"sign,block=5000", 1, {20000, 17, 4500, 0}},
        {"sign", 1, {40, 40, 40, 40, 40, 0}},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const list_case_t *lc = &cases[c];
        size_t nt = 0, N = 0;
        while (nt < 6 && lc->n[nt])
            N += lc->n[nt++];
        if (K > 8 && !lc->sparse)
            continue;
        int sign = !strncmp(lc->spec, "sign", 4);
        const char *bp = strstr(lc->spec, "block=");
        size_t bs = bp ? (size_t)atol(bp + 6) : 0, lo, hi;
        int split = list_slice(lc, nt, sign, bs, K, r, &lo, &hi);
        int owners = K >= 3 && (split || whole_blocks_balance(lc, nt, N, bs, K));
        for (int mode = 0; mode < 3; mode++) {
            float *buf[2][6][4];
            const char *names[2] = {sign ? "sign_allgather" : "sparse_allgather",
                                    sign ? "sign_a2a_ag" : "sparse_rs_ag"}, *ran = "";
            for (int v = 0; v < 2; v++)
                for (size_t j = 0; j < nt; j++)
                    for (int a = 0; a < 4; a++)
                        buf[v][j][a] = calloc(lc->n[j] ? lc->n[j] : 1, 4);
            for (int v = 0; v < 2; v++) {
                list_run(comm, lc, nt, names[v], buf[v], mode, -1, &ran);
                CHECK(!strcmp(ran, names[v]), "list %s: ran %s", lc->spec, ran);
            }
            size_t off = 0;
            for (size_t j = 0; j < nt; j++) {
                size_t n = lc->n[j];
                float **A = buf[0][j], **O = buf[1][j];
                CHECK(test_identical(O[1], n * 4), "list %zu tensor %zu mode %d: out differs "
                      "across ranks", c, j, mode);
                CHECK(!memcmp(A[1], O[1], n * 4), "list %zu tensor %zu mode %d: out differs", c,
                      j, mode);
                CHECK(!memcmp(A[2], O[2], n * 4), "list %zu tensor %zu mode %d: worker error "
                      "differs", c, j, mode);
                size_t a = off > lo ? off : lo, z = off + n < hi ? off + n : hi;
                CHECK(!split || a >= z || !memcmp(A[3] + (a - off), O[3] + (a - off), (z - a) * 4),
                      "list %zu tensor %zu mode %d: server error of [%zu, %zu) differs", c, j,
                      mode, a, z);
                off += n;
            }
            /* auto takes the owners from 3 ranks; a NaN at step 1 fails every rank alike and
             * leaves the outputs as the last good step wrote them */
            if (mode == 0 && owners && lc->sparse) { /* the denser ratios go dense */
                list_run(comm, lc, nt, "auto", buf[1], mode, -1, &ran);
                CHECK(!strcmp(ran, names[1]), "list %zu: auto ran %s", c, ran);
                for (size_t j = 0; j < nt; j++)
                    CHECK(!memcmp(buf[0][j][1], buf[1][j][1], lc->n[j] * 4),
                          "list %zu auto: out differs", c);
            }
            if (mode == 0 && K >= 2) {
                terse_status_t st[2];
                for (int v = 0; v < 2; v++)
                    st[v] = list_run(comm, lc, nt, names[v], buf[v], mode, 1, &ran);
                CHECK(st[0] != TERSE_OK && st[0] == st[1], "list %zu NaN: %s, %s", c,
                      terse_status_name(st[0]), terse_status_name(st[1]));
                for (size_t j = 0; j < nt; j++)
                    CHECK(!memcmp(buf[0][j][1], buf[1][j][1], lc->n[j] * 4),
                          "list %zu NaN: out differs", c);
            }
            for (int v = 0; v < 2; v++)
                for (size_t j = 0; j < nt; j++)
                    for (int a = 0; a < 4; a++)
                        free(buf[v][j][a]);
        }
    }
    set_algo("auto");
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    algo_comm = comm;
    const char *what = argc > 1 ? argv[1] : "algos";
    if (!strcmp(what, "algos"))
        test_algos(comm);
    else if (!strcmp(what, "single"))
        test_single(comm);
    else if (!strcmp(what, "lists"))
        test_split_lists(comm);
    else if (!strcmp(what, "fusion"))
        test_fusion(comm);
    else if (!strcmp(what, "invariant"))
        test_invariant(comm);
    else if (!strcmp(what, "faults"))
        test_faults(comm);
    else if (!strcmp(what, "pipeline"))
        test_pipeline(comm);
    else if (!strcmp(what, "corrupt"))
        test_corrupt(comm);
    else if (!strcmp(what, "ef_corrupt"))
        test_ef_corrupt(comm);
    else if (!strcmp(what, "hier_faults"))
        test_hier_faults(comm);
    else
        CHECK(0, "unknown case %s", what);
    return test_finish(comm);
}
