/* Elementwise reduction kernels for dense collectives. */
#ifndef TERSE_COLL_REDUCE_H
#define TERSE_COLL_REDUCE_H

#include <terse/types.h>

/* dst[i] = lo[i] op hi[i]; @lo holds the contribution of the lower ranks. Every algorithm
 * calls it with operands in rank order, so results are the same on every rank even where
 * op is not commutative bit for bit (NaN payloads, fp16 rounding). AVG reduces as SUM.
 * dst may alias lo or hi. Integers wrap (no undefined overflow). */
void terse__reduce(void *dst, const void *lo, const void *hi, size_t n, terse_dtype_t dtype,
                   terse_op_t op);

/* For AVG: divide the sum by @nranks in place (integers truncate toward zero). */
void terse__reduce_avg_finish(void *buf, size_t n, terse_dtype_t dtype, int nranks);

#endif
