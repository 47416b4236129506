/* terse: element types and reduction operators. */
#ifndef TERSE_TYPES_H
#define TERSE_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <terse/api.h>
#include <terse/status.h>

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

/* The compressed allreduce's algorithm (TERSE_COMPRESSED_ALGO's words). Part of every call's
 * signature, so ranks that choose differently fail with TERSE_ERR_MISMATCH: append only. */
typedef enum terse_compressed_algo {
    TERSE_COMPRESSED_ALGO_AUTO = 0, /* chosen from the compressor, density and rank count */
    TERSE_COMPRESSED_ALGO_SPARSE_ALLGATHER = 1,
    TERSE_COMPRESSED_ALGO_SPARSE_RS_AG = 2,
    TERSE_COMPRESSED_ALGO_SIGN_ALLGATHER = 3,
    TERSE_COMPRESSED_ALGO_SIGN_A2A_AG = 4,
    TERSE_COMPRESSED_ALGO_DENSE = 5,
    TERSE_COMPRESSED_ALGO_LAST = 6
} terse_compressed_algo_t;

/* Whether the compressed allreduce averages within a host first (TERSE_HIERARCHY's words). It
 * changes what error feedback sees (the hosts are the workers): append only. */
typedef enum terse_hierarchy {
    TERSE_HIERARCHY_NONE = 0, /* every rank is a worker */
    TERSE_HIERARCHY_NODE = 1, /* every host is a worker; e_s on the host leaders */
    TERSE_HIERARCHY_LAST = 2
} terse_hierarchy_t;

/** Lowercase name ("sparse_rs_ag", ...; the words TERSE_COMPRESSED_ALGO takes), or "invalid". */
TERSE_API const char *terse_compressed_algo_name(terse_compressed_algo_t algo);

/** Lowercase name ("none", "node"; the words TERSE_HIERARCHY takes), or "invalid". */
TERSE_API const char *terse_hierarchy_name(terse_hierarchy_t hierarchy);

/**
 * The algorithm or hierarchy a word names (the words TERSE_COMPRESSED_ALGO and TERSE_HIERARCHY
 * take, case-insensitive).
 * @param [out] out_p  Set on success only.
 * @return TERSE_OK, or TERSE_ERR_INVALID_ARG for NULL or an unknown word.
 */
TERSE_API terse_status_t terse_compressed_algo_parse(const char *word,
                                                     terse_compressed_algo_t *out_p);
TERSE_API terse_status_t terse_hierarchy_parse(const char *word, terse_hierarchy_t *out_p);

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
