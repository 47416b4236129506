/* Error feedback on gradient buckets (terse/grad_ef.h): a table of per-parameter errors keyed
 * by id, Delta formed in the bucket itself and the compressed allreduce writing its update
 * back into the bucket and e = Delta - C(Delta) into the errors (the library's direct commit),
 * so no N-float array is staged or copied. */
#include <terse/grad_ef.h>

#include "coll/coll.h"
#include "core/alloc.h"
#include "cmp_choice.h"

#include <string.h>

typedef struct grad_entry {
    uint32_t id;
    int used;
    size_t count;
    float *e;  /* worker error, NULL without EF */
    float *es; /* server error, NULL single-way */
} grad_entry_t;

struct terse_grad_ef {
    terse_comm_h comm;
    terse_compressor_t compressor;
    terse__cmp_choice_t choice;
    int error_feedback, double_way;
    grad_entry_t *table; /* open addressing, linear probing; cap a power of two */
    size_t cap, n;
    uint64_t calls;
};

static size_t slot_of(uint32_t id, size_t cap)
{
    return (size_t)((id * 2654435761u) & (cap - 1));
}

static grad_entry_t *find(terse_grad_ef_h ef, uint32_t id)
{
    if (!ef->cap)
        return NULL;
    for (size_t i = slot_of(id, ef->cap);; i = (i + 1) & (ef->cap - 1)) {
        if (!ef->table[i].used)
            return NULL;
        if (ef->table[i].id == id)
            return &ef->table[i];
    }
}

static int grow(terse_grad_ef_h ef)
{
    size_t cap = ef->cap ? 2 * ef->cap : 64;
    grad_entry_t *t = terse__calloc(cap, sizeof(*t), "gradient error table");
    if (!t)
        return -1;
    for (size_t j = 0; j < ef->cap; j++) {
        if (!ef->table[j].used)
            continue;
        size_t i = slot_of(ef->table[j].id, cap);
        while (t[i].used)
            i = (i + 1) & (cap - 1);
        t[i] = ef->table[j];
    }
    terse__free(ef->table);
    ef->table = t;
    ef->cap = cap;
    return 0;
}

/* The entry of @id with @count floats, made with zero errors if new. */
static terse_status_t entry(terse_grad_ef_h ef, uint32_t id, size_t count, grad_entry_t **out)
{
    grad_entry_t *g = find(ef, id);
    if (g) {
        if (g->count != count) {
            terse__comm_set_error(ef->comm, "gradient error feedback: parameter %u had %zu "
                                            "elements, now %zu", id, g->count, count);
            return TERSE_ERR_INVALID_ARG;
        }
        *out = g;
        return TERSE_OK;
    }
    if ((ef->n + 1) * 2 > ef->cap && grow(ef) != 0)
        return TERSE_ERR_NO_MEMORY;
    size_t i = slot_of(id, ef->cap);
    while (ef->table[i].used)
        i = (i + 1) & (ef->cap - 1);
    g = &ef->table[i];
    float *e = NULL, *es = NULL;
    size_t bytes = (count ? count : 1) * sizeof(float);
    if (ef->error_feedback && !(e = terse__calloc(1, bytes, "gradient worker error")))
        return TERSE_ERR_NO_MEMORY;
    if (ef->double_way && !(es = terse__calloc(1, bytes, "gradient server error"))) {
        terse__free(e);
        return TERSE_ERR_NO_MEMORY;
    }
    *g = (grad_entry_t){.id = id, .used = 1, .count = count, .e = e, .es = es};
    ef->n++;
    *out = g;
    return TERSE_OK;
}

terse_status_t terse_grad_ef_create(terse_comm_h comm, const terse_grad_ef_params_t *params,
                                    terse_grad_ef_h *ef_p)
{
    terse__cmp_choice_t choice;
    if (!comm || !params || !ef_p || !params->compressor ||
        terse_compressor_validate(params->compressor) != TERSE_OK ||
        terse__cmp_choice_make(params->field_mask, TERSE_GRAD_EF_FIELD_ALGO,
                               TERSE_GRAD_EF_FIELD_HIERARCHY,
                               TERSE_CHOSEN(params, TERSE_GRAD_EF_FIELD_ALGO, algo),
                               TERSE_CHOSEN(params, TERSE_GRAD_EF_FIELD_HIERARCHY, hierarchy),
                               &choice) != 0)
        return TERSE_ERR_INVALID_ARG;
    terse_grad_ef_h ef = terse__calloc(1, sizeof(*ef), "gradient error feedback");
    if (!ef)
        return TERSE_ERR_NO_MEMORY;
    ef->comm = comm;
    ef->compressor = *params->compressor;
    ef->choice = choice;
    ef->error_feedback = params->error_feedback != 0;
    ef->double_way = (params->field_mask & TERSE_GRAD_EF_FIELD_DOUBLE_WAY) && params->double_way;
    *ef_p = ef;
    return TERSE_OK;
}

