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
    e = np.zeros_like(x)
    y = terse.compressed_allreduce(x, terse.Compressor.topk(0.1), error=e)
    exp = np.zeros(10, np.float32)
    exp[:n] = 1.0 / n
    assert np.array_equal(y, exp)
    assert e[9] == np.float32(0.25) and e[r] == 0  # C(v) + e == v
    assert comm.last_bytes_sent > 0 or n == 1


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


# -- the C compressed allreduce against a Python reference built from Compressor.compress ------

SPECS = ["topk:0.3", "topk:0.25,block=4", "sign", "sign,block=5", "randk:0.5,seed=3",
         "induced:0.2,0.3,block=8", "fp16", "none"]
SIZES = [13, 1, 40]


def _inputs(comm, step):
    g = np.random.default_rng(100 * comm.rank + step)
    return [g.standard_normal(n).astype(np.float32) for n in SIZES]


def _all_ranks(comm, arrays):
    """Every rank's arrays: [rank][tensor]."""
    flat = np.concatenate(arrays)
    allf = comm.allgather_fixed(flat).reshape(comm.size, -1)
    offs = np.cumsum([0] + [a.size for a in arrays])
    return [[allf[k, offs[j]:offs[j + 1]] for j in range(len(arrays))] for k in range(comm.size)]


def _reference(comp, inputs_all, ids, step, server_errors=None):
    """Python version of DESIGN's compressed allreduce: sum of C(v_k) in rank order from 0,
    divided by K; double-way: C(e_s + avg), e_s <- remainder. Returns (out, e_k of every rank)."""
    K = len(inputs_all)
    outs, rems = [], [[None] * len(ids) for _ in range(K)]
    for j, tid in enumerate(ids):
        acc = np.zeros(inputs_all[0][j].size, np.float32)
        for k in range(K):
            wire, _, rem = comp.compress(inputs_all[k][j], tid, step, remainder=True)
            comp.decompress_add(wire, acc, tid, step)
            rems[k][j] = rem
        acc /= np.float32(K)
        if server_errors is not None:
            s = server_errors[j] + acc
            wire, _, rem = comp.compress(s, tid, step, remainder=True)
            acc = comp.decompress_add(wire, np.zeros_like(acc), tid, step)
            server_errors[j][:] = rem
        outs.append(acc)
    return outs, rems


def _bits(a):
    return np.ascontiguousarray(a, np.float32).reshape(-1).view(np.uint32)


@pytest.mark.parametrize("double_way", [False, True])
@pytest.mark.parametrize("spec", SPECS)
def test_c_equals_python_reference_bitwise(comm, spec, double_way):
    comp = terse.Compressor(spec)
    ids = [terse.tensor_id_of("t%d" % j) for j in range(len(SIZES))]
    se_c = [np.zeros(n, np.float32) for n in SIZES] if double_way else None
    se_py = [np.zeros(n, np.float32) for n in SIZES] if double_way else None
    errs = [np.zeros(n, np.float32) for n in SIZES]
    for step in range(3):
        xs = _inputs(comm, step)
        # Python: Delta = x + e on every rank
        deltas = [x + e for x, e in zip(xs, errs)]
        exp, rems = _reference(comp, _all_ranks(comm, deltas), ids, step, se_py)
        req = comm.icompressed_allreduce(xs, comp, ids, step, error=errs, server_error=se_c)
        got = req.wait()
        # Owner algorithms (sparse_rs_ag, sign_a2a_ag, dense) keep e_s current only for the
        # blocks a rank serves; the outputs of later steps still check it there.
        redundant = req.algorithm in ("sparse_allgather", "sign_allgather")
        for j in range(len(SIZES)):
            assert np.array_equal(_bits(got[j]), _bits(exp[j])), (spec, step, j)
            assert np.array_equal(_bits(errs[j]), _bits(rems[comm.rank][j])), (spec, step, j)
            if double_way and redundant:
                assert np.array_equal(_bits(se_c[j]), _bits(se_py[j])), (spec, step, j)


def test_fused_equals_separate(comm):
    comp = terse.Compressor("topk:0.2,block=7")
    xs = _inputs(comm, 9)
    fused = comm.compressed_allreduce(xs, comp, [5, 6, 7], 9)
    for j, x in enumerate(xs):
        one = comm.compressed_allreduce(x, comp, 5 + j, 9)
        assert np.array_equal(_bits(one), _bits(fused[j]))


def test_nonblocking_request(comm):
    x = np.arange(20, dtype=np.float32) * (comm.rank + 1)
    req = comm.icompressed_allreduce(x, "topk:0.1", tensor_id=3)
    while not req.test():
        pass
    y = req.wait()
    assert y.shape == x.shape and req.algorithm
    assert req.bytes_sent > 0 or comm.size == 1
    assert np.array_equal(y, comm.compressed_allreduce(x, "topk:0.1", tensor_id=3))


