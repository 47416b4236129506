/* terse_isend / terse_irecv on a communicator of their own (terse_comm_dup): a ring exchange,
 * small (eager) and large (rendezvous) messages, per-tag ordering with receives posted in the
 * other order than the sends, many messages in flight on one (peer, tag), a count mismatch
 * failing the receiver, bad arguments, and collectives refused on the point-to-point
 * communicator while the parent keeps working. Usage: test_p2p */
#include "test_util.h"

static void fill(float *v, size_t n, int from, int tag, int k)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(from * 1000000 + tag * 10000 + k * 100) + (float)(i % 97);
}

static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void ring(terse_comm_h pc, size_t n)
{
    int r = test_rank, p = test_size, next = (r + 1) % p, prev = (r + p - 1) % p;
    float *s = malloc(n * sizeof(float)), *d = calloc(n, sizeof(float)), *want = malloc(n * sizeof(float));
    fill(s, n, r, 3, 0);
    fill(want, n, prev, 3, 0);
    terse_request_h rr, sr;
    CHECK(terse_irecv(pc, d, n, TERSE_DTYPE_FLOAT32, prev, 3, &rr) == TERSE_OK, "irecv");
    CHECK(terse_isend(pc, s, n, TERSE_DTYPE_FLOAT32, next, 3, &sr) == TERSE_OK, "isend");
    CHECK(terse_wait(sr) == TERSE_OK, "send: %s", terse_comm_last_error(pc));
    CHECK(terse_wait(rr) == TERSE_OK, "recv: %s", terse_comm_last_error(pc));
    CHECK(same(d, want, n), "ring of %zu floats: wrong data", n);
    terse_request_free(rr);
    terse_request_free(sr);
    free(s), free(d), free(want);
}

/* rank 0 sends K messages on tag 1 and K on tag 2 to rank 1, which receives tag 2 first */
static void ordering(terse_comm_h pc)
{
    enum { K = 20, N = 3000 }; /* 12 KB: above the eager header size, so split messages */
    static float out[2][K][N], in[2][K][N];
    terse_request_h req[2][K];
    if (test_rank > 1)
        return;
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < K; k++) {
            if (test_rank == 0) {
                fill(out[t][k], N, 0, t + 1, k);
                CHECK(terse_isend(pc, out[t][k], N, TERSE_DTYPE_FLOAT32, 1, t + 1, &req[t][k]) == TERSE_OK, "isend");
            } else {
                int tt = 1 - t; /* tag 2 first */
                CHECK(terse_irecv(pc, in[tt][k], N, TERSE_DTYPE_FLOAT32, 0, tt + 1, &req[tt][k]) == TERSE_OK, "irecv");
            }
        }
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < K; k++) {
            CHECK(terse_wait(req[t][k]) == TERSE_OK, "tag %d message %d: %s", t + 1, k, terse_comm_last_error(pc));
            terse_request_free(req[t][k]);
            if (test_rank == 1) {
                float want[N];
                fill(want, N, 0, t + 1, k);
                CHECK(same(in[t][k], want, N), "tag %d message %d: wrong data or order", t + 1, k);
            }
        }
}

/* rank 0 sends 10 floats, rank 1 expects 11: the receive fails with the reason */
static void mismatch(terse_comm_h pc)
{
    float v[11] = {0};
    if (test_rank == 0) {
        CHECK(terse_send(pc, v, 10, TERSE_DTYPE_FLOAT32, 1, 9) == TERSE_OK, "eager send completes");
    } else if (test_rank == 1) {
        terse_status_t st = terse_recv(pc, v, 11, TERSE_DTYPE_FLOAT32, 0, 9);
        CHECK(st == TERSE_ERR_MISMATCH, "got %s", terse_status_string(st));
        CHECK(strstr(terse_comm_last_error(pc), "count 10") != NULL, "reason: %s", terse_comm_last_error(pc));
    }
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv), pc = NULL;
    CHECK(terse_comm_dup(comm, &pc) == TERSE_OK, "dup");
    float x = 1;
    terse_request_h req = NULL;
    CHECK(terse_isend(pc, &x, 1, TERSE_DTYPE_FLOAT32, test_rank, 0, &req) == TERSE_ERR_INVALID_ARG, "self");
    CHECK(terse_isend(pc, &x, 1, TERSE_DTYPE_FLOAT32, 0, TERSE_TAG_MAX + 1, &req) == TERSE_ERR_INVALID_ARG, "tag");
    if (test_size > 1) {
        ring(pc, 5);
        ring(pc, 1 << 20);
        ordering(pc);
        mismatch(pc);
        ring(pc, 100); /* still usable after a mismatch */
        CHECK(terse_barrier(pc) == TERSE_ERR_INVALID_ARG, "collective on a p2p communicator");
        CHECK(terse_isend(comm, &x, 1, TERSE_DTYPE_FLOAT32, (test_rank + 1) % test_size, 0, &req) == TERSE_ERR_INVALID_ARG,
              "p2p on a communicator that ran collectives");
    }
    float s = (float)test_rank, t = 0;
    CHECK(terse_allreduce(comm, &s, &t, 1, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM) == TERSE_OK, "parent works");
    terse_comm_destroy(pc);
    return test_finish(comm);
}
