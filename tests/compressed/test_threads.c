/* Compressed allreduces on one thread and on a pool of 3 (TERSE_THREADS): every codec, every
 * algorithm, single- and double-way with error feedback, two steps; the outputs, worker errors
 * and server errors must be the same bytes, and a NaN must give the same status and message.
 * The pool is restarted inside the process (its reference is the communicator's), so both runs
 * see the same inputs; the test fails if the 3-thread run never split any work. */
#include "../mpi/test_util.h"

#include "coll/comm.h"
#include "core/config.h"
#include "core/pool.h"
#include "compress/compress.h"

#include <math.h>

#define NTT 3
/* big enough for several parts per call (TERSE__PAR_MIN_ELEMS elements each), not multiples
 * of the block size */
static const size_t tsz[NTT] = {300007, 1, 140001};
static const uint32_t tid[NTT] = {4, 8, 15};

static const char *const algos[] = {"sparse_allgather", "sparse_rs_ag", "sign_allgather",
                                    "sign_a2a_ag", "dense", "auto"};
#define NALGO 6
static const char *const specs[] = {"topk:0.01,block=10000", "sign,block=10000",
                                    "randk:0.05,block=10000,seed=9",
                                    "induced:0.01,0.02,block=10000", "fp16,block=10000",
                                    "bf16,block=10000", "topk:0.02"};
#define NSPEC 7

typedef struct res {
    float *in[NTT], *out[NTT], *werr[NTT], *serr[NTT];
    terse_status_t st;
    char msg[512];
} res_t;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void res_alloc(res_t *r)
{
    for (int j = 0; j < NTT; j++) {
        r->in[j] = calloc(tsz[j], 4);
        r->out[j] = calloc(tsz[j], 4);
        r->werr[j] = calloc(tsz[j], 4);
        r->serr[j] = calloc(tsz[j], 4);
    }
}

static void res_free(res_t *r)
{
    for (int j = 0; j < NTT; j++)
        free(r->in[j]), free(r->out[j]), free(r->werr[j]), free(r->serr[j]);
}

/* Two steps of spec on fresh buffers; @nan puts a NaN into rank 1's (or 0's) second step. */
static void two_steps(terse_comm_h comm, const char *spec, int dw, int nan, res_t *r)
{
    for (int j = 0; j < NTT; j++) {
        uint64_t s = (uint64_t)(test_rank * 1000 + j * 17);
        for (size_t i = 0; i < tsz[j]; i++) {
            r->in[j][i] = ((float)(lcg(&s) % 20001) - 10000.0f) / 1000.0f;
            r->out[j][i] = -1.0f;
            r->werr[j][i] = 0.0f;
            r->serr[j][i] = (float)(i % 5) * 0.01f;
        }
    }
    r->st = TERSE_OK;
    r->msg[0] = 0;
    for (uint64_t step = 0; step < 2 && r->st == TERSE_OK; step++) {
        terse_ctensor_t t[NTT];
        terse_callreduce_params_t p = {.field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY |
                                                     TERSE_CALLREDUCE_FIELD_STEP,
                                       .tensors = t, .ntensors = NTT, .double_way = dw,
                                       .step = step};
        terse_compressor_t c;
        p.compressor = &c;
        CHECK(terse_compressor_parse(spec, &c) == TERSE_OK, "spec %s", spec);
        for (int j = 0; j < NTT; j++) {
            if (step == 1) /* EF: Delta = e + new input (the model-difference form) */
                for (size_t i = 0; i < tsz[j]; i++)
                    r->in[j][i] = r->werr[j][i] + r->in[j][i] * 0.5f;
            t[j] = (terse_ctensor_t){.id = tid[j], .count = tsz[j], .in = r->in[j],
                                     .out = r->out[j], .worker_error = r->werr[j],
                                     .server_error = dw ? r->serr[j] : NULL};
        }
        if (nan && step == 1 && test_rank == (test_size > 1 ? 1 : 0))
            r->in[0][250001] = NAN; /* a later part's block: the error crosses parts */
        terse_request_h req = NULL;
        r->st = terse_icompressed_allreduce(comm, &p, &req);
        if (r->st == TERSE_OK) {
            r->st = terse_wait(req);
            terse_request_free(req);
        }
        if (r->st != TERSE_OK)
            snprintf(r->msg, sizeof(r->msg), "%s", terse_comm_last_error(comm));
    }
}

