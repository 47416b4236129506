/* Compressors, internal side: block-range encode/decode used by the collectives, and the codec
 * vtable each compressor file fills in. */
#ifndef TERSE_COMPRESS_COMPRESS_H
#define TERSE_COMPRESS_COMPRESS_H

#include <terse/compress.h>

#include "core/alloc.h"

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
/* Whether c's codec subtracts a message from a buffer in place (TERSE__CDEC_SUBTRACT). */
int terse__compress_has_subtract(const terse_compressor_t *c);

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

/* ---- the internal API: a prebuilt range, a caller-owned view ---- */

/* The block range a call works on, with the compressor's defaults resolved (the global
 * config is read once, when the range is built). */
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

/* Resolves c into r (no tensor yet: n = 0, no blocks). TERSE_ERR_INVALID_ARG if c is invalid,
 * with msg (kept in r, may be NULL) saying so. */
terse_status_t terse__crange_init(terse__crange_t *r, const terse_compressor_t *c, char *msg,
                                  size_t msglen);

/* Points a resolved range at blocks [first, first+count) of tensor @tensor_id (n elements) at
 * @step, without resolving the compressor again. TERSE_ERR_INVALID_ARG (msg in r) when the
 * blocks lie outside the tensor (r is then unchanged). */
terse_status_t terse__crange_at(terse__crange_t *r, size_t n, uint32_t tensor_id, uint64_t step,
                                size_t first, size_t count);

/* Upper bound of the wire bytes of r's blocks, header included. */
size_t terse__crange_max_bytes(const terse__crange_t *r);

/*
 * What a codec works in, owned by the caller: encode's selections and staging, and the
 * decoded view validate leaves for add / set / remainder (and terse__topk_single_indices) of
 * the same message. Buffers grow and are kept across calls; one view serves one call at a
 * time, so each thread that runs codecs concurrently brings its own. Zero-initialise, free
 * with terse__cview_release.
 */
typedef struct terse__cview {
    terse__buf_t sel;   /* topk/induced encode: one terse__topk_sel_t per block */
    terse__buf_t kept;  /* topk/induced encode: kept indices found by the sampled selection */
    terse__buf_t idx;   /* topk/induced: Top-K indices (validate: every block back to back) */
    terse__buf_t used;  /* topk validate: bytes of each block's part */
    terse__buf_t rand;  /* randk/induced: regenerated Rand-K indices and their bitmap */
    terse__buf_t scale; /* sign encode: one scale per block */
    terse__buf_t stage; /* sign encode of the message alone: it, until every block is finite */
} terse__cview_t;

void terse__cview_release(terse__cview_t *w);

/* The calling thread's own view, for callers that keep none (the legacy entry points). */
terse__cview_t *terse__cview_local(void);

/* Grows @b to @bytes (at least 1); its pointer, or NULL when out of memory. */
void *terse__cview_get(terse__buf_t *b, size_t bytes);

/* Encode: what terse__compress_blocks takes beyond the range. */
typedef struct terse__cenc_args {
    const float *v;      /* whole tensor */
    void *wire;          /* at least terse__crange_max_bytes(r) bytes */
    size_t wire_cap;
    float *dense_out;    /* whole-tensor-indexed, may be NULL */
    float *remainder_out; /* whole-tensor-indexed, may be NULL */
} terse__cenc_args_t;

/* terse__compress_blocks over a prebuilt range; *wire_len_p on success. */
terse_status_t terse__cblocks_encode(const terse__crange_t *r, terse__cview_t *w,
                                     const terse__cenc_args_t *a, size_t *wire_len_p);

/* What a decode does once the message validated. */
typedef enum {
    TERSE__CDEC_CHECK,     /* nothing (terse__decompress_blocks_check) */
    TERSE__CDEC_ADD,       /* out += C(v) (terse__decompress_blocks_add) */
    TERSE__CDEC_SET,       /* out = 0 + C(v) (terse__decompress_blocks_set) */
    TERSE__CDEC_REMAINDER, /* out = v - C(v) (terse__decompress_remainder) */
    TERSE__CDEC_SUBTRACT,  /* out = out - (0 + C(v)): the bits of out minus a SET's result */
} terse__cdec_op_t;

typedef struct terse__cdec_args {
    const void *wire;
    size_t wire_len;
    terse__cdec_op_t op;
    float *out;     /* whole-tensor-indexed: acc, out or rem */
    const float *v; /* REMAINDER: the input the message was made from (may equal out) */
} terse__cdec_args_t;

/* Validates a message over a prebuilt range into @w, then applies a->op; the contracts of the
 * terse__decompress_* functions above, which are wrappers of this. */
