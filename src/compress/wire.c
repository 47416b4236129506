/* Message header: written by every encoder, checked field by field by every decoder. */
#include "wire.h"

#include "rng.h"

#include <inttypes.h>
#include <stdio.h>

uint32_t terse__wire_param_hash(const terse_compressor_t *c)
{
    uint64_t ratio = 0, rratio = 0, seed = 0;
    if (c->kind == TERSE_COMPRESSOR_TOPK || c->kind == TERSE_COMPRESSOR_RANDK ||
        c->kind == TERSE_COMPRESSOR_INDUCED)
        memcpy(&ratio, &c->ratio, 8);
    if (c->kind == TERSE_COMPRESSOR_INDUCED)
        memcpy(&rratio, &c->randk_ratio, 8);
    if (c->kind == TERSE_COMPRESSOR_RANDK || c->kind == TERSE_COMPRESSOR_INDUCED)
        seed = c->seed;
    uint64_t h = terse__mix64(ratio ^ 0x7465727365706172ull);
    h = terse__mix64(h ^ rratio);
    h = terse__mix64(h ^ seed);
    return (uint32_t)(h ^ (h >> 32));
}

void terse__wire_put_header(uint8_t *p, const terse__crange_t *r)
{
    terse__put_u32(p, TERSE__WIRE_MAGIC);
    p[4] = TERSE__WIRE_VERSION;
    p[5] = (uint8_t)r->c.kind;
    p[6] = 0;
    p[7] = 0;
    terse__put_u64(p + 8, r->n);
    terse__put_u64(p + 16, r->bs);
    terse__put_u64(p + 24, r->first);
    terse__put_u64(p + 32, r->count);
    terse__put_u64(p + 40, r->step);
    terse__put_u32(p + 48, r->tensor_id);
    terse__put_u32(p + 52, terse__wire_param_hash(&r->c));
}

static terse_status_t mismatch(const terse__crange_t *r, const char *field, uint64_t got,
                               uint64_t want)
{
    if (r->msg && r->msglen)
        snprintf(r->msg, r->msglen,
                 "tensor %" PRIu32 ": corrupt message: header %s is %" PRIu64 ", expected %" PRIu64,
                 r->tensor_id, field, got, want);
    return TERSE_ERR_CORRUPT;
}

terse_status_t terse__wire_check_header(const uint8_t *p, size_t len, const terse__crange_t *r)
{
    if (len < TERSE__WIRE_HEADER_SIZE)
        return mismatch(r, "length", len, TERSE__WIRE_HEADER_SIZE);
    if (terse__get_u32(p) != TERSE__WIRE_MAGIC)
        return mismatch(r, "magic", terse__get_u32(p), TERSE__WIRE_MAGIC);
    if (p[4] != TERSE__WIRE_VERSION)
        return mismatch(r, "version", p[4], TERSE__WIRE_VERSION);
    if (p[5] != (uint8_t)r->c.kind)
        return mismatch(r, "codec", p[5], (uint64_t)r->c.kind);
    if (p[6] || p[7])
        return mismatch(r, "reserved bytes", (uint64_t)p[6] << 8 | p[7], 0);
    if (terse__get_u64(p + 8) != r->n)
        return mismatch(r, "tensor length", terse__get_u64(p + 8), r->n);
    if (terse__get_u64(p + 16) != r->bs)
        return mismatch(r, "block size", terse__get_u64(p + 16), r->bs);
    if (terse__get_u64(p + 24) != r->first)
        return mismatch(r, "first block", terse__get_u64(p + 24), r->first);
    if (terse__get_u64(p + 32) != r->count)
        return mismatch(r, "block count", terse__get_u64(p + 32), r->count);
    if (terse__get_u64(p + 40) != r->step)
        return mismatch(r, "step", terse__get_u64(p + 40), r->step);
    if (terse__get_u32(p + 48) != r->tensor_id)
        return mismatch(r, "tensor id", terse__get_u32(p + 48), r->tensor_id);
    if (terse__get_u32(p + 52) != terse__wire_param_hash(&r->c))
        return mismatch(r, "parameter hash", terse__get_u32(p + 52), terse__wire_param_hash(&r->c));
    return TERSE_OK;
}
