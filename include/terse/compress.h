/* terse: gradient compressors (Top-K, scaled sign, Rand-K, induced, fp16/bf16) and their wire form.
 */
#ifndef TERSE_COMPRESS_H
#define TERSE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <terse/api.h>
#include <terse/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Values are part of the wire header: append only. */
typedef enum terse_compressor_kind {
    TERSE_COMPRESSOR_NONE = 0,    /* float32 as is */
    TERSE_COMPRESSOR_TOPK = 1,    /* k largest |v| per block, (index, value) pairs */
    TERSE_COMPRESSOR_SIGN = 2,    /* (||v||_1 / n) * sign(v) per block, 1 bit per element */
    TERSE_COMPRESSOR_RANDK = 3,   /* k keyed-random entries scaled by n/k; only values travel */
    TERSE_COMPRESSOR_INDUCED = 4, /* topk(v) + randk(v - topk(v)) */
    TERSE_COMPRESSOR_FP16 = 5,    /* IEEE binary16 cast, round to nearest even */
    TERSE_COMPRESSOR_BF16 = 6,    /* bfloat16 cast, round to nearest even */
    TERSE_COMPRESSOR_LAST = 7
} terse_compressor_kind_t;

/* field_mask bits: a field whose bit is clear takes its documented default. kind, ratio
 * (topk, randk, induced) and randk_ratio (induced) are required and have no bit. */
#define TERSE_COMPRESSOR_FIELD_SEED                  (1ull << 0)
#define TERSE_COMPRESSOR_FIELD_BLOCK_SIZE            (1ull << 1)
#define TERSE_COMPRESSOR_FIELD_NONFINITE_PASSTHROUGH (1ull << 2)

typedef struct terse_compressor {
    uint64_t field_mask; /* TERSE_COMPRESSOR_FIELD_* bits for the optional fields below */
    terse_compressor_kind_t kind;
    double ratio;              /* topk / randk ratio in (0, 1]; induced: the top-k ratio */
    double randk_ratio;        /* induced only, in (0, 1] */
    uint64_t seed;             /* randk / induced; default 0 */
    size_t block_size;         /* elements per block, 0 = whole tensor (default) */
    int nonfinite_passthrough; /* default from TERSE_NONFINITE_PASSTHROUGH */
} terse_compressor_t;

/*
 * Non-finite input (NaN, +-Inf, and finite values that overflow fp16/bf16): by default every
 * compressor fails with TERSE_ERR_NONFINITE and writes nothing. With nonfinite_passthrough = 1:
 * none/fp16/bf16 cast them like any value; topk ranks NaN above +-Inf above every finite value;
 * sign's scale becomes NaN or Inf (NaN counts as +); randk/induced carry them in the values
 * they select. Decoders reject non-finite values unless the receiver's compressor passes them.
 */

/**
 * Parses a compressor spec: "none", "fp16", "bf16", "sign", "topk:0.01", "randk:0.01",
 * "induced:0.01,0.01", each optionally followed by ",block=4096", ",seed=7" and
 * ",nonfinite=pass|error".
 * @param [in]  spec   NUL-terminated spec string.
 * @param [out] out_p  Filled (every field set, field_mask has every bit) on success only.
 * @return TERSE_OK, or TERSE_ERR_INVALID_ARG for an unknown or invalid spec.
 */
TERSE_API terse_status_t terse_compressor_parse(const char *spec, terse_compressor_t *out_p);

/**
 * Writes the canonical spec of @p c (it round-trips through terse_compressor_parse).
 * @param [in]  c    A valid compressor.
 * @param [out] buf  Receives the NUL-terminated spec.
 * @param [in]  len  Size of @p buf; TERSE_ERR_INVALID_ARG if too small (buf then holds "").
 */
TERSE_API terse_status_t terse_compressor_format(const terse_compressor_t *c, char *buf,
                                                 size_t len);

/** Checks kind, ratios in (0, 1] and passthrough in {0, 1}. TERSE_OK or TERSE_ERR_INVALID_ARG. */
TERSE_API terse_status_t terse_compressor_validate(const terse_compressor_t *c);

/** Upper bound of the wire bytes terse_compress writes for a tensor of @p n floats (0 if @p c
 *  is invalid). */
TERSE_API size_t terse_compress_max_bytes(const terse_compressor_t *c, size_t n);

/**
 * Compresses a float32 tensor into one self-contained wire message.
 * @param [in]  c            The compressor.
 * @param [in]  v            @p n floats (borrowed for the call).
 * @param [in]  tensor_id    Identifies the tensor; keys randk and is checked by the decoder.
 * @param [in]  step         Training step; keys randk and is checked by the decoder.
 * @param [out] wire         Receives the message; @p wire_cap must be at least
 *                           terse_compress_max_bytes(c, n).
 * @param [out] wire_len_p   Bytes written to @p wire.
 * @param [out] dense_out    NULL, or n floats receiving C(v).
 * @param [out] remainder_out NULL, or n floats receiving v - C(v) (error feedback).
 * @return TERSE_OK; TERSE_ERR_NONFINITE (nothing written); TERSE_ERR_INVALID_ARG.
 */
TERSE_API terse_status_t terse_compress(const terse_compressor_t *c, const float *v, size_t n,
                                        uint32_t tensor_id, uint64_t step, void *wire,
                                        size_t wire_cap, size_t *wire_len_p, float *dense_out,
                                        float *remainder_out);

/**
 * Validates a message made by terse_compress with the same @p c, @p n, @p tensor_id and
 * @p step, then adds C(v) into @p acc (acc[i] += C(v)[i], one float add per element).
 * @param [in]     wire      The message (untrusted).
 * @param [in,out] acc       @p n floats; untouched unless TERSE_OK is returned.
 * @return TERSE_OK, TERSE_ERR_CORRUPT (reason logged at debug level), TERSE_ERR_INVALID_ARG.
 */
TERSE_API terse_status_t terse_decompress(const terse_compressor_t *c, const void *wire,
                                          size_t wire_len, size_t n, uint32_t tensor_id,
                                          uint64_t step, float *acc);

#ifdef __cplusplus
}
#endif
#endif
