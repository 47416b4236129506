"""DistributedOptimizer: Horovod's gradient-allreduce optimizer, and terse's compressed
model-difference optimizer with error feedback (EF / SAEF, Algorithm 1 of the SAEF paper).

Dense mode (compression=Compression.none or .fp16, no error_feedback) is Horovod's: hooks on
every parameter's gradient accumulator start an asynchronous, name-matched allreduce during
backward; step() waits for them and runs the wrapped optimizer.

Compressed mode (a terse compressor, or any error_feedback): backward stays local. The error
feedback runs in the C library: one terse.ErrorFeedback (terse_ef_*) holds e_k (and e_s,
double-way) for every trainable parameter, tensor ids from the parameter names. step() runs the
wrapped optimizer locally from the point the parameters hold (x_t for EF, x_t - e_k for SAEF)
to x', and one terse_ef_exchange (all parameters fused into one compressed allreduce, each
compressed on its own) forms Delta_k = e_k + x_half - x', averages C(Delta_k) over ranks and
keeps e_k = Delta_k - C(Delta_k); then x_{t+1} = x_t - avg_k C(Delta_k) (identical on all ranks)
and terse_ef_prepare starts the next step: errors averaged across ranks at steps t with
(t + 1) % error_average_period == 0, and with SAEF the parameters hold x_{t+1} - e_k.
``consensus_parameters()`` swaps x_t in temporarily. state_dict() carries the C state
(terse_ef_save bytes) and the consensus model, so a resumed run continues identically.
"""
import contextlib
import warnings
import zlib

import numpy as np
import torch

from .. import _core
from .compression import Compression, TerseCompression, as_terse
from . import mpi_ops
from .mpi_ops import Average, _call_async, size, synchronize


