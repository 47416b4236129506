/* Every dense collective x dtype x op against Open MPI in the same run, plus the check
 * that results are bit-identical on every rank. Usage: test_dense <collective> [max_count] */
#include "test_util.h"

#include <math.h>

static const terse_dtype_t dtypes[] = {TERSE_DTYPE_FLOAT32, TERSE_DTYPE_FLOAT64, TERSE_DTYPE_FLOAT16,
                                       TERSE_DTYPE_BFLOAT16, TERSE_DTYPE_INT8, TERSE_DTYPE_INT16,
                                       TERSE_DTYPE_INT32, TERSE_DTYPE_INT64, TERSE_DTYPE_UINT8};

static MPI_Datatype mpi_type(terse_dtype_t d)
{
    switch (d) {
    case TERSE_DTYPE_FLOAT32: return MPI_FLOAT;
    case TERSE_DTYPE_FLOAT64: return MPI_DOUBLE;
    case TERSE_DTYPE_INT8: return MPI_INT8_T;
    case TERSE_DTYPE_INT16: return MPI_INT16_T;
    case TERSE_DTYPE_INT32: return MPI_INT32_T;
    case TERSE_DTYPE_INT64: return MPI_INT64_T;
    case TERSE_DTYPE_UINT8: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL; /* 16-bit floats: checked against a float reference */
    }
}

static uint32_t hash32(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* Deterministic per (rank, index) values; small integers so integer sums and products stay
 * exact in MPI's reference, and floats that make summation order visible. */
static void fill(void *buf, size_t n, terse_dtype_t d, int rank, terse_op_t op)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t h = hash32(((uint64_t)rank << 40) ^ i);
        int small = (int)(h % 7) - 3; /* -3..3 */
        if (op == TERSE_OP_PROD)
            small = (int)(h % 3) - 1;
        float f = ((float)(h % 100000) / 1000.0f - 50.0f);
        if (op == TERSE_OP_PROD)
            f = 0.5f + (float)(h % 100) / 100.0f;
        switch (d) {
        case TERSE_DTYPE_FLOAT32: ((float *)buf)[i] = f; break;
        case TERSE_DTYPE_FLOAT64: ((double *)buf)[i] = f * 1.000001; break;
        case TERSE_DTYPE_FLOAT16: ((uint16_t *)buf)[i] = (uint16_t)(0x3c00 + (h % 512) - 256 + (h & 0x8000)); break;
        case TERSE_DTYPE_BFLOAT16: ((uint16_t *)buf)[i] = (uint16_t)(0x3f80 + (h % 256) - 128 + (h & 0x8000)); break;
        case TERSE_DTYPE_INT8: ((int8_t *)buf)[i] = (int8_t)small; break;
        case TERSE_DTYPE_INT16: ((int16_t *)buf)[i] = (int16_t)(small * 100); break;
        case TERSE_DTYPE_INT32: ((int32_t *)buf)[i] = small * 100000; break;
        case TERSE_DTYPE_INT64: ((int64_t *)buf)[i] = (int64_t)small * 10000000000ll; break;
        case TERSE_DTYPE_UINT8: ((uint8_t *)buf)[i] = (uint8_t)(h % (op == TERSE_OP_PROD ? 2 : 50)); break;
        default: break;
        }
    }
}

static float half_to_float(uint16_t h, int bf)
{
    if (bf) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    int e = (h >> 10) & 31, m = h & 1023;
    float v = e ? ldexpf(1.0f + m / 1024.0f, e - 15) : ldexpf(m / 1024.0f, -14);
    return (h & 0x8000) ? -v : v;
}

/* Compare terse's result with MPI's: exact for integers and min/max, a relative tolerance
 * for float sums (MPI adds in another order). */
