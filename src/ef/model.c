/* The model-level training step (include/terse/model.h): the state, the per-bucket
 * exchanges and the commit. Nothing the state keeps changes before every bucket of a step
 * succeeded: each bucket's exchange holds its commit (terse__icompressed_allreduce_held), and
 * the step commits them all once every one of them succeeded, or none. */
#include <terse/model.h>

#include "coll/coll.h"
#include "compress/compress.h"
#include "core/alloc.h"
#include "core/checksum.h"
#include "model_kernels.h"
#include "model_state.h"

#include <stdio.h>
#include <string.h>

static void free_arrays(terse_model_h m)
{
    size_t fl = (m->N ? m->N : 1) * sizeof(float);
    terse__free_scratch(m->x, m->xbytes ? m->xbytes : 1);
    terse__free_scratch(m->ek, fl);
    terse__free_scratch(m->stage, fl);
    terse__free_scratch(m->u, fl);
    terse__free_scratch(m->es, fl);
    size_t dl = (m->N64 ? m->N64 : 1) * sizeof(double);
    terse__free_scratch(m->ek64, dl);
    terse__free_scratch(m->avg64, dl);
}

void terse_model_destroy(terse_model_h m)
{
    if (!m)
        return;
    for (size_t b = 0; b < m->nb; b++) {
        if (m->reqs && m->reqs[b]) {
            (void)terse_wait(m->reqs[b]); /* the buffers are ours: never free them in flight */
            terse_request_free(m->reqs[b]);
        }
    }
    free_arrays(m);
    terse__free(m->t);
    terse__free(m->bucket_end);
    terse__free(m->off);
    terse__free(m->xoff);
    terse__free(m->off64);
    terse__free(m->ct);
    terse__free(m->subtract);
    terse__free(m->reqs);
    terse__free(m->post_st);
    terse__free(m);
}

/* Copies the tensor list and lays out the flat arrays: float offsets over every tensor
 * (stage, u, e_s, and e_k of the float32-computed ones), byte offsets of x_t, and double
 * offsets of the float64 tensors' e_k. */
static terse_status_t layout(terse_model_h m, const terse_model_params_t *prm)
{
    size_t nt1 = m->nt ? m->nt : 1;
    m->t = terse__malloc(nt1 * sizeof(*m->t), "model tensors");
    m->off = terse__calloc(m->nt + 1, sizeof(size_t), "model offsets");
    m->xoff = terse__calloc(m->nt + 1, sizeof(size_t), "model x_t offsets");
    m->off64 = terse__calloc(m->nt + 1, sizeof(size_t), "model float64 offsets");
    m->ct = terse__calloc(nt1, sizeof(*m->ct), "model exchange tensors");
    m->subtract = terse__calloc(nt1, 1, "model in-place updates");
    if (!m->t || !m->off || !m->xoff || !m->off64 || !m->ct || !m->subtract)
        return TERSE_ERR_NO_MEMORY;
    int in_place = terse__compress_has_subtract(&m->c);
    for (size_t j = 0; j < m->nt; j++) {
        const terse_model_tensor_t *t = &prm->tensors[j];
        size_t es = terse__model_dtype_size(t->dtype);
        if (!es || t->count > SIZE_MAX / 64 - m->off[j])
            return TERSE_ERR_INVALID_ARG;
        m->t[j] = *t;
        m->subtract[j] = in_place && t->dtype == TERSE_DTYPE_FLOAT32;
        m->off[j + 1] = m->off[j] + t->count;
        m->xoff[j + 1] = m->xoff[j] + t->count * es;
        m->off64[j + 1] = m->off64[j] + (t->dtype == TERSE_DTYPE_FLOAT64 ? t->count : 0);
    }
    m->N = m->off[m->nt];
    m->N64 = m->off64[m->nt];
    m->xbytes = m->xoff[m->nt];
    return TERSE_OK;
}

