"""Comm.reduce_scatter, Comm.reduce, Comm.split and Comm.dup (mpirun, 1-5 ranks)."""
import numpy as np
import pytest

import terse


@pytest.fixture(scope="module")
def comm():
    c = terse.Comm()
    yield c
    c.destroy()


def _data(rank, n, dtype):
    rng = np.random.default_rng(1000 + rank)
    return (rng.standard_normal(n) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.uint8])
@pytest.mark.parametrize("op", ["sum", "avg", "min", "max", "prod"])
def test_reduce_scatter_equals_allreduce_slice(comm, dtype, op):
    n, r = comm.size, comm.rank
    for per in (0, 3, 30011):  # small (recursive doubling) and large (ring) vectors
        a = _data(r, per * n, dtype).reshape(n, per)
        full = comm.allreduce(a, op)
        blk = comm.reduce_scatter(a, op)
        assert blk.shape == (per,) and blk.dtype == a.dtype
        assert blk.tobytes() == full.reshape(-1)[r * per:(r + 1) * per].tobytes()
        root = n - 1
        red = comm.reduce(a, root, op)
        if r == root:
            assert red.shape == a.shape and red.tobytes() == full.tobytes()
        else:
            assert red is None


def test_reduce_scatter_counts(comm):
    n, r = comm.size, comm.rank
    counts = [0 if i % 2 else 5 + 3 * i for i in range(n)]
    a = np.arange(sum(counts), dtype=np.int64) * (r + 1)
    out = comm.reduce_scatter(a, "sum", counts=counts)
    lo = sum(counts[:r])
    exp = np.arange(lo, lo + counts[r], dtype=np.int64) * (n * (n + 1) // 2)
    assert np.array_equal(out, exp)
    with pytest.raises(terse.TerseError):
        comm.reduce_scatter(a, "sum", counts=counts[:-1] + [counts[-1] + 1])


def test_mismatch_raises_everywhere(comm):
    n, r = comm.size, comm.rank
    if n == 1:
        pytest.skip("needs two ranks")
    with pytest.raises(terse.TerseError) as ei:
        comm.reduce(np.zeros(4, np.float32), root=0, op="sum" if r else "max")
    assert ei.value.name == "ERR_MISMATCH"
    assert comm.reduce_scatter(np.ones(2 * n, np.float32)).tolist() == [float(n)] * 2


def test_split_and_dup(comm):
    n, r = comm.size, comm.rank
    child = comm.split(r % 2, key=-r)
    members = [q for q in reversed(range(n)) if q % 2 == r % 2]
    assert child.size == len(members) and child.rank == members.index(r)
    assert child.local_size == child.size  # one host
    got = child.allgather(np.array([r], np.int64))
    assert got.tolist() == members
    y = child.compressed_allreduce(np.eye(8, dtype=np.float32)[child.rank % 8], "topk:0.125")
    assert y[0] == np.float32(1.0 / child.size)
    none = comm.split(None if r == 0 else 1)
    assert (none is None) == (r == 0)
    if none is not None:
        assert none.size == n - 1 and none.rank == r - 1
        none.destroy()
    d = comm.dup()
    assert (d.rank, d.size) == (r, n)
    assert d.reduce_scatter(np.full(n, r, np.int32)).tolist() == [n * (n - 1) // 2]
    d.destroy()
    child.destroy()
    assert comm.allreduce(np.ones(3, np.int32)).tolist() == [n] * 3
