"""Horovod 0.28's PyTorch API in terse.torch beyond the basics (mpirun, 2-4 ranks): process
sets, alltoall, reducescatter, grouped allgather/reducescatter, join, sparse gradients,
barrier, integer pre/postscale, gradients, and failures that raise on every rank."""
import pytest
import torch

import terse

FLOATS = [torch.float32, torch.float64]
NUMERIC = [torch.int32, torch.int64, torch.float16, torch.float32, torch.float64]


def _everywhere(hvd, value):
    """The same value on every rank (checked through allgather_object)."""
    got = hvd.allgather_object(value, name="everywhere.%s" % type(value).__name__)
    assert all(g == got[0] for g in got), got
    return got[0]


# -- process sets ------------------------------------------------------------------------------

def test_process_set_collectives(hvd):
    n, r = hvd.size(), hvd.rank()
    even = hvd.add_process_set(list(range(0, n, 2)))
    odd = hvd.add_process_set(list(range(1, n, 2)))
    try:
        mine, other = (even, odd) if r % 2 == 0 else (odd, even)
        assert mine.included() and not other.included()
        assert mine.size() == len(mine.ranks) and mine.rank() == mine.ranks.index(r)
        assert other.rank() == -1
        s = hvd.allreduce(torch.tensor([float(r)]), op=hvd.Sum, process_set=mine)
        assert s.item() == float(sum(mine.ranks))
        g = hvd.allgather(torch.tensor([r]), process_set=mine)
        assert g.tolist() == mine.ranks
        root = mine.ranks[-1]  # roots are global ranks
        b = hvd.broadcast(torch.tensor([r]), root_rank=root, process_set=mine)
        assert b.item() == root
        assert hvd.allgather_object(r, process_set=mine) == mine.ranks
        assert hvd.broadcast_object("from %d" % root, root, process_set=mine) == "from %d" % root
        with pytest.raises(ValueError):
            hvd.allreduce(torch.ones(1), process_set=other)  # not a member
        with pytest.raises(ValueError):
            hvd.broadcast(torch.ones(1), root_rank=other.ranks[0], process_set=mine)
        hvd.barrier(process_set=mine)
    finally:
        assert hvd.remove_process_set(odd) and hvd.remove_process_set(even)
    assert odd.process_set_id is None and not hvd.remove_process_set(hvd.global_process_set)
    with pytest.raises(ValueError):
        hvd.allreduce(torch.ones(1), process_set=even)  # removed


