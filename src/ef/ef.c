/* Error-feedback state: worker errors e_k, server errors e_s, the step counter, error
 * averaging, and checkpoints. Every change is computed aside and committed only when the
 * collective it depends on succeeded, so a failed step leaves the state as it was. */
#include <terse/ef.h>

#include "coll/coll.h"
#include "coll/wire.h"
#include "core/alloc.h"
#include "ckpt.h"
#include "cmp_choice.h"

#include <string.h>

#define EF_MAGIC   0x53464554u /* "TEFS" */
#define EF_VERSION 1u

struct terse_ef {
    terse_comm_h comm;
    terse_ef_mode_t mode;
    terse_compressor_t c;
    terse__cmp_choice_t choice;
    char spec[128];   /* canonical compressor spec, for checkpoints */
    uint64_t period;
    int double_way;
    size_t nt;
    uint32_t *ids;
    size_t *counts;
    size_t *off;      /* nt + 1 offsets into the flat arrays */
    size_t N;
    float *ek;        /* N floats (EF, SAEF) */
    float *es;        /* N floats (double-way) */
    float *stage;     /* N floats: Delta, or the averaged errors */
    uint64_t step;
    uint64_t averaged_step; /* step + 1 of the last averaging (0 = none) */
    uint64_t bytes_sent;    /* compressed-exchange bytes this rank sent, successful calls */
    terse_ctensor_t *ct;
};

void terse_ef_destroy(terse_ef_h ef)
{
    if (!ef)
        return;
    terse__free(ef->ids);
    terse__free(ef->counts);
    terse__free(ef->off);
    /* NUMA-placed scratch (see create): freeing needs neither the comm nor its plan */
    size_t bytes = (ef->N ? ef->N : 1) * sizeof(float);
    terse__free_scratch(ef->ek, bytes);
    terse__free_scratch(ef->es, bytes);
    terse__free_scratch(ef->stage, bytes);
    terse__free(ef->ct);
    terse__free(ef);
}

terse_status_t terse_ef_create(terse_comm_h comm, const terse_ef_params_t *prm, terse_ef_h *ef_p)
{
    if (!comm || !prm || !ef_p || (prm->ntensors && (!prm->ids || !prm->counts)) ||
        (unsigned)prm->mode > TERSE_EF_MODE_SAEF ||
        !prm->compressor || terse_compressor_validate(prm->compressor) != TERSE_OK)
        return TERSE_ERR_INVALID_ARG;
    terse__cmp_choice_t choice;
    if (terse__cmp_choice_make(prm->field_mask, TERSE_EF_FIELD_ALGO, TERSE_EF_FIELD_HIERARCHY,
                               TERSE_CHOSEN(prm, TERSE_EF_FIELD_ALGO, algo),
                               TERSE_CHOSEN(prm, TERSE_EF_FIELD_HIERARCHY, hierarchy),
                               &choice) != 0)
        return TERSE_ERR_INVALID_ARG;
    terse_ef_h ef = terse__calloc(1, sizeof(*ef), "error-feedback state");
    if (!ef)
        return TERSE_ERR_NO_MEMORY;
    ef->comm = comm;
    ef->mode = prm->mode;
    ef->c = *prm->compressor;
    ef->choice = choice;
    ef->period = (prm->field_mask & TERSE_EF_FIELD_PERIOD) ? prm->period : 0;
    ef->double_way = (prm->field_mask & TERSE_EF_FIELD_DOUBLE_WAY) && prm->double_way;
    ef->nt = prm->ntensors;
    if (terse_compressor_format(&ef->c, ef->spec, sizeof(ef->spec)) != TERSE_OK)
        goto err_inval;
    size_t nt1 = ef->nt ? ef->nt : 1;
    ef->ids = terse__malloc(nt1 * sizeof(uint32_t), "error-feedback tensor ids");
    ef->counts = terse__malloc(nt1 * sizeof(size_t), "error-feedback tensor sizes");
    ef->off = terse__calloc(ef->nt + 1, sizeof(size_t), "error-feedback offsets");
    ef->ct = terse__calloc(nt1, sizeof(*ef->ct), "error-feedback tensor list");
    if (!ef->ids || !ef->counts || !ef->off || !ef->ct)
        goto err_nomem;
    for (size_t j = 0; j < ef->nt; j++) {
        ef->ids[j] = prm->ids[j];
        ef->counts[j] = prm->counts[j];
        if (prm->counts[j] > SIZE_MAX / 16 - ef->off[j])
            goto err_inval;
        ef->off[j + 1] = ef->off[j] + prm->counts[j];
    }
    ef->N = ef->off[ef->nt];
    size_t bytes = (ef->N ? ef->N : 1) * sizeof(float);
    /* Zeroed, pre-faulted, on the NUMA node the communicator's plan chose (its NIC's) */
    const terse__allocator_t *na = terse__comm_allocator(comm);
    ef->stage = terse__alloc_scratch_with(na, bytes, "error-feedback staging");
    if (ef->mode != TERSE_EF_MODE_NONE)
        ef->ek = terse__alloc_scratch_with(na, bytes, "worker errors e_k");
    if (ef->double_way)
        ef->es = terse__alloc_scratch_with(na, bytes, "server errors e_s");
    if (!ef->stage || (ef->mode != TERSE_EF_MODE_NONE && !ef->ek) || (ef->double_way && !ef->es))
        goto err_nomem;
    *ef_p = ef;
    return TERSE_OK;
err_nomem:
    terse_ef_destroy(ef);
    return TERSE_ERR_NO_MEMORY;
err_inval:
    terse_ef_destroy(ef);
    return TERSE_ERR_INVALID_ARG;
}

