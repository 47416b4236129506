"""Compressed DistributedOptimizer: EF/SAEF trajectories against an in-process reference of
Algorithm 1, consensus, checkpoint/resume, convergence, non-finite input (mpirun, 2-4 ranks)."""
import copy
import io

import numpy as np
import pytest
import torch

import terse

STEPS = 6
LR, MOM = 0.1, 0.9


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _batch(k, t):
    g = torch.Generator().manual_seed(1000 * k + t)
    return torch.randn(4, 6, generator=g), torch.randint(0, 3, (4,), generator=g)


def _loss(model, k, t):
    x, y = _batch(k, t)
    return torch.nn.functional.cross_entropy(model(x), y)


def _dist(hvd, spec, ef, period=None, double_way=False, model=None, **kw):
    model = model or _model()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=LR, momentum=MOM),
                                   named_parameters=model.named_parameters(),
                                   compression=hvd.Compression.terse(spec), error_feedback=ef,
                                   error_average_period=period, double_way=double_way, **kw)
    return model, opt


def _train(hvd, model, opt, t0, t1):
    for t in range(t0, t1):
        opt.zero_grad()
        _loss(model, hvd.rank(), t).backward()
        opt.step()


def _reference(K, spec, ef, period, double_way, steps):
    """Algorithm 1 (model-difference form) for K simulated workers in one process: errors
    averaged at the start of steps t with (t + 1) % period == 0 (include/terse/ef.h); the
    server compresses e_s + avg with the tensor's own id."""
    comp = terse.Compressor(spec)
    models = [_model() for _ in range(K)]
    opts = [torch.optim.SGD(m.parameters(), lr=LR, momentum=MOM) for m in models]
    names = [n for n, _ in models[0].named_parameters()]
    x = {n: p.detach().clone() for n, p in models[0].named_parameters()}
    e = [{n: torch.zeros_like(x[n]) for n in names} for _ in range(K)]
    sent = [0] * K  # bytes of every worker's terse_compress messages
    es = {n: np.zeros(x[n].numel(), np.float32) for n in names}
    for t in range(steps):
        if ef and period and (t + 1) % period == 0:
            for n in names:
                avg = sum(e[k][n] for k in range(K)) / K
                for k in range(K):
                    e[k][n] = avg.clone()
        cs = {n: [] for n in names}
        for k in range(K):
            with torch.no_grad():
                for n, p in models[k].named_parameters():
                    p.copy_(x[n] - e[k][n] if ef == "saef" else x[n])
            xh = {n: p.detach().clone() for n, p in models[k].named_parameters()}
            opts[k].zero_grad()
            _loss(models[k], k, t).backward()
            opts[k].step()
            for n, p in models[k].named_parameters():
                d = (xh[n] - p.detach()).reshape(-1)
                if ef:
                    d = d + e[k][n].reshape(-1)
                tid = terse.tensor_id_of("terse.opt." + n)
                wire, c, rem = comp.compress(d.numpy(), tid, t, dense=True, remainder=True)
                sent[k] += len(wire)
                cs[n].append(c)
                if ef:
                    e[k][n] = torch.from_numpy(rem).view_as(p)
        for n in names:
            acc = np.zeros(x[n].numel(), np.float32)
            for c in cs[n]:
                acc += c
            acc /= np.float32(K)
            if double_way:
                s = acc + es[n]
                tid = terse.tensor_id_of("terse.opt." + n)
                _, acc, es[n] = comp.compress(s, tid, t, dense=True, remainder=True)
            x[n] = x[n] - torch.from_numpy(acc).view_as(x[n])
    if ef and period and (steps + 1) % period == 0:  # the next step's averaging has run
        for n in names:
            avg = sum(e[k][n] for k in range(K)) / K
            for k in range(K):
                e[k][n] = avg.clone()
    return x, e, sent


