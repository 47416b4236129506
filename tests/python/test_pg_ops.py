"""Every operation of the "terse" process group against a reference (exact values or the same
call on a gloo group), mismatches across ranks, Work.wait(timeout), CUDA refused."""
import datetime

import pytest
import torch
import torch.distributed as dist

from pg_util import init_terse

R = dist.ReduceOp


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    rank, size = init_terse()
    gloo = dist.new_group(backend="gloo")
    yield rank, size, gloo
    dist.destroy_process_group()


def data(rank, n, dtype, salt=0):
    g = torch.Generator().manual_seed(1000 * rank + salt)
    if dtype.is_floating_point:
        return (torch.randn(n, generator=g) * 3).to(dtype)
    return torch.randint(-5, 6, (n,), generator=g).to(dtype)


def test_backend_name(world):
    assert dist.get_backend() == "terse"


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
          torch.int32, torch.int64]


@pytest.mark.parametrize("op", [R.SUM, R.AVG, R.MIN, R.MAX, R.PRODUCT])
@pytest.mark.parametrize("dtype", DTYPES)
def test_allreduce_every_op_and_dtype(world, op, dtype):
    rank, size, _ = world
    if op == R.AVG and not dtype.is_floating_point:
        pytest.skip("torch has no integer AVG reference")
    n = 1000
    allin = [data(r, n, dtype) for r in range(size)]
    if op == R.PRODUCT:  # small factors keep products exact in every dtype
        allin = [torch.where(x.abs() > 2, torch.ones_like(x), x) for x in allin]
    t = allin[rank].clone()
    dist.all_reduce(t, op=op)
    st = torch.stack([x.double() for x in allin])
    want = {R.SUM: st.sum(0), R.AVG: st.mean(0), R.MIN: st.min(0).values,
            R.MAX: st.max(0).values, R.PRODUCT: st.prod(0)}[op]
    if dtype.is_floating_point:
        tol = {torch.float16: 2e-2, torch.bfloat16: 1e-1}.get(dtype, 1e-5)
        torch.testing.assert_close(t.double(), want, rtol=tol, atol=tol * size * 10)
    else:
        assert torch.equal(t, want.to(dtype))
    b = t.view(torch.uint8)
    ref = [torch.empty_like(b) for _ in range(size)]
    dist.all_gather(ref, b)
    assert all(torch.equal(x, b) for x in ref), "not bit-identical across ranks"


def test_allreduce_noncontiguous_and_async(world):
    rank, size, _ = world
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * (rank + 1)
    want = base.t() / (rank + 1) * sum(range(1, size + 1))
    t = base.t()  # not contiguous
    w = dist.all_reduce(t, async_op=True)
    assert w.wait()
    assert torch.equal(t, want)
    assert w.is_completed() and w.is_success()


def test_allreduce_coalesced(world):
    rank, size, gloo = world
    ts = [data(rank, n, torch.float32, n) for n in (3, 100, 7)]
    ref = [t.clone() for t in ts]
    dist.all_reduce_coalesced(ts)
    dist.all_reduce_coalesced(ref, group=gloo)
    for a, b in zip(ts, ref):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("root", [0, -1])
def test_broadcast_and_reduce(world, root):
    rank, size, _ = world
    root = root % size
    t = data(rank, 50, torch.float64)
    dist.broadcast(t, src=root)
    assert torch.equal(t, data(root, 50, torch.float64))
    t = data(rank, 50, torch.int32)
    dist.reduce(t, dst=root, op=R.SUM)
    if rank == root:
        assert torch.equal(t, sum(data(r, 50, torch.int32) for r in range(size)))
    else:
        assert torch.equal(t, data(rank, 50, torch.int32)), "a non-root's input is kept"


