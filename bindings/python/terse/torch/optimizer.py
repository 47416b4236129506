"""DistributedOptimizer: Horovod's gradient-allreduce optimizer (this file), or terse's
compressed model-difference optimizer with error feedback (EF / SAEF, Algorithm 1 of the SAEF
paper, the whole step in C: compressed_optimizer.py).

Dense mode (compression=Compression.none or .fp16, no error_feedback) is Horovod's: hooks on
every parameter's gradient accumulator start an asynchronous, name-matched allreduce during
backward; step() waits for them and runs the wrapped optimizer. Sparse gradients (embeddings
with sparse=True) are allgathered as (index, value) pairs (sparse.py), or allreduced dense with
sparse_as_dense=True. ``process_set`` limits the allreduces to a set's ranks.
"""
import contextlib
import warnings

import torch

from . import mpi_ops
from .compressed_optimizer import BUCKET_BYTES, _CompressedOptimizer
from .compression import Compression, TerseCompression
from .mpi_ops import Average, size, synchronize
from .process_sets import global_process_set
from .sparse import sparse_allreduce_async


def _named_parameters_of(optimizer, named_parameters):
    """(name, parameter) pairs covering every parameter of ``optimizer``, checked."""
    if named_parameters is not None:
        named_parameters = list(named_parameters)
    else:
        named_parameters = [("allreduce.noname.%s.%s" % (i, j), v)
                            for i, param_group in enumerate(optimizer.param_groups)
                            for j, v in enumerate(param_group["params"])]
    # make sure that named_parameters are tuples
    if any([not isinstance(p, tuple) for p in named_parameters]):
        raise ValueError("named_parameters should be a sequence of "
                         "tuples (name, parameter), usually produced by "
                         "model.named_parameters().")

    dups = _find_duplicates([k for k, _ in named_parameters])
    if len(dups) > 0:
        raise ValueError("Parameter names in named_parameters must be unique. "
                         "Found duplicates: %s" % ", ".join(dups))

    all_param_ids = {id(v) for param_group in optimizer.param_groups
                     for v in param_group["params"]}
    named_param_ids = {id(v) for k, v in named_parameters}
    unnamed_param_ids = all_param_ids - named_param_ids
    if len(unnamed_param_ids):
        raise ValueError("named_parameters was specified, but one or more model "
                         "parameters were not named. Python object ids: "
                         "%s" % ", ".join(str(id) for id in unnamed_param_ids))
    return named_parameters


def _find_duplicates(lst):
    seen = set()
    dups = set()
    for el in lst:
        if el in seen:
            dups.add(el)
        seen.add(el)
    return dups


class _DistributedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, named_parameters, compression, backward_passes_per_step=1,
                 op=Average, gradient_predivide_factor=1.0, sparse_as_dense=False,
                 process_set=global_process_set):
        super(self.__class__, self).__init__(params)
        self.sparse_as_dense = sparse_as_dense
        self.process_set = process_set
        self._compression = compression
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
        if process_set.included() and size() > 1:
            self._register_hooks()

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
        if tensor.is_sparse:
            if not self.sparse_as_dense:
                return sparse_allreduce_async(tensor, name, self.op, self.process_set), None
            tensor = tensor.to_dense()
        tensor_compressed, ctx = self._compression.compress(tensor)
        if self.op == Average:
            prescale_factor = 1.0 / self.gradient_predivide_factor
            postscale_factor = self.gradient_predivide_factor
        else:
            prescale_factor = 1.0
            postscale_factor = 1.0
        handle = mpi_ops.allreduce_async_(tensor_compressed, name=name, op=self.op,
                                          prescale_factor=prescale_factor,
                                          postscale_factor=postscale_factor,
                                          process_set=self.process_set)
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
                if callable(handle):  # a sparse gradient (sparse_allreduce_async)
                    output = handle()
                else:
                    output = self._compression.decompress(synchronize(handle), ctx)
                self._allreduce_delay[p] = self.backward_passes_per_step
                if p.grad.is_sparse:
                    if not output.is_sparse:  # sparse_as_dense: the optimizer wants sparse
                        output = output.to_sparse()
                    p.grad.zero_().add_(output)  # sparse tensors have no set_
                else:
                    p.grad.set_(output)
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


def DistributedOptimizer(optimizer, named_parameters=None, compression=Compression.none,
                         backward_passes_per_step=1, op=Average, gradient_predivide_factor=1.0,
                         num_groups=0, groups=None, sparse_as_dense=False,
                         process_set=global_process_set,
                         error_feedback=None, error_average_period=None, double_way=False,
                         bucket_bytes=BUCKET_BYTES, overlap=None):
    """Wrap ``optimizer`` (any torch optimizer) for data-parallel training; see the module
    docstring. Returns an instance of a subclass of ``optimizer``'s class, as Horovod does.
    Compressed mode (a terse compressor, or any ``error_feedback``) takes ``bucket_bytes``
    and ``overlap`` (None: on for per-parameter optimizers; see compressed_optimizer.py)."""
    if gradient_predivide_factor != 1.0 and op != Average:
        raise ValueError("gradient_predivide_factor not supported with op != Average")
    if op == mpi_ops.Adasum:
        raise NotImplementedError("op=Adasum is not supported by terse")
    named = _named_parameters_of(optimizer, named_parameters)
    if process_set is None:
        process_set = global_process_set
    if isinstance(compression, TerseCompression) or error_feedback is not None:
        if process_set is not global_process_set:
            raise NotImplementedError("the compressed DistributedOptimizer runs on the global "
                                      "process set only")
        if op != Average:
            raise ValueError("compressed DistributedOptimizer supports op=Average only")
        cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
                   dict(_CompressedOptimizer.__dict__))
        return cls(optimizer.param_groups, named, compression, backward_passes_per_step,
                   error_feedback, error_average_period, double_way, bucket_bytes, overlap)
    if double_way or error_average_period is not None:
        raise ValueError("double_way and error_average_period need a terse compressor or "
                         "error_feedback")
    cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
               dict(_DistributedOptimizer.__dict__))
    return cls(optimizer.param_groups, named, compression, backward_passes_per_step, op,
               gradient_predivide_factor, sparse_as_dense, process_set)
