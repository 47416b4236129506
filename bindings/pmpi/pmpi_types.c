/* Which MPI datatypes and operations terse can do, and as what. Only predefined (named)
 * datatypes: a derived one may have gaps, and it is a rank-local choice (another rank may
 * describe the same bytes with a predefined type), which the caller documents. */
#include "pmpi.h"

#include <stdint.h>

enum {
    OPS_ALL = 0xf, /* sum, prod, min, max */
    OPS_WRAP = 0x3 /* sum, prod: unsigned results are the same bits as the signed type's */
};

static int op_bit(MPI_Op op, terse_op_t *op_p)
{
    if (op == MPI_SUM) { *op_p = TERSE_OP_SUM; return 0x1; }
    if (op == MPI_PROD) { *op_p = TERSE_OP_PROD; return 0x2; }
    if (op == MPI_MIN) { *op_p = TERSE_OP_MIN; return 0x4; }
    if (op == MPI_MAX) { *op_p = TERSE_OP_MAX; return 0x8; }
    return 0;
}

static terse_dtype_t int_of_size(size_t bytes)
{
    switch (bytes) {
    case 1: return TERSE_DTYPE_INT8;
    case 2: return TERSE_DTYPE_INT16;
    case 4: return TERSE_DTYPE_INT32;
    case 8: return TERSE_DTYPE_INT64;
    default: return TERSE_DTYPE_LAST;
    }
}

/* The reduction view of @p type: terse dtype, elements per MPI element, allowed ops. */
static int reduce_view(MPI_Datatype type, terse_dtype_t *dt, size_t *mult, int *ops)
{
    *mult = 1;
    *ops = OPS_ALL;
    if (type == MPI_FLOAT) { *dt = TERSE_DTYPE_FLOAT32; return 1; }
    if (type == MPI_DOUBLE) { *dt = TERSE_DTYPE_FLOAT64; return 1; }
    /* A complex sum is the sum of the real and of the imaginary parts. */
    if (type == MPI_C_FLOAT_COMPLEX) { *dt = TERSE_DTYPE_FLOAT32; *mult = 2; *ops = 0x1; return 1; }
    if (type == MPI_C_DOUBLE_COMPLEX) { *dt = TERSE_DTYPE_FLOAT64; *mult = 2; *ops = 0x1; return 1; }
    if (type == MPI_UNSIGNED_CHAR || type == MPI_UINT8_T) { *dt = TERSE_DTYPE_UINT8; return 1; }
    if (type == MPI_SIGNED_CHAR || type == MPI_INT8_T) { *dt = TERSE_DTYPE_INT8; return 1; }
    if (type == MPI_SHORT || type == MPI_INT16_T) { *dt = TERSE_DTYPE_INT16; return 1; }
    if (type == MPI_INT || type == MPI_INT32_T) { *dt = int_of_size(sizeof(int)); return 1; }
    if (type == MPI_LONG) { *dt = int_of_size(sizeof(long)); return 1; }
    if (type == MPI_LONG_LONG || type == MPI_INT64_T) { *dt = int_of_size(sizeof(long long)); return 1; }
    *ops = OPS_WRAP;
    if (type == MPI_UNSIGNED_SHORT || type == MPI_UINT16_T) { *dt = TERSE_DTYPE_INT16; return 1; }
    if (type == MPI_UNSIGNED || type == MPI_UINT32_T) { *dt = int_of_size(sizeof(unsigned)); return 1; }
    if (type == MPI_UNSIGNED_LONG) { *dt = int_of_size(sizeof(unsigned long)); return 1; }
    if (type == MPI_UNSIGNED_LONG_LONG || type == MPI_UINT64_T) {
        *dt = int_of_size(sizeof(unsigned long long));
        return 1;
    }
    return 0;
}

/* Gathers and broadcasts copy bytes: any predefined datatype without holes will do. */
static int byte_view(MPI_Datatype type, size_t *mult)
{
    int ni, na, nd, combiner, size;
    MPI_Aint lb, extent;
    if (type == MPI_DATATYPE_NULL ||
        PMPI_Type_get_envelope(type, &ni, &na, &nd, &combiner) != MPI_SUCCESS ||
        combiner != MPI_COMBINER_NAMED)
        return 0;
    if (PMPI_Type_size(type, &size) != MPI_SUCCESS || size <= 0 ||
        PMPI_Type_get_true_extent(type, &lb, &extent) != MPI_SUCCESS || lb != 0 ||
        extent != size)
        return 0;
    *mult = (size_t)size;
    return 1;
}

int terse__pmpi_dtype(MPI_Datatype type, MPI_Op op, terse_dtype_t *dtype_p, terse_op_t *op_p,
                      size_t *mult_p)
{
    terse_dtype_t dt;
    terse_op_t top = TERSE_OP_SUM;
    size_t mult;
    int ops;
    if (op == MPI_OP_NULL) {
        if (!byte_view(type, &mult))
            return 0;
        *dtype_p = TERSE_DTYPE_UINT8;
        *mult_p = mult;
        return 1;
    }
    if (!reduce_view(type, &dt, &mult, &ops) || dt == TERSE_DTYPE_LAST ||
        !(op_bit(op, &top) & ops))
        return 0;
    *dtype_p = dt;
    *op_p = top;
    *mult_p = mult;
    return 1;
}
