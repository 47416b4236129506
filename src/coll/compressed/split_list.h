/* split.c's list messages (the Top-K split's parts and results): the format and its readers.
 * Lists are built and read only by split.c; received ones are checked
 * (terse__spl_list_check) before a cursor walks them. */
#ifndef TERSE_COLL_COMPRESSED_SPLIT_LIST_H
#define TERSE_COLL_COMPRESSED_SPLIT_LIST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct terse_request;

/* A list message: [u64 count][u64 gap bytes][count f32 values][gaps]; indices global, in
 * [lo, hi), strictly increasing, as LEB128 gaps (the first from lo, then from the previous
 * index + 1): ~1.5 bytes an index at 1% instead of 4, like the codec's delta encoding. */
enum { LIST_HDR = 16, LIST_MAX_GAP = 5 };

static inline size_t list_cap(size_t cnt)
{
    return LIST_HDR + (4 + LIST_MAX_GAP) * cnt;
}

static inline uint8_t *put_gap(uint8_t *o, uint32_t gap)
{
    while (gap >= 0x80) {
        *o++ = (uint8_t)(gap | 0x80);
        gap >>= 7;
    }
    *o++ = (uint8_t)gap;
    return o;
}

/* Writes the list of @cnt indices @ip (or, when NULL, @ip64) with values v[index]. */
static inline size_t list_put(uint8_t *w, size_t lo, const uint32_t *ip, const uint64_t *ip64,
                       size_t cnt, const float *v)
{
    uint8_t *g = w + LIST_HDR + 4 * cnt, *o = g;
    uint64_t next = lo;
    for (size_t j = 0; j < cnt; j++) {
        uint64_t x = ip ? ip[j] : ip64[j];
        memcpy(w + LIST_HDR + 4 * j, &v[x], 4);
        o = put_gap(o, (uint32_t)(x - next));
        next = x + 1;
    }
    uint64_t c = cnt, gb = (uint64_t)(o - g);
    memcpy(w, &c, 8);
    memcpy(w + 8, &gb, 8);
    return LIST_HDR + 4 * cnt + (size_t)gb;
}

/* Walks a checked list's indices. */
typedef struct list_cur {
    const uint8_t *g;
    uint64_t next;
} list_cur_t;

static inline list_cur_t list_begin(const uint8_t *m, size_t lo)
{
    uint64_t c;
    memcpy(&c, m, 8);
    return (list_cur_t){m + LIST_HDR + 4 * c, lo};
}

static inline uint64_t list_next(list_cur_t *c)
{
    uint64_t gap = 0;
    for (unsigned sh = 0;; sh += 7) {
        uint8_t b = *c->g++;
        gap |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80) || sh >= 28)
            break;
    }
    uint64_t x = c->next + gap;
    c->next = x + 1;
    return x;
}

static inline size_t list_len(const uint8_t *m)
{
    uint64_t c, gb;
    memcpy(&c, m, 8);
    memcpy(&gb, m + 8, 8);
    return LIST_HDR + 4 * (size_t)c + (size_t)gb;
}

static inline float list_val(const uint8_t *m, size_t j)
{
    float v;
    memcpy(&v, m + LIST_HDR + 4 * j, 4);
    return v;
}

/* A received list: well formed, indices in [lo, hi), at most @maxcnt entries, values finite.
 * NULL on a malformed one (the request failed, naming @what and the sender @from). */
const uint8_t *terse__spl_list_check(struct terse_request *req, const uint8_t *m, size_t len,
                                     size_t lo, size_t hi, size_t maxcnt, size_t *cnt_p,
                                     int from, const char *what);

/* Writes a list of @cnt (index, value) pairs. */
size_t terse__spl_list_put_pairs(uint8_t *w, size_t lo, const uint64_t *idx, const float *val,
                                 size_t cnt);

#endif