static int compare(const void *got, const void *ref, size_t n, terse_dtype_t d, terse_op_t op)
{
    int exact = !(d == TERSE_DTYPE_FLOAT32 || d == TERSE_DTYPE_FLOAT64) || op == TERSE_OP_MIN ||
                op == TERSE_OP_MAX;
    size_t esize = terse_dtype_size(d);
    if (exact)
        return memcmp(got, ref, n * esize) == 0;
    for (size_t i = 0; i < n; i++) {
        double a = d == TERSE_DTYPE_FLOAT32 ? ((const float *)got)[i] : ((const double *)got)[i];
        double b = d == TERSE_DTYPE_FLOAT32 ? ((const float *)ref)[i] : ((const double *)ref)[i];
        double tol = (d == TERSE_DTYPE_FLOAT32 ? 1e-5 : 1e-12) * (fabs(b) + 1.0) * test_size;
        if (fabs(a - b) > tol) {
            fprintf(stderr, "rank %d: element %zu: terse %.9g mpi %.9g\n", test_rank, i, a, b);
            return 0;
        }
    }
    return 1;
}

static MPI_Op mpi_op(terse_op_t op)
{
    switch (op) {
    case TERSE_OP_MIN: return MPI_MIN;
    case TERSE_OP_MAX: return MPI_MAX;
    case TERSE_OP_PROD: return MPI_PROD;
    default: return MPI_SUM;
    }
}

/* 16-bit floats: the reference reduces in float in rank order and rounds once per step,
 * like terse; we only check closeness plus bit-identity across ranks. */
