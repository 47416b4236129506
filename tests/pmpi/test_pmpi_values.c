/* MPI_Allreduce of every predefined type and SUM/PROD/MIN/MAX at sizes around the threshold,
 * out of place and MPI_IN_PLACE, against exact expected values (small integers, exact in
 * every type and any summation order); random floats bit-identical on every rank; derived
 * datatypes and user ops (which fall back); MPI_Bcast, MPI_Allgather(v). A plain MPI
 * program: mpirun -np N [-x LD_PRELOAD=libterse_pmpi.so] test_pmpi_values */
#include "pmpi_test.h"

#include <math.h>
#include <stdint.h>

typedef enum { K_SIGNED, K_UNSIGNED, K_FLOAT } kind_t;

typedef struct type_desc {
    MPI_Datatype type;
    const char *name;
    size_t size;  /* bytes of one scalar */
    kind_t kind;
    int parts;    /* scalars per element: 2 for complex */
} type_desc_t;

static void store(const type_desc_t *t, void *buf, size_t i, int64_t v)
{
    char *p = (char *)buf + i * t->size;
    if (t->kind == K_FLOAT) {
        if (t->size == 4) { float f = (float)v; memcpy(p, &f, 4); }
        else { double d = (double)v; memcpy(p, &d, 8); }
        return;
    }
    switch (t->size) {
    case 1: { int8_t x = (int8_t)v; memcpy(p, &x, 1); break; }
    case 2: { int16_t x = (int16_t)v; memcpy(p, &x, 2); break; }
    case 4: { int32_t x = (int32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

/* Rank r's scalar i for @p op: small enough that no result overflows int8. */
static int64_t value(const type_desc_t *t, MPI_Op op, int r, size_t i)
{
    int neg = t->kind != K_UNSIGNED;
    if (op == MPI_SUM)
        return (int64_t)((r * 3 + i) % 7) - (neg ? 3 : 0);
    if (op == MPI_PROD)
        return (1 + (int64_t)((r + i) % 2)) * (neg && (i + r) % 3 == 0 ? -1 : 1);
    return (int64_t)((r * 37 + i * 11) % 101) - (neg ? 50 : 0);
}

static int64_t fold(MPI_Op op, int64_t a, int64_t b)
{
    if (op == MPI_SUM) return a + b;
    if (op == MPI_PROD) return a * b;
    if (op == MPI_MIN) return b < a ? b : a;
    return b > a ? b : a;
}

static void check_allreduce(const type_desc_t *t, MPI_Op op, const char *opname, int count,
                            int in_place)
{
    size_t n = (size_t)count * (size_t)t->parts, bytes = n * t->size;
    void *sbuf = malloc(bytes + 1), *rbuf = malloc(bytes + 1), *want = malloc(bytes + 1);
    for (size_t i = 0; i < n; i++) {
        int64_t acc = value(t, op, 0, i);
        for (int r = 1; r < pt_size; r++)
            acc = fold(op, acc, value(t, op, r, i));
        store(t, want, i, acc);
        store(t, in_place ? rbuf : sbuf, i, value(t, op, pt_rank, i));
    }
    int rc = MPI_Allreduce(in_place ? MPI_IN_PLACE : sbuf, rbuf, count, t->type, op,
                           MPI_COMM_WORLD);
    CHECK(rc == MPI_SUCCESS, "%s %s count %d: rc %d", t->name, opname, count, rc);
    size_t bad = n;
    for (size_t i = 0; i < n && bad == n; i++)
        if (memcmp((char *)rbuf + i * t->size, (char *)want + i * t->size, t->size))
            bad = i;
    CHECK(bad == n, "%s %s count %d%s: first wrong element %zu", t->name, opname, count,
          in_place ? " in place" : "", bad);
    free(sbuf);
    free(rbuf);
    free(want);
}

/* Random floats: the sum depends on the order; every rank must still get the same bits. */
static void check_random(MPI_Datatype type, size_t esize, int count)
{
    size_t bytes = (size_t)count * esize;
    char *buf = malloc(bytes), *ref = malloc(bytes);
    srand(1234 + pt_rank);
    for (int i = 0; i < count; i++) {
        double v = (double)rand() / RAND_MAX - 0.5;
        if (esize == 4) { float f = (float)v; memcpy(buf + i * 4, &f, 4); }
        else memcpy(buf + i * 8, &v, 8);
    }
    PMPI_Allreduce(buf, ref, count, type, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, buf, count, type, MPI_SUM, MPI_COMM_WORLD);
    CHECK(pt_identical(buf, bytes, MPI_COMM_WORLD), "random sums of %zu-byte floats differ "
          "across ranks", esize);
    double maxerr = 0;
    for (int i = 0; i < count; i++) {
        double a, b;
        if (esize == 4) { float x, y; memcpy(&x, buf + i * 4, 4); memcpy(&y, ref + i * 4, 4); a = x; b = y; }
        else { memcpy(&a, buf + i * 8, 8); memcpy(&b, ref + i * 8, 8); }
        maxerr = fmax(maxerr, fabs(a - b));
    }
    CHECK(maxerr < (esize == 4 ? 1e-5 : 1e-12), "random sums off by %g", maxerr);
    free(buf);
    free(ref);
}

/* Derived datatypes and user operations are MPI's: still the right answer. MPI defines its
 * own operations on predefined datatypes only, so a derived datatype comes with a user op. */
static void pair_sum(void *in, void *inout, int *len, MPI_Datatype *type)
{
    for (int i = 0; i < 2 * *len; i++)
        ((float *)inout)[i] += ((float *)in)[i];
}

static void float_sum(void *in, void *inout, int *len, MPI_Datatype *type)
{
    for (int i = 0; i < *len; i++)
        ((float *)inout)[i] += ((float *)in)[i];
}

static void check_fallbacks(int count)
{
    float *s = malloc((size_t)count * 4 * sizeof(float)), *r = malloc((size_t)count * 4 * sizeof(float));
    float want = (float)(pt_size * (pt_size - 1) / 2);
    MPI_Datatype pair, strided;
    MPI_Op pair_op, user_op;
    MPI_Type_contiguous(2, MPI_FLOAT, &pair);
    MPI_Type_commit(&pair);
    MPI_Op_create(pair_sum, 1, &pair_op);
    for (int i = 0; i < 2 * count; i++)
        s[i] = (float)pt_rank;
    MPI_Allreduce(s, r, count, pair, pair_op, MPI_COMM_WORLD);
    int bad = 0;
    for (int i = 0; i < 2 * count; i++)
        bad += r[i] != want;
    CHECK(!bad, "contiguous derived type: %d wrong", bad);
    MPI_Op_create(float_sum, 1, &user_op);
    MPI_Allreduce(s, r, 2 * count, MPI_FLOAT, user_op, MPI_COMM_WORLD);
    bad = 0;
    for (int i = 0; i < 2 * count; i++)
        bad += r[i] != want;
    CHECK(!bad, "user op: %d wrong", bad);
    /* Broadcasts move any datatype: a vector with holes must leave the holes alone. */
    MPI_Type_vector(count, 1, 2, MPI_FLOAT, &strided);
    MPI_Type_commit(&strided);
    for (int i = 0; i < 2 * count; i++)
        r[i] = i % 2 ? (float)-pt_rank : (pt_rank == 0 ? (float)i : -1.0f);
    MPI_Bcast(r, 1, strided, 0, MPI_COMM_WORLD);
    bad = 0;
    for (int i = 0; i < 2 * count; i++)
        bad += r[i] != (i % 2 ? (float)-pt_rank : (float)i);
    CHECK(!bad, "strided broadcast: %d wrong", bad);
    MPI_Bcast(s, count, pair, 0, MPI_COMM_WORLD);
    bad = 0;
    for (int i = 0; i < 2 * count; i++)
        bad += s[i] != 0.0f;
    CHECK(!bad, "contiguous derived broadcast: %d wrong", bad);
    MPI_Op_free(&pair_op);
    MPI_Op_free(&user_op);
    MPI_Type_free(&pair);
    MPI_Type_free(&strided);
    free(s);
    free(r);
}

static unsigned char byte_of(int r, size_t i) { return (unsigned char)(r * 31 + i * 7 + 1); }

static void check_moves(size_t bytes)
{
    int n = (int)(bytes / sizeof(int));
    int *buf = malloc((size_t)n * sizeof(int) * (size_t)pt_size + 64);
    for (int root = 0; root < pt_size; root += pt_size > 2 ? pt_size - 1 : 1) {
        for (int i = 0; i < n; i++)
            buf[i] = pt_rank == root ? i * 3 + root : -1;
        MPI_Bcast(buf, n, MPI_INT, root, MPI_COMM_WORLD);
        int bad = 0;
        for (int i = 0; i < n; i++)
            bad += buf[i] != i * 3 + root;
        CHECK(!bad, "bcast of %d ints from %d: %d wrong", n, root, bad);
    }
    unsigned char *mine = malloc(bytes), *all = malloc(bytes * (size_t)pt_size);
    for (size_t i = 0; i < bytes; i++)
        mine[i] = byte_of(pt_rank, i);
    for (int in_place = 0; in_place < 2; in_place++) {
        memset(all, 0, bytes * (size_t)pt_size);
        if (in_place)
            memcpy(all + bytes * (size_t)pt_rank, mine, bytes);
        MPI_Allgather(in_place ? MPI_IN_PLACE : mine, (int)bytes, MPI_BYTE, all, (int)bytes,
                      MPI_BYTE, MPI_COMM_WORLD);
        int bad = 0;
        for (int r = 0; r < pt_size; r++)
            for (size_t i = 0; i < bytes; i++)
                bad += all[(size_t)r * bytes + i] != byte_of(r, i);
        CHECK(!bad, "allgather%s of %zu bytes: %d wrong", in_place ? " in place" : "", bytes, bad);
    }
    /* allgatherv: rank r gives r+1 halves of the size, placed in reverse order with gaps. */
    int *counts = malloc(sizeof(int) * (size_t)pt_size), *displs = malloc(sizeof(int) * (size_t)pt_size);
    size_t total = 0;
    for (int r = pt_size - 1; r >= 0; r--) {
        counts[r] = (int)((size_t)(r + 1) * bytes / 2 / sizeof(double));
        displs[r] = (int)total + 3;
        total += (size_t)counts[r] + 3;
    }
    double *gv = malloc(total * sizeof(double)), *sv = malloc((size_t)counts[pt_rank] * sizeof(double));
    for (int i = 0; i < counts[pt_rank]; i++)
        sv[i] = pt_rank * 1000.0 + i;
    for (size_t i = 0; i < total; i++)
        gv[i] = -7.0;
    MPI_Allgatherv(sv, counts[pt_rank], MPI_DOUBLE, gv, counts, displs, MPI_DOUBLE, MPI_COMM_WORLD);
    int bad = 0;
    for (int r = 0; r < pt_size; r++) {
        for (int i = 0; i < counts[r]; i++)
            bad += gv[displs[r] + i] != r * 1000.0 + i;
        for (int g = 1; g <= 3; g++)
            bad += gv[displs[r] - g] != -7.0;
    }
    CHECK(!bad, "allgatherv around %zu bytes: %d wrong", bytes, bad);
    free(gv); free(sv); free(counts); free(displs); free(mine); free(all); free(buf);
}

int main(int argc, char **argv)
{
    pt_init(&argc, &argv, MPI_THREAD_SINGLE);
    const type_desc_t types[] = {
        {MPI_FLOAT, "float", 4, K_FLOAT, 1},
        {MPI_DOUBLE, "double", 8, K_FLOAT, 1},
        {MPI_C_FLOAT_COMPLEX, "float complex", 4, K_FLOAT, 2},
        {MPI_C_DOUBLE_COMPLEX, "double complex", 8, K_FLOAT, 2},
        {MPI_SIGNED_CHAR, "signed char", 1, K_SIGNED, 1},
        {MPI_UNSIGNED_CHAR, "unsigned char", 1, K_UNSIGNED, 1},
        {MPI_INT8_T, "int8_t", 1, K_SIGNED, 1},
        {MPI_UINT8_T, "uint8_t", 1, K_UNSIGNED, 1},
        {MPI_SHORT, "short", sizeof(short), K_SIGNED, 1},
        {MPI_UNSIGNED_SHORT, "unsigned short", sizeof(short), K_UNSIGNED, 1},
        {MPI_INT16_T, "int16_t", 2, K_SIGNED, 1},
        {MPI_UINT16_T, "uint16_t", 2, K_UNSIGNED, 1},
        {MPI_INT, "int", sizeof(int), K_SIGNED, 1},
        {MPI_UNSIGNED, "unsigned", sizeof(int), K_UNSIGNED, 1},
        {MPI_INT32_T, "int32_t", 4, K_SIGNED, 1},
        {MPI_UINT32_T, "uint32_t", 4, K_UNSIGNED, 1},
        {MPI_LONG, "long", sizeof(long), K_SIGNED, 1},
        {MPI_UNSIGNED_LONG, "unsigned long", sizeof(long), K_UNSIGNED, 1},
        {MPI_LONG_LONG, "long long", sizeof(long long), K_SIGNED, 1},
        {MPI_UNSIGNED_LONG_LONG, "unsigned long long", sizeof(long long), K_UNSIGNED, 1},
        {MPI_INT64_T, "int64_t", 8, K_SIGNED, 1},
        {MPI_UINT64_T, "uint64_t", 8, K_UNSIGNED, 1},
    };
    const MPI_Op ops[] = {MPI_SUM, MPI_PROD, MPI_MIN, MPI_MAX};
    const char *opnames[] = {"sum", "prod", "min", "max"};
    size_t thr = pt_threshold();
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        size_t el = types[t].size * (size_t)types[t].parts;
        /* Just below, at and above the threshold, a large call, and a tiny one. */
        int counts[] = {(int)(thr / el) - 1, (int)(thr / el), (int)(thr / el) + 1,
                        (int)((1u << 20) / el) + 3, 3};
        for (int o = 0; o < 4; o++) {
            if (types[t].parts == 2 && ops[o] != MPI_SUM)
                continue; /* complex numbers have no order, and PROD is not elementwise */
            for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
                for (int ip = 0; ip < 2; ip++)
                    if (counts[c] > 0)
                        check_allreduce(&types[t], ops[o], opnames[o], counts[c], ip);
        }
    }
    check_random(MPI_FLOAT, 4, (1 << 18) + 5);
    check_random(MPI_DOUBLE, 8, (1 << 17) + 5);
    check_fallbacks((int)(thr / 4) + 10);
    check_moves(thr);
    check_moves(thr * 8 + 40);
    return pt_finish();
}
