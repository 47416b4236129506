/* The compressed allreduce's algorithm and hierarchy chosen in params, against the
 * environment's (TERSE_COMPRESSED_ALGO / TERSE_HIERARCHY, set by CTest for this process):
 *   same      a call choosing them, a communicator choosing them and an error-feedback state
 *             choosing them give the environment's bits, after the environment changed; the
 *             environment's communicator keeps its snapshot
 *   mismatch  rank 0 chooses differently: per call every rank gets TERSE_ERR_MISMATCH (the
 *             algorithm; a differing hierarchy fails every rank, by timeout at worst) and no
 *             buffer is written; per communicator its creation fails with MISMATCH
 *   abi       params structs of the older layout (without the new fields, ending at a guard
 *             page) still work and give the same bits
 * Public API only. */
#include "../mpi/test_util.h"
#include "cbufs.h"

#include <terse/mpi.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *env_algo, *env_hier;

static void fill(bufs_t *b, int seed)
{
    for (int j = 0; j < NT; j++) {
        uint64_t s = (uint64_t)(test_rank * 1000 + j * 17 + seed);
        for (size_t i = 0; i < sizes[j]; i++) {
            b->in[j][i] = (float)((int)(lcg(&s) % 2001) - 1000) / 256.0f;
            b->out[j][i] = -1.0f;
            b->werr[j][i] = -2.0f;
            b->serr[j][i] = (float)(i % 5) * 0.125f; /* the same on every rank */
        }
    }
}

static int same_bufs(const bufs_t *a, const bufs_t *b)
{
    int d = 0;
    for (int j = 0; j < NT; j++)
        d |= memcmp(a->out[j], b->out[j], sizes[j] * 4) ||
             memcmp(a->werr[j], b->werr[j], sizes[j] * 4) ||
             memcmp(a->serr[j], b->serr[j], sizes[j] * 4);
    return !d;
}

typedef struct choice {
    uint64_t mask; /* TERSE_CALLREDUCE_FIELD_ALGO / _HIERARCHY */
    terse_compressed_algo_t algo;
    terse_hierarchy_t hier;
} choice_t;

/* Two double-way steps (the second reads the e_s the first left) on every tensor. */
static terse_status_t two_steps(terse_comm_h comm, const char *spec, choice_t ch, bufs_t *b,
                                const char **algo_p)
{
    terse_compressor_t c;
    CHECK(terse_compressor_parse(spec, &c) == TERSE_OK, "parse %s", spec);
    fill(b, 3);
    terse_status_t st = TERSE_OK;
    for (uint64_t step = 0; step < 2 && st == TERSE_OK; step++) {
        terse_ctensor_t t[NT];
        for (int j = 0; j < NT; j++)
            t[j] = (terse_ctensor_t){.id = ids[j], .count = sizes[j], .in = b->in[j],
                                     .out = b->out[j], .worker_error = b->werr[j],
                                     .server_error = b->serr[j]};
        terse_callreduce_params_t p = {
            .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_STEP | ch.mask,
            .tensors = t, .ntensors = NT, .compressor = &c, .double_way = 1, .step = step,
            .algo = ch.algo, .hierarchy = ch.hier};
        terse_request_h req = NULL;
        st = terse_icompressed_allreduce(comm, &p, &req);
        if (st == TERSE_OK)
            st = terse_wait(req);
        if (algo_p && req)
            *algo_p = terse_request_algorithm(req);
        terse_request_free(req);
    }
    return st;
}

static terse_comm_h comm_with(uint64_t mask, terse_compressed_algo_t algo, terse_hierarchy_t hier)
{
    terse_comm_params_t p = {.field_mask = mask, .compressed_algo = algo, .hierarchy = hier};
    terse_comm_h c = NULL;
    CHECK(terse_comm_create_mpi(MPI_COMM_WORLD, &p, &c) == TERSE_OK, "comm create");
    return c;
}