uint64_t terse_ef_step(terse_ef_h ef)
{
    return ef ? ef->step : 0;
}

uint64_t terse_ef_bytes_sent(terse_ef_h ef)
{
    return ef ? ef->bytes_sent : 0;
}

const float *terse_ef_worker_error(terse_ef_h ef, size_t j)
{
    return ef && ef->ek && j < ef->nt ? ef->ek + ef->off[j] : NULL;
}

const float *terse_ef_server_error(terse_ef_h ef, size_t j)
{
    return ef && ef->es && j < ef->nt ? ef->es + ef->off[j] : NULL;
}

static int averaging_due(const terse_ef_h ef)
{
    return ef->mode != TERSE_EF_MODE_NONE && ef->period && (ef->step + 1) % ef->period == 0 &&
           ef->averaged_step != ef->step + 1;
}

int terse_ef_averaging_due(terse_ef_h ef)
{
    return ef ? averaging_due(ef) : 0;
}

/* e_k and the staging are the same size and placement: a finished step's staging holds the
 * new e_k, so the two trade places instead of copying N floats. */
static void swap_errors(terse_ef_h ef)
{
    float *t = ef->ek;
    ef->ek = ef->stage;
    ef->stage = t;
}

terse_status_t terse_ef_prepare(terse_ef_h ef, const float *const *x, float *const *xh)
{
    if (!ef || (xh && ef->nt && !x))
        return TERSE_ERR_INVALID_ARG;
    if (averaging_due(ef)) {
        /* Algorithm 1 line 7: dense average of e_k, committed only when every rank has it */
        terse_status_t st = terse_allreduce(ef->comm, ef->ek, ef->stage, ef->N, TERSE_DTYPE_FLOAT32,
                                            TERSE_OP_AVG);
        if (st != TERSE_OK)
            return st;
        swap_errors(ef); /* the average becomes e_k; the old e_k is the next staging */
        ef->averaged_step = ef->step + 1;
    }
    if (!xh)
        return TERSE_OK;
    for (size_t j = 0; j < ef->nt; j++) {
        if (!ef->counts[j])
            continue;
        if (!x[j] || !xh[j])
            return TERSE_ERR_INVALID_ARG;
        const float *e = ef->ek ? ef->ek + ef->off[j] : NULL;
        if (ef->mode == TERSE_EF_MODE_SAEF) {
            for (size_t i = 0; i < ef->counts[j]; i++)
                xh[j][i] = x[j][i] - e[i]; /* line 9: one step ahead */
        } else if (xh[j] != x[j]) {
            memcpy(xh[j], x[j], ef->counts[j] * sizeof(float));
        }
    }
    return TERSE_OK;
}

terse_status_t terse_ef_exchange(terse_ef_h ef, const float *const *d, float *const *update)
{
    if (!ef)
        return TERSE_ERR_INVALID_ARG;
    if (ef->nt && (!d || !update)) {
        terse__comm_set_error(ef->comm, "error feedback exchange: NULL %s list", d ? "update" : "step");
        return TERSE_ERR_INVALID_ARG;
    }
    for (size_t j = 0; j < ef->nt; j++) {
        if (ef->counts[j] && (!d[j] || !update[j])) {
            terse__comm_set_error(ef->comm, "error feedback exchange: tensor %zu has a NULL buffer", j);
            return TERSE_ERR_INVALID_ARG;
        }
        float *delta = ef->stage + ef->off[j];
        const float *e = ef->ek ? ef->ek + ef->off[j] : NULL;
        /* lines 12/16: Delta = e_k + (x_half - x') */
        if (e) {
            for (size_t i = 0; i < ef->counts[j]; i++)
                delta[i] = e[i] + d[j][i];
        } else if (ef->counts[j]) {
            memcpy(delta, d[j], ef->counts[j] * sizeof(float));
        }
        ef->ct[j] = (terse_ctensor_t){
            .id = ef->ids[j],
            .count = ef->counts[j],
            .in = delta,
            .out = update[j],
            /* line 18 in place: Delta becomes e_k' once the call succeeded (the buffers swap
             * below), and on failure nothing is written and e_k is as it was */
            .worker_error = e ? delta : NULL,
            .server_error = ef->es ? ef->es + ef->off[j] : NULL, /* line 22 */
        };
    }
    terse_callreduce_params_t prm = {
        .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_STEP,
        .tensors = ef->ct,
        .ntensors = ef->nt,
        .compressor = &ef->c,
        .double_way = ef->double_way,
        .step = ef->step,
    };
    terse__cmp_choice_apply(&ef->choice, &prm);
    terse_request_h req = NULL;
    terse_status_t st = terse_icompressed_allreduce(ef->comm, &prm, &req);
    if (st == TERSE_OK)
        st = terse_wait(req);
    if (st == TERSE_OK) {
        if (ef->ek)
            swap_errors(ef);
        ef->bytes_sent += terse_request_bytes_sent(req);
        ef->step++;
    }
    terse_request_free(req);
    return st;
}