void terse_grad_ef_destroy(terse_grad_ef_h ef)
{
    if (!ef)
        return;
    for (size_t i = 0; i < ef->cap; i++) {
        terse__free(ef->table[i].e);
        terse__free(ef->table[i].es);
    }
    terse__free(ef->table);
    terse__free(ef);
}

terse_status_t terse_grad_ef_ireduce(terse_grad_ef_h ef, size_t nparams, const uint32_t *ids,
                                     const size_t *counts, float *buf, terse_request_h *req_p)
{
    if (!ef || !req_p || (nparams && (!ids || !counts || !buf)))
        return TERSE_ERR_INVALID_ARG;
    terse_ctensor_t *t = terse__calloc(nparams ? nparams : 1, sizeof(*t), "bucket tensors");
    if (!t)
        return TERSE_ERR_NO_MEMORY;
    terse_status_t st = TERSE_OK;
    size_t off = 0;
    /* First every entry (a parameter listed twice, or with another count, fails before the
     * bucket is touched), then the one pass Delta = e + g. */
    for (size_t j = 0; j < nparams && st == TERSE_OK; j++) {
        grad_entry_t *g;
        st = entry(ef, ids[j], counts[j], &g);
        if (st != TERSE_OK)
            break;
        for (size_t k = 0; k < j; k++) {
            if (t[k].id == ids[j]) {
                terse__comm_set_error(ef->comm, "gradient error feedback: parameter %u twice "
                                                "in one bucket", ids[j]);
                st = TERSE_ERR_INVALID_ARG;
            }
        }
        t[j] = (terse_ctensor_t){.id = ids[j], .count = counts[j], .in = buf + off,
                                 .out = buf + off, .worker_error = g->e, .server_error = g->es};
        off += counts[j];
    }
    if (st == TERSE_OK && ef->error_feedback) {
        for (size_t j = 0; j < nparams; j++) {
            float *d = t[j].out;
            const float *e = t[j].worker_error;
            for (size_t i = 0; i < t[j].count; i++)
                d[i] += e[i];
        }
    }
    if (st == TERSE_OK) {
        terse_callreduce_params_t p = {
            .field_mask = TERSE_CALLREDUCE_FIELD_DOUBLE_WAY | TERSE_CALLREDUCE_FIELD_STEP,
            .tensors = t,
            .ntensors = nparams,
            .compressor = &ef->compressor,
            .double_way = ef->double_way,
            .step = ef->calls,
        };
        terse__cmp_choice_apply(&ef->choice, &p);
        st = terse_icompressed_allreduce(ef->comm, &p, req_p); /* copies the tensor list */
        ef->calls++;
    }
    terse__free(t);
    return st;
}

static const float *error_of(terse_grad_ef_h ef, uint32_t id, size_t *count_p, int server)
{
    grad_entry_t *g = ef ? find(ef, id) : NULL;
    if (count_p)
        *count_p = g ? g->count : 0;
    return g ? (server ? g->es : g->e) : NULL;
}

const float *terse_grad_ef_worker_error(terse_grad_ef_h ef, uint32_t id, size_t *count_p)
{
    return error_of(ef, id, count_p, 0);
}

const float *terse_grad_ef_server_error(terse_grad_ef_h ef, uint32_t id, size_t *count_p)
{
    return error_of(ef, id, count_p, 1);
}

uint64_t terse_grad_ef_calls(terse_grad_ef_h ef)
{
    return ef ? ef->calls : 0;
}

terse_status_t terse_grad_ef_load(terse_grad_ef_h ef, uint32_t id, size_t count, const float *e,
                                  const float *es)
{
    if (!ef)
        return TERSE_ERR_INVALID_ARG;
    grad_entry_t *g;
    terse_status_t st = entry(ef, id, count, &g);
    if (st != TERSE_OK)
        return st;
    /* NULL restores a zero error: a checkpoint of a parameter that had none yet */
    if (g->e)
        e ? memcpy(g->e, e, count * sizeof(float)) : memset(g->e, 0, count * sizeof(float));
    if (g->es)
        es ? memcpy(g->es, es, count * sizeof(float)) : memset(g->es, 0, count * sizeof(float));
    return TERSE_OK;
}

void terse_grad_ef_set_calls(terse_grad_ef_h ef, uint64_t calls)
{
    if (ef)
        ef->calls = calls;
}
