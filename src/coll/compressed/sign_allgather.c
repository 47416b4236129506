/* Sign allgather: every rank's bit-packed signs and per-block scales go to every rank, which
 * sums them in rank order (n/8 bytes per rank per peer). The schedule is the sparse allgather's
 * (terse__cmp_allgather_progress); it is its own algorithm so it can be selected, reported and
 * matched across ranks by name. */
#include "compressed.h"

const terse__algo_t terse__cmp_sign_allgather_algo = {
    .name = "sign_allgather",
    .id = TERSE_ALGO_CMP_SIGN_ALLGATHER,
    .progress = terse__cmp_allgather_progress,
    .cleanup = terse__cplan_cleanup,
};
