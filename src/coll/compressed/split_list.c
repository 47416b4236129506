/* split.c's list messages: the writer of (index, value) pairs and the checker of a received
 * list (split_list.h has the format and the cursor). */
#include "split_list.h"

#include "split.h"

/* A received list: well formed, indices in [lo, hi), values finite. NULL on a malformed one. */
const uint8_t *terse__spl_list_check(terse_request_h req, const uint8_t *m, size_t len, size_t lo,
                                 size_t hi, size_t maxcnt, size_t *cnt_p, int from,
                                 const char *what)
{
    terse__cplan_t *p = terse__cplan(req);
    uint64_t cnt, gb;
    int peer = terse__cplan_peer(p, from);
    if (len < LIST_HDR) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d truncated", what, peer);
        return NULL;
    }
    memcpy(&cnt, m, 8);
    memcpy(&gb, m + 8, 8);
    if (cnt > maxcnt || gb > LIST_MAX_GAP * cnt || gb < cnt || len != LIST_HDR + 4 * cnt + gb) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d: %llu entries in %zu bytes",
                        what, peer, (unsigned long long)cnt, len);
        return NULL;
    }
    const uint8_t *g = m + LIST_HDR + 4 * cnt, *end = g + gb;
    uint64_t next = lo;
    for (size_t j = 0; j < cnt; j++) {
        uint64_t gap = 0;
        unsigned sh = 0;
        int more = 1;
        while (more && g < end && sh < 35) {
            gap |= (uint64_t)(*g & 0x7f) << sh;
            more = *g++ & 0x80;
            sh += 7;
        }
        uint64_t x = next + gap;
        float v = list_val(m, j);
        if (more || x >= hi || key_of(v) >= 0x7f800000u) {
            terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d: entry %zu %s", what, peer,
                            j, key_of(v) >= 0x7f800000u ? "not finite" : "out of range");
            return NULL;
        }
        next = x + 1;
    }
    if (g != end) {
        terse__req_fail(req, TERSE_ERR_CORRUPT, "%s from rank %d: trailing gap bytes", what, peer);
        return NULL;
    }
    *cnt_p = (size_t)cnt;
    return m;
}

/* Writes a list of @cnt (index, value) pairs. */
size_t terse__spl_list_put_pairs(uint8_t *w, size_t lo, const uint64_t *idx, const float *val,
                             size_t cnt)
{
    uint8_t *g = w + LIST_HDR + 4 * cnt, *o = g;
    uint64_t next = lo;
    if (cnt)
        memcpy(w + LIST_HDR, val, 4 * cnt);
    for (size_t j = 0; j < cnt; j++) {
        o = put_gap(o, (uint32_t)(idx[j] - next));
        next = idx[j] + 1;
    }
    uint64_t c = cnt, gb = (uint64_t)(o - g);
    memcpy(w, &c, 8);
    memcpy(w + 8, &gb, 8);
    return LIST_HDR + 4 * cnt + (size_t)gb;
}
