"""Horovod-compatible collectives on torch tensors (CPU), run by the name-matching engine."""
import atexit
import threading

import numpy as np
import torch

from .. import _capi as C
from .._core import Comm, Compressor, TerseError, tensor_id_of
from .._engine import Engine, _Op
from .compression import Compression, TerseCompression

# Horovod's op constants (same values as horovod.torch).
Average, Sum, Adasum, Min, Max, Product = 0, 1, 2, 3, 4, 5
_TERSE_OP = {Average: C.OP_AVG, Sum: C.OP_SUM, Min: C.OP_MIN, Max: C.OP_MAX, Product: C.OP_PROD}
_OP_NAME = {Average: "Average", Sum: "Sum", Adasum: "Adasum", Min: "Min", Max: "Max",
            Product: "Product"}

_DTYPES = {
    torch.float32: (C.DTYPE_FLOAT32, None), torch.float64: (C.DTYPE_FLOAT64, None),
    torch.float16: (C.DTYPE_FLOAT16, None), torch.bfloat16: (C.DTYPE_BFLOAT16, torch.int16),
    torch.int8: (C.DTYPE_INT8, None), torch.int16: (C.DTYPE_INT16, None),
    torch.int32: (C.DTYPE_INT32, None), torch.int64: (C.DTYPE_INT64, None),
    torch.uint8: (C.DTYPE_UINT8, None),
}

_state = threading.local()
_engine = None
_engine_lock = threading.Lock()
_handles = {}
_handle_seq = [0]
_name_seq = {}


class _Handle:
    __slots__ = ("op", "post")

    def __init__(self, op, post):
        self.op, self.post = op, post


def _not_init():
    return ValueError("terse has not been initialized; use hvd.init().")


def init(comm=None, process_sets=None):
    """Initialise terse (idempotent). ``comm``: an optional mpi4py communicator."""
    global _engine
    with _engine_lock:
        if _engine is None:
            if comm is not None and not hasattr(comm, "Allgather"):
                raise TerseError(C.ERR_NOT_SUPPORTED, "init(comm=...) takes an mpi4py "
                                 "communicator; rank lists are not supported")
            _engine = Engine(Comm(mpi_comm=comm))
            atexit.register(shutdown)


