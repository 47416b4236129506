#!/usr/bin/python3
"""The SAEF paper's experiment at small scale: dense vs EF vs SAEF (p = inf, p = 10) with Top-K
1% and with scaled sign, double-way, momentum SGD, Fashion-MNIST, several seeds.

    mpirun -np 4 /usr/bin/python3 perf/train_bench.py --out perf/results/train_bench   # full
    mpirun -np 4 /usr/bin/python3 perf/train_bench.py --smoke                          # CI
    perf/netcluster.sh mpirun -np 4 ... perf/train_bench.py --tta --out DIR   # wall clock

--tta: measured time to accuracy instead of the model: the 20M-parameter MLP
784-4096-4096-10, dense (terse.torch allreduce) vs SAEF Top-K 1% (double-way, the step in C,
overlapped; with and without block_size=262144), trained until the test accuracy reaches
--target (default 0.85 there) or --max-minutes, the clock stopped during evaluations (every
--eval-every steps, on the whole test set split over the ranks). perf/tta_bench.sh runs it on
4 emulated hosts at 1 Gbit/s.

Reports per configuration: loss/accuracy per epoch (mean over seeds), epochs to the target
accuracy, final accuracy, bytes sent per worker, and the wall time to the target on an
*emulated* cluster of 4 hosts at 1 Gbit/s: measured local compute time per step plus a
communication model of the collectives terse runs (dense: ring allreduce, 2 (K-1)/K * 4N bytes
and 2 (K-1) latencies per step; compressed: ring allgather of the wire messages, (K-1) * w bytes
and (K-1) latencies per layer). Writes results.json, results.md and PNG curves to --out.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import train_fashion_mnist as tfm  # noqa: E402
import terse.torch as hvd  # noqa: E402

BANDWIDTH = 1e9 / 8  # bytes/s
LATENCY = 50e-6  # s per message round


def configs():
    out = [("dense", "none", "none", 0)]
    for comp, label in (("topk:0.01", "topk1%"), ("sign", "sign")):
        out += [("%s EF" % label, comp, "ef", 0), ("%s SAEF p=inf" % label, comp, "saef", 0),
                ("%s SAEF p=10" % label, comp, "saef", 10)]
    return out


def measure_compute(model_kind, batch, hidden, reps=30):
    """Seconds per local forward/backward/SGD step (one rank, no communication)."""
    torch.manual_seed(0)
    m = tfm.CNN() if model_kind == "cnn" else tfm.MLP(hidden)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    for i in range(reps + 5):
        if i == 5:
            t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return (time.perf_counter() - t0) / reps


def comm_time(rec, prev, K):
    steps = rec["steps"] - (prev["steps"] if prev else 0)
    sent = rec["bytes_sent"] - (prev["bytes_sent"] if prev else 0)
    if rec.get("dense"):
        n = 4 * rec["n_params"]
        per_step = 2 * (K - 1) / K * n / BANDWIDTH + 2 * (K - 1) * LATENCY
        return steps * per_step
    # sent = what this worker's link carried (every copy to every peer, counted by terse); the
    # fused compressed allreduce is one call per step of at most 2 rounds of K-1 messages
    return sent / BANDWIDTH + steps * 2 * (K - 1) * LATENCY


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true", help="tiny CI run (seconds)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="training images used (0: all 60000)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--hidden", type=int, default=256, help="MLP hidden width")
    p.add_argument("--target", type=float, default=0.84, help="target test accuracy")
    p.add_argument("--only", default="", help="comma-separated config labels to run")
    p.add_argument("--out", default="perf/results/train_bench")
    p.add_argument("--tta", action="store_true", help="measured time to accuracy, 20M MLP")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--max-minutes", type=float, default=30.0, help="--tta: per configuration")
    a = p.parse_args()
    if a.tta:
        return tta_main(a)
    if a.smoke:
        a.epochs, a.seeds, a.limit, a.target = 1, 1, 1024, 0.4
    torch.set_num_threads(1)
    t_local = measure_compute(a.model, a.batch_size, a.hidden)  # before the engine thread starts
    hvd.init()
    K, r = hvd.size(), hvd.rank()
    data = tfm.load_fashion_mnist()
    t_compute = hvd.allreduce(torch.tensor([t_local], dtype=torch.float64), name="tcomp",
                              op=hvd.Min).item()
    results = []
    for label, comp, ef, period in configs():
        if a.only and label not in a.only.split(","):
            continue
        runs = []
        for seed in range(a.seeds):
            args = tfm.parser().parse_args([])
            args.compressor, args.error_feedback, args.period = comp, ef, period
            args.double_way = comp != "none"
            args.epochs, args.seed, args.limit = a.epochs, 1 + seed, a.limit
            args.batch_size, args.lr, args.model = a.batch_size, a.lr, a.model
            args.hidden = a.hidden
            t0 = time.time()
            hist = tfm.run(args, data=data, log=None)
            emu, prev, real = 0.0, None, 0.0
            for rec in hist:
                real += rec["time_s"]  # training time (evaluation excluded), measured
                rec["real_s"] = real
                rec["dense"] = comp == "none"
                emu += (rec["steps"] - (prev["steps"] if prev else 0)) * t_compute
                emu += comm_time(rec, prev, K)
                rec["emulated_s"] = emu
                prev = rec
            hit = [rec for rec in hist if rec["test_acc"] >= a.target]
            runs.append({"seed": args.seed, "history": hist,
                         "epochs_to_target": hit[0]["epoch"] if hit else None,
                         "emulated_to_target_s": hit[0]["emulated_s"] if hit else None,
                         "measured_to_target_s": hit[0]["real_s"] if hit else None,
                         "final_acc": hist[-1]["test_acc"], "bytes_sent": hist[-1]["bytes_sent"],
                         "real_s": time.time() - t0})
            if r == 0:
                print("%-18s seed %d  final acc %.4f  epochs-to-%.2f %s  emulated %.1fs  real %.0fs"
                      % (label, args.seed, runs[-1]["final_acc"], a.target,
                         runs[-1]["epochs_to_target"], hist[-1]["emulated_s"], runs[-1]["real_s"]),
                      flush=True)
        results.append({"label": label, "compressor": comp, "error_feedback": ef,
                        "period": period, "runs": runs})
    if r == 0:
        write_report(a, K, t_compute, results)
    hvd.shutdown()


TTA_CONFIGS = [("dense", "none", None), ("SAEF topk1%", "topk:0.01", "saef"),
               ("SAEF topk1% block", "topk:0.01,block=262144", "saef")]


def _accuracy(model, xte, yte):
    """Test accuracy over the whole test set, each rank scoring a share (collective)."""
    K, r = hvd.size(), hvd.rank()
    lo, hi = r * len(xte) // K, (r + 1) * len(xte) // K
    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[i:min(i + 500, hi)]).argmax(1) == yte[i:min(i + 500, hi)])
                      .sum().item() for i in range(lo, hi, 500))
    model.train()
    tot = hvd.allreduce(torch.tensor([float(correct)], dtype=torch.float64), op=hvd.Sum,
                        name="tta.correct")
    return tot.item() / len(xte)


def tta_run(a, label, comp, ef, data):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from step_bench import make_model
    xtr, ytr, xte, yte = data
    model = make_model("mlp20m")
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    base = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    if comp == "none":
        opt = hvd.DistributedOptimizer(base, named_parameters=model.named_parameters())
    else:
        opt = hvd.DistributedOptimizer(base, named_parameters=model.named_parameters(),
                                       compression=hvd.Compression.terse(comp),
                                       error_feedback=ef, double_way=True)
    K, r = hvd.size(), hvd.rank()
    gen = torch.Generator().manual_seed(1)
    clock, step, curve, hit = 0.0, 0, [], None
    while hit is None and clock < a.max_minutes * 60:
        perm = torch.randperm(len(xtr), generator=gen)[r::K]
        for s in range(len(perm) // a.batch_size):
            idx = perm[s * a.batch_size:(s + 1) * a.batch_size]
            t0 = time.perf_counter()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
            clock += time.perf_counter() - t0
            step += 1
            if step % a.eval_every == 0:
                ctx = opt.consensus_parameters() if ef else None
                with ctx if ctx is not None else _nullcontext():
                    acc = _accuracy(model, xte, yte)
                # every rank stops at the same step: rank 0's clock decides
                clock = hvd.broadcast(torch.tensor([clock], dtype=torch.float64), 0,
                                      name="tta.clock.%s.%d" % (label, step)).item()
                curve.append({"step": step, "time_s": clock, "test_acc": acc})
                if r == 0:
                    print("%-18s step %5d  %7.1f s  test acc %.4f" % (label, step, clock, acc),
                          flush=True)
                if acc >= a.target:
                    hit = clock
                if hit is not None or clock >= a.max_minutes * 60:
                    break
    sent = getattr(opt, "wire_bytes_sent", None)
    if sent is None:
        n = sum(p.numel() for p in model.parameters())
        sent = step * 2 * (K - 1) * 4 * n // K
    return {"label": label, "compressor": comp, "time_to_target_s": hit, "steps": step,
            "final_acc": curve[-1]["test_acc"] if curve else None, "mb_sent": sent / 1e6,
            "s_per_step": clock / max(step, 1), "curve": curve}


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def tta_main(a):
    if a.target == 0.84:
        a.target = 0.85
    torch.set_num_threads(1)
    hvd.init()
    data = tfm.load_fashion_mnist()
    rows = [tta_run(a, label, comp, ef, data) for label, comp, ef in TTA_CONFIGS
            if not a.only or label in a.only.split(",")]
    if hvd.rank() != 0:
        hvd.shutdown()
        return
    dense = next((x for x in rows if x["compressor"] == "none"), None)
    lines = ["| config | time to %.2f | speed-up | steps | s/step | final acc | MB sent/worker |"
             % a.target, "|---|---|---|---|---|---|---|"]
    for x in rows:
        t, d = x["time_to_target_s"], dense and dense["time_to_target_s"]
        lines.append("| %s | %s | %s | %d | %.3f | %.4f | %.0f |" % (
            x["label"], "%.0f s" % t if t else "not reached", "%.2fx" % (d / t) if t and d
            else "-", x["steps"], x["s_per_step"], x["final_acc"] or 0, x["mb_sent"]))
    md = "\n".join(lines) + "\n"
    print(md, flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tta.json"), "w") as f:
        json.dump({"workers": hvd.size(), "target": a.target, "batch_size": a.batch_size,
                   "lr": a.lr, "rows": rows}, f, indent=1)
    with open(os.path.join(a.out, "tta.md"), "w") as f:
        f.write("%d workers, MLP 784-4096-4096-10, batch %d/worker, lr %g, momentum 0.9\n\n"
                % (hvd.size(), a.batch_size, a.lr) + md)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for x in rows:
            ax.plot([c["time_s"] for c in x["curve"]], [c["test_acc"] for c in x["curve"]],
                    marker="o", label=x["label"])
        ax.axhline(a.target, color="gray", lw=0.8)
        ax.set(xlabel="training wall time (s)", ylabel="test accuracy")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "tta.png"), dpi=100)
    except ImportError:
        pass
    hvd.shutdown()


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def write_report(a, K, t_compute, results):
    os.makedirs(a.out, exist_ok=True)
    meta = {"workers": K, "epochs": a.epochs, "seeds": a.seeds, "limit": a.limit,
            "batch_size": a.batch_size, "lr": a.lr, "model": a.model, "hidden": a.hidden,
            "target": a.target,
            "bandwidth_bytes_s": BANDWIDTH, "latency_s": LATENCY, "compute_s_per_step": t_compute}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    dense = next((x for x in results if x["compressor"] == "none"), None)
    dense_t = _mean([run["emulated_to_target_s"] for run in dense["runs"]]) if dense else None
    dense_m = _mean([run["measured_to_target_s"] for run in dense["runs"]]) if dense else None
    lines = ["| config | final acc (mean of %d seeds) | epochs to %.2f | MB sent/worker | "
             "modelled time to target (1 Gbit/s) | speed-up | measured training time to "
             "target (this run) | speed-up |" % (a.seeds, a.target),
             "|---|---|---|---|---|---|---|---|"]
    for x in results:
        acc = _mean([run["final_acc"] for run in x["runs"]])
        ep = [run["epochs_to_target"] for run in x["runs"]]
        t = _mean([run["emulated_to_target_s"] for run in x["runs"]])
        m = _mean([run.get("measured_to_target_s") for run in x["runs"]])
        mb = _mean([run["bytes_sent"] for run in x["runs"]]) / 1e6
        sp = "%.1fx" % (dense_t / t) if (t and dense_t) else "-"
        spm = "%.1fx" % (dense_m / m) if (m and dense_m) else "-"
        lines.append("| %s | %.4f | %s | %.2f | %s | %s | %s | %s |" % (
            x["label"], acc, "/".join("-" if e is None else str(e) for e in ep), mb,
            "%.1f s" % t if t else "not reached", sp, "%.1f s" % m if m else "not reached", spm))
    md = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write("%d workers, %s%s, %d epochs, batch %d/worker, lr %g, momentum 0.9, %s images; "
                "compute %.2f ms/step\n\n" % (K, a.model, " %d" % a.hidden if a.model == "mlp"
                                              else "", a.epochs, a.batch_size, a.lr,
                                              a.limit or 60000, t_compute * 1e3) + md)
    print(md, flush=True)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for x in results:
        ep = [rec["epoch"] for rec in x["runs"][0]["history"]]
        for key, ax in (("test_acc", axes[0]), ("train_loss", axes[1])):
            ys = [_mean([run["history"][i][key] for run in x["runs"]]) for i in range(len(ep))]
            ax.plot(ep, ys, marker="o", label=x["label"])
        ts = [_mean([run["history"][i]["emulated_s"] for run in x["runs"]])
              for i in range(len(ep))]
        ys = [_mean([run["history"][i]["test_acc"] for run in x["runs"]]) for i in range(len(ep))]
        axes[2].plot(ts, ys, marker="o", label=x["label"])
    axes[0].set(xlabel="epoch", ylabel="test accuracy")
    axes[1].set(xlabel="epoch", ylabel="train loss")
    axes[2].set(xlabel="emulated wall time at 1 Gbit/s (s)", ylabel="test accuracy",
                xscale="log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "curves.png"), dpi=100)


if __name__ == "__main__":
    main()
