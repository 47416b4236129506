/* The request engine's limits: one round with more transfers than ranks would ever need at
 * small scale (2 x 1022 per peer: beyond the 1024 a round could once hold), inline, split and
 * variable-length messages mixed, every payload and received length checked. Links the
 * internal library: the round is posted by an algorithm of the test's own. */
#include "test_util.h"

#include "coll/comm.h"

enum { STEPS = 1022, BIG = 4096, TEST_ALGO_ID = 60 };

static int32_t **rx, **tx; /* [peer * STEPS + step] */
static int posted;          /* transfers the round held */
static int failures_in_round;

/* Steps divisible by 100 carry BIG ints (split: header and payload apart), the others one;
 * odd steps are received as messages of unknown length. */
static size_t ints_of(int step)
{
    return step % 100 == 0 ? BIG : 1;
}

static int32_t value(int from, int to, int step, size_t i)
{
    return from * 1000003 + to * 10007 + step * 7 + (int32_t)i;
}

static void post_all(terse_request_h req)
{
    int me = req->comm->rank, K = req->comm->size;
    for (int q = 0; q < K; q++) {
        if (q == me)
            continue;
        for (int s = 0; s < STEPS; s++) {
            int32_t *r = rx[q * STEPS + s];
            size_t bytes = ints_of(s) * sizeof(int32_t);
            if (s % 2)
                terse__req_recv_var(req, q, (uint16_t)s, r, 2 * bytes);
            else
                terse__req_recv(req, q, (uint16_t)s, r, bytes);
            terse__req_send(req, q, (uint16_t)s, tx[q * STEPS + s], bytes);
        }
    }
    posted = req->nx;
}

static void check_all(terse_request_h req)
{
    int me = req->comm->rank, K = req->comm->size, i = 0;
    for (int q = 0; q < K; q++) {
        if (q == me)
            continue;
        for (int s = 0; s < STEPS; s++, i += 2) {
            size_t n = ints_of(s), got = terse__req_received_len(req, i);
            failures_in_round += got != n * sizeof(int32_t);
            for (size_t k = 0; k < n; k++)
                failures_in_round += rx[q * STEPS + s][k] != value(q, me, s, k);
        }
    }
}

static terse_status_t many_progress(terse_request_h req)
{
    if (req->phase == 0) {
        req->phase = 1;
        post_all(req);
        return req->comm->size > 1 ? TERSE_INPROGRESS : TERSE_OK;
    }
    check_all(req);
    return TERSE_OK;
}

static const terse__algo_t many_algo = {
    .name = "test_many_transfers",
    .id = TEST_ALGO_ID,
    .progress = many_progress,
};

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    int K = test_size;
    rx = calloc((size_t)K * STEPS, sizeof(*rx));
    tx = calloc((size_t)K * STEPS, sizeof(*tx));
    for (int q = 0; q < K; q++) {
        for (int s = 0; s < STEPS; s++) {
            size_t n = ints_of(s);
            rx[q * STEPS + s] = calloc(2 * n, sizeof(int32_t));
            tx[q * STEPS + s] = malloc(n * sizeof(int32_t));
            for (size_t k = 0; k < n; k++)
                tx[q * STEPS + s][k] = value(test_rank, q, s, (int)k);
        }
    }
    for (int rep = 0; rep < 2; rep++) { /* the second call reuses the first one's storage */
        terse_request_h req = NULL;
        pthread_mutex_lock(&comm->lock);
        terse_status_t st = terse__req_create(comm, TERSE_COLL_INTERNAL, &many_algo, &req);
        if (st == TERSE_OK)
            terse__req_start(req);
        pthread_mutex_unlock(&comm->lock);
        CHECK(st == TERSE_OK, "create: %s", terse_status_name(st));
        if (st != TERSE_OK)
            break;
        st = terse_wait(req);
        terse_request_free(req);
        CHECK(st == TERSE_OK, "round of %d transfers: %s (%s)", posted, terse_status_name(st),
              terse_comm_last_error(comm));
        CHECK(K == 1 || posted > 2000, "only %d transfers posted", posted);
        CHECK(failures_in_round == 0, "%d wrong payload values or lengths", failures_in_round);
        CHECK(terse_barrier(comm) == TERSE_OK, "barrier after: %s", terse_comm_last_error(comm));
    }
    if (test_rank == 0)
        printf("one round of %d transfers per rank, %d ranks\n", posted, K);
    for (int i = 0; i < K * STEPS; i++) {
        free(rx[i]);
        free(tx[i]);
    }
    free(rx);
    free(tx);
    return test_finish(comm);
}
