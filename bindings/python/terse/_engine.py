"""Background engine: collectives matched across ranks by *name*, not by call order.

Like Horovod's background loop, one thread per process owns the terse communicator. Each
cycle every rank allgathers the names (and signatures) of the collectives it has been asked to
run since the last cycle. All ranks fold those messages, in rank order, into the same table, so
all ranks agree on which names every rank has announced and in which order they became
complete. Complete names run in that order; a name whose signatures differ across ranks (shape,
dtype, op, root, compressor, step) fails with TerseError(ERR_MISMATCH) on every rank instead of
running. Small allreduces of the same dtype and op are fused into one buffer; compressed
allreduces ready in the same cycle with the same compressor, step and double-way setting are
fused into one call of the C compressed allreduce (terse_compressed_allreduce: each tensor is
still compressed on its own, so fusion does not change results). Ops of kind "call" run a
callable in the engine thread, in the agreed order: the C error-feedback exchanges
(terse.ErrorFeedback) of terse.torch use it, since every collective on the communicator must be
issued from this thread.

Join (Horovod's hvd.join): a rank that submitted the op named JOIN_NAME counts as present
for every other name, so names announced by all ranks that have not joined run; the joined ranks
take part with a contribution made from the others' signature (zeros for allreduce and
reducescatter, no rows for allgather, a scratch buffer for broadcast) and nothing to return.
Broadcast from a joined root, alltoall and the compressed ops fail on every rank instead. JOIN
completes once every rank has joined; its result is the rank that joined last.

Never hang: each message says whether a user thread of the rank is blocked waiting for an op
(or the rank has shut down). When every rank is blocked, no name is ready and that lasts
DEADLOCK_GRACE_S, rank 0 announces an abort; every rank folds it at the same point and fails
every incomplete name with ERR_MISMATCH naming who submitted it and who did not (a rank raised
before its collective, or the ranks' names drifted apart). A rank merely busy computing is not
blocked, so long gaps between collectives are never cut short.

The engine works on numpy arrays and C dtype codes only; terse.torch wraps torch tensors
around it. Callers get an _Op whose ``event`` is set when it finished (``error`` set on failure).
"""
import ctypes
import pickle
import threading
import time
from collections import namedtuple

import numpy as np

from . import _capi as C
from ._core import Comm, TerseError, check

FUSION_BYTES = 64 << 20
JOIN_NAME = "terse.join"
DEADLOCK_GRACE_S = 1.0
IDLE_SLEEP_MIN_S = 0.0005
IDLE_SLEEP_MAX_S = 0.005  # idle cycles back off: peers spin (yielding) while we sleep

# Signatures: what must be equal on every rank for a name to run (they travel pickled and are
# compared with ==, field by field). The first field is always the kind; "call" ops (ddp.py,
# _call_async) bring a plain tuple of their own. shape: the whole shape, except allgather and
# alltoall, whose first dimension may differ across ranks (shape[1:]); code: the terse dtype.
AllreduceSig = namedtuple("AllreduceSig", "kind dtype shape op code prescale postscale")
ReducescatterSig = namedtuple("ReducescatterSig", "kind dtype shape op code prescale postscale")
BroadcastSig = namedtuple("BroadcastSig", "kind dtype shape root code")
AllgatherSig = namedtuple("AllgatherSig", "kind dtype shape code")
AlltoallSig = namedtuple("AlltoallSig", "kind dtype shape code")
CallreduceSig = namedtuple("CallreduceSig", "kind spec count step tid double_way with_error")
BarrierSig = namedtuple("BarrierSig", "kind")
JoinSig = namedtuple("JoinSig", "kind")
# What a compressed allreduce op needs beyond its arrays (local: never sent). error and
# server_error: float32 arrays e_k and e_s, or None.
# algorithm / hierarchy: the call's choice (None: the communicator's), fused only with equals
CallreduceCtx = namedtuple("CallreduceCtx", "compressor tid step double_way error server_error "
                           "algorithm hierarchy", defaults=(None, None))


