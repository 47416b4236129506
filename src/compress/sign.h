/* The sign codec's block scale ||v||_1 / nb, defined so that any split of a block at chunk
 * boundaries gives the same bits (the owner schedule of one sign block, coll/compressed):
 *   chunk c = elements [c * TERSE_SIGN_CHUNK, (c + 1) * TERSE_SIGN_CHUNK) of the block (the
 *             last shorter); its partial P_c: |v[i]| added in double into lane i % 16 in
 *             element order, the 16 lanes combined by a fixed pairwise tree;
 *   l1      = ((P_0 + P_1) + P_2) + ... in double, chunk order;
 *   scale   = (float)(l1 / nb), rounded once.
 * A block of at most one chunk keeps the single 16-lane sum it always had. */
#ifndef TERSE_COMPRESS_SIGN_H
#define TERSE_COMPRESS_SIGN_H

#include <stddef.h>
#include <stdint.h>

enum { TERSE_SIGN_CHUNK = 4096 }; /* elements; a multiple of 16 (lanes) and of 8 (bitmap bytes) */

/* Partials of the ceil(n / TERSE_SIGN_CHUNK) chunks of v[0, n) (v at a chunk boundary of its
 * block) into @part. Returns nonzero when some |v[i]| is not finite. */
int terse__sign_partials(const float *v, size_t n, double *part);

/* The scale of a block of @nb elements from its @m chunk partials. */
float terse__sign_scale(const double *part, size_t m, size_t nb);

/* out[i] = out[i] - (0 + c_i) for the @n signs of @bits at scale @s (bit set: c_i = -s), bit
 * for bit, touching out only where it changes. */
void terse__sign_subtract(const uint8_t *bits, size_t n, float s, float *out);

#endif