def test_allgather_both_forms(world):
    rank, size, _ = world
    x = data(rank, 11, torch.float32).reshape(11, 1)
    outs = [torch.empty(11, 1) for _ in range(size)]
    dist.all_gather(outs, x)
    for r in range(size):
        assert torch.equal(outs[r], data(r, 11, torch.float32).reshape(11, 1))
    flat = torch.empty(size * 11)
    dist._all_gather_base(flat, x.reshape(-1))
    assert torch.equal(flat, torch.cat([data(r, 11, torch.float32) for r in range(size)]))


def test_allgather_coalesced(world):
    rank, size, gloo = world
    ins = [data(rank, 7, torch.float64).reshape(7, 1), data(rank, 3, torch.float64, salt=1),
           data(rank, 1, torch.float64, salt=2)]
    outs = [[torch.empty_like(t) for t in ins] for _ in range(size)]
    dist.all_gather_coalesced(outs, ins)
    ref = [[torch.empty_like(t) for t in ins] for _ in range(size)]
    dist.all_gather_coalesced(ref, ins, group=gloo)
    for r in range(size):
        for i, t in enumerate(ins):
            assert torch.equal(outs[r][i], ref[r][i]), (r, i)
    assert torch.equal(outs[size - 1][1], data(size - 1, 3, torch.float64, salt=1))
    with pytest.raises(RuntimeError, match="output lists"):
        dist.all_gather_coalesced(outs[:-1] if size > 1 else [], ins)


def test_monitored_barrier_and_sequence_numbers(world):
    pg = dist.distributed_c10d._get_default_group()
    # torch 1.13's dist.monitored_barrier admits gloo only; the group's own method is ours
    pg.monitored_barrier(datetime.timedelta(seconds=20))
    pg._set_sequence_number_for_group()  # nothing to agree on: accepted
    before = pg._get_sequence_number_for_group()
    dist.all_reduce(torch.ones(3))
    assert pg._get_sequence_number_for_group() == before + 1
    seqs = torch.zeros(dist.get_world_size(), dtype=torch.int64)
    dist.all_gather(list(seqs.chunk(dist.get_world_size())),
                    torch.tensor([pg._get_sequence_number_for_group()]))
    assert (seqs == seqs[0]).all(), "sequence numbers differ across ranks"


def test_gather_scatter(world):
    rank, size, _ = world
    root = size - 1
    x = data(rank, 9, torch.float32)
    outs = [torch.empty(9) for _ in range(size)] if rank == root else None
    dist.gather(x, outs, dst=root)
    if rank == root:
        for r in range(size):
            assert torch.equal(outs[r], data(r, 9, torch.float32))
    ins = [data(100 + r, 9, torch.float32) for r in range(size)] if rank == 0 else None
    y = torch.empty(9)
    dist.scatter(y, ins, src=0)
    assert torch.equal(y, data(100 + rank, 9, torch.float32))


@pytest.mark.parametrize("op", [R.SUM, R.MAX])
def test_reduce_scatter_both_forms(world, op):
    rank, size, gloo = world
    ins = [data(rank, 13, torch.float32, k) for k in range(size)]
    out = torch.empty(13)
    dist.reduce_scatter(out, ins, op=op)
    st = torch.stack([data(r, 13, torch.float32, rank) for r in range(size)])
    want = st.sum(0) if op == R.SUM else st.max(0).values
    torch.testing.assert_close(out, want)
    flat = torch.cat(ins)
    out2 = torch.empty(13)
    dist._reduce_scatter_base(out2, flat, op=op)
    assert torch.equal(out, out2)
    # the slice of the allreduce, bit for bit
    full = flat.clone()
    dist.all_reduce(full, op=op)
    assert torch.equal(out2, full[rank * 13:(rank + 1) * 13])