class _Op:
    __slots__ = ("kind", "name", "sig", "extra", "array", "code", "out", "event", "error",
                 "finish", "fn", "ctx", "result", "extras", "bytes_sent")

    def __init__(self, kind, name, sig, extra=0, array=None, code=None, out=None, finish=None,
                 fn=None, ctx=None):
        self.kind = kind  # allreduce | allgather | broadcast | barrier | callreduce | call |
        #                   alltoall | reducescatter | join
        self.name = name
        self.sig = sig  # must be equal on all ranks: one of the *Sig tuples above
        self.extra = extra  # may differ: allgather first dim, alltoall splits
        self.array = array  # numpy input (contiguous)
        self.code = code  # terse dtype code
        self.out = out  # numpy output (allreduce: may be array itself)
        self.finish = finish  # called in the engine thread after success (numpy post-processing)
        self.fn = fn  # call: run in the engine thread, its return value becomes ``result``
        self.ctx = ctx  # callreduce: a CallreduceCtx
        self.bytes_sent = 0  # callreduce: bytes this rank sent for the (fused) C call
        self.result = None
        self.extras = None  # every rank's extra, once negotiated
        self.event = threading.Event()
        self.error = None

    def fail(self, err):
        self.error = err
        self.event.set()

    def done(self):
        self.event.set()


def _p(a):
    return ctypes.c_void_p(a.ctypes.data)


# numpy dtype of each terse dtype code, for the contributions of joined ranks (bfloat16 travels
# as its int16 bits: zeros are zeros)
_CODE_NP = {C.DTYPE_FLOAT32: np.float32, C.DTYPE_FLOAT64: np.float64, C.DTYPE_FLOAT16: np.float16,
            C.DTYPE_BFLOAT16: np.int16, C.DTYPE_INT8: np.int8, C.DTYPE_INT16: np.int16,
            C.DTYPE_INT32: np.int32, C.DTYPE_INT64: np.int64, C.DTYPE_UINT8: np.uint8}


def split_rows(rows, n):
    """Rows of each of n ranks when ``rows`` are scattered: Horovod's rule, the first
    ``rows % n`` ranks get one more."""
    q, rem = divmod(int(rows), n)
    return [q + (1 if r < rem else 0) for r in range(n)]


