#!/usr/bin/python3
"""Seconds per training step of data-parallel stacks in one run (mpirun-launched; across the
emulated hosts of perf/netcluster.sh through perf/step_bench.sh):

    terse dense            terse.torch DistributedOptimizer, Compression.none (Horovod-style)
    terse SAEF topk1%      compressed, double-way, Algorithm 1's step in C, overlapped
    terse SAEF topk1% B    the same with block_size=262144
    terse SAEF sign(, B)   scaled sign, double-way
    DDP gloo               torch DistributedDataParallel over gloo
    DDP gloo fp16 hook     DDP with torch's fp16_compress_hook
    DDP terse hook         DDP (gloo) with terse.torch.ddp_comm_hook(Top-K 1%, EF)

Stacks run in rounds (each round every stack, in turn; medians over rounds), so load changes
hit all of them alike. Rank 0 prints a table, and writes CSV/JSON (--out) and a PNG.

    mpirun -np 4 /usr/bin/python3 perf/step_bench.py --model mlp20m --batch 4
    /usr/bin/python3 perf/step_bench.py --breakdown --model mlp20m     # one rank, no mpirun

--breakdown (one rank): where a compressed step's time goes — forward+backward, the wrapped
optimizer's own step, the C compressed exchange alone on the same tensors, and everything
else; the goal is (step - fwd/bwd - optimizer) <= 1.2 x the exchange alone.
"""
import argparse
import csv
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import terse
import terse.torch as hvd

BLOCK = 262144


class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


MODELS = {"mlp20m": [784, 4096, 4096, 10], "mlp814k": [784, 1024, 10]}


def make_model(kind):
    torch.manual_seed(0)
    return MLP(MODELS[kind])


def stacks(only):
    out = [
        ("terse dense", "terse", dict(compression="none")),
        ("terse SAEF topk1%", "terse", dict(compression="topk:0.01", ef="saef")),
        ("terse SAEF topk1% B", "terse", dict(compression="topk:0.01,block=%d" % BLOCK,
                                              ef="saef")),
        ("terse SAEF sign", "terse", dict(compression="sign", ef="saef")),
        ("terse SAEF sign B", "terse", dict(compression="sign,block=%d" % BLOCK, ef="saef")),
        ("DDP gloo", "ddp", dict(hook=None)),
        ("DDP gloo fp16 hook", "ddp", dict(hook="fp16")),
        ("DDP terse hook", "ddp", dict(hook="terse")),
    ]
    if only:
        keep = [s.strip() for s in only.split(",")]
        out = [s for s in out if any(k == s[0] or k in s[0] for k in keep)]
    return out


class Stack:
    """One training setup: model, optimizer, and how one step runs."""

    def __init__(self, label, kind, cfg, model_kind, pg):
        self.label, self.kind = label, kind
        self.model = make_model(model_kind)
        base = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        if kind == "terse":
            hvd.broadcast_parameters(self.model.state_dict(), root_rank=0)
            if cfg["compression"] == "none":
                comp = hvd.Compression.none
                self.opt = hvd.DistributedOptimizer(
                    base, named_parameters=self.model.named_parameters(), compression=comp)
            else:
                self.opt = hvd.DistributedOptimizer(
                    base, named_parameters=self.model.named_parameters(),
                    compression=hvd.Compression.terse(cfg["compression"]),
                    error_feedback=cfg["ef"], double_way=True)
            self.net = self.model
        else:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, process_group=pg)
            if cfg["hook"] == "fp16":
                from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
                self.net.register_comm_hook(pg, default_hooks.fp16_compress_hook)
            elif cfg["hook"] == "terse":
                self.net.register_comm_hook(None, hvd.ddp_comm_hook(
                    self.net, hvd.Compression.terse("topk:0.01"), error_feedback="ef"))
            self.opt = base

    def step(self, x, y):
        self.opt.zero_grad()
        F.cross_entropy(self.net(x), y).backward()
        self.opt.step()

    def bytes_sent(self):
        return getattr(self.opt, "wire_bytes_sent", None)


def init_gloo():
    """torch.distributed over gloo for the DDP stacks: rank and size from mpirun, rank 0's
    address from MASTER_ADDR (perf/step_bench.sh sets it to the first emulated host)."""
    import torch.distributed as dist
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    dist.init_process_group("gloo", rank=hvd.rank(), world_size=hvd.size())
    return dist.group.WORLD


