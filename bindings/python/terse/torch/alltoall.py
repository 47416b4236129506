"""Horovod's alltoall: rows of dim 0 scattered to the ranks of a process set by ``splits``
(equal parts by default), the rows every rank sent here gathered in rank order. Runs on the C
alltoallv (terse_alltoallv) in the set's engine; the splits travel in the negotiation, so
every rank knows what it receives."""
import torch

from .. import _capi as C
from .._core import TerseError
from .._engine import AlltoallSig, _Op
from .mpi_ops import _auto_name, _check_tensor, _np, _register, _torch_of, synchronize
from .process_sets import engine_for, global_process_set


def _splits_of(tensor, splits, n):
    """The rows to send to each of the n ranks, checked (ValueError, as Horovod raises)."""
    rows = tensor.shape[0]
    if splits is None:
        if rows % n:
            raise ValueError("alltoall: the first dimension (%d) must be divisible by the "
                             "number of ranks (%d) when no splits are given" % (rows, n))
        return [rows // n] * n
    if isinstance(splits, torch.Tensor):
        if splits.dtype.is_floating_point or splits.dtype.is_complex or \
                splits.dtype == torch.bool:
            raise ValueError("alltoall: splits must be integers, got %s" % splits.dtype)
        vals = splits.reshape(-1).tolist()
    else:
        vals = list(splits)
        if any(not isinstance(v, int) or isinstance(v, bool) for v in vals):
            raise ValueError("alltoall: splits must be integers, got %r" % (vals,))
    if len(vals) != n:
        raise ValueError("alltoall: %d splits for %d ranks" % (len(vals), n))
    if any(v < 0 for v in vals):
        raise ValueError("alltoall: negative split in %r" % (vals,))
    if sum(vals) != rows:
        raise ValueError("alltoall: splits %r add up to %d, not to the first dimension %d"
                         % (vals, sum(vals), rows))
    return vals


def alltoall_async(tensor, splits=None, name=None, process_set=global_process_set):
    """Nonblocking alltoall; synchronize() returns (output, received_splits), the rows
    received from each rank as an int32 tensor (of ``splits``' dtype when it is a tensor)."""
    _check_tensor(tensor, "alltoall")
    if tensor.dim() == 0:
        raise TerseError(C.ERR_INVALID_ARG, "alltoall: a scalar (0-d tensor) cannot be split")
    engine = engine_for(process_set, "alltoall")
    vals = _splits_of(tensor, splits, engine.size)
    name = name if name is not None else _auto_name("alltoall", engine)
    src = tensor.detach().contiguous()
    a, code = _np(src)
    sig = AlltoallSig("alltoall", str(tensor.dtype), tuple(src.shape[1:]), code)
    op = _Op("alltoall", name, sig, tuple(vals), a, code)
    sdtype = splits.dtype if isinstance(splits, torch.Tensor) else torch.int32
    dtype = tensor.dtype
    return _register(engine, [op], lambda: (_torch_of(op.out, dtype),
                                            torch.tensor(op.result, dtype=sdtype)))


class _AlltoallFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, splits, name, process_set):
        out, received = synchronize(alltoall_async(tensor, splits, name, process_set))
        ctx.received, ctx.ps = received, process_set
        ctx.mark_non_differentiable(received)
        return out, received

    @staticmethod
    def backward(ctx, grad_output, _grad_received):
        # the gradient travels back the way the rows came: send what we received
        grad, _ = synchronize(alltoall_async(grad_output.contiguous(), ctx.received,
                                             process_set=ctx.ps))
        return grad, None, None, None


def alltoall(tensor, splits=None, name=None, process_set=global_process_set):
    """Send ``splits[j]`` rows of ``tensor`` (dim 0, in order) to rank j of the set and return
    the rows received (differentiable). Without ``splits``: equal parts, and only the output
    is returned; with ``splits``: (output, received_splits), as in Horovod 0.28."""
    out, received = _AlltoallFn.apply(tensor, splits, name, process_set)
    return out if splits is None else (out, received)
