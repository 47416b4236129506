"""Pythonic classes over the 1:1 layer: TerseError, Comm (numpy arrays), Compressor,
ErrorFeedback, and the compressed allreduce."""
import ctypes
import os
import zlib

import numpy as np

from . import _capi as C


class TerseError(RuntimeError):
    """The one exception type of terse. ``status`` is the C status code, ``name`` its enumerator
    name without prefix ("ERR_MISMATCH"), ``message`` the human reason (the communicator's last
    error where there is one)."""

    def __init__(self, status, message=""):
        self.status = int(status)
        self.name = C.terse_status_name(self.status).decode()
        self.message = message or C.terse_status_string(self.status).decode()
        super().__init__("%s: %s" % (self.name, self.message))


def check(status, comm_h=None, what=""):
    """Raise TerseError unless status is OK (or INPROGRESS)."""
    if status == C.OK or status == C.INPROGRESS:
        return status
    msg = ""
    if comm_h:
        msg = (C.terse_comm_last_error(comm_h) or b"").decode(errors="replace")
    if not msg:
        msg = C.terse_status_string(status).decode()
    if what:
        msg = "%s: %s" % (what, msg)
    raise TerseError(status, msg)


_NP_DTYPES = {
    np.dtype(np.float32): C.DTYPE_FLOAT32, np.dtype(np.float64): C.DTYPE_FLOAT64,
    np.dtype(np.float16): C.DTYPE_FLOAT16, np.dtype(np.int8): C.DTYPE_INT8,
    np.dtype(np.int16): C.DTYPE_INT16, np.dtype(np.int32): C.DTYPE_INT32,
    np.dtype(np.int64): C.DTYPE_INT64, np.dtype(np.uint8): C.DTYPE_UINT8,
}
_OPS = {"sum": C.OP_SUM, "avg": C.OP_AVG, "average": C.OP_AVG, "min": C.OP_MIN,
        "max": C.OP_MAX, "prod": C.OP_PROD, "product": C.OP_PROD}


def dtype_code(dtype):
    try:
        return _NP_DTYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TerseError(C.ERR_INVALID_ARG, "unsupported dtype %r (supported: %s)" % (
            dtype, ", ".join(str(d) for d in _NP_DTYPES)))


def op_code(op):
    if isinstance(op, int):
        if not 0 <= op <= C.OP_PROD:
            raise TerseError(C.ERR_INVALID_ARG, "unknown reduction op %r" % (op,))
        return op
    try:
        return _OPS[str(op).lower()]
    except KeyError:
        raise TerseError(C.ERR_INVALID_ARG, "unknown reduction op %r (sum, avg, min, max, prod)"
                         % (op,))


def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


def _contig(a, name="array"):
    if not isinstance(a, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray, not %s" % (name, type(a).__name__))
    return np.ascontiguousarray(a)


def tensor_id_of(name):
    """A stable 32-bit id for a tensor name (keys randk and is checked by decoders)."""
    return zlib.crc32(str(name).encode()) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Bootstrap


def _under_mpirun():
    return any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))