def test_alltoall_equal_uneven_and_list(world):
    rank, size, _ = world
    x = torch.arange(size * 3, dtype=torch.float32).reshape(size * 3, 1) + 100 * rank
    y = torch.empty_like(x)
    dist.all_to_all_single(y, x)
    want = torch.cat([torch.arange(rank * 3, rank * 3 + 3, dtype=torch.float32) + 100 * r
                      for r in range(size)]).reshape(-1, 1)
    assert torch.equal(y, want)
    # rank r sends r + k + 1 rows of 2 to rank k
    ins = [rank + k + 1 for k in range(size)]
    outs = [k + rank + 1 for k in range(size)]
    x = torch.cat([torch.full((ins[k], 2), float(rank * 10 + k)) for k in range(size)])
    y = torch.empty(sum(outs), 2)
    dist.all_to_all_single(y, x, output_split_sizes=outs, input_split_sizes=ins)
    want = torch.cat([torch.full((outs[k], 2), float(k * 10 + rank)) for k in range(size)])
    assert torch.equal(y, want)
    li = [torch.full((k + 1,), float(rank)) for k in range(size)]
    lo = [torch.empty(rank + 1) for _ in range(size)]
    dist.all_to_all(lo, li)
    for k in range(size):
        assert torch.equal(lo[k], torch.full((rank + 1,), float(k)))


def test_barrier_send_recv(world):
    rank, size, _ = world
    dist.barrier()
    if size < 2:
        return
    nxt, prv = (rank + 1) % size, (rank - 1) % size
    big = torch.arange(300000, dtype=torch.float32) + rank  # rendezvous
    got = torch.empty_like(big)
    for tag in (0, 5):
        reqs = [dist.irecv(got, src=prv, tag=tag), dist.isend(big, dst=nxt, tag=tag)]
        for r in reqs:
            r.wait()
        assert torch.equal(got, torch.arange(300000, dtype=torch.float32) + prv)


def test_new_group_subset(world):
    rank, size, _ = world
    members = list(range(0, size, 2))
    g = dist.new_group(members)
    t = torch.ones(4) * rank
    if rank in members:
        dist.all_reduce(t, group=g)
        assert torch.equal(t, torch.ones(4) * sum(members))
        dist.broadcast(t, src=members[-1], group=g)
    dist.barrier()


def test_mismatched_counts_raise_everywhere(world):
    rank, size, _ = world
    if size < 2:
        pytest.skip("needs 2 ranks")
    t = torch.ones(10 + (rank == size - 1))
    with pytest.raises(RuntimeError, match="ERR_MISMATCH: allreduce seq"):
        dist.all_reduce(t)
    t = torch.ones(8, dtype=torch.float64 if rank == 0 else torch.float32)
    with pytest.raises(RuntimeError, match="ERR_MISMATCH: allreduce seq"):
        dist.all_reduce(t)
    t = torch.ones(3)
    dist.all_reduce(t)  # usable afterwards
    assert torch.equal(t, torch.ones(3) * size)


def test_wait_timeout_is_honoured(world):
    rank, size, _ = world
    if size < 2:
        pytest.skip("needs 2 ranks")
    t = torch.zeros(4)
    if rank == 1:
        w = dist.irecv(t, src=0, tag=77)
        t0 = datetime.datetime.now()
        with pytest.raises(RuntimeError, match="timed out"):
            w.wait(timeout=datetime.timedelta(milliseconds=300))
        assert (datetime.datetime.now() - t0).total_seconds() < 5
    dist.barrier()
    if rank == 0:
        dist.send(torch.ones(4), dst=1, tag=77)
    if rank == 1:
        w.wait()
        assert torch.equal(t, torch.ones(4))


def test_unsupported_things_say_so(world):
    with pytest.raises(RuntimeError, match="not supported"):
        dist.all_reduce(torch.ones(2, dtype=torch.bool))
    with pytest.raises(RuntimeError, match="not supported"):
        dist.all_reduce(torch.ones(2, dtype=torch.int32), op=R.BAND)
    if torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="not supported"):
            dist.all_reduce(torch.ones(2, device="cuda"))
    dist.barrier()
