/* Recursive doubling allreduce for small messages, any rank count: the first 2*rem ranks
 * fold pairwise so a power of two remains, exchange-and-reduce log2 rounds, then unfold.
 * Partners always combine (lower ranks' part, higher ranks' part), so every rank computes
 * the same expression tree and the result is bit-identical everywhere. reduce_scatter and
 * reduce of small vectors run this same code (terse__allreduce_rd_run, rs_rd.c). */
#include "algos.h"
#include "reduce.h"

#include <string.h>

typedef struct rd_state {
    int pof2, rem, newrank, mask;
} rd_state_t;

enum { RD_FOLD, RD_FOLD_WAIT, RD_EXCHANGE, RD_UNFOLD, RD_DONE };

static int real_rank(const rd_state_t *s, int newrank)
{
    return newrank < s->rem ? newrank * 2 + 1 : newrank + s->rem;
}

static void finish_avg(terse_request_h req, void *work)
{
    if (req->op == TERSE_OP_AVG)
        terse__reduce_avg_finish(work, req->count, req->dtype, req->comm->size);
}

/* The first round: the group of a power of two, and the folds of the first 2*rem ranks. */
static terse_status_t rd_fold(terse_request_h req, rd_state_t *s, void *work, size_t bytes)
{
    terse_comm_h comm = req->comm;
    int rank = comm->rank;
    s->pof2 = 1;
    while (s->pof2 * 2 <= comm->size)
        s->pof2 *= 2;
    s->rem = comm->size - s->pof2;
    s->mask = 1;
    if (rank < 2 * s->rem) {
        if (rank % 2 == 0) {
            /* Folded away: hand over the data, receive the result at the end. */
            terse__req_send(req, rank + 1, 0, req->sbuf, bytes);
            s->newrank = -1;
            req->phase = RD_UNFOLD;
            return TERSE_INPROGRESS;
        }
        s->newrank = rank / 2;
        void *tmp = terse__req_scratch(req, bytes);
        if (!tmp)
            return req->status;
        terse__req_recv(req, rank - 1, 0, tmp, bytes);
        req->phase = RD_FOLD_WAIT;
        return TERSE_INPROGRESS;
    }
    s->newrank = rank - s->rem;
    if (req->sbuf != work && bytes)
        memcpy(work, req->sbuf, bytes);
    req->phase = RD_EXCHANGE;
    return TERSE_OK; /* go on to the exchange rounds */
}

/* The next exchange round among the power-of-two group, or, after the last, the result to
 * the folded partner. */
static terse_status_t rd_next_round(terse_request_h req, rd_state_t *s, void *work, size_t bytes)
{
    int rank = req->comm->rank;
    if (s->mask < s->pof2) {
        int partner = real_rank(s, s->newrank ^ s->mask);
        void *tmp = terse__req_scratch(req, bytes);
        if (!tmp)
            return req->status;
        uint16_t step = (uint16_t)(2 + __builtin_ctz((unsigned)s->mask));
        terse__req_send(req, partner, step, work, bytes);
        terse__req_recv(req, partner, step, tmp, bytes);
        s->mask <<= 1;
        req->phase = RD_EXCHANGE;
        return TERSE_INPROGRESS;
    }
    finish_avg(req, work);
    req->phase = RD_UNFOLD;
    if (rank < 2 * s->rem) { /* odd rank: give the folded partner its result */
        terse__req_send(req, rank - 1, 1, work, bytes);
        return TERSE_INPROGRESS;
    }
    return TERSE_OK;
}

terse_status_t terse__allreduce_rd_run(terse_request_h req, void *work)
{
    _Static_assert(sizeof(rd_state_t) <= sizeof(req->state), "state fits");
    rd_state_t *s = (rd_state_t *)req->state;
    size_t bytes = req->count * terse_dtype_size(req->dtype);
    terse_status_t st;

    switch (req->phase) {
    case RD_FOLD:
        st = rd_fold(req, s, work, bytes);
        if (st != TERSE_OK)
            return st;
        break;
    case RD_FOLD_WAIT:
        terse__reduce(work, req->scratch->ptr, req->sbuf, req->count, req->dtype, req->op);
        req->phase = RD_EXCHANGE;
        break;
    case RD_EXCHANGE: {
        /* The round with partner (mask/2) completed: combine in rank order. */
        int partner = s->newrank ^ (s->mask >> 1);
        if (partner < s->newrank)
            terse__reduce(work, req->scratch->ptr, work, req->count, req->dtype, req->op);
        else
            terse__reduce(work, work, req->scratch->ptr, req->count, req->dtype, req->op);
        break;
    }
    case RD_UNFOLD:
        if (s->newrank < 0 && req->round == 0) {
            req->round = 1;
            terse__req_recv(req, req->comm->rank + 1, 1, work, bytes);
            return TERSE_INPROGRESS;
        }
        return TERSE_OK;
    default:
        return TERSE_OK;
    }
    return rd_next_round(req, s, work, bytes);
}

static terse_status_t rd_progress(terse_request_h req)
{
    return terse__allreduce_rd_run(req, req->rbuf);
}

const terse__algo_t terse__allreduce_rd_algo = {
    .name = "recursive_doubling",
    .id = TERSE_ALGO_ALLREDUCE_RD,
    .progress = rd_progress,
};
