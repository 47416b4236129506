"""terse.torch: a Horovod-compatible API (``import terse.torch as hvd``) with compressed
training (Top-K, sign, Rand-K, induced; EF / SAEF error feedback), a DDP comm hook, and the
torch.distributed backend "terse" (registered on import; see terse.torch._backend).

Collectives are matched across ranks by name by a background thread per process set (see
terse._engine and process_sets.py); asynchronous calls return integer handles for
poll()/synchronize().
"""
from .. import TerseError  # noqa: F401
from .compression import Compression  # noqa: F401
from .mpi_ops import (  # noqa: F401
    Adasum, Average, Max, Min, Product, Sum, allgather, allgather_async, allreduce, allreduce_,
    allreduce_async, allreduce_async_, barrier, broadcast, broadcast_, broadcast_async,
    broadcast_async_, ccl_built, compressed_allreduce_async, cross_rank, cross_size, cuda_built,
    ddl_built, gloo_built, gloo_enabled, grouped_allgather, grouped_allgather_async,
    grouped_allreduce, grouped_allreduce_, grouped_allreduce_async, grouped_allreduce_async_,
    init, is_homogeneous, is_initialized, local_rank, local_size, mpi_built, mpi_enabled,
    mpi_threads_supported, nccl_built, poll, rank, rocm_built, shutdown, size, start_timeline,
    stop_timeline, synchronize)
from .process_sets import (ProcessSet, add_process_set, global_process_set,  # noqa: F401
                           remove_process_set)
from .alltoall import alltoall, alltoall_async  # noqa: F401
from .reducescatter import (grouped_reducescatter, grouped_reducescatter_async,  # noqa: F401
                            reducescatter, reducescatter_async)
from .join import join  # noqa: F401
from .sparse import sparse_allreduce_async  # noqa: F401
from .functions import (allgather_object, broadcast_object,  # noqa: F401
                        broadcast_optimizer_state, broadcast_parameters)
from .optimizer import DistributedOptimizer  # noqa: F401
from .ddp import ddp_comm_hook  # noqa: F401
from . import _backend

_backend.register()  # torch.distributed.init_process_group("terse", ...)