class Engine:
    def __init__(self, comm=None, label="global"):
        self.comm = comm if comm is not None else Comm()
        self.label = label  # for error messages: which process set
        self.rank, self.size = self.comm.rank, self.comm.size
        self._lock = threading.Lock()
        self._queue = []
        self._pending = {}  # name -> op, submitted by this rank and not finished
        self._table = {}  # name -> [sig or None per rank], insertion-ordered
        self._extras = {}
        self._stop_requested = False
        self._stopped_ranks = set()
        self._joined = []  # ranks that joined since the last completed join, in folding order
        self._waiting = 0  # user threads blocked in wait()
        self._sent_blocked = False
        self._blocked = [False] * self.size  # as last announced by each rank
        self._stuck_since = None  # rank 0: when every rank became blocked with nothing ready
        self._fatal = None
        self._thread = threading.Thread(target=self._run, name="terse-engine-" + label,
                                        daemon=True)
        self._thread.start()

    # -- called from user threads --
    def submit(self, op):
        self.submit_many([op])
        return op

    def submit_many(self, ops):
        """Submit ``ops`` at once: they are announced in the same message, so they become
        ready in the same cycle on every rank (Horovod's grouped collectives)."""
        with self._lock:
            if self._fatal is not None:
                raise self._fatal
            if self._stop_requested:
                raise TerseError(C.ERR_INVALID_ARG, "terse has been shut down")
            names = [op.name for op in ops]
            for name in names:
                if name in self._pending or names.count(name) > 1:
                    raise ValueError("a collective named %r is already in flight on this rank; "
                                     "names must be unique among outstanding operations" % name)
            for op in ops:
                self._pending[op.name] = op
                self._queue.append(op)
        return ops

    def wait(self, op):
        """Block until ``op`` finished; while blocked this rank counts as waiting for the
        deadlock check (see the module docstring)."""
        if op.event.is_set():
            return
        with self._lock:
            self._waiting += 1
        try:
            op.event.wait()
        finally:
            with self._lock:
                self._waiting -= 1

    def shutdown(self, timeout=None):
        with self._lock:
            self._stop_requested = True
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.comm.destroy()

    # -- engine thread --
    def _message(self):
        with self._lock:
            new, self._queue = self._queue, []
            stop = self._stop_requested
            blocked = self._waiting > 0 or stop
        abort = False
        if self.rank == 0 and self._stuck_since is not None and \
                time.monotonic() - self._stuck_since >= DEADLOCK_GRACE_S:
            abort, self._stuck_since = True, None
        if not (new or stop or abort or blocked != self._sent_blocked):
            return b"", new
        self._sent_blocked = blocked
        return pickle.dumps((stop, blocked, abort, [(o.name, o.sig, o.extra) for o in new]),
                            4), new

    def _run(self):
        idle = 0.0
        try:
            while True:
                msg, new = self._message()
                lens = np.empty(self.size, np.int64)
                mine = np.array([len(msg)], np.int64)
                check(C.terse_allgather(self.comm.handle, _p(mine), _p(lens), 1, C.DTYPE_INT64),
                      self.comm.handle, "negotiation")
                if lens.any():
                    buf = np.frombuffer(msg, np.uint8) if msg else np.zeros(1, np.uint8)
                    allw = self.comm.allgatherv_bytes(buf, [int(x) for x in lens])
                    off = 0
                    for r in range(self.size):
                        ln = int(lens[r])
                        if ln:
                            self._fold(r, pickle.loads(allw[off:off + ln].tobytes()))
                        off += ln
                joined = set(self._joined)
                ready = [n for n, sigs in self._table.items()
                         if all(s is not None or r in joined for r, s in enumerate(sigs))]
                if ready:
                    self._execute(ready)
                if len(self._stopped_ranks) == self.size:
                    break
                self._watch_deadlock(bool(ready) or bool(lens.any()))
                if not ready and not lens.any() and not self._pending:
                    idle = min(IDLE_SLEEP_MAX_S, max(IDLE_SLEEP_MIN_S, idle * 2))
                    time.sleep(idle)
                elif not ready and not lens.any():
                    idle = 0.0
                    time.sleep(IDLE_SLEEP_MIN_S)  # waiting for peers to announce
                else:
                    idle = 0.0
        except BaseException as e:  # a broken communicator: fail everything, never hang
            err = e if isinstance(e, TerseError) else TerseError(C.ERR_INTERNAL,
                                                                 "engine: %r" % (e,))
            with self._lock:
                self._fatal = err
                pending = list(self._pending.values())
                self._pending.clear()
            for op in pending:
                op.fail(err)

    def _watch_deadlock(self, progressed):
        """Rank 0 only: time how long every rank has been blocked with nothing to run."""
        if self.rank != 0:
            return
        stuck = (not progressed and bool(self._table)
                 and all(b or r in self._stopped_ranks for r, b in enumerate(self._blocked)))
        if not stuck:
            self._stuck_since = None
        elif self._stuck_since is None:
            self._stuck_since = time.monotonic()

    def _fold(self, r, msg):
        stop, blocked, abort, entries = msg
        if stop:
            self._stopped_ranks.add(r)
        self._blocked[r] = blocked
        if abort:
            self._abort_incomplete()
        for name, sig, extra in entries:
            sigs = self._table.get(name)
            if sigs is None:
                sigs = self._table[name] = [None] * self.size
                self._extras[name] = [None] * self.size
            sigs[r] = sig
            self._extras[name][r] = extra
            if name == JOIN_NAME:
                self._joined.append(r)

    def _abort_incomplete(self):
        """Every rank is waiting and no name can complete: fail every incomplete name, on every
        rank (all fold this at the same point, so all fail the same names)."""
        table, self._table, self._extras = self._table, {}, {}
        self._joined = []
        for name, sigs in table.items():
            have = [r for r, s in enumerate(sigs) if s is not None]
            miss = [r for r, s in enumerate(sigs) if s is None]
            with self._lock:
                op = self._pending.pop(name, None)
            if op is not None:
                op.fail(TerseError(C.ERR_MISMATCH, (
                    "collective %r (process set %s) was submitted by ranks %s but not by ranks "
                    "%s, and every rank is waiting: failed instead of hanging (a rank raised "
                    "before its collective, shut down, or names differ across ranks)")
                    % (name, self.label, have, miss)))

    def _execute(self, names):
        ops = []
        for name in names:
            sigs = self._table.pop(name)
            extras = self._extras.pop(name)
            with self._lock:
                op = self._pending.pop(name, None)
            given = [s for s in sigs if s is not None]
            if any(s != given[0] for s in given):
                desc = "; ".join("rank %d: %s" % (r, _describe(s)) for r, s in enumerate(sigs))
                err = TerseError(C.ERR_MISMATCH, "ranks disagree about collective %r: %s"
                                 % (name, desc))
                if op is not None:
                    op.fail(err)
                continue
            absent = [r for r, s in enumerate(sigs) if s is None]  # joined without it
            if op is None:  # this rank has joined: take part with a stand-in
                op = _stand_in(name, given[0], extras)
            for r in absent:
                extras[r] = 0  # joined ranks gather no rows
            op.extras = extras
            if absent:
                err = _join_refusal(op, absent)
                if err is not None:
                    op.fail(err)
                    continue
            ops.append(op)
        # Every rank forms the same groups in the same order: ``names`` is in table order.
        fuse, cfuse = {}, {}
        for op in ops:
            try:
                if op.kind == "allreduce" and op.array.nbytes < FUSION_BYTES:
                    fuse.setdefault((op.code, op.sig.op), []).append(op)
                elif op.kind == "callreduce":
                    c = op.ctx
                    cfuse.setdefault((c.compressor.spec, c.step, c.double_way, c.algorithm,
                                      c.hierarchy), []).append(op)
                else:
                    self._run_one(op)
            except TerseError as e:
                op.fail(e)
        for (code, opc), group in fuse.items():
            self._run_fused_allreduce(group, code, opc)
        for group in cfuse.values():
            self._run_compressed(group)

    def _finish(self, op):
        try:
            if op.finish is not None:
                op.finish(op)
            op.done()
        except BaseException as e:  # noqa: B902 - report to the caller, keep the engine alive
            op.fail(e)

    def _run_one(self, op):
        h = self.comm.handle
        if op.kind == "barrier":
            pass  # negotiation itself is the barrier: every rank has announced it
        elif op.kind == "join":
            op.result = self._joined[-1]  # the rank that joined last
            self._joined = []
        elif op.kind == "call":
            try:
                op.result = op.fn()
            except Exception as e:  # noqa: B902 - report to the caller, keep the engine alive
                op.fail(e)
                return
        elif op.kind == "allreduce":
            check(C.terse_allreduce(h, _p(op.array), _p(op.out), op.array.size, op.code,
                                    op.sig.op), h, "allreduce %r" % op.name)
        elif op.kind == "broadcast":
            check(C.terse_bcast(h, _p(op.array), op.array.size, op.code, op.sig.root), h,
                  "broadcast %r" % op.name)
        elif op.kind == "allgather":
            row = int(np.prod(op.array.shape[1:], dtype=np.int64))
            dims = [int(x) for x in op.extras]
            op.out = np.empty((sum(dims),) + op.array.shape[1:], op.array.dtype)
            cnt = (ctypes.c_size_t * self.size)(*[d * row for d in dims])
            check(C.terse_allgatherv(h, _p(op.array), _p(op.out), cnt, None, op.code), h,
                  "allgather %r" % op.name)
        elif op.kind == "alltoall":
            self._run_alltoall(op)
        elif op.kind == "reducescatter":
            self._run_reducescatter(op)
        else:
            raise TerseError(C.ERR_INVALID_ARG, "unknown collective kind %r" % op.kind)
        self._finish(op)

    def _run_alltoall(self, op):
        """alltoallv by rows: extras[j] are rank j's send splits, so this rank receives
        extras[j][rank] rows from rank j; ``result`` is that list (Horovod's received_splits)."""
        h = self.comm.handle
        splits = [list(e) for e in op.extras]
        shape_rest = op.array.shape[1:]
        row = int(np.prod(shape_rest, dtype=np.int64))
        recv = [splits[j][self.rank] for j in range(self.size)]
        op.out = np.empty((sum(recv),) + shape_rest, op.array.dtype)
        sc = (ctypes.c_size_t * self.size)(*[s * row for s in splits[self.rank]])
        rc = (ctypes.c_size_t * self.size)(*[s * row for s in recv])
        check(C.terse_alltoallv(h, _p(op.array), sc, None, _p(op.out), rc, None, op.code), h,
              "alltoall %r" % op.name)
        op.result = recv

    def _run_reducescatter(self, op):
        """Rows of dim 0 scattered by split_rows; the block is that slice of the allreduce."""
        h = self.comm.handle
        shape = op.sig.shape
        row = int(np.prod(shape[1:], dtype=np.int64))
        rows = split_rows(shape[0], self.size)
        op.out = np.empty((rows[self.rank],) + tuple(shape[1:]), op.array.dtype)
        cnt = (ctypes.c_size_t * self.size)(*[n * row for n in rows])
        check(C.terse_reduce_scatter_v(h, _p(op.array), _p(op.out), cnt, op.code, op.sig.op),
              h, "reducescatter %r" % op.name)

    def _run_fused_allreduce(self, group, code, opc):
        h = self.comm.handle
        try:
            if len(group) == 1:
                op = group[0]
                check(C.terse_allreduce(h, _p(op.array), _p(op.out), op.array.size, code, opc),
                      h, "allreduce %r" % op.name)
            else:
                flat = np.concatenate([op.array.reshape(-1) for op in group])
                check(C.terse_allreduce(h, ctypes.c_void_p(1), _p(flat), flat.size, code, opc), h,
                      "fused allreduce of %d tensors (%s, ...)" % (len(group), group[0].name))
                off = 0
                for op in group:
                    n = op.array.size
                    op.out.reshape(-1)[:] = flat[off:off + n]
                    off += n
        except TerseError as e:
            for op in group:
                op.fail(e)
            return
        for op in group:
            self._finish(op)

    def _run_compressed(self, group):
        """One C compressed allreduce (terse_compressed_allreduce) of every op of the group, one
        tensor per op; on any error every op of the group fails (on every rank)."""
        c = group[0].ctx
        try:
            outs = self.comm.compressed_allreduce(
                [op.array for op in group], c.compressor, [op.ctx.tid for op in group], c.step,
                error=[op.ctx.error for op in group],
                server_error=[op.ctx.server_error for op in group],
                out=[op.out for op in group], double_way=c.double_way, algorithm=c.algorithm,
                hierarchy=c.hierarchy)
        except TerseError as e:
            for op in group:
                op.fail(e)
            return
        for op, o in zip(group, outs):
            op.result = o
            op.bytes_sent = self.comm.last_bytes_sent
            self._finish(op)


