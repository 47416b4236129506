"""DistributedOptimizer: Horovod's gradient-allreduce optimizer, and terse's compressed
model-difference optimizer with error feedback (EF / SAEF, Algorithm 1 of the SAEF paper).

Dense mode (compression=Compression.none or .fp16, no error_feedback) is Horovod's: hooks on
every parameter's gradient accumulator start an asynchronous, name-matched allreduce during
backward; step() waits for them and runs the wrapped optimizer.

Compressed mode (a terse compressor, or any error_feedback): backward stays local. step() runs
the wrapped optimizer locally from the point the parameters hold (x_t for EF, x_t - e_k for
SAEF) to x', forms per parameter Delta_k = e_k + x_half - x', sends C(Delta_k) (layer-wise, one
compressed allreduce per parameter, all in flight together), keeps e_k = Delta_k - C(Delta_k),
and sets x_{t+1} = x_t - avg_k C(Delta_k) (identical on all ranks). With SAEF the parameters
then hold x_{t+1} - e_k; every ``error_average_period`` steps the errors are averaged across
ranks. ``consensus_parameters()`` swaps x_t in temporarily.
"""
import contextlib
import warnings

import torch

from .compression import Compression, TerseCompression, as_terse
from . import mpi_ops
from .mpi_ops import Average, _register, compressed_allreduce_submit, size, synchronize


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
            self._terse_step = 0
            self._errors = {}  # name -> float32 tensor e_k (EF/SAEF)
            self._server_errors = {}  # name -> float32 tensor e_s (double-way)
            self._consensus = {}  # name -> x_t (SAEF only; EF/plain hold x_t in the params)
            self._in_consensus = False
            self.bytes_sent = 0
        elif double_way or error_average_period is not None:
            raise ValueError("double_way and error_average_period need a terse compressor or "
                             "error_feedback")

        if size() > 1 and not self._terse_mode:
            self._register_hooks()

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

    def _terse_step_fn(self, closure):
        if self._in_consensus:
            raise RuntimeError("step() inside consensus_parameters()")
        saef = self._ef == "saef"
        named = [(n, p) for n, p in self._named_params() if p.requires_grad]
        x_half = {}
        with torch.no_grad():
            for n, p in named:
                x_half[n] = p.detach().clone()
                if saef and n not in self._consensus:
                    self._consensus[n] = x_half[n].float() + self._err(n, p).view_as(p)
        loss = super(self.__class__, self).step(closure)
        t = self._terse_step
        ops = []
        with torch.no_grad():
            for n, p in named:
                delta = (x_half[n].float() - p.detach().float()).reshape(-1)
                err = self._errors.get(n) if self._ef else None
                if err is not None:
                    delta = delta + err
                delta = delta.contiguous().numpy()
                e_out = None
                if self._ef:
                    e_out = self._err(n, p).numpy()
                se = None
                if self._double_way:
                    se = self._server_errors.setdefault(
                        n, torch.zeros(p.numel(), dtype=torch.float32)).numpy()
                op = compressed_allreduce_submit(delta, self._compressor, "terse.opt." + n, t,
                                                 server_error=se, error_out=e_out)
                ops.append((n, p, op, _register(op, lambda op=op: op.result)))
            err = None
            for n, p, op, h in ops:
                try:
                    g = torch.from_numpy(synchronize(h)).view_as(p)
                except Exception as e:  # wait for every op before raising
                    err = err or e
                    continue
                if op.extra > 0:
                    self.bytes_sent += op.extra
                x_t = self._consensus[n] if saef else x_half[n].float()
                x_new = x_t - g
                if saef:
                    self._consensus[n] = x_new
                p.copy_(x_new.to(p.dtype))
            if err is not None:
                raise err
            self._terse_step = t + 1
            if self._ef and self._ef_period and self._terse_step % self._ef_period == 0:
                hs = [mpi_ops.allreduce_async_(self._err(n, p), name="terse.ef_avg." + n,
                                               op=Average) for n, p in named]
                for h in hs:
                    synchronize(h)
            if saef:
                for n, p in named:
                    p.copy_((self._consensus[n] - self._err(n, p).view_as(p)).to(p.dtype))
        return loss

    def _err(self, n, p):
        e = self._errors.get(n)
        if e is None:
            e = self._errors[n] = torch.zeros(p.numel(), dtype=torch.float32)
        return e

    @contextlib.contextmanager
    def consensus_parameters(self):
        """Within the block the parameters hold the consensus model x_t (identical on all
        ranks): for evaluation and checkpoints. Only SAEF parameters differ from x_t."""
        if not self._terse_mode or self._ef != "saef" or self._in_consensus:
            yield
            return
        saved = {}
        with torch.no_grad():
            for n, p in self._named_params():
                if n in self._consensus:
                    saved[n] = p.detach().clone()
                    p.copy_(self._consensus[n].to(p.dtype))
        self._in_consensus = True
        try:
            yield
        finally:
            self._in_consensus = False
            with torch.no_grad():
                for n, p in self._named_params():
                    if n in saved:
                        p.copy_(saved[n])

    def state_dict(self):
        sd = super(self.__class__, self).state_dict()
        if self._terse_mode:
            sd["terse"] = {
                "step": self._terse_step,
                "compressor": self._compressor.spec,
                "error_feedback": self._ef,
                "errors": {n: e.clone() for n, e in self._errors.items()},
                "server_errors": {n: e.clone() for n, e in self._server_errors.items()},
                "consensus": {n: x.clone() for n, x in self._consensus.items()},
            }
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ts = state_dict.pop("terse", None)
        super(self.__class__, self).load_state_dict(state_dict)
        if not self._terse_mode or ts is None:
            return
        self._terse_step = int(ts["step"])
        self._errors = {n: e.clone().float() for n, e in ts["errors"].items()}
        self._server_errors = {n: e.clone().float() for n, e in ts["server_errors"].items()}
        self._consensus = {n: x.clone() for n, x in ts["consensus"].items()}
        if self._ef == "saef":
            with torch.no_grad():
                for n, p in self._named_params():
                    if n in self._consensus:
                        p.copy_((self._consensus[n] - self._err(n, p).view_as(p)).to(p.dtype))


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
