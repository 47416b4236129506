"""A worker for the launcher tests (test_pg_launch.py), run by torchrun or by plain processes.
Modes: ok (allreduce, send/recv, new_group: prints "worker ok"), die (the last rank exits
after init; the others must raise RuntimeError within the process group's timeout)."""
import datetime
import os
import sys
import time

import torch
import torch.distributed as dist

import terse.torch  # noqa: F401  registers "terse"

mode = sys.argv[1]
timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 30
dist.init_process_group("terse", init_method="env://",
                        timeout=datetime.timedelta(seconds=timeout))
rank, size = dist.get_rank(), dist.get_world_size()
if mode == "ok":
    t = torch.full((1000,), float(rank))
    dist.all_reduce(t)
    assert torch.equal(t, torch.full((1000,), float(sum(range(size))))), t
    if size > 1:
        x = torch.arange(5.0)
        if rank == 0:
            dist.send(x * 2, dst=1)
        elif rank == 1:
            dist.recv(x, src=0)
            assert torch.equal(x, torch.arange(5.0) * 2)
    dist.barrier()
    print("worker ok rank %d of %d" % (rank, size), flush=True)
    dist.destroy_process_group()
elif mode == "die":
    dist.barrier()
    if rank == size - 1:
        os._exit(3)
    t0 = time.time()
    try:
        for _ in range(100):
            dist.all_reduce(torch.ones(100000))
            time.sleep(0.05)
        print("worker no error", flush=True)
        sys.exit(1)
    except RuntimeError as e:
        print("worker raised after %.1f s: %s" % (time.time() - t0, e), flush=True)
        os._exit(0 if time.time() - t0 < timeout + 5 else 2)