def test_compressed_bad_inputs(comm):
    r = comm.rank
    x = np.ones(8, np.float32)
    with pytest.raises(terse.TerseError) as ei:  # different counts across ranks
        comm.compressed_allreduce(np.ones(8 + r, np.float32), "topk:0.5")
    assert ei.value.name == ("ERR_MISMATCH" if comm.size > 1 else ei.value.name)
    with pytest.raises(terse.TerseError) as ei:  # error of the wrong dtype
        comm.compressed_allreduce(x, "topk:0.5", error=np.zeros(8))
    assert ei.value.name == "ERR_INVALID_ARG"
    with pytest.raises(terse.TerseError):
        comm.compressed_allreduce([x, x], "topk:0.5", tensor_id=1)  # one id for two tensors
    with pytest.raises(TypeError):
        comm.compressed_allreduce([[1.0, 2.0]], "topk:0.5")
    e = np.full(8, 0.5, np.float32)
    bad = x.copy()
    if r == 0:
        bad[3] = np.nan
    with pytest.raises(terse.TerseError) as ei:
        comm.compressed_allreduce(bad, "topk:0.5", error=e)
    assert ei.value.name == "ERR_NONFINITE" and ei.value.message
    assert np.array_equal(e, np.full(8, 0.5, np.float32))  # untouched on failure
    assert np.array_equal(comm.compressed_allreduce(x, "none"), x)  # still usable


# -- ErrorFeedback: the C error-feedback state ------------------------------------------------

def _ef_reference(comm, spec, mode, period, double_way, steps):
    """Algorithm 1 on plain arrays, every rank simulated: returns the consensus x and e_k."""
    K = comm.size
    comp = terse.Compressor(spec)
    ids = [terse.tensor_id_of("w"), terse.tensor_id_of("b")]
    x = [np.linspace(-1, 1, 12).astype(np.float32), np.full(3, 0.5, np.float32)]
    e = [[np.zeros_like(a) for a in x] for _ in range(K)]
    es = [np.zeros_like(a) for a in x] if double_way else None
    for t in range(steps):
        if mode != "none" and period and (t + 1) % period == 0:
            for j in range(len(x)):
                avg = np.zeros_like(x[j])
                for k in range(K):
                    avg += e[k][j]
                avg /= np.float32(K)
                for k in range(K):
                    e[k][j] = avg.copy()
        deltas = []
        for k in range(K):
            xh = [xj - e[k][j] if mode == "saef" else xj.copy() for j, xj in enumerate(x)]
            d = _local_step(xh, k, t)
            deltas.append([e[k][j] + d[j] for j in range(len(x))])
        u, rems = _reference(comp, deltas, ids, t, es)
        if mode != "none":
            e = rems
        x = [x[j] - u[j] for j in range(len(x))]
    return x, e


def _local_step(xh, k, t):
    """A deterministic stand-in for a local optimizer step: d = xh - x'."""
    g = np.random.default_rng(1000 * k + t)
    return [np.float32(0.1) * (a * np.float32(0.5) + g.standard_normal(a.size).astype(np.float32))
            for a in xh]


@pytest.mark.parametrize("spec,mode,period,double_way", [
    ("topk:0.25", "ef", 0, False),
    ("topk:0.25", "saef", 2, False),
    ("sign,block=4", "saef", 3, True),
    ("randk:0.5,seed=1", "none", 0, True),
])
def test_error_feedback_matches_reference(comm, spec, mode, period, double_way):
    steps = 5
    ef = terse.ErrorFeedback([(3, 4), 3], spec, mode, period, double_way, names=["w", "b"],
                             comm=comm)
    x = [np.linspace(-1, 1, 12).astype(np.float32).reshape(3, 4), np.full(3, 0.5, np.float32)]
    saved = None
    for t in range(steps):
        if t == 2:
            saved = (ef.save(), [a.copy() for a in x])
        xh = ef.prepare(x)
        d = _local_step([a.reshape(-1) for a in xh], comm.rank, t)
        u = ef.exchange([a.reshape(a_.shape) for a, a_ in zip(d, x)])
        x = [a - b for a, b in zip(x, u)]
    assert ef.step == steps
    x_ref, e_ref = _ef_reference(comm, spec, mode, period, double_way, steps)
    for j in range(2):
        if period:  # the C error average sums in its allreduce's order, not rank order
            assert np.allclose(x[j].reshape(-1), x_ref[j], rtol=0, atol=1e-6), j
        else:
            assert np.array_equal(_bits(x[j]), _bits(x_ref[j])), j
        if mode == "none":
            assert ef.worker_error(j) is None
        elif period:
            assert np.allclose(ef.worker_error(j).reshape(-1), e_ref[comm.rank][j], rtol=0,
                               atol=1e-6), j
        else:
            assert np.array_equal(_bits(ef.worker_error(j)), _bits(e_ref[comm.rank][j])), j
    # resume from the checkpoint taken at step 2 in a fresh state: the same end point
    ef2 = terse.ErrorFeedback([(3, 4), 3], spec, mode, period, double_way, names=["w", "b"],
                              comm=comm)
    ef2.restore(saved[0])
    assert ef2.step == 2
    x2 = saved[1]
    for t in range(2, steps):
        xh = ef2.prepare(x2)
        d = _local_step([a.reshape(-1) for a in xh], comm.rank, t)
        u = ef2.exchange([a.reshape(a_.shape) for a, a_ in zip(d, x2)])
        x2 = [a - b for a, b in zip(x2, u)]
    assert ef2.save() == ef.save()
    for j in range(2):
        assert np.array_equal(_bits(x2[j]), _bits(x[j]))


