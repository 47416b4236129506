/* split.c's state and geometry: the fused elements split over the owners by elements, the
 * Top-K blocks in global order, and which blocks a slice meets. split_select.c holds the
 * selection (bounds, keys, thresholds), split_list.c the list messages. */
#ifndef TERSE_COLL_COMPRESSED_SPLIT_H
#define TERSE_COLL_COMPRESSED_SPLIT_H

#include "compressed.h"

#include <string.h>

typedef enum {
    SPL_START,
    SPL_PARTS,
    SPL_BOUNDS,
    SPL_KEYS,
    SPL_RESULTS,
    SPL_CONFIRMING,
} spl_phase_t;

/* One Top-K block in the fused element space. */
typedef struct spl_block {
    size_t lo, n, k;  /* global first element, elements, kept */
    int o_lo, o_hi;   /* the slices it meets: [o_lo, o_hi] */
} spl_block_t;

enum { SPL_EDGES = 2, SPL_BOUND = 16 /* [has t, t, has u, u] */ };

typedef struct spl_state {
    spl_phase_t phase;
    size_t nblk;
    spl_block_t *blk;
    size_t edge[SPL_EDGES];  /* this slice's first and last block */
    uint32_t L[SPL_EDGES], T[SPL_EDGES];
    uint8_t *send;     /* send area: R1 parts, then R3 keys, then R4 this owner's results */
    uint8_t *keys;     /* R3: a shared edge's keys >= L gathered; R4: the kept indices */
    uint8_t *bound;    /* R2: SPL_EDGES bounds per participant */
    uint64_t *local;   /* the local blocks' kept indices (global, in order), selected in R3 */
    size_t nlocal;
    size_t *count;     /* per block: entries of the result lists (check_results) */
} spl_state_t;

static inline spl_state_t *spl_state(terse_request_h req)
{
    _Static_assert(sizeof(spl_state_t) <= sizeof(req->state), "state fits");
    return (spl_state_t *)req->state;
}

static inline size_t sl_lo(const terse__cplan_t *p, int r)
{
    return terse__part_off(p->geo.nelems, p->geo.nparts, r);
}

/* The slice holding global element @g. */
static inline int slice_of(const terse__cplan_t *p, size_t g)
{
    size_t N = p->geo.nelems;
    int K = p->geo.nparts;
    int r = (int)(((__uint128_t)g * (unsigned)K) / (N ? N : 1));
    while (r + 1 < K && sl_lo(p, r + 1) <= g)
        r++;
    while (r > 0 && sl_lo(p, r) > g)
        r--;
    return r;
}

/* The block holding global element @g. */
static inline size_t block_at(const spl_state_t *s, size_t g)
{
    size_t lo = 0, hi = s->nblk;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->blk[mid].lo <= g)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static inline size_t edge_of(const terse__cplan_t *p, const spl_state_t *s, int q, int e)
{
    return block_at(s, e == 0 ? sl_lo(p, q) : sl_lo(p, q + 1) - 1);
}

static inline int shared(const spl_block_t *b)
{
    return b->o_lo != b->o_hi;
}

/* Elements of block @b in slice @q. */
static inline size_t piece(const terse__cplan_t *p, const spl_block_t *b, int q)
{
    size_t lo = sl_lo(p, q), hi = sl_lo(p, q + 1);
    size_t a = b->lo > lo ? b->lo : lo, z = b->lo + b->n < hi ? b->lo + b->n : hi;
    return z > a ? z - a : 0;
}

/* Which of participant @q's edges block @b is (@b meets slice @q and is shared). */
static inline int edge_index(const terse__cplan_t *p, const spl_state_t *s, size_t b, int q)
{
    return edge_of(p, s, q, 0) == b ? 0 : 1;
}

/* ceil(k / m): the u bound's count. */
static inline size_t k_share(const spl_block_t *b)
{
    size_t m = (size_t)(b->o_hi - b->o_lo + 1);
    return (b->k + m - 1) / m;
}

/* Most entries a list of slice @q holds: per block, its k or its piece, whichever is less. */
static inline size_t slice_cap(const terse__cplan_t *p, const spl_state_t *s, int q)
{
    size_t cap = 0;
    for (size_t b = edge_of(p, s, q, 0), z = edge_of(p, s, q, 1); b <= z; b++) {
        size_t n = piece(p, &s->blk[b], q);
        cap += s->blk[b].k < n ? s->blk[b].k : n;
    }
    return cap;
}

static inline uint32_t key_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b & 0x7fffffffu;
}

/* The bound of block @b's piece a[0, n): b4 = [has t, t, has u, u]. 1 on a non-finite value,
 * -1 on no memory. */
int terse__spl_piece_bound(const spl_block_t *b, const float *a, size_t n, uint32_t b4[4]);

/* Fails the request for a server selection of block @b that returned @bad (< 0: no memory,
 * else a non-finite e_s + avg); returns its status. */
terse_status_t terse__spl_select_failed(terse_request_h req, const spl_block_t *b, int bad);

/* L of shared block @b from its owners' bounds (R2); -1 when a bound is invalid (the request
 * failed). */
int terse__spl_lower(terse_request_h req, size_t b, uint32_t *L_p);

/* The local blocks of this slice, selected exactly as the codec's server encode does, into
 * s->local (global indices in order). */
terse_status_t terse__spl_select_local(terse_request_h req);

/* T of shared edge @e from its owners' keys (R3) and how many of its ties this piece keeps;
 * -1 when a message is invalid (the request failed). */
int terse__spl_threshold(terse_request_h req, int e, size_t *mine_eq_p);

/* This slice's kept indices of shared edge @e (T known), written at @ip; returns how many. */
size_t terse__spl_keep_edge(const terse__cplan_t *p, const spl_state_t *s, int e,
                            size_t mine_eq, uint64_t *ip);

#endif