@pytest.mark.parametrize("spec,ef,period,double_way", [
    ("topk:0.2", "ef", None, False),
    ("topk:0.2", "saef", None, False),
    ("topk:0.2", "saef", 2, False),
    ("sign", "saef", None, True),
    ("randk:0.5", None, None, False),
])
def test_trajectory_matches_reference(hvd, spec, ef, period, double_way):
    K, r = hvd.size(), hvd.rank()
    model, opt = _dist(hvd, spec, ef, period, double_way)
    opt.exact_bytes_sent = True
    _train(hvd, model, opt, 0, STEPS)
    x_ref, e_ref, sent_ref = _reference(K, spec, ef, period, double_way, STEPS)
    exact = period is None
    with opt.consensus_parameters():
        for n, p in model.named_parameters():
            if exact:
                assert torch.equal(p.detach(), x_ref[n]), n
            else:
                assert torch.allclose(p.detach(), x_ref[n], atol=1e-6), n
            allp = hvd.allgather(p.detach().reshape(1, -1))
            assert all(torch.equal(allp[0], allp[k]) for k in range(K))  # consensus identical
    errs = opt.worker_errors()
    for n, p in model.named_parameters():
        if ef:
            e = errs[n]
            assert torch.allclose(e, e_ref[r][n], atol=1e-6), n
        if ef == "saef":  # between steps the parameters hold x_t - e_k
            assert torch.allclose(p.detach(), x_ref[n] - e_ref[r][n], atol=1e-6)
    if exact:
        assert opt.bytes_sent == sent_ref[r]
    assert opt.bytes_sent > 0
    # the transport's count: every message reaches at least one peer when there are peers
    assert (opt.wire_bytes_sent > 0) == (K > 1)


def test_checkpoint_resume_equal(hvd):
    model, opt = _dist(hvd, "topk:0.2", "saef", 3)
    _train(hvd, model, opt, 0, 3)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    _train(hvd, model, opt, 3, 7)
    buf.seek(0)
    ck = torch.load(buf)
    model2 = _model()
    model2.load_state_dict(ck["model"])
    model2, opt2 = _dist(hvd, "topk:0.2", "saef", 3, model=model2)
    opt2.load_state_dict(ck["opt"])
    _train(hvd, model2, opt2, 3, 7)
    for (n, p), (_, q) in zip(model.named_parameters(), model2.named_parameters()):
        assert torch.equal(p, q), n
    with opt.consensus_parameters(), opt2.consensus_parameters():
        for p, q in zip(model.parameters(), model2.parameters()):
            assert torch.equal(p, q)


def test_compressed_training_converges(hvd):
    torch.manual_seed(5)
    w_true = torch.randn(20, 1)
    model = torch.nn.Linear(20, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5),
                                   named_parameters=model.named_parameters(),
                                   compression=hvd.Compression.topk(0.1), error_feedback="saef")
    g = torch.Generator().manual_seed(hvd.rank())
    for t in range(150):
        x = torch.randn(16, 20, generator=g)
        opt.zero_grad()
        loss = (model(x) - x @ w_true).pow(2).mean()
        loss.backward()
        opt.step()
    with opt.consensus_parameters():
        err = (model.weight.detach().t() - w_true).norm() / w_true.norm()
    assert err < 0.05, float(err)


