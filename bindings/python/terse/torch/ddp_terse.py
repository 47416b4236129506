"""The DDP comm hook on a "terse" process group: the bucket goes to the group's own
communicator (no second communicator, no gloo, no Python engine). Dense: an AVG allreduce of
the bucket. Compressed: one C call per bucket (terse_grad_ef_ireduce) that forms
Delta = e + g in the bucket, runs the compressed allreduce with every parameter a tensor of
its own, and keeps e = Delta - C(Delta) per parameter in C (ids from the parameters' names,
so DDP may re-bucket freely). The future completes from the process group's progress thread.
"""
import zlib

import torch
import torch.distributed as dist

from . import _backend


def param_id(name):
    """The tensor id of a parameter on every rank: CRC-32 of "ddp." + its name."""
    return zlib.crc32(("ddp." + name).encode()) & 0xffffffff


class TerseHookState:
    """The C state of the hook on one terse process group (``errors`` etc. like the gloo
    path's _HookState)."""

    def __init__(self, pg, spec, error_feedback, double_way, algorithm=None, hierarchy=None):
        # algorithm / hierarchy: "" leaves them to the group's communicator
        self.engine = _backend.extension().GradEFHook(pg, spec, bool(error_feedback),
                                                      bool(double_way), algorithm or "",
                                                      hierarchy or "")
        self.ef = error_feedback
        self.double_way = double_way
        self.ids = {}  # name -> id

    def id_of(self, name):
        i = self.ids.get(name)
        if i is None:
            i = param_id(name)
            if i in self.ids.values():
                raise RuntimeError("terse DDP hook: parameter ids of %r and another collide"
                                   % name)
            self.ids[name] = i
        return i

    @property
    def errors(self):
        if not self.ef:
            return {}
        return {n: self.engine.worker_error(i) for n, i in self.ids.items()}

    @property
    def server_errors(self):
        if not self.double_way:
            return {}
        return {n: self.engine.server_error(i) for n, i in self.ids.items()}

    @property
    def calls(self):
        return self.engine.calls

    def state_dict(self):
        """This rank's whole hook state for a checkpoint (torch.save-able): the bucket count
        (randk keys on it) and per parameter name copies of its errors."""
        return {"calls": self.calls, "errors": self.errors, "server_errors": self.server_errors}

    def load_state_dict(self, sd):
        """Restore state_dict()'s output, between steps (no bucket in flight): the resumed run
        then gives the bits of an uninterrupted one. Each rank loads its own errors."""
        errs, serv = sd.get("errors", {}), sd.get("server_errors", {})
        none = torch.empty(0)
        for name in sorted(set(errs) | set(serv)):
            e, s = errs.get(name, none), serv.get(name, none)
            count = max(e.numel(), s.numel())
            self.engine.load_error(self.id_of(name), count, e.reshape(-1), s.reshape(-1))
        self.engine.set_calls(int(sd["calls"]))


def dense_bucket(pg, compression, buf):
    """AVG allreduce of the (compressed, e.g. fp16) bucket on ``pg``; a future of ``buf``."""
    t, ctx = compression.compress(buf)
    opts = dist.AllreduceOptions()
    opts.reduceOp = dist.ReduceOp.AVG
    fut = pg.allreduce([t], opts).get_future()

    def done(f):
        out = compression.decompress(f.value()[0], ctx)
        if out is not buf:
            buf.copy_(out)
        return buf
    return fut.then(done)


def compressed_bucket(state, bucket, name_of):
    """The bucket through the C error-feedback engine; a future of the bucket's buffer."""
    buf = bucket.buffer()
    params = bucket.parameters()
    ids = [state.id_of(name_of(p)) for p in params]
    counts = [p.numel() for p in params]
    fut = state.engine.reduce(buf, ids, counts).get_future()
    return fut.then(lambda f: f.value()[0])
