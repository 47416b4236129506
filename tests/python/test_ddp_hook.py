"""terse.torch.ddp_comm_hook with DistributedDataParallel over a gloo process group (CPU)."""
import os

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


@pytest.fixture(scope="module")
def pg(hvd):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    port = hvd.broadcast_object(29500 + (os.getpid() % 400), 0, name="port")
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=hvd.rank(), world_size=hvd.size())
    yield
    dist.destroy_process_group()


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _run(hvd, hook, steps=4):
    m = DDP(_model())
    if hook is not None:
        m.register_comm_hook(None, hook(m))
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(hvd.rank())
    for _ in range(steps):
        x = torch.randn(5, 8, generator=g)
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
    return m


def test_none_matches_plain_ddp(hvd, pg):
    ref = _run(hvd, None)
    got = _run(hvd, lambda m: hvd.ddp_comm_hook(m))
    for p, q in zip(ref.parameters(), got.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_topk_ef_state_per_parameter(hvd, pg):
    hooks = []

    def mk(m):
        h = hvd.ddp_comm_hook(m, hvd.Compression.topk(0.25), error_feedback="ef")
        hooks.append(h)
        return h
    m = _run(hvd, mk, steps=3)
    st = hooks[0].terse_state
    assert set(st.errors) == {n for n, _ in m.module.named_parameters()}
    w = hvd.allgather(m.module[0].weight.detach().reshape(1, -1))
    assert all(torch.equal(w[0], w[k]) for k in range(hvd.size()))
    with pytest.raises(ValueError):
        hvd.ddp_comm_hook(m, hvd.Compression.topk(0.25), error_feedback="saef")


def test_topk_ef_checkpoint_and_nan(hvd, pg):
    """The hook's C states save/restore as bytes; a NaN gradient on one rank fails backward on
    every rank and leaves every parameter's error-feedback state as it was."""
    hooks = []

    def mk(m):
        h = hvd.ddp_comm_hook(m, hvd.Compression.topk(0.25), error_feedback="ef",
                              double_way=True)
        hooks.append(h)
        return h
    m = _run(hvd, mk, steps=2)
    st = hooks[0].terse_state
    assert set(st.step.values()) == {2}
    saved = st.state_dict()
    assert all(isinstance(b, bytes) for b in saved.values())
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(hvd.rank()))
    loss = m(x).pow(2).mean()
    if hvd.rank() == 0:
        loss = loss * float("nan")
    with pytest.raises(Exception) as ei:
        loss.backward()
    assert "ERR_NONFINITE" in str(ei.value)
    assert st.state_dict() == saved
    # a fresh hook restored from the bytes holds the same state
    h2 = hvd.ddp_comm_hook(m, hvd.Compression.topk(0.25), error_feedback="ef", double_way=True)
    shapes = {n: (p.numel(),) for n, p in m.module.named_parameters()}
    h2.terse_state.load_state_dict(saved, shapes)
    assert h2.terse_state.state_dict() == saved
    for n, e in st.errors.items():
        assert torch.equal(e, h2.terse_state.errors[n])
