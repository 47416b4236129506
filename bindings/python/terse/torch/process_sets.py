"""Horovod's process sets: collectives on a subset of the ranks.

A registered ProcessSet owns a communicator of its ranks (terse_comm_split of the global one)
and an engine of its own (terse._engine, one thread), so names are matched per set and a
collective on one set never waits for another set's. Registration and removal are collective
over all ranks, in the same order everywhere, as in Horovod (add_process_set,
remove_process_set, init(process_sets=...)). A rank outside a set that calls a collective on it
gets ValueError at once. Roots (broadcast) are global ranks, as in Horovod; ProcessSet.rank()
is the rank inside the set.
"""
import threading

from .._engine import Engine

_lock = threading.Lock()
_sets = {}  # process_set_id -> [ProcessSet, ...] (equal sets share an id)
_next_id = [1]


class ProcessSet:
    """A set of ranks to run collectives on: ``ProcessSet([0, 2])`` or
    ``ProcessSet(mpi4py_comm)``. Pass it to hvd.init(process_sets=[...]) or
    hvd.add_process_set(); then to the ``process_set=`` argument of the collectives."""

    process_set_id = None
    ranks = None
    mpi_comm = None

    def __init__(self, ranks_or_comm):
        self._engine = None
        if hasattr(ranks_or_comm, "Get_group"):  # an mpi4py communicator
            self.mpi_comm = ranks_or_comm
            return
        try:
            ranks = sorted(ranks_or_comm)
        except TypeError:
            raise ValueError("ProcessSet takes a list of ranks or an mpi4py communicator, not %r"
                             % (ranks_or_comm,))
        if any(not isinstance(r, int) or isinstance(r, bool) for r in ranks):
            raise ValueError("ProcessSet ranks must be ints, got %r" % (ranks,))
        if len(set(ranks)) != len(ranks):
            raise ValueError("ProcessSet ranks must be distinct, got %r" % (ranks,))
        self.ranks = ranks

    def size(self):
        """Number of ranks (None until registered)."""
        return None if self.process_set_id is None else len(self.ranks)

    def included(self):
        """Whether this rank belongs to the set (None until registered)."""
        if self.process_set_id is None:
            return None
        from . import mpi_ops
        return mpi_ops.rank() in self.ranks

    def rank(self):
        """This rank's index in the set, -1 if outside it (None until registered)."""
        if self.process_set_id is None:
            return None
        from . import mpi_ops
        r = mpi_ops.rank()
        return self.ranks.index(r) if r in self.ranks else -1

    def _set_rank_of(self, global_rank, what):
        if global_rank not in self.ranks:
            raise ValueError("%s: rank %r is not in process set %s" % (what, global_rank, self))
        return self.ranks.index(global_rank)

    def __str__(self):
        return "ProcessSet(process_set_id=%s, ranks=%s)" % (self.process_set_id, self.ranks)

    __repr__ = __str__


global_process_set = ProcessSet([])
global_process_set.process_set_id = 0


def _setup_global(engine):
    """hvd.init(): the global set is every rank, on the global engine."""
    global_process_set.ranks = list(range(engine.size))
    global_process_set._engine = engine
    with _lock:
        _sets.clear()
        _sets[0] = [global_process_set]
        _next_id[0] = 1


def engine_for(process_set, what):
    """The engine to run a collective on ``process_set`` (None: the global set)."""
    ps = global_process_set if process_set is None else process_set
    if not isinstance(ps, ProcessSet):
        raise ValueError("%s: process_set must be a hvd.ProcessSet, not %r" % (what, ps))
    if ps.process_set_id is None:
        raise ValueError("%s: %s is not registered (hvd.add_process_set or "
                         "hvd.init(process_sets=...)), or was removed" % (what, ps))
    if ps._engine is None:
        if ps is global_process_set:
            raise ValueError("terse has not been initialized; use hvd.init().")
        from . import mpi_ops
        raise ValueError("%s: rank %d is not a member of %s" % (what, mpi_ops.rank(), ps))
    return ps._engine


def _ranks_of_comm(comm):
    """Global ranks of an mpi4py communicator's members (no communication)."""
    from mpi4py import MPI
    return sorted(MPI.Group.Translate_ranks(comm.Get_group(), list(range(comm.Get_size())),
                                            MPI.COMM_WORLD.Get_group()))


