/* Payload checksums (TERSE_CHECKSUM, core/checksum.c): the checksum itself (unit), and
 * corruption that no codec can notice, injected over the real transport (TERSE_FAULT_INJECT):
 * a flipped float byte of the dense algorithm or of an owner's dense result, a sign bitmap, a
 * Top-K value. Without checksums those calls succeed with wrong numbers (checked, so the cases
 * keep testing what they claim); with them every rank fails with TERSE_ERR_CORRUPT naming the
 * sender, outputs and error-feedback buffers untouched, and the next call works.
 * Links the internal library so one process can switch settings between calls. */
#include "../mpi/test_util.h"
#include "cbufs.h"

#include "coll/comm.h" /* next_seq: the call a fault injection names */
#include "core/checksum.h"
#include "core/config.h"

#include <time.h>

/* ---- unit: the checksum (no MPI) ---- */

static int unit_failures;
#define UCHECK(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            unit_failures++;                                                                       \
        }                                                                                          \
    } while (0)

static void random_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)lcg(&seed);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every single-bit flip of @p[0..n) at the sampled bits changes the sum; flipping back
 * restores it. @stride 1: every bit. */
static void flips(unsigned char *p, size_t n, size_t stride, uint64_t seed)
{
    uint64_t ref = terse__checksum(p, n);
    UCHECK(terse__checksum(p, n) == ref, "%zu bytes: not deterministic", n);
    for (size_t bit = seed % stride; bit < 8 * n; bit += stride) {
        p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        uint64_t s = terse__checksum(p, n);
        p[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (s == ref) {
            UCHECK(0, "%zu bytes: flipping bit %zu leaves the sum %016llx", n, bit,
                   (unsigned long long)ref);
            return;
        }
    }
    UCHECK(terse__checksum(p, n) == ref, "%zu bytes: sum changed after flipping back", n);
}

static int unit(void)
{
    enum { SMALL = 257, BIG = (3 << 20) + 5, SPEED = 64 << 20 };
    unsigned char *buf = malloc(BIG + 8);
    /* every bit of every length 0..257 (start address mod 8 varying with the length) */
    for (size_t n = 0; n <= SMALL; n++) {
        unsigned char *p = buf + n % 8;
        random_bytes(p, n, n + 1);
        flips(p, n, 1, 0);
    }
    /* the same bytes at another address: the same sum */
    random_bytes(buf, 300, 7);
    uint64_t at0 = terse__checksum(buf, 257);
    for (int off = 1; off < 8; off++) {
        memmove(buf + off, buf + off - 1, 257);
        UCHECK(terse__checksum(buf + off, 257) == at0, "offset %d: another sum", off);
    }
    /* zeros of different lengths: the length is part of the sum; empty input is a value */
    uint64_t zsum[SMALL + 1];
    memset(buf, 0, SMALL);
    for (size_t n = 0; n <= SMALL; n++) {
        zsum[n] = terse__checksum(n ? buf : NULL, n);
        for (size_t m = 0; m < n; m++)
            UCHECK(zsum[m] != zsum[n], "%zu and %zu zero bytes: the same sum", m, n);
    }
    UCHECK(terse__checksum(NULL, 0) == terse__checksum(buf, 0),
           "empty input: sum depends on the pointer");
    /* a few MiB: sampled single bits (a prime stride walks every word and bit position), and
     * two-bit errors 32 bytes apart (the same lane, the next word) */
    random_bytes(buf, BIG, 99);
    flips(buf, BIG, 12289, 3);
    uint64_t ref = terse__checksum(buf, BIG), s = 5;
    for (int i = 0; i < 2000; i++) {
        size_t a = lcg(&s) % (BIG - 32), b = i % 2 ? a + 32 : lcg(&s) % BIG;
        unsigned ba = 1u << (lcg(&s) % 8), bb = 1u << (lcg(&s) % 8);
        if (a == b)
            continue;
        buf[a] ^= (unsigned char)ba;
        buf[b] ^= (unsigned char)bb;
        UCHECK(terse__checksum(buf, BIG) != ref, "bits at bytes %zu and %zu cancel", a, b);
        buf[a] ^= (unsigned char)ba;
        buf[b] ^= (unsigned char)bb;
    }
    free(buf);
    /* throughput (printed, not checked: sanitizer builds run this too) */
    unsigned char *big = malloc(SPEED);
    random_bytes(big, SPEED, 1);
    for (size_t n = 8192; n <= SPEED; n *= 8192) {
        int reps = (int)(((size_t)1 << 30) / n);
        double best = 1e30;
        uint64_t acc = 0;
        for (int t = 0; t < 3; t++) {
            double t0 = now();
            for (int r = 0; r < reps; r++)
                acc += terse__checksum(big, n);
            double dt = now() - t0;
            best = dt < best ? dt : best;
        }
        printf("checksum of %zu bytes: %.2f GB/s (%016llx)\n", n, (double)n * reps / best / 1e9,
               (unsigned long long)acc);
    }
    free(big);
    printf("%s: %d failure(s)\n", unit_failures ? "FAIL" : "PASS", unit_failures);
    return unit_failures ? 1 : 0;
}

/* ---- over the transport ---- */

static void fill(bufs_t *b, int rank)
{
    for (int j = 0; j < NT; j++) {
        uint64_t s = (uint64_t)(rank * 1000 + j * 17 + 40);
        for (size_t i = 0; i < sizes[j]; i++) {
            b->in[j][i] = ((float)(lcg(&s) % 20001) - 10000.0f) / 1000.0f;
            b->out[j][i] = -12345.0f;
            b->werr[j][i] = -777.0f;
            b->serr[j][i] = (float)(i % 7) * 0.01f; /* same on every rank */
        }
    }
}

static void untouched(const bufs_t *b, const char *what)
{
    for (int j = 0; j < NT; j++)
        for (size_t i = 0; i < sizes[j]; i++) {
            if (b->out[j][i] != -12345.0f || b->werr[j][i] != -777.0f ||
                b->serr[j][i] != (float)(i % 7) * 0.01f) {
                CHECK(0, "%s: tensor %d elem %zu written", what, j, i);
                return;
            }
        }
}

/* Does any rank hold other outputs / worker errors / server errors than @ref? */
static int differs_anywhere(const bufs_t *a, const bufs_t *ref)
{
    int d = 0, any = 0;
    for (int j = 0; j < NT; j++)
        d |= memcmp(a->out[j], ref->out[j], sizes[j] * 4) ||
             memcmp(a->werr[j], ref->werr[j], sizes[j] * 4) ||
             memcmp(a->serr[j], ref->serr[j], sizes[j] * 4);
    MPI_Allreduce(&d, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any;
}

static void set_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    terse__config_reload();
}

/* A communicator takes TERSE_COMPRESSED_ALGO when it is made (its settings snapshot): this
 * test switches the default of one it already has, through the internal settings, and sets
 * the variable too for the communicators made later. */
static void comm_use_algo(terse_comm_h comm, const char *name)
{
    setenv("TERSE_COMPRESSED_ALGO", name, 1);
    terse__config_reload();
    if (terse_compressed_algo_parse(name, &comm->settings.compressed_algo) != TERSE_OK)
        abort();
}

/* Arms the fault injection for this communicator's next call (NULL disarms); every rank sets
 * the same variable. @what: "KIND:FIELDS" without rank and seq. */
static void inject_next(terse_comm_h comm, int rank, const char *what)
{
    char spec[128];
    if (what) {
        const char *colon = strchr(what, ':');
        snprintf(spec, sizeof(spec), "%.*s:rank=%d,seq=%u,%s", (int)(colon - what), what, rank,
                 comm->next_seq, colon + 1);
    }
    set_env("TERSE_FAULT_INJECT", what ? spec : NULL);
}

static int all_ranks(int v)
{
    int all = 0;
    MPI_Allreduce(&v, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}

/* Every rank failed with @want, and its reason contains @needle and @needle2 (may be NULL). */
static void expect_all_fail(terse_comm_h comm, terse_status_t st, terse_status_t want,
                            const char *needle, const char *needle2, const char *what)
{
    const char *err = terse_comm_last_error(comm);
    CHECK(all_ranks(st != TERSE_OK), "%s: some rank did not fail (this rank %s)", what,
          terse_status_name(st));
    CHECK(st == want, "%s: got %s, want %s (%s)", what, terse_status_name(st),
          terse_status_name(want), err);
    CHECK(st == TERSE_OK || strstr(err, needle), "%s: '%s' does not say '%s'", what, err, needle);
    CHECK(st == TERSE_OK || !needle2 || strstr(err, needle2), "%s: '%s' does not say '%s'", what,
          err, needle2);
}

/* Corruption inside values: offsets into a packed message are framing (8 bytes of segment
 * length), the 56-byte codec header, then the first block (src/compress/wire.h): sign's
 * 4-byte scale and its bitmap from byte 68 (the first tensor in id order has 37 elements, so
 * bytes 68..72); Top-K's encoding byte at 64, its values from 65. Owner schedules send each
 * owner only its range: the message to rank 0 (peer=0) starts with that tensor too. Dense
 * messages are float arrays: a multiple of 4 is a value's low mantissa byte, which 0xff keeps
 * finite. The TERSE_CHECKSUM=none run below tells when a layout change moved these. */
typedef struct sum_case {
    const char *algo, *spec;
    int dw;
    const char *fault;
} sum_case_t;

static const sum_case_t cases[] = {
    {"dense", "sign,block=100", 0, "corrupt:at=400,len=1"},                 /* alltoall floats */
    {"dense", "sign,block=100", 1, "corrupt:at=400,len=1,step=1"},          /* owners' results */
    {"sparse_rs_ag", "topk:0.1,block=64", 0, "corrupt:at=40,len=1,step=1"}, /* single-way results */
    {"sign_allgather", "sign,block=100", 1, "corrupt:at=69,len=2"},         /* sign bitmap */
    {"sign_a2a_ag", "sign,block=100", 1, "corrupt:at=69,len=2,peer=0"},     /* sign bitmap */
    {"sparse_allgather", "topk:0.1,block=64", 1, "corrupt:at=69,len=1"},    /* Top-K value */
    {"sparse_rs_ag", "topk:0.1,block=64", 1, "corrupt:at=69,len=1,peer=0"}, /* Top-K value */
};
#define NCASE (int)(sizeof(cases) / sizeof(cases[0]))

static void test_compressed(terse_comm_h comm)
{
    for (int c = 0; c < NCASE; c++) {
        const sum_case_t *k = &cases[c];
        /* not rank 0 where only the message to rank 0 is garbled */
        int sender = strstr(k->fault, "peer=0") ? 1 : (c + 1) % test_size;
        char what[160], needle[32];
        snprintf(what, sizeof(what), "%s %s dw %d, rank %d sends with %s", k->algo, k->spec, k->dw,
                 sender, k->fault);
        snprintf(needle, sizeof(needle), "from rank %d", sender);
        bufs_t ref, b;
        alloc_bufs(&ref);
        alloc_bufs(&b);
        comm_use_algo(comm, k->algo);

        /* the right answer */
        fill(&ref, test_rank);
        const char *ran = "";
        terse_status_t st = run(comm, k->spec, k->dw, &ref, 0, NT, 4, &ran);
        CHECK(st == TERSE_OK, "%s: reference: %s", what, terse_comm_last_error(comm));
        CHECK(!strcmp(ran, k->algo), "%s: ran %s", what, ran);

        /* without checksums the fault goes through unnoticed: this case tests what it says */
        set_env("TERSE_CHECKSUM", "none");
        fill(&b, test_rank);
        inject_next(comm, sender, k->fault);
        st = run(comm, k->spec, k->dw, &b, 0, NT, 4, NULL);
        inject_next(comm, 0, NULL);
        CHECK(all_ranks(st == TERSE_OK), "%s: TERSE_CHECKSUM=none: some rank noticed (%s: %s)",
              what, terse_status_name(st), terse_comm_last_error(comm));
        CHECK(differs_anywhere(&b, &ref), "%s: TERSE_CHECKSUM=none: no rank's result changed",
              what);

        /* with them (the default), every rank fails and nothing is written */
        set_env("TERSE_CHECKSUM", NULL);
        fill(&b, test_rank);
        inject_next(comm, sender, k->fault);
        st = run(comm, k->spec, k->dw, &b, 0, NT, 4, NULL);
        inject_next(comm, 0, NULL);
        expect_all_fail(comm, st, TERSE_ERR_CORRUPT, needle, "payload checksum mismatch", what);
        if (test_rank == 0)
            printf("%s -> %s\n", what, terse_comm_last_error(comm));
        untouched(&b, what);

        /* and the next call gives the right answer */
        fill(&b, test_rank);
        st = run(comm, k->spec, k->dw, &b, 0, NT, 4, NULL);
        CHECK(st == TERSE_OK, "%s: the call after: %s", what, terse_comm_last_error(comm));
        CHECK(!differs_anywhere(&b, &ref), "%s: the call after differs from the reference", what);
        free_bufs(&ref);
        free_bufs(&b);
    }
    comm_use_algo(comm, "auto");
}

/* TERSE_CHECKSUM=all covers the plain collectives: a dense allreduce (recursive doubling for
 * the small count, ring for the large one) with a corrupt byte fails on the ranks that
 * received it, naming the sender; a rank that returns OK has the exact sum. */
static void test_all(terse_comm_h comm)
{
    static const size_t counts[] = {1000, 100000};
    for (int c = 0; c < 2; c++) {
        size_t n = counts[c];
        float *in = malloc(n * 4), *out = malloc(n * 4);
        int sender = 1 % test_size;
        char what[96];
        for (size_t i = 0; i < n; i++)
            in[i] = (float)((i * 7 + (size_t)test_rank * 13) % 101); /* exact sums */
        for (int pass = 0; pass < 3; pass++) {
            static const char *const modes[] = {NULL, "all", "all"};
            int fault = pass < 2;
            snprintf(what, sizeof(what), "allreduce of %zu floats, TERSE_CHECKSUM=%s%s", n,
                     modes[pass] ? modes[pass] : "compressed (default)",
                     fault ? ", a corrupt byte" : "");
            set_env("TERSE_CHECKSUM", modes[pass]);
            if (fault)
                inject_next(comm, sender, "corrupt:at=40,len=1");
            for (size_t i = 0; i < n; i++)
                out[i] = -1.0f;
            terse_status_t st =
                terse_allreduce(comm, in, out, n, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
            inject_next(comm, 0, NULL);
            int exact = st == TERSE_OK;
            for (size_t i = 0; i < n && exact; i++) {
                float want = 0;
                for (int r = 0; r < test_size; r++)
                    want += (float)((i * 7 + (size_t)r * 13) % 101);
                exact = out[i] == want;
            }
            if (pass == 0) {
                /* the premise: plain collectives are not checksummed by default */
                CHECK(all_ranks(st == TERSE_OK), "%s: some rank failed (%s)", what,
                      terse_comm_last_error(comm));
                CHECK(!all_ranks(exact), "%s: every rank has the exact sum", what);
            } else if (pass == 1) {
                char needle[32];
                snprintf(needle, sizeof(needle), "from rank %d", sender);
                const char *err = terse_comm_last_error(comm);
                CHECK(!all_ranks(st == TERSE_OK), "%s: no rank failed", what);
                CHECK(st == TERSE_OK || st == TERSE_ERR_CORRUPT, "%s: %s (%s)", what,
                      terse_status_name(st), err);
                CHECK(st == TERSE_OK || (strstr(err, needle) && strstr(err, "checksum")),
                      "%s: '%s' does not say '%s' and checksum", what, err, needle);
                CHECK(st != TERSE_OK || exact, "%s: returned OK with a wrong sum", what);
                if (st != TERSE_OK && test_rank != sender)
                    printf("rank %d: %s -> %s\n", test_rank, what, err);
            } else {
                CHECK(st == TERSE_OK && exact, "%s: %s (%s)", what, terse_status_name(st),
                      terse_comm_last_error(comm));
            }
        }
        free(in);
        free(out);
    }
    set_env("TERSE_CHECKSUM", NULL);
}

/* Ranks configured differently fail with TERSE_ERR_MISMATCH naming the setting, whether or not
 * the call is checksummed; the communicator works once they agree again. */
static void test_mode(terse_comm_h comm)
{
    bufs_t b;
    alloc_bufs(&b);
    set_env("TERSE_CHECKSUM", test_rank == 0 ? "none" : NULL);
    fill(&b, test_rank);
    terse_status_t st = run(comm, "topk:0.1,block=64", 1, &b, 0, NT, 4, NULL);
    expect_all_fail(comm, st, TERSE_ERR_MISMATCH, "TERSE_CHECKSUM=none",
                    "TERSE_CHECKSUM=compressed", "compressed allreduce, rank 0 without checksums");
    if (test_rank == 0)
        printf("mode mismatch -> %s\n", terse_comm_last_error(comm));
    untouched(&b, "mode mismatch");
    set_env("TERSE_CHECKSUM", test_rank == test_size - 1 ? "all" : NULL);
    st = terse_barrier(comm);
    CHECK(!all_ranks(st == TERSE_OK), "barrier, rank %d with TERSE_CHECKSUM=all: no rank failed",
          test_size - 1);
    CHECK(st == TERSE_OK || st == TERSE_ERR_MISMATCH, "barrier: %s (%s)", terse_status_name(st),
          terse_comm_last_error(comm));
    set_env("TERSE_CHECKSUM", NULL);
    fill(&b, test_rank);
    st = run(comm, "topk:0.1,block=64", 1, &b, 0, NT, 4, NULL);
    CHECK(st == TERSE_OK, "after agreeing again: %s", terse_comm_last_error(comm));
    CHECK(terse_barrier(comm) == TERSE_OK, "barrier after agreeing again: %s",
          terse_comm_last_error(comm));
    free_bufs(&b);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "unit";
    if (!strcmp(what, "unit"))
        return unit();
    terse_comm_h comm = test_init(&argc, &argv);
    if (test_size < 2)
        CHECK(0, "%s needs 2 ranks or more", what);
    else if (!strcmp(what, "compressed"))
        test_compressed(comm);
    else if (!strcmp(what, "all"))
        test_all(comm);
    else if (!strcmp(what, "mode"))
        test_mode(comm);
    else
        CHECK(0, "unknown case %s", what);
    return test_finish(comm);
}
