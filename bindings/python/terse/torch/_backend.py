"""The torch.distributed backend "terse": registration of the C++ ProcessGroup (built by the
project's CMake as terse/torch/_c10d*.so; never compiled here) and launcher environments.

    import terse.torch
    torch.distributed.init_process_group("terse", init_method="env://")

Launchers: torchrun and ``env://`` set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT. Under
``mpirun`` (Open MPI) without them, importing terse.torch takes RANK, WORLD_SIZE and LOCAL_RANK
from OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK, and MASTER_ADDR / MASTER_PORT default to
localhost:29500: set MASTER_ADDR to rank 0's host when the ranks span several hosts.

The process group's timeout (init_process_group(timeout=...), torch's default 30 minutes) is
terse's: a collective that waits longer for a peer fails with TERSE_ERR_TIMEOUT; a dead peer
fails it at once (TERSE_ERR_PEER_FAILED).
"""
import importlib.util
import os
from ._malloc import keep_freed_memory

_ext = None


def extension():
    """The compiled module (terse.torch._c10d). In a build tree, $TERSE_C10D_MODULE names it."""
    global _ext
    if _ext is None:
        path = os.environ.get("TERSE_C10D_MODULE")
        if path:
            spec = importlib.util.spec_from_file_location("terse.torch._c10d", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _ext = mod
        else:
            from . import _c10d
            _ext = _c10d
    return _ext


def available():
    """True when the backend's extension module is built and loads."""
    try:
        extension()
        return True
    except ImportError:
        return False


def _create(store, rank, size, timeout):
    try:
        ext = extension()
    except ImportError as e:
        raise RuntimeError("the torch.distributed backend 'terse' is not built: terse.torch._c10d "
                           "is missing (build terse with libtorch-dev and pybind11-dev "
                           "installed): %s" % e) from e
    keep_freed_memory()
    return ext.ProcessGroupTerse(store, rank, size, timeout.total_seconds())


def is_terse_group(pg):
    """Is ``pg`` a "terse" process group?"""
    return _ext is not None and isinstance(pg, _ext.ProcessGroupTerse)


def _env_from_mpi(env=os.environ):
    """Open MPI's rank variables for env:// when the launcher set none (see the module doc)."""
    if "RANK" in env or "OMPI_COMM_WORLD_RANK" not in env:
        return
    env["RANK"] = env["OMPI_COMM_WORLD_RANK"]
    env.setdefault("WORLD_SIZE", env.get("OMPI_COMM_WORLD_SIZE", "1"))
    env.setdefault("LOCAL_RANK", env.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))
    env.setdefault("MASTER_ADDR", "localhost")
    env.setdefault("MASTER_PORT", "29500")


def register():
    """Registers "terse" with torch.distributed (once; idempotent)."""
    import torch.distributed as dist
    if not dist.is_available():
        return
    _env_from_mpi()
    if "TERSE" in dist.Backend._plugins:
        return
    dist.Backend.register_backend("terse", _create)