class _DistributedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, named_parameters, compression, backward_passes_per_step=1,
                 op=Average, gradient_predivide_factor=1.0, error_feedback=None,
                 error_average_period=None, double_way=False):
        super(self.__class__, self).__init__(params)
        self._compression = compression

        if named_parameters is not None:
            named_parameters = list(named_parameters)
        else:
            named_parameters = [("allreduce.noname.%s.%s" % (i, j), v)
                                for i, param_group in enumerate(self.param_groups)
                                for j, v in enumerate(param_group["params"])]
        # make sure that named_parameters are tuples
        if any([not isinstance(p, tuple) for p in named_parameters]):
            raise ValueError("named_parameters should be a sequence of "
                             "tuples (name, parameter), usually produced by "
                             "model.named_parameters().")

        dups = _DistributedOptimizer.find_duplicates([k for k, _ in named_parameters])
        if len(dups) > 0:
            raise ValueError("Parameter names in named_parameters must be unique. "
                             "Found duplicates: %s" % ", ".join(dups))

        all_param_ids = {id(v) for param_group in self.param_groups
                         for v in param_group["params"]}
        named_param_ids = {id(v) for k, v in named_parameters}
        unnamed_param_ids = all_param_ids - named_param_ids
        if len(unnamed_param_ids):
            raise ValueError("named_parameters was specified, but one or more model "
                             "parameters were not named. Python object ids: "
                             "%s" % ", ".join(str(id) for id in unnamed_param_ids))

        self._parameter_names = {v: k for k, v in sorted(named_parameters, key=lambda kv: kv[0])}
        self.backward_passes_per_step = backward_passes_per_step
        self._allreduce_delay = {v: self.backward_passes_per_step
                                 for _, v in sorted(named_parameters, key=lambda kv: kv[0])}
        self.op = op
        self.gradient_predivide_factor = gradient_predivide_factor
        self._handles = {}
        self._grad_accs = []
        self._requires_update = set()
        self._synchronized = False
        self._should_synchronize = True

        # terse: compressed model-difference mode
        if error_feedback not in (None, "ef", "saef"):
            raise ValueError("error_feedback must be None, 'ef' or 'saef', not %r"
                             % (error_feedback,))
        if error_average_period is not None and (not isinstance(error_average_period, int)
                                                 or error_average_period < 1):
            raise ValueError("error_average_period must be None or a positive int")
        self._ef = error_feedback
        self._ef_period = error_average_period
        self._double_way = bool(double_way)
        self._terse_mode = isinstance(compression, TerseCompression) or error_feedback is not None
        if self._terse_mode:
            if op != Average:
                raise ValueError("compressed DistributedOptimizer supports op=Average only")
            self._compressor = as_terse(compression)
            # the parameters the error feedback covers, fixed at construction, sorted by name
            self._ef_named = [(n, p) for n, p in self._named_params() if p.requires_grad]
            names = [n for n, _ in self._ef_named]
            self._ef_state = _core.ErrorFeedback(
                [tuple(p.shape) for _, p in self._ef_named], self._compressor,
                mode=error_feedback or "none", period=error_average_period or 0,
                double_way=self._double_way, names=["terse.opt." + n for n in names],
                comm=mpi_ops._eng().comm)
            self._ef_key = "%08x" % (zlib.crc32("\0".join(names).encode()) & 0xFFFFFFFF)
            self._prepared_step = None  # ef step whose terse_ef_prepare has run here
            self._consensus = None  # SAEF: x_t per parameter, flat float32 (params hold x_t - e_k)
            self._in_consensus = False
            # Bytes of this worker's compressed messages so far, per tensor and step: by
            # default terse_compress_max_bytes (exact for sign/randk/fp16/none, an upper bound
            # for topk and induced, whose index coding varies); with exact_bytes_sent = True
            # the size of the terse_compress message of each Delta_k (one more compression per
            # step, for benchmarks).
            # wire_bytes_sent is what the transport really sent (free, from the C state).
            self.bytes_sent = 0
            self.exact_bytes_sent = False
        elif double_way or error_average_period is not None:
            raise ValueError("double_way and error_average_period need a terse compressor or "
                             "error_feedback")

        if size() > 1 and not self._terse_mode:
            self._register_hooks()

    @property
    def wire_bytes_sent(self):
        """Bytes this worker's compressed exchanges put on the wire (compressed mode only)."""
        return self._ef_state.wire_bytes_sent if self._terse_mode else None

    @staticmethod
    def find_duplicates(lst):
        seen = set()
        dups = set()
        for el in lst:
            if el in seen:
                dups.add(el)
            seen.add(el)
        return dups

    def set_backward_passes_per_step(self, passes):
        self.backward_passes_per_step = passes
        for p in self._allreduce_delay:
            self._allreduce_delay[p] = self.backward_passes_per_step

    # -- Horovod dense mode --------------------------------------------------------------------
    def _register_hooks(self):
        for param_group in self.param_groups:
            for p in param_group["params"]:
                if p.requires_grad:
                    self._requires_update.add(p)
                    p_tmp = p.expand_as(p)
                    grad_acc = p_tmp.grad_fn.next_functions[0][0]
                    grad_acc.register_hook(self._make_hook(p))
                    self._grad_accs.append(grad_acc)

    def _allreduce_grad_async(self, p):
        name = self._parameter_names.get(p)
        if p.grad is None:  # a parameter unused on this rank still takes part
            p.grad = torch.zeros_like(p)
        tensor = p.grad
        tensor_compressed, ctx = self._compression.compress(tensor)
        if self.op == Average:
            prescale_factor = 1.0 / self.gradient_predivide_factor
            postscale_factor = self.gradient_predivide_factor
        else:
            prescale_factor = 1.0
            postscale_factor = 1.0
        handle = mpi_ops.allreduce_async_(tensor_compressed, name=name, op=self.op,
                                          prescale_factor=prescale_factor,
                                          postscale_factor=postscale_factor)
        return handle, ctx

    def _make_hook(self, p):
        def hook(*ignore):
            if p in self._handles and self._handles[p][0] is not None:
                if self._allreduce_delay[p] <= 0:
                    raise AssertionError(
                        "Gradients were computed more than "
                        "backward_passes_per_step times before call "
                        "to step(). Increase backward_passes_per_step to "
                        "accumulate gradients locally.")
            assert not p.grad.requires_grad
            assert self._allreduce_delay[p] > 0
            handle, ctx = None, None
            self._allreduce_delay[p] -= 1
            if self._allreduce_delay[p] == 0:
                handle, ctx = self._allreduce_grad_async(p)
            self._handles[p] = (handle, ctx)
        return hook

    def synchronize(self):
        if self._terse_mode:
            return  # compressed mode communicates in step()
        missing_p = self._requires_update - set(self._handles.keys())
        for p in sorted(missing_p, key=lambda q: self._parameter_names.get(q)):
            handle, ctx = self._allreduce_grad_async(p)
            self._handles[p] = (handle, ctx)

        for p, (handle, ctx) in self._handles.items():
            if handle is None:
                handle, ctx = self._allreduce_grad_async(p)
                self._handles[p] = (handle, ctx)
        try:
            for p, (handle, ctx) in self._handles.items():
                output = synchronize(handle)
                self._allreduce_delay[p] = self.backward_passes_per_step
                p.grad.set_(self._compression.decompress(output, ctx))
        finally:
            self._handles.clear()
        self._synchronized = True

    @contextlib.contextmanager
    def skip_synchronize(self):
        self._should_synchronize = False
        try:
            yield
        finally:
            self._should_synchronize = True

    def step(self, closure=None):
        if self._terse_mode:
            return self._terse_step_fn(closure)
        if self._should_synchronize:
            if self._synchronized:
                warnings.warn("optimizer.step() called without "
                              "optimizer.skip_synchronize() context after "
                              "optimizer.synchronize(). This can cause training "
                              "slowdown. You may want to consider using "
                              "optimizer.skip_synchronize() context if you use "
                              "optimizer.synchronize() in your code.")
            self.synchronize()
        self._synchronized = False
        return super(self.__class__, self).step(closure)

    def zero_grad(self, set_to_none=False):
        if self._handles:
            raise AssertionError("optimizer.zero_grad() was called after loss.backward() "
                                 "but before optimizer.step() or optimizer.synchronize(). "
                                 "This is prohibited as it can cause a race condition.")
        return super(self.__class__, self).zero_grad(set_to_none)

    # -- terse compressed mode -----------------------------------------------------------------
    def _named_params(self):
        return sorted(((n, p) for p, n in self._parameter_names.items()), key=lambda x: x[0])

    def _check_ef_params(self):
        now = [n for n, p in self._named_params() if p.requires_grad]
        if now != [n for n, _ in self._ef_named]:
            raise ValueError("the set of parameters with requires_grad changed after the "
                             "compressed DistributedOptimizer was created; create a new one")

    def _ef_call(self, what, fn):
        """Run a C error-feedback call that communicates in the engine thread, in the order
        all ranks agree on, and wait for it."""
        ef = self._ef_state
        sig = ("terse.ef." + what, ef.compressor.spec, ef.mode, ef.period, ef.double_way,
               self._ef_key, sum(ef.counts), ef.step)
        return synchronize(_call_async("terse.opt.%s.%s" % (self._ef_key, what), sig, fn))

    def _ef_prepare(self, write_params):
        """terse_ef_prepare for the next step: averages e_k when the period says so (then
        collective, through the engine), and with SAEF (write_params) sets p = x_t - e_k."""
        ef = self._ef_state
        x = xh = None
        if write_params:
            x = [c.numpy() for c in self._consensus]
            xh = [np.empty(c.numel(), np.float32) for c in self._consensus]

        def fn():
            return ef.prepare(x, out=xh) if x is not None else ef.prepare()
        if ef.averaging_due:
            self._ef_call("prepare", fn)
        else:
            fn()  # local: no averaging this step
        self._prepared_step = ef.step
        if write_params:
            for (n, p), a in zip(self._ef_named, xh):
                p.copy_(torch.from_numpy(a).view_as(p).to(p.dtype))

    def _terse_step_fn(self, closure):
        """One step of Algorithm 1. If the exchange fails (e.g. TerseError ERR_NONFINITE for
        a NaN/Inf Delta on any rank, raised on every rank) the parameters and the C
        error-feedback state are as before the step, but the wrapped optimizer's own state
        (momentum, ...) has taken the step: reload it from a checkpoint to retry."""
        if self._in_consensus:
            raise RuntimeError("step() inside consensus_parameters()")
        self._check_ef_params()
        saef = self._ef == "saef"
        ef = self._ef_state
        named = self._ef_named
        with torch.no_grad():
            if self._prepared_step != ef.step:  # first step here (fresh or resumed)
                self._ef_prepare(False)  # the parameters already hold the point x_t (- e_k)
            x_half = [p.detach().clone() for _, p in named]
            if saef and self._consensus is None:
                self._consensus = [xh.float().reshape(-1) + torch.from_numpy(
                    ef.worker_error(j).reshape(-1)) for j, xh in enumerate(x_half)]
        loss = super(self.__class__, self).step(closure)
        with torch.no_grad():
            d = [(xh.float() - p.detach().float()).reshape(-1).contiguous()
                 for xh, (_, p) in zip(x_half, named)]
            dn = [t.numpy() for t in d]
            sent = ef.wire_bytes(dn) if self.exact_bytes_sent else ef.message_bytes
            try:
                self._ef_call("exchange", lambda: ef.exchange(dn, out=dn))
            except BaseException:
                # the C state is unchanged; so are the parameters (the wrapped optimizer's own
                # state, e.g. momentum, has taken the step)
                for (_, p), xh in zip(named, x_half):
                    p.copy_(xh)
                raise
            self.bytes_sent += sent
            for j, (n, p) in enumerate(named):
                x_t = self._consensus[j] if saef else x_half[j].float().reshape(-1)
                x_new = x_t - d[j]  # d now holds the update avg_k C(Delta_k)
                if saef:
                    self._consensus[j] = x_new
                p.copy_(x_new.view_as(p).to(p.dtype))
            self._ef_prepare(saef)
        return loss

    @property
    def _terse_step(self):
        return self._ef_state.step

    def worker_errors(self):
        """This rank's error e_k per parameter name (copies; empty without error feedback)."""
        if not self._terse_mode or not self._ef:
            return {}
        return {n: torch.from_numpy(self._ef_state.worker_error(j)).view_as(p)
                for j, (n, p) in enumerate(self._ef_named)}

    def server_errors(self):
        """The server error e_s per parameter name (double-way only; copies)."""
        if not self._terse_mode or not self._double_way:
            return {}
        return {n: torch.from_numpy(self._ef_state.server_error(j)).view_as(p)
                for j, (n, p) in enumerate(self._ef_named)}

    @contextlib.contextmanager
    def consensus_parameters(self):
        """Within the block the parameters hold the consensus model x_t (identical on all
        ranks): for evaluation and checkpoints. Only SAEF parameters differ from x_t."""
        if (not self._terse_mode or self._ef != "saef" or self._in_consensus
                or self._consensus is None):
            yield
            return
        saved = []
        with torch.no_grad():
            for (n, p), c in zip(self._ef_named, self._consensus):
                saved.append(p.detach().clone())
                p.copy_(c.view_as(p).to(p.dtype))
        self._in_consensus = True
        try:
            yield
        finally:
            self._in_consensus = False
            with torch.no_grad():
                for (n, p), s in zip(self._ef_named, saved):
                    p.copy_(s)

    def state_dict(self):
        sd = super(self.__class__, self).state_dict()
        if self._terse_mode:
            ef = self._ef_state
            sd["terse"] = {
                "version": 2,
                "step": ef.step,
                "compressor": self._compressor.spec,
                "error_feedback": self._ef,
                "error_average_period": self._ef_period,
                "double_way": self._double_way,
                "names": [n for n, _ in self._ef_named],
                "ef_state": ef.save(),  # terse_ef_save: e_k, e_s, step, averaging, parameters
                "consensus": ({n: c.clone() for (n, _), c in zip(self._ef_named, self._consensus)}
                              if self._consensus is not None else None),
            }
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ts = state_dict.pop("terse", None)
        if self._terse_mode and ts is not None:
            if not isinstance(ts, dict) or ts.get("version") != 2 or "ef_state" not in ts:
                raise ValueError("load_state_dict: unsupported terse optimizer state (saved by "
                                 "another version of terse)")
            names = [n for n, _ in self._ef_named]
            if ts["names"] != names:
                raise ValueError("load_state_dict: the checkpoint's compressed parameters (%d) "
                                 "differ from this optimizer's (%d)" % (len(ts["names"]),
                                                                         len(names)))
            cons = ts.get("consensus")
            if self._ef == "saef" and cons is not None and set(cons) != set(names):
                raise ValueError("load_state_dict: consensus parameters missing")
            self._ef_state.restore(ts["ef_state"])  # TerseError if parameters differ
        super(self.__class__, self).load_state_dict(state_dict)
        if not self._terse_mode or ts is None:
            return
        self._prepared_step = None  # terse_ef_prepare again (it averages at most once a step)
        self._consensus = None
        if self._ef == "saef" and ts.get("consensus") is not None:
            self._consensus = [ts["consensus"][n].clone().float().reshape(-1)
                               for n, _ in self._ef_named]
            with torch.no_grad():
                for j, (n, p) in enumerate(self._ef_named):
                    e = torch.from_numpy(self._ef_state.worker_error(j).reshape(-1))
                    p.copy_((self._consensus[j] - e).view_as(p).to(p.dtype))


def DistributedOptimizer(optimizer, named_parameters=None, compression=Compression.none,
                         backward_passes_per_step=1, op=Average, gradient_predivide_factor=1.0,
                         num_groups=0, groups=None, sparse_as_dense=False, process_set=None,
                         error_feedback=None, error_average_period=None, double_way=False):
    """Wrap ``optimizer`` (any torch optimizer) for data-parallel training; see the module
    docstring. Returns an instance of a subclass of ``optimizer``'s class, as Horovod does."""
    if gradient_predivide_factor != 1.0 and op != Average:
        raise ValueError("gradient_predivide_factor not supported with op != Average")
    if op == mpi_ops.Adasum:
        raise NotImplementedError("op=Adasum is not supported by terse")
    cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
               dict(_DistributedOptimizer.__dict__))
    return cls(optimizer.param_groups, named_parameters, compression, backward_passes_per_step,
               op, gradient_predivide_factor, error_feedback, error_average_period, double_way)
