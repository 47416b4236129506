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

The engine works on numpy arrays and C dtype codes only; terse.torch wraps torch tensors
around it. Callers get an _Op whose ``event`` is set when it finished (``error`` set on failure).
"""
import ctypes
import pickle
import threading
import time

import numpy as np

from . import _capi as C
from ._core import Comm, TerseError, check

FUSION_BYTES = 64 << 20
IDLE_SLEEP_MIN_S = 0.0005
IDLE_SLEEP_MAX_S = 0.005  # idle cycles back off: peers spin (yielding) while we sleep


class _Op:
    __slots__ = ("kind", "name", "sig", "extra", "array", "code", "out", "event", "error",
                 "finish", "fn", "ctx", "result", "extras", "bytes_sent")

    def __init__(self, kind, name, sig, extra=0, array=None, code=None, out=None, finish=None,
                 fn=None, ctx=None):
        self.kind = kind  # allreduce | allgather | broadcast | barrier | callreduce | call
        self.name = name
        self.sig = sig  # must be equal on all ranks
        self.extra = extra  # may differ: allgather first dim
        self.array = array  # numpy input (contiguous)
        self.code = code  # terse dtype code
        self.out = out  # numpy output (allreduce: may be array itself)
        self.finish = finish  # called in the engine thread after success (numpy post-processing)
        self.fn = fn  # call: run in the engine thread, its return value becomes ``result``
        self.ctx = ctx  # callreduce: (Compressor, tensor id, step, double_way, error, server_error)
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


class Engine:
    def __init__(self, comm=None):
        self.comm = comm if comm is not None else Comm()
        self.rank, self.size = self.comm.rank, self.comm.size
        self._lock = threading.Lock()
        self._queue = []
        self._pending = {}  # name -> op, submitted by this rank and not finished
        self._table = {}  # name -> [sig or None per rank], insertion-ordered
        self._extras = {}
        self._stop_requested = False
        self._stopped_ranks = set()
        self._fatal = None
        self._thread = threading.Thread(target=self._run, name="terse-engine", daemon=True)
        self._thread.start()

    # -- called from user threads --
    def submit(self, op):
        with self._lock:
            if self._fatal is not None:
                raise self._fatal
            if self._stop_requested:
                raise TerseError(C.ERR_INVALID_ARG, "terse has been shut down")
            if op.name in self._pending:
                raise ValueError("a collective named %r is already in flight on this rank; "
                                 "names must be unique among outstanding operations" % op.name)
            self._pending[op.name] = op
            self._queue.append(op)
        return op

    def shutdown(self, timeout=None):
        with self._lock:
            self._stop_requested = True
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.comm.destroy()

    # -- engine thread --
    def _run(self):
        idle = 0.0
        try:
            while True:
                with self._lock:
                    new, self._queue = self._queue, []
                    stop = self._stop_requested
                msg = b""
                if new or stop:
                    msg = pickle.dumps((stop, [(o.name, o.sig, o.extra) for o in new]), 4)
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
                ready = [n for n, sigs in self._table.items() if all(s is not None for s in sigs)]
                if ready:
                    self._execute(ready)
                if len(self._stopped_ranks) == self.size:
                    break
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

    def _fold(self, r, msg):
        stop, entries = msg
        if stop:
            self._stopped_ranks.add(r)
        for name, sig, extra in entries:
            sigs = self._table.get(name)
            if sigs is None:
                sigs = self._table[name] = [None] * self.size
                self._extras[name] = [None] * self.size
            sigs[r] = sig
            self._extras[name][r] = extra

    def _execute(self, names):
        ops = []
        for name in names:
            sigs = self._table.pop(name)
            extras = self._extras.pop(name)
            with self._lock:
                op = self._pending.pop(name)
            op.extras = extras
            if any(s != sigs[0] for s in sigs):
                desc = "; ".join("rank %d: %s" % (r, _describe(s)) for r, s in enumerate(sigs))
                op.fail(TerseError(C.ERR_MISMATCH, "ranks disagree about collective %r: %s"
                                   % (name, desc)))
                continue
            ops.append(op)
        # Every rank forms the same groups in the same order: ``names`` is in table order.
        fuse, cfuse = {}, {}
        for op in ops:
            try:
                if op.kind == "allreduce" and op.array.nbytes < FUSION_BYTES:
                    fuse.setdefault((op.code, op.sig[3]), []).append(op)
                elif op.kind == "callreduce":
                    comp, _, step, dw = op.ctx[:4]
                    cfuse.setdefault((comp.spec, step, dw), []).append(op)
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
        elif op.kind == "call":
            try:
                op.result = op.fn()
            except Exception as e:  # noqa: B902 - report to the caller, keep the engine alive
                op.fail(e)
                return
        elif op.kind == "allreduce":
            check(C.terse_allreduce(h, _p(op.array), _p(op.out), op.array.size, op.code,
                                    op.sig[3]), h, "allreduce %r" % op.name)
        elif op.kind == "broadcast":
            check(C.terse_bcast(h, _p(op.array), op.array.size, op.code, op.sig[3]), h,
                  "broadcast %r" % op.name)
        elif op.kind == "allgather":
            row = int(np.prod(op.array.shape[1:], dtype=np.int64))
            dims = [int(x) for x in op.extras]
            op.out = np.empty((sum(dims),) + op.array.shape[1:], op.array.dtype)
            cnt = (ctypes.c_size_t * self.size)(*[d * row for d in dims])
            check(C.terse_allgatherv(h, _p(op.array), _p(op.out), cnt, None, op.code), h,
                  "allgather %r" % op.name)
        else:
            raise TerseError(C.ERR_INVALID_ARG, "unknown collective kind %r" % op.kind)
        self._finish(op)

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
        comp, _, step, dw = group[0].ctx[:4]
        try:
            outs = self.comm.compressed_allreduce(
                [op.array for op in group], comp, [op.ctx[1] for op in group], step,
                error=[op.ctx[4] for op in group], server_error=[op.ctx[5] for op in group],
                out=[op.out for op in group], double_way=dw)
        except TerseError as e:
            for op in group:
                op.fail(e)
            return
        for op, o in zip(group, outs):
            op.result = o
            op.bytes_sent = self.comm.last_bytes_sent
            self._finish(op)


def _describe(sig):
    if sig is None:
        return "not announced"
    return " ".join(str(x) for x in sig)