class _MpiOob:
    """Out-of-band allgather through mpi4py (used only while the communicator is created)."""

    def __init__(self, mpi_comm=None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = mpi_comm if mpi_comm is not None else MPI.COMM_WORLD

        def allgather(sbuf, rbuf, msglen, info):
            try:
                n = self.comm.Get_size()
                s = (ctypes.c_char * msglen).from_address(sbuf)
                r = (ctypes.c_char * (msglen * n)).from_address(rbuf)
                self.comm.Allgather([s, MPI.BYTE], [r, MPI.BYTE])
                return C.OK
            except Exception:  # never let an exception cross into C
                return -10  # TERSE_ERR_BOOTSTRAP
        self.fn = C.OOB_ALLGATHER_FUNC(allgather)  # kept alive by self

    def struct(self):
        return C.Oob(self.fn, None, self.comm.Get_rank(), self.comm.Get_size())


class _SelfOob:
    """Single process without any launcher: size 1."""

    def __init__(self):
        def allgather(sbuf, rbuf, msglen, info):
            ctypes.memmove(rbuf, sbuf, msglen)
            return C.OK
        self.fn = C.OOB_ALLGATHER_FUNC(allgather)

    def struct(self):
        return C.Oob(self.fn, None, 0, 1)


def _default_oob():
    if "TERSE_RANK" in os.environ:
        return None  # the library's TCP rendezvous (TERSE_RANK/TERSE_SIZE/TERSE_ROOT_ADDR)
    if _under_mpirun():
        return _MpiOob()
    return _SelfOob()


# ---------------------------------------------------------------------------------------------
# Communicator


class Comm:
    """A terse communicator over numpy arrays. Collectives are matched by call order, as in
    the C API (terse.torch adds matching by name on top).

    ``Comm()`` bootstraps from mpirun (through mpi4py), from TERSE_RANK/TERSE_SIZE/
    TERSE_ROOT_ADDR, or as a single process; ``Comm(mpi_comm=...)`` over an mpi4py communicator.
    """

    def __init__(self, mpi_comm=None, progress_thread=None, timeout=None):
        self._oob = _MpiOob(mpi_comm) if mpi_comm is not None else _default_oob()
        params = C.CommParams()
        if self._oob is not None:
            params.field_mask |= C.COMM_PARAM_FIELD_OOB
            params.oob = self._oob.struct()
        if progress_thread is not None:
            params.field_mask |= C.COMM_PARAM_FIELD_PROGRESS_THREAD
            params.progress_thread = int(progress_thread)
        if timeout is not None:
            params.field_mask |= C.COMM_PARAM_FIELD_TIMEOUT
            params.timeout = float(timeout)
        h = C.c_comm()
        check(C.terse_comm_create(ctypes.byref(params), ctypes.byref(h)), None,
              "terse_comm_create")
        self._h = h
        self.rank = C.terse_comm_rank(h)
        self.size = C.terse_comm_size(h)
        self.local_rank = C.terse_comm_local_rank(h)
        self.local_size = C.terse_comm_local_size(h)
        self.cross_rank = C.terse_comm_cross_rank(h)
        self.cross_size = C.terse_comm_cross_size(h)

    @property
    def handle(self):
        if not self._h:
            raise TerseError(C.ERR_INVALID_ARG, "communicator already destroyed")
        return self._h

    def destroy(self):
        if self._h:
            C.terse_comm_destroy(self._h)
            self._h = None

    def last_error(self):
        return (C.terse_comm_last_error(self.handle) or b"").decode(errors="replace")

    def _check(self, st, what):
        return check(st, self.handle, what)

    # -- dense collectives (blocking) --
    def barrier(self):
        self._check(C.terse_barrier(self.handle), "barrier")

    def allreduce(self, a, op="sum", out=None):
        """Reduce ``a`` over all ranks; returns ``out`` (a new array if None)."""
        a = _contig(a)
        if out is None:
            out = np.empty_like(a)
        elif out.shape != a.shape or out.dtype != a.dtype or not out.flags.c_contiguous:
            raise TerseError(C.ERR_INVALID_ARG, "out must be a C-contiguous array like the input")
        self._check(C.terse_allreduce(self.handle, _ptr(a), _ptr(out), a.size, dtype_code(a.dtype),
                                      op_code(op)), "allreduce")
        return out

    def allreduce_(self, a, op="sum"):
        """In-place allreduce of a C-contiguous array."""
        if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
            raise TerseError(C.ERR_INVALID_ARG, "in-place allreduce needs a C-contiguous ndarray")
        self._check(C.terse_allreduce(self.handle, ctypes.c_void_p(1), _ptr(a), a.size,
                                      dtype_code(a.dtype), op_code(op)), "allreduce")
        return a

    def allgatherv_bytes(self, data, counts):
        """Concatenate every rank's ``data`` (uint8, counts[i] bytes from rank i)."""
        data = np.frombuffer(bytes(data), np.uint8) if not isinstance(data, np.ndarray) else data
        cnt = (ctypes.c_size_t * self.size)(*counts)
        out = np.empty(sum(counts), np.uint8)
        self._check(C.terse_allgatherv(self.handle, _ptr(data), _ptr(out), cnt, None,
                                       C.DTYPE_UINT8), "allgatherv")
        return out

    def allgather(self, a):
        """Concatenate along the first dimension, which may differ across ranks."""
        a = _contig(a)
        if a.ndim == 0:
            a = a.reshape(1)
        dims = np.array([a.shape[0]], np.int64)
        alld = self.allgather_fixed(dims)
        row = int(np.prod(a.shape[1:], dtype=np.int64))
        counts = [int(d) * row for d in alld]
        out = np.empty((int(alld.sum()),) + a.shape[1:], a.dtype)
        cnt = (ctypes.c_size_t * self.size)(*counts)
        self._check(C.terse_allgatherv(self.handle, _ptr(a), _ptr(out), cnt, None,
                                       dtype_code(a.dtype)), "allgather")
        return out

    def allgather_fixed(self, a):
        """Allgather of equal-shape arrays: result shape (size * a.shape[0], ...)."""
        a = _contig(a)
        out = np.empty((self.size * (a.shape[0] if a.ndim else 1),) + a.shape[1:], a.dtype)
        self._check(C.terse_allgather(self.handle, _ptr(a), _ptr(out), a.size,
                                      dtype_code(a.dtype)), "allgather")
        return out

    def broadcast(self, a, root=0):
        """Broadcast in place from ``root`` (a C-contiguous array); returns it."""
        if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
            raise TerseError(C.ERR_INVALID_ARG, "broadcast needs a C-contiguous ndarray")
        self._check(C.terse_bcast(self.handle, _ptr(a), a.size, dtype_code(a.dtype), int(root)),
                    "broadcast")
        return a

    def alltoall(self, a):
        a = _contig(a)
        if a.size % self.size:
            raise TerseError(C.ERR_INVALID_ARG, "alltoall: size %d not divisible by %d ranks"
                             % (a.size, self.size))
        out = np.empty_like(a)
        self._check(C.terse_alltoall(self.handle, _ptr(a), _ptr(out), a.size // self.size,
                                     dtype_code(a.dtype)), "alltoall")
        return out

    # -- compressed --
    def compressed_allreduce(self, a, compressor, tensor_id=0, step=0, error=None,
                             server_error=None):
        """Average of C(a_k (+ e_k)) over ranks (float32).

        ``error``: an ErrorFeedback or a float32 array e_k, updated in place to the remainder
        (EF); ``server_error``: a float32 array e_s for double-way compression, updated in place.
        Identical result on all ranks.
        """
        compressor = Compressor.of(compressor)
        v = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
        e = error.error if isinstance(error, ErrorFeedback) else error
        if e is not None:
            v = v + e.reshape(-1)
        wire, _, rem = compressor.compress(v, tensor_id, step, remainder=e is not None)
        lens = self.allgather_fixed(np.array([len(wire)], np.int64))
        allw = self.allgatherv_bytes(wire, [int(x) for x in lens])
        out = aggregate(compressor, allw, lens, v.size, tensor_id, step, server_error)
        if e is not None:
            e.reshape(-1)[:] = rem
        return out.reshape(np.shape(a))

    def average_(self, a):
        """In-place average over ranks (float arrays), e.g. SAEF's periodic error averaging."""
        return self.allreduce_(a, "avg")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()


def aggregate(compressor, allwire, lens, n, tensor_id, step, server_error=None):
    """Server side of the compressed allreduce, done redundantly by every rank: decode every
    rank's message in rank order into one accumulator, divide by the number of ranks, and with
    ``server_error`` (double-way) return C(e_s + avg), keeping e_s = e_s + avg - C(e_s + avg)."""
    acc = np.zeros(n, np.float32)
    off = 0
    for ln in lens:
        ln = int(ln)
        compressor.decompress_add(allwire[off:off + ln], acc, tensor_id, step)
        off += ln
    acc /= np.float32(len(lens))
    if server_error is None:
        return acc
    s = acc + server_error.reshape(-1)
    _, dense, rem = compressor.compress(s, tensor_id ^ 0x5EA5E, step, dense=True, remainder=True)
    server_error.reshape(-1)[:] = rem
    return dense


class Compressor:
    """A terse compressor: ``Compressor("topk:0.01")``, ``Compressor.topk(0.01, block_size=0)``,
    ``.sign()``, ``.randk(r, seed=0)``, ``.induced(a, b)``, ``.none()``, ``.fp16()``."""

    def __init__(self, spec="none"):
        if isinstance(spec, Compressor):
            spec = spec.spec
        if not isinstance(spec, str):
            raise TypeError("compressor spec must be a string, not %s" % type(spec).__name__)
        self._c = C.Compressor()
        st = C.terse_compressor_parse(spec.encode(), ctypes.byref(self._c))
        if st != C.OK:
            raise TerseError(st, "invalid compressor spec %r" % spec)
        buf = ctypes.create_string_buffer(256)
        check(C.terse_compressor_format(ctypes.byref(self._c), buf, 256))
        self.spec = buf.value.decode()
        self.kind = self._c.kind

    @classmethod
    def of(cls, c):
        return c if isinstance(c, Compressor) else cls(c)

    @staticmethod
    def _suffix(block_size, seed=None):
        s = ""
        if block_size:
            s += ",block=%d" % int(block_size)
        if seed is not None:
            s += ",seed=%d" % int(seed)
        return s

    @classmethod
    def topk(cls, ratio, block_size=0):
        return cls("topk:%r" % float(ratio) + cls._suffix(block_size))

    @classmethod
    def randk(cls, ratio, block_size=0, seed=0):
        return cls("randk:%r" % float(ratio) + cls._suffix(block_size, seed))

    @classmethod
    def induced(cls, topk_ratio, randk_ratio, block_size=0, seed=0):
        return cls("induced:%r,%r" % (float(topk_ratio), float(randk_ratio))
                   + cls._suffix(block_size, seed))

    @classmethod
    def sign(cls, block_size=0):
        return cls("sign" + cls._suffix(block_size))

    @classmethod
    def none(cls):
        return cls("none")

    @classmethod
    def fp16(cls):
        return cls("fp16")

    def __repr__(self):
        return "Compressor(%r)" % self.spec

    def __eq__(self, other):
        return isinstance(other, Compressor) and other.spec == self.spec

    def __hash__(self):
        return hash(self.spec)

    def max_bytes(self, n):
        return C.terse_compress_max_bytes(ctypes.byref(self._c), n)

    def compress(self, v, tensor_id=0, step=0, dense=False, remainder=False):
        """Returns (wire bytes as a uint8 array, C(v) or None, v - C(v) or None)."""
        v = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
        cap = self.max_bytes(v.size)
        wire = np.empty(max(cap, 1), np.uint8)
        wl = ctypes.c_size_t()
        d = np.empty_like(v) if dense else None
        r = np.empty_like(v) if remainder else None
        st = C.terse_compress(ctypes.byref(self._c), _ptr(v), v.size, tensor_id & 0xFFFFFFFF,
                              step, _ptr(wire), cap, ctypes.byref(wl),
                              _ptr(d) if d is not None else None,
                              _ptr(r) if r is not None else None)
        if st != C.OK:
            raise TerseError(st, "compress (%s, tensor %d, %d elements): %s" % (
                self.spec, tensor_id, v.size, C.terse_status_string(st).decode()))
        return wire[:wl.value], d, r

    def decompress_add(self, wire, acc, tensor_id=0, step=0):
        """acc += C(v) from a message made by compress() with the same tensor_id and step."""
        wire = np.ascontiguousarray(wire, dtype=np.uint8)
        st = C.terse_decompress(ctypes.byref(self._c), _ptr(wire), wire.size, acc.size,
                                tensor_id & 0xFFFFFFFF, step, _ptr(acc))
        if st != C.OK:
            raise TerseError(st, "decompress (%s, tensor %d): %s" % (
                self.spec, tensor_id, C.terse_status_string(st).decode()))
        return acc


class ErrorFeedback:
    """Error-feedback state of one tensor: ``error`` (float32, e_k), ``mode`` "ef" or "saef"."""

    def __init__(self, shape, mode="ef"):
        if mode not in ("ef", "saef"):
            raise ValueError("error feedback mode must be 'ef' or 'saef', not %r" % (mode,))
        self.mode = mode
        self.error = np.zeros(shape, np.float32)
