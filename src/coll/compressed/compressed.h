/* Compressed allreduce: the plan every algorithm shares (tensors fused into one global element
 * space, blocks grouped into segments by owner) and the steps they are built from.
 *
 * Numbers every algorithm produces, whatever moves where:
 *   acc  = 0, then acc += C(Delta_k) for k = 0..K-1 (one float add per element a message
 *          touches; dense copies add +-0 elsewhere, which never changes acc since acc is
 *          never -0.0 after starting at +0.0)
 *   avg  = acc / (float)K
 *   single-way: out = avg
 *   double-way: d = e_s + avg; out = 0 + decode(C(d)); e_s' = d - C(d)
 * Who computes a block's avg (every rank, or the block's owner) is the only difference. */
#ifndef TERSE_COLL_COMPRESSED_H
#define TERSE_COLL_COMPRESSED_H

#include <terse/compressed.h>

#include "coll/algos.h"
#include "compress/compress.h"

/* Algorithm ids on the wire, kept clear of the dense ones in coll/algos.h. */
enum {
    TERSE_ALGO_CMP_SPARSE_ALLGATHER = 32,
    TERSE_ALGO_CMP_SPARSE_RS_AG = 33,
    TERSE_ALGO_CMP_SIGN_ALLGATHER = 34,
    TERSE_ALGO_CMP_SIGN_A2A_AG = 35,
    TERSE_ALGO_CMP_DENSE = 36,
    TERSE_ALGO_CMP_HIER_NODE = 37,
};

extern const terse__algo_t terse__cmp_sparse_allgather_algo;
extern const terse__algo_t terse__cmp_sparse_rs_ag_algo;
extern const terse__algo_t terse__cmp_sign_allgather_algo;
extern const terse__algo_t terse__cmp_sign_a2a_ag_algo;
extern const terse__algo_t terse__cmp_dense_algo;
extern const terse__algo_t terse__cmp_hier_node_algo;

/* A run of consecutive blocks of one tensor served by one owner (at most seg_cap elements
 * unless one block is larger, so chunks can travel while the next ones compress). */
typedef struct terse__cseg {
    size_t tensor;          /* index into the plan's tensors */
    size_t first, count;    /* blocks */
    size_t elem_off, elem_len; /* elements, within the tensor */
    int owner;
} terse__cseg_t;

/* A packed message whose segments [s_lo, s_hi) hold server results (double-way outputs). */
typedef struct terse__csrv {
    const uint8_t *buf;
    size_t len, s_lo, s_hi;
    int from;
} terse__csrv_t;

/* One segment's message inside a packed message. */
typedef struct terse__cpart {
    const uint8_t *p;
    size_t len;
} terse__cpart_t;

/* Hierarchical mode (hier.c): where the host exchange around the leaders' algorithm stands. */
typedef enum {
    TERSE_CHIER_START,      /* nothing posted yet */
    TERSE_CHIER_REDUCE,     /* leader: receiving the host's inputs one local rank at a time */
    TERSE_CHIER_INNER,      /* leader: the leaders' algorithm runs */
    TERSE_CHIER_DOWN,       /* the result (and e_h) on its way from the leader to its ranks */
    TERSE_CHIER_CONFIRMING, /* the confirmation round among every rank is posted */
} terse__chier_phase_t;

/* The hierarchy wrapper's own state: the leaders' algorithm keeps its own in req->state. */
typedef struct terse__chier {
    terse__chier_phase_t phase;
    int next_local;   /* leader: the local rank whose input comes next */
    int defer_commit; /* terse__cplan_commit only records its range (hier.c commits later) */
    size_t commit_lo, commit_hi;
    float *stage;     /* leader: the host sum and one local input (the request's scratch2) */
} terse__chier_t;

/* A commit is the last step of every algorithm: it writes the caller's buffers once every
 * participant confirmed. @serr_lo/@serr_hi: the segments whose server errors this rank
 * computed (terse__cplan_commit); schedules that know their own ignore them. */
typedef terse_status_t (*terse__ccommit_fn_t)(terse_request_h req, size_t serr_lo,
                                             size_t serr_hi);

/* A commit held back at the caller's request (terse__icompressed_allreduce_held): the
 * request completes having validated and agreed on everything and written nothing, and the
 * caller commits it later (terse__compressed_commit), or drops it by freeing the request. */
typedef enum {
    TERSE_CHOLD_NONE,      /* commit as the algorithm finishes */
    TERSE_CHOLD_WANTED,    /* hold the commit when the algorithm reaches it */
    TERSE_CHOLD_HELD,      /* reached: commit and range recorded, nothing written (the
                            * caller's commit then frees the plan with the request's state) */
} terse__chold_phase_t;

