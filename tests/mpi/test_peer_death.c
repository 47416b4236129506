/* A rank that dies mid-run: the survivors fail with an error naming it (peer failed), within
 * the timeout, never hang, and leave their buffers and error-feedback state as they were.
 * Launched without MPI through the environment rendezvous (TERSE_RANK/TERSE_SIZE/
 * TERSE_ROOT_ADDR, see run_local_ranks.sh), which this also tests. The last rank dies:
 *   test_peer_death                      between two dense allreduces (_exit)
 *   test_peer_death compressed SPEC STEP  SIGKILL inside a large compressed allreduce, right
 *                                        after posting its first send of round STEP
 *                                        (TERSE_FAULT_INJECT=kill, the engine's test hook)
 *   test_peer_death ef SPEC STEP          the same inside terse_ef_exchange
 *   test_peer_death model SPEC STEP       the same inside the model-level step (terse_model_*),
 *                                        in its second bucket's exchange, after the first
 *                                        bucket's succeeded (its e_s must be rolled back)
 *   test_peer_death thread SPEC           a thread SIGKILLs the process while the main thread
 *                                        runs EF exchanges in a loop (death at any point)
 * The algorithm comes from TERSE_COMPRESSED_ALGO; TERSE_TEST_MAY_DIE tells the launcher. */
#include <terse/terse.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NT 2
#define N  (1u << 20) /* elements per tensor: 4 MiB, messages go by rendezvous */

static int rank, size, failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", rank, __FILE__, __LINE__,       \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fill(float *v, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((int)(s >> 40) % 2001 - 1000) / 100.0f;
    }
}

static int all_equal(const float *v, size_t n, float x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != x)
            return 0;
    return 1;
}

/* Does @msg name rank @r as dead ("rank 2 died", "ranks 0, 2 died": a survivor that looks
 * late also finds the peers that finished and left)? */
static int names_dead(const char *msg, int r)
{
    for (const char *p = strstr(msg, "rank"); p; p = strstr(p + 1, "rank")) {
        const char *list = p + 4 + (p[4] == 's');
        size_t n = strspn(list, "0123456789, ");
        if (strncmp(list + n, "died", 4) != 0)
            continue;
        for (const char *q = list; q < list + n;) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q) {
                q++;
                continue;
            }
            if (x == r)
                return 1;
            q = end;
        }
    }
    return 0;
}

/* What a survivor must see from the call the last rank died in. */
static void expect_peer_failed(terse_comm_h comm, terse_status_t st, double t0, const char *what)
{
    const char *why = terse_comm_last_error(comm);
    double limit = getenv("TERSE_TIMEOUT") ? atof(getenv("TERSE_TIMEOUT")) : 60.0;
    CHECK(st == TERSE_ERR_PEER_FAILED, "%s: %s (%s)", what, terse_status_name(st), why);
    CHECK(names_dead(why, size - 1), "%s: '%s' does not name rank %d as dead", what, why, size - 1);
    CHECK(now() - t0 < limit, "%s: took %.1f s, timeout %.0f s", what, now() - t0, limit);
    printf("rank %d: %s: %s after %.2f s: %s\n", rank, what, terse_status_name(st), now() - t0, why);
}

/* Survivors wait for each other before leaving: a survivor that exits early looks dead to
 * those still diagnosing the real death (files in the launcher's TERSE_TEST_SYNC_DIR). */
static void survivors_sync(void)
{
    const char *dir = getenv("TERSE_TEST_SYNC_DIR");
    char path[512];
    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/done.%d", dir, rank);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    for (double t0 = now(); now() - t0 < 60.0; usleep(10000)) {
        int n = 0;
        for (int r = 0; r < size - 1; r++) {
            snprintf(path, sizeof(path), "%s/done.%d", dir, r);
            n += access(path, F_OK) == 0;
        }
        if (n == size - 1)
            return;
    }
    CHECK(0, "the other survivors never finished");
}

/* later calls fail fast: the communicator is broken */
static void expect_broken(terse_comm_h comm)
{
    double t0 = now();
    terse_status_t st = terse_barrier(comm);
    CHECK(st == TERSE_ERR_PEER_FAILED && now() - t0 < 1.0, "barrier after the death: %s in %.2f s",
          terse_status_name(st), now() - t0);
}

