#!/usr/bin/env python3
"""Single-process reference of Algorithm 1 (SAEF paper) with K simulated workers, checked
against the library run under mpirun (test_ef_traj). Everything the library does in float32
is done here in float32, element by element in the same order where order matters (the
rank-order sum); compressors are re-implemented from their definitions (DESIGN.md).

usage: ef_reference.py [--model DTYPE] MPIEXEC_AND_FLAGS... -- NP EXE MODE PERIOD DOUBLE_WAY SPEC T [L]

With --model DTYPE (f32|f64|f16|bf16) EXE is test_model_traj: the model-level step on
parameters of that dtype, replayed by simulate_model (parameters rounded to their dtype,
differences formed in the widened type, what travels float32).

With L (ranks per host), the library runs with TERSE_HIERARCHY=node on NP/L emulated hosts
(ranks h*L .. h*L+L-1 on host h) and the reference is the hierarchical mode: Algorithm 1 with
the hosts as workers, host h's Delta the mean of its ranks' Deltas, one error per host shared
by its ranks.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

F = np.float32


def parse_spec(spec):
    parts = spec.split(",")
    kind, _, ratio = parts[0].partition(":")
    block = 0
    for p in parts[1:]:
        if p.startswith("block="):
            block = int(p[6:])
    return kind, float(ratio) if ratio else 0.0, block


def sign_l1(v):
    """||v||_1 as the sign codec defines it: per chunk of 4096 elements, 16 double lanes in
    element order combined by a fixed pairwise tree; the chunk partials added in chunk order."""
    l1 = 0.0
    for c0 in range(0, v.size, 4096):
        a = np.abs(v[c0:c0 + 4096].astype(np.float64))
        lanes = np.zeros(16)
        for i in range(0, a.size, 16):  # row by row: element order within each lane
            row = a[i:i + 16]
            lanes[:row.size] += row
        s = lanes[:8] + lanes[8:]
        s = s[:4] + s[4:]
        l1 += (s[0] + s[2]) + (s[1] + s[3])
    return l1


def compress_block(kind, ratio, v):
    n = v.size
    if kind == "topk":
        k = max(1, int(np.floor(ratio * n)))
        k = min(k, n)
        idx = np.argsort(-np.abs(v), kind="stable")[:k]  # ties: lower index first
        c = np.zeros_like(v)
        c[idx] = v[idx]
        return c
    if kind == "sign":
        scale = F(sign_l1(v) / n)
        return np.where(v >= 0, scale, -scale).astype(F)
    raise SystemExit("reference knows topk and sign only")


def compress(spec, v):
    kind, ratio, block = parse_spec(spec)
    bs = block if 0 < block < v.size else v.size
    return np.concatenate([compress_block(kind, ratio, v[s:s + bs]) for s in range(0, v.size, bs)])


def compress_tensors(spec, v, counts):
    out, off = [], 0
    for n in counts:
        out.append(compress(spec, v[off:off + n]))
        off += n
    return np.concatenate(out)


def server_step(cs, es, dw, spec, counts):
    """The workers' C(Delta) summed in rank (host) order and averaged; double-way, C(e_s + avg)
    with e_s the remainder (lines 19-23). Returns the update and e_s."""
    acc = np.zeros(cs[0].size, F)
    for c in cs:
        acc = (acc + c).astype(F)
    avg = (acc / F(len(cs))).astype(F)
    if not dw:
        return avg, es
    D = (es + avg).astype(F)
    u = compress_tensors(spec, D, counts)
    return u, (D - u).astype(F)


def simulate(K, A, b, T, mode, period, dw, spec, x0, counts, L=0):
    """L = 0: flat. L > 0: hierarchical with L ranks per host (e[k] is then the host's error,
    the same for every rank of the host)."""
    M = A.shape[1]
    lr, mu = F(0.05), F(0.9)
    x = x0.copy()
    m = [np.zeros_like(x) for _ in range(K)]
    e = [np.zeros_like(x) for _ in range(K)]
    es = np.zeros_like(x)
    traj = [x.copy()]
    for t in range(T):
        if mode != "none" and period and (t + 1) % period == 0:  # line 7
            avg = (np.sum(np.array(e, dtype=np.float64), axis=0) / K).astype(F)
            e = [avg.copy() for _ in range(K)]
        deltas = []
        for k in range(K):
            xh = (x - e[k]).astype(F) if mode == "saef" else x.copy()  # line 9
            r = A[k].astype(np.float64) @ xh.astype(np.float64) - b[k].astype(np.float64)
            g = (A[k].astype(np.float64).T @ r / M).astype(F)
            m[k] = (mu * m[k] + g).astype(F)  # line 10
            xp = (xh - lr * m[k]).astype(F)  # line 11
            d = (xh - xp).astype(F)
            deltas.append((e[k] + d).astype(F) if mode != "none" else d)  # line 12 / 16
        if L:  # the host's leader averages its ranks' Deltas in local-rank order
            workers = []
            for h in range(K // L):
                s = deltas[h * L].copy()
                for k in range(h * L + 1, h * L + L):
                    s = (s + deltas[k]).astype(F)
                workers.append((s / F(L)).astype(F))
        else:
            workers = deltas
        cs = []
        for w, delta in enumerate(workers):
            c = compress_tensors(spec, delta, counts)
            if mode != "none":  # line 18; hierarchical: every rank of the host gets e_h
                for k in (range(w * L, w * L + L) if L else [w]):
                    e[k] = (delta - c).astype(F)
            cs.append(c)
        u, es = server_step(cs, es, dw, spec, counts)
        x = (x - u).astype(F)  # line 25
        traj.append(x.copy())
    return np.array(traj)


def round_to(dtype, v):
    """v (float64 values) rounded to a parameter dtype, as float64 values."""
    if dtype == "f64":
        return v
    f = np.asarray(v, np.float64).astype(F)
    if dtype == "f16":
        return f.astype(np.float16).astype(np.float64)
    if dtype == "bf16":  # round to nearest even on the upper 16 bits
        u = f.view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
        return u.astype(np.uint32).view(F).astype(np.float64)
    return f.astype(np.float64)


def simulate_model(K, A, b, T, mode, period, dw, spec, x0, counts, dtype):
    """Algorithm 1 as the model-level step computes it: x_t stored in the parameters' dtype,
    everything else in the widened type W (float32, float64 for f64), Delta rounded to float32
    for the compressors, e_k keeping the rounding remainder (test_model_traj's optimizer)."""
    M = A.shape[1]
    wide = (lambda v: np.asarray(v, np.float64)) if dtype == "f64" else \
        (lambda v: np.asarray(v, np.float64).astype(F).astype(np.float64))
    lr, mu = 0.05, 0.9
    x = x0.copy()
    m = [np.zeros_like(x) for _ in range(K)]
    e = [np.zeros_like(x) for _ in range(K)]
    es = np.zeros(x.size, F)
    traj = [x.copy()]
    for t in range(T):
        if mode != "none" and period and (t + 1) % period == 0 and t > 0:  # line 7
            avg = wide(np.sum(np.array(e), axis=0) / K)
            e = [avg.copy() for _ in range(K)]
        cs = []
        for k in range(K):
            xh = round_to(dtype, wide(x - e[k])) if mode == "saef" else x.copy()  # line 9
            r = A[k].astype(np.float64) @ xh - b[k].astype(np.float64)
            g = wide(A[k].astype(np.float64).T @ r / M)
            m[k] = wide(wide(mu * m[k]) + g)  # line 10
            xp = round_to(dtype, wide(xh - wide(lr * m[k])))  # line 11
            d = wide(xh - xp)
            delta = wide(e[k] + d) if mode != "none" else d  # line 12 / 16
            d32 = delta.astype(F)
            c = compress_tensors(spec, d32, counts)
            if mode != "none":  # line 18, the float64 part kept in e_k
                e[k] = (delta - d32.astype(np.float64)) + (d32 - c).astype(F).astype(np.float64) \
                    if dtype == "f64" else (d32 - c).astype(np.float64)
            cs.append(c)
        u, es = server_step(cs, es, dw, spec, counts)
        x = round_to(dtype, wide(x - u.astype(np.float64)))  # line 25
        traj.append(x.copy())
    return np.array(traj)


# The widened-type algebra is replayed exactly; what is left is the error average, summed
# in another order here (float32 e_k), which can flip the last bit of a float16/bfloat16 value.
TOLERANCE = {"f32": 1e-5, "f64": 1e-5, "f16": 2e-3, "bf16": 1e-2}


def main():
    dtype = None
    if sys.argv[1] == "--model":
        dtype = sys.argv[2]
        del sys.argv[1:3]
    sep = sys.argv.index("--")
    mpiexec = sys.argv[1:sep]
    np_, exe, mode, period, dw, spec, T = sys.argv[sep + 1:sep + 8]
    L = int(sys.argv[sep + 8]) if len(sys.argv) > sep + 8 else 0
    env = dict(os.environ)
    wrap = []
    if L:
        env["TERSE_HIERARCHY"] = "node"
        wrap = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulate_hosts.sh"), str(L)]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "traj.bin")
        cmd = mpiexec + ["-np", np_] + wrap + [exe, mode, period, dw, spec, T, out] + (
            [dtype] if dtype else [])
        res = subprocess.run(cmd, env=env)
        if res.returncode != 0:
            print("library run failed:", " ".join(cmd))
            return 1
        raw = open(out, "rb").read()
    K, NP, M, T = np.frombuffer(raw[:16], dtype=np.int32)
    data = np.frombuffer(raw[16:16 + 4 * K * M * (NP + 1)], dtype=F).reshape(K, M, NP + 1)
    lib = np.frombuffer(raw[16 + 4 * K * M * (NP + 1):], dtype=np.float64 if dtype else F)
    lib = lib.reshape(T + 1, NP)
    A, b = data[:, :, :NP], data[:, :, NP]
    if dtype:
        ref = simulate_model(K, A, b, T, mode, int(period), int(dw), spec, lib[0], [25, 15],
                             dtype)
    else:
        ref = simulate(K, A, b, T, mode, int(period), int(dw), spec, lib[0], [25, 15], L)
    tol = TOLERANCE[dtype] if dtype else 1e-5
    worst = 0.0
    for t in range(T + 1):
        rel = np.linalg.norm(lib[t].astype(np.float64) - ref[t]) / max(np.linalg.norm(ref[t]), 1e-3)
        worst = max(worst, rel)
    loss0 = sum(np.sum((A[k] @ lib[0] - b[k]) ** 2) for k in range(K))
    lossT = sum(np.sum((A[k] @ lib[-1] - b[k]) ** 2) for k in range(K))
    print(f"K={K} L={L or '-'} {dtype or 'f32'} {mode} p={period} dw={dw} {spec}: "
          f"worst relative difference {worst:.2e} "
          f"over {T} steps; loss {loss0:.4f} -> {lossT:.4f}")
    if worst > tol:
        print("FAIL: trajectories differ by more than %g relative" % tol)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