def _create(ranks):
    """Collective over all ranks: a communicator and engine for ``ranks``; returns the id."""
    from . import mpi_ops
    n = mpi_ops.size()
    if not ranks or any(r < 0 or r >= n for r in ranks):
        raise ValueError("process set ranks %r must be a non-empty subset of 0..%d" % (ranks,
                                                                                      n - 1))
    with _lock:
        for pid, objs in _sets.items():
            if objs[0].ranks == ranks:
                raise ValueError("a process set with ranks %r is already registered (id %d)"
                                 % (ranks, pid))
        pid = _next_id[0]
        _next_id[0] += 1
    gcomm = mpi_ops._eng().comm
    member = mpi_ops.rank() in ranks
    name = "terse.process_set.add.%d" % pid
    child = mpi_ops.synchronize(mpi_ops._call_async(
        name, (name, tuple(ranks)), lambda: gcomm.split(0 if member else None)))
    engine = Engine(child, label="%d %s" % (pid, ranks)) if member else None
    return pid, engine


def _adopt(ps, pid, engine):
    ps.process_set_id = pid
    ps._engine = engine
    with _lock:
        _sets.setdefault(pid, []).append(ps)


def register_at_init(process_sets):
    """hvd.init(process_sets=[...]): every rank's sets (lists of ranks, or mpi4py
    communicators each rank knows only its own of) are gathered and registered in the order
    of first appearance, rank by rank, so all ranks create the same communicators."""
    from .functions import allgather_object
    if process_sets in (None, "dynamic"):
        return
    sets = list(process_sets)
    for ps in sets:
        if not isinstance(ps, ProcessSet):
            raise ValueError("init(process_sets=...) takes hvd.ProcessSet objects, not %r"
                             % (ps,))
        if ps.ranks is None:
            ps.ranks = _ranks_of_comm(ps.mpi_comm)
    order = []
    for lists in allgather_object([ps.ranks for ps in sets], name="terse.process_sets.init"):
        for ranks in lists:
            if ranks not in order and ranks != global_process_set.ranks:
                order.append(ranks)
    mine = {}
    for ps in sets:
        mine.setdefault(tuple(ps.ranks), []).append(ps)
    for ps in mine.pop(tuple(global_process_set.ranks), []):
        _adopt(ps, 0, global_process_set._engine)
    for ranks in order:
        pid, engine = _create(ranks)
        # every rank registers every set (sets of other ranks' communicators too), so ids
        # and removal agree everywhere
        for ps in mine.get(tuple(ranks)) or [ProcessSet(ranks)]:
            _adopt(ps, pid, engine)


def add_process_set(process_set):
    """Register a ProcessSet (or a list of ranks) after init; collective over all ranks, which
    pass the same ranks. Returns the registered ProcessSet."""
    ps = process_set if isinstance(process_set, ProcessSet) else ProcessSet(process_set)
    if ps.ranks is None:
        raise NotImplementedError("add_process_set: a process set of an MPI communicator can "
                                  "only be registered by hvd.init(process_sets=...); pass a "
                                  "list of ranks")
    if ps.process_set_id is not None:
        raise ValueError("add_process_set: %s is already registered" % ps)
    _adopt(ps, *_create(ps.ranks))
    return ps


def remove_process_set(process_set):
    """Unregister a process set (collective over all ranks): its engine stops and its
    communicator is freed; every ProcessSet object of it becomes unregistered. Returns False
    for the global set or a set that is not registered, else True."""
    from . import mpi_ops
    pid = process_set.process_set_id
    if pid is None or pid == 0 or pid not in _sets:
        return False
    name = "terse.process_set.remove.%d" % pid
    mpi_ops.synchronize(mpi_ops._call_async(name, (name,), lambda: None))
    with _lock:
        objs = _sets.pop(pid)
    engine = objs[0]._engine
    for ps in objs:
        ps.process_set_id, ps._engine = None, None
    if engine is not None:
        engine.shutdown()  # collective over the set's members, who all got here
    return True


def shutdown_all():
    """hvd.shutdown(): stop every set's engine (in id order on every rank) but the global."""
    with _lock:
        items = sorted((pid, objs) for pid, objs in _sets.items() if pid != 0)
        for pid, _ in items:
            del _sets[pid]
    for _, objs in items:
        engine = objs[0]._engine
        for ps in objs:
            ps.process_set_id, ps._engine = None, None
        if engine is not None:
            engine.shutdown()
    global_process_set._engine = None
