"""Horovod-compatible collectives on torch tensors (CPU), run by the name-matching engine."""
import atexit
import threading

import numpy as np
import torch

from .. import _capi as C
from .._core import Comm, Compressor, TerseError, tensor_id_of
from .._engine import (AllgatherSig, AllreduceSig, BarrierSig, BroadcastSig, CallreduceCtx,
                       CallreduceSig, Engine, _Op)
from . import process_sets as process_sets_
from ._malloc import keep_freed_memory
from .compression import Compression, TerseCompression, choice_of
from .process_sets import engine_for, global_process_set

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

_engine = None
_engine_lock = threading.Lock()
_handles = {}
_handle_seq = [0]
_name_seq = {}


class _Handle:
    """What an integer handle stands for: the engine ops behind it (one, or a grouped
    collective's several) and ``post``, which turns the finished ops into the result."""
    __slots__ = ("engine", "ops", "post")

    def __init__(self, engine, ops, post):
        self.engine, self.ops, self.post = engine, ops, post


def _not_init():
    return ValueError("terse has not been initialized; use hvd.init().")


def init(comm=None, process_sets=None):
    """Initialise terse (idempotent). ``comm``: an optional mpi4py communicator.
    ``process_sets``: hvd.ProcessSet objects to register now (collective), or "dynamic"
    (add_process_set works either way)."""
    global _engine
    keep_freed_memory()
    with _engine_lock:
        if _engine is None:
            if comm is not None and not hasattr(comm, "Allgather"):
                raise TerseError(C.ERR_NOT_SUPPORTED, "init(comm=...) takes an mpi4py "
                                 "communicator; rank lists are not supported")
            _engine = Engine(Comm(mpi_comm=comm))
            process_sets_._setup_global(_engine)
            atexit.register(shutdown)
        else:
            return
    process_sets_.register_at_init(process_sets)


def shutdown():
    """Stop the background threads (collective: waits for every rank) and free the
    communicators."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            process_sets_.shutdown_all()
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


def _auto_name(kind, engine):
    """Horovod's "<kind>.noname.<n>", counted per process set: ranks outside a set do not
    advance its counter, so the global set's names stay aligned."""
    key = (engine.label, kind)
    n = _name_seq.get(key, 0)
    _name_seq[key] = n + 1
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
        raise TerseError(C.ERR_NOT_SUPPORTED, "%s: sparse tensors are not supported (use "
                         "hvd.sparse_allreduce_async, or sparse_as_dense)" % what)


def _np(t):
    """A numpy view of a contiguous CPU tensor and its terse dtype code."""
    code, view = _DTYPES[t.dtype]
    t = t.detach()
    return (t.view(view) if view is not None else t).numpy(), code


def _torch_of(a, dtype):
    """The tensor over numpy result ``a`` of a collective on tensors of ``dtype``."""
    out = torch.from_numpy(a)
    return out.view(torch.bfloat16) if dtype == torch.bfloat16 else out


def _register(engine, ops, post):
    """Submit ``ops`` (announced together) and return a handle whose synchronize() gives
    ``post()``."""
    engine.submit_many(ops)
    _handle_seq[0] += 1
    h = _handle_seq[0]
    _handles[h] = _Handle(engine, ops, post)
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


def scale(t, factor):
    """``t * factor`` in Horovod's arithmetic: integers in float64, float16/bfloat16 in
    float32, the others in their own type; the result has ``t``'s dtype (integers truncate)."""
    if factor == 1.0:
        return t
    if t.dtype in (torch.float32, torch.float64):
        return t * factor
    work = torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else torch.float64
    return (t.to(work) * factor).to(t.dtype)


# -- allreduce ---------------------------------------------------------------------------------

