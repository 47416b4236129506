/* terse_comm_split and terse_comm_dup: communicators over a subset of a parent's ranks,
 * bootstrapped over the parent.
 *
 * The child gets its own UCX context, worker and endpoints (terse_comm_create with an
 * out-of-band allgather that runs over the parent), rather than sharing the parent's worker:
 * - tags carry (class, seq, sender, step) in all 64 bits, so two communicators on one worker
 *   could not tell their messages apart without taking bits from those fields;
 * - each communicator serialises its UCX calls under its own lock and may have its own
 *   progress thread; a shared worker would need one lock for both, and a stall in one
 *   (a long compression between polls) would stall the other;
 * - destroying either must not affect the other: with separate workers neither holds
 *   anything of the other's, in either order.
 * The price is a context and endpoints per communicator (memory, and on InfiniBand more
 * queue pairs) and the setup time, which suits a call made a few times per job.
 *
 * The child's setup exchanges run among its members only, while the parent's other ranks
 * do something else (set up their own child, or wait). Collectives take sequence numbers
 * from the parent's counter, which would then fall out of step across the parent's ranks;
 * so every parent rank reserves the same block of sequence numbers, one per color, and
 * the k-th setup exchange of the child of color index c uses number base + c * SPLIT_SEQS + k.
 * Children of different colors never share a sequence number, so one child's failure
 * (announced to every parent rank) cannot fail another's setup. */
#include "algos.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Setup exchanges a communicator's creation makes (host ids, address lengths, addresses,
 * pids, the final barrier: 5), with room to spare. */
#define SPLIT_SEQS 8

typedef struct split_ctx {
    terse_comm_h parent;
    int *members;     /* parent ranks in child rank order */
    int n, me;        /* child size, this rank's child rank */
    uint32_t seq0;    /* this color's first reserved sequence number */
    int calls;        /* setup exchanges so far */
    int exchange_failed; /* one of them failed (the parent's last error says why) */
    uint64_t digest;  /* color and members: ranks that disagree get TERSE_ERR_MISMATCH */
} split_ctx_t;

/* Ring allgather among the members: round k passes on the block received in round k - 1. */
static terse_status_t split_ring_progress(terse_request_h req)
{
    const split_ctx_t *c = req->algo_data;
    int k = req->round, n = c->n;
    if (k == n - 1)
        return TERSE_OK;
    int send_blk = (c->me - k + n) % n, recv_blk = (c->me - k - 1 + n) % n;
    char *rbuf = req->rbuf;
    terse__req_recv(req, c->members[(c->me - 1 + n) % n], (uint16_t)k,
                    rbuf + (size_t)recv_blk * req->count, req->count);
    terse__req_send(req, c->members[(c->me + 1) % n], (uint16_t)k,
                    rbuf + (size_t)send_blk * req->count, req->count);
    req->round++;
    return TERSE_INPROGRESS;
}

const terse__algo_t terse__split_ring_algo = {
    .name = "split_ring",
    .id = TERSE_ALGO_SPLIT_RING,
    .progress = split_ring_progress,
};

/* The child's terse_oob_allgather_func_t. */
static terse_status_t split_allgather(const void *sbuf, void *rbuf, size_t len, void *info)
{
    split_ctx_t *c = info;
    terse_comm_h parent = c->parent;
    terse_request_h req;
    if (c->calls >= SPLIT_SEQS) {
        terse__comm_set_error(parent, "comm_split: more than %d setup exchanges", SPLIT_SEQS);
        return TERSE_ERR_INTERNAL;
    }
    uint32_t seq = c->seq0 + (uint32_t)c->calls++;
    if (len)
        memmove((char *)rbuf + (size_t)c->me * len, sbuf, len);
    if (c->n == 1)
        return TERSE_OK;
    pthread_mutex_lock(&parent->lock);
    terse_status_t st = terse__req_create(parent, TERSE_COLL_INTERNAL, &terse__split_ring_algo,
                                          &req);
    if (st == TERSE_OK) {
        req->rbuf = rbuf;
        req->count = len;
        req->dtype = TERSE_DTYPE_UINT8;
        req->algo_data = c; /* borrowed: the request ends before terse_comm_split returns */
        req->sig.count = len;
        req->sig.dtype = TERSE_DTYPE_UINT8;
        req->sig.aux = c->digest;
        st = terse__req_start_at(req, seq);
    }
    pthread_mutex_unlock(&parent->lock);
    st = terse__wait_free(st == TERSE_OK ? req : NULL, st);
    c->exchange_failed = st != TERSE_OK;
    return st;
}