terse_status_t terse__cblocks_decode(const terse__crange_t *r, terse__cview_t *w,
                                     const terse__cdec_args_t *a);

/* Frees the calling thread's view (terse__cview_local). */
void terse__compress_scratch_release(void);

/*
 * The same on several threads of the pool (core/pool.h) when the range has enough blocks and
 * elements: blocks are split into fixed parts, each part runs on its thread with that thread's
 * own view, and results are combined in block order, so wire bytes, outputs, status and
 * message equal terse__cblocks_encode / _decode's. Differences, for internal callers only:
 * a failed encode may leave dense_out / remainder_out (not the caller's wire length) partly
 * written, so they must be staging; decode validates every part before any writes, as the
 * one-thread decode does. Decode splits only codecs with fixed block sizes (sign, randk);
 * others decode on the calling thread.
 */
terse_status_t terse__cblocks_encode_par(const terse__crange_t *r, const terse__cenc_args_t *a,
                                         size_t *wire_len_p);
terse_status_t terse__cblocks_decode_par(const terse__crange_t *r, const terse__cdec_args_t *a);

/* Fewest elements per part worth a thread's wake-up (default TERSE__PAR_MIN_ELEMS); tests set
 * it lower so that small calls split too. */
#define TERSE__PAR_MIN_ELEMS ((size_t)1 << 16)
void terse__compress_par_min(size_t elems);

/* ---- for the codec files ---- */

/* k = max(1, floor(ratio * nb)) computed in double; never more than nb. */
size_t terse__compress_k(double ratio, size_t nb);

/*
 * One compressor. encode may assume out has block_max_bytes summed over the range and must
 * write nothing (out, dense, rem) when it fails; dense/rem are whole-tensor-indexed or NULL.
 * validate checks the payload after the header completely (len is exact) and leaves in @w
 * whatever add / set / remainder need of it (the decoded view); they then trust the payload
 * and read @w, which the caller must not touch in between. Codecs keep no other state, so
 * calls with different views may run on different threads at once.
 */
typedef struct terse__codec_ops {
    const char *name;
    /* 1: every block's payload is exactly block_max_bytes, so a block's place in a message is
     * known without parsing the ones before it (parallel decode) */
    int fixed_size;
    size_t (*block_max_bytes)(const terse__crange_t *r, size_t nb);
    terse_status_t (*encode)(const terse__crange_t *r, terse__cview_t *w, const float *v,
                             uint8_t *out, size_t *out_len_p, float *dense, float *rem);
    terse_status_t (*validate)(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p,
                               size_t len);
    void (*add)(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                float *acc);
    /* optional: after validate, out = 0 + C(v) over the range (else memset, then add) */
    void (*set)(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                float *out);
    /* optional: after validate, rem = v - C(v) bit for bit as encode's rem (rem may be v) */
    void (*remainder)(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                      const float *v, float *rem);
    /* optional: after validate, out = out - (0 + C(v)) bit for bit, touching only what
     * changes (a training step applies its update x -= u without u in memory) */
    void (*subtract)(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                     float *out);
} terse__codec_ops_t;

/* The codec of a range, and its payload step after validate (what a decode's op does). */
const terse__codec_ops_t *terse__codec_of(const terse__crange_t *r);
void terse__cblocks_apply(const terse__crange_t *r, terse__cview_t *w, const uint8_t *p, size_t len,
                          const terse__cdec_args_t *a);

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

/* Top-K index encodings (one byte at the start of each block's Top-K part). */
enum {
    TERSE__TOPK_ENC_ABS32 = 0,  /* k little-endian uint32 (blocks of at most 2^32 elements) */
    TERSE__TOPK_ENC_VARINT = 1, /* LEB128 of the first index, then of each gap minus one */
    TERSE__TOPK_ENC_BITMAP = 2, /* one bit per element of the block, padding bits zero */
    TERSE__TOPK_ENC_COUNT = 3
};

/* A single-block Top-K message of range r (block 0 of its tensor), validated in full: *idx_p
 * gets its k indices (in @w's decoded view, valid until @w's next use). */
terse_status_t terse__topk_single_indices(const terse__crange_t *r, terse__cview_t *w,
                                          const void *wire, size_t wire_len,
                                          const uint64_t **idx_p);

/* A key (|x| bits) with at least k of v[0, n) at or above it and none of the k largest below
 * (the k-th largest |v| or a lower bound of its bin), 0 < k <= n. Returns 1 if v holds NaN or
 * Inf, -1 when out of memory, 0 otherwise. */
int terse__topk_lower_key(const float *v, size_t n, size_t k, uint32_t *key_p);

/* Tests: force the Top-K index encoding (TERSE__TOPK_ENC_*), or -1 for the smallest. */
void terse__topk_force_encoding(int enc);

#endif
