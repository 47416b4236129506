/* Names and digests of the wire header's fields (wire.h). */
#include "wire.h"

#include "core/config.h"

#include <string.h>

const char *terse__coll_name(int kind)
{
    switch (kind) {
    case TERSE_COLL_ALLREDUCE: return "allreduce";
    case TERSE_COLL_ALLGATHER: return "allgather";
    case TERSE_COLL_ALLGATHERV: return "allgatherv";
    case TERSE_COLL_BCAST: return "broadcast";
    case TERSE_COLL_ALLTOALL: return "alltoall";
    case TERSE_COLL_ALLTOALLV: return "alltoallv";
    case TERSE_COLL_BARRIER: return "barrier";
    case TERSE_COLL_COMPRESSED: return "compressed allreduce";
    case TERSE_COLL_INTERNAL: return "internal exchange";
    case TERSE_COLL_REDUCE_SCATTER: return "reduce_scatter";
    case TERSE_COLL_REDUCE_SCATTER_V: return "reduce_scatter_v";
    case TERSE_COLL_REDUCE: return "reduce";
    case TERSE_COLL_P2P: return "point-to-point";
    default: return "unknown collective";
    }
}

uint64_t terse__digest(const void *data, size_t len, uint64_t seed)
{
    /* FNV-1a: only needs to tell different argument arrays apart across ranks. */
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint8_t terse__sum_mode_configured(void)
{
    switch (terse__config()->checksum_id) {
    case TERSE__CHECKSUM_ALL: return TERSE_SUM_MODE_ALL;
    case TERSE__CHECKSUM_NONE: return TERSE_SUM_MODE_NONE;
    default: return TERSE_SUM_MODE_COMPRESSED;
    }
}

int terse__sum_mode_valid(unsigned mode)
{
    return mode == TERSE_SUM_MODE_NONE || mode == TERSE_SUM_MODE_COMPRESSED ||
           mode == TERSE_SUM_MODE_ALL;
}

const char *terse__sum_mode_name(unsigned mode)
{
    switch (mode) {
    case TERSE_SUM_MODE_NONE: return "none";
    case TERSE_SUM_MODE_COMPRESSED: return "compressed";
    case TERSE_SUM_MODE_ALL: return "all";
    default: return "invalid";
    }
}