static terse_status_t buckets(terse_model_h m, const terse_model_params_t *prm)
{
    int given = (prm->field_mask & TERSE_MODEL_FIELD_BUCKETS) && prm->nbuckets;
    m->nb = given ? prm->nbuckets : 1;
    m->bucket_end = terse__malloc(m->nb * sizeof(size_t), "model buckets");
    m->reqs = terse__calloc(m->nb, sizeof(*m->reqs), "model bucket requests");
    m->post_st = terse__calloc(m->nb, sizeof(*m->post_st), "model bucket statuses");
    if (!m->bucket_end || !m->reqs || !m->post_st)
        return TERSE_ERR_NO_MEMORY;
    if (!given) {
        m->bucket_end[0] = m->nt;
        return TERSE_OK;
    }
    if (!prm->bucket_end)
        return TERSE_ERR_INVALID_ARG;
    for (size_t b = 0; b < m->nb; b++) {
        size_t lo = b ? prm->bucket_end[b - 1] : 0;
        if (prm->bucket_end[b] <= lo && !(m->nt == 0 && m->nb == 1))
            return TERSE_ERR_INVALID_ARG; /* every bucket holds a tensor */
        m->bucket_end[b] = prm->bucket_end[b];
    }
    return m->bucket_end[m->nb - 1] == m->nt ? TERSE_OK : TERSE_ERR_INVALID_ARG;
}

static terse_status_t alloc_arrays(terse_model_h m)
{
    const terse__allocator_t *na = terse__comm_allocator(m->comm);
    size_t fl = (m->N ? m->N : 1) * sizeof(float), dl = (m->N64 ? m->N64 : 1) * sizeof(double);
    int ef = m->mode != TERSE_EF_MODE_NONE;
    m->x = terse__alloc_scratch_with(na, m->xbytes ? m->xbytes : 1, "model consensus x_t");
    m->stage = terse__alloc_scratch_with(na, fl, "model Delta staging");
    int wide = 0; /* tensors other than float32 need an update buffer */
    for (size_t j = 0; j < m->nt; j++)
        wide |= m->t[j].dtype != TERSE_DTYPE_FLOAT32;
    if (wide && !(m->u = terse__alloc_scratch_with(na, fl, "model update")))
        return TERSE_ERR_NO_MEMORY;
    if (!m->x || !m->stage)
        return TERSE_ERR_NO_MEMORY;
    if (ef && !(m->ek = terse__alloc_scratch_with(na, fl, "model worker errors e_k")))
        return TERSE_ERR_NO_MEMORY;
    if (ef && m->N64 && !(m->ek64 = terse__alloc_scratch_with(na, dl, "model float64 e_k")))
        return TERSE_ERR_NO_MEMORY;
    if (ef && m->N64 && m->period &&
        !(m->avg64 = terse__alloc_scratch_with(na, dl, "model float64 e_k average")))
        return TERSE_ERR_NO_MEMORY;
    if (m->double_way && !(m->es = terse__alloc_scratch_with(na, fl, "model server errors e_s")))
        return TERSE_ERR_NO_MEMORY;
    return TERSE_OK;
}

terse_status_t terse_model_create(terse_comm_h comm, const terse_model_params_t *prm,
                                  terse_model_h *model_p)
{
    if (!comm || !prm || !model_p || !prm->compressor || (prm->ntensors && !prm->tensors) ||
        (unsigned)prm->mode > TERSE_EF_MODE_SAEF ||
        terse_compressor_validate(prm->compressor) != TERSE_OK)
        return TERSE_ERR_INVALID_ARG;
    terse__cmp_choice_t choice;
    if (terse__cmp_choice_make(prm->field_mask, TERSE_MODEL_FIELD_ALGO,
                               TERSE_MODEL_FIELD_HIERARCHY,
                               TERSE_CHOSEN(prm, TERSE_MODEL_FIELD_ALGO, algo),
                               TERSE_CHOSEN(prm, TERSE_MODEL_FIELD_HIERARCHY, hierarchy),
                               &choice) != 0)
        return TERSE_ERR_INVALID_ARG;
    terse_model_h m = terse__calloc(1, sizeof(*m), "model step state");
    if (!m)
        return TERSE_ERR_NO_MEMORY;
    m->comm = comm;
    m->mode = prm->mode;
    m->c = *prm->compressor;
    m->choice = choice;
    m->period = (prm->field_mask & TERSE_MODEL_FIELD_PERIOD) ? prm->period : 0;
    m->double_way = (prm->field_mask & TERSE_MODEL_FIELD_DOUBLE_WAY) && prm->double_way;
    m->nt = prm->ntensors;
    terse_status_t st = terse_compressor_format(&m->c, m->spec, sizeof(m->spec));
    if (st == TERSE_OK)
        st = layout(m, prm);
    if (st == TERSE_OK)
        st = buckets(m, prm);
    if (st == TERSE_OK)
        st = alloc_arrays(m);
    if (st != TERSE_OK) {
        terse_model_destroy(m);
        return st;
    }
    *model_p = m;
    return TERSE_OK;
}

