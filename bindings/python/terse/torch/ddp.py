"""Communication hook for torch.nn.parallel.DistributedDataParallel (CPU).

    model = DDP(model)
    model.register_comm_hook(None, terse.torch.ddp_comm_hook(model, "topk:0.01",
                                                             error_feedback="ef"))

The hook replaces the bucket allreduce by terse's: dense (``none``/``fp16``: Average over
ranks), or layer-wise compressed with the C library's error-feedback state (terse.ErrorFeedback,
terse_ef_*) per *parameter* (keyed by its name, tensor id from "ddp." + name), never per
bucket, since DDP rebuilds its buckets after the first iteration. Plain EF works on gradients
here: e <- g + e - C(g + e). SAEF changes where gradients are evaluated, so it needs the
optimizer wrapper: use DistributedOptimizer(error_feedback="saef"). The exchanges run in
terse's engine thread (the hook returns a future at once); a failure (e.g. ERR_NONFINITE for a
NaN gradient on any rank) sets the future's exception and leaves that parameter's state as it
was.
"""
import threading

import torch

from .. import _core
from . import _backend, ddp_terse
from . import mpi_ops
from .compression import Compression, FP16Compressor, NoneCompressor, as_terse, choice_of
from .mpi_ops import _call_async


class _HookState:
    """The hook's C error-feedback states, one per parameter name (``states``)."""

    def __init__(self, names, compressor, error_feedback, double_way, algorithm=None,
                 hierarchy=None):
        self.names = names
        self.compressor = compressor
        self.algorithm, self.hierarchy = algorithm, hierarchy
        self.ef = error_feedback
        self.double_way = double_way
        self.states = {}  # name -> terse.ErrorFeedback of that one parameter
        self._lock = threading.Lock()

    def state_of(self, name, shape):
        with self._lock:
            st = self.states.get(name)
            if st is None:
                st = self.states[name] = _core.ErrorFeedback(
                    [tuple(shape)], self.compressor, mode=self.ef or "none",
                    double_way=self.double_way, names=["ddp." + name],
                    comm=mpi_ops._eng().comm, algorithm=self.algorithm,
                    hierarchy=self.hierarchy)
            return st

    @property
    def errors(self):
        """e_k per parameter name (copies, float32, flat); empty without error feedback."""
        if not self.ef:
            return {}
        return {n: torch.from_numpy(s.worker_error(0).reshape(-1)) for n, s in self.states.items()}

    @property
    def server_errors(self):
        if not self.double_way:
            return {}
        return {n: torch.from_numpy(s.server_error(0).reshape(-1))
                for n, s in self.states.items()}

    @property
    def step(self):
        """Per parameter: how many times it was communicated."""
        return {n: s.step for n, s in self.states.items()}

    def state_dict(self):
        """{name: terse_ef_save bytes}: the hook's whole error-feedback state."""
        return {n: s.save() for n, s in self.states.items()}

    def load_state_dict(self, sd, shapes):
        """Restore from state_dict(); ``shapes``: {name: parameter shape}."""
        for n, b in sd.items():
            self.state_of(n, shapes[n]).restore(b)


