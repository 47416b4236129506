/* A state's choice of the compressed allreduce's algorithm and hierarchy (from its create
 * params), handed to every exchange it makes. Unchosen fields stay with the communicator. */
#ifndef TERSE_EF_CMP_CHOICE_H
#define TERSE_EF_CMP_CHOICE_H

#include <terse/compressed.h>

typedef struct terse__cmp_choice {
    uint64_t call_mask; /* TERSE_CALLREDUCE_FIELD_ALGO / _HIERARCHY of the fields chosen */
    terse_compressed_algo_t algo;
    terse_hierarchy_t hierarchy;
} terse__cmp_choice_t;

/* From a create params' mask, its two bits and the two fields, which the caller reads only
 * when their bit is set (TERSE_CHOSEN): a struct of an older layout ends before them.
 * 0, or -1 for a value out of range. */
#define TERSE_CHOSEN(prm, bit, field) (((prm)->field_mask & (bit)) ? (prm)->field : 0)

static inline int terse__cmp_choice_make(uint64_t mask, uint64_t algo_bit, uint64_t hier_bit,
                                         terse_compressed_algo_t algo,
                                         terse_hierarchy_t hierarchy, terse__cmp_choice_t *ch)
{
    *ch = (terse__cmp_choice_t){0};
    if (mask & algo_bit) {
        if ((unsigned)algo >= TERSE_COMPRESSED_ALGO_LAST)
            return -1;
        ch->call_mask |= TERSE_CALLREDUCE_FIELD_ALGO;
        ch->algo = algo;
    }
    if (mask & hier_bit) {
        if ((unsigned)hierarchy >= TERSE_HIERARCHY_LAST)
            return -1;
        ch->call_mask |= TERSE_CALLREDUCE_FIELD_HIERARCHY;
        ch->hierarchy = hierarchy;
    }
    return 0;
}

static inline void terse__cmp_choice_apply(const terse__cmp_choice_t *ch,
                                           terse_callreduce_params_t *prm)
{
    prm->field_mask |= ch->call_mask;
    prm->algo = ch->algo;
    prm->hierarchy = ch->hierarchy;
}

#endif
