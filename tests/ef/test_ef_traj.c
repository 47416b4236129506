/* Algorithm 1 through the library: K ranks, each with its own least-squares data, full-batch
 * gradients and momentum SGD, for T steps. Rank 0 writes the data and the trajectory x_0..x_T
 * for ef_reference.py to replay in a single process. Also checks x_t identical on every rank
 * and that a checkpoint (terse_ef_save/restore) at T/2 continues bit-identically.
 * usage: test_ef_traj MODE(none|ef|saef) PERIOD(0=never) DOUBLE_WAY(0|1) SPEC T OUT */
#include "traj_data.h"

#include <math.h>

static const float lr = 0.05f, mu = 0.9f;

/* the gradient rounded to float32 */
static void grad(const float *x, float *g)
{
    double xd[NP], gd[NP];
    for (int j = 0; j < NP; j++)
        xd[j] = x[j];
    grad_f64(xd, gd);
    for (int j = 0; j < NP; j++)
        g[j] = (float)gd[j];
}

typedef struct run {
    float x[NP], m[NP];
} run_t;

static int step(terse_ef_h ef, run_t *r)
{
    float xh[NP], g[NP], d[NP], u[NP];
    const float *xs[2] = {r->x, r->x + counts[0]};
    float *xhs[2] = {xh, xh + counts[0]};
    if (terse_ef_prepare(ef, xs, xhs) != TERSE_OK)
        return -1;
    grad(xh, g);
    for (int j = 0; j < NP; j++) {
        r->m[j] = mu * r->m[j] + g[j];
        float xp = xh[j] - lr * r->m[j];
        d[j] = xh[j] - xp;
    }
    const float *ds[2] = {d, d + counts[0]};
    float *us[2] = {u, u + counts[0]};
    if (terse_ef_exchange(ef, ds, us) != TERSE_OK)
        return -1;
    for (int j = 0; j < NP; j++)
        r->x[j] = r->x[j] - u[j];
    return 0;
}

int main(int argc, char **argv)
{
    terse_comm_h comm = test_init(&argc, &argv);
    if (argc < 7) {
        CHECK(0, "usage: %s MODE PERIOD DOUBLE_WAY SPEC T OUT", argv[0]);
        return test_finish(comm);
    }
    terse_ef_params_t p = {.field_mask = TERSE_EF_FIELD_PERIOD | TERSE_EF_FIELD_DOUBLE_WAY,
                           .ntensors = 2, .ids = ids, .counts = counts,
                           .period = strtoull(argv[2], NULL, 10), .double_way = atoi(argv[3])};
    p.mode = !strcmp(argv[1], "saef") ? TERSE_EF_MODE_SAEF
             : !strcmp(argv[1], "ef") ? TERSE_EF_MODE_EF : TERSE_EF_MODE_NONE;
    terse_compressor_t c;
    p.compressor = &c;
    CHECK(terse_compressor_parse(argv[4], &c) == TERSE_OK, "spec %s", argv[4]);
    int T = atoi(argv[5]);
    make_data(test_rank);
    terse_ef_h ef = NULL, ef2 = NULL;
    CHECK(terse_ef_create(comm, &p, &ef) == TERSE_OK, "create");
    CHECK(terse_ef_create(comm, &p, &ef2) == TERSE_OK, "create");
    run_t r, saved_run;
    memset(&r, 0, sizeof(r));
    for (int j = 0; j < NP; j++)
        r.x[j] = 0.5f * (float)((j % 5) - 2);
    float *traj = calloc((size_t)(T + 1) * NP, sizeof(float));
    memcpy(traj, r.x, sizeof(r.x));
    void *ckpt = NULL;
    size_t ckpt_len = 0;
    for (int t = 0; t < T; t++) {
        if (t == T / 2) {
            ckpt_len = terse_ef_save_size(ef);
            ckpt = malloc(ckpt_len);
            size_t w = 0;
            CHECK(terse_ef_save(ef, ckpt, ckpt_len, &w) == TERSE_OK && w == ckpt_len, "save");
            saved_run = r;
        }
        if (step(ef, &r) != 0) {
            CHECK(0, "step %d: %s", t, terse_comm_last_error(comm));
            break;
        }
        memcpy(traj + (size_t)(t + 1) * NP, r.x, sizeof(r.x));
        CHECK(test_identical(r.x, sizeof(r.x)), "x_%d differs across ranks", t + 1);
    }
    /* resume from the checkpoint in a fresh state: the same bits to the end */
    if (ckpt) {
        CHECK(terse_ef_restore(ef2, ckpt, ckpt_len) == TERSE_OK, "restore");
        CHECK(terse_ef_step(ef2) == (uint64_t)(T / 2), "restored step %llu", (unsigned long long)terse_ef_step(ef2));
        ((uint8_t *)ckpt)[ckpt_len / 2] ^= 1;
        CHECK(terse_ef_restore(ef2, ckpt, ckpt_len) == TERSE_ERR_CORRUPT, "damaged checkpoint accepted");
        for (int t = T / 2; t < T; t++)
            CHECK(step(ef2, &saved_run) == 0, "resumed step %d: %s", t, terse_comm_last_error(comm));
        CHECK(!memcmp(saved_run.x, r.x, sizeof(r.x)), "resumed trajectory differs");
    }
    /* a NaN step on one rank: every rank fails and the state stays as it was */
    if (p.mode != TERSE_EF_MODE_NONE) {
        size_t len = terse_ef_save_size(ef), w;
        uint8_t *before = malloc(len), *after = malloc(len);
        terse_ef_save(ef, before, len, &w);
        float d[NP], u[NP];
        for (int j = 0; j < NP; j++)
            d[j] = 0.01f, u[j] = 42.0f;
        if (test_rank == test_size - 1)
            d[3] = NAN;
        const float *ds[2] = {d, d + counts[0]};
        float *us[2] = {u, u + counts[0]};
        terse_status_t st = terse_ef_exchange(ef, ds, us);
        int failed = st != TERSE_OK, all = 0;
        MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        CHECK(all, "NaN on one rank: this rank got %s", terse_status_name(st));
        terse_ef_save(ef, after, len, &w);
        CHECK(!memcmp(before, after, len), "state changed by a failed exchange");
        CHECK(u[0] == 42.0f && u[NP - 1] == 42.0f, "update written by a failed exchange");
        free(before);
        free(after);
    }
    write_traj(argv[6], T, traj, sizeof(float) * (size_t)(T + 1) * NP);
    free(traj);
    free(ckpt);
    terse_ef_destroy(ef);
    terse_ef_destroy(ef2);
    return test_finish(comm);
}