def test_process_set_odd_size(hvd):
    n, r = hvd.size(), hvd.rank()
    ranks = [0, 2] if n >= 3 else [0]
    ps = hvd.add_process_set(ranks)
    try:
        if r in ranks:
            x = torch.arange(5, dtype=torch.float64) * (r + 1)
            avg = hvd.allreduce(x, process_set=ps)
            exp = torch.arange(5, dtype=torch.float64) * sum(q + 1 for q in ranks) / len(ranks)
            assert torch.allclose(avg, exp)
            rs = hvd.reducescatter(torch.ones(7, 2), op=hvd.Sum, process_set=ps)
            rows = [7 // len(ranks) + (1 if i < 7 % len(ranks) else 0) for i in range(len(ranks))]
            assert rs.shape == (rows[ps.rank()], 2) and torch.all(rs == len(ranks))
        else:
            assert ps.included() is False
    finally:
        hvd.remove_process_set(ps)


def test_process_sets_do_not_block_each_other(hvd):
    n, r = hvd.size(), hvd.rank()
    a = hvd.add_process_set(list(range(n - 1)))  # overlapping sets (n > 2)
    b = hvd.add_process_set(list(range(1, n)))
    try:
        # The same name on both sets and on the global set at once, submitted in an order
        # that differs by rank: matched per set, nothing waits for another set.
        sets = [s for s in (a, b) if s.included()] + [hvd.global_process_set]
        if r % 2:
            sets = sets[::-1]
        hs = [(s, hvd.allreduce_async(torch.tensor([1.0]), name="same", op=hvd.Sum,
                                      process_set=s)) for s in sets]
        for s, h in hs:
            assert hvd.synchronize(h).item() == float(len(s.ranks))
        # a set's collective completes while another set's is still in flight on this rank
        if n > 2:
            if b.included():
                pending = hvd.allreduce_async(torch.ones(1), name="late", process_set=b)
            if a.included():
                assert hvd.allreduce(torch.ones(1), op=hvd.Sum, process_set=a).item() == n - 1
            if b.included():
                hvd.synchronize(pending)
    finally:
        hvd.remove_process_set(b)
        hvd.remove_process_set(a)


def test_process_set_registry_errors(hvd):
    n = hvd.size()
    ps = hvd.add_process_set([n - 1])
    try:
        with pytest.raises(ValueError):
            hvd.add_process_set([n - 1])  # same ranks
        with pytest.raises(ValueError):
            hvd.add_process_set(list(range(n)))  # the global set's ranks
        with pytest.raises(ValueError):
            hvd.add_process_set([0, n])  # out of range
        with pytest.raises(ValueError):
            hvd.ProcessSet([0, 0])
    finally:
        hvd.remove_process_set(ps)


def test_process_sets_at_init_from_mpi_comm(hvd):
    from mpi4py import MPI

    import terse.torch.process_sets as process_sets
    r = hvd.rank()
    comm = MPI.COMM_WORLD.Split(r % 2, r)
    ps = hvd.ProcessSet(comm)
    process_sets.register_at_init([ps])  # what hvd.init(process_sets=[...]) does
    try:
        assert ps.ranks == [q for q in range(hvd.size()) if q % 2 == r % 2]
        assert hvd.allgather(torch.tensor([r]), process_set=ps).tolist() == ps.ranks
    finally:
        # every rank registered both parities (same ids everywhere); remove both, in id order
        for pid in sorted(process_sets._sets):
            if pid:
                hvd.remove_process_set(process_sets._sets[pid][0])
        comm.Free()


def test_distributed_optimizer_on_process_set(hvd):
    n, r = hvd.size(), hvd.rank()
    ranks = [0, n - 1] if n > 2 else [1]
    ps = hvd.add_process_set(ranks)
    try:
        torch.manual_seed(3)
        model = torch.nn.Linear(3, 2)
        opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=1.0),
                                       named_parameters=model.named_parameters(),
                                       process_set=ps)
        w0 = model.weight.detach().clone()
        (model(torch.ones(1, 3)) * (r + 1)).sum().backward()
        opt.step()
        scale = sum(q + 1 for q in ranks) / len(ranks) if r in ranks else r + 1
        assert torch.allclose(model.weight, w0 - scale * torch.ones(2, 3))
    finally:
        hvd.remove_process_set(ps)


# -- alltoall ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", NUMERIC)
def test_alltoall_equal_splits(hvd, dtype):
    n, r = hvd.size(), hvd.rank()
    x = (torch.arange(2 * n * 3).reshape(2 * n, 3) + 100 * r).to(dtype)
    out = hvd.alltoall(x, name="a2a.eq.%s" % dtype)
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == (2 * n, 3)
    for q in range(n):
        exp = (torch.arange(2 * n * 3).reshape(2 * n, 3) + 100 * q)[2 * r:2 * r + 2].to(dtype)
        assert torch.equal(out[2 * q:2 * q + 2], exp)


def test_alltoall_splits_and_received(hvd):
    n, r = hvd.size(), hvd.rank()
    splits = [(r + q) % 3 for q in range(n)]  # rank r sends (r+q)%3 rows to rank q
    x = torch.full((sum(splits), 2), float(r))
    out, received = hvd.alltoall(x, splits=torch.tensor(splits, dtype=torch.int32))
    assert received.dtype == torch.int32
    assert received.tolist() == [(q + r) % 3 for q in range(n)]
    exp = torch.cat([torch.full(((q + r) % 3, 2), float(q)) for q in range(n)])
    assert torch.equal(out, exp)
    h = hvd.alltoall_async(x, splits=splits)  # a list works too
    out2, rec2 = hvd.synchronize(h)
    assert torch.equal(out2, exp) and rec2.tolist() == received.tolist()


