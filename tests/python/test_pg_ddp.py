"""DDP over the "terse" process group: plain DDP equals DDP over gloo (float tolerance) and is
bit-identical across ranks; the compressed hook (Top-K EF) on "terse" runs in C on the group's
communicator and gives exactly the bits of the same hook on gloo (terse's Python engine)."""
import io

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


def _resumed(rank, spec, steps, stop):
    """Train ``steps`` steps with the compressed hook on terse; when ``stop`` < ``steps``, the
    model, optimizer and hook go through a torch.save checkpoint after ``stop`` steps and a
    fresh model, optimizer and hook continue from it (as a restarted job would)."""
    import terse.torch as tt
    g = torch.Generator().manual_seed(rank)

    def build():
        m = DDP(_model(), bucket_cap_mb=0.001)
        hook = tt.ddp_comm_hook(m, spec, error_feedback="ef")
        m.register_comm_hook(None, hook)
        return m, hook, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)

    def step(m, opt):
        x = torch.randn(6, 8, generator=g)
        opt.zero_grad()
        m(x).pow(2).mean().backward()
        opt.step()

    m, hook, opt = build()
    for t in range(steps):
        if t == stop:
            buf = io.BytesIO()
            torch.save({"model": m.module.state_dict(), "opt": opt.state_dict(),
                        "hook": hook.state_dict()}, buf)
            errors = hook.terse_state.errors
            del m, hook, opt
            buf.seek(0)
            ck = torch.load(buf)
            m, hook, opt = build()
            m.module.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            hook.load_state_dict(ck["hook"])
        step(m, opt)
        if t == stop:  # the fresh hook loaded the checkpoint at its first bucket
            assert hook.terse_state.calls > ck["hook"]["calls"]
    return _flat(m), hook, (errors if stop < steps else None)


# Top-K only: randk keys its indices on the bucket count, and DDP's buckets after a restart
# (its first-iteration layout, then the rebuilt one) differ from the uninterrupted run's.
@pytest.mark.parametrize("spec", ["topk:0.1", "topk:0.05,block=16"])
def test_hook_state_checkpoint_resumes_bit_for_bit(world, spec):
    rank, size, _ = world
    whole, h1, _ = _resumed(rank, spec, 6, 6)
    resumed, h2, saved = _resumed(rank, spec, 6, 3)
    assert torch.equal(whole, resumed), "the resumed run differs from the uninterrupted one"
    assert h1.terse_state.calls == h2.terse_state.calls
    e1, e2 = h1.terse_state.errors, h2.terse_state.errors
    assert set(e1) == set(e2) and len(e1) == 6
    for n in e1:
        assert torch.equal(e1[n], e2[n]), n
    assert any(e.abs().sum() > 0 for e in saved.values()), "the checkpoint held no error"
    # without the hook's state the run differs: the test would notice a lost state
    import terse.torch as tt
    lost = tt.ddp_comm_hook(None, spec, error_feedback="ef")
    with pytest.raises(RuntimeError, match="after its first step"):
        lost.state_dict()
    assert _identical(resumed, size)


def test_hook_state_load_rejects_wrong_count(world):
    import terse.torch as tt
    rank, size, _ = world
    m = DDP(_model(), bucket_cap_mb=0.001)
    hook = tt.ddp_comm_hook(m, "topk:0.1", error_feedback="ef")
    m.register_comm_hook(None, hook)
    m(torch.randn(2, 8)).sum().backward()
    sd = hook.state_dict()
    name = sorted(sd["errors"])[0]
    sd["errors"][name] = torch.zeros(sd["errors"][name].numel() + 1)
    with pytest.raises(RuntimeError):
        hook.load_state_dict(sd)