@pytest.mark.parametrize("ef", ["ef", "saef"])
def test_nonfinite_raises_on_every_rank(hvd, ef):
    # the NaN is put into a gradient after backward: the updates must run in step()
    model, opt = _dist(hvd, "topk:0.2", ef, 2, overlap=False)
    _train(hvd, model, opt, 0, 2)  # some error in the state
    before = opt.state_dict()["terse"]["ef_state"]
    ck = copy.deepcopy(opt.state_dict())
    params = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    _loss(model, hvd.rank(), 2).backward()
    if hvd.rank() == 0:
        next(model.parameters()).grad[0, 0] = float("nan")
    with pytest.raises(terse.TerseError) as ei:
        opt.step()
    assert ei.value.name == "ERR_NONFINITE"
    assert "exchange" in str(ei.value) and "rank" in ei.value.message  # names who failed
    assert opt.state_dict()["terse"]["ef_state"] == before  # the C state did not move
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
    assert torch.equal(hvd.allreduce(torch.ones(1), name="after.nan." + ef), torch.ones(1))
    # the wrapped SGD's momentum took the NaN step: restore it from the checkpoint, go on
    opt.load_state_dict(ck)
    _train(hvd, model, opt, 2, 3)
    assert opt.state_dict()["terse"]["step"] == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_options(hvd):
    model = _model()
    with pytest.raises(ValueError):
        hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                 named_parameters=model.named_parameters(),
                                 compression=hvd.Compression.topk(0.1), op=hvd.Sum)
    with pytest.raises(ValueError):
        hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                 named_parameters=model.named_parameters(),
                                 compression=hvd.Compression.topk(0.1), error_feedback="ef",
                                 error_average_period=0)
    with pytest.raises(terse.TerseError):
        hvd.Compression.topk(0.0)
    # a checkpoint of another configuration is refused, and changes nothing
    m1, o1 = _dist(hvd, "topk:0.2", "saef", 3)
    m2, o2 = _dist(hvd, "topk:0.3", "saef", 3)
    before = o2.state_dict()["terse"]["ef_state"]
    with pytest.raises(terse.TerseError) as ei:
        o2.load_state_dict(o1.state_dict())
    assert ei.value.name == "ERR_INVALID_ARG"
    assert o2.state_dict()["terse"]["ef_state"] == before


def test_compressed_allreduce_function(hvd):
    K, r = hvd.size(), hvd.rank()
    x = torch.zeros(10)
    x[r] = 1.0 + r
    y = hvd.allreduce(x, compression=hvd.Compression.topk(0.1), name="c1")
    exp = torch.zeros(10)
    for k in range(K):
        exp[k] = (1.0 + k) / K
    assert torch.allclose(y, exp)


def test_matches_numpy_level_c_call(hvd):
    """terse.torch's compressed allreduce (engine, fused C calls) equals the numpy-level C
    call on the same communicator, bit for bit, and the async call returns at once."""
    K, r = hvd.size(), hvd.rank()
    g = torch.Generator().manual_seed(7 + r)
    xs = [torch.randn(n, generator=g) for n in (17, 5, 64)]
    hs = [hvd.compressed_allreduce_async(x, hvd.Compression.terse("topk:0.2,block=8"),
                                         name="np.cmp.%d" % j, step=3)
          for j, x in enumerate(xs)]
    got = [hvd.synchronize(h) for h in hs]
    comm = hvd.mpi_ops._eng().comm
    comp = terse.Compressor("topk:0.2,block=8")
    ids = [terse.tensor_id_of("np.cmp.%d" % j) for j in range(3)]
    # run the numpy-level call inside the engine thread, where the communicator is driven
    h = hvd.mpi_ops._call_async("np.cmp.ref", ("np.cmp.ref",), lambda: comm.compressed_allreduce(
        [x.numpy() for x in xs], comp, ids, 3))
    ref = hvd.synchronize(h)
    for a, b in zip(got, ref):
        assert np.array_equal(a.numpy().view(np.uint32), b.view(np.uint32))
    # rank 0's call returns while its collective cannot run yet: the other ranks submit theirs
    # only after "async.go", which rank 0 sends after polling
    comp = hvd.Compression.topk(0.5)
    if r == 0:
        h = hvd.compressed_allreduce_async(torch.ones(8), comp, name="async.probe")
        assert K == 1 or not hvd.poll(h)
    hvd.broadcast_(torch.zeros(1), 0, name="async.go")
    if r != 0:
        h = hvd.compressed_allreduce_async(torch.ones(8), comp, name="async.probe")
    assert torch.equal(hvd.synchronize(h), torch.tensor([1.0] * 4 + [0.0] * 4))