def test_alltoall_grad(hvd):
    n, r = hvd.size(), hvd.rank()
    splits = [q + 1 for q in range(n)]
    x = torch.full((sum(splits), 3), float(r), requires_grad=True)
    out, received = hvd.alltoall(x, splits=splits)
    (out * (r + 1)).sum().backward()
    # row i of x went to the rank q whose block holds it; its gradient is q + 1
    exp = torch.cat([torch.full((q + 1, 3), float(q + 1)) for q in range(n)])
    assert torch.equal(x.grad, exp)


def test_alltoall_errors(hvd):
    n, r = hvd.size(), hvd.rank()
    with pytest.raises(ValueError):
        hvd.alltoall(torch.ones(n + 1))  # not divisible, no splits
    with pytest.raises(ValueError):
        hvd.alltoall(torch.ones(n), splits=[1] * (n + 1))  # one split per rank
    with pytest.raises(ValueError):
        hvd.alltoall(torch.ones(n), splits=[2] * n)  # do not add up
    with pytest.raises(ValueError):
        hvd.alltoall(torch.ones(n), splits=torch.ones(n))  # float splits
    with pytest.raises(terse.TerseError) as ei:  # dtypes differ across ranks
        hvd.alltoall(torch.ones(n, dtype=torch.float32 if r == 0 else torch.int32),
                     name="a2a.type")
    assert ei.value.name == "ERR_MISMATCH"
    with pytest.raises(terse.TerseError):  # ranks (ndim) differ across ranks
        hvd.alltoall(torch.ones((n, 2) if r == 0 else (n, 2, 1)), name="a2a.rank")


def test_alltoall_on_process_set(hvd):
    n, r = hvd.size(), hvd.rank()
    ps = hvd.add_process_set([q for q in range(n) if q != 1])
    try:
        if ps.included():
            k = ps.size()
            out = hvd.alltoall(torch.full((k,), float(r)), process_set=ps)
            assert out.tolist() == [float(q) for q in ps.ranks]
    finally:
        hvd.remove_process_set(ps)


