/* Algorithm 1 through the model-level step (terse_model_*): K ranks with their own
 * least-squares data, full-batch gradients and momentum SGD on parameters of one dtype, for T
 * steps. Checks, besides the trajectory rank 0 writes for ef_reference.py --model:
 *   - x_t identical on every rank;
 *   - two buckets posted one by one while the other bucket's update still has to run (the
 *     overlapped order) give the same bits as one bucket posted by finish (step at once);
 *   - float32: the same bits as the per-tensor terse_ef_* path;
 *   - a checkpoint at T/2 restored into a fresh state continues bit-identically;
 *   - parameters that differ across ranks are refused by set_point on every rank;
 *   - a NaN in one rank's x' fails the step on every rank, parameters back at x_{t+1/2} and
 *     the state unchanged.
 * usage: test_model_traj MODE(none|ef|saef) PERIOD DOUBLE_WAY SPEC T OUT DTYPE(f32|f64|f16|bf16) */
#include "core/half.h" /* before the data: its parameter names would shadow them */
#include "traj_data.h"

#include <math.h>

static const double lr = 0.05, mu = 0.9;
static terse_dtype_t dt;
static size_t esz;


/* parameter storage of dtype dt, read as the widened type (float, or double for f64) */
static double load(const uint8_t *p, int i)
{
    switch (dt) {
    case TERSE_DTYPE_FLOAT64: return ((const double *)p)[i];
    case TERSE_DTYPE_FLOAT16: return terse__half_to_float(((const uint16_t *)p)[i]);
    case TERSE_DTYPE_BFLOAT16: return terse__bf16_to_float(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

/* v is already rounded to the widened type */
static void store(uint8_t *p, int i, double v)
{
    switch (dt) {
    case TERSE_DTYPE_FLOAT64: ((double *)p)[i] = v; break;
    case TERSE_DTYPE_FLOAT16: ((uint16_t *)p)[i] = terse__float_to_half((float)v); break;
    case TERSE_DTYPE_BFLOAT16: ((uint16_t *)p)[i] = terse__float_to_bf16((float)v); break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

/* rounds to the widened type */
static double wide(double v)
{
    return dt == TERSE_DTYPE_FLOAT64 ? v : (double)(float)v;
}

/* the gradient rounded to the widened type */
static void grad(const double *x, double *g)
{
    grad_f64(x, g);
    for (int j = 0; j < NP; j++)
        g[j] = wide(g[j]);
}

typedef struct run {
    uint8_t p[NP * 8]; /* the parameters, the framework's storage */
    double m[NP];      /* momentum, in the widened type */
    terse_model_h model;
} run_t;

static void *tensor(run_t *r, int j)
{
    return r->p + (j ? counts[0] * esz : 0);
}

/* momentum SGD on tensor j's elements [lo, hi) of the flat index, from the point it holds */
static void local_update(run_t *r, const double *g, int lo, int hi)
{
    for (int i = lo; i < hi; i++) {
        double xh = load(r->p, i);
        r->m[i] = wide(wide(mu * r->m[i]) + g[i]);
        store(r->p, i, wide(xh - wide(lr * r->m[i])));
    }
}

/* One step. overlapped: bucket 0 (tensor 0) posted before tensor 1's update runs. */
static terse_status_t step(run_t *r, int overlapped, int nan_at)
{
    double xh[NP], g[NP];
    for (int i = 0; i < NP; i++)
        xh[i] = load(r->p, i);
    grad(xh, g);
    void *ps[2] = {tensor(r, 0), tensor(r, 1)};
    if (overlapped) {
        local_update(r, g, 0, (int)counts[0]);
        if (nan_at >= 0 && nan_at < (int)counts[0])
            store(r->p, nan_at, NAN);
        terse_status_t st = terse_model_post(r->model, 0, ps);
        if (st != TERSE_OK)
            return st;
        local_update(r, g, (int)counts[0], NP);
    } else {
        local_update(r, g, 0, NP);
        if (nan_at >= 0)
            store(r->p, nan_at, NAN);
    }
    return terse_model_finish(r->model, ps);
}

static terse_model_h make_model(terse_comm_h comm, const terse_model_params_t *base, int nb)
{
    static const size_t two[2] = {1, 2};
    terse_model_params_t p = *base;
    if (nb == 2) {
        p.field_mask |= TERSE_MODEL_FIELD_BUCKETS;
        p.nbuckets = 2;
        p.bucket_end = two;
    }
    terse_model_h m = NULL;
    CHECK(terse_model_create(comm, &p, &m) == TERSE_OK, "model create");
    return m;
}

/* the same step through terse_ef_* (float32 only): the old per-tensor path */
static int ef_step(terse_ef_h ef, float *x, float *mom)
{
    float xh[NP], d[NP], u[NP];
    double xd[NP], g[NP];
    const float *xs[2] = {x, x + counts[0]};
    float *xhs[2] = {xh, xh + counts[0]};
    if (terse_ef_prepare(ef, xs, xhs) != TERSE_OK)
        return -1;
    for (int i = 0; i < NP; i++)
        xd[i] = xh[i];
    grad(xd, g);
    for (int i = 0; i < NP; i++) {
        mom[i] = (float)((float)(mu * mom[i]) + (float)g[i]);
        float xp = (float)(xh[i] - (float)(lr * mom[i]));
        d[i] = xh[i] - xp;
    }
    const float *ds[2] = {d, d + counts[0]};
    float *us[2] = {u, u + counts[0]};
    if (terse_ef_exchange(ef, ds, us) != TERSE_OK)
        return -1;
    for (int i = 0; i < NP; i++)
        x[i] -= u[i];
    return 0;
}

static void consensus(run_t *r, double *x)
{
    uint8_t raw[NP * 8];
    CHECK(terse_model_consensus(r->model, 0, raw) == TERSE_OK, "consensus 0");
    CHECK(terse_model_consensus(r->model, 1, raw + counts[0] * esz) == TERSE_OK, "consensus 1");
    for (int i = 0; i < NP; i++)
        x[i] = load(raw, i);
}

static void check_nan_step(run_t *r, int overlapped)
{
    size_t len = terse_model_save_size(r->model), w;
    uint8_t *before = malloc(len), *after = malloc(len), p0[NP * 8];
    terse_model_save(r->model, before, len, &w);
    memcpy(p0, r->p, sizeof(p0));
    double m0[NP];
    memcpy(m0, r->m, sizeof(m0));
    int nan_at = test_rank == test_size - 1 ? (overlapped ? 3 : 30) : -1;
    terse_status_t st = step(r, overlapped, nan_at);
    int failed = st == TERSE_ERR_NONFINITE, all = 0;
    MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    CHECK(all, "NaN on one rank: this rank got %s", terse_status_name(st));
    terse_model_save(r->model, after, len, &w);
    CHECK(!memcmp(before, after, len), "state changed by a failed step");
    CHECK(!memcmp(p0, r->p, NP * esz), "parameters not back at x_half after a failed step");
    memcpy(r->m, m0, sizeof(m0)); /* the local optimizer's own state is the caller's */
    free(before);
    free(after);
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    if (argc < 8) {
        CHECK(0, "usage: %s MODE PERIOD DOUBLE_WAY SPEC T OUT DTYPE", argv[0]);
        return test_finish(comm);
    }
    dt = !strcmp(argv[7], "f64")    ? TERSE_DTYPE_FLOAT64
         : !strcmp(argv[7], "f16")  ? TERSE_DTYPE_FLOAT16
         : !strcmp(argv[7], "bf16") ? TERSE_DTYPE_BFLOAT16
                                    : TERSE_DTYPE_FLOAT32;
    esz = terse_dtype_size(dt);
    terse_compressor_t c;
    CHECK(terse_compressor_parse(argv[4], &c) == TERSE_OK, "spec %s", argv[4]);
    terse_model_tensor_t ts[2] = {{ids[0], counts[0], dt}, {ids[1], counts[1], dt}};
    terse_model_params_t mp = {
        .field_mask = TERSE_MODEL_FIELD_PERIOD | TERSE_MODEL_FIELD_DOUBLE_WAY,
        .mode = !strcmp(argv[1], "saef") ? TERSE_EF_MODE_SAEF
                : !strcmp(argv[1], "ef") ? TERSE_EF_MODE_EF
                                         : TERSE_EF_MODE_NONE,
        .compressor = &c, .ntensors = 2, .tensors = ts,
        .period = strtoull(argv[2], NULL, 10), .double_way = atoi(argv[3])};
    int T = atoi(argv[5]);
    make_data(test_rank);

    run_t ra, rb, saved;
    memset(&ra, 0, sizeof(ra));
    for (int i = 0; i < NP; i++)
        store(ra.p, i, wide(0.5 * ((i % 5) - 2)));
    rb = ra;
    ra.model = make_model(comm, &mp, 2);
    rb.model = make_model(comm, &mp, 1);
    void *pa[2] = {tensor(&ra, 0), tensor(&ra, 1)}, *pb[2] = {tensor(&rb, 0), tensor(&rb, 1)};

    /* parameters that differ across ranks are refused everywhere, the state unchanged */
    if (test_size > 1) {
        run_t bad = ra;
        if (test_rank == 1)
            store(bad.p, 7, wide(load(bad.p, 7) + 1.0));
        void *pbad[2] = {tensor(&bad, 0), tensor(&bad, 1)};
        terse_status_t st = terse_model_set_point(ra.model, (const void *const *)pbad);
        CHECK(st == TERSE_ERR_MISMATCH, "differing parameters: %s", terse_status_name(st));
        CHECK(!terse_model_has_point(ra.model), "point set by a refused set_point");
    }
    CHECK(terse_model_set_point(ra.model, (const void *const *)pa) == TERSE_OK, "set_point a");
    CHECK(terse_model_set_point(rb.model, (const void *const *)pb) == TERSE_OK, "set_point b");

    /* the old path, float32 only */
    terse_ef_h ef = NULL;
    float ex[NP], em[NP];
    if (dt == TERSE_DTYPE_FLOAT32) {
        terse_ef_params_t ep = {.field_mask = TERSE_EF_FIELD_PERIOD | TERSE_EF_FIELD_DOUBLE_WAY,
                                .mode = mp.mode, .compressor = &c, .ntensors = 2, .ids = ids,
                                .counts = counts, .period = mp.period,
                                .double_way = mp.double_way};
        CHECK(terse_ef_create(comm, &ep, &ef) == TERSE_OK, "ef create");
        memcpy(ex, ra.p, sizeof(ex));
        memset(em, 0, sizeof(em));
    }

    double *traj = calloc((size_t)(T + 1) * NP, sizeof(double));
    consensus(&ra, traj);
    void *ckpt = NULL;
    size_t ckpt_len = 0;
    for (int t = 0; t < T; t++) {
        if (t == T / 2) {
            ckpt_len = terse_model_save_size(ra.model);
            ckpt = malloc(ckpt_len);
            size_t w = 0;
            CHECK(terse_model_save(ra.model, ckpt, ckpt_len, &w) == TERSE_OK && w == ckpt_len,
                  "save");
            saved = ra;
        }
        terse_status_t sa = step(&ra, 1, -1), sb = step(&rb, 0, -1);
        CHECK(sa == TERSE_OK && sb == TERSE_OK, "step %d: %s", t, terse_comm_last_error(comm));
        if (sa != TERSE_OK || sb != TERSE_OK)
            break;
        double *x = traj + (size_t)(t + 1) * NP, xb[NP];
        consensus(&ra, x);
        consensus(&rb, xb);
        CHECK(!memcmp(x, xb, sizeof(xb)) && !memcmp(ra.p, rb.p, NP * esz),
              "step %d: overlapped two-bucket step differs from the one-bucket step", t);
        CHECK(test_identical(x, sizeof(xb)), "x_%d differs across ranks", t + 1);
        if (ef) {
            CHECK(ef_step(ef, ex, em) == 0, "ef step %d", t);
            for (int i = 0; i < NP; i++)
                CHECK((float)x[i] == ex[i], "step %d: x[%d] = %.9g, terse_ef gives %.9g", t, i,
                      x[i], ex[i]);
        }
    }
    CHECK(terse_model_step(ra.model) == (uint64_t)T, "step count");
    /* resume from the checkpoint in a fresh state: the same bits to the end */
    if (ckpt) {
        run_t rc = saved;
        rc.model = make_model(comm, &mp, 2);
        void *pc[2] = {tensor(&rc, 0), tensor(&rc, 1)};
        memset(rc.p, 0xee, sizeof(rc.p)); /* restore writes the point */
        CHECK(terse_model_restore(rc.model, ckpt, ckpt_len, pc) == TERSE_OK, "restore");
        CHECK(!memcmp(rc.p, saved.p, NP * esz), "restored point differs");
        ((uint8_t *)ckpt)[ckpt_len / 2] ^= 1;
        CHECK(terse_model_restore(rc.model, ckpt, ckpt_len, NULL) == TERSE_ERR_CORRUPT,
              "damaged checkpoint accepted");
        for (int t = T / 2; t < T; t++)
            CHECK(step(&rc, 1, -1) == TERSE_OK, "resumed step %d", t);
        CHECK(!memcmp(rc.p, ra.p, NP * esz), "resumed trajectory differs");
        terse_model_destroy(rc.model);
    }
    check_nan_step(&ra, 1);
    check_nan_step(&rb, 0);
    CHECK(step(&ra, 1, -1) == TERSE_OK, "step after a failed step");
    write_traj(argv[6], T, traj, sizeof(double) * (size_t)(T + 1) * NP);
    free(traj);
    free(ckpt);
    terse_ef_destroy(ef);
    terse_model_destroy(ra.model);
    terse_model_destroy(rb.model);
    return test_finish(comm);
}