/* EF exchanges choosing the algorithm and hierarchy give the environment's e_k and e_s. */
static void ef_same(terse_comm_h env_comm, terse_comm_h other, const char *spec, choice_t ch)
{
    static const size_t cnt[NT] = {1000, 37, 1, 513};
    terse_compressor_t c;
    CHECK(terse_compressor_parse(spec, &c) == TERSE_OK, "parse %s", spec);
    terse_ef_params_t p = {.field_mask = TERSE_EF_FIELD_DOUBLE_WAY, .mode = TERSE_EF_MODE_EF,
                           .compressor = &c, .ntensors = NT, .ids = ids, .counts = cnt,
                           .double_way = 1};
    terse_ef_h a = NULL, b = NULL;
    CHECK(terse_ef_create(env_comm, &p, &a) == TERSE_OK, "ef create");
    p.field_mask |= (ch.mask & TERSE_CALLREDUCE_FIELD_ALGO ? TERSE_EF_FIELD_ALGO : 0) |
                    (ch.mask & TERSE_CALLREDUCE_FIELD_HIERARCHY ? TERSE_EF_FIELD_HIERARCHY : 0);
    p.algo = ch.algo;
    p.hierarchy = ch.hier;
    CHECK(terse_ef_create(other, &p, &b) == TERSE_OK, "ef create (choosing)");
    if (!a || !b)
        return;
    bufs_t x;
    alloc_bufs(&x);
    for (int t = 0; t < 3; t++) {
        fill(&x, 20 + t);
        float *u[NT];
        for (int j = 0; j < NT; j++)
            u[j] = x.out[j];
        CHECK(terse_ef_exchange(a, (const float *const *)x.in, u) == TERSE_OK, "ef exchange");
        CHECK(terse_ef_exchange(b, (const float *const *)x.in, x.werr) == TERSE_OK,
              "ef exchange (choosing): %s", terse_comm_last_error(other));
        for (int j = 0; j < NT; j++) {
            CHECK(!memcmp(x.out[j], x.werr[j], sizes[j] * 4), "%s step %d: ef update differs", spec, t);
            CHECK(!memcmp(terse_ef_worker_error(a, j), terse_ef_worker_error(b, j), sizes[j] * 4),
                  "%s step %d: e_k differs", spec, t);
            CHECK(!memcmp(terse_ef_server_error(a, j), terse_ef_server_error(b, j), sizes[j] * 4),
                  "%s step %d: e_s differs", spec, t);
        }
    }
    free_bufs(&x);
    terse_ef_destroy(a);
    terse_ef_destroy(b);
}

static void test_same(terse_comm_h env_comm)
{
    static const char *const specs[] = {"topk:0.05,block=64", "sign,block=100"};
    choice_t want = {TERSE_CALLREDUCE_FIELD_ALGO | TERSE_CALLREDUCE_FIELD_HIERARCHY, 0, 0};
    CHECK(terse_compressed_algo_parse(env_algo, &want.algo) == TERSE_OK, "algo %s", env_algo);
    CHECK(terse_hierarchy_parse(env_hier, &want.hier) == TERSE_OK, "hierarchy %s", env_hier);
    /* The environment now says something else: only snapshots and choices can be right. */
    setenv("TERSE_COMPRESSED_ALGO", want.algo == TERSE_COMPRESSED_ALGO_DENSE ? "sparse_allgather"
                                                                              : "dense", 1);
    setenv("TERSE_HIERARCHY", want.hier == TERSE_HIERARCHY_NODE ? "none" : "node", 1);
    terse_comm_h per_call = comm_with(0, 0, 0); /* the new environment's defaults */
    terse_comm_h per_comm = comm_with(TERSE_COMM_PARAM_FIELD_COMPRESSED_ALGO |
                                          TERSE_COMM_PARAM_FIELD_HIERARCHY, want.algo, want.hier);
    terse_comm_h dup = NULL;
    CHECK(terse_comm_dup(per_comm, &dup) == TERSE_OK, "dup");
    choice_t none = {0, 0, 0};
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        bufs_t ref, b;
        alloc_bufs(&ref);
        alloc_bufs(&b);
        const char *a_env = "", *a = "";
        CHECK(two_steps(env_comm, specs[s], none, &ref, &a_env) == TERSE_OK, "env: %s",
              terse_comm_last_error(env_comm));
        CHECK(test_identical(ref.out[0], sizes[0] * 4), "%s: ranks differ", specs[s]);
        if (want.algo != TERSE_COMPRESSED_ALGO_AUTO && want.hier == TERSE_HIERARCHY_NONE)
            CHECK(!strcmp(a_env, env_algo), "env comm ran %s, not %s", a_env, env_algo);
        CHECK(two_steps(per_call, specs[s], want, &b, &a) == TERSE_OK, "per call: %s",
              terse_comm_last_error(per_call));
        CHECK(same_bufs(&ref, &b) && !strcmp(a, a_env), "%s: per-call choice differs (%s vs %s)",
              specs[s], a, a_env);
        CHECK(two_steps(per_comm, specs[s], none, &b, &a) == TERSE_OK, "per comm: %s",
              terse_comm_last_error(per_comm));
        CHECK(same_bufs(&ref, &b) && !strcmp(a, a_env), "%s: per-comm choice differs", specs[s]);
        CHECK(two_steps(dup, specs[s], none, &b, &a) == TERSE_OK, "dup");
        CHECK(same_bufs(&ref, &b), "%s: the dup lost its parent's choice", specs[s]);
        CHECK(two_steps(env_comm, specs[s], none, &b, &a) == TERSE_OK, "env again");
        CHECK(same_bufs(&ref, &b), "%s: the env communicator followed the new environment",
              specs[s]);
        /* the new environment's default is another choice (a different algorithm or, with
         * hosts of several ranks, different numbers): the choices above were not no-ops */
        CHECK(two_steps(per_call, specs[s], none, &b, &a) == TERSE_OK, "new env");
        CHECK(strcmp(a, a_env) || !same_bufs(&ref, &b) || want.hier == TERSE_HIERARCHY_NODE,
              "%s: the new environment changed nothing (%s)", specs[s], a);
        ef_same(env_comm, per_call, specs[s], want);
        free_bufs(&ref);
        free_bufs(&b);
    }
    terse_comm_destroy(dup);
    terse_comm_destroy(per_comm);
    terse_comm_destroy(per_call);
}