# -- reducescatter -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("op", ["Sum", "Average"])
def test_reducescatter(hvd, dtype, op):
    n, r = hvd.size(), hvd.rank()
    rows = 2 * n + 1  # uneven: the first rank gets one more row
    x = (torch.arange(rows * 3).reshape(rows, 3) * (r + 1)).to(dtype)
    out = hvd.reducescatter(x, op=getattr(hvd, op), name="rs.%s.%s" % (op, dtype))
    counts = [rows // n + (1 if q < rows % n else 0) for q in range(n)]
    lo = sum(counts[:r])
    full = torch.arange(rows * 3).reshape(rows, 3).double() * (n * (n + 1) // 2)
    if op == "Average":
        full = full / n
    assert out.dtype == dtype and out.shape == (counts[r], 3)
    exp = full[lo:lo + counts[r]]
    if dtype.is_floating_point:
        assert torch.allclose(out.double(), exp, rtol=1e-3)
    else:
        assert torch.equal(out, hvd.allreduce(x, op=getattr(hvd, op))[lo:lo + counts[r]])


def test_reducescatter_scaling(hvd):
    n, r = hvd.size(), hvd.rank()
    x = torch.arange(2 * n, dtype=torch.int32) + r
    out = hvd.reducescatter(x, op=hvd.Sum, prescale_factor=0.5, postscale_factor=3.0)
    pre = ((torch.arange(2 * n).double()[None, :] + torch.arange(n).double()[:, None]) * 0.5)
    exp = (pre.to(torch.int32).sum(0).double() * 3.0).to(torch.int32)[2 * r:2 * r + 2]
    assert out.dtype == torch.int32 and torch.equal(out, exp)
    y = hvd.reducescatter(torch.ones(n, 2), op=hvd.Average, prescale_factor=2.0,
                          postscale_factor=0.25)
    assert torch.allclose(y, torch.full((1, 2), 0.5))


def test_reducescatter_grad(hvd):
    n, r = hvd.size(), hvd.rank()
    for op, div in ((hvd.Sum, 1.0), (hvd.Average, float(n))):
        x = torch.ones(n + 1, 2, requires_grad=True)
        y = hvd.reducescatter(x, op=op, prescale_factor=2.0)
        (y * (r + 1)).sum().backward()
        # row i of x reaches the rank holding it in the output, whose weight is rank + 1
        owners = [q for q in range(n) for _ in range((n + 1) // n + (1 if q < (n + 1) % n
                                                                    else 0))]
        exp = torch.tensor([2.0 * (q + 1) / div for q in owners])[:, None].expand(n + 1, 2)
        assert torch.allclose(x.grad, exp)


def test_reducescatter_async_fused(hvd):
    n = hvd.size()
    hs = [(d, hvd.reducescatter_async(torch.ones(n * d, d), op=hvd.Sum, name="rsf.%d" % d))
          for d in range(1, 6)]
    for d, h in hs:
        assert torch.equal(hvd.synchronize(h), torch.full((d, d), float(n)))


def test_reducescatter_errors(hvd):
    r = hvd.rank()
    with pytest.raises(terse.TerseError):
        hvd.reducescatter(torch.tensor(1.0))  # scalar
    with pytest.raises(NotImplementedError):
        hvd.reducescatter(torch.ones(4), op=hvd.Adasum)
    with pytest.raises(NotImplementedError):
        hvd.grouped_reducescatter([torch.ones(4)], op=hvd.Adasum)
    with pytest.raises(terse.TerseError) as ei:
        hvd.reducescatter(torch.ones(4, dtype=torch.float32 if r == 0 else torch.float64),
                          name="rs.type")
    assert ei.value.name == "ERR_MISMATCH"
    if r == 0:  # a duplicate name while the first is in flight (the others wait for "go")
        h = hvd.reducescatter_async(torch.ones(4), name="rs.dup")
        with pytest.raises(ValueError):
            hvd.reducescatter_async(torch.ones(4), name="rs.dup")
    hvd.broadcast_(torch.zeros(1), 0, name="rs.dup.go")
    if r != 0:
        h = hvd.reducescatter_async(torch.ones(4), name="rs.dup")
    hvd.synchronize(h)


def test_grouped_reducescatter_and_grad(hvd):
    n, r = hvd.size(), hvd.rank()
    xs = [torch.full((n * 2, 3), float(r + 1), requires_grad=True),
          torch.full((n,), float(r + 1), requires_grad=True)]
    ys = hvd.grouped_reducescatter(xs, op=hvd.Sum)
    tot = float(n * (n + 1) // 2)
    assert torch.equal(ys[0].detach(), torch.full((2, 3), tot))
    assert torch.equal(ys[1].detach(), torch.full((1,), tot))
    (ys[0].sum() + 2 * ys[1].sum()).backward()
    assert torch.equal(xs[0].grad, torch.ones(n * 2, 3))
    assert torch.equal(xs[1].grad, torch.full((n,), 2.0))
    h = hvd.grouped_reducescatter_async([torch.ones(n), torch.ones(2 * n)], op=hvd.Average)
    a, b = hvd.synchronize(h)
    assert torch.equal(a, torch.ones(1)) and torch.equal(b, torch.ones(2))


# -- grouped allgather, allgather gradient ----------------------------------------------------

def test_grouped_allgather_and_grad(hvd):
    n, r = hvd.size(), hvd.rank()
    xs = [torch.full((r + 1, 2), float(r), requires_grad=True),
          torch.full((1,), float(r), requires_grad=True)]
    gs = hvd.grouped_allgather(xs)
    assert gs[0].shape == (n * (n + 1) // 2, 2) and gs[1].tolist() == [float(q)
                                                                        for q in range(n)]
    (gs[0].sum() * 3 + gs[1].sum()).backward()
    assert torch.equal(xs[0].grad, torch.full((r + 1, 2), 3.0))
    assert torch.equal(xs[1].grad, torch.ones(1))
    out = hvd.synchronize(hvd.grouped_allgather_async([torch.tensor([r]), torch.tensor([[r]])]))
    assert out[0].tolist() == list(range(n)) and out[1].shape == (n, 1)


def test_allgather_grad_on_process_set(hvd):
    n = hvd.size()
    ps = hvd.add_process_set(list(range(1, n)))
    try:
        if ps.included():
            x = torch.ones(2, requires_grad=True)
            g = hvd.allgather(x, process_set=ps)
            (g * torch.arange(g.numel(), dtype=torch.float32)).sum().backward()
            i = ps.rank()
            assert torch.equal(x.grad, torch.tensor([2.0 * i, 2.0 * i + 1]))
    finally:
        hvd.remove_process_set(ps)


# -- join --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int32, torch.float32, torch.float64])
def test_join_allreduce_uneven(hvd, dtype):
    n, r = hvd.size(), hvd.rank()
    for step in range(r + 1):  # rank r has r + 1 batches
        x = torch.full((3, 2), float(r + 1)).to(dtype)
        s = hvd.allreduce(x, op=hvd.Sum, name="join.sum.%d" % step)
        exp = sum(q + 1 for q in range(n) if q >= step)
        assert torch.equal(s, torch.full((3, 2), float(exp)).to(dtype))
        hs = hvd.grouped_allreduce_async([torch.ones(5, dtype=dtype), torch.ones(1)],
                                         op=hvd.Average, name="join.avg.%d" % step)
        a, b = hvd.synchronize(hs)  # joined ranks contribute zeros; divided by all ranks
        assert torch.allclose(b, torch.full((1,), (n - step) / n))
    assert hvd.join() == n - 1  # the rank with the most batches joins last
    assert hvd.allreduce(torch.ones(1), op=hvd.Sum).item() == n  # everyone is back


def test_join_allgather_and_broadcast(hvd):
    n, r = hvd.size(), hvd.rank()
    if r == 0:
        last = hvd.join()
    else:
        g = hvd.allgather(torch.full((r, 2), float(r)), name="join.ag")
        assert g.shape == (sum(range(1, n)), 2)  # rank 0 gathered no rows
        b = hvd.broadcast(torch.tensor([r]), root_rank=1, name="join.bc")
        assert b.item() == 1
        with pytest.raises(terse.TerseError):  # the root has joined
            hvd.broadcast(torch.tensor([r]), root_rank=0, name="join.bc0")
        with pytest.raises(terse.TerseError):  # alltoall needs every rank
            hvd.alltoall(torch.ones(n), name="join.a2a")
        last = hvd.join()
    assert last != 0 and _everywhere(hvd, last) == last


# -- sparse gradients --------------------------------------------------------------------------

def test_sparse_allreduce_async(hvd):
    r = hvd.rank()
    torch.manual_seed(10 + r)
    ts = []
    for d0 in (5, 17, 1):
        t = torch.rand(d0, 4)
        t[t < 0.7] = 0
        ts.append(t.to_sparse())
    dense = [hvd.allreduce(t.to_dense(), name="sp.dense.%d" % i) for i, t in enumerate(ts)]
    handles = [hvd.sparse_allreduce_async(t, name="sp.%d" % i, op=hvd.Average)
               for i, t in enumerate(ts)]
    for d, h in zip(dense, handles):
        s = h()
        assert s.is_sparse and torch.allclose(s.to_dense(), d, atol=1e-6)


@pytest.mark.parametrize("sparse_as_dense", [False, True])
def test_sparse_embedding_optimizer(hvd, sparse_as_dense):
    n, r = hvd.size(), hvd.rank()
    inputs = [torch.tensor([[q % 10, (3 * q + 1) % 10, 4]]) for q in range(n)]

    def make():
        torch.manual_seed(5)
        return torch.nn.Embedding(10, 3, sparse=True)
    model, ref = make(), make()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.5),
                                   named_parameters=model.named_parameters(),
                                   sparse_as_dense=sparse_as_dense)
    model(inputs[r]).pow(2).sum().backward()
    opt.step()
    assert model.weight.grad.is_sparse
    # reference: the average of every rank's (dense) gradient
    grads = [torch.autograd.grad(ref(x).pow(2).sum(), ref.weight)[0].to_dense() for x in inputs]
    with torch.no_grad():
        ref.weight -= 0.5 * sum(grads) / n
    assert torch.allclose(model.weight, ref.weight, atol=1e-6)
    # an optimizer that takes sparse gradients only (a new model: the SGD one's hooks stay)
    model = make()
    adam = hvd.DistributedOptimizer(torch.optim.SparseAdam(list(model.parameters()), lr=0.1),
                                    named_parameters=model.named_parameters(),
                                    sparse_as_dense=sparse_as_dense)
    adam.zero_grad()
    model(inputs[r]).sum().backward()
    adam.step()
    w = hvd.allgather(model.weight.detach()[None])
    assert all(torch.equal(w[0], w[q]) for q in range(n))


