"""broadcast_parameters, broadcast_optimizer_state, broadcast_object, allgather_object."""
import io
import pickle

import numpy as np
import torch

from . import mpi_ops
from .mpi_ops import allgather, broadcast_, broadcast_async_, rank, synchronize


def broadcast_parameters(params, root_rank):
    """Broadcast a state_dict or an iterable of (name, tensor) in place from ``root_rank``."""
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
        handles.append(broadcast_async_(t, root_rank, name="broadcast.param.%s" % name))
    for h in handles:
        synchronize(h)


def broadcast_object(obj, root_rank=0, name=None, process_set=None):
    """Pickle ``obj`` on root and return a copy on every rank."""
    name = name if name is not None else type(obj).__name__
    if rank() == root_rank:
        b = io.BytesIO()
        torch.save(obj, b)
        data = torch.from_numpy(np.frombuffer(b.getvalue(), np.uint8).copy())
        sz = torch.tensor([data.numel()], dtype=torch.int64)
    else:
        sz = torch.zeros(1, dtype=torch.int64)
    broadcast_(sz, root_rank, name="broadcast_object.%s.size" % name)
    if rank() != root_rank:
        data = torch.zeros(int(sz.item()), dtype=torch.uint8)
    broadcast_(data, root_rank, name="broadcast_object.%s.data" % name)
    if rank() == root_rank:
        return obj
    return torch.load(io.BytesIO(data.numpy().tobytes()))


def allgather_object(obj, name=None, process_set=None):
    """A list with every rank's ``obj``, in rank order."""
    name = name if name is not None else type(obj).__name__
    data = torch.from_numpy(np.frombuffer(pickle.dumps(obj), np.uint8).copy())
    sizes = allgather(torch.tensor([data.numel()], dtype=torch.int64),
                      name="allgather_object.%s.size" % name)
    allb = allgather(data, name="allgather_object.%s.data" % name).numpy().tobytes()
    out, off = [], 0
    for s in sizes.tolist():
        out.append(pickle.loads(allb[off:off + s]))
        off += s
    return out


def broadcast_optimizer_state(optimizer, root_rank):
    """Make every rank's optimizer state (hyperparameters, momentum buffers) equal to root's."""
    if isinstance(optimizer, torch.optim.LBFGS):
        raise ValueError("cannot broadcast torch.optim.LBFGS state")
    # The base class's state_dict: error-feedback state is per worker and stays local.
    sd = torch.optim.Optimizer.state_dict(optimizer)
    sd = broadcast_object(sd, root_rank, name="optimizer_state")
    if mpi_ops.rank() != root_rank:
        torch.optim.Optimizer.load_state_dict(optimizer, sd)
