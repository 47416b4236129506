/* Sign alltoall + allgather (double-way, in the style of 1-bit Adam's compressed allreduce):
 * each rank sends every owner the sign bits and scales of the blocks it serves (~n/8 bytes per
 * rank in all), owners aggregate, re-compress with the server error and allgather the signs
 * (~n/8 bytes again): ~2n/8 bytes per rank whatever K. The schedule is the owner schedule of
 * sparse_rs_ag (terse__cmp_owner_progress); its own algorithm for selection and reporting. */
#include "compressed.h"

const terse__algo_t terse__cmp_sign_a2a_ag_algo = {
    .name = "sign_a2a_ag",
    .id = TERSE_ALGO_CMP_SIGN_A2A_AG,
    .progress = terse__cmp_owner_progress,
    .cleanup = terse__cplan_cleanup,
};
