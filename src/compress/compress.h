/* Compressors, internal side: block-range encode/decode used by the collectives, and the codec
 * vtable each compressor file fills in. */
#ifndef TERSE_COMPRESS_COMPRESS_H
#define TERSE_COMPRESS_COMPRESS_H

#include <terse/compress.h>

#include <stddef.h>
#include <stdint.h>

/* Number of blocks of a tensor of n elements under c (0 for n = 0). */
size_t terse__compress_nblocks(const terse_compressor_t *c, size_t n);

/* Upper bound of the wire bytes for blocks [first, first+count) of a tensor of n elements
 * (0 when c is invalid or the range is out of the tensor). */
size_t terse__compress_blocks_max_bytes(const terse_compressor_t *c, size_t n, size_t first,
                                        size_t count);

/*
 * Compresses blocks [first, first+count) of v (v points at the whole tensor). The message is
 * self-contained (header: codec, version, n, block size, first, count, tensor id, step and a
 * hash of the compressor parameters). dense_out / remainder_out (whole-tensor-indexed, may be
 * NULL) get C(v) and v - C(v) for those blocks only, in the same pass. wire_cap must be at least
 * terse__compress_blocks_max_bytes(). On any error nothing is written (not wire, dense_out,
 * remainder_out, *wire_len_p) and msg (may be NULL) receives the reason, e.g.
 * "tensor 3 block 2: NaN at element 17".
 */
terse_status_t terse__compress_blocks(const terse_compressor_t *c, const float *v, size_t n,
                                      uint32_t tensor_id, uint64_t step, size_t first, size_t count,
                                      void *wire, size_t wire_cap, size_t *wire_len_p,
                                      float *dense_out, float *remainder_out, char *msg,
                                      size_t msglen);

/*
 * Validates the message fully against what the receiver expects (codec, parameters, n, block
 * size, tensor id, step, first, count, lengths, indices in range and strictly increasing,
 * canonical encodings, zero padding, finite values unless passthrough, no trailing bytes), then
 * adds C(v) of its blocks into acc (whole-tensor-indexed) with exactly one float add per
 * element it touches. acc is untouched unless TERSE_OK is returned. TERSE_ERR_CORRUPT with msg
 * saying what was wrong; never reads or writes out of bounds.
 */
terse_status_t terse__decompress_blocks_add(const terse_compressor_t *c, const void *wire,
                                            size_t wire_len, size_t n, uint32_t tensor_id,
                                            uint64_t step, size_t first, size_t count, float *acc,
                                            char *msg, size_t msglen);

/* Validates like terse__decompress_blocks_add, then writes out = 0 + C(v) over the message's
 * blocks (every element of them; the bits of zeroing them and adding). One pass where the
 * codec can (sign), instead of a memset pass and an add pass. */
terse_status_t terse__decompress_blocks_set(const terse_compressor_t *c, const void *wire,
                                            size_t wire_len, size_t n, uint32_t tensor_id,
                                            uint64_t step, size_t first, size_t count, float *out,
                                            char *msg, size_t msglen);

/* Validates the message as terse__decompress_blocks_add does, adding nothing. */
terse_status_t terse__decompress_blocks_check(const terse_compressor_t *c, const void *wire,
                                              size_t wire_len, size_t n, uint32_t tensor_id,
                                              uint64_t step, size_t first, size_t count,
                                              char *msg, size_t msglen);

/* Whether c's codec can rebuild the remainder from a message (terse__decompress_remainder). */
int terse__compress_has_remainder(const terse_compressor_t *c);

/*
 * Validates the message (as terse__decompress_blocks_add) that compressing v produced, then
 * writes rem = v - C(v) for its blocks with the bits terse__compress_blocks' remainder_out
 * would have had (whole-tensor-indexed; rem == v is allowed and updates in place). Lets the
 * collectives write errors straight into the caller's buffers once a call succeeded instead of
 * staging them. TERSE_ERR_INVALID_ARG for codecs without terse__compress_has_remainder.
 */
terse_status_t terse__decompress_remainder(const terse_compressor_t *c, const void *wire,
                                           size_t wire_len, size_t n, uint32_t tensor_id,
                                           uint64_t step, size_t first, size_t count,
                                           const float *v, float *rem, char *msg, size_t msglen);

/* Frees the calling thread's scratch buffers (they are reused across calls otherwise). */
void terse__compress_scratch_release(void);

/* ---- for the codec files ---- */

/* The block range a call works on, with the compressor's defaults resolved. */
typedef struct terse__crange {
    terse_compressor_t c; /* resolved: every optional field holds its effective value */
    size_t n;             /* tensor elements */
    size_t bs;            /* effective block size (n when block_size is 0) */
    size_t first, count;  /* block range */
    uint32_t tensor_id;
    uint64_t step;
    char *msg; /* may be NULL */
    size_t msglen;
} terse__crange_t;

