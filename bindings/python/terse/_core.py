"""Pythonic classes over the 1:1 layer: TerseError, Comm (numpy arrays, with the C compressed
allreduce), Request, Compressor and ErrorFeedback (the C error-feedback state)."""
import ctypes
import os
import weakref
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


def _word_code(parse, kind, word):
    """The C enum value of an algorithm or hierarchy word, through the C parser (one list of
    words: TERSE_COMPRESSED_ALGO's and TERSE_HIERARCHY's)."""
    if not isinstance(word, str):
        raise ValueError("%s must be a string, not %r" % (kind, word))
    v = ctypes.c_int()
    if parse(word.encode(), ctypes.byref(v)) != C.OK:
        raise ValueError("unknown %s %r" % (kind, word))
    return v.value


def set_choice(prm, algorithm, hierarchy, algo_bit, hier_bit, algo_field="algo"):
    """Sets the optional algorithm / hierarchy fields of a params struct (None: not chosen, the
    communicator's, else the environment's)."""
    if algorithm is not None:
        setattr(prm, algo_field, _word_code(C.terse_compressed_algo_parse, "algorithm",
                                            algorithm))
        prm.field_mask |= algo_bit
    if hierarchy is not None:
        prm.hierarchy = _word_code(C.terse_hierarchy_parse, "hierarchy", hierarchy)
        prm.field_mask |= hier_bit


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
                return C.ERR_BOOTSTRAP
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
    """The bootstrap of ``Comm()``. The C library decides only between a given out-of-band
    allgather and its environment rendezvous (no OOB: TERSE_RANK/TERSE_SIZE/TERSE_ROOT_ADDR,
    validated and reported by C). MPI and the single-process fallback must be decided here:
    libterse itself does not link MPI (terse_comm_create_mpi lives in libterse_mpi, which
    this binding does not load; mpi4py provides the allgather), and C treats a missing
    bootstrap as an error rather than guessing size 1. So Python only chooses which OOB to
    pass, and hands every rendezvous detail to C."""
    if "TERSE_RANK" in os.environ:
        return None  # C's environment rendezvous (it checks TERSE_SIZE/TERSE_ROOT_ADDR)
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
    ``algorithm`` (auto|sparse_allgather|sparse_rs_ag|sign_allgather|sign_a2a_ag|dense) and
    ``hierarchy`` (none|node) are the compressed allreduce's defaults on this communicator
    (None: TERSE_COMPRESSED_ALGO / TERSE_HIERARCHY); a call or a state may choose its own.
    """

    def __init__(self, mpi_comm=None, progress_thread=None, timeout=None, algorithm=None,
                 hierarchy=None):
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
        set_choice(params, algorithm, hierarchy, C.COMM_PARAM_FIELD_COMPRESSED_ALGO,
                   C.COMM_PARAM_FIELD_HIERARCHY, algo_field="compressed_algo")
        self._h = None
        h = C.c_comm()
        check(C.terse_comm_create(ctypes.byref(params), ctypes.byref(h)), None,
              "terse_comm_create")
        self._adopt(h)

    @classmethod
    def _from_handle(cls, h):
        """A Comm owning the C communicator ``h`` (from terse_comm_split / terse_comm_dup)."""
        self = cls.__new__(cls)
        self._oob = None
        self._adopt(h)
        return self

    def _adopt(self, h):
        self._requests = weakref.WeakSet()  # nonblocking requests not yet completed
        self._orphans = []  # buffers of requests dropped in flight, borrowed until destroy
        self.last_bytes_sent = 0
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
            for r in list(self._requests):
                r._cancel()
            C.terse_comm_destroy(self._h)
            self._h = None
            self._orphans = []

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

    def reduce_scatter(self, a, op="sum", counts=None):
        """Reduce ``a`` (the whole vector, read flattened) over all ranks and return this rank's
        block as a new 1-D array: with ``counts=None`` equal blocks of ``a.size // size``
        elements (``a.size`` must be a multiple of ``size``), else ``counts[i]`` elements for
        rank i, in rank order (``sum(counts) == a.size``, the same on every rank). The block
        holds the same bits as that slice of ``allreduce(a, op)``."""
        a = _contig(a).reshape(-1)
        code, opc = dtype_code(a.dtype), op_code(op)
        if counts is None:
            if a.size % self.size:
                raise TerseError(C.ERR_INVALID_ARG, "reduce_scatter: size %d not divisible by "
                                 "%d ranks (pass counts)" % (a.size, self.size))
            out = np.empty(a.size // self.size, a.dtype)
            self._check(C.terse_reduce_scatter(self.handle, _ptr(a), _ptr(out), out.size, code,
                                               opc), "reduce_scatter")
            return out
        counts = [int(c) for c in counts]
        if len(counts) != self.size or min(counts) < 0 or sum(counts) != a.size:
            raise TerseError(C.ERR_INVALID_ARG, "reduce_scatter: counts must be %d non-negative "
                             "numbers adding up to %d" % (self.size, a.size))
        out = np.empty(counts[self.rank], a.dtype)
        cnt = (ctypes.c_size_t * self.size)(*counts)
        self._check(C.terse_reduce_scatter_v(self.handle, _ptr(a), _ptr(out), cnt, code, opc),
                    "reduce_scatter_v")
        return out

    def reduce(self, a, root=0, op="sum"):
        """Reduce ``a`` over all ranks to ``root``: returns a new array shaped like ``a`` on the
        root (the bits ``allreduce(a, op)`` gives), None on the other ranks."""
        a = _contig(a)
        out = np.empty_like(a) if self.rank == root else None
        self._check(C.terse_reduce(self.handle, _ptr(a), _ptr(out) if out is not None else None,
                                   a.size, dtype_code(a.dtype), op_code(op), int(root)),
                    "reduce")
        return out

    # -- communicators --
    def split(self, color, key=None):
        """A new Comm of the ranks passing the same ``color`` (>= 0), ordered by ``key``
        (default: this rank), ties by rank; ``color=None`` (or negative) joins none and
        returns None. Collective over this communicator; the new one is independent of it
        (destroy either first)."""
        color = C.UNDEFINED if color is None or int(color) < 0 else int(color)
        h = C.c_comm()
        self._check(C.terse_comm_split(self.handle, color, self.rank if key is None else int(key),
                                       ctypes.byref(h)), "comm_split")
        return Comm._from_handle(h) if h.value else None

    def dup(self):
        """A new Comm of the same ranks in the same order (collective)."""
        h = C.c_comm()
        self._check(C.terse_comm_dup(self.handle, ctypes.byref(h)), "comm_dup")
        return Comm._from_handle(h)

    # -- compressed --
    def icompressed_allreduce(self, a, compressor, tensor_id=0, step=0, error=None,
                              server_error=None, out=None, double_way=None, algorithm=None,
                              hierarchy=None):
        """Nonblocking compressed allreduce (terse_icompressed_allreduce); returns a Request whose
        ``wait()`` gives what compressed_allreduce returns. Every array stays borrowed by the C
        library until the request completes (the Request keeps them alive)."""
        compressor = Compressor.of(compressor)
        single = isinstance(a, np.ndarray)
        arrays = [a] if single else list(a)
        nt = len(arrays)
        ids = _per_tensor(tensor_id, nt, "tensor_id")
        errs = _per_tensor(error, nt, "error")
        serrs = _per_tensor(server_error, nt, "server_error")
        outs = _per_tensor(out, nt, "out")
        if double_way is None:
            double_way = any(e is not None for e in serrs)
        keep, results = [], []
        tens = (C.CTensor * max(nt, 1))()
        for j, x in enumerate(arrays):
            if not isinstance(x, np.ndarray):
                raise TypeError("compressed_allreduce: tensor %d must be a numpy.ndarray, not %s"
                                % (j, type(x).__name__))
            v = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
            e = _state_array(errs[j], v.size, "error", j)
            se = _state_array(serrs[j], v.size, "server_error", j)
            if e is not None:
                v = v + e  # Delta_k = a + e_k; C writes e_k = Delta_k - C(Delta_k) on success
            o = outs[j]
            if o is None:
                o = np.empty(np.shape(x), np.float32)
            elif (not isinstance(o, np.ndarray) or o.dtype != np.float32
                  or not o.flags.c_contiguous or o.size != v.size):
                raise TerseError(C.ERR_INVALID_ARG, "compressed_allreduce: out[%d] must be a "
                                 "C-contiguous float32 array of %d elements" % (j, v.size))
            keep += [v, e, se, o]
            results.append(o)
            tens[j] = C.CTensor(int(ids[j]) & 0xFFFFFFFF, v.size, v.ctypes.data, o.ctypes.data,
                                e.ctypes.data if e is not None else None,
                                se.ctypes.data if se is not None else None)
        prm = C.CallreduceParams()
        prm.field_mask = C.CALLREDUCE_FIELD_DOUBLE_WAY | C.CALLREDUCE_FIELD_STEP
        prm.tensors = tens
        prm.ntensors = nt
        prm.compressor = ctypes.pointer(compressor._c)
        prm.double_way = int(bool(double_way))
        prm.step = int(step)
        set_choice(prm, algorithm, hierarchy, C.CALLREDUCE_FIELD_ALGO,
                   C.CALLREDUCE_FIELD_HIERARCHY)
        req = C.c_req()
        what = "compressed allreduce (%s, %d tensor%s)" % (compressor.spec, nt,
                                                          "" if nt == 1 else "s")
        self._check(C.terse_icompressed_allreduce(self.handle, ctypes.byref(prm),
                                                  ctypes.byref(req)), what)
        return Request(self, req, results[0] if single else results, keep, what)

    def compressed_allreduce(self, a, compressor, tensor_id=0, step=0, error=None,
                             server_error=None, out=None, double_way=None, algorithm=None,
                             hierarchy=None):
        """The C compressed allreduce: average of C(a_k + e_k) over ranks (float32),
        identical on every rank (see include/terse/compressed.h).

        ``a``: a numpy array, or a list of arrays fused into one call (each still compressed
        on its own; ``tensor_id``, ``error``, ``server_error``, ``out`` are then lists too).
        ``tensor_id`` (uint32) and ``step`` key randk and are checked across ranks.
        ``error``: None or a C-contiguous float32 array e_k: the input becomes a + e_k and e_k is
        updated in place to the remainder (error feedback). ``server_error``: a C-contiguous
        float32 array e_s, updated in place (double-way: returns C(e_s + avg)); ``double_way``
        defaults to ``server_error is not None``. Outputs and errors are written only if the
        whole collective succeeded, on every rank; otherwise TerseError is raised on every rank.
        ``last_bytes_sent`` then holds the bytes this rank sent (terse_request_bytes_sent).
        ``algorithm`` / ``hierarchy``: this call's choice (None: the communicator's); part of
        the call's signature, so ranks that choose differently all get ERR_MISMATCH.
        """
        return self.icompressed_allreduce(a, compressor, tensor_id, step, error, server_error,
                                          out, double_way, algorithm, hierarchy).wait()

    def average_(self, a):
        """In-place average over ranks (float arrays), e.g. SAEF's periodic error averaging."""
        return self.allreduce_(a, "avg")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()


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



