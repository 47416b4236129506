/* Held commits (coll/coll.h: terse__icompressed_allreduce_held, terse__compressed_commit),
 * which the model-level step uses to write all of its buckets or none. Under mpirun, for every
 * algorithm, codec and way: a held request completes with the caller's buffers untouched,
 * its commit writes exactly the bits of the plain call, a second commit is refused, and a held
 * request freed without its commit leaves every buffer as it was; a commit that subtracts the
 * result from outputs holding a point gives x - result bit for bit (signed zeros kept). Also a failing held call
 * (NaN on one rank) and a commit of a request that was not held. */
#include "../mpi/test_util.h"
#include "cbufs.h"

#include "coll/coll.h"

#include <math.h>

static const char *const algos[] = {"sparse_allgather", "sparse_rs_ag", "sign_allgather",
                                    "sign_a2a_ag", "dense", "auto"};
#define NALGO 6
static const char *const specs[] = {"topk:0.05,block=64", "topk:0.3", "sign,block=100", "sign"};
#define NSPEC 4

static int zero_inputs; /* every input 0: results +0 (sign scale 0), which subtract must keep */

static void fill(bufs_t *b, int rank)
{
    for (int j = 0; j < NT; j++) {
        uint64_t s = (uint64_t)(rank * 1000 + j * 17 + 3);
        for (size_t i = 0; i < sizes[j]; i++) {
            b->in[j][i] = zero_inputs ? 0.0f : ((float)(lcg(&s) % 20001) - 10000.0f) / 1000.0f;
            b->out[j][i] = -12345.0f;
            b->werr[j][i] = -777.0f;
            b->serr[j][i] = zero_inputs ? 0.0f : (float)(i % 7) * 0.01f; /* same on all ranks */
        }
    }
}

static int same_bufs(const bufs_t *a, const bufs_t *b, int nt)
{
    for (int j = 0; j < nt; j++)
        if (memcmp(a->in[j], b->in[j], sizes[j] * 4) || memcmp(a->out[j], b->out[j], sizes[j] * 4) ||
            memcmp(a->werr[j], b->werr[j], sizes[j] * 4) ||
            memcmp(a->serr[j], b->serr[j], sizes[j] * 4))
            return 0;
    return 1;
}

static void copy_bufs(bufs_t *dst, const bufs_t *src)
{
    for (int j = 0; j < NT; j++) {
        memcpy(dst->in[j], src->in[j], sizes[j] * 4);
        memcpy(dst->out[j], src->out[j], sizes[j] * 4);
        memcpy(dst->werr[j], src->werr[j], sizes[j] * 4);
        memcpy(dst->serr[j], src->serr[j], sizes[j] * 4);
    }
}

typedef struct call {
    terse_ctensor_t t[NT];
    terse_compressor_t c;
    terse_callreduce_params_t p;
} call_t;

static void make_call(call_t *k, const char *spec, const char *algo, int dw, bufs_t *b, int nt)
{
    memset(k, 0, sizeof(*k));
    if (terse_compressor_parse(spec, &k->c) != TERSE_OK)
        abort();
    k->p = (terse_callreduce_params_t){
        .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_ALGO,
        .tensors = k->t, .ntensors = (size_t)nt, .compressor = &k->c, .double_way = dw};
    if (terse_compressed_algo_parse(algo, &k->p.algo) != TERSE_OK)
        abort();
    for (int j = 0; j < nt; j++)
        k->t[j] = (terse_ctensor_t){.id = ids[j], .count = sizes[j], .in = b->in[j],
                                    .out = b->out[j], .worker_error = b->werr[j],
                                    .server_error = dw ? b->serr[j] : NULL};
}

/* A held call committed with tensors 0, 2, 3 subtracted from outputs that hold a point x
 * (signed zeros among it): x - result for those, the plain result for tensor 1. */
static void subtract_case(terse_comm_h comm, const char *spec, const char *algo, int dw, int nt,
                          const bufs_t *a, bufs_t *d, const bufs_t *orig, const char *what)
{
    static const unsigned char sub[NT] = {1, 0, 1, 1};
    copy_bufs(d, orig);
    for (int j = 0; j < NT; j++)
        for (size_t i = 0; i < sizes[j]; i++)
            d->out[j][i] = i % 5 == 0 ? -0.0f : i % 5 == 1 ? 0.0f : (float)i * 0.25f - 3.0f;
    float *x[NT];
    for (int j = 0; j < NT; j++) {
        x[j] = malloc(sizes[j] * 4);
        memcpy(x[j], d->out[j], sizes[j] * 4);
    }
    call_t k;
    make_call(&k, spec, algo, dw, d, nt);
    terse_request_h req = NULL;
    CHECK(terse__icompressed_allreduce_held(comm, &k.p, &req) == TERSE_OK, "%s: held post", what);
    CHECK(terse_wait(req) == TERSE_OK, "%s: held wait", what);
    CHECK(terse__compressed_commit(req, sub) == TERSE_OK, "%s: subtract commit: %s", what,
          terse_comm_last_error(comm));
    terse_request_free(req);
    for (int j = 0; j < nt; j++) {
        for (size_t i = 0; i < sizes[j]; i++) {
            float want = sub[j] ? x[j][i] - a->out[j][i] : a->out[j][i];
            CHECK(!memcmp(&want, &d->out[j][i], 4), "%s: tensor %d element %zu: %a, want %a",
                  what, j, i, (double)d->out[j][i], (double)want);
        }
        CHECK(!memcmp(d->werr[j], a->werr[j], sizes[j] * 4) &&
              !memcmp(d->serr[j], a->serr[j], sizes[j] * 4), "%s: errors differ", what);
    }
    for (int j = 0; j < NT; j++)
        free(x[j]);
}