static void test_allreduce(terse_comm_h comm, size_t count)
{
    void *in = malloc(count * 8 + 8), *out = malloc(count * 8 + 8), *ref = malloc(count * 8 + 8);
    for (size_t di = 0; di < sizeof(dtypes) / sizeof(dtypes[0]); di++) {
        terse_dtype_t d = dtypes[di];
        size_t esize = terse_dtype_size(d);
        for (terse_op_t op = 0; op < TERSE_OP_LAST; op++) {
            fill(in, count, d, test_rank, op);
            memset(out, 0xab, count * esize);
            terse_status_t st = terse_allreduce(comm, in, out, count, d, op);
            CHECK(st == TERSE_OK, "allreduce %s %s count %zu: %s (%s)", terse_dtype_name(d),
                  terse_op_name(op), count, terse_status_string(st), terse_comm_last_error(comm));
            CHECK(test_identical(out, count * esize), "allreduce %s %s count %zu differs across ranks",
                  terse_dtype_name(d), terse_op_name(op), count);
            MPI_Datatype mt = mpi_type(d);
            if (mt != MPI_DATATYPE_NULL) {
                MPI_Allreduce(in, ref, (int)count, mt, mpi_op(op), MPI_COMM_WORLD);
                if (op == TERSE_OP_AVG) {
                    for (size_t i = 0; i < count; i++) {
                        switch (d) {
                        case TERSE_DTYPE_FLOAT32: ((float *)ref)[i] /= (float)test_size; break;
                        case TERSE_DTYPE_FLOAT64: ((double *)ref)[i] /= test_size; break;
                        case TERSE_DTYPE_INT8: ((int8_t *)ref)[i] /= test_size; break;
                        case TERSE_DTYPE_INT16: ((int16_t *)ref)[i] /= test_size; break;
                        case TERSE_DTYPE_INT32: ((int32_t *)ref)[i] /= test_size; break;
                        case TERSE_DTYPE_INT64: ((int64_t *)ref)[i] /= test_size; break;
                        case TERSE_DTYPE_UINT8: ((uint8_t *)ref)[i] /= test_size; break;
                        default: break;
                        }
                    }
                }
                CHECK(compare(out, ref, count, d, op), "allreduce %s %s count %zu differs from MPI",
                      terse_dtype_name(d), terse_op_name(op), count);
            } else if (op == TERSE_OP_SUM && count) {
                /* 16-bit floats: compare with a float MPI reduction, within fp16 rounding. */
                float *fin = malloc(count * 4), *fref = malloc(count * 4);
                int bf = d == TERSE_DTYPE_BFLOAT16;
                for (size_t i = 0; i < count; i++)
                    fin[i] = half_to_float(((uint16_t *)in)[i], bf);
                MPI_Allreduce(fin, fref, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                int ok = 1;
                for (size_t i = 0; i < count && ok; i++) {
                    float g = half_to_float(((uint16_t *)out)[i], bf);
                    ok = fabsf(g - fref[i]) <= (bf ? 0.02f : 0.004f) * test_size * (fabsf(fref[i]) + 1);
                }
                CHECK(ok, "allreduce %s sum count %zu too far from float reference", terse_dtype_name(d), count);
                free(fin);
                free(fref);
            }
            /* in place */
            fill(out, count, d, test_rank, op);
            st = terse_allreduce(comm, TERSE_IN_PLACE, out, count, d, op);
            CHECK(st == TERSE_OK, "in-place allreduce: %s", terse_status_string(st));
            if (mt != MPI_DATATYPE_NULL)
                CHECK(compare(out, ref, count, d, op), "in-place allreduce %s %s count %zu wrong",
                      terse_dtype_name(d), terse_op_name(op), count);
        }
    }
    free(in);
    free(out);
    free(ref);
}

static void test_allgather(terse_comm_h comm, size_t count)
{
    for (size_t di = 0; di < sizeof(dtypes) / sizeof(dtypes[0]); di++) {
        terse_dtype_t d = dtypes[di];
        size_t es = terse_dtype_size(d), total = count * (size_t)test_size;
        char *in = malloc(count * es + 1), *out = malloc(total * es + 1), *ref = malloc(total * es + 1);
        fill(in, count, d, test_rank, TERSE_OP_SUM);
        CHECK(terse_allgather(comm, in, out, count, d) == TERSE_OK, "allgather: %s", terse_comm_last_error(comm));
        MPI_Allgather(in, (int)(count * es), MPI_BYTE, ref, (int)(count * es), MPI_BYTE, MPI_COMM_WORLD);
        CHECK(memcmp(out, ref, total * es) == 0, "allgather %s count %zu wrong", terse_dtype_name(d), count);
        /* allgatherv: rank i contributes count + i elements (0 for the last rank when count is 0) */
        size_t *counts = malloc(sizeof(size_t) * test_size), vt = 0;
        int *ic = malloc(sizeof(int) * test_size), *id = malloc(sizeof(int) * test_size);
        for (int i = 0; i < test_size; i++) {
            counts[i] = count ? count + (size_t)i : (size_t)(i % 2);
            ic[i] = (int)(counts[i] * es);
            id[i] = (int)(vt * es);
            vt += counts[i];
        }
        char *vin = malloc(counts[test_rank] * es + 1), *vout = malloc(vt * es + 1), *vref = malloc(vt * es + 1);
        fill(vin, counts[test_rank], d, test_rank, TERSE_OP_SUM);
        CHECK(terse_allgatherv(comm, vin, vout, counts, NULL, d) == TERSE_OK, "allgatherv: %s", terse_comm_last_error(comm));
        MPI_Allgatherv(vin, ic[test_rank], MPI_BYTE, vref, ic, id, MPI_BYTE, MPI_COMM_WORLD);
        CHECK(memcmp(vout, vref, vt * es) == 0, "allgatherv %s wrong", terse_dtype_name(d));
        free(vin); free(vout); free(vref); free(counts); free(ic); free(id);
        free(in); free(out); free(ref);
    }
}

static void test_bcast(terse_comm_h comm, size_t count)
{
    for (int root = 0; root < test_size; root++) {
        for (size_t di = 0; di < sizeof(dtypes) / sizeof(dtypes[0]); di += 3) {
            terse_dtype_t d = dtypes[di];
            size_t es = terse_dtype_size(d);
            char *buf = malloc(count * es + 1), *ref = malloc(count * es + 1);
            fill(ref, count, d, root, TERSE_OP_SUM);
            if (test_rank == root)
                memcpy(buf, ref, count * es);
            else
                memset(buf, 0, count * es);
            CHECK(terse_bcast(comm, buf, count, d, root) == TERSE_OK, "bcast: %s", terse_comm_last_error(comm));
            CHECK(memcmp(buf, ref, count * es) == 0, "bcast root %d %s count %zu wrong", root, terse_dtype_name(d), count);
            free(buf);
            free(ref);
        }
    }
}

static void test_alltoall(terse_comm_h comm, size_t count)
{
    terse_dtype_t d = TERSE_DTYPE_INT32;
    size_t total = count * (size_t)test_size;
    int32_t *in = malloc(total * 4 + 4), *out = malloc(total * 4 + 4), *ref = malloc(total * 4 + 4);
    for (size_t i = 0; i < total; i++)
        in[i] = (int32_t)(test_rank * 1000000 + i);
    CHECK(terse_alltoall(comm, in, out, count, d) == TERSE_OK, "alltoall: %s", terse_comm_last_error(comm));
    MPI_Alltoall(in, (int)count, MPI_INT32_T, ref, (int)count, MPI_INT32_T, MPI_COMM_WORLD);
    CHECK(memcmp(out, ref, total * 4) == 0, "alltoall count %zu wrong", count);
    /* alltoallv: rank r sends (r + j) % 3 + count elements to rank j */
    size_t *sc = malloc(sizeof(size_t) * test_size), *rc = malloc(sizeof(size_t) * test_size), st = 0, rt = 0;
    int *isc = malloc(4 * test_size), *irc = malloc(4 * test_size), *isd = malloc(4 * test_size), *ird = malloc(4 * test_size);
    for (int j = 0; j < test_size; j++) {
        sc[j] = (size_t)((test_rank + j) % 3) + count;
        rc[j] = (size_t)((j + test_rank) % 3) + count;
        isc[j] = (int)sc[j]; irc[j] = (int)rc[j]; isd[j] = (int)st; ird[j] = (int)rt;
        st += sc[j];
        rt += rc[j];
    }
    int32_t *vin = malloc(st * 4 + 4), *vout = malloc(rt * 4 + 4), *vref = malloc(rt * 4 + 4);
    for (size_t i = 0; i < st; i++)
        vin[i] = (int32_t)(test_rank * 7777 + i);
    CHECK(terse_alltoallv(comm, vin, sc, NULL, vout, rc, NULL, d) == TERSE_OK, "alltoallv: %s", terse_comm_last_error(comm));
    MPI_Alltoallv(vin, isc, isd, MPI_INT32_T, vref, irc, ird, MPI_INT32_T, MPI_COMM_WORLD);
    CHECK(memcmp(vout, vref, rt * 4) == 0, "alltoallv wrong");
    free(in); free(out); free(ref); free(sc); free(rc); free(isc); free(irc); free(isd); free(ird);
    free(vin); free(vout); free(vref);
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const char *what = argc > 1 ? argv[1] : "all";
    size_t big = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    /* 0, 1, 7, not divisible by the rank count, around the small/large switch */
    size_t counts[] = {0, 1, 7, 1000 * (size_t)test_size + 3, 20011, 70001};
    size_t ncounts = sizeof(counts) / sizeof(counts[0]);
    for (size_t i = 0; i < ncounts + (big ? 1 : 0); i++) {
        size_t c = i < ncounts ? counts[i] : big;
        int all = !strcmp(what, "all");
        if (all || !strcmp(what, "allreduce"))
            test_allreduce(comm, c);
        if (all || !strcmp(what, "allgather"))
            test_allgather(comm, c > 100000 ? c / test_size : c);
        if (all || !strcmp(what, "bcast"))
            test_bcast(comm, c);
        if (all || !strcmp(what, "alltoall"))
            test_alltoall(comm, c > 100000 ? c / test_size : c);
        if (all || !strcmp(what, "barrier"))
            CHECK(terse_barrier(comm) == TERSE_OK, "barrier: %s", terse_comm_last_error(comm));
    }
    return test_finish(comm);
}
