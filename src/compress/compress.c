/* The compressor front end: spec parsing, argument checks, header, dispatch to the codecs. */
#include "compress.h"

#include "core/alloc.h"
#include "core/config.h"
#include "core/half.h"
#include "core/log.h"
#include "core/prof.h"
#include "kernels.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const terse__codec_ops_t *const codecs[TERSE_COMPRESSOR_LAST] = {
    [TERSE_COMPRESSOR_NONE] = &terse__codec_none,
    [TERSE_COMPRESSOR_TOPK] = &terse__codec_topk,
    [TERSE_COMPRESSOR_SIGN] = &terse__codec_sign,
    [TERSE_COMPRESSOR_RANDK] = &terse__codec_randk,
    [TERSE_COMPRESSOR_INDUCED] = &terse__codec_induced,
    [TERSE_COMPRESSOR_FP16] = &terse__codec_fp16,
    [TERSE_COMPRESSOR_BF16] = &terse__codec_bf16,
};

#define ALL_FIELDS                                                                                 \
    (TERSE_COMPRESSOR_FIELD_SEED | TERSE_COMPRESSOR_FIELD_BLOCK_SIZE |                             \
     TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH)

static int uses_ratio(terse_compressor_kind_t kind)
{
    return kind == TERSE_COMPRESSOR_TOPK || kind == TERSE_COMPRESSOR_RANDK ||
           kind == TERSE_COMPRESSOR_INDUCED;
}

static int ratio_ok(double r)
{
    return r > 0.0 && r <= 1.0; /* false for NaN too */
}

terse_status_t terse_compressor_validate(const terse_compressor_t *c)
{
    if (!c || (unsigned)c->kind >= TERSE_COMPRESSOR_LAST)
        return TERSE_ERR_INVALID_ARG;
    if (uses_ratio(c->kind) && !ratio_ok(c->ratio))
        return TERSE_ERR_INVALID_ARG;
    if (c->kind == TERSE_COMPRESSOR_INDUCED && !ratio_ok(c->randk_ratio))
        return TERSE_ERR_INVALID_ARG;
    if ((c->field_mask & TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH) &&
        c->nonfinite_passthrough != 0 && c->nonfinite_passthrough != 1)
        return TERSE_ERR_INVALID_ARG;
    return TERSE_OK;
}

/* Copies c with every unset optional field replaced by its default. */
static terse_status_t resolve(const terse_compressor_t *c, terse_compressor_t *out)
{
    terse_status_t st = terse_compressor_validate(c);
    if (st != TERSE_OK)
        return st;
    *out = *c;
    if (!(c->field_mask & TERSE_COMPRESSOR_FIELD_SEED))
        out->seed = 0;
    if (!(c->field_mask & TERSE_COMPRESSOR_FIELD_BLOCK_SIZE))
        out->block_size = 0;
    if (!(c->field_mask & TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH))
        out->nonfinite_passthrough = terse__config()->nonfinite_passthrough ? 1 : 0;
    if (!uses_ratio(c->kind))
        out->ratio = 0;
    if (c->kind != TERSE_COMPRESSOR_INDUCED)
        out->randk_ratio = 0;
    out->field_mask |= ALL_FIELDS;
    return TERSE_OK;
}

static const char *const kind_names[TERSE_COMPRESSOR_LAST] = {
    [TERSE_COMPRESSOR_NONE] = "none",       [TERSE_COMPRESSOR_TOPK] = "topk",
    [TERSE_COMPRESSOR_SIGN] = "sign",       [TERSE_COMPRESSOR_RANDK] = "randk",
    [TERSE_COMPRESSOR_INDUCED] = "induced", [TERSE_COMPRESSOR_FP16] = "fp16",
    [TERSE_COMPRESSOR_BF16] = "bf16",
};