/* One case: plain call on @a, held call on @b (same inputs), dropped held call on @c, held
 * call subtracted on @c. */
static void one_case(terse_comm_h comm, const char *spec, const char *algo, int dw, int nt,
                     bufs_t *a, bufs_t *b, bufs_t *c, bufs_t *orig)
{
    int rank = terse_comm_rank(comm);
    char what[128];
    snprintf(what, sizeof(what), "%s %s dw%d nt%d", algo, spec, dw, nt);
    fill(orig, rank);
    copy_bufs(a, orig);
    copy_bufs(b, orig);
    copy_bufs(c, orig);
    call_t k;
    make_call(&k, spec, algo, dw, a, nt);
    CHECK(terse_compressed_allreduce(comm, &k.p) == TERSE_OK, "%s: plain call: %s", what,
          terse_comm_last_error(comm));

    terse_request_h req = NULL;
    make_call(&k, spec, algo, dw, b, nt);
    CHECK(terse__icompressed_allreduce_held(comm, &k.p, &req) == TERSE_OK, "%s: held post", what);
    CHECK(terse_wait(req) == TERSE_OK, "%s: held wait: %s", what, terse_comm_last_error(comm));
    CHECK(same_bufs(b, orig, NT), "%s: a held request wrote the caller's buffers", what);
    CHECK(terse__compressed_commit(req, NULL) == TERSE_OK, "%s: commit: %s", what,
          terse_comm_last_error(comm));
    CHECK(same_bufs(b, a, NT), "%s: the commit's bits differ from the plain call's", what);
    CHECK(terse__compressed_commit(req, NULL) == TERSE_ERR_INVALID_ARG, "%s: second commit ran",
          what);
    CHECK(same_bufs(b, a, NT), "%s: a refused commit wrote", what);
    terse_request_free(req);

    make_call(&k, spec, algo, dw, c, nt);
    CHECK(terse__icompressed_allreduce_held(comm, &k.p, &req) == TERSE_OK, "%s: held post", what);
    CHECK(terse_wait(req) == TERSE_OK, "%s: held wait", what);
    terse_request_free(req); /* dropped */
    CHECK(same_bufs(c, orig, NT), "%s: a dropped held request wrote", what);
    subtract_case(comm, spec, algo, dw, nt, a, c, orig, what);
}

static void test_same(terse_comm_h comm)
{
    bufs_t a, b, c, orig;
    alloc_bufs(&a);
    alloc_bufs(&b);
    alloc_bufs(&c);
    alloc_bufs(&orig);
    for (zero_inputs = 0; zero_inputs < 2; zero_inputs++)
        for (int g = 0; g < NALGO; g++)
            for (int s = 0; s < NSPEC; s++)
                for (int dw = 0; dw < 2; dw++) {
                    one_case(comm, specs[s], algos[g], dw, NT, &a, &b, &c, &orig);
                    /* one tensor of one block: the owner-split schedules where they apply */
                    one_case(comm, specs[s], algos[g], dw, 1, &a, &b, &c, &orig);
                }
    zero_inputs = 0;
    free_bufs(&a);
    free_bufs(&b);
    free_bufs(&c);
    free_bufs(&orig);
}

/* A NaN on the last rank: the held request fails on every rank, and nothing can commit it. */
static void test_fail(terse_comm_h comm)
{
    int rank = terse_comm_rank(comm), K = terse_comm_size(comm);
    bufs_t b, orig;
    alloc_bufs(&b);
    alloc_bufs(&orig);
    for (int g = 0; g < NALGO; g++) {
        fill(&b, rank);
        if (rank == K - 1)
            b.in[0][5] = NAN;
        fill(&orig, rank);
        copy_bufs(&orig, &b);
        call_t k;
        make_call(&k, "topk:0.05,block=64", algos[g], 1, &b, NT);
        terse_request_h req = NULL;
        CHECK(terse__icompressed_allreduce_held(comm, &k.p, &req) == TERSE_OK, "held post");
        terse_status_t st = terse_wait(req);
        CHECK(st == TERSE_ERR_NONFINITE, "%s: a NaN gave %s", algos[g], terse_status_string(st));
        CHECK(terse__compressed_commit(req, NULL) == st, "%s: commit of a failed request", algos[g]);
        terse_request_free(req);
        CHECK(same_bufs(&b, &orig, NT), "%s: a failed held request wrote", algos[g]);
    }
    /* a plain request has nothing held */
    fill(&b, rank);
    call_t k;
    make_call(&k, "sign", "auto", 1, &b, NT);
    terse_request_h req = NULL;
    CHECK(terse_icompressed_allreduce(comm, &k.p, &req) == TERSE_OK, "plain post");
    CHECK(terse_wait(req) == TERSE_OK, "plain wait");
    CHECK(terse__compressed_commit(req, NULL) == TERSE_ERR_INVALID_ARG, "a plain request committed");
    terse_request_free(req);
    CHECK(terse__compressed_commit(NULL, NULL) == TERSE_ERR_INVALID_ARG, "NULL committed");
    free_bufs(&b);
    free_bufs(&orig);
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const char *what = argc > 1 ? argv[1] : "same";
    if (!strcmp(what, "same"))
        test_same(comm);
    else if (!strcmp(what, "fail"))
        test_fail(comm);
    else
        CHECK(0, "unknown case %s", what);
    return test_finish(comm);
}
