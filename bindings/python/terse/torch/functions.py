"""broadcast_parameters, broadcast_optimizer_state, broadcast_object, allgather_object."""
import io
import pickle

import numpy as np
import torch

from .mpi_ops import allgather, broadcast_, broadcast_async_, rank, synchronize
from .process_sets import global_process_set


def broadcast_parameters(params, root_rank, process_set=global_process_set):
    """Broadcast a state_dict or an iterable of (name, tensor) in place from ``root_rank``
    (a global rank). Entries that are None (a parameter without a gradient, say) are
    skipped, as in Horovod."""
    if isinstance(params, dict):
        params = sorted(params.items())
    elif isinstance(params, list):
        params = list(params)
        if params and not isinstance(params[0], tuple):
            raise ValueError("broadcast_parameters: expected a dict or a list of (name, tensor)")
    else:
        try:
            params = list(params)
        except TypeError:
            raise ValueError("invalid params of type: %s" % type(params))
    handles = []
    for name, p in params:
        if p is None:
            continue
        t = p.data if isinstance(p, torch.nn.Parameter) else p
        handles.append(broadcast_async_(t, root_rank, name="broadcast.param.%s" % name,
                                        process_set=process_set))
    for h in handles:
        synchronize(h)


def broadcast_object(obj, root_rank=0, name=None, process_set=global_process_set):
    """Pickle ``obj`` on root (a global rank) and return a copy on every rank of the set."""
    name = name if name is not None else type(obj).__name__
    if rank() == root_rank:
        b = io.BytesIO()
        torch.save(obj, b)
        data = torch.from_numpy(np.frombuffer(b.getvalue(), np.uint8).copy())
        sz = torch.tensor([data.numel()], dtype=torch.int64)
    else:
        sz = torch.zeros(1, dtype=torch.int64)
    broadcast_(sz, root_rank, name="broadcast_object.%s.size" % name, process_set=process_set)
    if rank() != root_rank:
        data = torch.zeros(int(sz.item()), dtype=torch.uint8)
    broadcast_(data, root_rank, name="broadcast_object.%s.data" % name,
               process_set=process_set)
    if rank() == root_rank:
        return obj
    return torch.load(io.BytesIO(data.numpy().tobytes()))


def allgather_object(obj, name=None, process_set=global_process_set):
    """A list with every rank's ``obj`` (of the set), in rank order."""
    name = name if name is not None else type(obj).__name__
    data = torch.from_numpy(np.frombuffer(pickle.dumps(obj), np.uint8).copy())
    sizes = allgather(torch.tensor([data.numel()], dtype=torch.int64),
                      name="allgather_object.%s.size" % name, process_set=process_set)
    allb = allgather(data, name="allgather_object.%s.data" % name,
                     process_set=process_set).numpy().tobytes()
    out, off = [], 0
    for s in sizes.tolist():
        out.append(pickle.loads(allb[off:off + s]))
        off += s
    return out


def _init_state(optimizer):
    """A new optimizer has no state to broadcast. As Horovod does, give every trainable
    parameter a zero gradient (where it has none) and take one step of the wrapped optimizer
    class itself, without the DistributedOptimizer's collectives (not every rank need call
    step() here)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.requires_grad and p.grad is None:
                p.grad = torch.zeros_like(p)
    cls = type(optimizer)
    if hasattr(cls, "skip_synchronize"):
        super(cls, optimizer).step()  # a DistributedOptimizer: the wrapped class's step
    else:
        optimizer.step()


def broadcast_optimizer_state(optimizer, root_rank, process_set=global_process_set):
    """Make every rank's optimizer state (hyperparameters, momentum buffers) equal to root's.
    Parameters without state (requires_grad=False) are left alone."""
    if isinstance(optimizer, torch.optim.LBFGS):
        raise ValueError("cannot broadcast torch.optim.LBFGS state")
    # The base class's state_dict: error-feedback state is per worker and stays local.
    sd = torch.optim.Optimizer.state_dict(optimizer)
    if not sd["state"]:
        _init_state(optimizer)
        sd = torch.optim.Optimizer.state_dict(optimizer)
    sd = broadcast_object(sd, root_rank, name="optimizer_state", process_set=process_set)
    if rank() != root_rank:
        torch.optim.Optimizer.load_state_dict(optimizer, sd)