static int parse_double(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (*end || errno || !ratio_ok(d))
        return -1;
    *out = d;
    return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

terse_status_t terse_compressor_parse(const char *spec, terse_compressor_t *out_p)
{
    if (!spec || !out_p)
        return TERSE_ERR_INVALID_ARG;
    terse_compressor_t c = {0};
    const char *tok = spec;
    size_t len = strcspn(tok, ",");
    size_t nlen = strcspn(tok, ":,");
    int kind = -1;
    for (int k = 0; k < TERSE_COMPRESSOR_LAST; k++)
        if (strlen(kind_names[k]) == nlen && !strncmp(tok, kind_names[k], nlen))
            kind = k;
    if (kind < 0)
        goto invalid;
    c.kind = (terse_compressor_kind_t)kind;
    int has_ratio = nlen < len; /* a ':' inside the first token */
    if (has_ratio != uses_ratio(c.kind))
        goto invalid;
    if (has_ratio && parse_double(tok + nlen + 1, len - nlen - 1, &c.ratio))
        goto invalid;
    tok += len;
    if (c.kind == TERSE_COMPRESSOR_INDUCED) {
        if (*tok != ',')
            goto invalid;
        tok++;
        len = strcspn(tok, ",");
        if (parse_double(tok, len, &c.randk_ratio))
            goto invalid;
        tok += len;
    }
    uint64_t seen = 0;
    c.nonfinite_passthrough = terse__config()->nonfinite_passthrough ? 1 : 0;
    while (*tok == ',') {
        tok++;
        len = strcspn(tok, ",");
        const char *eq = memchr(tok, '=', len);
        if (!eq)
            goto invalid;
        size_t klen = (size_t)(eq - tok), vlen = len - klen - 1;
        uint64_t x, bit;
        if (klen == 5 && !strncmp(tok, "block", 5)) {
            bit = TERSE_COMPRESSOR_FIELD_BLOCK_SIZE;
            if (parse_u64(eq + 1, vlen, &x) || x > SIZE_MAX)
                goto invalid;
            c.block_size = (size_t)x;
        } else if (klen == 4 && !strncmp(tok, "seed", 4)) {
            bit = TERSE_COMPRESSOR_FIELD_SEED;
            if (parse_u64(eq + 1, vlen, &c.seed))
                goto invalid;
        } else if (klen == 9 && !strncmp(tok, "nonfinite", 9)) {
            bit = TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH;
            if (vlen == 4 && !strncmp(eq + 1, "pass", 4))
                c.nonfinite_passthrough = 1;
            else if (vlen == 5 && !strncmp(eq + 1, "error", 5))
                c.nonfinite_passthrough = 0;
            else
                goto invalid;
        } else {
            goto invalid;
        }
        if (seen & bit)
            goto invalid; /* the same option twice is more likely a typo than intended */
        seen |= bit;
        tok += len;
    }
    if (*tok)
        goto invalid;
    c.field_mask = ALL_FIELDS;
    *out_p = c;
    return TERSE_OK;
invalid:
    terse_log_debug("invalid compressor spec '%s'", spec);
    return TERSE_ERR_INVALID_ARG;
}

/* Shortest "%.*g" that reads back as the same double. */
static void format_double(char *buf, size_t len, double d)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

terse_status_t terse_compressor_format(const terse_compressor_t *c, char *buf, size_t len)
{
    terse_compressor_t r;
    if (!buf || len == 0 || resolve(c, &r) != TERSE_OK)
        return TERSE_ERR_INVALID_ARG;
    char tmp[256], a[40], b[40];
    int w = snprintf(tmp, sizeof(tmp), "%s", kind_names[r.kind]);
    if (uses_ratio(r.kind)) {
        format_double(a, sizeof(a), r.ratio);
        w += snprintf(tmp + w, sizeof(tmp) - (size_t)w, ":%s", a);
    }
    if (r.kind == TERSE_COMPRESSOR_INDUCED) {
        format_double(b, sizeof(b), r.randk_ratio);
        w += snprintf(tmp + w, sizeof(tmp) - (size_t)w, ",%s", b);
    }
    if (r.block_size)
        w += snprintf(tmp + w, sizeof(tmp) - (size_t)w, ",block=%zu", r.block_size);
    if (r.seed)
        w += snprintf(tmp + w, sizeof(tmp) - (size_t)w, ",seed=%" PRIu64, r.seed);
    /* Only when it differs from what parse would assume, so specs stay short. */
    if (r.nonfinite_passthrough != (terse__config()->nonfinite_passthrough ? 1 : 0))
        w += snprintf(tmp + w, sizeof(tmp) - (size_t)w, ",nonfinite=%s",
                      r.nonfinite_passthrough ? "pass" : "error");
    if ((size_t)w >= len) {
        buf[0] = 0;
        return TERSE_ERR_INVALID_ARG;
    }
    memcpy(buf, tmp, (size_t)w + 1);
    return TERSE_OK;
}

size_t terse__compress_k(double ratio, size_t nb)
{
    double f = floor(ratio * (double)nb);
    size_t k = f < 1.0 ? 1 : (f >= (double)nb ? nb : (size_t)f);
    return k;
}

size_t terse__compress_nblocks(const terse_compressor_t *c, size_t n)
{
    size_t bs = c && (c->field_mask & TERSE_COMPRESSOR_FIELD_BLOCK_SIZE) ? c->block_size : 0;
    if (n == 0)
        return 0;
    return bs == 0 ? 1 : (n - 1) / bs + 1;
}

terse_status_t terse__crange_init(terse__crange_t *r, const terse_compressor_t *c, char *msg,
                                  size_t msglen)
{
    memset(r, 0, sizeof(*r));
    r->msg = msg;
    r->msglen = msglen;
    if (resolve(c, &r->c) != TERSE_OK) {
        if (msg && msglen)
            snprintf(msg, msglen, "invalid compressor");
        return TERSE_ERR_INVALID_ARG;
    }
    return TERSE_OK;
}

terse_status_t terse__crange_at(terse__crange_t *r, size_t n, uint32_t tensor_id, uint64_t step,
                                size_t first, size_t count)
{
    size_t nblocks = terse__compress_nblocks(&r->c, n);
    if (first > nblocks || count > nblocks - first) {
        if (r->msg && r->msglen)
            snprintf(r->msg, r->msglen,
                     "tensor %" PRIu32 ": blocks [%zu, %zu) outside its %zu blocks", tensor_id,
                     first, first + count, nblocks);
        return TERSE_ERR_INVALID_ARG;
    }
    r->n = n;
    r->bs = r->c.block_size ? r->c.block_size : n;
    r->first = first;
    r->count = count;
    r->tensor_id = tensor_id;
    r->step = step;
    return TERSE_OK;
}

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t terse__crange_max_bytes(const terse__crange_t *r)
{
    const terse__codec_ops_t *ops = codecs[r->c.kind];
    size_t total = TERSE__WIRE_HEADER_SIZE;
    if (r->count == 0)
        return total;
    /* every block but the tensor's last has bs elements */
    size_t last = r->first + r->count - 1;
    size_t full = r->count - 1;
    size_t per = ops->block_max_bytes(r, r->bs);
    total = sat_add(total, full && per > SIZE_MAX / full ? SIZE_MAX : per * full);
    return sat_add(total, ops->block_max_bytes(r, terse__crange_block_len(r, last)));
}

terse_status_t terse__cblocks_encode(const terse__crange_t *r, terse__cview_t *w,
                                     const terse__cenc_args_t *a, size_t *wire_len_p)
{
    size_t need = terse__crange_max_bytes(r);
    if (!wire_len_p || !a->wire || (r->count && !a->v) || a->wire_cap < need) {
        if (r->msg && r->msglen)
            snprintf(r->msg, r->msglen,
                     "tensor %" PRIu32 ": invalid arguments (wire buffer of %zu bytes, need %zu)",
                     r->tensor_id, a->wire_cap, need);
        return TERSE_ERR_INVALID_ARG;
    }
    size_t plen = 0;
    uint8_t *out = a->wire;
    terse_status_t st = codecs[r->c.kind]->encode(r, w, a->v, out + TERSE__WIRE_HEADER_SIZE,
                                                  &plen, a->dense_out, a->remainder_out);
    if (st != TERSE_OK)
        return st;
    terse__wire_put_header(out, r);
    *wire_len_p = TERSE__WIRE_HEADER_SIZE + plen;
    return TERSE_OK;
}

static terse_status_t null_buffer(const terse__crange_t *r)
{
    if (r->msg && r->msglen)
        snprintf(r->msg, r->msglen, "tensor %" PRIu32 ": NULL buffer", r->tensor_id);
    return TERSE_ERR_INVALID_ARG;
}

/* Header checks, then the codec's full validation into @w: what every decode starts with. */
static terse_status_t decode_validate(const terse__crange_t *r, terse__cview_t *w,
                                      const void *wire, size_t wire_len)
{
    if (!wire && wire_len)
        return null_buffer(r);
    const uint8_t *p = wire;
    terse_status_t st = terse__wire_check_header(p, wire_len, r);
    if (st != TERSE_OK)
        return st;
    return codecs[r->c.kind]->validate(r, w, p + TERSE__WIRE_HEADER_SIZE,
                                       wire_len - TERSE__WIRE_HEADER_SIZE);
}

/* out = 0 + C(v) over the range: the codec's one pass, or zeros then add. */
static void decode_set(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                       float *out)
{
    const terse__codec_ops_t *ops = codecs[r->c.kind];
    if (ops->set) {
        ops->set(r, w, p, len, out);
        return;
    }
    size_t last = r->first + r->count - 1;
    size_t lo = terse__crange_block_start(r, r->first);
    size_t hi = terse__crange_block_start(r, last) + terse__crange_block_len(r, last);
    memset(out + lo, 0, (hi - lo) * sizeof(float));
    terse__prof_io(0, (hi - lo) * sizeof(float));
    ops->add(r, w, p, len, out);
}

int terse__compress_has_remainder(const terse_compressor_t *c)
{
    return c && (unsigned)c->kind < sizeof(codecs) / sizeof(codecs[0]) && codecs[c->kind] &&
           codecs[c->kind]->remainder;
}

int terse__compress_has_subtract(const terse_compressor_t *c)
{
    return c && (unsigned)c->kind < sizeof(codecs) / sizeof(codecs[0]) && codecs[c->kind] &&
           codecs[c->kind]->subtract;
}

terse_status_t terse__cblocks_decode(const terse__crange_t *r, terse__cview_t *w,
                                     const terse__cdec_args_t *a)
{
    const terse__codec_ops_t *ops = codecs[r->c.kind];
    if ((a->op == TERSE__CDEC_REMAINDER && !ops->remainder) ||
        (a->op == TERSE__CDEC_SUBTRACT && !ops->subtract)) {
        if (r->msg && r->msglen)
            snprintf(r->msg, r->msglen, "tensor %" PRIu32 ": codec %s", r->tensor_id,
                     a->op == TERSE__CDEC_REMAINDER ? "rebuilds no remainder"
                                                    : "subtracts in place no message");
        return TERSE_ERR_INVALID_ARG;
    }
    if (r->count && a->op != TERSE__CDEC_CHECK &&
        (!a->out || (a->op == TERSE__CDEC_REMAINDER && !a->v)))
        return null_buffer(r);
    terse_status_t st = decode_validate(r, w, a->wire, a->wire_len);
    if (st != TERSE_OK)
        return st;
    terse__cblocks_apply(r, w, (const uint8_t *)a->wire + TERSE__WIRE_HEADER_SIZE,
                         a->wire_len - TERSE__WIRE_HEADER_SIZE, a);
    return TERSE_OK;
}

const terse__codec_ops_t *terse__codec_of(const terse__crange_t *r)
{
    return codecs[r->c.kind];
}

void terse__cblocks_apply(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                          const terse__cdec_args_t *a)
{
    const terse__codec_ops_t *ops = codecs[r->c.kind];
    switch (a->op) {
    case TERSE__CDEC_CHECK:
        break;
    case TERSE__CDEC_ADD:
        ops->add(r, w, p, len, a->out);
        break;
    case TERSE__CDEC_SET:
        if (r->count)
            decode_set(r, w, p, len, a->out);
        break;
    case TERSE__CDEC_REMAINDER:
        ops->remainder(r, w, p, len, a->v, a->out);
        break;
    case TERSE__CDEC_SUBTRACT:
        ops->subtract(r, w, p, len, a->out);
        break;
    }
}

terse_status_t terse__compress_nonfinite_error(const terse__crange_t *r, const float *v,
                                               size_t block, uint32_t limit, const char *what)
{
    size_t start = terse__crange_block_start(r, block), nb = terse__crange_block_len(r, block);
    size_t i = 0;
    while (i < nb && (terse__f32_bits(v[start + i]) & TERSE__ABS_MASK) < limit)
        i++;
    char desc[64];
    float x = i < nb ? v[start + i] : 0.0f;
    if (isnan(x))
        snprintf(desc, sizeof(desc), "NaN");
    else if (isinf(x))
        snprintf(desc, sizeof(desc), "%cInf", x < 0 ? '-' : '+');
    else
        snprintf(desc, sizeof(desc), "%g (overflows %s)", (double)x, what);
    char buf[256];
    snprintf(buf, sizeof(buf), "tensor %" PRIu32 " block %zu: %s at element %zu", r->tensor_id,
             block, desc, start + i);
    terse_log_debug("%s", buf);
    if (r->msg && r->msglen)
        snprintf(r->msg, r->msglen, "%s", buf);
    return TERSE_ERR_NONFINITE;
}

terse_status_t terse__compress_corrupt(const terse__crange_t *r, size_t block, const char *fmt, ...)
{
    char why[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    terse_log_debug("tensor %" PRIu32 " block %zu: corrupt message: %s", r->tensor_id, block, why);
    if (r->msg && r->msglen)
        snprintf(r->msg, r->msglen, "tensor %" PRIu32 " block %zu: corrupt message: %s",
                 r->tensor_id, block, why);
    return TERSE_ERR_CORRUPT;
}

terse_status_t terse__compress_check_values(const terse__crange_t *r, size_t block,
                                            const uint8_t *p, size_t count)
{
    if (r->c.nonfinite_passthrough)
        return TERSE_OK;
    /* through an aligned bounce buffer so the vector kernel can scan unaligned wire bytes */
    const terse__ckernels_t *kern = terse__ckernels();
    float buf[512];
    for (size_t j = 0; j < count; j += 512) {
        size_t m = count - j < 512 ? count - j : 512;
        memcpy(buf, p + 4 * j, 4 * m);
        if (!kern->any_abs_ge(buf, m, TERSE__NONFINITE))
            continue;
        size_t e = 0;
        while ((terse__f32_bits(buf[e]) & TERSE__ABS_MASK) < TERSE__NONFINITE)
            e++;
        return terse__compress_corrupt(r, block, "non-finite value at position %zu", j + e);
    }
    return TERSE_OK;
}

void *terse__cview_get(terse__buf_t *b, size_t bytes)
{
    b->what = "compression view";
    return terse__buf_reserve(b, bytes ? bytes : 1) ? NULL : b->ptr;
}

void terse__cview_release(terse__cview_t *w)
{
    terse__buf_release(&w->sel);
    terse__buf_release(&w->kept);
    terse__buf_release(&w->idx);
    terse__buf_release(&w->used);
    terse__buf_release(&w->rand);
    terse__buf_release(&w->scale);
    terse__buf_release(&w->stage);
}

static _Thread_local terse__cview_t local_view;

terse__cview_t *terse__cview_local(void)
{
    return &local_view;
}

void terse__compress_scratch_release(void)
{
    terse__cview_release(&local_view);
}
