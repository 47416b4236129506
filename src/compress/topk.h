/* Top-K building blocks shared by the topk and induced codecs. */
#ifndef TERSE_COMPRESS_TOPK_H
#define TERSE_COMPRESS_TOPK_H

#include "compress.h"
#include "kernels.h"

/* What phase one learns about a block: keep keys > thr and the first n_eq keys == thr. */
typedef struct terse__topk_sel {
    uint32_t thr;
    size_t n_eq;
    const uint32_t *kept; /* the k kept indices in order when the selection found them, or NULL */
} terse__topk_sel_t;

/* Exact selection of the k largest |v| of v[0, nb) by a three-level radix histogram on the
 * |v| bit pattern (no sort), or for small k/nb from a sample and one collecting pass, which
 * also writes the kept indices to @kept (k entries; may be NULL) and sets sel->kept. Returns 1 if v holds NaN or Inf (sel is still filled, ranking
 * NaN above Inf above finite), 0 otherwise; -1 if memory ran out. Works in w->idx. */
int terse__topk_select(const terse__ckernels_t *kern, terse__cview_t *w, const float *v, size_t nb,
                       size_t k, terse__topk_sel_t *sel, uint32_t *kept);

/* Selects the top k of every block of range @r (read-only pass, so a non-finite value fails
 * before any output is written); *sel_p is in w->sel, one entry per block, and the sampled
 * selections' kept indices in w->kept. */
terse_status_t terse__topk_select_range(const terse__crange_t *r, terse__cview_t *w, const float *v,
                                        terse__topk_sel_t **sel_p);

/* Upper bound of one block's Top-K part. */
size_t terse__topk_block_max_bytes(size_t nb, size_t k);

/* Writes one block's Top-K part ([encoding u8][k values f32][indices]) at out and returns its
 * size; idx (k entries) receives the block-relative indices; dense/rem are block-based or
 * NULL. */
size_t terse__topk_write_block(const terse__ckernels_t *kern, const float *v, size_t nb, size_t k,
                               const terse__topk_sel_t *sel, uint8_t *out, uint64_t *idx,
                               float *dense, float *rem);

/* Validates one block's Top-K part at p (avail bytes from p on): encoding, lengths, indices in
 * [0, nb) and strictly increasing, canonical varints, zero bitmap padding, finite values. On
 * success *used_p is its size and, when idx is not NULL, idx gets the k indices. */
terse_status_t terse__topk_parse_block(const terse__crange_t *r, size_t block, const uint8_t *p,
                                       size_t avail, size_t nb, size_t k, size_t *used_p,
                                       uint64_t *idx);

/* Adds a validated block's Top-K part into acc (block-based); returns its size. */
size_t terse__topk_add_block(const uint8_t *p, size_t nb, size_t k, float *acc);

#endif
