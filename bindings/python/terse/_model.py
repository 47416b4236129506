"""terse.Model: Algorithm 1's whole training step in C (terse_model_*, include/terse/model.h)
over parameter storage the caller owns, passed as raw pointers.

    m = terse.Model([(id, count, terse.DTYPE_FLOAT32), ...], "topk:0.01", mode="saef",
                    buckets=[3, 7], comm=comm.dup())
    m.set_point(ptrs)          # the consensus x_t (collective; identical on every rank)
    ... local optimizer: bucket b's parameters go from x_{t+1/2} to x' ...
    m.post(b, ptrs)            # nonblocking exchange of bucket b (buckets in order)
    m.finish(ptrs)             # waits, commits x_{t+1}, e_k, e_s; params = next point

Nothing here touches elements: every call passes one array of pointers, built by the caller
(``pointers``) from e.g. torch's ``data_ptr()``. On failure TerseError is raised on every rank
and the C side has put the parameters back at x_{t+1/2}.
"""
import ctypes

import numpy as np

from . import _capi as C
from ._core import Compressor, TerseError, check, set_choice

_MODES = {None: C.EF_MODE_NONE, "none": C.EF_MODE_NONE, "ef": C.EF_MODE_EF,
          "saef": C.EF_MODE_SAEF}
_WIDE = {C.DTYPE_FLOAT32: np.float32, C.DTYPE_FLOAT64: np.float64,
         C.DTYPE_FLOAT16: np.float32, C.DTYPE_BFLOAT16: np.float32}
_STORED = {C.DTYPE_FLOAT32: np.float32, C.DTYPE_FLOAT64: np.float64,
           C.DTYPE_FLOAT16: np.float16, C.DTYPE_BFLOAT16: np.uint16}