def shutdown():
    """Stop the background thread (collective: waits for every rank) and free the
    communicator."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.shutdown()
            _engine = None
            _handles.clear()


def is_initialized():
    return _engine is not None


def _eng():
    if _engine is None:
        raise _not_init()
    return _engine


def size():
    return _eng().comm.size


def rank():
    return _eng().comm.rank


def local_rank():
    return _eng().comm.local_rank


def local_size():
    return _eng().comm.local_size


def cross_rank():
    return _eng().comm.cross_rank


def cross_size():
    return _eng().comm.cross_size


def is_homogeneous():
    return True


def mpi_threads_supported():
    return True


def mpi_enabled():
    return True


def mpi_built():
    return True


def gloo_enabled():
    return False


def gloo_built():
    return False


def nccl_built():
    return 0


def ddl_built():
    return False


def ccl_built():
    return False


def cuda_built():
    return False


def rocm_built():
    return False


def start_timeline(file_path, mark_cycles=False):
    """Accepted for compatibility; terse has no timeline."""


def stop_timeline():
    """Accepted for compatibility; terse has no timeline."""


def _auto_name(kind):
    n = _name_seq.get(kind, 0)
    _name_seq[kind] = n + 1
    return "%s.noname.%d" % (kind, n)


def _check_tensor(t, what):
    if not isinstance(t, torch.Tensor):
        raise TypeError("%s expects a torch.Tensor, got %s" % (what, type(t).__name__))
    if t.dtype not in _DTYPES:
        raise TypeError("%s: unsupported dtype %s (supported: %s)" % (
            what, t.dtype, ", ".join(str(d) for d in _DTYPES)))
    if t.device.type != "cpu":
        raise TerseError(C.ERR_NOT_SUPPORTED, "%s: only CPU tensors are supported (got %s)"
                         % (what, t.device))
    if t.is_sparse:
        raise TerseError(C.ERR_NOT_SUPPORTED, "%s: sparse tensors are not supported" % what)


def _np(t):
    """A numpy view of a contiguous CPU tensor and its terse dtype code."""
    code, view = _DTYPES[t.dtype]
    t = t.detach()
    return (t.view(view) if view is not None else t).numpy(), code


def _register(op, post):
    _eng().submit(op)
    _handle_seq[0] += 1
    h = _handle_seq[0]
    _handles[h] = _Handle(op, post)
    return h


def _resolve_op(average, op, what="allreduce"):
    if op is not None and average is not None:
        raise ValueError("The op parameter supersedes average; specify only one of them.")
    if op is None:
        op = Sum if average is False else Average
    if op == Adasum:
        raise NotImplementedError("%s: op=Adasum is not supported by terse (use Average, Sum, "
                                  "Min, Max or Product)" % what)
    if op not in _TERSE_OP:
        raise ValueError("%s: unknown op %r" % (what, op))
    return op


# -- allreduce ---------------------------------------------------------------------------------

def _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor):
    _check_tensor(tensor, "allreduce")
    name = name if name is not None else _auto_name("allreduce")
    src = tensor.detach()
    if prescale_factor != 1.0:
        src = src * prescale_factor
    src = src.contiguous()
    out = output if (output is not None and output.is_contiguous()) else None
    if out is None:
        out = torch.empty_like(src, memory_format=torch.contiguous_format)
    a, code = _np(src)
    o, _ = _np(out)
    sig = ("allreduce", str(tensor.dtype), tuple(tensor.shape), _TERSE_OP[op])
    eop = _Op("allreduce", name, sig, 0, a, code, o)

    def post():
        res = out
        if postscale_factor != 1.0:
            res.mul_(postscale_factor)
        if output is not None and res is not output:
            output.copy_(res)
            return output
        return res
    return _register(eop, post)


def allreduce_async(tensor, average=None, name=None, op=None, prescale_factor=1.0,
                    postscale_factor=1.0, process_set=None):
    op = _resolve_op(average, op)
    return _allreduce_async(tensor, None, name, op, prescale_factor, postscale_factor)


def allreduce_async_(tensor, average=None, name=None, op=None, prescale_factor=1.0,
                     postscale_factor=1.0, process_set=None):
    op = _resolve_op(average, op)
    return _allreduce_async(tensor, tensor, name, op, prescale_factor, postscale_factor)


class _AllreduceFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, name, op, prescale_factor, postscale_factor):
        ctx.op, ctx.pre, ctx.post = op, prescale_factor, postscale_factor
        return synchronize(_allreduce_async(tensor, None, name, op, prescale_factor,
                                            postscale_factor))

    @staticmethod
    def backward(ctx, grad_output):
        return (synchronize(_allreduce_async(grad_output, None, None, ctx.op, ctx.pre, ctx.post)),
                None, None, None, None)


def allreduce(tensor, average=None, name=None, compression=Compression.none, op=None,
              prescale_factor=1.0, postscale_factor=1.0, process_set=None):
    """Reduce ``tensor`` over all ranks (differentiable); a new tensor. With a terse compressor
    (Compression.topk(...), ...) returns the compressed average (1/K) sum_k C(x_k)."""
    op = _resolve_op(average, op)
    if isinstance(compression, TerseCompression):
        if op != Average:
            raise ValueError("compressed allreduce supports op=Average only")
        return synchronize(compressed_allreduce_async(tensor, compression, name=name))
    t, ctx = compression.compress(tensor)
    return compression.decompress(_AllreduceFn.apply(t, name, op, prescale_factor,
                                                     postscale_factor), ctx)


def allreduce_(tensor, average=None, name=None, op=None, prescale_factor=1.0,
               postscale_factor=1.0, process_set=None):
    return synchronize(allreduce_async_(tensor, average, name, op, prescale_factor,
                                        postscale_factor))


def grouped_allreduce_async(tensors, average=None, name=None, op=None, prescale_factor=1.0,
                            postscale_factor=1.0, process_set=None):
    op = _resolve_op(average, op)
    base = name if name is not None else _auto_name("grouped_allreduce")
    return [_allreduce_async(t, None, "%s.%d" % (base, i), op, prescale_factor, postscale_factor)
            for i, t in enumerate(tensors)]


def grouped_allreduce_async_(tensors, average=None, name=None, op=None, prescale_factor=1.0,
                             postscale_factor=1.0, process_set=None):
    op = _resolve_op(average, op)
    base = name if name is not None else _auto_name("grouped_allreduce")
    return [_allreduce_async(t, t, "%s.%d" % (base, i), op, prescale_factor, postscale_factor)
            for i, t in enumerate(tensors)]


def grouped_allreduce(tensors, average=None, name=None, compression=Compression.none, op=None,
                      prescale_factor=1.0, postscale_factor=1.0, process_set=None):
    op = _resolve_op(average, op)
    base = name if name is not None else _auto_name("grouped_allreduce")
    return [allreduce(t, name="%s.%d" % (base, i), compression=compression, op=op,
                      prescale_factor=prescale_factor, postscale_factor=postscale_factor)
            for i, t in enumerate(tensors)]


def grouped_allreduce_(tensors, average=None, name=None, op=None, prescale_factor=1.0,
                       postscale_factor=1.0, process_set=None):
    return [synchronize(h) for h in grouped_allreduce_async_(
        tensors, average, name, op, prescale_factor, postscale_factor)]


# -- compressed allreduce (terse compressors) --------------------------------------------------

def compressed_allreduce_submit(flat, compressor, name, step, server_error=None, error=None,
                                double_way=None):
    """An engine op (not yet submitted) for the C compressed allreduce of the float32 vector
    ``flat`` (numpy) under ``name``: its ``result`` becomes avg_k C(flat_k + e_k) (double-way:
    C(e_s + avg), ``server_error`` updated), ``error`` (a float32 array e_k, or None) becomes
    the remainder. Ops ready in the same engine cycle with the same compressor and step share
    one C call. Errors (ERR_NONFINITE for NaN/Inf anywhere, ERR_MISMATCH, ...) fail the op on
    every rank and leave ``error``/``server_error`` unchanged."""
    tid = tensor_id_of(name)
    if double_way is None:
        double_way = server_error is not None
    sig = ("callreduce", compressor.spec, flat.size, int(step), tid, bool(double_way),
           error is not None)
    out = np.empty(flat.size, np.float32)
    return _Op("callreduce", name, sig, 0, flat, C.DTYPE_FLOAT32, out,
               ctx=(compressor, tid, int(step), bool(double_way), error, server_error))


def compressed_allreduce_async(tensor, compression, name=None, step=0):
    """Average of C(x_k) over ranks with a terse compressor (no error feedback), by the C
    compressed allreduce; returns a handle for synchronize()."""
    _check_tensor(tensor, "compressed allreduce")
    comp = compression.compressor if isinstance(compression, TerseCompression) else \
        Compressor.of(compression)
    name = name if name is not None else _auto_name("callreduce")
    flat = tensor.detach().to(torch.float32).contiguous().reshape(-1).numpy()
    op = compressed_allreduce_submit(flat, comp, name, step)
    shape, dtype = tensor.shape, tensor.dtype
    return _register(op, lambda: torch.from_numpy(op.result).reshape(shape).to(dtype))


def _call_async(name, sig, fn, post=None):
    """Run ``fn()`` in the engine thread once every rank has submitted ``name`` with an equal
    ``sig`` (ERR_MISMATCH on every rank otherwise); for C calls that communicate on the
    engine's communicator (terse.ErrorFeedback). synchronize() returns ``post(result)``."""
    op = _Op("call", name, sig, fn=fn)
    return _register(op, (lambda: post(op.result)) if post is not None else (lambda: op.result))