def _allreduce_op(tensor, output, name, op, prescale_factor, postscale_factor, process_set,
                  what="allreduce"):
    """(engine, op, post) of one allreduce, not yet submitted."""
    _check_tensor(tensor, what)
    engine = engine_for(process_set, what)
    name = name if name is not None else _auto_name("allreduce", engine)
    src = scale(tensor.detach(), prescale_factor).contiguous()
    out = output if (output is not None and output.is_contiguous()) else None
    if out is None:
        out = torch.empty_like(src, memory_format=torch.contiguous_format)
    a, code = _np(src)
    o, _ = _np(out)
    sig = AllreduceSig("allreduce", str(tensor.dtype), tuple(tensor.shape), _TERSE_OP[op], code,
                       float(prescale_factor), float(postscale_factor))
    eop = _Op("allreduce", name, sig, 0, a, code, o)

    def post():
        res = out
        if postscale_factor != 1.0:
            res.copy_(scale(res, postscale_factor))
        if output is not None and res is not output:
            output.copy_(res)
            return output
        return res
    return engine, eop, post


def _allreduce_async(tensor, output, name, op, prescale_factor, postscale_factor,
                     process_set=None):
    engine, eop, post = _allreduce_op(tensor, output, name, op, prescale_factor,
                                      postscale_factor, process_set)
    return _register(engine, [eop], post)


def allreduce_async(tensor, average=None, name=None, op=None, prescale_factor=1.0,
                    postscale_factor=1.0, process_set=global_process_set):
    op = _resolve_op(average, op)
    return _allreduce_async(tensor, None, name, op, prescale_factor, postscale_factor,
                            process_set)


def allreduce_async_(tensor, average=None, name=None, op=None, prescale_factor=1.0,
                     postscale_factor=1.0, process_set=global_process_set):
    op = _resolve_op(average, op)
    return _allreduce_async(tensor, tensor, name, op, prescale_factor, postscale_factor,
                            process_set)


class _AllreduceFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, name, op, prescale_factor, postscale_factor, process_set):
        ctx.op, ctx.pre, ctx.post, ctx.ps = op, prescale_factor, postscale_factor, process_set
        return synchronize(_allreduce_async(tensor, None, name, op, prescale_factor,
                                            postscale_factor, process_set))

    @staticmethod
    def backward(ctx, grad_output):
        return (synchronize(_allreduce_async(grad_output, None, None, ctx.op, ctx.pre, ctx.post,
                                             ctx.ps)), None, None, None, None, None)


def _no_terse_compression_on_sets(compression, process_set):
    if isinstance(compression, TerseCompression) and process_set not in (None,
                                                                         global_process_set):
        raise NotImplementedError("terse compressors run on the global process set only")


def allreduce(tensor, average=None, name=None, compression=Compression.none, op=None,
              prescale_factor=1.0, postscale_factor=1.0, process_set=global_process_set):
    """Reduce ``tensor`` over the ranks of ``process_set`` (differentiable); a new tensor.
    With a terse compressor (Compression.topk(...), ...) returns the compressed average
    (1/K) sum_k C(x_k)."""
    op = _resolve_op(average, op)
    _no_terse_compression_on_sets(compression, process_set)
    if isinstance(compression, TerseCompression):
        if op != Average:
            raise ValueError("compressed allreduce supports op=Average only")
        return synchronize(compressed_allreduce_async(tensor, compression, name=name))
    t, ctx = compression.compress(tensor)
    return compression.decompress(_AllreduceFn.apply(t, name, op, prescale_factor,
                                                     postscale_factor, process_set), ctx)


def allreduce_(tensor, average=None, name=None, op=None, prescale_factor=1.0,
               postscale_factor=1.0, process_set=global_process_set):
    return synchronize(allreduce_async_(tensor, average, name, op, prescale_factor,
                                        postscale_factor, process_set))