class Model:
    """The C training-step state of one model; see the module docstring."""

    def __init__(self, tensors, compressor, mode="ef", period=None, double_way=False,
                 buckets=None, comm=None, algorithm=None, hierarchy=None):
        if mode not in _MODES:
            raise ValueError("mode must be None, 'none', 'ef' or 'saef', not %r" % (mode,))
        self.comm = comm
        self.compressor = Compressor.of(compressor)
        self.mode = "none" if mode is None else mode
        self.tensors = [(int(i) & 0xFFFFFFFF, int(n), int(d)) for i, n, d in tensors]
        nt = len(self.tensors)
        self.buckets = list(buckets) if buckets else [nt]
        self._tens = (C.ModelTensor * max(nt, 1))(*[C.ModelTensor(*t) for t in self.tensors])
        self._ends = (ctypes.c_size_t * max(len(self.buckets), 1))(*self.buckets)
        prm = C.ModelParams()
        prm.field_mask = C.MODEL_FIELD_PERIOD | C.MODEL_FIELD_DOUBLE_WAY | C.MODEL_FIELD_BUCKETS
        prm.mode = _MODES[mode]
        prm.compressor = ctypes.pointer(self.compressor._c)
        prm.ntensors = nt
        prm.tensors = self._tens
        prm.period = int(period or 0)
        prm.double_way = int(bool(double_way))
        prm.nbuckets = len(self.buckets)
        prm.bucket_end = self._ends
        # the exchanges' algorithm / hierarchy (None: the communicator's)
        set_choice(prm, algorithm, hierarchy, C.MODEL_FIELD_ALGO, C.MODEL_FIELD_HIERARCHY)
        self._h = None
        h = C.c_model()
        st = C.terse_model_create(comm.handle, ctypes.byref(prm), ctypes.byref(h))
        if st != C.OK:
            raise TerseError(st, "terse_model_create (%s, mode %s, %d tensors, %d buckets): %s"
                             % (self.compressor.spec, self.mode, nt, len(self.buckets),
                                C.terse_status_string(st).decode()))
        self._h = h
        self._ptrs = (ctypes.c_void_p * max(nt, 1))()

    # -- lifetime --
    @property
    def handle(self):
        if not self._h:
            raise TerseError(C.ERR_INVALID_ARG, "model state already closed")
        return self._h

    def close(self):
        if self._h:
            C.terse_model_destroy(self._h)
            self._h = None

    def __del__(self):
        if getattr(self, "_h", None):
            C.terse_model_destroy(self._h)
            self._h = None

    # -- the step --
    def pointers(self, addrs):
        """The C pointer array for ``addrs`` (one integer address per tensor, in order)."""
        p = self._ptrs
        for j, a in enumerate(addrs):
            p[j] = a
        return p

    def _check(self, st, what):
        return check(st, self.comm.handle, "%s (%s, mode %s, step %d)" % (
            what, self.compressor.spec, self.mode, self.step))

    def set_point(self, ptrs):
        self._check(C.terse_model_set_point(self.handle, ptrs), "model set_point")

    @property
    def has_point(self):
        return bool(C.terse_model_has_point(self.handle))

    def post(self, bucket, ptrs):
        self._check(C.terse_model_post(self.handle, bucket, ptrs), "model exchange post")

    @property
    def posted(self):
        return int(C.terse_model_posted(self.handle))

    def finish(self, ptrs):
        self._check(C.terse_model_finish(self.handle, ptrs), "model exchange")

    def write_point(self, ptrs):
        self._check(C.terse_model_write_point(self.handle, ptrs), "model write_point")

    def progress(self):
        """Moves the exchanges in flight along (never blocks)."""
        C.terse_comm_progress(self.comm.handle)

    # -- queries --
    @property
    def step(self):
        return int(C.terse_model_step(self.handle))

    @property
    def bytes_sent(self):
        return int(C.terse_model_bytes_sent(self.handle))

    def _copy(self, fn, j, dtype):
        out = np.empty(self.tensors[j][1], dtype)
        st = fn(self.handle, j, out.ctypes.data)
        if st != C.OK:
            raise TerseError(st, "model state: tensor %d" % j)
        return out

    def consensus(self, j):
        """A copy of x_t of tensor j, stored as the parameters are (bfloat16 as uint16)."""
        return self._copy(C.terse_model_consensus, j, _STORED[self.tensors[j][2]])

    def consensus_into(self, j, addr):
        """x_t of tensor j written to the storage at ``addr`` (of the tensor's dtype)."""
        st = C.terse_model_consensus(self.handle, j, addr)
        if st != C.OK:
            raise TerseError(st, "model consensus: tensor %d" % j)

    def worker_error(self, j):
        """A copy of e_k of tensor j (float32; float64 for float64 tensors)."""
        return self._copy(C.terse_model_worker_error, j, _WIDE[self.tensors[j][2]])

    def server_error(self, j):
        return self._copy(C.terse_model_server_error, j, np.float32)

    # -- checkpoints --
    def save(self):
        n = C.terse_model_save_size(self.handle)
        buf = ctypes.create_string_buffer(max(n, 1))
        w = ctypes.c_size_t()
        st = C.terse_model_save(self.handle, buf, n, ctypes.byref(w))
        if st != C.OK:
            raise TerseError(st, "terse_model_save: %s" % C.terse_status_string(st).decode())
        return buf.raw[:w.value]

    def restore(self, data, ptrs=None):
        """Loads save()'s bytes; with ``ptrs`` writes the parameters' point. ERR_INVALID_ARG
        for a state made with other parameters, ERR_CORRUPT for damaged bytes."""
        data = bytes(data)
        st = C.terse_model_restore(self.handle, data, len(data), ptrs)
        if st == C.ERR_INVALID_ARG:
            raise TerseError(st, "terse_model_restore: the saved state was made with other "
                             "parameters (compressor, mode, period, double-way, tensors or "
                             "buckets) than this one (%s, mode %s, %d tensors)" % (
                                 self.compressor.spec, self.mode, len(self.tensors)))
        if st != C.OK:
            raise TerseError(st, "terse_model_restore: %s" % C.terse_status_string(st).decode())
