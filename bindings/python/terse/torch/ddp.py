"""Communication hook for torch.nn.parallel.DistributedDataParallel (CPU, gloo process group).

    model = DDP(model)
    model.register_comm_hook(None, terse.torch.ddp_comm_hook(model, "topk:0.01",
                                                             error_feedback="ef"))

The hook replaces the bucket allreduce by terse's: dense (``none``/``fp16``: Average over
ranks), or layer-wise compressed with one error-feedback state per *parameter* (keyed by its
name), never per bucket, since DDP rebuilds its buckets after the first iteration. Plain EF
works on gradients here: e <- g + e - C(g + e). SAEF changes where gradients are evaluated, so
it needs the optimizer wrapper: use DistributedOptimizer(error_feedback="saef").
"""
import threading

import torch

from . import mpi_ops
from .compression import Compression, FP16Compressor, NoneCompressor, as_terse
from .mpi_ops import _register, compressed_allreduce_submit


class _HookState:
    def __init__(self, names, compressor, error_feedback, double_way):
        self.names = names
        self.compressor = compressor
        self.ef = error_feedback
        self.double_way = double_way
        self.errors = {}
        self.server_errors = {}
        self.step = {}  # per parameter: how many times it was communicated


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
    if model is not None:
        for n, p in model.named_parameters():
            names[p] = n[len("module."):] if n.startswith("module.") else n
    dense = compression in (Compression.none, Compression.fp16, NoneCompressor, FP16Compressor)
    comp = None if dense and error_feedback is None else as_terse(compression)
    st = _HookState(names, comp, error_feedback, double_way)
    lock = threading.Lock()

    def name_of(p):
        with lock:
            n = st.names.get(p)
            if n is None:
                n = st.names[p] = "param.%d" % len(st.names)
            return n

    def hook(state, bucket):
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
            g = buf[off:off + n].detach().float()
            if st.ef:
                e = st.errors.setdefault(name, torch.zeros(n, dtype=torch.float32))
                g = g + e
                e_out = e.numpy()
            else:
                e_out = None
            se = None
            if double_way:
                se = st.server_errors.setdefault(name, torch.zeros(n, dtype=torch.float32)).numpy()
            step = st.step.get(name, 0)
            st.step[name] = step + 1
            op = compressed_allreduce_submit(g.contiguous().numpy(), comp, "ddp." + name, step,
                                             server_error=se, error_out=e_out)
            handles.append((off, n, _register(op, lambda op=op: op.result)))
            off += n

        def wait_compressed():
            err = None
            for o, n, h in handles:
                try:
                    buf[o:o + n].copy_(torch.from_numpy(mpi_ops.synchronize(h)))
                except Exception as e:
                    err = err or e
            if err is not None:
                raise err
            return buf
        _complete_later(fut, wait_compressed)
        return fut

    hook.terse_state = st
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
