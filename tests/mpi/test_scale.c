/* Rank counts past the small ones the other tests use (16 and 33, oversubscribed on purpose):
 * rounds of 2(K-1) transfers, owners without any block, chunked allgathers at K > 8. Small
 * tensors keep it short. Cases: compressed (every algorithm gives sparse_allgather's bits,
 * single- and double-way, two steps), alltoall (and alltoallv), barrier. Links the internal
 * library so one process can switch TERSE_COMPRESSED_ALGO between calls. */
#include "test_util.h"

#include "../compressed/cbufs.h"

#include "coll/comm.h" /* settings: the default algorithm this test switches */
#include "core/config.h"

static const char *const algos[] = {"sparse_allgather", "sparse_rs_ag", "sign_allgather",
                                    "sign_a2a_ag", "dense", "auto"};
enum { NALGO = 6 };

static void set_env(const char *name, const char *value)
{
    setenv(name, value, 1);
    terse__config_reload();
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

static void fill(bufs_t *b, int seed)
{
    for (int j = 0; j < NT; j++) {
        uint64_t s = (uint64_t)(test_rank * 1000 + j * 17 + seed);
        for (size_t i = 0; i < sizes[j]; i++) {
            b->in[j][i] = ((float)(lcg(&s) % 20001) - 10000.0f) / 1000.0f;
            b->out[j][i] = -1.0f;
            b->werr[j][i] = -2.0f;
            b->serr[j][i] = (float)(i % 5) * 0.01f;
        }
    }
}

/* Outputs and worker errors; server errors are kept where each algorithm's servers run (every
 * rank, or the block's owner), so they are compared through the second step's output. */
static int same(const bufs_t *a, const bufs_t *b)
{
    for (int j = 0; j < NT; j++)
        if (memcmp(a->out[j], b->out[j], sizes[j] * 4) ||
            memcmp(a->werr[j], b->werr[j], sizes[j] * 4))
            return 0;
    return 1;
}

static void one_config(terse_comm_h comm, const char *spec, int dw)
{
    bufs_t ref, cur;
    alloc_bufs(&ref);
    alloc_bufs(&cur);
    for (int a = 0; a < NALGO; a++) {
        bufs_t *b = a == 0 ? &ref : &cur;
        comm_use_algo(comm, algos[a]);
        fill(b, 0);
        const char *name = "";
        for (uint64_t step = 0; step < 2; step++) {
            terse_status_t st = run(comm, spec, dw, b, 0, NT, step, &name);
            CHECK(st == TERSE_OK, "%s dw %d %s: %s (%s)", spec, dw, algos[a],
                  terse_status_name(st), terse_comm_last_error(comm));
        }
        if (a < NALGO - 1)
            CHECK(!strcmp(name, algos[a]), "asked for %s, ran %s", algos[a], name);
        for (int j = 0; j < NT; j++)
            CHECK(test_identical(b->out[j], sizes[j] * 4), "%s dw %d %s: tensor %d differs",
                  spec, dw, algos[a], j);
        if (a > 0)
            CHECK(same(&ref, &cur), "%s dw %d: %s differs from sparse_allgather", spec, dw,
                  algos[a]);
        if (test_rank == 0 && a == NALGO - 1)
            printf("%s dw %d at %d ranks: auto chose %s\n", spec, dw, test_size, name);
    }
    free_bufs(&ref);
    free_bufs(&cur);
}

static void test_compressed(terse_comm_h comm)
{
    static const char *const specs[] = {"topk:0.05,block=16", "sign,block=16"};
    /* 64-byte pieces: the allgather cuts its message into many chunks (steps) */
    static const char *const pipeline[] = {"4194304", "64"};
    /* past 16 ranks only the chunked run, which covers the unchunked one's rounds too: the
     * test shares 2 cores with the rest of CI */
    for (int pl = test_size > 16 ? 1 : 0; pl < 2; pl++) {
        set_env("TERSE_PIPELINE_BYTES", pipeline[pl]);
        for (int s = 0; s < 2; s++)
            for (int dw = 0; dw < 2; dw++)
                one_config(comm, specs[s], dw);
    }
    comm_use_algo(comm, "auto");
}

static void test_alltoall(terse_comm_h comm)
{
    const size_t count = 3;
    size_t K = (size_t)test_size, total = count * K;
    int32_t *in = malloc(total * 4), *out = malloc(total * 4);
    for (size_t i = 0; i < total; i++)
        in[i] = (int32_t)(test_rank * 100000 + (int)i);
    terse_status_t st = terse_alltoall(comm, in, out, count, TERSE_DTYPE_INT32);
    CHECK(st == TERSE_OK, "alltoall: %s", terse_comm_last_error(comm));
    for (size_t q = 0; q < K && st == TERSE_OK; q++)
        for (size_t i = 0; i < count; i++)
            CHECK(out[q * count + i] == (int32_t)(q * 100000 + (size_t)test_rank * count + i),
                  "alltoall: element %zu from rank %zu", i, q);
    /* alltoallv: rank r sends (r + j) % 3 elements to rank j (some empty) */
    size_t *sc = calloc(K, sizeof(size_t)), *rc = calloc(K, sizeof(size_t));
    size_t st_tot = 0, rt_tot = 0;
    for (size_t j = 0; j < K; j++) {
        sc[j] = ((size_t)test_rank + j) % 3;
        rc[j] = (j + (size_t)test_rank) % 3;
        st_tot += sc[j];
        rt_tot += rc[j];
    }
    int32_t *vin = malloc((st_tot + 1) * 4), *vout = malloc((rt_tot + 1) * 4);
    for (size_t i = 0; i < st_tot; i++)
        vin[i] = (int32_t)(test_rank * 1000 + (int)i);
    st = terse_alltoallv(comm, vin, sc, NULL, vout, rc, NULL, TERSE_DTYPE_INT32);
    CHECK(st == TERSE_OK, "alltoallv: %s", terse_comm_last_error(comm));
    size_t off = 0;
    for (size_t q = 0; q < K && st == TERSE_OK; q++) {
        size_t qoff = 0; /* where rank q's part for this rank starts in q's input */
        for (size_t j = 0; j < (size_t)test_rank; j++)
            qoff += (q + j) % 3;
        for (size_t i = 0; i < rc[q]; i++, off++)
            CHECK(vout[off] == (int32_t)(q * 1000 + qoff + i), "alltoallv from rank %zu", q);
    }
    free(in);
    free(out);
    free(vin);
    free(vout);
    free(sc);
    free(rc);
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const char *what = argc > 1 ? argv[1] : "compressed";
    if (!strcmp(what, "compressed"))
        test_compressed(comm);
    else if (!strcmp(what, "alltoall"))
        test_alltoall(comm);
    else if (!strcmp(what, "barrier"))
        for (int i = 0; i < 3; i++)
            CHECK(terse_barrier(comm) == TERSE_OK, "barrier %d: %s", i, terse_comm_last_error(comm));
    else
        CHECK(0, "unknown case %s", what);
    return test_finish(comm);
}