def _stand_in(name, sig, extras):
    """The op a joined rank runs for ``name`` (announced by the others with ``sig``): the
    kinds below carry their shape, dtype code and reduction op in the signature."""
    kind = sig[0]  # sig.kind, but "call" signatures are plain tuples
    if kind in ("allreduce", "reducescatter"):
        a = np.zeros(sig.shape, _CODE_NP[sig.code])
        return _Op(kind, name, sig, 0, a, sig.code, np.empty_like(a))
    if kind == "allgather":  # no rows
        return _Op(kind, name, sig, 0, np.zeros((0,) + tuple(sig.shape), _CODE_NP[sig.code]),
                   sig.code)
    if kind == "broadcast":  # receive into scratch
        return _Op(kind, name, sig, 0, np.zeros(sig.shape, _CODE_NP[sig.code]), sig.code)
    return _Op(kind, name, sig)  # barrier, join; the others are refused by _join_refusal


def _join_refusal(op, absent):
    """The error for running ``op`` while the ranks ``absent`` have joined, or None."""
    if op.kind == "broadcast" and op.sig.root in absent:
        return TerseError(C.ERR_INVALID_ARG, "broadcast %r: root rank %d has already joined"
                          % (op.name, op.sig.root))
    if op.kind in ("alltoall", "call", "callreduce"):
        return TerseError(C.ERR_NOT_SUPPORTED, "%s %r is not supported once ranks %s have "
                          "joined" % (op.kind, op.name, absent))
    return None


def _describe(sig):
    if sig is None:
        return "not announced"
    return " ".join(str(x) for x in sig)
