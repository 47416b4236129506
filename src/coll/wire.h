/* What travels on the wire in front of every payload: the call signature header, its checksum
 * modes, and the tag layout that tells headers, payloads and aborts apart. Senders and
 * receivers of every collective agree through these and nothing else. */
#ifndef TERSE_COLL_WIRE_H
#define TERSE_COLL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TERSE_MSG_MAGIC   0x45535254u /* "TRSE" */
#define TERSE_MSG_VERSION 2

typedef enum terse__coll_kind {
    TERSE_COLL_ALLREDUCE = 1,
    TERSE_COLL_ALLGATHER = 2,
    TERSE_COLL_ALLGATHERV = 3,
    TERSE_COLL_BCAST = 4,
    TERSE_COLL_ALLTOALL = 5,
    TERSE_COLL_ALLTOALLV = 6,
    TERSE_COLL_BARRIER = 7,
    TERSE_COLL_COMPRESSED = 8,
    TERSE_COLL_INTERNAL = 9, /* setup exchanges the library runs by itself */
    TERSE_COLL_REDUCE_SCATTER = 10,
    TERSE_COLL_REDUCE_SCATTER_V = 11,
    TERSE_COLL_REDUCE = 12,
    TERSE_COLL_P2P = 13, /* terse_isend / terse_irecv (p2p.c) */
} terse__coll_kind_t;

/* The sender's TERSE_CHECKSUM, in every header. Any two codes differ in two bits, so a flipped
 * bit gives an invalid code (a corrupt header), never another mode. */
typedef enum terse__sum_mode {
    TERSE_SUM_MODE_NONE = 1,       /* no payload checksums */
    TERSE_SUM_MODE_COMPRESSED = 2, /* TERSE_COLL_COMPRESSED and TERSE_COLL_INTERNAL */
    TERSE_SUM_MODE_ALL = 4,        /* every collective */
} terse__sum_mode_t;

/* On the wire in front of every payload; 64 bytes, little-endian hosts only. */
typedef struct terse__msg_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t coll;
    uint8_t dtype;
    uint8_t op;
    uint32_t seq;
    int32_t root;
    uint64_t count;
    uint64_t aux;      /* digest of per-rank arrays, compressor settings, ... */
    uint64_t len;      /* payload bytes of this message */
    uint64_t sum;      /* terse__checksum of the payload when sum_mode covers coll, else 0 */
    uint16_t algo;
    uint16_t step;
    uint32_t sender;
    uint8_t sum_mode;  /* terse__sum_mode_t: the sender's TERSE_CHECKSUM */
    uint8_t reserved[7]; /* zero */
} terse__msg_hdr_t;
_Static_assert(sizeof(terse__msg_hdr_t) == 64, "the header has no hidden padding");

/* Tag: class (2 bits) | seq (32) | sender (20) | step (10). A message is either one INLINE
 * message (header + payload, payloads up to eager_hdr_bytes) or a HDR message followed by a
 * DATA message (the payload alone, zero-copy rendezvous when large). HDR and INLINE differ in
 * the top bit only, so a receiver of unknown length matches both with one receive. */
#define TERSE_TAG_CLASS_DATA   0ull
#define TERSE_TAG_CLASS_HDR    1ull
#define TERSE_TAG_CLASS_ABORT  2ull
#define TERSE_TAG_CLASS_INLINE 3ull
#define TERSE_TAG_CLASS_SHIFT  62
#define TERSE_MAX_RANKS        (1 << 20)
/* Step of the confirmation round (terse__req_confirm); algorithms use lower steps. */
#define TERSE_STEP_CONFIRM     0x3ff
/* Tag masks: everything; everything but the class's low bit (HDR or INLINE); any step. */
#define TERSE_TAG_MASK_EXACT      (~0ull)
#define TERSE_TAG_MASK_HDR_INLINE (~(1ull << 63))
#define TERSE_TAG_MASK_ANY_STEP   (~0x3ffull)
#define TERSE_TAG_MASK_CLASS      (3ull << TERSE_TAG_CLASS_SHIFT)

static inline uint64_t terse__make_tag(uint64_t cls, uint32_t seq, int sender, uint16_t step)
{
    return (cls << TERSE_TAG_CLASS_SHIFT) | ((uint64_t)seq << 30) |
           ((uint64_t)(sender & 0xfffff) << 10) | (uint64_t)(step & 0x3ff);
}

static inline uint64_t terse__tag_class(uint64_t tag)
{
    return tag >> TERSE_TAG_CLASS_SHIFT;
}

/* Do the messages of a call with this collective and mode carry payload checksums? Sender and
 * receiver decide alike: header validation makes them agree on both. */
static inline int terse__sum_covers(unsigned mode, unsigned coll)
{
    if (mode == TERSE_SUM_MODE_ALL)
        return 1;
    return mode == TERSE_SUM_MODE_COMPRESSED &&
           (coll == TERSE_COLL_COMPRESSED || coll == TERSE_COLL_INTERNAL);
}

/* The TERSE_CHECKSUM in effect, as headers carry it. */
uint8_t terse__sum_mode_configured(void);
int terse__sum_mode_valid(unsigned mode);
const char *terse__sum_mode_name(unsigned mode);
const char *terse__coll_name(int kind);
/* digest of an array, for the header's aux field */
uint64_t terse__digest(const void *data, size_t len, uint64_t seed);

#endif