/* A member whose setup failed tells the other members, who may wait in an exchange it will
 * never join: an abort for every sequence number of this color it has not used yet. */
static void announce_failure(split_ctx_t *c, terse_status_t st)
{
    terse_comm_h parent = c->parent;
    char why[sizeof(parent->last_error)];
    memcpy(why, parent->last_error, sizeof(why)); /* terse__req_fail overwrites it */
    pthread_mutex_lock(&parent->lock);
    for (int k = c->calls; k < SPLIT_SEQS; k++) {
        terse_request_h req;
        if (terse__req_create(parent, TERSE_COLL_INTERNAL, &terse__split_ring_algo, &req) != TERSE_OK)
            break;
        req->sig.seq = c->seq0 + (uint32_t)k;
        req->start = terse__now();
        req->done = 1;
        terse__req_fail(req, st, "setting up the split communicator failed on this rank%s%s",
                        why[0] ? ": " : "", why);
        terse__req_destroy(req);
    }
    pthread_mutex_unlock(&parent->lock);
}

typedef struct split_entry {
    int color, key, rank;
} split_entry_t;

static int by_color_key_rank(const void *a, const void *b)
{
    const split_entry_t *x = a, *y = b;
    if (x->color != y->color)
        return x->color < y->color ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* From every rank's (color, key), sorted by by_color_key_rank: this rank's color index (among
 * the colors >= 0 in increasing order), members and position. */
static terse_status_t find_members(terse_comm_h parent, const split_entry_t *all, int color,
                                   split_ctx_t *c, int *color_index_p)
{
    int p = parent->size, first = -1, ncolors = 0, last_color = -1;
    for (int i = 0; i < p; i++) {
        if (all[i].color < 0)
            continue;
        if (all[i].color != last_color) {
            last_color = all[i].color;
            ncolors++;
        }
        if (all[i].color == color) {
            if (first < 0) {
                first = i;
                *color_index_p = ncolors - 1;
            }
            if (all[i].rank == parent->rank)
                c->me = i - first;
            c->n = i - first + 1;
        }
    }
    c->members = terse__malloc((size_t)c->n * sizeof(int), "split members");
    if (!c->members)
        return TERSE_ERR_NO_MEMORY;
    for (int i = 0; i < c->n; i++)
        c->members[i] = all[first + i].rank;
    c->digest = terse__digest(c->members, (size_t)c->n * sizeof(int), (uint64_t)color);
    return TERSE_OK;
}

/* Creates this rank's child over the parent. */
static terse_status_t create_child(split_ctx_t *c, terse_comm_h *child_p)
{
    terse_comm_h parent = c->parent;
    terse_comm_params_t params = {
        .field_mask = TERSE_COMM_PARAM_FIELD_OOB | TERSE_COMM_PARAM_FIELD_PROGRESS_THREAD |
                      TERSE_COMM_PARAM_FIELD_HOST_ID | TERSE_COMM_PARAM_FIELD_TIMEOUT,
        .oob = {.allgather = split_allgather, .coll_info = c, .rank = c->me, .size = c->n},
        .progress_thread = parent->has_progress_thread,
        .host_id = parent->host_id,
        .timeout = parent->timeout,
    };
    terse_status_t st = terse_comm_create(&params, child_p);
    /* The parent's result-changing settings, not the environment as it reads now. */
    if (st == TERSE_OK)
        (*child_p)->settings = parent->settings;
    if (st != TERSE_OK) {
        if (!c->exchange_failed)
            terse__comm_set_error(parent, "comm_split: creating the communicator failed: %s",
                                  terse_status_string(st));
        announce_failure(c, st);
    }
    return st;
}

/* Every rank's (color, key), sorted; *ncolors_p: how many colors >= 0 there are. */
static terse_status_t gather_colors(terse_comm_h parent, int color, int key, split_entry_t *all,
                                    int *ncolors_p)
{
    int p = parent->size;
    int32_t mine[2] = {color < 0 ? TERSE_UNDEFINED : color, key};
    int32_t *ck = terse__malloc((size_t)p * sizeof(mine), "split colors and keys");
    if (!ck)
        return terse__coll_reject(parent, TERSE_COLL_ALLGATHER, TERSE_ERR_NO_MEMORY,
                                  "comm_split: no memory for %d colors", p);
    terse_status_t st = terse_allgather(parent, mine, ck, 2, TERSE_DTYPE_INT32);
    if (st == TERSE_OK) {
        for (int i = 0; i < p; i++)
            all[i] = (split_entry_t){.color = ck[2 * i], .key = ck[2 * i + 1], .rank = i};
        qsort(all, (size_t)p, sizeof(*all), by_color_key_rank);
        *ncolors_p = 0;
        for (int i = 0; i < p; i++)
            *ncolors_p += all[i].color >= 0 && (i == 0 || all[i].color != all[i - 1].color);
    }
    terse__free(ck);
    return st;
}

/* Every parent rank learns whether all of them succeeded, so that all get a communicator or
 * none does. Returns the status every rank returns. */
static terse_status_t agree(terse_comm_h parent, terse_status_t mine)
{
    int32_t st = mine, worst = TERSE_OK;
    terse_status_t ast = terse_allreduce(parent, &st, &worst, 1, TERSE_DTYPE_INT32, TERSE_OP_MIN);
    if (ast != TERSE_OK)
        return ast;
    if (mine == TERSE_OK && worst != TERSE_OK)
        terse__comm_set_error(parent, "comm_split failed on another rank (%s)",
                              terse_status_string((terse_status_t)worst));
    return mine != TERSE_OK ? mine : (terse_status_t)worst;
}

terse_status_t terse_comm_split(terse_comm_h parent, int color, int key, terse_comm_h *newcomm_p)
{
    if (!parent)
        return TERSE_ERR_INVALID_ARG;
    /* the first collective of the split is an allgather: fail that one, so peers hear why */
    if (!newcomm_p)
        return terse__coll_reject(parent, TERSE_COLL_ALLGATHER, TERSE_ERR_INVALID_ARG,
                                  "comm_split: NULL communicator pointer");
    split_entry_t *all = terse__malloc((size_t)parent->size * sizeof(*all), "split entries");
    if (!all)
        return terse__coll_reject(parent, TERSE_COLL_ALLGATHER, TERSE_ERR_NO_MEMORY,
                                  "comm_split: no memory for %d ranks", parent->size);
    int ncolors = 0, ci = 0;
    terse_status_t st = gather_colors(parent, color, key, all, &ncolors);
    if (st != TERSE_OK) {
        terse__free(all);
        return st;
    }
    /* every parent rank is here, after the same allgather: reserve the same numbers */
    pthread_mutex_lock(&parent->lock);
    uint32_t seq0 = parent->next_seq;
    parent->next_seq += (uint32_t)ncolors * SPLIT_SEQS;
    pthread_mutex_unlock(&parent->lock);

    terse_comm_h child = NULL;
    split_ctx_t ctx = {.parent = parent};
    if (color >= 0) {
        st = find_members(parent, all, color, &ctx, &ci);
        ctx.seq0 = seq0 + (uint32_t)ci * SPLIT_SEQS;
        if (st == TERSE_OK)
            st = create_child(&ctx, &child);
    }
    terse__free(all);
    terse__free(ctx.members);
    st = agree(parent, st);
    if (st != TERSE_OK) {
        if (child)
            terse_comm_destroy(child);
        return st;
    }
    *newcomm_p = child;
    return TERSE_OK;
}

terse_status_t terse_comm_dup(terse_comm_h parent, terse_comm_h *newcomm_p)
{
    if (!parent)
        return TERSE_ERR_INVALID_ARG;
    return terse_comm_split(parent, 0, parent->rank, newcomm_p);
}
