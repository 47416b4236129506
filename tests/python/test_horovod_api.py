"""The Horovod API of terse.torch (run under mpirun with 2-4 ranks)."""
import pytest
import torch

import terse

INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def test_identity(hvd):
    assert hvd.is_initialized()
    n, r = hvd.size(), hvd.rank()
    assert 0 <= r < n and n >= 2
    assert 0 <= hvd.local_rank() < hvd.local_size() <= n
    assert 0 <= hvd.cross_rank() < hvd.cross_size()
    assert hvd.allgather_object(r) == list(range(n))


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_allreduce_int_exact(hvd, dtype):
    n, r = hvd.size(), hvd.rank()
    big = {torch.int64: 2 ** 40, torch.int32: 2 ** 20}.get(dtype, 1)
    x = torch.arange(7).to(dtype) + (big + r if dtype in (torch.int64, torch.int32) else r)
    s = hvd.allreduce(x, op=hvd.Sum, name="int.%s" % dtype)
    exp = sum((torch.arange(7).to(torch.int64) + (big + k if big > 1 else k)) for k in range(n))
    assert s.dtype == dtype
    assert torch.equal(s, exp.to(dtype))
    assert torch.equal(hvd.allreduce(x, op=hvd.Max), x - r + n - 1)
    assert torch.equal(hvd.allreduce(x, op=hvd.Min), x - r)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_allreduce_float(hvd, dtype):
    n, r = hvd.size(), hvd.rank()
    x = (torch.arange(10, dtype=torch.float64) * (r + 1)).to(dtype)
    avg = hvd.allreduce(x, name="f.%s" % dtype)
    exp = torch.arange(10, dtype=torch.float64) * (n + 1) / 2
    assert avg.dtype == dtype
    assert torch.allclose(avg.double(), exp, rtol=1e-2)
    # bit-identical on all ranks
    allv = hvd.allgather(avg.reshape(1, -1).float())
    assert all(torch.equal(allv[0], allv[k]) for k in range(n))
    p = hvd.allreduce(torch.full((3,), 2.0, dtype=dtype), op=hvd.Product)
    assert torch.equal(p.double(), torch.full((3,), 2.0 ** n, dtype=torch.float64))


def test_average_flag_and_scales(hvd):
    n = hvd.size()
    x = torch.ones(4)
    assert torch.equal(hvd.allreduce(x, average=False), torch.full((4,), float(n)))
    assert torch.equal(hvd.allreduce(x, average=True), x)
    y = hvd.allreduce(x, op=hvd.Sum, prescale_factor=2.0, postscale_factor=0.25)
    assert torch.allclose(y, torch.full((4,), n * 0.5))
    with pytest.raises(ValueError):
        hvd.allreduce(x, average=True, op=hvd.Sum)


def test_inplace_and_async(hvd):
    n, r = hvd.size(), hvd.rank()
    t = torch.full((5,), float(r))
    h = hvd.allreduce_async_(t, op=hvd.Sum, name="inplace")
    out = hvd.synchronize(h)
    assert out is t and torch.equal(t, torch.full((5,), float(sum(range(n)))))
    t2 = torch.ones(3)
    assert torch.equal(hvd.allreduce_(t2, op=hvd.Sum), torch.full((3,), float(n)))
    h = hvd.allreduce_async(torch.ones(2), name="a2")
    while not hvd.poll(h):
        pass
    assert torch.equal(hvd.synchronize(h), torch.ones(2))
    with pytest.raises(ValueError):
        hvd.synchronize(h)  # handle consumed


def test_matched_by_name_not_order(hvd):
    n, r = hvd.size(), hvd.rank()
    names = ["g.%d" % i for i in range(6)]
    order = names if r % 2 == 0 else list(reversed(names))
    hs = {nm: hvd.allreduce_async(torch.full((i + 1,), float(r + i)), name=nm, op=hvd.Sum)
          for i, nm in sorted(enumerate(names), key=lambda x: order.index(x[1]))}
    for i, nm in enumerate(names):
        exp = float(sum(k + i for k in range(n)))
        assert torch.equal(hvd.synchronize(hs[nm]), torch.full((i + 1,), exp))


def test_grouped(hvd):
    n = hvd.size()
    outs = hvd.grouped_allreduce([torch.ones(2), torch.ones(3, dtype=torch.int32)], op=hvd.Sum)
    assert torch.equal(outs[0], torch.full((2,), float(n)))
    assert torch.equal(outs[1], torch.full((3,), n, dtype=torch.int32))
    ts = [torch.ones(2), torch.ones(1)]
    hvd.grouped_allreduce_(ts, op=hvd.Sum)
    assert torch.equal(ts[1], torch.full((1,), float(n)))


def test_differentiable_allreduce(hvd):
    n = hvd.size()
    x = torch.ones(3, requires_grad=True)
    y = hvd.allreduce(x, op=hvd.Sum, name="diff")
    (y * 2).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0 * n))