def _grouped_allreduce_async(tensors, outputs, name, op, prescale_factor, postscale_factor,
                             process_set):
    """One handle for the whole group: its allreduces are announced together, so they run in
    the same cycle (and fuse); synchronize() returns the list of outputs."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("grouped_allreduce: empty list of tensors")
    engine = engine_for(process_set, "grouped_allreduce")
    base = name if name is not None else _auto_name("grouped_allreduce", engine)
    parts = [_allreduce_op(t, o, "%s.%d" % (base, i), op, prescale_factor, postscale_factor,
                           process_set, "grouped_allreduce")
             for i, (t, o) in enumerate(zip(tensors, outputs))]
    return _register(engine, [p[1] for p in parts], lambda: [p[2]() for p in parts])


def grouped_allreduce_async(tensors, average=None, name=None, op=None, prescale_factor=1.0,
                            postscale_factor=1.0, process_set=global_process_set):
    op = _resolve_op(average, op, "grouped_allreduce")
    tensors = list(tensors)
    return _grouped_allreduce_async(tensors, [None] * len(tensors), name, op, prescale_factor,
                                    postscale_factor, process_set)


def grouped_allreduce_async_(tensors, average=None, name=None, op=None, prescale_factor=1.0,
                             postscale_factor=1.0, process_set=global_process_set):
    op = _resolve_op(average, op, "grouped_allreduce")
    tensors = list(tensors)
    return _grouped_allreduce_async(tensors, tensors, name, op, prescale_factor,
                                    postscale_factor, process_set)


class _GroupedAllreduceFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, op, prescale_factor, postscale_factor, process_set, *tensors):
        ctx.op, ctx.pre, ctx.post, ctx.ps = op, prescale_factor, postscale_factor, process_set
        return tuple(synchronize(_grouped_allreduce_async(
            tensors, [None] * len(tensors), name, op, prescale_factor, postscale_factor,
            process_set)))

    @staticmethod
    def backward(ctx, *grads):
        out = synchronize(_grouped_allreduce_async(
            [g.contiguous() for g in grads], [None] * len(grads), None, ctx.op, ctx.pre,
            ctx.post, ctx.ps))
        return (None, None, None, None, None) + tuple(out)


def grouped_allreduce(tensors, average=None, name=None, compression=Compression.none, op=None,
                      prescale_factor=1.0, postscale_factor=1.0, process_set=global_process_set):
    """Allreduce of every tensor of the list, run together (differentiable)."""
    op = _resolve_op(average, op, "grouped_allreduce")
    _no_terse_compression_on_sets(compression, process_set)
    if isinstance(compression, TerseCompression):
        base = name if name is not None else _auto_name("grouped_allreduce", _eng())
        return [allreduce(t, name="%s.%d" % (base, i), compression=compression, op=op)
                for i, t in enumerate(tensors)]
    pairs = [compression.compress(t) for t in tensors]
    outs = _GroupedAllreduceFn.apply(name, op, prescale_factor, postscale_factor, process_set,
                                     *[t for t, _ in pairs])
    return [compression.decompress(o, c) for o, (_, c) in zip(outs, pairs)]


def grouped_allreduce_(tensors, average=None, name=None, op=None, prescale_factor=1.0,
                       postscale_factor=1.0, process_set=global_process_set):
    return synchronize(grouped_allreduce_async_(tensors, average, name, op, prescale_factor,
                                                postscale_factor, process_set))


# -- compressed allreduce (terse compressors) --------------------------------------------------

def compressed_allreduce_submit(flat, compressor, name, step, server_error=None, error=None,
                                double_way=None, algorithm=None, hierarchy=None):
    """An engine op (not yet submitted) for the C compressed allreduce of the float32 vector
    ``flat`` (numpy) under ``name``: its ``result`` becomes avg_k C(flat_k + e_k) (double-way:
    C(e_s + avg), ``server_error`` updated), ``error`` (a float32 array e_k, or None) becomes
    the remainder. Ops ready in the same engine cycle with the same compressor and step share
    one C call. Errors (ERR_NONFINITE for NaN/Inf anywhere, ERR_MISMATCH, ...) fail the op on
    every rank and leave ``error``/``server_error`` unchanged."""
    tid = tensor_id_of(name)
    if double_way is None:
        double_way = server_error is not None
    sig = CallreduceSig("callreduce", compressor.spec, flat.size, int(step), tid,
                        bool(double_way), error is not None)
    out = np.empty(flat.size, np.float32)
    return _Op("callreduce", name, sig, 0, flat, C.DTYPE_FLOAT32, out,
               ctx=CallreduceCtx(compressor, tid, int(step), bool(double_way), error,
                                 server_error, algorithm, hierarchy))


def compressed_allreduce_async(tensor, compression, name=None, step=0):
    """Average of C(x_k) over ranks with a terse compressor (no error feedback), by the C
    compressed allreduce; returns a handle for synchronize()."""
    _check_tensor(tensor, "compressed allreduce")
    comp = compression.compressor if isinstance(compression, TerseCompression) else \
        Compressor.of(compression)
    name = name if name is not None else _auto_name("callreduce", _eng())
    flat = tensor.detach().to(torch.float32).contiguous().reshape(-1).numpy()
    algorithm, hierarchy = choice_of(compression)
    op = compressed_allreduce_submit(flat, comp, name, step, algorithm=algorithm,
                                     hierarchy=hierarchy)
    shape, dtype = tensor.shape, tensor.dtype
    return _register(_eng(), [op],
                     lambda: torch.from_numpy(op.result).reshape(shape).to(dtype))


# -- allgather ---------------------------------------------------------------------------------

def _allgather_op(tensor, name, process_set, what="allgather"):
    """(engine, op, post) of one allgather, not yet submitted."""
    _check_tensor(tensor, what)
    engine = engine_for(process_set, what)
    name = name if name is not None else _auto_name("allgather", engine)
    src = tensor.detach().contiguous()
    if src.dim() == 0:
        src = src.reshape(1)
    a, code = _np(src)
    sig = AllgatherSig("allgather", str(tensor.dtype), tuple(src.shape[1:]), code)
    op = _Op("allgather", name, sig, int(src.shape[0]), a, code)
    dtype = tensor.dtype
    return engine, op, lambda: _torch_of(op.out, dtype)


def allgather_async(tensor, name=None, process_set=global_process_set):
    engine, op, post = _allgather_op(tensor, name, process_set)
    return _register(engine, [op], post)


def _allgather_grad(grad, dim, process_set):
    """Horovod's allgather gradient: the average of the output gradients over the set, this
    rank's rows of it."""
    grad = synchronize(_allreduce_async(grad.contiguous(), None, None, Average, 1.0, 1.0,
                                        process_set))
    dims = synchronize(allgather_async(torch.tensor([dim], dtype=torch.int64),
                                       process_set=process_set))
    ps = global_process_set if process_set is None else process_set
    offset = int(dims[:ps.rank()].sum())
    return grad.narrow(0, offset, dim)