/* The message without its sequence numbers (the second run's calls come later). */
static void unseq(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *c = in; *c && o + 1 < len; c++) {
        out[o++] = *c;
        if (!strncmp(c, "seq ", 4)) {
            memcpy(out + o, "eq #", 4), o += 4, c += 4;
            while (*c >= '0' && *c <= '9')
                c++;
            c--;
        }
    }
    out[o] = 0;
}

static void same(const res_t *a, const res_t *b, const char *what)
{
    CHECK(a->st == b->st, "%s: status %s vs %s", what, terse_status_name(a->st),
          terse_status_name(b->st));
    char ma[512], mb[512];
    unseq(a->msg, ma, sizeof(ma));
    unseq(b->msg, mb, sizeof(mb));
    CHECK(!strcmp(ma, mb), "%s: message '%s' vs '%s'", what, a->msg, b->msg);
    for (int j = 0; j < NTT; j++) {
        CHECK(!memcmp(a->out[j], b->out[j], tsz[j] * 4), "%s: output %d differs", what, j);
        CHECK(!memcmp(a->werr[j], b->werr[j], tsz[j] * 4), "%s: worker error %d differs", what, j);
        CHECK(!memcmp(a->serr[j], b->serr[j], tsz[j] * 4), "%s: server error %d differs", what, j);
    }
}

static void set_threads(int n)
{
    terse__pool_stop(); /* the communicator's reference: this process's only one */
    terse__pool_start(n, NULL, NULL, terse__compress_scratch_release);
    CHECK(terse__pool_size() == n, "pool of %d threads has %d", n, terse__pool_size());
}

static terse_comm_h algo_comm;

/* A communicator snapshots TERSE_COMPRESSED_ALGO when it is made: switch this one's default. */
static void set_algo(const char *name)
{
    if (terse_compressed_algo_parse(name, &algo_comm->settings.compressed_algo) != TERSE_OK)
        abort();
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    algo_comm = comm;
    int want = terse__config()->threads;
    CHECK(want <= 0 || terse__pool_size() == want, "TERSE_THREADS=%d gave a pool of %d", want,
          terse__pool_size());
    unsigned long split_runs = 0;
    terse__compress_par_min(4096); /* owners' segments are small at 5 ranks: split them too */
    for (int s = 0; s < NSPEC; s++)
        for (int a = 0; a < NALGO; a++)
            for (int dw = 0; dw < 2; dw++)
                for (int nan = 0; nan < 2; nan++) {
                    if (nan && a != 0 && a != NALGO - 1)
                        continue; /* the error path: enough on two schedules */
                    char what[160];
                    snprintf(what, sizeof(what), "%s %s dw %d%s", specs[s], algos[a], dw,
                             nan ? " nan" : "");
                    set_algo(algos[a]);
                    res_t one, three;
                    res_alloc(&one);
                    res_alloc(&three);
                    set_threads(1);
                    two_steps(comm, specs[s], dw, nan, &one);
                    set_threads(3);
                    unsigned long before = terse__pool_parallel_runs();
                    two_steps(comm, specs[s], dw, nan, &three);
                    split_runs += terse__pool_parallel_runs() - before;
                    CHECK(nan ? one.st == TERSE_ERR_NONFINITE : one.st == TERSE_OK, "%s: %s (%s)",
                          what, terse_status_name(one.st), one.msg);
                    same(&one, &three, what);
                    res_free(&one);
                    res_free(&three);
                }
    CHECK(split_runs > 0, "no call was split over the pool's threads");
    if (test_rank == 0)
        printf("%lu runs split over 3 threads\n", split_runs);
    set_algo("auto");
    return test_finish(comm);
}
