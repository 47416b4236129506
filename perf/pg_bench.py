"""torch.distributed over "terse" vs gloo (CPU, this machine, unshaped).

    mpirun -np 4 python3 perf/pg_bench.py [--min-bytes 4K] [--max-bytes 256M] [--iters 5]
        [--ddp-steps 5] [--csv pg_bench.csv] [--skip-ddp] [--skip-allreduce]

1. all_reduce (float32, SUM) of 4 KiB..256 MiB, terse and gloo alternated call by call, the
   median over iterations of the slowest rank's time.
2. DDP step time (forward, backward with the gradient exchange, SGD step) of the 20M-parameter
   MLP 784-4096-4096-10 at batch 4: DDP over gloo, DDP over terse, and DDP over terse with
   terse's hook (Top-K 1%, EF), alternated step by step, medians of the slowest rank.
Rank 0 prints tables and writes the CSV. Needs terse.torch's backend built (TERSE_C10D_MODULE
in a build tree) and mpi4py only for the port.
"""
import argparse
import csv
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "python"))
from pg_util import init_terse  # noqa: E402


def size_arg(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def slowest(t):
    x = torch.tensor([t], dtype=torch.float64)
    dist.all_reduce(x, op=dist.ReduceOp.MAX, group=GLOO)
    return x.item()


def timed(fn):
    dist.barrier(group=GLOO)
    t0 = time.perf_counter()
    fn()
    return slowest(time.perf_counter() - t0)


def bench_allreduce(args, rows):
    nbytes = args.min_bytes
    while nbytes <= args.max_bytes:
        n = nbytes // 4
        t = torch.ones(n)
        times = {"terse": [], "gloo": []}
        iters = args.iters if nbytes < (64 << 20) else max(2, args.iters // 2)
        for it in range(iters + 1):  # the first round warms both up
            for name, g in (("terse", None), ("gloo", GLOO)):
                dt = timed(lambda: dist.all_reduce(t, group=g))
                if it:
                    times[name].append(dt)
        mt, mg = statistics.median(times["terse"]), statistics.median(times["gloo"])
        rows.append({"bench": "all_reduce", "bytes": nbytes, "terse_ms": mt * 1e3,
                     "gloo_ms": mg * 1e3, "speedup": mg / mt})
        nbytes *= 4


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 4096), torch.nn.ReLU(),
                               torch.nn.Linear(4096, 4096), torch.nn.ReLU(),
                               torch.nn.Linear(4096, 10))


def bench_ddp(args, rows):
    import terse.torch as tt
    configs = {}
    configs["gloo"] = DDP(mlp(), process_group=GLOO)
    configs["terse"] = DDP(mlp())
    m = DDP(mlp())
    m.register_comm_hook(None, tt.ddp_comm_hook(m, "topk:0.01", error_feedback="ef"))
    configs["terse+topk1%ef"] = m
    opts = {k: torch.optim.SGD(v.parameters(), lr=0.01) for k, v in configs.items()}
    x, y = torch.randn(4, 784), torch.randint(0, 10, (4,))
    times = {k: [] for k in configs}
    for step in range(args.ddp_steps + 1):
        for k, model in configs.items():
            def one():
                opts[k].zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opts[k].step()
            dt = timed(one)
            if step:
                times[k].append(dt)
    base = statistics.median(times["gloo"])
    for k in configs:
        med = statistics.median(times[k])
        rows.append({"bench": "ddp_step:" + k, "bytes": 4 * sum(p.numel() for p in mlp().parameters()),
                     "terse_ms": med * 1e3, "gloo_ms": base * 1e3, "speedup": base / med})


def main():
    global GLOO
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-bytes", type=size_arg, default=4 << 10)
    ap.add_argument("--max-bytes", type=size_arg, default=256 << 20)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--ddp-steps", type=int, default=5)
    ap.add_argument("--csv", default="pg_bench.csv")
    ap.add_argument("--skip-ddp", action="store_true")
    ap.add_argument("--skip-allreduce", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rank, size = init_terse(timeout_s=300)
    GLOO = dist.new_group(backend="gloo")
    rows = []
    if not args.skip_allreduce:
        bench_allreduce(args, rows)
    if not args.skip_ddp:
        bench_ddp(args, rows)
    if rank == 0:
        load = os.getloadavg()
        print("ranks %d, load average %.1f %.1f %.1f, %d cores" % (size, *load, os.cpu_count()))
        print("| benchmark | bytes | terse ms | gloo ms | gloo/terse |")
        print("|---|---:|---:|---:|---:|")
        for r in rows:
            print("| %s | %d | %.2f | %.2f | %.2f |" % (r["bench"], r["bytes"], r["terse_ms"],
                                                     r["gloo_ms"], r["speedup"]))
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
