/* Block ranges on several pool threads. Parts are fixed slices of the block range (core/pool.h),
 * each run with its own copy of the range (its own message buffer) and the view of the thread
 * it runs on; whatever crosses parts is combined in part order, which is block order: the wire
 * offsets (encode compacts the parts' payloads left to right) and the error (the lowest part
 * that failed holds the first failing block, the one the one-thread run stops at). */
#include "compress.h"

#include "core/pool.h"
#include "wire.h"

#include <stdio.h>
#include <string.h>

typedef struct part {
    terse__crange_t r; /* the part's blocks */
    size_t off, len;   /* payload bytes: where the part writes (encode) or reads, how many */
    terse_status_t st;
    char msg[256];
} part_t;

typedef struct job {
    part_t part[TERSE__POOL_MAX];
    const terse__cenc_args_t *enc;
    const terse__cdec_args_t *dec;
    uint8_t *payload;       /* encode: after the header */
    const uint8_t *message; /* decode: after the header */
    int apply;              /* decode's second run: every part validated */
} job_t;

static size_t min_elems = TERSE__PAR_MIN_ELEMS;

void terse__compress_par_min(size_t elems)
{
    min_elems = elems ? elems : 1;
}

/* How many parts r is worth: one per min_elems elements, at most one per block. */
static int parts_wanted(const terse__crange_t *r)
{
    if (r->count < 2)
        return 1;
    size_t last = r->first + r->count - 1;
    size_t elems = terse__crange_block_start(r, last) + terse__crange_block_len(r, last) -
                   terse__crange_block_start(r, r->first);
    size_t n = elems / min_elems;
    n = n < r->count ? n : r->count;
    return n > TERSE__POOL_MAX ? TERSE__POOL_MAX : (int)(n ? n : 1);
}

/* Splits r into @np parts with their payload offsets (every block at its largest size). */
static void split(const terse__crange_t *r, int np, job_t *j)
{
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        part_t *q = &j->part[i];
        size_t lo = terse__pool_part_lo(r->count, i, np);
        size_t hi = terse__pool_part_lo(r->count, i + 1, np);
        q->r = *r;
        q->r.first = r->first + lo;
        q->r.count = hi - lo;
        q->r.msg = q->msg;
        q->r.msglen = sizeof(q->msg);
        q->msg[0] = 0;
        q->st = TERSE_OK;
        q->off = off;
        q->len = terse__crange_max_bytes(&q->r) - TERSE__WIRE_HEADER_SIZE;
        off += q->len;
    }
}

/* The first failing part's status, its message copied to r's. */
static terse_status_t first_error(const terse__crange_t *r, const job_t *j, int np)
{
    for (int i = 0; i < np; i++)
        if (j->part[i].st != TERSE_OK) {
            if (r->msg && r->msglen)
                snprintf(r->msg, r->msglen, "%s", j->part[i].msg);
            return j->part[i].st;
        }
    return TERSE_OK;
}

static void encode_part(void *arg, int i, int np)
{
    (void)np;
    job_t *j = arg;
    part_t *q = &j->part[i];
    size_t len = 0;
    q->st = terse__codec_of(&q->r)->encode(&q->r, terse__cview_local(), j->enc->v,
                                           j->payload + q->off, &len, j->enc->dense_out,
                                           j->enc->remainder_out);
    q->len = len;
}

terse_status_t terse__cblocks_encode_par(const terse__crange_t *r, const terse__cenc_args_t *a,
                                         size_t *wire_len_p)
{
    int want = parts_wanted(r);
    int np = want > 1 && a->wire && a->v && wire_len_p &&
                     a->wire_cap >= terse__crange_max_bytes(r)
                 ? terse__pool_acquire(want)
                 : 1;
    if (np <= 1)
        return terse__cblocks_encode(r, terse__cview_local(), a, wire_len_p);
    job_t j;
    j.enc = a;
    j.payload = (uint8_t *)a->wire + TERSE__WIRE_HEADER_SIZE;
    split(r, np, &j);
    terse__pool_run(np, encode_part, &j);
    terse__pool_release();
    terse_status_t st = first_error(r, &j, np);
    if (st != TERSE_OK)
        return st;
    size_t pos = j.part[0].len;
    for (int i = 1; i < np; i++) { /* left to right: a part never moves right */
        memmove(j.payload + pos, j.payload + j.part[i].off, j.part[i].len);
        pos += j.part[i].len;
    }
    terse__wire_put_header(a->wire, r);
    *wire_len_p = TERSE__WIRE_HEADER_SIZE + pos;
    return TERSE_OK;
}

static void decode_part(void *arg, int i, int np)
{
    (void)np;
    job_t *j = arg;
    part_t *q = &j->part[i];
    const terse__codec_ops_t *ops = terse__codec_of(&q->r);
    if (j->apply)
        terse__cblocks_apply(&q->r, terse__cview_local(), j->message + q->off, q->len, j->dec);
    else
        q->st = ops->validate(&q->r, terse__cview_local(), j->message + q->off, q->len);
}

/* Whether the one-thread decode must run: a codec that cannot split, or anything it would
 * reject before the payload (so it gives its exact message), or a payload of the wrong size. */
static int decode_inline(const terse__crange_t *r, const terse__cdec_args_t *a)
{
    const terse__codec_ops_t *ops = terse__codec_of(r);
    if (!ops->fixed_size || (a->op == TERSE__CDEC_REMAINDER && !ops->remainder) ||
        (a->op == TERSE__CDEC_SUBTRACT && !ops->subtract))
        return 1;
    if (a->op != TERSE__CDEC_CHECK && (!a->out || (a->op == TERSE__CDEC_REMAINDER && !a->v)))
        return 1;
    return !a->wire || a->wire_len != terse__crange_max_bytes(r) ||
           terse__wire_check_header(a->wire, a->wire_len, r) != TERSE_OK;
}

terse_status_t terse__cblocks_decode_par(const terse__crange_t *r, const terse__cdec_args_t *a)
{
    int want = parts_wanted(r);
    int np = want > 1 && !decode_inline(r, a) ? terse__pool_acquire(want) : 1;
    if (np <= 1)
        return terse__cblocks_decode(r, terse__cview_local(), a);
    job_t j;
    j.dec = a;
    j.message = (const uint8_t *)a->wire + TERSE__WIRE_HEADER_SIZE;
    j.apply = 0;
    split(r, np, &j);
    /* validate everything, then write: nothing is touched unless every part is sound; the
     * pool stays held in between, so each part's view is still its thread's */
    terse__pool_run(np, decode_part, &j);
    terse_status_t st = first_error(r, &j, np);
    if (st == TERSE_OK && a->op != TERSE__CDEC_CHECK) {
        j.apply = 1;
        terse__pool_run(np, decode_part, &j);
    }
    terse__pool_release();
    return st;
}
