/* terse: compressed collectives for data-parallel training. The one header users include. */
#ifndef TERSE_H
#define TERSE_H

#include <terse/api.h>
#include <terse/status.h>
#include <terse/types.h>
#include <terse/comm.h>
#include <terse/coll.h>
#include <terse/p2p.h>
#include <terse/compress.h>
#include <terse/compressed.h>
#include <terse/ef.h>
#include <terse/grad_ef.h>
#include <terse/model.h>
#include <terse/prof.h>

#endif