typedef struct terse__chold {
    terse__chold_phase_t phase;
    terse__ccommit_fn_t commit;
    size_t serr_lo, serr_hi;
} terse__chold_t;

/* What the caller asked for, copied when the call is posted. */
typedef struct terse__ccall {
    terse_compressor_t compressor;
    terse__crange_t range;     /* the compressor resolved once; segments retarget copies */
    int double_way;
    uint64_t step;
    size_t ntensors;
    terse_ctensor_t *tensors;  /* owned copy of the caller's array, never rewritten */
    const float *input;        /* what this rank compresses, in global element space; NULL:
                                * each tensor's own in (hier.c: the leader's host average) */
} terse__ccall_t;

/* Where every element goes: a function of the tensors' ids and counts, the compressor and the
 * participants only, so the same for every step of a training run (error feedback sends the
 * same list each time). The tensors are fused into one global element space. */
typedef struct terse__cgeom {
    int nparts, me;            /* participants (comm ranks, or hosts in hier mode); this one */
    const int *peer;           /* nparts comm ranks (hier mode: the leaders), NULL: identity */
    size_t *tensor_off;        /* ntensors + 1 global element offsets */
    size_t nelems;             /* elements over all tensors */
    terse__cseg_t *seg;        /* segments in global element order */
    size_t nseg;
    size_t seg_cap;            /* most elements per segment when blocks allow
                                * (TERSE_PIPELINE_BYTES) */
    size_t nblocks;            /* blocks over all tensors */
    size_t *own_seg;           /* nparts + 1: owner r serves segments [own_seg[r], own_seg[r+1]) */
    size_t *own_elem;          /* nparts + 1: ... and elements [own_elem[r], own_elem[r+1]) */
    size_t *own_cap;           /* nparts: packed-message capacity of owner r's segments */
    size_t nchunk;             /* allgather pipeline: chunk c = segments
                                * [chunk_seg[c], chunk_seg[c+1]) */
    size_t *chunk_seg;         /* nchunk + 1 */
    size_t *chunk_cap;         /* nchunk + 1: packed capacity offsets of the chunks */
    int any_werr, any_serr;    /* some tensor has a worker / server error buffer */
} terse__cgeom_t;

/* The buffers of one call, carved from the request's pooled scratch (terse__cplan_layout),
 * and how much of them is filled. */
typedef struct terse__cbufs {
    /* Direct commit: with a codec that rebuilds remainders, errors are written once a call
     * succeeded from the inputs and the messages (terse__decompress_remainder), and
     * double-way outputs are decoded from the server messages into the callers' buffers,
     * instead of being staged in full and copied: about three memory passes less per call. */
    int direct_werr, direct_serr, direct_out;
    uint8_t *worker_msg;       /* this rank's packed worker message */
    size_t *worker_seg_off, *worker_seg_end; /* nseg: byte range of each segment in it */
    size_t worker_fill;        /* bytes of worker_msg compressed so far */
    uint8_t *server_msg;       /* packed server message of the segments computed here */
    size_t server_len;
    uint8_t **recv;            /* nparts receive buffers */
    int *recv_at;              /* transfer index of each posted receive: [c * nparts + q] for
                                * chunk c from participant q (allgather), [q] (owner schedules,
                                * per round) */
    terse__cpart_t *parts;     /* nparts x nseg: participant q's message of segment s */
    terse__csrv_t *server_msgs; /* direct_out: the server messages, nparts at most */
    int nserver_msgs;
    float *acc;                /* the sum of the participants' C(Delta), then d = e_s + avg */
    float *out, *werr, *serr;  /* staged outputs and errors (not direct) */
    float *cdense;             /* the dense copy of this rank's C(Delta) (TERSE_CPLAN_DENSE) */
} terse__cbufs_t;

typedef struct terse__cplan {
    terse__ccall_t call;
    terse__cgeom_t geo;
    terse__cbufs_t buf;
    const terse__algo_t *algo; /* the flat algorithm chosen (the leaders' one in hier mode) */
    terse__chier_t hier;       /* hier mode: nparts and me count hosts, peer maps to leaders */
    terse__chold_t hold;
    /* During a held commit: ntensors flags, tensor j's out = out - result where set (the
     * caller applies an update in place), out = result elsewhere. NULL: out = result. */
    const unsigned char *out_subtract;
    void *sched_mem;           /* a schedule's own allocation (split.c's blocks), freed with
                                * the plan */
} terse__cplan_t;

static inline terse__cplan_t *terse__cplan(terse_request_h req)
{
    return (terse__cplan_t *)req->algo_data;
}