/* ---- the step ---- */

terse__mtensor_t terse__model_view(const terse_model_h m, size_t j)
{
    int f64 = m->t[j].dtype == TERSE_DTYPE_FLOAT64;
    void *ek = NULL;
    if (m->ek)
        ek = f64 ? (void *)(m->ek64 + m->off64[j]) : (void *)(m->ek + m->off[j]);
    return (terse__mtensor_t){
        .dtype = m->t[j].dtype,
        .count = m->t[j].count,
        .x = m->x + m->xoff[j],
        .ek = ek,
        .stage = m->stage + m->off[j],
        .u = m->t[j].dtype == TERSE_DTYPE_FLOAT32 ? NULL : m->u + m->off[j],
    };
}

static int saef(const terse_model_h m)
{
    return m->mode == TERSE_EF_MODE_SAEF;
}

static int averaging_due(const terse_model_h m)
{
    return m->mode != TERSE_EF_MODE_NONE && m->period && (m->step + 1) % m->period == 0 &&
           m->averaged_step != m->step + 1;
}

static size_t bucket_lo(const terse_model_h m, size_t b)
{
    return b ? m->bucket_end[b - 1] : 0;
}

static terse_status_t fail(terse_model_h m, terse_status_t st, const char *what)
{
    terse__comm_set_error(m->comm, "model step %llu: %s", (unsigned long long)m->step, what);
    return st;
}

static terse_status_t post_bucket(terse_model_h m, size_t b, void *const *params)
{
    size_t lo = bucket_lo(m, b), hi = m->bucket_end[b];
    for (size_t j = lo; j < hi; j++) {
        terse__mtensor_t v = terse__model_view(m, j);
        void *p = params ? params[j] : NULL;
        if (p && v.count)
            terse__model_stage(&v, p, saef(m));
        m->ct[j] = (terse_ctensor_t){
            .id = m->t[j].id,
            .count = v.count,
            .in = p ? v.stage : NULL, /* NULL: the collective rejects it on every rank */
            /* float32: u is subtracted from x_t in place, or lands in the parameters */
            .out = v.u ? v.u : m->subtract[j] ? (float *)v.x : p,
            .worker_error = m->ek ? v.stage : NULL, /* Delta becomes Delta - C(Delta) */
            .server_error = m->es ? m->es + m->off[j] : NULL,
        };
    }
    terse_callreduce_params_t prm = {
        .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_STEP,
        .tensors = m->ct + lo,
        .ntensors = hi - lo,
        .compressor = &m->c,
        .double_way = m->double_way,
        .step = m->step,
    };
    terse__cmp_choice_apply(&m->choice, &prm);
    m->post_st[b] = terse__icompressed_allreduce_held(m->comm, &prm, &m->reqs[b]);
    m->posted = b + 1;
    return m->post_st[b];
}

terse_status_t terse_model_post(terse_model_h m, size_t b, void *const *params)
{
    if (!m)
        return TERSE_ERR_INVALID_ARG;
    if (!m->has_point)
        return fail(m, TERSE_ERR_INVALID_ARG, "no consensus model yet (terse_model_set_point)");
    if (b != m->posted || b >= m->nb) {
        char why[96];
        snprintf(why, sizeof(why), "bucket %zu posted, bucket %zu of %zu is next", b, m->posted,
                 m->nb);
        return fail(m, TERSE_ERR_INVALID_ARG, why);
    }
    if (averaging_due(m) && m->step > 0)
        return fail(m, TERSE_ERR_INVALID_ARG, "the error averaging before this step failed: "
                                              "terse_model_write_point retries it");
    return post_bucket(m, b, params);
}