# ---------------------------------------------------------------------------------------------
# Requests and error feedback


def _per_tensor(x, nt, name):
    """``x`` for a list of ``nt`` tensors: None -> [None] * nt; one value -> [x] if nt == 1."""
    if x is None:
        return [None] * nt
    if isinstance(x, (list, tuple)):
        if len(x) != nt:
            raise TerseError(C.ERR_INVALID_ARG, "%s: %d entries for %d tensors" % (name, len(x),
                                                                                  nt))
        return list(x)
    if nt != 1:
        raise TerseError(C.ERR_INVALID_ARG, "%s: a list of %d entries is needed for %d tensors"
                         % (name, nt, nt))
    return [x]


def _state_array(x, n, name, j):
    """A float32 array the C library updates in place: must be C-contiguous with n elements."""
    if x is None:
        return None
    if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous
            or not x.flags.writeable or x.size != n):
        raise TerseError(C.ERR_INVALID_ARG, "%s[%d] must be a writeable C-contiguous float32 "
                         "array of %d elements" % (name, j, n))
    return x.reshape(-1)


class Request:
    """A nonblocking collective in flight (from Comm.icompressed_allreduce). ``test()`` advances
    it without blocking; ``wait()`` blocks (the GIL is released) and returns its result or raises
    TerseError. ``bytes_sent`` (terse_request_bytes_sent) and ``algorithm`` are set once done."""

    def __init__(self, comm, h, result, keep, what):
        self._comm, self._h, self._result, self._keep, self._what = comm, h, result, keep, what
        self._status = None
        self._error = None
        self.bytes_sent = 0
        self.algorithm = (C.terse_request_algorithm(h) or b"").decode()
        comm._requests.add(self)

    def _complete(self, st):
        h, self._h = self._h, None
        self.bytes_sent = int(C.terse_request_bytes_sent(h))
        self.algorithm = (C.terse_request_algorithm(h) or b"").decode()
        if st != C.OK:
            msg = (C.terse_comm_last_error(self._comm.handle) or b"").decode(errors="replace")
            self._error = TerseError(st, "%s: %s" % (self._what, msg or
                                                     C.terse_status_string(st).decode()))
        C.terse_request_free(h)
        self._comm.last_bytes_sent = self.bytes_sent
        self._comm._requests.discard(self)
        self._status = st
        self._keep = None

    def test(self):
        """True once finished (then wait() does not block)."""
        if self._status is None:
            st = C.terse_test(self._h)
            if st == C.INPROGRESS:
                return False
            self._complete(st)
        return True

    def wait(self):
        if self._status is None:
            self._complete(C.terse_wait(self._h))
        if self._error is not None:
            raise self._error
        return self._result

    def _cancel(self):
        """Before the communicator goes away: free the request (cancels it if in flight)."""
        if self._h:
            C.terse_request_free(self._h)
            self._h = None
            self._status = C.ERR_BUSY
            self._error = TerseError(C.ERR_BUSY, "%s: communicator destroyed with the call in "
                                     "flight" % self._what)

    def __del__(self):
        h = getattr(self, "_h", None)
        if h and self._comm._h:
            # Dropped while in flight: cancel; the buffers stay borrowed until the communicator
            # is destroyed, so the communicator keeps them alive until then.
            self._comm._orphans.append(self._keep)
            C.terse_request_free(h)
            self._h = None


