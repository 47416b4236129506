#!/usr/bin/python3
"""The job docker/test.sh runs inside the terse containers, on any number of ranks, bootstrapped
by mpirun or by the environment rendezvous (TERSE_RANK, TERSE_SIZE, TERSE_ROOT_ADDR):

- a compressed allreduce (Top-K 1% of 100,000 floats, different on every rank), and a dense one;
- (with torch) a few SAEF training steps: terse.torch's DistributedOptimizer over momentum SGD,
  Top-K 5% double-way, error averaging every 3 steps, on a small regression model;

then every rank's results are gathered and checked bit-equal on every rank (the compressed
average, the dense average, the consensus model x_t). Prints one line per rank and "job ok"
on rank 0. --numpy: the numpy-level package only (terse:runtime-slim has no torch).
"""
import argparse
import hashlib
import sys

import numpy as np

N = 100_000


def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def check_equal(rank, size, gathered, what):
    """gathered: size x 32 digest bytes from every rank; all rows must be rank 0's."""
    rows = [bytes(gathered[i]) for i in range(size)]
    bad = [i for i, r in enumerate(rows) if r != rows[0]]
    if bad:
        sys.exit("rank %d: %s differs on rank(s) %s from rank 0" % (rank, what, bad))


def numpy_job(args):
    import terse
    comm = terse.init()
    rank, size = comm.rank, comm.size
    x = np.random.default_rng(rank).standard_normal(N).astype(np.float32)
    err = np.zeros_like(x)
    topk = terse.Compressor.topk(0.01)
    for step in range(3):  # error feedback by hand: e <- x + e - C(x + e)
        avg_c = comm.compressed_allreduce(x, topk, tensor_id=1, step=step, error=err)
    dense = comm.allreduce(x, "avg")
    d = np.frombuffer(digest(avg_c, dense), np.uint8)
    check_equal(rank, size, comm.allgather(d).reshape(size, -1), "compressed/dense result")
    print("rank %d/%d: compressed allreduce nonzeros %d, dense avg[0] %.6f, digest %s"
          % (rank, size, np.count_nonzero(avg_c), dense[0], d.tobytes().hex()[:16]), flush=True)
    if rank == 0:
        print("job ok: %d ranks, results equal on every rank" % size, flush=True)
    terse.shutdown()


def torch_job(args):
    import torch
    import terse.torch as hvd
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    g = torch.Generator().manual_seed(rank)

    # compressed allreduce of a different vector on every rank
    x = torch.randn(N, generator=g)
    avg_c = hvd.allreduce(x, compression=hvd.Compression.topk(0.01), name="job.topk")
    dense = hvd.allreduce(x, op=hvd.Average, name="job.dense")

    # SAEF steps: every rank sees its own batches; x_t must agree everywhere
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    w_true = torch.randn(32, 1, generator=torch.Generator().manual_seed(42))
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                   named_parameters=model.named_parameters(),
                                   compression=hvd.Compression.topk(0.05), error_feedback="saef",
                                   error_average_period=3, double_way=True)
    losses = []
    for _ in range(args.steps):
        xb = torch.randn(64, 32, generator=g)
        loss = torch.nn.functional.mse_loss(model(xb), xb @ w_true)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with opt.consensus_parameters():
        xt = [p.detach().numpy().copy() for p in model.parameters()]
    if not all(np.isfinite(losses)):
        sys.exit("rank %d: non-finite loss %s" % (rank, losses))

    d = torch.frombuffer(bytearray(digest(avg_c.numpy(), dense.numpy(), *xt)), dtype=torch.uint8)
    check_equal(rank, size, hvd.allgather(d.reshape(1, -1), name="job.digest").numpy(),
                "compressed/dense result or consensus model")
    print("rank %d/%d: compressed allreduce nonzeros %d, dense avg[0] %.6f, SAEF %d steps loss "
          "%.4f -> %.4f, digest %s" % (rank, size, int(torch.count_nonzero(avg_c)),
                                      float(dense[0]), args.steps, losses[0], losses[-1],
                                      bytes(d.tolist()).hex()[:16]), flush=True)
    if rank == 0:
        print("job ok: %d ranks, results equal on every rank" % size, flush=True)
    hvd.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--numpy", action="store_true", help="numpy-level package only (no torch)")
    args = ap.parse_args()
    numpy_job(args) if args.numpy else torch_job(args)


if __name__ == "__main__":
    main()
