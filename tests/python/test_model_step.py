"""The compressed DistributedOptimizer's step in C with overlap (mpirun, 2-5 ranks):
overlapped == step-at-once bit for bit for every codec (and, through TERSE_COMPRESSED_ALGO in
CMake, every algorithm), parameter dtypes against a float64 reference, checkpoint/resume while
overlapping, NaN mid-backward, gradient clipping detected, closures run step at once."""
import copy
import io
import warnings

import numpy as np
import pytest
import torch

import terse

SPECS = ["topk:0.05", "topk:0.1,block=64", "sign", "sign,block=100", "randk:0.2",
         "induced:0.05,0.1", "fp16"]


class _Linear(torch.nn.Linear):
    """Computes in float32 whatever its parameters' dtype (CPU torch has no float16 matmul)."""

    def forward(self, x):
        return torch.nn.functional.linear(x.float(), self.weight.float(), self.bias.float())


def _mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    lin = _Linear if dtype in (torch.float16, torch.bfloat16) else torch.nn.Linear
    m = torch.nn.Sequential(lin(12, 40), torch.nn.Tanh(), lin(40, 30), torch.nn.Tanh(),
                            lin(30, 4))
    return m.to(dtype)


def _loss(model, k, t, dtype=torch.float32, poison=False):
    g = torch.Generator().manual_seed(100 * k + t)
    x = torch.randn(8, 12, generator=g).to(torch.float64 if dtype == torch.float64 else
                                           torch.float32)
    if poison:
        x[0, 0] = float("nan")
    y = torch.randint(0, 4, (8,), generator=g)
    return torch.nn.functional.cross_entropy(model(x).float(), y)


def _opt(hvd, model, spec, ef, overlap, bucket_bytes, base="sgd", **kw):
    if base == "adam":
        inner = torch.optim.Adam(model.parameters(), lr=1e-2)
    else:
        inner = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return hvd.DistributedOptimizer(inner, named_parameters=model.named_parameters(),
                                    compression=hvd.Compression.terse(spec), error_feedback=ef,
                                    overlap=overlap, bucket_bytes=bucket_bytes, **kw)


def _train(hvd, model, opt, t0, t1, dtype=torch.float32):
    for t in range(t0, t1):
        opt.zero_grad()
        _loss(model, hvd.rank(), t, dtype).backward()
        opt.step()


def _bits(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x.view(-1).view(torch.uint8) if x.dtype == torch.bfloat16 else x, y
                           .view(-1).view(torch.uint8) if y.dtype == torch.bfloat16 else y)
               for x, y in zip(a, b))


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("ef,dw", [("saef", False), ("ef", True), (None, False)])
def test_overlap_bit_identical(hvd, spec, ef, dw):
    if ef is None and not spec.startswith(("randk", "induced", "fp16")):
        pytest.skip("plain compression is for unbiased compressors")
    ma, mb = _mlp(), _mlp()
    # a: overlapped, buckets of about one layer; b: step at once, one bucket
    oa = _opt(hvd, ma, spec, ef, True, 500, double_way=dw, error_average_period=3)
    ob = _opt(hvd, mb, spec, ef, False, 1 << 30, double_way=dw, error_average_period=3)
    assert len(oa._bucket_params) >= 3 and len(ob._bucket_params) == 1
    for t in range(6):
        for m, o in ((ma, oa), (mb, ob)):
            o.zero_grad()
            _loss(m, hvd.rank(), t).backward()
            if o is oa and t > 0:
                assert o._model.posted > 0  # some buckets left during backward
            o.step()
        assert _same(_bits(ma), _bits(mb)), "step %d" % t
    with oa.consensus_parameters(), ob.consensus_parameters():
        assert _same(_bits(ma), _bits(mb))
        for p in ma.parameters():
            allp = hvd.allgather(p.detach().reshape(1, -1))
            assert all(torch.equal(allp[0], allp[k]) for k in range(hvd.size()))
    assert (oa.wire_bytes_sent > 0) == (hvd.size() > 1)  # bytes depend on the buckets


def test_overlap_adam(hvd):
    ma, mb = _mlp(), _mlp()
    oa = _opt(hvd, ma, "topk:0.1", "saef", True, 500, base="adam")
    ob = _opt(hvd, mb, "topk:0.1", "saef", False, 1 << 30, base="adam")
    _train(hvd, ma, oa, 0, 5)
    _train(hvd, mb, ob, 0, 5)
    assert _same(_bits(ma), _bits(mb))


def _reference64(K, spec, steps):
    """Algorithm 1 (SAEF, single-way) in float64 for K simulated workers: Delta formed in
    float64, compressed as float32 (what travels), e_k = Delta - C(Delta) in float64."""
    comp = terse.Compressor(spec)
    models = [_mlp(torch.float64) for _ in range(K)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in models]
    names = [n for n, _ in models[0].named_parameters()]
    x = {n: p.detach().clone() for n, p in models[0].named_parameters()}
    e = [{n: torch.zeros_like(x[n]) for n in names} for _ in range(K)]
    for t in range(steps):
        cs = {n: [] for n in names}
        for k in range(K):
            with torch.no_grad():
                for n, p in models[k].named_parameters():
                    p.copy_(x[n] - e[k][n])
            xh = {n: p.detach().clone() for n, p in models[k].named_parameters()}
            opts[k].zero_grad()
            _loss(models[k], k, t, torch.float64).backward()
            opts[k].step()
            for n, p in models[k].named_parameters():
                delta = (e[k][n] + (xh[n] - p.detach())).reshape(-1)
                d32 = delta.float().numpy()
                tid = terse.tensor_id_of("terse.opt." + n)
                _, c, _ = comp.compress(d32, tid, t, dense=True, remainder=True)
                cs[n].append(c)
                e[k][n] = (delta - torch.from_numpy(c).double()).view_as(p)
        for n in names:
            acc = np.zeros(x[n].numel(), np.float32)
            for c in cs[n]:
                acc = acc + c
            acc = acc / np.float32(K)
            x[n] = x[n] - torch.from_numpy(acc).double().view_as(x[n])
    return x


