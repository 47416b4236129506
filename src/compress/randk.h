/* Rand-K building blocks shared by the randk and induced codecs. */
#ifndef TERSE_COMPRESS_RANDK_H
#define TERSE_COMPRESS_RANDK_H

#include "compress.h"

/* Scratch bytes terse__randk_block_indices needs for a block of nb elements and k draws. */
size_t terse__randk_scratch_bytes(size_t nb, size_t k);

/* The k sorted indices of block `block` (nb elements) under r's seed/step/tensor id, in
 * w->rand (sized for r's largest block; valid until the next call). NULL if no memory; never
 * NULL once that size was reserved in @w. */
uint64_t *terse__randk_block_indices(const terse__crange_t *r, terse__cview_t *w, size_t block,
                                     size_t nb, size_t k);

#endif