/* Every rank fails with @want (MISMATCH, or any error for want 0) and nothing is written. */
static void expect_failure(terse_comm_h comm, choice_t ch, terse_status_t want, const char *what)
{
    bufs_t b;
    alloc_bufs(&b);
    terse_status_t st = two_steps(comm, "topk:0.05,block=64", ch, &b, NULL);
    CHECK(want ? st == want : st != TERSE_OK, "%s: %s, not %s (%s)", what, terse_status_name(st),
          want ? terse_status_name(want) : "an error", terse_comm_last_error(comm));
    int written = 0;
    for (int j = 0; j < NT; j++)
        for (size_t i = 0; i < sizes[j]; i++)
            written |= b.out[j][i] != -1.0f || b.werr[j][i] != -2.0f ||
                       b.serr[j][i] != (float)(i % 5) * 0.125f;
    CHECK(!written, "%s: buffers written by the failed call", what);
    free_bufs(&b);
}

static void test_mismatch(void)
{
    int r0 = test_rank == 0;
    choice_t dense = {TERSE_CALLREDUCE_FIELD_ALGO,
                      r0 ? TERSE_COMPRESSED_ALGO_DENSE : TERSE_COMPRESSED_ALGO_SPARSE_ALLGATHER, 0};
    choice_t rs = {TERSE_CALLREDUCE_FIELD_ALGO,
                   r0 ? TERSE_COMPRESSED_ALGO_SPARSE_RS_AG : TERSE_COMPRESSED_ALGO_SPARSE_ALLGATHER,
                   0};
    terse_comm_h c = comm_with(0, 0, 0);
    expect_failure(c, dense, TERSE_ERR_MISMATCH, "per-call dense against sparse_allgather");
    terse_comm_destroy(c);
    c = comm_with(0, 0, 0);
    expect_failure(c, rs, TERSE_ERR_MISMATCH, "per-call sparse_rs_ag against sparse_allgather");
    terse_comm_destroy(c);
    /* Communicators whose defaults differ are refused when they are made, on every rank. */
    terse_comm_params_t p = {.field_mask = TERSE_COMM_PARAM_FIELD_COMPRESSED_ALGO,
                             .compressed_algo = dense.algo};
    c = NULL;
    terse_status_t st = terse_comm_create_mpi(MPI_COMM_WORLD, &p, &c);
    CHECK(st == TERSE_ERR_MISMATCH && !c, "per-communicator algorithm: %s",
          terse_status_name(st));
    p = (terse_comm_params_t){.field_mask = TERSE_COMM_PARAM_FIELD_HIERARCHY,
                              .hierarchy = r0 ? TERSE_HIERARCHY_NODE : TERSE_HIERARCHY_NONE};
    st = terse_comm_create_mpi(MPI_COMM_WORLD, &p, &c);
    CHECK(st == TERSE_ERR_MISMATCH && !c, "per-communicator hierarchy: %s",
          terse_status_name(st));
    /* A per-call hierarchy that differs changes who talks to whom, so the ranks may never see
     * each other's headers: every rank fails (TIMEOUT at worst), nothing written. */
    p = (terse_comm_params_t){.field_mask = TERSE_COMM_PARAM_FIELD_TIMEOUT, .timeout = 3};
    CHECK(terse_comm_create_mpi(MPI_COMM_WORLD, &p, &c) == TERSE_OK, "comm");
    choice_t hier = {TERSE_CALLREDUCE_FIELD_HIERARCHY, 0,
                     r0 ? TERSE_HIERARCHY_NODE : TERSE_HIERARCHY_NONE};
    expect_failure(c, hier, 0, "per-call hierarchy");
    terse_comm_destroy(c);
}