def run(args):
    hvd.init()
    pg = init_gloo() if hvd.size() > 1 else None
    todo = [(label, kind, cfg) for label, kind, cfg in stacks(args.stacks)
            if kind != "ddp" or pg is not None]
    g = torch.Generator().manual_seed(hvd.rank())
    x = torch.randn(args.batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    times = {label: [] for label, _, _ in todo}
    sent = {}
    for r in range(args.rounds):
        for label, kind, cfg in todo:
            # one stack alive at a time: eight 20M-parameter setups would not fit 4 ranks
            s = Stack(label, kind, cfg, args.model, pg)
            for _ in range(args.warmup):
                s.step(x, y)
            hvd.barrier()
            b0 = s.bytes_sent() or 0
            t0 = time.perf_counter()
            for _ in range(args.steps):
                s.step(x, y)
            hvd.barrier()
            times[label].append((time.perf_counter() - t0) / args.steps)
            if s.bytes_sent() is not None:
                sent[label] = (s.bytes_sent() - b0) / args.steps
            del s
    return [{"stack": label, "s_per_step": statistics.median(times[label]),
             "rounds": times[label], "wire_bytes_per_step": sent.get(label)}
            for label, _, _ in todo]


def report(rows, args, tag):
    ref = {r["stack"]: r["s_per_step"] for r in rows}
    dense, ddp = ref.get("terse dense"), ref.get("DDP gloo")
    print("\n%s, %d ranks, model %s, batch %d (median of %d rounds x %d steps)" % (
        tag, hvd.size(), args.model, args.batch, args.rounds, args.steps))
    print("%-22s %10s %12s %12s %16s" % ("stack", "s/step", "x terse dense", "x DDP gloo",
                                          "wire MB/step"))
    for r in rows:
        wb = r["wire_bytes_per_step"]
        print("%-22s %10.4f %12s %12s %16s" % (
            r["stack"], r["s_per_step"],
            "%.2f" % (r["s_per_step"] / dense) if dense else "-",
            "%.2f" % (r["s_per_step"] / ddp) if ddp else "-",
            "%.2f" % (wb / 1e6) if wb else "-"))
    if not args.out:
        return
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, "step_%s_%s_b%d" % (tag, args.model, args.batch))
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["network", "ranks", "model", "batch", "stack", "s_per_step",
                    "x_terse_dense", "x_ddp_gloo", "wire_bytes_per_step"])
        for r in rows:
            w.writerow([tag, hvd.size(), args.model, args.batch, r["stack"],
                        "%.6f" % r["s_per_step"],
                        "%.4f" % (r["s_per_step"] / dense) if dense else "",
                        "%.4f" % (r["s_per_step"] / ddp) if ddp else "",
                        "%.0f" % r["wire_bytes_per_step"] if r["wire_bytes_per_step"] else ""])
    with open(base + ".json", "w") as f:
        json.dump({"network": tag, "ranks": hvd.size(), "model": args.model,
                   "batch": args.batch, "rows": rows}, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.barh([r["stack"] for r in rows][::-1], [r["s_per_step"] for r in rows][::-1])
        ax.set_xlabel("seconds per step (median)")
        ax.set_title("%s, %d ranks, %s, batch %d" % (tag, hvd.size(), args.model, args.batch))
        fig.tight_layout()
        fig.savefig(base + ".png", dpi=110)
    except ImportError:
        pass


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def breakdown(args):
    """One rank: fwd+bwd, the wrapped optimizer's step, the C exchange alone, the rest."""
    hvd.init()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    reps = args.steps * args.rounds
    out = []
    for spec in args.breakdown_specs.split(";"):
        m = make_model(args.model)
        base = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

        def fb():
            base.zero_grad()
            F.cross_entropy(m(x), y).backward()
        fb()
        t_fb = timed(fb, reps)
        t_opt = timed(base.step, reps)
        # the exchange alone: the C compressed allreduce of tensors of the same sizes
        comm = hvd.mpi_ops.dup_comm()
        comp = terse.Compressor(spec)
        arrs = [p.detach().reshape(-1).numpy().copy() * 1e-3 for p in m.parameters()]
        errs = [np.zeros_like(a) for a in arrs]
        serr = [np.zeros_like(a) for a in arrs]
        outs = [np.zeros_like(a) for a in arrs]
        ids = list(range(len(arrs)))
        t_x = timed(lambda: comm.compressed_allreduce(arrs, comp, ids, 0, error=errs,
                                                      server_error=serr, out=outs,
                                                      double_way=True), reps)
        m2 = make_model(args.model)
        opt = hvd.DistributedOptimizer(torch.optim.SGD(m2.parameters(), lr=0.01, momentum=0.9),
                                       named_parameters=m2.named_parameters(),
                                       compression=hvd.Compression.terse(spec),
                                       error_feedback="saef", double_way=True)

        def full():
            opt.zero_grad()
            F.cross_entropy(m2(x), y).backward()
            opt.step()
        full()
        t_step = timed(full, reps)
        beyond = t_step - t_fb - t_opt
        out.append({"spec": spec, "fwd_bwd": t_fb, "optimizer": t_opt, "exchange_alone": t_x,
                    "step": t_step, "beyond_optimizer": beyond, "ratio": beyond / t_x,
                    "rest": beyond - t_x})
        comm.destroy()
    print("\none-rank breakdown, model %s, batch %d (medians of %d steps)" % (
        args.model, args.batch, reps))
    print("%-26s %9s %9s %9s %9s %9s %13s" % ("compressor (SAEF, dw)", "fwd+bwd", "optim",
                                            "exchange", "rest", "step",
                                            "beyond/exch"))
    for r in out:
        print("%-26s %9.4f %9.4f %9.4f %9.4f %9.4f %13.2f" % (
            r["spec"], r["fwd_bwd"], r["optimizer"], r["exchange_alone"], r["rest"], r["step"],
            r["ratio"]))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "step_breakdown_%s_b%d.json" % (args.model, args.batch)),
                  "w") as f:
            json.dump(out, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="mlp20m")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="steps per stack and round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--stacks", default="", help="comma-separated labels (substrings) to run")
    ap.add_argument("--network", default="local", help="label for the results (e.g. 1gbit)")
    ap.add_argument("--out", default="")
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--breakdown-specs", default="topk:0.01;topk:0.01,block=%d;sign;sign,block=%d"
                    % (BLOCK, BLOCK))
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.breakdown:
        breakdown(args)
        return
    rows = run(args)
    if hvd.rank() == 0:
        report(rows, args, args.network)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