/* Builds the plan of validated params (owner split of blocks by elements) among @K
 * participants of which this rank is @rank (comm size and rank, or hosts in hier mode). The
 * request that runs it owns it (req->algo_data) and frees it in terse__cplan_cleanup. */
terse_status_t terse__cplan_create(const terse_callreduce_params_t *params, int K, int rank,
                                   terse__cplan_t **plan_p);
void terse__cplan_free(terse__cplan_t *p);
void terse__cplan_cleanup(terse_request_h req);

/* The plan's range at blocks [first, first+count) of tensor @j, reasons into @msg. */
static inline terse_status_t terse__cplan_range(const terse__cplan_t *p, size_t j, size_t first,
                                                size_t count, char *msg, size_t ml,
                                                terse__crange_t *r)
{
    *r = p->call.range;
    r->msg = msg;
    r->msglen = ml;
    return terse__crange_at(r, p->call.tensors[j].count, p->call.tensors[j].id, p->call.step, first,
                            count);
}

/* What tensor @j's compression reads. */
static inline const float *terse__cplan_in(const terse__cplan_t *p, size_t j)
{
    return p->call.input ? p->call.input + p->geo.tensor_off[j] : p->call.tensors[j].in;
}

/* @x rounded up to a cache line (buffers carved from one scratch area). */
static inline size_t terse__align64(size_t x)
{
    return (x + 63) & ~(size_t)63;
}

/* Global element where segment @s starts (N past the last). */
static inline size_t terse__cplan_seg_elem(const terse__cplan_t *p, size_t s)
{
    return s < p->geo.nseg ? p->geo.tensor_off[p->geo.seg[s].tensor] + p->geo.seg[s].elem_off
                           : p->geo.nelems;
}

/* Elements per block of an @n-element tensor under @c (n when unblocked). */
static inline size_t terse__cplan_block_size(const terse_compressor_t *c, size_t n)
{
    size_t bs = (c->field_mask & TERSE_COMPRESSOR_FIELD_BLOCK_SIZE) ? c->block_size : 0;
    return bs == 0 || bs > n ? n : bs;
}

/* Whether whole blocks share out over the owners: enough blocks, and every owner serving at
 * least a quarter of an even share of the elements. Same on every rank. */
int terse__cplan_balanced(const terse__cplan_t *p);

/* d = e_s + acc / K in acc over global elements [lo, hi) (the server's input, as
 * terse__cplan_serve forms it; e_s = 0 for tensors without one). */
void terse__cplan_server_input(terse__cplan_t *p, size_t lo, size_t hi);

/* Flags of terse__cplan_layout. */
enum {
    TERSE_CPLAN_DENSE = 1,       /* also the N-float dense copy of C(Delta_k) (cdense) */
    TERSE_CPLAN_SERVER_MSGS = 2, /* double-way outputs arrive as server messages (direct_out) */
};

/* Carves the buffers out of the request's scratch; @rcap: bytes of each of the K receive
 * buffers. Decides the direct commit. Fails the request on no memory. */
terse_status_t terse__cplan_layout(terse_request_h req, size_t rcap, int flags);

/* Compresses segments [lo, hi) of this rank's inputs into worker_msg after what is there (worker
 * errors into werr when staged), polling the transport between segments so what was sent
 * travels meanwhile. */
terse_status_t terse__cplan_compress(terse_request_h req, size_t lo, size_t hi);

/* What terse__cplan_unpack does with each segment of a packed message. */
typedef enum {
    TERSE_CPLAN_ADD,   /* validate, add C into @acc (global element space) */
    TERSE_CPLAN_CHECK, /* validate only */
    TERSE_CPLAN_OUT,   /* validate, out = 0 + C over the segments (every element written) */
    TERSE_CPLAN_WERR,  /* validate, worker_error = in - C (the message compressed in) */
    TERSE_CPLAN_SERR,  /* validate, server_error = acc - C (the message compressed acc) */
} terse__cplan_op_t;

/* Applies @op to packed segments [s_lo, s_hi) of @buf from participant @from. @server: the
 * message is a server message (for the error text). Fails the request when corrupt. */
terse_status_t terse__cplan_unpack(terse_request_h req, const uint8_t *buf, size_t len,
                                   size_t s_lo, size_t s_hi, terse__cplan_op_t op, float *acc,
                                   int from, int server);

static inline terse_status_t terse__cplan_add_packed(terse_request_h req, const uint8_t *buf,
                                                     size_t len, size_t s_lo, size_t s_hi,
                                                     float *acc, int from, int server)
{
    return terse__cplan_unpack(req, buf, len, s_lo, s_hi, TERSE_CPLAN_ADD, acc, from, server);
}