# -- allgather ---------------------------------------------------------------------------------

def _allgather_async(tensor, name):
    _check_tensor(tensor, "allgather")
    name = name if name is not None else _auto_name("allgather")
    src = tensor.detach().contiguous()
    if src.dim() == 0:
        src = src.reshape(1)
    a, code = _np(src)
    sig = ("allgather", str(tensor.dtype), tuple(src.shape[1:]))
    op = _Op("allgather", name, sig, int(src.shape[0]), a, code)
    dtype = tensor.dtype

    def post():
        out = torch.from_numpy(op.out)
        if dtype == torch.bfloat16:
            out = out.view(torch.bfloat16)
        return out
    return _register(op, post)


def allgather_async(tensor, name=None, process_set=None):
    return _allgather_async(tensor, name)


class _AllgatherFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, name):
        ctx.dim = tensor.shape[0] if tensor.dim() else 1
        return synchronize(_allgather_async(tensor, name))

    @staticmethod
    def backward(ctx, grad_output):
        grad = synchronize(_allreduce_async(grad_output, None, None, Sum, 1.0, 1.0))
        dims = synchronize(_allgather_async(torch.tensor([ctx.dim], dtype=torch.int64), None))
        offset = int(dims[:rank()].sum())
        return grad.narrow(0, offset, ctx.dim), None