@pytest.mark.parametrize("spec", ["sign", "topk:0.1"])
def test_float64_parameters_match_float64_reference(hvd, spec):
    m = _mlp(torch.float64)
    o = _opt(hvd, m, spec, "saef", True, 500)
    _train(hvd, m, o, 0, 8, torch.float64)
    ref = _reference64(hvd.size(), spec, 8)
    with o.consensus_parameters():
        for n, p in m.named_parameters():
            rel = float((p.detach() - ref[n]).norm() / ref[n].norm())
            assert rel < 1e-6, (n, rel)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_overlap(hvd, dtype):
    ma, mb = _mlp(dtype), _mlp(dtype)
    oa = _opt(hvd, ma, "topk:0.1", "saef", True, 1000)
    ob = _opt(hvd, mb, "topk:0.1", "saef", False, 1 << 30)
    _train(hvd, ma, oa, 0, 5, dtype)
    _train(hvd, mb, ob, 0, 5, dtype)
    assert _same(_bits(ma), _bits(mb))
    assert all(p.dtype == dtype and torch.isfinite(p).all() for p in ma.parameters())
    e = oa.worker_errors()
    assert all(v.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
               for v in e.values())


def test_checkpoint_resume_while_overlapping(hvd):
    m = _mlp()
    o = _opt(hvd, m, "topk:0.1", "saef", True, 500, error_average_period=2, double_way=True)
    _train(hvd, m, o, 0, 3)
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "opt": o.state_dict()}, buf)
    _train(hvd, m, o, 3, 7)
    buf.seek(0)
    ck = torch.load(buf)
    m2 = _mlp(seed=1)
    m2.load_state_dict(ck["model"])
    o2 = _opt(hvd, m2, "topk:0.1", "saef", True, 500, error_average_period=2, double_way=True)
    o2.load_state_dict(ck["opt"])
    _train(hvd, m2, o2, 3, 7)
    assert _same(_bits(m), _bits(m2))


def test_nan_mid_backward_raises_everywhere_and_keeps_state(hvd):
    m = _mlp()
    o = _opt(hvd, m, "topk:0.1", "saef", True, 500, double_way=True)
    _train(hvd, m, o, 0, 3)
    ck = copy.deepcopy(o.state_dict())
    before = ck["terse"]["ef_state"]
    params = _bits(m)
    o.zero_grad()
    _loss(m, hvd.rank(), 3, poison=hvd.rank() == hvd.size() - 1).backward()
    with pytest.raises(terse.TerseError) as ei:
        o.step()
    assert ei.value.name == "ERR_NONFINITE"
    assert "bucket" in str(ei.value)
    assert o.state_dict()["terse"]["ef_state"] == before
    assert _same(_bits(m), params)  # back at x_{t+1/2}
    # the state goes on; the wrapped SGD's momentum took the NaN step: the caller restores it
    o.load_state_dict(ck)
    _train(hvd, m, o, 4, 5)
    assert o.state_dict()["terse"]["step"] == 4


def test_gradient_clipping_turns_overlap_off(hvd):
    ma, mb = _mlp(), _mlp()
    oa = _opt(hvd, ma, "topk:0.1", "ef", True, 500)
    ob = _opt(hvd, mb, "topk:0.1", "ef", False, 1 << 30)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for t in range(4):
            for m, o in ((ma, oa), (mb, ob)):
                o.zero_grad()
                _loss(m, hvd.rank(), t).backward()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 0.01)
                o.step()
    assert any("gradients changed" in str(x.message) for x in w)
    assert not oa._overlap
    assert _same(_bits(ma), _bits(mb))  # clipped from the first step on, as step at once


def test_synchronize_recipe(hvd):
    ma, mb = _mlp(), _mlp()
    oa = _opt(hvd, ma, "sign", "saef", True, 500)
    ob = _opt(hvd, mb, "sign", "saef", False, 1 << 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(3):
            for m, o in ((ma, oa), (mb, ob)):
                o.zero_grad()
                _loss(m, hvd.rank(), t).backward()
                o.synchronize()
                torch.nn.utils.clip_grad_norm_(m.parameters(), 0.01)
                with o.skip_synchronize():
                    o.step()
    assert _same(_bits(ma), _bits(mb))


def test_lbfgs_closure_runs_at_once(hvd):
    m = _mlp()
    with pytest.warns(UserWarning, match="not a per-parameter optimizer"):
        o = hvd.DistributedOptimizer(torch.optim.LBFGS(m.parameters(), lr=0.1, max_iter=3),
                                     named_parameters=m.named_parameters(),
                                     compression=hvd.Compression.topk(0.2), error_feedback="ef")

    def closure():
        o.zero_grad()
        loss = _loss(m, hvd.rank(), 0)
        loss.backward()
        return loss
    for _ in range(3):
        loss = o.step(closure)
        assert torch.isfinite(loss)
    assert o.state_dict()["terse"]["step"] == 3


def test_parameters_differ_across_ranks_refused(hvd):
    if hvd.size() == 1:
        pytest.skip("one rank")
    m = _mlp(seed=hvd.rank())  # forgot broadcast_parameters
    o = _opt(hvd, m, "topk:0.1", "ef", True, 500)
    o.zero_grad()
    _loss(m, hvd.rank(), 0).backward()
    with pytest.raises(terse.TerseError) as ei:
        o.step()
    assert ei.value.name == "ERR_MISMATCH" and "broadcast" in str(ei.value)
