/* Wire format shared by every compressor.
 *
 * A message is a fixed 56-byte header followed by the payload of blocks [first, first+count),
 * block after block, in the codec's own layout (see each codec file). All integers and floats
 * are little-endian and unaligned.
 *
 *   off size field
 *     0    4 magic "TRSE"
 *     4    1 version (1)
 *     5    1 codec (terse_compressor_kind_t)
 *     6    2 reserved, 0
 *     8    8 n: tensor elements
 *    16    8 block size (effective: n when the compressor's block_size is 0)
 *    24    8 first block
 *    32    8 block count
 *    40    8 step
 *    48    4 tensor id
 *    52    4 parameter hash (ratios, seed): mismatched compressors fail loudly
 */
#ifndef TERSE_COMPRESS_WIRE_H
#define TERSE_COMPRESS_WIRE_H

#include "compress.h"

#include <stdint.h>
#include <string.h>

#define TERSE__WIRE_MAGIC       0x45535254u /* "TRSE" read as little-endian */
#define TERSE__WIRE_VERSION     1
#define TERSE__WIRE_HEADER_SIZE 56
#define TERSE__VARINT_MAX       10 /* bytes of a 64-bit LEB128 */

static inline void terse__put_u32(uint8_t *p, uint32_t x)
{
    memcpy(p, &x, 4);
}

static inline void terse__put_u64(uint8_t *p, uint64_t x)
{
    memcpy(p, &x, 8);
}

static inline uint32_t terse__get_u32(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}

static inline uint64_t terse__get_u64(const uint8_t *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

static inline float terse__get_f32(const uint8_t *p)
{
    float x;
    memcpy(&x, p, 4);
    return x;
}

static inline void terse__put_f32(uint8_t *p, float x)
{
    memcpy(p, &x, 4);
}

static inline size_t terse__varint_len(uint64_t x)
{
    size_t len = 1;
    while (x >= 0x80) {
        x >>= 7;
        len++;
    }
    return len;
}

static inline size_t terse__varint_put(uint8_t *p, uint64_t x)
{
    size_t i = 0;
    while (x >= 0x80) {
        p[i++] = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    p[i++] = (uint8_t)x;
    return i;
}

/* Reads one canonical LEB128 value from [p, end). Returns bytes used, or 0 if truncated,
 * longer than 64 bits, or not in its shortest form (a trailing zero byte). */
static inline size_t terse__varint_get(const uint8_t *p, const uint8_t *end, uint64_t *x_p)
{
    uint64_t x = 0;
    for (size_t i = 0; i < TERSE__VARINT_MAX && p + i < end; i++) {
        uint64_t b = p[i];
        if (i == 9 && b > 1)
            return 0; /* bits beyond 64 */
        x |= (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (i > 0 && b == 0)
                return 0; /* overlong */
            *x_p = x;
            return i + 1;
        }
    }
    return 0;
}

/* Hash of what must agree between sender and receiver beyond the header's other fields. */
uint32_t terse__wire_param_hash(const terse_compressor_t *c);

void terse__wire_put_header(uint8_t *p, const terse__crange_t *r);

/* TERSE_OK or TERSE_ERR_CORRUPT with r->msg saying which field disagrees. */
terse_status_t terse__wire_check_header(const uint8_t *p, size_t len, const terse__crange_t *r);

#endif
