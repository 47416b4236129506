#!/usr/bin/python3
"""Data-parallel Fashion-MNIST training with terse.torch (a Horovod drop-in).

    mpirun -np 4 /usr/bin/python3 examples/train_fashion_mnist.py \
        --compressor topk:0.01 --error-feedback saef

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/*.gz). Compared with a
Horovod script only the import and the DistributedOptimizer's extra arguments change.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import terse.torch as hvd

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def load_fashion_mnist(data_dir=DATA_DIR):
    def images(name):
        with gzip.open(os.path.join(data_dir, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)

    def labels(name):
        with gzip.open(os.path.join(data_dir, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=8)
    xtr = torch.from_numpy(images("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    xte = torch.from_numpy(images("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0)
    mean, std = 0.2860, 0.3530
    return ((xtr - mean) / std, torch.from_numpy(labels("train-labels-idx1-ubyte.gz").astype(np.int64)),
            (xte - mean) / std, torch.from_numpy(labels("t10k-labels-idx1-ubyte.gz").astype(np.int64)))


class MLP(nn.Module):
    def __init__(self, hidden=256):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def make_compression(spec, algorithm=None, hierarchy=None):
    if spec in (None, "none", "dense"):
        return hvd.Compression.none
    if spec == "fp16":
        return hvd.Compression.fp16
    return hvd.Compression.terse(spec, algorithm=algorithm, hierarchy=hierarchy)


def evaluate(model, x, y, batch=2000):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def run(args, data=None, log=print):
    """Train once; returns the per-epoch history (list of dicts) on every rank."""
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = data if data is not None else load_fashion_mnist(args.data_dir)
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    model = CNN() if args.model == "cnn" else MLP(args.hidden)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    base = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    compression = make_compression(args.compressor, args.algorithm, args.hierarchy)
    ef = None if args.error_feedback in (None, "none") else args.error_feedback
    opt = hvd.DistributedOptimizer(base, named_parameters=model.named_parameters(),
                                   compression=compression, error_feedback=ef,
                                   error_average_period=args.period or None,
                                   double_way=args.double_way)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    n_params = sum(p.numel() for p in model.parameters())
    K, r = hvd.size(), hvd.rank()
    gen = torch.Generator().manual_seed(args.seed)
    history, dense_bytes, compute = [], 0, 0.0
    per_rank = len(xtr) // K
    steps = per_rank // args.batch_size
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        perm = torch.randperm(len(xtr), generator=gen)[r * per_rank:(r + 1) * per_rank]
        tot, n = 0.0, 0
        for s in range(steps):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            tot += loss.item()
            n += 1
            if not hasattr(opt, "bytes_sent"):  # dense Horovod path: a ring allreduce's wire
                dense_bytes += 2 * (K - 1) * 4 * n_params // K
        elapsed = time.time() - t0
        compute += elapsed
        ctx = opt.consensus_parameters() if hasattr(opt, "consensus_parameters") else None
        if ctx is not None:
            with ctx:
                te_loss, te_acc = evaluate(model, xte, yte)
        else:
            te_loss, te_acc = evaluate(model, xte, yte)
        # compressed: what the transport sent; dense: the float32 gradients of a ring allreduce
        sent = opt.wire_bytes_sent if getattr(opt, "wire_bytes_sent", None) is not None \
            else dense_bytes
        rec = {"epoch": epoch, "train_loss": tot / max(n, 1), "test_loss": te_loss,
               "test_acc": te_acc, "time_s": elapsed, "steps": steps * epoch,
               "bytes_sent": sent, "n_params": n_params}
        history.append(rec)
        if r == 0 and log:
            log("epoch %d/%d  train-loss %.4f  test-loss %.4f  test-acc %.4f  time %.1fs  "
                "sent %.2f MB/worker" % (epoch, args.epochs, rec["train_loss"], te_loss, te_acc,
                                         elapsed, sent / 1e6))
    return history


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--compressor", default="none",
                   help="none | fp16 | topk:0.01 | sign | randk:0.1 | induced:0.01,0.01 ...")
    p.add_argument("--error-feedback", default="none", choices=["none", "ef", "saef"])
    p.add_argument("--period", type=int, default=0, help="SAEF error averaging period (0: never)")
    p.add_argument("--double-way", action="store_true")
    p.add_argument("--algorithm", default=None,
                   choices=["auto", "sparse_allgather", "sparse_rs_ag", "sign_allgather",
                            "sign_a2a_ag", "dense"],
                   help="compressed allreduce algorithm (default: TERSE_COMPRESSED_ALGO)")
    p.add_argument("--hierarchy", default=None, choices=["none", "node"],
                   help="node: average within a host first (default: TERSE_HIERARCHY)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32, help="per worker")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden width")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    p.add_argument("--data-dir", default=DATA_DIR)
    return p


def main():
    args = parser().parse_args()
    torch.set_num_threads(1)
    hvd.init()
    if hvd.rank() == 0:
        print("terse: %d workers, compressor %s, error feedback %s%s" % (
            hvd.size(), args.compressor, args.error_feedback,
            ", double-way" if args.double_way else ""), flush=True)
    run(args, log=lambda s: print(s, flush=True))
    hvd.shutdown()


if __name__ == "__main__":
    main()
