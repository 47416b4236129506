"""The numpy-level package: terse.Comm collectives, compressors, errors (mpirun, 2-4 ranks)."""
import numpy as np
import pytest

import terse


@pytest.fixture(scope="module")
def comm():
    c = terse.init()
    yield c
    terse.shutdown()


def test_dense(comm):
    n, r = comm.size, comm.rank
    assert terse.rank() == r and terse.size() == n
    x = np.arange(9, dtype=np.int64) + r
    assert np.array_equal(terse.allreduce(x, "sum"), np.arange(9) * n + n * (n - 1) // 2)
    g = terse.allgather(np.full((r + 1, 2), r, np.float32))
    assert g.shape == (n * (n + 1) // 2, 2)
    b = np.full(3, r, np.int32)
    terse.broadcast(b, n - 1)
    assert np.array_equal(b, np.full(3, n - 1))
    comm.barrier()


def test_compressed_with_error_feedback(comm):
    n, r = comm.size, comm.rank
    x = np.zeros(10, np.float32)
    x[r] = 1.0
    x[9] = 0.25
    ef = terse.ErrorFeedback(x.shape)
    y = terse.compressed_allreduce(x, terse.Compressor.topk(0.1), error=ef)
    exp = np.zeros(10, np.float32)
    exp[:n] = 1.0 / n
    assert np.array_equal(y, exp)
    assert ef.error[9] == np.float32(0.25) and ef.error[r] == 0  # C(v) + e == v


def test_errors(comm):
    n, r = comm.size, comm.rank
    with pytest.raises(terse.TerseError) as ei:
        terse.allreduce(np.zeros(3 + r, np.float32))
    assert ei.value.name == "ERR_MISMATCH" and ei.value.message
    with pytest.raises(terse.TerseError):
        terse.allreduce(np.zeros(3, np.complex64))
    with pytest.raises(TypeError):
        terse.allreduce([1.0, 2.0])
    with pytest.raises(terse.TerseError) as ei:
        terse.Compressor("nope")
    assert ei.value.name == "ERR_INVALID_ARG"
    v = np.array([1.0, np.nan], np.float32)
    with pytest.raises(terse.TerseError) as ei:
        terse.Compressor.sign().compress(v)
    assert ei.value.name == "ERR_NONFINITE"
    # still usable after errors
    assert np.array_equal(terse.allreduce(np.ones(2, np.float32)), np.full(2, n, np.float32))