class _AllgatherFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, name, process_set):
        ctx.dim = tensor.shape[0] if tensor.dim() else 1
        ctx.ps = process_set
        return synchronize(allgather_async(tensor, name, process_set))

    @staticmethod
    def backward(ctx, grad_output):
        return _allgather_grad(grad_output, ctx.dim, ctx.ps), None, None


def allgather(tensor, name=None, process_set=global_process_set):
    """Concatenate every rank's tensor along dim 0 (sizes may differ); differentiable."""
    return _AllgatherFn.apply(tensor, name, process_set)


def grouped_allgather_async(tensors, name=None, process_set=global_process_set):
    """Allgather of every tensor of the list, announced together; one handle, whose
    synchronize() returns the list of outputs."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("grouped_allgather: empty list of tensors")
    engine = engine_for(process_set, "grouped_allgather")
    base = name if name is not None else _auto_name("grouped_allgather", engine)
    parts = [_allgather_op(t, "%s.%d" % (base, i), process_set, "grouped_allgather")
             for i, t in enumerate(tensors)]
    return _register(engine, [p[1] for p in parts], lambda: [p[2]() for p in parts])


class _GroupedAllgatherFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, process_set, *tensors):
        ctx.dims = [t.shape[0] if t.dim() else 1 for t in tensors]
        ctx.ps = process_set
        return tuple(synchronize(grouped_allgather_async(tensors, name, process_set)))

    @staticmethod
    def backward(ctx, *grads):
        return (None, None) + tuple(_allgather_grad(g, d, ctx.ps)
                                    for g, d in zip(grads, ctx.dims))


def grouped_allgather(tensors, name=None, process_set=global_process_set):
    """allgather of every tensor of the list, run together (differentiable)."""
    return list(_GroupedAllgatherFn.apply(name, process_set, *tensors))


# -- broadcast ---------------------------------------------------------------------------------

def _broadcast_async(tensor, output, root_rank, name, process_set=None):
    _check_tensor(tensor, "broadcast")
    if not isinstance(root_rank, int) or not 0 <= root_rank < size():
        raise ValueError("broadcast: root_rank %r out of range [0, %d)" % (root_rank, size()))
    engine = engine_for(process_set, "broadcast")
    ps = global_process_set if process_set is None else process_set
    root = ps._set_rank_of(root_rank, "broadcast root")  # roots are global ranks (Horovod)
    name = name if name is not None else _auto_name("broadcast", engine)
    inplace = output is not None and output.is_contiguous()
    buf = output if inplace else tensor.detach().clone(memory_format=torch.contiguous_format)
    a, code = _np(buf)
    sig = BroadcastSig("broadcast", str(tensor.dtype), tuple(tensor.shape), root, code)
    op = _Op("broadcast", name, sig, 0, a, code)

    def post():
        if output is not None and not inplace:
            output.copy_(buf)
            return output
        return buf
    return _register(engine, [op], post)


def broadcast_async(tensor, root_rank, name=None, process_set=global_process_set):
    return _broadcast_async(tensor, None, root_rank, name, process_set)


def broadcast_async_(tensor, root_rank, name=None, process_set=global_process_set):
    return _broadcast_async(tensor, tensor, root_rank, name, process_set)


class _BroadcastFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, root_rank, name, process_set):
        ctx.root, ctx.ps = root_rank, process_set
        return synchronize(_broadcast_async(tensor, None, root_rank, name, process_set))

    @staticmethod
    def backward(ctx, grad_output):
        g = synchronize(_allreduce_async(grad_output.contiguous(), None, None, Average, 1.0,
                                         1.0, ctx.ps))
        if rank() != ctx.root:
            g = g * 0
        return g, None, None, None


def broadcast(tensor, root_rank, name=None, process_set=global_process_set):
    """A copy of root's tensor on every rank of the set (differentiable); ``root_rank`` is a
    global rank, as in Horovod."""
    return _BroadcastFn.apply(tensor, root_rank, name, process_set)


def broadcast_(tensor, root_rank, name=None, process_set=global_process_set):
    return synchronize(broadcast_async_(tensor, root_rank, name, process_set))


# -- handles, barrier --------------------------------------------------------------------------

def poll(handle):
    """True if the operation behind ``handle`` has finished (synchronize will not block)."""
    h = _handles.get(handle)
    if h is None:
        raise ValueError("poll: unknown handle %r" % (handle,))
    return all(op.event.is_set() for op in h.ops)


def synchronize(handle):
    """Wait for ``handle`` and return its output; raises TerseError if it failed on any rank."""
    h = _handles.get(handle)
    if h is None:
        raise ValueError("synchronize: unknown handle %r" % (handle,))
    for op in h.ops:
        h.engine.wait(op)
    del _handles[handle]
    for op in h.ops:
        if op.error is not None:
            raise op.error
    return h.post()


def barrier(process_set=global_process_set):
    """Wait until every rank of ``process_set`` has called barrier (a name-matched op, so it
    is ordered with the set's other collectives)."""
    engine = engine_for(process_set, "barrier")
    op = _Op("barrier", _auto_name("barrier", engine), BarrierSig("barrier"))
    synchronize(_register(engine, [op], lambda: None))


def _call_async(name, sig, fn, post=None):
    """Run ``fn()`` in the global engine's thread once every rank has submitted ``name`` with
    an equal ``sig`` (ERR_MISMATCH on every rank otherwise); for C calls that communicate on
    the engine's communicator (terse.ErrorFeedback, comm split/dup). synchronize() returns
    ``post(result)``."""
    op = _Op("call", name, sig, fn=fn)
    return _register(_eng(), [op],
                     (lambda: post(op.result)) if post is not None else (lambda: op.result))


_dup_seq = [0]


def dup_comm():
    """A new communicator of the same ranks (terse_comm_dup, collective: every rank calls it
    in the same order), for C objects that drive their own nonblocking collectives from the
    calling thread while the engine keeps its own (terse.Model)."""
    eng = _eng()
    _dup_seq[0] += 1
    name = "terse.comm.dup.%d" % _dup_seq[0]
    return synchronize(_call_async(name, (name,), eng.comm.dup))