def test_error_feedback_averaging_due_follows_c(comm):
    """averaging_due is the library's rule: due at steps t with (t + 1) % period == 0, and no
    longer due once prepare() has averaged at that step (it used to stay True)."""
    ef = terse.ErrorFeedback([4], "topk:0.5", "ef", 2, comm=comm)
    none = terse.ErrorFeedback([4], "topk:0.5", "none", 2, comm=comm)
    x = [np.ones(4, np.float32)]
    due = []
    for t in range(4):
        due.append(ef.averaging_due)
        assert not none.averaging_due
        ef.prepare(x)
        if due[-1]:
            assert not ef.averaging_due, t
        ef.exchange([np.full(4, 0.1 * (comm.rank + 1), np.float32)])
    assert due == [False, True, False, True]


def test_error_feedback_nan_leaves_state_unchanged(comm):
    ef = terse.ErrorFeedback([5, 4], "topk:0.4", "saef", 2, True, ids=[1, 2], comm=comm)
    d = [np.linspace(0.1, 0.5, 5).astype(np.float32) * (comm.rank + 1), np.ones(4, np.float32)]
    ef.exchange(d)  # a step with some error in the state
    before = ef.save()
    bad = [a.copy() for a in d]
    if comm.rank == comm.size - 1:
        bad[1][2] = np.nan
    out = [np.full(5, 7.0, np.float32), np.full(4, 7.0, np.float32)]
    with pytest.raises(terse.TerseError) as ei:
        ef.exchange(bad, out=out)
    assert ei.value.name == "ERR_NONFINITE"
    assert "exchange" in str(ei.value) and ei.value.message
    assert ef.save() == before and ef.step == 1
    assert all(np.all(o == 7.0) for o in out)
    u = ef.exchange(d)  # the state still works, on every rank
    assert ef.step == 2 and all(np.all(np.isfinite(a)) for a in u)


def test_error_feedback_bad_inputs(comm):
    ef = terse.ErrorFeedback([4], "topk:0.5", "ef", comm=comm)
    with pytest.raises(terse.TerseError) as ei:
        ef.exchange([np.ones(5, np.float32)])
    assert ei.value.name == "ERR_INVALID_ARG"
    with pytest.raises(terse.TerseError):
        ef.exchange([np.ones(4, np.float32), np.ones(4, np.float32)])
    with pytest.raises(ValueError):
        terse.ErrorFeedback([4], "topk:0.5", "bogus", comm=comm)
    with pytest.raises(terse.TerseError):
        terse.ErrorFeedback([4], "topk:0.5", "ef", ids=[1, 2], comm=comm)
    other = terse.ErrorFeedback([4], "topk:0.25", "ef", comm=comm)
    with pytest.raises(terse.TerseError) as ei:  # saved with another compressor
        other.restore(ef.save())
    assert ei.value.name == "ERR_INVALID_ARG"
    blob = bytearray(ef.save())
    blob[-20] ^= 0xFF
    with pytest.raises(terse.TerseError) as ei:
        ef.restore(bytes(blob))
    assert ei.value.name == "ERR_CORRUPT"
    # states that differ across ranks: every rank fails, nothing changes
    mine = terse.ErrorFeedback([4 + (comm.rank % 2)], "topk:0.5", "ef", comm=comm)
    if comm.size > 1:
        before = mine.save()
        with pytest.raises(terse.TerseError) as ei:
            mine.exchange([np.ones(4 + (comm.rank % 2), np.float32)])
        assert ei.value.name == "ERR_MISMATCH"
        assert mine.save() == before
    ef.close()
    with pytest.raises(terse.TerseError):
        ef.exchange([np.ones(4, np.float32)])
