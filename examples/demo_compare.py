#!/usr/bin/python3
"""What terse is for, in one run: the same data-parallel training of an MLP on Fashion-MNIST,
dense (terse.torch's Horovod-style allreduce of float32 gradients) and compressed (SAEF with
Top-K 1%, double-way, the step in C overlapped with backward), side by side: seconds per step,
bytes each worker sent, test accuracy.

    mpirun -np 4 /usr/bin/python3 examples/demo_compare.py [--steps 300] [--hidden 2048]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_fashion_mnist as tfm  # noqa: E402
import terse.torch as hvd  # noqa: E402


def train(label, compression, error_feedback, args, data):
    xtr, ytr, xte, yte = data
    torch.manual_seed(args.seed)
    model = tfm.MLP(args.hidden)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    base = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    opt = hvd.DistributedOptimizer(base, named_parameters=model.named_parameters(),
                                   compression=compression, error_feedback=error_feedback,
                                   double_way=error_feedback is not None)
    K, r = hvd.size(), hvd.rank()
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(xtr), generator=gen)
    per_rank = len(xtr) // K
    mine = perm[r * per_rank:(r + 1) * per_rank]
    hvd.barrier()
    t0 = time.perf_counter()
    for s in range(args.steps):
        idx = mine[(s * args.batch) % (per_rank - args.batch):][:args.batch]
        opt.zero_grad()
        F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    hvd.barrier()
    elapsed = time.perf_counter() - t0
    if error_feedback is None:  # what a ring allreduce of the float32 gradients sends
        sent = args.steps * 2 * (K - 1) * 4 * n_params // K
    else:
        sent = opt.wire_bytes_sent
    ctx = opt.consensus_parameters() if error_feedback else None
    if ctx is not None:
        with ctx:
            _, acc = tfm.evaluate(model, xte, yte)
    else:
        _, acc = tfm.evaluate(model, xte, yte)
    return {"label": label, "s_per_step": elapsed / args.steps, "time_s": elapsed,
            "mb_sent": sent / 1e6, "acc": acc, "params": n_params}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32, help="per worker")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--network", default="", help="what the ranks run over, for the title")
    args = ap.parse_args()
    torch.set_num_threads(1)
    hvd.init()
    data = tfm.load_fashion_mnist()
    rows = [train("dense (allreduce)", hvd.Compression.none, None, args, data),
            train("SAEF Top-K 1%", hvd.Compression.topk(0.01), "saef", args, data)]
    if hvd.rank() == 0:
        d, c = rows
        print("\nterse demo: %d workers%s, MLP 784-%d-10 (%.1fM parameters), %d steps of "
              "batch %d per worker" % (hvd.size(), " over " + args.network if args.network
                                       else "", args.hidden, d["params"] / 1e6, args.steps,
                                       args.batch))
        print("%-20s %10s %10s %16s %14s" % ("", "s/step", "total s", "MB sent/worker",
                                             "test accuracy"))
        for r in rows:
            print("%-20s %10.4f %10.1f %16.1f %14.4f" % (r["label"], r["s_per_step"],
                                                         r["time_s"], r["mb_sent"], r["acc"]))
        print("compressed vs dense: %.2fx the speed, %.0fx fewer bytes, accuracy %+.2f points"
              % (d["s_per_step"] / c["s_per_step"], d["mb_sent"] / max(c["mb_sent"], 1e-9),
                 100 * (c["acc"] - d["acc"])))
    hvd.shutdown()


if __name__ == "__main__":
    main()
