/* Checkpoints of the model-level step state: its parameters (compared on restore, so a state
 * is only restored into one made the same way), the counters, x_t, e_k and e_s, and a
 * checksum over everything before it.
 *   u32 magic, u32 version, u32 mode, u32 double_way, u64 period, u64 spec length, spec,
 *   u64 ntensors, ntensors x (u64 id, u64 count, u64 dtype), u64 nbuckets, nbuckets x u64 end
 *   -- the parameters' image ends here --
 *   u64 step, u64 averaged_step, u64 has_point, x_t (each tensor in its dtype),
 *   e_k (N floats, then N64 doubles; EF/SAEF), e_s (N floats, double-way), u64 checksum */
#include "ckpt.h"
#include "core/alloc.h"
#include "core/checksum.h"
#include "model_state.h"

#define MODEL_MAGIC   0x4c444d54u /* "TMDL" */
#define MODEL_VERSION 1u

static void write_params_image(const terse_model_h m, terse__ckpt_wr_t *w)
{
    uint32_t head[4] = {MODEL_MAGIC, MODEL_VERSION, (uint32_t)m->mode, (uint32_t)m->double_way};
    terse__ckpt_put(w, head, sizeof(head));
    terse__ckpt_put_u64(w, m->period);
    terse__ckpt_put_u64(w, strlen(m->spec));
    terse__ckpt_put(w, m->spec, strlen(m->spec));
    terse__ckpt_put_u64(w, m->nt);
    for (size_t j = 0; j < m->nt; j++) {
        terse__ckpt_put_u64(w, m->t[j].id);
        terse__ckpt_put_u64(w, m->t[j].count);
        terse__ckpt_put_u64(w, (uint64_t)m->t[j].dtype);
    }
    terse__ckpt_put_u64(w, m->nb);
    for (size_t b = 0; b < m->nb; b++)
        terse__ckpt_put_u64(w, m->bucket_end[b]);
}

/* The arrays in image order; the same list serves writing and reading. */
typedef struct image_part {
    void *p;
    size_t bytes;
} image_part_t;

static size_t image_parts(const terse_model_h m, image_part_t parts[4])
{
    size_t n = 0;
    parts[n++] = (image_part_t){m->x, m->xbytes};
    if (m->ek) {
        parts[n++] = (image_part_t){m->ek, m->N * sizeof(float)};
        parts[n++] = (image_part_t){m->ek64, m->ek64 ? m->N64 * sizeof(double) : 0};
    }
    if (m->es)
        parts[n++] = (image_part_t){m->es, m->N * sizeof(float)};
    return n;
}

static size_t write_state(const terse_model_h m, uint8_t *buf)
{
    terse__ckpt_wr_t w = {buf, 0};
    write_params_image(m, &w);
    terse__ckpt_put_u64(&w, m->step);
    terse__ckpt_put_u64(&w, m->averaged_step);
    terse__ckpt_put_u64(&w, (uint64_t)m->has_point);
    image_part_t parts[4];
    size_t np = image_parts(m, parts);
    for (size_t i = 0; i < np; i++)
        terse__ckpt_put(&w, parts[i].p, parts[i].bytes);
    terse__ckpt_put_u64(&w, buf ? terse__checksum(buf, w.off) : 0);
    return w.off;
}

size_t terse_model_save_size(terse_model_h m)
{
    return m ? write_state(m, NULL) : 0;
}

terse_status_t terse_model_save(terse_model_h m, void *buf, size_t len, size_t *written_p)
{
    if (!m || !buf || !written_p || len < terse_model_save_size(m) || m->posted)
        return TERSE_ERR_INVALID_ARG;
    *written_p = write_state(m, buf);
    return TERSE_OK;
}

terse_status_t terse_model_restore(terse_model_h m, const void *buf, size_t len,
                                   void *const *params)
{
    if (!m || !buf || m->posted)
        return TERSE_ERR_INVALID_ARG;
    const uint8_t *p = buf;
    uint32_t head[2];
    uint64_t sum;
    if (len < sizeof(head) + 8)
        return TERSE_ERR_CORRUPT;
    memcpy(head, p, sizeof(head));
    if (head[0] != MODEL_MAGIC || head[1] != MODEL_VERSION)
        return TERSE_ERR_CORRUPT;
    memcpy(&sum, p + len - 8, 8);
    if (sum != terse__checksum(p, len - 8))
        return TERSE_ERR_CORRUPT;
    terse__ckpt_wr_t img = {NULL, 0};
    write_params_image(m, &img);
    if (len != terse_model_save_size(m) || len < img.off + 24)
        return TERSE_ERR_INVALID_ARG;
    uint8_t *mine = terse__malloc(img.off, "model restore check");
    if (!mine)
        return TERSE_ERR_NO_MEMORY;
    img.p = mine;
    img.off = 0;
    write_params_image(m, &img);
    int same = !memcmp(mine, p, img.off);
    terse__free(mine);
    if (!same)
        return TERSE_ERR_INVALID_ARG;
    const uint8_t *q = p + img.off;
    uint64_t has_point;
    memcpy(&m->step, q, 8);
    memcpy(&m->averaged_step, q + 8, 8);
    memcpy(&has_point, q + 16, 8);
    m->has_point = has_point != 0;
    q += 24;
    image_part_t parts[4];
    size_t np = image_parts(m, parts);
    for (size_t i = 0; i < np; i++) {
        if (parts[i].bytes)
            memcpy(parts[i].p, q, parts[i].bytes);
        q += parts[i].bytes;
    }
    if (params && m->has_point)
        terse__model_write_points(m, params);
    return TERSE_OK;
}