_EF_MODES = {None: C.EF_MODE_NONE, "none": C.EF_MODE_NONE, "ef": C.EF_MODE_EF,
             "saef": C.EF_MODE_SAEF}


def _shapes_of(shapes):
    """A shape (int or tuple of ints) for one tensor, or a list of shapes."""
    if isinstance(shapes, (int, np.integer)):
        return [(int(shapes),)]
    if isinstance(shapes, tuple) and all(isinstance(d, (int, np.integer)) for d in shapes):
        return [tuple(int(d) for d in shapes)]
    out = []
    for s in shapes:
        s = (int(s),) if isinstance(s, (int, np.integer)) else tuple(int(d) for d in s)
        if any(d < 0 for d in s):
            raise TerseError(C.ERR_INVALID_ARG, "negative dimension in shape %r" % (s,))
        out.append(s)
    return out


class ErrorFeedback:
    """Error-feedback state (none | EF | SAEF, Algorithm 1 of the SAEF paper) of a list of
    float32 tensors, kept by the C library (terse_ef_*, include/terse/ef.h).

        ef = terse.ErrorFeedback([w.shape, b.shape], "topk:0.01", mode="saef", period=10,
                                 names=["w", "b"])
        xh = ef.prepare([w, b])        # averages e_k when due (collective), xh = x - e_k (SAEF)
        ... local optimizer step from xh to x'; d = xh - x' ...
        u = ef.exchange(d)             # u = compressed allreduce of C(e_k + d) (collective)
        w -= u[0]; b -= u[1]           # x stays identical on every rank

    The tensors of one state are fused into one compressed allreduce per exchange and each is
    compressed on its own (tensor ids: ``ids``, else crc32 of ``names``, else 0..n-1).
    ``save()`` returns the whole state as bytes; ``restore(b)`` loads it into a state created
    with the same parameters. On any error the state is unchanged and TerseError is raised (on
    every rank for the collective calls). ``algorithm`` / ``hierarchy``: the exchanges'
    choice (None: the communicator's).
    """

    def __init__(self, shapes, compressor, mode="ef", period=None, double_way=False, ids=None,
                 names=None, comm=None, algorithm=None, hierarchy=None):
        if mode not in _EF_MODES:
            raise ValueError("error feedback mode must be None, 'none', 'ef' or 'saef', not %r"
                             % (mode,))
        if period is not None and (not isinstance(period, (int, np.integer)) or period < 0):
            raise ValueError("period must be None or a non-negative int, not %r" % (period,))
        if comm is None:
            from . import comm as _default_comm
            comm = _default_comm()
        self._h = None
        self.comm = comm
        self.compressor = Compressor.of(compressor)
        self.mode = "none" if mode is None else mode
        self.period = int(period or 0)
        self.double_way = bool(double_way)
        self.shapes = _shapes_of(shapes)
        self.counts = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        nt = len(self.shapes)
        if ids is None:
            ids = [tensor_id_of(n) for n in names] if names is not None else list(range(nt))
        if len(ids) != nt:
            raise TerseError(C.ERR_INVALID_ARG, "%d tensor ids for %d tensors" % (len(ids), nt))
        self.ids = [int(i) & 0xFFFFFFFF for i in ids]
        self.names = list(names) if names is not None else None
        prm = C.EfParams()
        prm.field_mask = C.EF_FIELD_PERIOD | C.EF_FIELD_DOUBLE_WAY
        prm.mode = _EF_MODES[mode]
        prm.compressor = ctypes.pointer(self.compressor._c)
        prm.ntensors = nt
        self._ids_c = (ctypes.c_uint32 * max(nt, 1))(*self.ids)
        self._counts_c = (ctypes.c_size_t * max(nt, 1))(*self.counts)
        prm.ids = self._ids_c
        prm.counts = self._counts_c
        prm.period = self.period
        prm.double_way = int(self.double_way)
        set_choice(prm, algorithm, hierarchy, C.EF_FIELD_ALGO, C.EF_FIELD_HIERARCHY)
        self.algorithm, self.hierarchy = algorithm, hierarchy
        h = C.c_ef()
        st = C.terse_ef_create(comm.handle, ctypes.byref(prm), ctypes.byref(h))
        if st != C.OK:
            raise TerseError(st, "terse_ef_create (%s, mode %s, %d tensors): %s" % (
                self.compressor.spec, self.mode, nt, C.terse_status_string(st).decode()))
        self._h = h
        self._ptrs_in = (ctypes.c_void_p * max(nt, 1))()
        self._ptrs_out = (ctypes.c_void_p * max(nt, 1))()
        self.message_bytes = sum(self.compressor.max_bytes(n) for n in self.counts if n)

    # -- lifetime --
    @property
    def handle(self):
        if not self._h:
            raise TerseError(C.ERR_INVALID_ARG, "error-feedback state already closed")
        return self._h

    def close(self):
        if self._h:
            C.terse_ef_destroy(self._h)
            self._h = None

    def __del__(self):
        if getattr(self, "_h", None):
            C.terse_ef_destroy(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "ErrorFeedback(%s, mode=%r, %d tensors, %d elements, step %d)" % (
            self.compressor.spec, self.mode, len(self.counts), sum(self.counts),
            self.step if self._h else -1)

    # -- queries --
    @property
    def ntensors(self):
        return len(self.counts)

    @property
    def step(self):
        """Completed exchanges (the t of Algorithm 1)."""
        return int(C.terse_ef_step(self.handle))

    @property
    def wire_bytes_sent(self):
        """Bytes this rank sent in its successful exchanges, as the transport counted them
        (every copy of every compressed message, to every peer)."""
        return int(C.terse_ef_bytes_sent(self.handle))

    @property
    def averaging_due(self):
        """True if prepare() averages the errors across ranks now (it is then collective): the
        library's own rule (terse_ef_averaging_due), so also False once this step averaged."""
        return bool(C.terse_ef_averaging_due(self.handle))

    def _borrowed(self, fn, j):
        if not 0 <= j < self.ntensors:
            raise IndexError("tensor %d of %d" % (j, self.ntensors))
        p = fn(self.handle, j)
        if not p or not self.counts[j]:
            return None if not p else np.zeros(self.shapes[j], np.float32)
        return np.ctypeslib.as_array(p, (self.counts[j],)).copy().reshape(self.shapes[j])

    def worker_error(self, j=0):
        """A copy of this rank's e_k of tensor j (None in mode none)."""
        return self._borrowed(C.terse_ef_worker_error, j)

    def server_error(self, j=0):
        """A copy of e_s of tensor j (None single-way)."""
        return self._borrowed(C.terse_ef_server_error, j)

    # -- the step --
    def _arrays(self, xs, what, writeable):
        if isinstance(xs, np.ndarray) and self.ntensors == 1:
            xs = [xs]
        xs = list(xs)
        if len(xs) != self.ntensors:
            raise TerseError(C.ERR_INVALID_ARG, "%s: %d arrays for %d tensors" % (
                what, len(xs), self.ntensors))
        out = []
        for j, x in enumerate(xs):
            if (not isinstance(x, np.ndarray) or x.dtype != np.float32
                    or not x.flags.c_contiguous or x.size != self.counts[j]
                    or (writeable and not x.flags.writeable)):
                raise TerseError(C.ERR_INVALID_ARG, "%s: array %d must be a %sC-contiguous "
                                 "float32 array of %d elements" % (
                                     what, j, "writeable " if writeable else "",
                                     self.counts[j]))
            out.append(x)
        return out

    def _outputs(self, out, like, what):
        if out is None:
            return [np.empty(s, np.float32) for s in self.shapes]
        return self._arrays(out, what + " (out)", True)

    def prepare(self, x=None, out=None):
        """Start of a step: averages e_k across ranks when the period says so (collective on
        those steps), then returns xh = x - e_k (SAEF) or a copy of x (EF, none), written to
        ``out`` when given (``out`` may be ``x``). ``x`` None: averaging only, returns None."""
        ch = self.comm.handle  # raises if the communicator is gone
        if x is None:
            check(C.terse_ef_prepare(self.handle, None, None), ch, "error feedback prepare")
            return None
        xs = [np.ascontiguousarray(a, dtype=np.float32) for a in
              ([x] if isinstance(x, np.ndarray) else x)]
        xs = self._arrays(xs, "error feedback prepare", False)
        outs = self._outputs(out, xs, "error feedback prepare")
        for j in range(self.ntensors):
            self._ptrs_in[j] = xs[j].ctypes.data
            self._ptrs_out[j] = outs[j].ctypes.data
        check(C.terse_ef_prepare(self.handle, self._ptrs_in, self._ptrs_out), ch,
              "error feedback prepare")
        return outs

    def exchange(self, d, out=None):
        """The compressed exchange (collective): Delta_k = e_k + d, returns the update
        u = avg_k C(Delta_k) (double-way: C(e_s + avg)) to subtract from x, and keeps
        e_k = Delta_k - C(Delta_k). ``d``: the local optimizer's step xh - x' (one float32 array
        per tensor); ``out`` may be ``d``. On error nothing changes and TerseError is raised on
        every rank (ERR_NONFINITE for NaN/Inf in some rank's Delta, ERR_MISMATCH for states that
        differ across ranks)."""
        ch = self.comm.handle  # raises if the communicator is gone
        ds = [np.ascontiguousarray(a, dtype=np.float32) for a in
              ([d] if isinstance(d, np.ndarray) else d)]
        ds = self._arrays(ds, "error feedback exchange", False)
        outs = self._outputs(out, ds, "error feedback exchange")
        for j in range(self.ntensors):
            self._ptrs_in[j] = ds[j].ctypes.data
            self._ptrs_out[j] = outs[j].ctypes.data
        step = self.step
        st = C.terse_ef_exchange(self.handle, self._ptrs_in, self._ptrs_out)
        check(st, ch, "error feedback exchange (%s, mode %s, step %d)" % (
            self.compressor.spec, self.mode, step))
        return outs

    def wire_bytes(self, d):
        """Bytes of this rank's compressed messages in an exchange of ``d`` now: the sum over
        tensors of the standalone terse_compress message of C(e_k + d) (for statistics; costs
        one compression, and ``message_bytes`` is the free upper bound)."""
        ds = [np.ascontiguousarray(a, dtype=np.float32) for a in
              ([d] if isinstance(d, np.ndarray) else d)]
        ds = self._arrays(ds, "error feedback wire_bytes", False)
        step, total = self.step, 0
        for j, v in enumerate(ds):
            if not self.counts[j]:
                continue
            e = self.worker_error(j)
            v = v.reshape(-1) if e is None else e.reshape(-1) + v.reshape(-1)
            try:
                total += len(self.compressor.compress(v, self.ids[j], step)[0])
            except TerseError:  # non-finite: the exchange fails anyway
                total += self.compressor.max_bytes(self.counts[j])
        return total

    # -- checkpoints --
    def save(self):
        """The whole state (versioned, with its parameters and a checksum) as bytes."""
        n = C.terse_ef_save_size(self.handle)
        buf = ctypes.create_string_buffer(max(n, 1))
        w = ctypes.c_size_t()
        st = C.terse_ef_save(self.handle, buf, n, ctypes.byref(w))
        if st != C.OK:
            raise TerseError(st, "terse_ef_save: %s" % C.terse_status_string(st).decode())
        return buf.raw[:w.value]

    def restore(self, data):
        """Load bytes from save() (of a state with the same parameters). ERR_INVALID_ARG if the
        parameters differ, ERR_CORRUPT for damaged bytes; the state is unchanged on error."""
        data = bytes(data)
        st = C.terse_ef_restore(self.handle, data, len(data))
        if st == C.ERR_INVALID_ARG:
            raise TerseError(st, "terse_ef_restore: the saved state was made with other "
                             "parameters (compressor, mode, period, double-way, tensor ids or "
                             "sizes) than this one (%s, mode %s, %d tensors)" % (
                                 self.compressor.spec, self.mode, self.ntensors))
        if st != C.OK:
            raise TerseError(st, "terse_ef_restore: %s" % C.terse_status_string(st).decode())
