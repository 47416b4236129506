"""terse: compressed collectives for data-parallel training (numpy level).

    import terse
    terse.init()                      # from mpirun, TERSE_RANK/SIZE/ROOT_ADDR, or one process
    y = terse.allreduce(x, op="avg")  # numpy arrays
    c = terse.Compressor.topk(0.01)
    e = np.zeros_like(x)              # error feedback by hand: e <- x + e - C(x + e)
    avg_c = terse.compressed_allreduce(x, c, error=e)   # the C compressed allreduce
    ef = terse.ErrorFeedback([x.shape], c, mode="saef", period=10)  # EF/SAEF state in C
    xh = ef.prepare([x]); ...; u = ef.exchange([d])      # see ErrorFeedback

PyTorch users: ``import terse.torch as hvd`` (Horovod-compatible).
"""
from . import _capi
from ._core import (Comm, Compressor, ErrorFeedback, Request, TerseError, check,  # noqa: F401
                    tensor_id_of)

__version__ = _capi.terse_version().decode()

_comm = None


def init(mpi_comm=None, **kw):
    """Create the default communicator (idempotent)."""
    global _comm
    if _comm is None:
        _comm = Comm(mpi_comm=mpi_comm, **kw)
    return _comm


def shutdown():
    global _comm
    if _comm is not None:
        _comm.destroy()
        _comm = None


def is_initialized():
    return _comm is not None


def comm():
    if _comm is None:
        raise TerseError(_capi.ERR_INVALID_ARG, "terse.init() has not been called")
    return _comm


def rank():
    return comm().rank


def size():
    return comm().size


def local_rank():
    return comm().local_rank


def local_size():
    return comm().local_size


def cross_rank():
    return comm().cross_rank


def cross_size():
    return comm().cross_size


def barrier():
    comm().barrier()


def allreduce(a, op="sum"):
    return comm().allreduce(a, op)


def allgather(a):
    return comm().allgather(a)


def broadcast(a, root=0):
    return comm().broadcast(a, root)


def compressed_allreduce(a, compressor, tensor_id=0, step=0, error=None, server_error=None,
                         out=None, double_way=None, algorithm=None, hierarchy=None):
    """Comm.compressed_allreduce on the default communicator."""
    return comm().compressed_allreduce(a, compressor, tensor_id, step, error, server_error, out,
                                       double_way, algorithm, hierarchy)