def allgather(tensor, name=None, process_set=None):
    """Concatenate every rank's tensor along dim 0 (sizes may differ); differentiable."""
    return _AllgatherFn.apply(tensor, name)


# -- broadcast ---------------------------------------------------------------------------------

def _broadcast_async(tensor, output, root_rank, name):
    _check_tensor(tensor, "broadcast")
    if not isinstance(root_rank, int) or not 0 <= root_rank < size():
        raise ValueError("broadcast: root_rank %r out of range [0, %d)" % (root_rank, size()))
    name = name if name is not None else _auto_name("broadcast")
    inplace = output is not None and output.is_contiguous()
    buf = output if inplace else tensor.detach().clone(memory_format=torch.contiguous_format)
    a, code = _np(buf)
    sig = ("broadcast", str(tensor.dtype), tuple(tensor.shape), int(root_rank))
    op = _Op("broadcast", name, sig, 0, a, code)

    def post():
        if output is not None and not inplace:
            output.copy_(buf)
            return output
        return buf
    return _register(op, post)


def broadcast_async(tensor, root_rank, name=None, process_set=None):
    return _broadcast_async(tensor, None, root_rank, name)


def broadcast_async_(tensor, root_rank, name=None, process_set=None):
    return _broadcast_async(tensor, tensor, root_rank, name)


class _BroadcastFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, root_rank, name):
        ctx.root = root_rank
        return synchronize(_broadcast_async(tensor, None, root_rank, name))

    @staticmethod
    def backward(ctx, grad_output):
        g = synchronize(_allreduce_async(grad_output, None, None, Average, 1.0, 1.0))
        if rank() != ctx.root:
            g = g * 0
        return g, None, None


def broadcast(tensor, root_rank, name=None, process_set=None):
    """A copy of root's tensor on every rank (differentiable)."""
    return _BroadcastFn.apply(tensor, root_rank, name)


def broadcast_(tensor, root_rank, name=None, process_set=None):
    return synchronize(broadcast_async_(tensor, root_rank, name))


# -- handles, barrier --------------------------------------------------------------------------

def poll(handle):
    """True if the operation behind ``handle`` has finished (synchronize will not block)."""
    h = _handles.get(handle)
    if h is None:
        raise ValueError("poll: unknown handle %r" % (handle,))
    return h.op.event.is_set()


def synchronize(handle):
    """Wait for ``handle`` and return its output; raises TerseError if it failed on any rank."""
    h = _handles.get(handle)
    if h is None:
        raise ValueError("synchronize: unknown handle %r" % (handle,))
    h.op.event.wait()
    del _handles[handle]
    if h.op.error is not None:
        raise h.op.error
    return h.post()


def barrier(process_set=None):
    op = _Op("barrier", _auto_name("barrier"), ("barrier",))
    synchronize(_register(op, lambda: None))


def join(device=-1):
    """Barrier for compatibility (terse has no uneven-input join); returns -1."""
    barrier()
    return -1


_dup_seq = [0]


def dup_comm():
    """A new communicator of the same ranks (terse_comm_dup, collective: every rank calls it
    in the same order), for C objects that drive their own nonblocking collectives from the
    calling thread while the engine keeps its own (terse.Model)."""
    eng = _eng()
    _dup_seq[0] += 1
    name = "terse.comm.dup.%d" % _dup_seq[0]
    return synchronize(_call_async(name, (name,), eng.comm.dup))