def ddp_comm_hook(model=None, compression=Compression.none, error_feedback=None,
                  double_way=False):
    """Return a DDP comm hook (``hook(state, bucket) -> Future``); register it with
    ``ddp_model.register_comm_hook(None, hook)``. ``model`` (the DDP model or the module)
    names the parameters so that EF state is keyed by name; without it, by order of
    first appearance. ``error_feedback`` is None or "ef"."""
    if error_feedback not in (None, "ef"):
        if error_feedback == "saef":
            raise ValueError("SAEF needs the optimizer wrapper (evaluate gradients at x - e): "
                             "use terse.torch.DistributedOptimizer(error_feedback='saef')")
        raise ValueError("error_feedback must be None or 'ef', not %r" % (error_feedback,))
    names = {}
    model_pg = getattr(model, "process_group", None)
    if model is not None:
        for n, p in model.named_parameters():
            names[p] = n[len("module."):] if n.startswith("module.") else n
    dense = compression in (Compression.none, Compression.fp16, NoneCompressor, FP16Compressor)
    comp = None if dense and error_feedback is None else as_terse(compression)
    algorithm, hierarchy = choice_of(compression)
    st = _HookState(names, comp, error_feedback, double_way, algorithm, hierarchy)
    lock = threading.Lock()

    def name_of(p):
        with lock:
            n = st.names.get(p)
            if n is None:
                n = st.names[p] = "param.%d" % len(st.names)
            return n

    terse_states = {}  # the terse process group -> its TerseHookState
    pending = []  # a checkpoint loaded before the terse state existed (its first bucket)

    def group_of(state):
        """The process group the bucket belongs to: the hook's state when it is one (as for
        torch's default hooks), the DDP model's, else the default group."""
        if isinstance(state, torch.distributed.ProcessGroup):
            return state
        if model_pg is not None:
            return model_pg
        if torch.distributed.is_initialized():
            return torch.distributed.distributed_c10d._get_default_group()
        return None

    def terse_hook(pg, bucket):
        if comp is None:
            return ddp_terse.dense_bucket(pg, compression, bucket.buffer())
        ts = terse_states.get(pg)
        if ts is None:
            ts = terse_states[pg] = ddp_terse.TerseHookState(pg, comp.spec, error_feedback,
                                                             double_way, algorithm, hierarchy)
            hook.terse_state = ts
            if pending:
                ts.load_state_dict(pending.pop())
        return ddp_terse.compressed_bucket(ts, bucket, name_of)

    def hook(state, bucket):
        pg = group_of(state)
        if _backend.is_terse_group(pg):
            return terse_hook(pg, bucket)
        buf = bucket.buffer()
        fut = torch.futures.Future()
        if comp is None:
            t, ctx = compression.compress(buf)
            pname = name_of(bucket.parameters()[0]) if bucket.parameters() else "b"
            h = mpi_ops.allreduce_async_(t, name="ddp.bucket.%s.%d" % (pname, buf.numel()),
                                         op=mpi_ops.Average)

            def wait_dense():
                out = compression.decompress(mpi_ops.synchronize(h), ctx)
                if out is not buf:
                    buf.copy_(out)
                return buf
            _complete_later(fut, wait_dense)
            return fut
        params = bucket.parameters()
        handles = []
        off = 0
        for p in params:
            n = p.numel()
            name = name_of(p)
            ef = st.state_of(name, (n,))
            if buf.dtype == torch.float32 and buf.is_contiguous():
                g = buf[off:off + n].detach()  # in place: C writes the update on success only
                copy_back = False
            else:
                g = buf[off:off + n].detach().float().contiguous()
                copy_back = True
            a = g.numpy()
            sig = ("ddp.ef", comp.spec, ef.mode, double_way, n, ef.step)
            h = _call_async("ddp." + name, sig, lambda ef=ef, a=a: ef.exchange([a], out=[a]))
            handles.append((off, n, g if copy_back else None, h))
            off += n

        def wait_compressed():
            err = None
            for o, n, g, h in handles:
                try:
                    mpi_ops.synchronize(h)
                    if g is not None:
                        buf[o:o + n].copy_(g)
                except Exception as e:
                    err = err or e
            if err is not None:
                raise err
            return buf
        _complete_later(fut, wait_compressed)
        return fut

    def state_dict():
        """The compressed hook's state on a terse process group, for a checkpoint."""
        if not isinstance(hook.terse_state, ddp_terse.TerseHookState):
            raise RuntimeError("terse DDP hook: state_dict() is for the compressed hook on a "
                               "terse process group, after its first step")
        return hook.terse_state.state_dict()

    def load_state_dict(sd):
        """Restore state_dict()'s output: at once, or at the first bucket of a fresh hook."""
        if isinstance(hook.terse_state, ddp_terse.TerseHookState):
            hook.terse_state.load_state_dict(sd)
        else:
            pending[:] = [sd]

    hook.terse_state = st
    hook.state_dict = state_dict
    hook.load_state_dict = load_state_dict
    return hook


def _complete_later(fut, fn):
    """Complete ``fut`` from a helper thread once the collectives finish (DDP waits on it
    at the end of backward), so the hook itself returns at once."""
    def run():
        try:
            fut.set_result(fn())
        except Exception as e:  # noqa: B902
            fut.set_exception(e)
    threading.Thread(target=run, daemon=True).start()