# -- barrier, scaling, broadcast of state ------------------------------------------------------

def test_barrier_global_and_set(hvd):
    n, r = hvd.size(), hvd.rank()
    hvd.barrier()
    ps = hvd.add_process_set([n - 1])
    try:
        if r == n - 1:
            hvd.barrier(process_set=ps)  # a one-rank set does not wait for anybody
        else:
            with pytest.raises(ValueError):
                hvd.barrier(process_set=ps)
    finally:
        hvd.remove_process_set(ps)
    hvd.barrier(process_set=hvd.global_process_set)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.int64, torch.uint8,
                                   torch.float16, torch.bfloat16, torch.float32])
def test_allreduce_int_and_half_scaling(hvd, dtype):
    n, r = hvd.size(), hvd.rank()
    x = (torch.arange(9) % 4 + 1 + r).to(dtype)
    out = hvd.allreduce(x, op=hvd.Sum, prescale_factor=0.7, postscale_factor=1.5,
                        name="scale.%s" % dtype)
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else torch.float64
    if dtype in (torch.float32,):
        work = torch.float32
    pre = [((torch.arange(9) % 4 + 1 + q).to(dtype).to(work) * 0.7).to(dtype) for q in range(n)]
    summed = sum(p.to(torch.float64) for p in pre).to(dtype)
    exp = (summed.to(work) * 1.5).to(dtype)
    assert out.dtype == dtype
    assert torch.allclose(out.double(), exp.double(), rtol=1e-2 if work != torch.float64 else 0)


