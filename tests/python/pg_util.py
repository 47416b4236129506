"""Helpers of the "terse" process-group tests: init over env:// under mpirun (the port agreed
over mpi4py, so concurrent runs on one machine do not collide)."""
import datetime
import os
import socket


def free_port(addr="127.0.0.1"):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def init_terse(timeout_s=30):
    """init_process_group("terse") from Open MPI's variables (terse.torch sets RANK and
    WORLD_SIZE from them); returns (rank, size)."""
    from mpi4py import MPI
    import torch.distributed as dist
    import terse.torch  # noqa: F401  registers "terse", RANK/WORLD_SIZE from OMPI_*
    # MASTER_ADDR given: rank 0's address on a multi-host launch (perf/pg_bench.sh)
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = MPI.COMM_WORLD.bcast(free_port(addr) if MPI.COMM_WORLD.rank == 0 else None, root=0)
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("terse", init_method="env://",
                            timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size()
