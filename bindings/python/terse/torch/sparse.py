"""Sparse gradients, as Horovod aggregates them: the (index, value) pairs of every rank are
allgathered and put together into one sparse tensor (duplicate indices add up when it is
used or coalesced), divided by the set's size for Average. sparse_as_dense=True in
DistributedOptimizer allreduces the dense form instead."""
import torch

from .mpi_ops import Adasum, Average, Sum, allgather_async, synchronize
from .process_sets import global_process_set


def sparse_allreduce_async(tensor, name, op, process_set=global_process_set):
    """Start the allgathers of ``tensor``'s indices and values (names ``name``.indices and
    ``name``.values); returns a callable that waits and returns the aggregated sparse
    tensor."""
    if op == Adasum:
        raise NotImplementedError("sparse allreduce: op=Adasum is not supported")
    if op not in (Sum, Average):
        raise ValueError("sparse allreduce: op must be hvd.Sum or hvd.Average, not %r" % (op,))
    if not tensor.is_sparse:
        raise ValueError("sparse_allreduce_async expects a sparse tensor")
    # allgather concatenates along dim 0: indices go as (nnz, ndim) rows
    hi = allgather_async(tensor._indices().transpose(0, 1).contiguous(),
                         name="%s.indices" % name, process_set=process_set)
    hv = allgather_async(tensor._values().contiguous(), name="%s.values" % name,
                         process_set=process_set)
    shape = tensor.size()
    ps = global_process_set if process_set is None else process_set

    def handle():
        values = synchronize(hv)
        indices = synchronize(hi)
        if op == Average:
            values = values / ps.size()
        return torch.sparse_coo_tensor(indices.transpose(0, 1), values, shape)
    return handle