def test_allgather_uneven_and_grad(hvd):
    n, r = hvd.size(), hvd.rank()
    x = torch.full((r + 1, 2), float(r), requires_grad=True)
    g = hvd.allgather(x, name="ag")
    assert g.shape == (n * (n + 1) // 2, 2)
    off = 0
    for k in range(n):
        assert torch.equal(g[off:off + k + 1].detach(), torch.full((k + 1, 2), float(k)))
        off += k + 1
    g.sum().backward()
    # Horovod's gradient: the output gradients averaged over the ranks, this rank's rows
    assert torch.equal(x.grad, torch.ones(r + 1, 2))
    i8 = hvd.allgather(torch.tensor([r], dtype=torch.int8))
    assert i8.tolist() == list(range(n))


def test_broadcast(hvd):
    n, r = hvd.size(), hvd.rank()
    root = n - 1
    t = torch.full((4,), float(r))
    assert torch.equal(hvd.broadcast(t, root), torch.full((4,), float(root)))
    assert torch.equal(t, torch.full((4,), float(r)))  # not in place
    hvd.broadcast_(t, root)
    assert torch.equal(t, torch.full((4,), float(root)))
    h = hvd.broadcast_async(torch.tensor([r], dtype=torch.int64), 0)
    assert hvd.synchronize(h).item() == 0
    with pytest.raises(ValueError):
        hvd.broadcast(t, n + 3)


def test_broadcast_objects_and_params(hvd):
    r = hvd.rank()
    obj = hvd.broadcast_object({"rank": r, "list": [1, 2, r]}, root_rank=0)
    assert obj == {"rank": 0, "list": [1, 2, 0]}
    torch.manual_seed(100 + r)
    model = torch.nn.Linear(4, 3)
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    w = hvd.allgather(model.weight.detach().reshape(1, -1))
    assert all(torch.equal(w[0], w[k]) for k in range(hvd.size()))
    opt = torch.optim.SGD(model.parameters(), lr=0.1 * (r + 1), momentum=0.9)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    buf = opt.state[model.weight]["momentum_buffer"]
    b = hvd.allgather(buf.reshape(1, -1))
    assert all(torch.equal(b[0], b[k]) for k in range(hvd.size()))


def test_mismatch_raises_on_every_rank(hvd):
    r = hvd.rank()
    with pytest.raises(terse.TerseError) as ei:
        hvd.allreduce(torch.ones(2 + r), name="mm.shape")
    assert ei.value.name == "ERR_MISMATCH" and "mm.shape" in ei.value.message
    with pytest.raises(terse.TerseError):
        hvd.allreduce(torch.ones(2, dtype=torch.float32 if r == 0 else torch.float64),
                      name="mm.dtype")
    with pytest.raises(terse.TerseError):
        hvd.broadcast(torch.ones(2), root_rank=r % 2, name="mm.root")
    # the engine is still healthy
    assert torch.equal(hvd.allreduce(torch.ones(1), name="after"), torch.ones(1))


def test_bad_input(hvd):
    with pytest.raises(TypeError):
        hvd.allreduce([1, 2, 3])
    with pytest.raises(TypeError):
        hvd.allreduce(torch.ones(2, dtype=torch.bool))
    with pytest.raises(NotImplementedError):
        hvd.allreduce(torch.ones(2), op=hvd.Adasum)
    with pytest.raises(terse.TerseError):
        terse.Compressor("topk:2.0")
    # A duplicate name while the first is in flight. Only rank 0 checks, before the others
    # announce "dup" (they wait for "dup.go"), so its first "dup" is surely still pending.
    if hvd.rank() == 0:
        h = hvd.allreduce_async(torch.ones(1), name="dup")
        with pytest.raises(ValueError):
            hvd.allreduce_async(torch.ones(1), name="dup")
    hvd.broadcast_(torch.zeros(1), 0, name="dup.go")
    if hvd.rank() != 0:
        h = hvd.allreduce_async(torch.ones(1), name="dup")
    assert torch.equal(hvd.synchronize(h), torch.ones(1))


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def test_distributed_optimizer_matches_average(hvd):
    n, r = hvd.size(), hvd.rank()
    model = _model()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters())
    assert isinstance(opt, torch.optim.SGD)
    assert set(opt._parameter_names.values()) == {n_ for n_, _ in model.named_parameters()}
    ref = _model()
    torch.manual_seed(1)
    xs = [torch.randn(3, 5) for _ in range(n)]
    model(xs[r]).pow(2).sum().backward()
    with pytest.raises(AssertionError):
        opt.zero_grad()  # allreduces pending
    opt.step()
    # reference: the average of every rank's gradient
    grads = [torch.autograd.grad(ref(x).pow(2).sum(), list(ref.parameters())) for x in xs]
    with torch.no_grad():
        for p, *gs in zip(ref.parameters(), *grads):
            p -= 0.1 * sum(gs) / n
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    opt.zero_grad()
    model(xs[r]).sum().backward()
    opt.synchronize()
    with opt.skip_synchronize():
        opt.step()


def test_distributed_optimizer_value_errors(hvd):
    model = _model()
    params = list(model.named_parameters())
    with pytest.raises(ValueError):
        hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                 named_parameters=[p for _, p in params])
    with pytest.raises(ValueError):
        hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                 named_parameters=[("same", p) for _, p in params])
    with pytest.raises(ValueError):
        hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                 named_parameters=params[:1])
    with pytest.raises(ValueError):
        hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                 named_parameters=params, error_feedback="bogus")


def test_fp16_compression_and_predivide(hvd):
    n = hvd.size()
    model = _model()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.0),
                                   named_parameters=model.named_parameters(),
                                   compression=hvd.Compression.fp16,
                                   gradient_predivide_factor=2.0)
    model(torch.ones(1, 5)).sum().backward()
    g_local = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, g in zip(model.parameters(), g_local):
        assert torch.allclose(p.grad, g, rtol=1e-2, atol=1e-3)  # all ranks had the same input