def test_broadcast_state_without_grad(hvd):
    r = hvd.rank()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.index = torch.nn.Parameter(torch.tensor([1, 3], dtype=torch.int32),
                                            requires_grad=False)
            self.w = torch.nn.Parameter(torch.rand(4) + r)

        def forward(self, x):
            return self.w.index_select(0, self.index.long()) * x
    model = Net()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                                   named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_parameters(list((n, p.grad) for n, p in model.named_parameters()), 0)
    hvd.broadcast_optimizer_state(opt, root_rank=0)
    assert model.index.grad is None
    g = model.w.grad
    assert torch.equal(hvd.broadcast(g, root_rank=0), g)
    buf = opt.state[model.w]["momentum_buffer"]
    assert torch.equal(hvd.broadcast(buf, root_rank=0), buf)


# -- failures never hang -----------------------------------------------------------------------

def test_failure_on_one_rank_raises_on_the_others(hvd):
    r = hvd.rank()
    if r == 0:
        # rank 0 fails before its collective (an assertion in user code, say) ...
        with pytest.raises(ValueError):
            hvd.alltoall(torch.ones(3), splits=[1, 1, 1, 1, 1][:hvd.size() + 1])
        # ... and then waits for a collective nobody else reaches: every rank is blocked
        with pytest.raises(terse.TerseError) as ei:
            hvd.allreduce(torch.ones(1), name="fail.next")
    else:
        with pytest.raises(terse.TerseError) as ei:
            hvd.allreduce(torch.ones(1), name="fail.only.others")
        assert "fail.only.others" in ei.value.message
    assert ei.value.name == "ERR_MISMATCH"
    # everyone recovered
    assert hvd.allreduce(torch.ones(1), op=hvd.Sum, name="fail.after").item() == hvd.size()