size_t terse_model_posted(terse_model_h m)
{
    return m ? m->posted : 0;
}

/* Waits for every posted bucket, then commits their exchanges if every one succeeded (each
 * bucket's success is agreed by all ranks, so they all commit or none does) and drops them
 * otherwise. The first failure's status (its reason in the comm's last error, prefixed with
 * the bucket). */
static terse_status_t wait_buckets(terse_model_h m, uint64_t *bytes_p)
{
    terse_status_t first = TERSE_OK;
    size_t bad = 0;
    for (size_t b = 0; b < m->posted; b++) {
        terse_status_t st = m->post_st[b];
        if (m->reqs[b]) {
            terse_status_t w = terse_wait(m->reqs[b]);
            st = st != TERSE_OK ? st : w;
            *bytes_p += terse_request_bytes_sent(m->reqs[b]);
        }
        if (st != TERSE_OK && first == TERSE_OK) {
            first = st;
            bad = b;
        }
    }
    /* Only a commit's own failure (no scratch for a decode thread) can stop it now */
    for (size_t b = 0; b < m->posted && first == TERSE_OK; b++) {
        first = terse__compressed_commit(m->reqs[b], m->subtract + bucket_lo(m, b));
        bad = b;
    }
    char why[512] = "";
    if (first != TERSE_OK)
        snprintf(why, sizeof(why), "bucket %zu of %zu: %s", bad, m->nb,
                 terse_comm_last_error(m->comm));
    for (size_t b = 0; b < m->posted; b++) {
        terse_request_free(m->reqs[b]);
        m->reqs[b] = NULL;
    }
    m->posted = 0;
    if (first != TERSE_OK)
        fail(m, first, why);
    return first;
}

/* Algorithm 1 line 7: the dense average of e_k, committed only when every rank has it. */
static terse_status_t average_errors(terse_model_h m)
{
    terse_status_t st = terse_allreduce(m->comm, m->ek, m->stage, m->N, TERSE_DTYPE_FLOAT32,
                                        TERSE_OP_AVG);
    if (st == TERSE_OK && m->N64)
        st = terse_allreduce(m->comm, m->ek64, m->avg64, m->N64, TERSE_DTYPE_FLOAT64,
                             TERSE_OP_AVG);
    if (st != TERSE_OK)
        return st;
    terse__model_swap_errors(m);
    double *t = m->ek64;
    m->ek64 = m->avg64;
    m->avg64 = t;
    m->averaged_step = m->step + 1;
    return TERSE_OK;
}

void terse__model_swap_errors(terse_model_h m)
{
    float *t = m->ek;
    m->ek = m->stage;
    m->stage = t;
}

void terse__model_write_points(terse_model_h m, void *const *params)
{
    for (size_t j = 0; params && j < m->nt; j++) {
        terse__mtensor_t v = terse__model_view(m, j);
        if (params[j] && v.count)
            terse__model_point(&v, params[j], saef(m));
    }
}

terse_status_t terse_model_finish(terse_model_h m, void *const *params)
{
    if (!m || (m->nt && !params))
        return TERSE_ERR_INVALID_ARG;
    if (!m->has_point)
        return fail(m, TERSE_ERR_INVALID_ARG, "no consensus model yet (terse_model_set_point)");
    while (m->posted < m->nb)
        post_bucket(m, m->posted, params);
    uint64_t bytes = 0;
    terse_status_t st = wait_buckets(m, &bytes);
    if (st != TERSE_OK) {
        terse__model_write_points(m, params); /* back to x_{t+1/2} */
        return st;
    }
    m->bytes_sent += bytes;
    m->step++;
    int due = averaging_due(m);
    for (size_t j = 0; j < m->nt; j++) {
        terse__mtensor_t v = terse__model_view(m, j);
        if (v.count && !m->subtract[j])
            terse__model_commit(&v, params[j], saef(m), !due);
    }
    if (m->ek)
        terse__model_swap_errors(m); /* the remainders in stage are the new e_k */
    for (size_t j = 0; j < m->nt && !due; j++) {
        terse__mtensor_t v = terse__model_view(m, j);
        if (v.count && m->subtract[j]) /* x_{t+1} is in place: the next point from it */
            terse__model_point(&v, params[j], saef(m));
    }
    if (!due)
        return TERSE_OK;
    st = average_errors(m);
    terse__model_write_points(m, params); /* with the averaged e_k, or the step's own if that failed */
    return st == TERSE_OK ? TERSE_OK : fail(m, st, "error averaging failed");
}