/* ---- checkpoints ----
 * u32 magic, u32 version, u32 mode, u32 double_way, u64 period, u64 step, u64 averaged_step,
 * u64 spec length, spec bytes, u64 ntensors, ntensors x (u64 id, u64 count),
 * e_k (N floats, modes EF/SAEF), e_s (N floats, double-way), u64 digest of all before it. */

static size_t write_state(terse_ef_h ef, uint8_t *buf)
{
    terse__ckpt_wr_t w = {buf, 0};
    uint32_t head[4] = {EF_MAGIC, EF_VERSION, (uint32_t)ef->mode, (uint32_t)ef->double_way};
    terse__ckpt_put(&w, head, sizeof(head));
    terse__ckpt_put_u64(&w, ef->period);
    terse__ckpt_put_u64(&w, ef->step);
    terse__ckpt_put_u64(&w, ef->averaged_step);
    terse__ckpt_put_u64(&w, strlen(ef->spec));
    terse__ckpt_put(&w, ef->spec, strlen(ef->spec));
    terse__ckpt_put_u64(&w, ef->nt);
    for (size_t j = 0; j < ef->nt; j++) {
        terse__ckpt_put_u64(&w, ef->ids[j]);
        terse__ckpt_put_u64(&w, ef->counts[j]);
    }
    if (ef->ek)
        terse__ckpt_put(&w, ef->ek, ef->N * sizeof(float));
    if (ef->es)
        terse__ckpt_put(&w, ef->es, ef->N * sizeof(float));
    if (buf)
        terse__ckpt_put_u64(&w, terse__digest(buf, w.off, EF_MAGIC));
    else
        w.off += 8;
    return w.off;
}

size_t terse_ef_save_size(terse_ef_h ef)
{
    return ef ? write_state(ef, NULL) : 0;
}

terse_status_t terse_ef_save(terse_ef_h ef, void *buf, size_t len, size_t *written_p)
{
    if (!ef || !buf || !written_p || len < terse_ef_save_size(ef))
        return TERSE_ERR_INVALID_ARG;
    *written_p = write_state(ef, buf);
    return TERSE_OK;
}

terse_status_t terse_ef_restore(terse_ef_h ef, const void *buf, size_t len)
{
    if (!ef || !buf)
        return TERSE_ERR_INVALID_ARG;
    const uint8_t *p = buf;
    uint32_t head[4];
    uint64_t digest;
    if (len < sizeof(head) + 8)
        return TERSE_ERR_CORRUPT;
    memcpy(head, p, sizeof(head));
    if (head[0] != EF_MAGIC || head[1] != EF_VERSION)
        return TERSE_ERR_CORRUPT;
    memcpy(&digest, p + len - 8, 8);
    if (digest != terse__digest(p, len - 8, EF_MAGIC))
        return TERSE_ERR_CORRUPT;
    size_t need = terse_ef_save_size(ef);
    if (len != need || head[2] != (uint32_t)ef->mode || head[3] != (uint32_t)ef->double_way)
        return TERSE_ERR_INVALID_ARG;
    /* Everything but step, averaged_step and the errors must equal this state's image. */
    uint8_t *mine = terse__malloc(need, "error-feedback restore check");
    if (!mine)
        return TERSE_ERR_NO_MEMORY;
    write_state(ef, mine);
    size_t fixed = 16 + 8, tail_params = need - 8 - (ef->ek ? ef->N * 4 : 0) - (ef->es ? ef->N * 4 : 0);
    int same = !memcmp(mine, p, fixed) && !memcmp(mine + 40, p + 40, tail_params - 40);
    terse__free(mine);
    if (!same)
        return TERSE_ERR_INVALID_ARG;
    memcpy(&ef->step, p + 24, 8);
    memcpy(&ef->averaged_step, p + 32, 8);
    const uint8_t *q = p + tail_params;
    if (ef->ek) {
        memcpy(ef->ek, q, ef->N * sizeof(float));
        q += ef->N * sizeof(float);
    }
    if (ef->es)
        memcpy(ef->es, q, ef->N * sizeof(float));
    return TERSE_OK;
}
