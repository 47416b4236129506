/* terse: element types and reduction operators. */
#ifndef TERSE_TYPES_H
#define TERSE_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <terse/api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Values are part of the wire header: append only. */
typedef enum terse_dtype {
    TERSE_DTYPE_FLOAT32 = 0,
    TERSE_DTYPE_FLOAT64 = 1,
    TERSE_DTYPE_FLOAT16 = 2, /* IEEE binary16 */
    TERSE_DTYPE_BFLOAT16 = 3,
    TERSE_DTYPE_INT8 = 4,
    TERSE_DTYPE_INT16 = 5,
    TERSE_DTYPE_INT32 = 6,
    TERSE_DTYPE_INT64 = 7,
    TERSE_DTYPE_UINT8 = 8,
    TERSE_DTYPE_LAST = 9
} terse_dtype_t;

/* Values are part of the wire header: append only. */
typedef enum terse_op {
    TERSE_OP_SUM = 0,
    TERSE_OP_AVG = 1, /* sum, then divided by the number of ranks (integers: truncated) */
    TERSE_OP_MIN = 2,
    TERSE_OP_MAX = 3,
    TERSE_OP_PROD = 4,
    TERSE_OP_LAST = 5
} terse_op_t;

/** Size in bytes of one element of @p dtype, or 0 if @p dtype is not valid. */
TERSE_API size_t terse_dtype_size(terse_dtype_t dtype);

/** Lowercase name ("float32", ...), or "invalid". */
TERSE_API const char *terse_dtype_name(terse_dtype_t dtype);

/** Lowercase name ("sum", ...), or "invalid". */
TERSE_API const char *terse_op_name(terse_op_t op);

#ifdef __cplusplus
}
#endif
#endif