static int mode_dense(terse_comm_h comm)
{
    float v[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (float)rank;
    if (rank == size - 1)
        _exit(0); /* dies without a word */
    double t0 = now();
    terse_status_t st = terse_allreduce(comm, v, out, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    expect_peer_failed(comm, st, t0, "allreduce");
    expect_broken(comm);
    return 0;
}

typedef struct bufs {
    float *in[NT], *out[NT], *werr[NT], *serr[NT];
} bufs_t;

static terse_status_t compressed(terse_comm_h comm, const terse_compressor_t *c, bufs_t *b)
{
    terse_ctensor_t t[NT];
    for (int j = 0; j < NT; j++)
        t[j] = (terse_ctensor_t){.id = (uint32_t)j + 1, .count = N, .in = b->in[j], .out = b->out[j],
                                 .worker_error = b->werr[j], .server_error = b->serr[j]};
    terse_callreduce_params_t p = {.field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY |
                                                 TERSE_CALLREDUCE_FIELD_STEP,
                                   .compressor = c, .tensors = t, .ntensors = NT,
                                   .double_way = 1, .step = 1};
    return terse_compressed_allreduce(comm, &p);
}

/* seq 1: a good call; seq 2: the last rank dies inside it */
static int mode_compressed(terse_comm_h comm, const terse_compressor_t *c)
{
    bufs_t b;
    for (int j = 0; j < NT; j++) {
        b.in[j] = malloc(N * 4), b.out[j] = malloc(N * 4);
        b.werr[j] = malloc(N * 4), b.serr[j] = calloc(N, 4);
        fill(b.in[j], N, (uint64_t)(rank * 7 + j));
    }
    terse_status_t st = compressed(comm, c, &b);
    CHECK(st == TERSE_OK, "first compressed allreduce: %s", terse_comm_last_error(comm));
    for (int j = 0; j < NT; j++) {
        fill(b.in[j], N, (uint64_t)(rank * 7 + j + 100));
        for (size_t i = 0; i < N; i++)
            b.out[j][i] = -1.0f, b.werr[j][i] = -2.0f, b.serr[j][i] = -3.0f;
    }
    double t0 = now();
    st = compressed(comm, c, &b);
    if (rank == size - 1) {
        fprintf(stderr, "rank %d: survived its own death (%s)\n", rank, terse_status_name(st));
        return 3;
    }
    expect_peer_failed(comm, st, t0, "compressed allreduce");
    for (int j = 0; j < NT; j++)
        CHECK(all_equal(b.out[j], N, -1.0f) && all_equal(b.werr[j], N, -2.0f) &&
                  all_equal(b.serr[j], N, -3.0f),
              "tensor %d: outputs or errors written by the failed call", j);
    expect_broken(comm);
    return 0;
}

static terse_ef_h make_ef(terse_comm_h comm, const terse_compressor_t *c)
{
    static const uint32_t ids[NT] = {1, 2};
    static const size_t counts[NT] = {N, N};
    terse_ef_params_t p = {.field_mask = TERSE_EF_FIELD_DOUBLE_WAY, .mode = TERSE_EF_MODE_SAEF,
                           .compressor = c, .ntensors = NT, .ids = ids, .counts = counts,
                           .double_way = 1};
    terse_ef_h ef = NULL;
    CHECK(terse_ef_create(comm, &p, &ef) == TERSE_OK, "ef create");
    return ef;
}

typedef struct ef_io {
    float *d[NT], *u[NT];
    size_t len;
    uint8_t *before, *after;
} ef_io_t;

static void ef_io_init(ef_io_t *io, terse_ef_h ef)
{
    for (int j = 0; j < NT; j++)
        io->d[j] = malloc(N * 4), io->u[j] = malloc(N * 4);
    io->len = terse_ef_save_size(ef);
    io->before = malloc(io->len);
    io->after = malloc(io->len);
}

static terse_status_t ef_step(terse_ef_h ef, ef_io_t *io, int t)
{
    size_t w;
    for (int j = 0; j < NT; j++) {
        fill(io->d[j], N, (uint64_t)(rank * 131 + j * 17 + t));
        for (size_t i = 0; i < N; i++)
            io->u[j][i] = -5.0f;
    }
    terse_ef_save(ef, io->before, io->len, &w);
    return terse_ef_exchange(ef, (const float *const *)io->d, io->u);
}

/* The failed exchange left everything as it was before it. */
static void ef_unchanged(terse_ef_h ef, ef_io_t *io, uint64_t step)
{
    size_t w;
    terse_ef_save(ef, io->after, io->len, &w);
    CHECK(!memcmp(io->before, io->after, io->len), "EF state changed by the failed exchange");
    CHECK(terse_ef_step(ef) == step, "EF step %llu, expected %llu",
          (unsigned long long)terse_ef_step(ef), (unsigned long long)step);
    for (int j = 0; j < NT; j++)
        CHECK(all_equal(io->u[j], N, -5.0f), "tensor %d: update written by the failed exchange", j);
}

/* seq 1: a good exchange; seq 2: the last rank dies inside it */
static int mode_ef(terse_comm_h comm, const terse_compressor_t *c)
{
    terse_ef_h ef = make_ef(comm, c);
    ef_io_t io;
    ef_io_init(&io, ef);
    terse_status_t st = ef_step(ef, &io, 0);
    CHECK(st == TERSE_OK, "first exchange: %s", terse_comm_last_error(comm));
    double t0 = now();
    st = ef_step(ef, &io, 1);
    if (rank == size - 1) {
        fprintf(stderr, "rank %d: survived its own death (%s)\n", rank, terse_status_name(st));
        return 3;
    }
    expect_peer_failed(comm, st, t0, "ef exchange");
    ef_unchanged(ef, &io, 1);
    expect_broken(comm);
    terse_ef_destroy(ef);
    return 0;
}

/* seq 1: set_point's digest allgather; seq 2: bucket 0 (a good exchange); seq 3: bucket 1, the
 * last rank dies inside it. The survivors' parameters go back to x_{t+1/2}, the state (x_t,
 * e_k, e_s: bucket 0 had written its e_s) is as before the step. */
static int mode_model(terse_comm_h comm, const terse_compressor_t *c)
{
    static const size_t ends[NT] = {1, 2};
    terse_model_tensor_t ts[NT] = {{1, N, TERSE_DTYPE_FLOAT32}, {2, N, TERSE_DTYPE_FLOAT32}};
    terse_model_params_t p = {.field_mask = TERSE_MODEL_FIELD_DOUBLE_WAY | TERSE_MODEL_FIELD_BUCKETS,
                              .mode = TERSE_EF_MODE_SAEF, .compressor = c, .ntensors = NT,
                              .tensors = ts, .double_way = 1, .nbuckets = NT, .bucket_end = ends};
    terse_model_h m = NULL;
    CHECK(terse_model_create(comm, &p, &m) == TERSE_OK, "model create");
    float *prm[NT], *xh[NT];
    for (int j = 0; j < NT; j++) {
        prm[j] = malloc(N * 4), xh[j] = malloc(N * 4);
        fill(prm[j], N, (uint64_t)(j * 17)); /* the same on every rank: a consensus model */
    }
    CHECK(terse_model_set_point(m, (const void *const *)prm) == TERSE_OK, "set_point: %s",
          terse_comm_last_error(comm));
    size_t len = terse_model_save_size(m), w;
    uint8_t *before = malloc(len), *after = malloc(len);
    terse_model_save(m, before, len, &w);
    for (int j = 0; j < NT; j++) {
        memcpy(xh[j], prm[j], N * 4);
        fill(prm[j], N, (uint64_t)(rank * 131 + j)); /* x' */
    }
    double t0 = now();
    terse_status_t st = terse_model_post(m, 0, (void *const *)prm);
    if (st == TERSE_OK)
        st = terse_model_post(m, 1, (void *const *)prm);
    if (st == TERSE_OK)
        st = terse_model_finish(m, (void *const *)prm);
    if (rank == size - 1) {
        fprintf(stderr, "rank %d: survived its own death (%s)\n", rank, terse_status_name(st));
        return 3;
    }
    expect_peer_failed(comm, st, t0, "model step");
    terse_model_save(m, after, len, &w);
    CHECK(!memcmp(before, after, len), "model state changed by the failed step");
    CHECK(terse_model_step(m) == 0, "model step count moved");
    for (int j = 0; j < NT; j++)
        CHECK(!memcmp(prm[j], xh[j], N * 4), "tensor %d: parameters not back at x_half", j);
    expect_broken(comm);
    terse_model_destroy(m);
    return 0;
}

static void *killer(void *arg)
{
    usleep((useconds_t)(uintptr_t)arg);
    raise(SIGKILL);
    return NULL;
}

/* The last rank dies at a moment nobody chose: each survivor either completed the exchange
 * it was in (state advanced) or failed it with the state as it was; later calls fail fast. */
static int mode_thread(terse_comm_h comm, const terse_compressor_t *c)
{
    terse_ef_h ef = make_ef(comm, c);
    ef_io_t io;
    ef_io_init(&io, ef);
    terse_status_t st = ef_step(ef, &io, 0);
    CHECK(st == TERSE_OK, "first exchange: %s", terse_comm_last_error(comm));
    if (rank == size - 1) {
        pthread_t th;
        pthread_create(&th, NULL, killer, (void *)(uintptr_t)(100000 + 150000 * (getpid() % 13)));
        for (int t = 1;; t++)
            ef_step(ef, &io, t);
    }
    for (int t = 1; t < 100000; t++) {
        double t0 = now();
        st = ef_step(ef, &io, t);
        if (st == TERSE_OK)
            continue;
        char what[64];
        snprintf(what, sizeof(what), "ef exchange %d", t);
        expect_peer_failed(comm, st, t0, what);
        ef_unchanged(ef, &io, (uint64_t)t);
        break;
    }
    CHECK(st != TERSE_OK, "never noticed the death");
    expect_broken(comm);
    terse_ef_destroy(ef);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "dense";
    const char *r = getenv("TERSE_RANK"), *s = getenv("TERSE_SIZE");
    rank = r ? atoi(r) : 0;
    size = s ? atoi(s) : 1;
    if (!strcmp(mode, "compressed") || !strcmp(mode, "ef") || !strcmp(mode, "model")) {
        /* seq 0 is the first allreduce, seq 1 a good call, seq 2 the one the last rank dies in
         * (the model step: seq 3, its second bucket) */
        char spec[96];
        snprintf(spec, sizeof(spec), "kill:rank=%d,seq=%d,step=%s", size - 1,
                 strcmp(mode, "model") ? 2 : 3, argc > 3 ? argv[3] : "0");
        setenv("TERSE_FAULT_INJECT", spec, 1);
    }
    terse_comm_h comm;
    terse_status_t st = terse_comm_create(NULL, &comm);
    if (st != TERSE_OK) {
        fprintf(stderr, "comm create: %s\n", terse_status_string(st));
        return 2;
    }
    rank = terse_comm_rank(comm), size = terse_comm_size(comm);
    float v[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (float)rank;
    st = terse_allreduce(comm, v, out, 1000, TERSE_DTYPE_FLOAT32, TERSE_OP_SUM);
    if (st != TERSE_OK || out[0] != (float)(size * (size - 1) / 2)) {
        fprintf(stderr, "rank %d: first allreduce: %s\n", rank, terse_comm_last_error(comm));
        return 1;
    }
    terse_compressor_t c;
    if (strcmp(mode, "dense") && terse_compressor_parse(argc > 2 ? argv[2] : "topk:0.01", &c) != TERSE_OK) {
        fprintf(stderr, "bad compressor spec\n");
        return 2;
    }
    int rc;
    if (!strcmp(mode, "dense"))
        rc = mode_dense(comm);
    else if (!strcmp(mode, "compressed"))
        rc = mode_compressed(comm, &c);
    else if (!strcmp(mode, "ef"))
        rc = mode_ef(comm, &c);
    else if (!strcmp(mode, "model"))
        rc = mode_model(comm, &c);
    else if (!strcmp(mode, "thread"))
        rc = mode_thread(comm, &c);
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        rc = 2;
    }
    if (rank != size - 1)
        survivors_sync();
    terse_comm_destroy(comm);
    return rc ? rc : failures ? 1 : 0;
}