terse_status_t terse_model_write_point(terse_model_h m, void *const *params)
{
    if (!m || (m->nt && !params))
        return TERSE_ERR_INVALID_ARG;
    if (!m->has_point)
        return fail(m, TERSE_ERR_INVALID_ARG, "no consensus model yet (terse_model_set_point)");
    if (averaging_due(m) && m->step > 0) {
        terse_status_t st = average_errors(m);
        if (st != TERSE_OK)
            return st;
    }
    terse__model_write_points(m, params);
    return TERSE_OK;
}

terse_status_t terse_model_set_point(terse_model_h m, const void *const *params)
{
    if (!m || (m->nt && !params) || m->posted)
        return TERSE_ERR_INVALID_ARG;
    uint64_t mine = 0x7e55e;
    for (size_t j = 0; j < m->nt; j++) {
        size_t bytes = m->xoff[j + 1] - m->xoff[j];
        if (bytes && !params[j])
            return fail(m, TERSE_ERR_INVALID_ARG, "set_point: a NULL parameter");
        mine = mine * 1099511628211ull ^ terse__checksum(params[j], bytes);
    }
    int K = terse_comm_size(m->comm);
    uint64_t *all = terse__malloc((size_t)K * sizeof(uint64_t), "model point digests");
    if (!all)
        return TERSE_ERR_NO_MEMORY;
    terse_status_t st = terse_allgather(m->comm, &mine, all, 1, TERSE_DTYPE_INT64);
    int differ = -1;
    for (int r = 0; st == TERSE_OK && r < K && differ < 0; r++)
        if (all[r] != all[0])
            differ = r;
    terse__free(all);
    if (st != TERSE_OK)
        return st;
    if (differ >= 0) {
        char why[160];
        snprintf(why, sizeof(why), "the parameters differ between rank 0 and rank %d "
                                   "(broadcast them before the first step)", differ);
        return fail(m, TERSE_ERR_MISMATCH, why);
    }
    for (size_t j = 0; j < m->nt; j++)
        memcpy(m->x + m->xoff[j], params[j], m->xoff[j + 1] - m->xoff[j]);
    m->has_point = 1;
    terse__model_write_points(m, (void *const *)params);
    return TERSE_OK;
}

/* ---- queries ---- */

int terse_model_has_point(terse_model_h m)
{
    return m ? m->has_point : 0;
}

uint64_t terse_model_step(terse_model_h m)
{
    return m ? m->step : 0;
}

uint64_t terse_model_bytes_sent(terse_model_h m)
{
    return m ? m->bytes_sent : 0;
}

size_t terse_model_nbuckets(terse_model_h m)
{
    return m ? m->nb : 0;
}

terse_status_t terse_model_consensus(terse_model_h m, size_t j, void *out)
{
    if (!m || j >= m->nt || !out || !m->has_point)
        return TERSE_ERR_INVALID_ARG;
    memcpy(out, m->x + m->xoff[j], m->xoff[j + 1] - m->xoff[j]);
    return TERSE_OK;
}

terse_status_t terse_model_worker_error(terse_model_h m, size_t j, void *out)
{
    if (!m || j >= m->nt || !out)
        return TERSE_ERR_INVALID_ARG;
    terse__mtensor_t v = terse__model_view(m, j);
    size_t bytes = v.count * (v.dtype == TERSE_DTYPE_FLOAT64 ? sizeof(double) : sizeof(float));
    if (v.ek)
        memcpy(out, v.ek, bytes);
    else
        memset(out, 0, bytes);
    return TERSE_OK;
}

terse_status_t terse_model_server_error(terse_model_h m, size_t j, float *out)
{
    if (!m || j >= m->nt || !out)
        return TERSE_ERR_INVALID_ARG;
    size_t n = m->t[j].count;
    if (m->es)
        memcpy(out, m->es + m->off[j], n * sizeof(float));
    else
        memset(out, 0, n * sizeof(float));
    return TERSE_OK;
}