/* The layouts before the algorithm and hierarchy fields were added. */
typedef struct old_callreduce {
    uint64_t field_mask;
    const terse_ctensor_t *tensors;
    size_t ntensors;
    const terse_compressor_t *compressor;
    int double_way;
    uint64_t step;
} old_callreduce_t;

typedef struct old_comm_params {
    uint64_t field_mask;
    terse_oob_t oob;
    int progress_thread;
    const char *host_id;
    double timeout;
} old_comm_params_t;

typedef struct old_ef_params {
    uint64_t field_mask;
    terse_ef_mode_t mode;
    const terse_compressor_t *compressor;
    size_t ntensors;
    const uint32_t *ids;
    const size_t *counts;
    uint64_t period;
    int double_way;
} old_ef_params_t;

/* @bytes at the very end of a readable page followed by an inaccessible one: reading past
 * the old struct faults. */
static void *guarded(size_t bytes, void **map_p, size_t *len_p)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        abort();
    mprotect(m + pg, pg, PROT_NONE);
    *map_p = m, *len_p = 2 * pg;
    return memset(m + pg - bytes, 0, bytes);
}

static void test_abi(terse_comm_h comm)
{
    _Static_assert(sizeof(old_callreduce_t) < sizeof(terse_callreduce_params_t),
                   "the new fields grew the struct");
    void *map;
    size_t len;
    old_comm_params_t *op = guarded(sizeof(*op), &map, &len);
    op->field_mask = TERSE_COMM_PARAM_FIELD_TIMEOUT;
    op->timeout = 60;
    terse_comm_h c = NULL;
    CHECK(terse_comm_create_mpi(MPI_COMM_WORLD, (const terse_comm_params_t *)op, &c) == TERSE_OK,
          "comm create with the old params");
    munmap(map, len);

    terse_compressor_t cmp;
    CHECK(terse_compressor_parse("topk:0.05,block=64", &cmp) == TERSE_OK, "parse");
    bufs_t ref, b;
    alloc_bufs(&ref);
    alloc_bufs(&b);
    CHECK(two_steps(comm, "topk:0.05,block=64", (choice_t){0, 0, 0}, &ref, NULL) == TERSE_OK,
          "reference");
    fill(&b, 3);
    for (uint64_t step = 0; step < 2 && c; step++) {
        terse_ctensor_t t[NT];
        for (int j = 0; j < NT; j++)
            t[j] = (terse_ctensor_t){.id = ids[j], .count = sizes[j], .in = b.in[j],
                                     .out = b.out[j], .worker_error = b.werr[j],
                                     .server_error = b.serr[j]};
        old_callreduce_t *p = guarded(sizeof(*p), &map, &len);
        *p = (old_callreduce_t){.field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY |
                                              TERSE_CALLREDUCE_FIELD_STEP,
                                .tensors = t, .ntensors = NT, .compressor = &cmp,
                                .double_way = 1, .step = step};
        CHECK(terse_compressed_allreduce(c, (const terse_callreduce_params_t *)p) == TERSE_OK,
              "old callreduce params: %s", terse_comm_last_error(c));
        munmap(map, len);
    }
    CHECK(same_bufs(&ref, &b), "old-layout params give other bits");

    static const size_t cnt[NT] = {1000, 37, 1, 513};
    old_ef_params_t *ep = guarded(sizeof(*ep), &map, &len);
    *ep = (old_ef_params_t){.field_mask = TERSE_EF_FIELD_DOUBLE_WAY, .mode = TERSE_EF_MODE_EF,
                            .compressor = &cmp, .ntensors = NT, .ids = ids, .counts = cnt,
                            .double_way = 1};
    terse_ef_h ef = NULL;
    CHECK(terse_ef_create(c, (const terse_ef_params_t *)ep, &ef) == TERSE_OK, "old ef params");
    munmap(map, len);
    if (ef) {
        fill(&b, 9);
        CHECK(terse_ef_exchange(ef, (const float *const *)b.in, b.out) == TERSE_OK,
              "exchange with the old ef params: %s", terse_comm_last_error(c));
        terse_ef_destroy(ef);
    }
    free_bufs(&ref);
    free_bufs(&b);
    terse_comm_destroy(c);
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const char *mode = argc > 1 ? argv[1] : "same";
    env_algo = getenv("TERSE_COMPRESSED_ALGO") ? getenv("TERSE_COMPRESSED_ALGO") : "auto";
    env_hier = getenv("TERSE_HIERARCHY") ? getenv("TERSE_HIERARCHY") : "none";
    if (!strcmp(mode, "same"))
        test_same(comm);
    else if (!strcmp(mode, "mismatch"))
        test_mismatch();
    else if (!strcmp(mode, "abi"))
        test_abi(comm);
    else
        CHECK(0, "unknown mode %s", mode);
    return test_finish(comm);
}
