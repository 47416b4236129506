"""Horovod's hvd.join(): training with uneven data per rank.

A rank that runs out of data calls join() and blocks there. Until every rank has joined, the
other ranks' collectives (on the global process set) still complete: the engine lets the
joined ranks take part with a stand-in (terse._engine): zeros for allreduce and reducescatter
(so Average still divides by the full size, as in Horovod), no rows for allgather, a scratch
buffer for broadcast. A broadcast from a joined root, alltoall and the compressed ops fail on
every rank instead. join() returns the rank that joined last, on every rank.
"""
from .._engine import JOIN_NAME, JoinSig, _Op
from .mpi_ops import _eng, _register, synchronize


def join(device=-1):
    """Block until every rank has joined, serving the others' collectives meanwhile; returns
    the rank that joined last. ``device`` is accepted for compatibility (CPU only)."""
    op = _Op("join", JOIN_NAME, JoinSig("join"))
    return int(synchronize(_register(_eng(), [op], lambda: op.result)))
