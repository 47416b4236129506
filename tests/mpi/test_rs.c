/* reduce_scatter, reduce_scatter_v and reduce: every dtype and op against an exact reference
 * (data whose reduction is exact in any order), bit-identity with terse_allreduce's slice on
 * data where the order of operands shows, in place, zero and uneven counts, mismatches.
 * Usage: test_rs values|mismatch */
#include "test_util.h"

#include <math.h>

static const terse_dtype_t dtypes[] = {TERSE_DTYPE_FLOAT32, TERSE_DTYPE_FLOAT64, TERSE_DTYPE_FLOAT16,
                                       TERSE_DTYPE_BFLOAT16, TERSE_DTYPE_INT8, TERSE_DTYPE_INT16,
                                       TERSE_DTYPE_INT32, TERSE_DTYPE_INT64, TERSE_DTYPE_UINT8};
#define NDTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

static uint32_t hash32(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* Round-to-nearest-even float -> IEEE half (finite values in half's range) and -> bfloat16. */
static uint16_t to_half(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    float a = fabsf(f);
    if (a == 0.0f)
        return sign;
    int e;
    float m = frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    int E = e - 1 + 15;
    if (E <= 0)
        return (uint16_t)(sign | (uint16_t)nearbyintf(a * 16777216.0f));
    int q = (int)nearbyintf(m * 2048.0f);
    if (q == 2048) {
        q = 1024;
        E++;
    }
    return (uint16_t)(sign | (E << 10) | (q - 1024));
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Element @i of rank @rank's input as a number. exact: small integers (products of -1, 1, 2)
 * whose reduction is exact in any order; otherwise values where the order shows. */
static double value(int rank, size_t i, terse_op_t op, int exact)
{
    uint32_t h = hash32(((uint64_t)rank << 40) ^ i);
    if (!exact)
        return op == TERSE_OP_PROD ? 0.5 + (h % 1000) / 1000.0 : (h % 100000) / 1000.0 - 50.0;
    if (op == TERSE_OP_PROD)
        return (int)(h % 4) - 1 == 0 ? 2 : (int)(h % 4) - 1; /* -1, 1, 2 (and 2) */
    return (int)(h % 7) - 3;
}

static void store(void *buf, size_t i, terse_dtype_t d, double v)
{
    switch (d) {
    case TERSE_DTYPE_FLOAT32: ((float *)buf)[i] = (float)v; break;
    case TERSE_DTYPE_FLOAT64: ((double *)buf)[i] = v; break;
    case TERSE_DTYPE_FLOAT16: ((uint16_t *)buf)[i] = to_half((float)v); break;
    case TERSE_DTYPE_BFLOAT16: ((uint16_t *)buf)[i] = to_bf16((float)v); break;
    case TERSE_DTYPE_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
    case TERSE_DTYPE_INT16: ((int16_t *)buf)[i] = (int16_t)v; break;
    case TERSE_DTYPE_INT32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case TERSE_DTYPE_INT64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case TERSE_DTYPE_UINT8: ((uint8_t *)buf)[i] = (uint8_t)(v < 0 ? -v : v); break;
    default: break;
    }
}

static int is_int(terse_dtype_t d)
{
    return d >= TERSE_DTYPE_INT8;
}

static void fill(void *buf, size_t n, terse_dtype_t d, int rank, terse_op_t op, int exact)
{
    for (size_t i = 0; i < n; i++)
        store(buf, i, d, value(rank, i, op, exact || is_int(d)));
}

/* The exact reduction over all ranks of element i (exact data), stored as dtype @d. AVG: the
 * sum (exact) divided once in the type, as terse__reduce_avg_finish does. */
static void reference(void *ref, size_t n, terse_dtype_t d, terse_op_t op)
{
    for (size_t i = 0; i < n; i++) {
        double acc = 0;
        for (int r = 0; r < test_size; r++) {
            double v = value(r, i, op, 1);
            if (d == TERSE_DTYPE_UINT8)
                v = fabs(v);
            if (r == 0)
                acc = v;
            else if (op == TERSE_OP_PROD)
                acc *= v;
            else if (op == TERSE_OP_MIN)
                acc = v < acc ? v : acc;
            else if (op == TERSE_OP_MAX)
                acc = v > acc ? v : acc;
            else
                acc += v;
        }
        if (op == TERSE_OP_AVG) {
            if (is_int(d))
                acc = trunc(acc / test_size);
            else if (d == TERSE_DTYPE_FLOAT64)
                acc = acc / test_size;
            else
                acc = (float)acc / (float)test_size;
        }
        store(ref, i, d, acc);
    }
}

/* Per-rank counts of the v variant: uneven, and zero for every third rank. */
static size_t v_count(size_t c, int i)
{
    return i % 3 == 1 ? 0 : c + (size_t)(i * 5) % 11;
}

/* One (dtype, op, per-rank count): the three collectives, out of place and in place, against
 * the allreduce of the same input; @exact: also against the exact reference. */
static void check_case(terse_comm_h comm, terse_dtype_t d, terse_op_t op, size_t c, int exact)
{
    size_t es = terse_dtype_size(d), p = (size_t)test_size, r = (size_t)test_rank;
    size_t counts[8], displ[8], total = 0;
    for (int i = 0; i < test_size; i++) {
        counts[i] = v_count(c, i);
        displ[i] = total;
        total += counts[i];
    }
    size_t big = (c * p > total ? c * p : total) + 1;
    char *in = malloc(big * es), *ar = malloc(big * es), *out = malloc(big * es);
    char *ref = malloc(big * es), *buf = malloc(big * es);
    const char *what = terse_dtype_name(d), *opn = terse_op_name(op);
    terse_status_t st;
    int root = (int)((c + (size_t)d) % p);
    for (int v = 0; v < 2; v++) {
        size_t n = v ? total : c * p, mlo = v ? displ[r] : c * r, mn = v ? counts[r] : c;
        fill(in, n, d, test_rank, op, exact);
        st = terse_allreduce(comm, in, ar, n, d, op);
        CHECK(st == TERSE_OK, "allreduce %s %s: %s", what, opn, terse_comm_last_error(comm));
        if (exact) {
            reference(ref, n, d, op);
            CHECK(!memcmp(ar, ref, n * es), "allreduce %s %s n %zu != exact reference", what, opn, n);
        }
        memset(out, 0xab, big * es);
        st = v ? terse_reduce_scatter_v(comm, in, out, counts, d, op)
               : terse_reduce_scatter(comm, in, out, c, d, op);
        CHECK(st == TERSE_OK && !memcmp(out, ar + mlo * es, mn * es),
              "reduce_scatter%s %s %s c %zu: %s, %s", v ? "_v" : "", what, opn, c,
              terse_status_name(st), terse_comm_last_error(comm));
        memcpy(buf, in, n * es);
        st = v ? terse_reduce_scatter_v(comm, TERSE_IN_PLACE, buf, counts, d, op)
               : terse_reduce_scatter(comm, TERSE_IN_PLACE, buf, c, d, op);
        CHECK(st == TERSE_OK && !memcmp(buf + mlo * es, ar + mlo * es, mn * es),
              "in-place reduce_scatter%s %s %s c %zu: %s, %s", v ? "_v" : "", what, opn, c,
              terse_status_name(st), terse_comm_last_error(comm));
        /* reduce of the same vector; the in-place variant on every rank */
        memset(out, 0xab, big * es);
        st = terse_reduce(comm, in, test_rank == root ? out : NULL, n, d, op, root);
        CHECK(st == TERSE_OK && (test_rank != root || !memcmp(out, ar, n * es)),
              "reduce %s %s n %zu root %d: %s, %s", what, opn, n, root, terse_status_name(st),
              terse_comm_last_error(comm));
        memcpy(buf, in, n * es);
        st = terse_reduce(comm, TERSE_IN_PLACE, buf, n, d, op, root);
        CHECK(st == TERSE_OK && (test_rank != root || !memcmp(buf, ar, n * es)),
              "in-place reduce %s %s n %zu: %s", what, opn, n, terse_comm_last_error(comm));
    }
    free(in); free(ar); free(out); free(ref); free(buf);
}

static void test_values(terse_comm_h comm)
{
    /* per-rank counts: 0, 1, 7, not divisible, and large enough for the ring */
    size_t cs[] = {0, 1, 7, 1003, 20011};
    for (size_t k = 0; k < sizeof(cs) / sizeof(cs[0]); k++)
        for (size_t di = 0; di < NDTYPES; di++)
            for (terse_op_t op = 0; op < TERSE_OP_LAST; op++) {
                check_case(comm, dtypes[di], op, cs[k], 1);
                if (!is_int(dtypes[di]))
                    check_case(comm, dtypes[di], op, cs[k], 0);
            }
    /* nonblocking: two reduce_scatters in flight at once */
    float a[64], b[64], oa[64], ob[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = (float)(test_rank + i);
    size_t c = 64 / (size_t)test_size;
    terse_request_h ra, rb;
    CHECK(terse_ireduce_scatter(comm, a, oa, c, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM, &ra) == TERSE_OK &&
              terse_ireduce(comm, b, ob, 64, TERSE_DTYPE_FLOAT32, TERSE_OP_MAX, 0, &rb) == TERSE_OK,
          "posting: %s", terse_comm_last_error(comm));
    CHECK(terse_wait(rb) == TERSE_OK && terse_wait(ra) == TERSE_OK, "waiting: %s",
          terse_comm_last_error(comm));
    CHECK(oa[0] == (float)(test_size * (test_size - 1) / 2 + test_size * (int)c * test_rank),
          "nonblocking reduce_scatter: %g", oa[0]);
    CHECK(test_rank != 0 || ob[3] == (float)(test_size - 1 + 3), "nonblocking reduce: %g", ob[3]);
    CHECK(getenv("TERSE_ALLREDUCE_ALGO") || !strcmp(terse_request_algorithm(ra), "recursive_doubling"),
          "algorithm %s", terse_request_algorithm(ra));
    terse_request_free(ra);
    terse_request_free(rb);
}

static void expect_all_fail(terse_comm_h comm, terse_status_t st, terse_status_t want,
                            const char *what)
{
    int ok = st == want, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CHECK(all, "%s: some rank did not get %s (this rank: %s, %s)", what, terse_status_name(want),
          terse_status_name(st), terse_comm_last_error(comm));
}

/* After a failed call the communicator still works: a reduce_scatter and a reduce. */
static void expect_works(terse_comm_h comm, const char *after)
{
    int32_t in[40], out[40];
    for (int i = 0; i < 40; i++)
        in[i] = test_rank + i;
    terse_status_t st = terse_reduce_scatter(comm, in, out, 40 / (size_t)test_size,
                                             TERSE_DTYPE_INT32, TERSE_OP_SUM);
    int c = 40 / test_size, exp = test_size * (test_size - 1) / 2 + test_size * c * test_rank;
    CHECK(st == TERSE_OK && out[0] == exp, "reduce_scatter after %s: %s (%s)", after,
          terse_status_name(st), terse_comm_last_error(comm));
    st = terse_reduce(comm, in, out, 40, TERSE_DTYPE_INT32, TERSE_OP_MIN, test_size - 1);
    CHECK(st == TERSE_OK && (test_rank != test_size - 1 || out[1] == 1), "reduce after %s: %s",
          after, terse_comm_last_error(comm));
}

static void test_mismatch(terse_comm_h comm)
{
    static float in[1 << 17], out[1 << 17];
    int last = test_rank == test_size - 1;
    terse_status_t st;
    /* per-rank count differs: small (recursive doubling) and large (ring) */
    size_t sizes[] = {3, 20000};
    for (int k = 0; k < 2; k++) {
        st = terse_reduce_scatter(comm, in, out, sizes[k] + (size_t)last, TERSE_DTYPE_FLOAT32,
                                  TERSE_OP_SUM);
        expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "reduce_scatter count");
        expect_works(comm, "count mismatch");
        size_t counts[8] = {5, 0, 7, 20000, 1, 2, 3, 4};
        if (last)
            counts[0] = 6;
        st = terse_reduce_scatter_v(comm, in, out, counts, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
        expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "reduce_scatter_v counts");
        expect_works(comm, "counts mismatch");
        st = terse_reduce(comm, in, out, sizes[k], TERSE_DTYPE_FLOAT32, TERSE_OP_SUM, last ? 0 : 1);
        expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "reduce root");
        expect_works(comm, "root mismatch");
        st = terse_reduce_scatter(comm, in, out, sizes[k],
                                  last ? TERSE_DTYPE_INT32 : TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
        expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "reduce_scatter dtype");
        expect_works(comm, "dtype mismatch");
        st = terse_reduce(comm, in, out, sizes[k], TERSE_DTYPE_FLOAT32,
                          last ? TERSE_OP_MAX : TERSE_OP_SUM, 0);
        expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "reduce op");
        expect_works(comm, "op mismatch");
    }
    /* reduce_scatter against reduce of the same size */
    st = last ? terse_reduce(comm, in, out, 8 * (size_t)test_size, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM, 0)
              : terse_reduce_scatter(comm, in, out, 8, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "collective mismatch");
    expect_works(comm, "collective mismatch");
    /* invalid arguments on one rank: announced, nobody waits for a timeout */
    st = terse_reduce(comm, in, out, 16, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM, last ? test_size : 0);
    expect_all_fail(comm, st, TERSE_ERR_INVALID_ARG, "bad root on one rank");
    expect_works(comm, "bad root");
    st = terse_reduce_scatter(comm, in, last ? NULL : out, 4, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    expect_all_fail(comm, st, TERSE_ERR_INVALID_ARG, "NULL receive buffer on one rank");
    expect_works(comm, "NULL buffer");
    st = terse_reduce_scatter_v(comm, in, out, last ? NULL : (size_t[8]){1, 1, 1, 1, 1, 1, 1, 1},
                                TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    expect_all_fail(comm, st, TERSE_ERR_INVALID_ARG, "NULL counts on one rank");
    expect_works(comm, "NULL counts");
    st = terse_reduce_scatter(comm, in, out, 4, TERSE_DTYPE_FLOAT32, last ? (terse_op_t)9 : TERSE_OP_SUM);
    expect_all_fail(comm, st, TERSE_ERR_INVALID_ARG, "bad op on one rank");
    expect_works(comm, "bad op");
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    const char *what = argc > 1 ? argv[1] : "values";
    if (!strcmp(what, "values"))
        test_values(comm);
    else if (!strcmp(what, "mismatch"))
        test_mismatch(comm);
    else
        CHECK(0, "unknown test %s", what);
    return test_finish(comm);
}