static inline size_t terse__crange_block_start(const terse__crange_t *r, size_t b)
{
    return b * r->bs;
}

static inline size_t terse__crange_block_len(const terse__crange_t *r, size_t b)
{
    size_t start = b * r->bs;
    return r->n - start < r->bs ? r->n - start : r->bs;
}

/* k = max(1, floor(ratio * nb)) computed in double; never more than nb. */
size_t terse__compress_k(double ratio, size_t nb);

/*
 * One compressor. encode may assume out has block_max_bytes summed over the range and must
 * write nothing (out, dense, rem) when it fails; dense/rem are whole-tensor-indexed or NULL.
 * validate checks the payload after the header completely (len is exact); add then trusts it.
 */
typedef struct terse__codec_ops {
    const char *name;
    size_t (*block_max_bytes)(const terse__crange_t *r, size_t nb);
    terse_status_t (*encode)(const terse__crange_t *r, const float *v, uint8_t *out,
                             size_t *out_len_p, float *dense, float *rem);
    terse_status_t (*validate)(const terse__crange_t *r, const uint8_t *p, size_t len);
    void (*add)(const terse__crange_t *r, const uint8_t *p, size_t len, float *acc);
    /* optional: after validate, out = 0 + C(v) over the range (else memset, then add) */
    void (*set)(const terse__crange_t *r, const uint8_t *p, size_t len, float *out);
    /* optional: after validate, rem = v - C(v) bit for bit as encode's rem (rem may be v) */
    void (*remainder)(const terse__crange_t *r, const uint8_t *p, size_t len, const float *v,
                      float *rem);
} terse__codec_ops_t;

extern const terse__codec_ops_t terse__codec_none;
extern const terse__codec_ops_t terse__codec_fp16;
extern const terse__codec_ops_t terse__codec_bf16;
extern const terse__codec_ops_t terse__codec_topk;
extern const terse__codec_ops_t terse__codec_sign;
extern const terse__codec_ops_t terse__codec_randk;
extern const terse__codec_ops_t terse__codec_induced;

/* Formats "tensor T block B: <what> at element I" into r->msg for the first element of the
 * block whose |bits| >= limit, logs it at debug level, and returns TERSE_ERR_NONFINITE. */
terse_status_t terse__compress_nonfinite_error(const terse__crange_t *r, const float *v,
                                               size_t block, uint32_t limit, const char *what);

/* Formats "tensor T block B: <reason>" into r->msg and returns TERSE_ERR_CORRUPT. */
terse_status_t terse__compress_corrupt(const terse__crange_t *r, size_t block, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks that count floats stored at p (little-endian) are finite unless r passes them. */
terse_status_t terse__compress_check_values(const terse__crange_t *r, size_t block,
                                            const uint8_t *p, size_t count);

/* Per-thread scratch, reused across calls: slot 0..TERSE__SCRATCH_SLOTS-1. NULL if no memory. */
#define TERSE__SCRATCH_SLOTS 6
void *terse__compress_scratch(int slot, size_t bytes);

/* Top-K index encodings (one byte at the start of each block's Top-K part). */
enum {
    TERSE__TOPK_ENC_ABS32 = 0,  /* k little-endian uint32 (blocks of at most 2^32 elements) */
    TERSE__TOPK_ENC_VARINT = 1, /* LEB128 of the first index, then of each gap minus one */
    TERSE__TOPK_ENC_BITMAP = 2, /* one bit per element of the block, padding bits zero */
    TERSE__TOPK_ENC_COUNT = 3
};

/* A single-block Top-K message of a tensor of n elements, validated in full: *idx_p gets its
 * k indices (the calling thread's scratch, valid until its next decode). */
terse_status_t terse__topk_single_indices(const terse_compressor_t *c, const void *wire,
                                          size_t wire_len, size_t n, uint32_t tensor_id,
                                          uint64_t step, const uint64_t **idx_p, char *msg,
                                          size_t msglen);

/* A key (|x| bits) with at least k of v[0, n) at or above it and none of the k largest below
 * (the k-th largest |v| or a lower bound of its bin), 0 < k <= n. Returns 1 if v holds NaN or
 * Inf, -1 when out of memory, 0 otherwise. */
int terse__topk_lower_key(const float *v, size_t n, size_t k, uint32_t *key_p);

/* Tests: force the Top-K index encoding (TERSE__TOPK_ENC_*), or -1 for the smallest. */
void terse__topk_force_encoding(int enc);

#endif
