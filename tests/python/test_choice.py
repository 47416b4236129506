"""The compressed allreduce's algorithm and hierarchy from Python: per call, per Comm, per
ErrorFeedback state and per torch Compression give the bits of the same choice made through
TERSE_COMPRESSED_ALGO (set by CTest for this process); a choice that differs on one rank is
ERR_MISMATCH on every rank, the arrays unchanged (mpirun, 3 ranks)."""
import os

import numpy as np
import pytest
import torch

import terse
from terse import _capi as C
import terse.torch as hvd

ENV_ALGO = os.environ.get("TERSE_COMPRESSED_ALGO", "auto")
OTHER = "dense" if ENV_ALGO != "dense" else "sparse_allgather"
SPEC = "topk:0.05,block=64"


def _data(seed):
    rng = np.random.default_rng(1000 * terse.rank() + seed)
    return [rng.standard_normal(n).astype(np.float32) for n in (1000, 37, 513)]


def _two_steps(comm, **kw):
    """Two double-way calls (the second reads the first's e_s): outputs, e_k, e_s."""
    xs = _data(1)
    errs = [np.zeros_like(x) for x in xs]
    serrs = [np.full_like(x, 0.125) for x in xs]
    outs = None
    for step in range(2):
        outs = comm.compressed_allreduce(xs, SPEC, tensor_id=[1, 2, 3], step=step, error=errs,
                                         server_error=serrs, **kw)
    return [np.concatenate(v) for v in (outs, errs, serrs)]


def _same(a, b):
    return all(np.array_equal(x.view(np.uint32), y.view(np.uint32)) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def env_comm():
    terse.init()
    return terse.comm()


def test_call_and_comm_choice_give_the_env_bits(env_comm):
    ref = _two_steps(env_comm)
    os.environ["TERSE_COMPRESSED_ALGO"] = OTHER  # read by the Comms made below
    try:
        other = terse.Comm()
        chosen = terse.Comm(algorithm=ENV_ALGO, hierarchy="none")
    finally:
        os.environ["TERSE_COMPRESSED_ALGO"] = ENV_ALGO
    assert _same(_two_steps(other, algorithm=ENV_ALGO), ref)
    assert _same(_two_steps(chosen), ref)
    assert _same(_two_steps(env_comm), ref)  # its snapshot, not the environment of now
    with pytest.raises(ValueError):
        terse.Comm(algorithm="fastest")
    other.destroy()
    chosen.destroy()


def test_ef_state_choice(env_comm):
    shapes = [(1000,), (37,)]
    a = terse.ErrorFeedback(shapes, SPEC, mode="ef", double_way=True, comm=env_comm)
    b = terse.ErrorFeedback(shapes, SPEC, mode="ef", double_way=True, comm=env_comm,
                            algorithm=ENV_ALGO)
    for t in range(3):
        d = _data(10 + t)[:1] + [_data(10 + t)[1]]
        ua, ub = a.exchange(d), b.exchange(d)
        assert _same(ua, ub)
        assert _same([a.worker_error(0), a.server_error(1)], [b.worker_error(0), b.server_error(1)])
    a.close()
    b.close()


def test_mismatch_on_every_rank(env_comm):
    x = _data(3)[0]
    err = np.zeros_like(x)
    mine = "dense" if terse.rank() == 0 else "sparse_allgather"
    with pytest.raises(terse.TerseError) as e:
        env_comm.compressed_allreduce(x, SPEC, error=err, algorithm=mine)
    assert e.value.status == C.ERR_MISMATCH
    assert not err.any()


def test_torch_compression_choice(env_comm):
    hvd.init()
    t = torch.from_numpy(_data(5)[0])
    ref = hvd.allreduce(t, compression=hvd.Compression.topk(0.05, block_size=64))
    got = hvd.allreduce(t, compression=hvd.Compression.topk(0.05, block_size=64,
                                                            algorithm=ENV_ALGO))
    assert torch.equal(ref, got)
    with pytest.raises(ValueError):
        hvd.Compression.topk(0.05, hierarchy="rack")
