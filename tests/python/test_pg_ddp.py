"""DDP over the "terse" process group: plain DDP equals DDP over gloo (float tolerance) and is
bit-identical across ranks; the compressed hook (Top-K EF) on "terse" runs in C on the group's
communicator and gives exactly the bits of the same hook on gloo (terse's Python engine)."""
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from pg_util import init_terse


@pytest.fixture(scope="module")
def world(hvd):
    rank, size = init_terse()
    gloo = dist.new_group(backend="gloo")
    yield rank, size, gloo
    dist.destroy_process_group()


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16),
                               torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _train(rank, pg, hook=None, steps=6):
    m = DDP(_model(), process_group=pg, bucket_cap_mb=0.001)  # several buckets
    if hook is not None:
        m.register_comm_hook(None, hook(m))
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(rank)
    for _ in range(steps):
        x = torch.randn(6, 8, generator=g)
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()
    return m


def _flat(m):
    return torch.cat([p.detach().reshape(-1) for p in m.parameters()])


def _identical(t, size):
    outs = [torch.empty_like(t) for _ in range(size)]
    dist.all_gather(outs, t)
    return all(torch.equal(o, t) for o in outs)


def test_plain_ddp_matches_gloo(world):
    rank, size, gloo = world
    a = _flat(_train(rank, None))  # default group: terse
    b = _flat(_train(rank, gloo))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert _identical(a, size), "DDP over terse is not bit-identical across ranks"
    assert not torch.equal(a, _flat(_model())), "training moved nothing"


def test_terse_hook_on_terse_matches_gloo_hook(world, hvd):
    import terse.torch as tt
    rank, size, gloo = world
    hooks = {}

    def make(key):
        def mk(m):
            hooks[key] = tt.ddp_comm_hook(m, "topk:0.1", error_feedback="ef")
            return hooks[key]
        return mk
    a = _train(rank, None, make("terse"))
    b = _train(rank, gloo, make("gloo"))
    st = hooks["terse"].terse_state
    assert type(st).__name__ == "TerseHookState", "the hook did not take the C path"
    assert st.calls > 0
    assert torch.equal(_flat(a), _flat(b)), "the C path differs from the engine path"
    ea, eb = st.errors, hooks["gloo"].terse_state.errors
    assert set(ea) == set(eb) and len(ea) == 6
    for n in ea:
        assert torch.equal(ea[n], eb[n]), n
    assert _identical(_flat(a), size)


def test_dense_hook_on_terse(world):
    import terse.torch as tt
    rank, size, gloo = world
    a = _flat(_train(rank, None, lambda m: tt.ddp_comm_hook(m)))
    b = _flat(_train(rank, gloo))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
