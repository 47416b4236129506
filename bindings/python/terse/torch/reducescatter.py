"""Horovod's reducescatter and grouped_reducescatter: the elementwise Sum or Average over the
ranks of a process set, whose dim-0 rows are scattered to those ranks (the first ``rows %
size`` ranks get one more row). On the C reduce_scatter_v (terse_reduce_scatter_v), so every
block holds the bits of that slice of the allreduce."""
import torch

from .. import _capi as C
from .._core import TerseError
from .._engine import ReducescatterSig, _Op
from .compression import Compression
from .mpi_ops import (_TERSE_OP, Adasum, Average, Sum, _auto_name, _check_tensor, _np,
                      _register, _torch_of, allgather_async, scale, synchronize)
from .process_sets import engine_for, global_process_set


def _check_op(op, what):
    if op == Adasum:
        raise NotImplementedError("%s: op=Adasum is not supported (Horovod does not reduce-"
                                  "scatter with Adasum either)" % what)
    if op not in (Sum, Average):
        raise ValueError("%s: op must be hvd.Sum or hvd.Average, not %r" % (what, op))


def _reducescatter_op(tensor, name, op, process_set, prescale_factor, postscale_factor,
                      engine, what):
    _check_tensor(tensor, what)
    if tensor.dim() == 0:
        raise TerseError(C.ERR_INVALID_ARG, "%s: a scalar (0-d tensor) cannot be scattered"
                         % what)
    name = name if name is not None else _auto_name("reducescatter", engine)
    src = scale(tensor.detach(), prescale_factor).contiguous()
    a, code = _np(src)
    sig = ReducescatterSig("reducescatter", str(tensor.dtype), tuple(src.shape), _TERSE_OP[op],
                           code, float(prescale_factor), float(postscale_factor))
    eop = _Op("reducescatter", name, sig, 0, a, code)
    dtype = tensor.dtype

    def post():
        return scale(_torch_of(eop.out, dtype), postscale_factor)
    return eop, post


def reducescatter_async(tensor, name=None, op=Average, process_set=global_process_set,
                        prescale_factor=1.0, postscale_factor=1.0):
    _check_op(op, "reducescatter")
    engine = engine_for(process_set, "reducescatter")
    eop, post = _reducescatter_op(tensor, name, op, process_set, prescale_factor,
                                  postscale_factor, engine, "reducescatter")
    return _register(engine, [eop], post)


def grouped_reducescatter_async(tensors, name=None, op=Average, process_set=global_process_set,
                                prescale_factor=1.0, postscale_factor=1.0):
    """reducescatter of every tensor of the list, announced together; one handle, whose
    synchronize() returns the list of outputs."""
    _check_op(op, "grouped_reducescatter")
    tensors = list(tensors)
    if not tensors:
        raise ValueError("grouped_reducescatter: empty list of tensors")
    engine = engine_for(process_set, "grouped_reducescatter")
    base = name if name is not None else _auto_name("grouped_reducescatter", engine)
    parts = [_reducescatter_op(t, "%s.%d" % (base, i), op, process_set, prescale_factor,
                               postscale_factor, engine, "grouped_reducescatter")
             for i, t in enumerate(tensors)]
    return _register(engine, [p[0] for p in parts], lambda: [p[1]() for p in parts])


def _grad(grad, op, process_set, factor):
    """d(out)/d(in) of reducescatter: every rank's input rows feed the ranks they were
    scattered to, so the input gradient is the allgather of the output gradients (over the
    set), times the scale factors (and 1/size for Average)."""
    g = synchronize(allgather_async(grad.contiguous(), process_set=process_set))
    ps = global_process_set if process_set is None else process_set
    if op == Average:
        factor /= ps.size()
    return scale(g, factor)


class _ReducescatterFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, name, op, process_set, prescale_factor, postscale_factor):
        ctx.op, ctx.ps, ctx.factor = op, process_set, prescale_factor * postscale_factor
        return synchronize(reducescatter_async(tensor, name, op, process_set, prescale_factor,
                                               postscale_factor))

    @staticmethod
    def backward(ctx, grad_output):
        return _grad(grad_output, ctx.op, ctx.ps, ctx.factor), None, None, None, None, None


class _GroupedReducescatterFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, name, op, process_set, prescale_factor, postscale_factor, *tensors):
        ctx.op, ctx.ps, ctx.factor = op, process_set, prescale_factor * postscale_factor
        return tuple(synchronize(grouped_reducescatter_async(
            tensors, name, op, process_set, prescale_factor, postscale_factor)))

    @staticmethod
    def backward(ctx, *grads):
        return (None,) * 5 + tuple(_grad(g, ctx.op, ctx.ps, ctx.factor) for g in grads)


def reducescatter(tensor, name=None, compression=Compression.none, op=Average,
                  process_set=global_process_set, prescale_factor=1.0, postscale_factor=1.0):
    """Reduce ``tensor`` over the set and return this rank's rows of the result
    (differentiable)."""
    _check_op(op, "reducescatter")
    t, ctx = compression.compress(tensor)
    out = _ReducescatterFn.apply(t, name, op, process_set, prescale_factor, postscale_factor)
    return compression.decompress(out, ctx)


def grouped_reducescatter(tensors, name=None, compression=Compression.none, op=Average,
                          process_set=global_process_set, prescale_factor=1.0,
                          postscale_factor=1.0):
    """reducescatter of every tensor of the list, run together (differentiable)."""
    _check_op(op, "grouped_reducescatter")
    pairs = [compression.compress(t) for t in tensors]
    outs = _GroupedReducescatterFn.apply(name, op, process_set, prescale_factor,
                                         postscale_factor, *[t for t, _ in pairs])
    return [compression.decompress(o, c) for o, (_, c) in zip(outs, pairs)]