/* For segments [s_lo, s_hi) (acc summed): avg = acc / K; single-way out = avg; double-way
 * compresses e_s + avg into server_msg (packed) and, unless direct, the remainder into serr and
 * out = decode(server_msg). */
terse_status_t terse__cplan_serve(terse_request_h req, size_t s_lo, size_t s_hi);

/* Indexes participant @q's packed message of segments [s_lo, s_hi) into parts (length
 * prefixes checked; the codec checks each segment when terse__cplan_reduce_serve adds it). */
terse_status_t terse__cplan_split(terse_request_h req, int q, const uint8_t *buf, size_t len,
                                  size_t s_lo, size_t s_hi);

/* acc = the sum in rank order of every participant's segment (from parts), then
 * terse__cplan_serve, one segment at a time: acc stays in cache from zeroing to compression
 * instead of making four passes through memory. */
terse_status_t terse__cplan_reduce_serve(terse_request_h req, size_t s_lo, size_t s_hi);

/* Records a server message for the direct commit. */
static inline void terse__cplan_add_srv(terse__cplan_t *p, const uint8_t *buf, size_t len,
                                        size_t s_lo, size_t s_hi, int from)
{
    p->buf.server_msgs[p->buf.nserver_msgs++] = (terse__csrv_t){buf, len, s_lo, s_hi, from};
}

/* Writes the caller's buffers (outputs, worker errors, the server errors of segments
 * [serr_lo, serr_hi) computed here). */
terse_status_t terse__cplan_commit(terse_request_h req, size_t serr_lo, size_t serr_hi);

/* Where every algorithm ends: runs @commit now, or records it for the hierarchy wrapper (the
 * leaders' algorithm inside hier.c) or for the caller (a held commit). */
terse_status_t terse__cplan_finish(terse_request_h req, terse__ccommit_fn_t commit,
                                   size_t serr_lo, size_t serr_hi);

/* The end of every algorithm: once this rank validated all it received, it confirms with
 * every participant (terse__req_confirm), and commits (terse__cplan_commit) when the
 * confirmations arrived, so nobody writes outputs while another rank fails. TERSE_OK: no
 * participant to wait for, commit now; TERSE_INPROGRESS: the round is posted, commit on the
 * next call; an error otherwise. */
static inline terse_status_t terse__cplan_confirm(terse_request_h req)
{
    terse__cplan_t *p = terse__cplan(req);
    return terse__req_confirm(req, p->geo.peer, p->geo.nparts);
}

/* Whether tensor @j's output is subtracted from (see out_subtract). */
static inline int terse__cplan_subtracts(const terse__cplan_t *p, size_t j)
{
    return p->out_subtract && p->out_subtract[j];
}

/* Comm rank of participant @q. */
static inline int terse__cplan_peer(const terse__cplan_t *p, int q)
{
    return p->geo.peer ? p->geo.peer[q] : q;
}

/* The engine's transfers, addressed by participant. Receives return the index the transfer
 * has in its round (for terse__req_received_len). */
static inline void terse__cplan_send(terse_request_h req, int q, uint16_t step, const void *buf,
                                     size_t len)
{
    terse__req_send(req, terse__cplan_peer(terse__cplan(req), q), step, buf, len);
}

static inline int terse__cplan_recv(terse_request_h req, int q, uint16_t step, void *buf,
                                    size_t len)
{
    int at = req->nx;
    terse__req_recv(req, terse__cplan_peer(terse__cplan(req), q), step, buf, len);
    return at;
}

static inline int terse__cplan_recv_var(terse_request_h req, int q, uint16_t step, void *buf,
                                        size_t cap)
{
    int at = req->nx;
    terse__req_recv_var(req, terse__cplan_peer(terse__cplan(req), q), step, buf, cap);
    return at;
}

/* Byte range of segments [lo, hi) in worker_msg (compressed one after the other). */
static inline const uint8_t *terse__cplan_wpart(const terse__cplan_t *p, size_t lo, size_t hi,
                                               size_t *len_p)
{
    *len_p = hi > lo ? p->buf.worker_seg_end[hi - 1] - p->buf.worker_seg_off[lo] : 0;
    return p->buf.worker_msg + (hi > lo ? p->buf.worker_seg_off[lo] : 0);
}

/* split.c: the owner schedule for Top-K lists whose whole blocks do not balance, split over
 * the owners by elements (double-way, no nonfinite passthrough, flat); owners.c runs it when
 * it applies. */
int terse__csplit_applies(const terse__cplan_t *p);
terse_status_t terse__csplit_progress(terse_request_h req);

/* sign_split.c: the same for one sign block, split at the scale's chunk boundaries. */
int terse__csign_split_applies(const terse__cplan_t *p);
terse_status_t terse__csign_split_progress(terse_request_h req);

#endif
