"""The compressed DistributedOptimizer: Algorithm 1 of the SAEF paper (EF / SAEF / plain
compression, single- or double-way) with the whole step in C (terse.Model, terse_model_*).

The C state owns x_t, e_k, e_s and the step count and works on the parameters' own storage:
this class passes pointers, never elements. The parameters hold the point the gradient is
evaluated at (x_t - e_k for SAEF, x_t otherwise) between steps.

Buckets: the trainable parameters in reverse registration order (the order backward makes
their gradients ready), cut into buckets of about ``bucket_bytes`` (25 MB, as DDP), the same on
every rank. With overlap (per-parameter optimizers: SGD, Adam, AdamW, ...), as soon as every
gradient of the next bucket is ready during backward, the wrapped optimizer updates that
bucket's parameters and the bucket's compressed exchange is posted (nonblocking), so bucket b
travels while backward computes the earlier layers. step() runs the buckets not run yet and
terse_model_finish: waits, commits x_{t+1}, e_k, e_s and writes the parameters' next point.
Every tensor is compressed on its own, keyed by its name and the step, so overlap and buckets
change no bit of the result. The first step, closures (LBFGS), gradient clipping between
backward and step (``synchronize()``) and ``backward_passes_per_step > 1`` run step at once.
"""
import contextlib
import warnings
import weakref

import torch

from .. import _capi as C
from .._core import tensor_id_of
from .._model import Model
from . import mpi_ops
from .compression import as_terse, choice_of

BUCKET_BYTES = 25 << 20
_PARAM_DTYPES = {torch.float32: C.DTYPE_FLOAT32, torch.float64: C.DTYPE_FLOAT64,
                 torch.float16: C.DTYPE_FLOAT16, torch.bfloat16: C.DTYPE_BFLOAT16}
# Optimizers whose step updates every parameter from its own gradient and state only, so a
# bucket can take its step before the others have their gradients.
PER_PARAMETER = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop,
                 torch.optim.Adagrad, torch.optim.Adadelta, torch.optim.Adamax,
                 torch.optim.NAdam, torch.optim.RAdam, torch.optim.ASGD, torch.optim.Rprop)


def make_buckets(sizes, bucket_bytes):
    """Bucket ends (tensor indices, in the given order) of about ``bucket_bytes`` each."""
    ends, acc = [], 0
    for j, n in enumerate(sizes):
        acc += n
        if acc >= bucket_bytes:
            ends.append(j + 1)
            acc = 0
    if not ends or ends[-1] != len(sizes):
        ends.append(len(sizes))
    return ends


def _close(model, comm):
    model.close()
    comm.destroy()


class _CompressedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, named, compression, backward_passes_per_step, error_feedback,
                 error_average_period, double_way, bucket_bytes, overlap):
        super(self.__class__, self).__init__(params)
        if error_feedback not in (None, "ef", "saef"):
            raise ValueError("error_feedback must be None, 'ef' or 'saef', not %r"
                             % (error_feedback,))
        if error_average_period is not None and (not isinstance(error_average_period, int)
                                                 or error_average_period < 1):
            raise ValueError("error_average_period must be None or a positive int")
        self._ef = error_feedback
        self._ef_period = error_average_period
        self._double_way = bool(double_way)
        self._compressor = as_terse(compression)
        self._algorithm, self._hierarchy = choice_of(compression)
        self.backward_passes_per_step = backward_passes_per_step
        # C order: reverse registration order, the order backward produces the gradients
        self._ef_named = [(n, p) for n, p in named if p.requires_grad][::-1]
        for n, p in self._ef_named:
            if p.dtype not in _PARAM_DTYPES or p.device.type != "cpu" or not p.is_contiguous():
                raise ValueError("compressed DistributedOptimizer: parameter %r must be a "
                                 "contiguous CPU tensor of float32, float64, float16 or "
                                 "bfloat16 (got %s %s)" % (n, p.dtype, p.device))
        sizes = [p.numel() * p.element_size() for _, p in self._ef_named]
        ends = make_buckets(sizes, bucket_bytes)
        self._bucket_params = [[p for _, p in self._ef_named[lo:hi]]
                               for lo, hi in zip([0] + ends[:-1], ends)]
        self._bucket_of = {p: b for b, ps in enumerate(self._bucket_params) for p in ps}
        comm = mpi_ops.dup_comm()  # the model's exchanges run from this thread, not the engine's
        self._model = Model(
            [(tensor_id_of("terse.opt." + n), p.numel(), _PARAM_DTYPES[p.dtype])
             for n, p in self._ef_named], self._compressor.spec, mode=error_feedback or "none",
            period=error_average_period, double_way=double_way, buckets=ends, comm=comm,
            algorithm=self._algorithm, hierarchy=self._hierarchy)
        self._finalizer = weakref.finalize(self, _close, self._model, comm)
        self.message_bytes = sum(self._model.compressor.max_bytes(p.numel())
                                 for _, p in self._ef_named if p.numel())
        # Bytes of this worker's compressed messages so far: by default terse_compress_max_bytes
        # per tensor and step (exact for sign/randk/fp16/none, a bound for topk/induced); with
        # exact_bytes_sent = True the size of each Delta_k's message (one more compression per
        # step, step at once). wire_bytes_sent is what the transport sent.
        self.bytes_sent = 0
        self.exact_bytes_sent = False
        self._in_consensus = False
        self._overlap = self._overlap_choice(overlap)
        self._ready = {}  # parameter -> its gradient's version when it became ready this step
        self._ptrs = None    # this step's pointer array
        if self._overlap:
            self._grad_accs = []
            for _, p in self._ef_named:
                acc = p.expand_as(p).grad_fn.next_functions[0][0]
                acc.register_hook(self._make_hook(p))
                self._grad_accs.append(acc)

    def _overlap_choice(self, overlap):
        why = None
        if self.backward_passes_per_step != 1:
            why = "backward_passes_per_step > 1"
        elif not isinstance(self, PER_PARAMETER) and not overlap:
            why = "%s is not a per-parameter optimizer" % type(self).__bases__[0].__name__
        if overlap is False:
            return False
        if why is not None:
            warnings.warn("terse: compressed exchanges run after backward (no overlap): " + why)
            return False
        return mpi_ops.size() > 1 or overlap is True

    @property
    def wire_bytes_sent(self):
        """Bytes this worker's compressed exchanges put on the wire."""
        return self._model.bytes_sent

    @property
    def _terse_step(self):
        return self._model.step

    # -- overlap ---------------------------------------------------------------------------
    def _make_hook(self, p):
        def hook(*_):
            self._grad_ready(p)
        return hook

    def _overlap_live(self):
        return (self._overlap and self._model.has_point and not self.exact_bytes_sent
                and not self._in_consensus)

    def _grad_ready(self, p):
        if p in self._ready and self._model.posted:
            raise AssertionError("Gradients were computed more than backward_passes_per_step "
                                 "times before call to step(). Increase "
                                 "backward_passes_per_step to accumulate gradients locally.")
        # versions tell step() whether gradients changed after backward (clipping, ...)
        self._ready[p] = p.grad._version if p.grad is not None else -1
        if not self._overlap_live():
            return
        nb = len(self._bucket_params)
        while self._model.posted < nb and all(
                q in self._ready for q in self._bucket_params[self._model.posted]):
            self._run_bucket(self._model.posted)
        self._model.progress()

    def _pointers(self):
        """This step's pointer array (the storage does not move within a step)."""
        if self._ptrs is None:
            self._ptrs = self._fresh_pointers()
        return self._ptrs

    def _fresh_pointers(self):
        return self._model.pointers([p.data_ptr() for _, p in self._ef_named])

    def _local_step(self, params, closure=None):
        """The wrapped optimizer's step on ``params`` only (all of them when None)."""
        if params is None:
            return super(self.__class__, self).step(closure)
        keep = set(params)
        saved = [g["params"] for g in self.param_groups]
        for g in self.param_groups:
            g["params"] = [q for q in g["params"] if q in keep]
        try:
            return super(self.__class__, self).step()
        finally:
            for g, ps in zip(self.param_groups, saved):
                g["params"] = ps

    def _grads_changed(self):
        """Parameters whose gradient changed after backward made it ready (in place, e.g.
        clip_grad_norm_, or replaced): the overlapped update must not run before that."""
        return [p for p, v in self._ready.items()
                if (p.grad._version if p.grad is not None else -1) != v]

    def _run_bucket(self, b):
        self._local_step(self._bucket_params[b])
        self._model.post(b, self._pointers())

    def synchronize(self):
        """Horovod's recipe for gradient clipping between backward and step: here it turns the
        overlap off (the wrapped optimizer must see the clipped gradients)."""
        if self._overlap:
            warnings.warn("terse: synchronize() before step(): compressed exchanges run after "
                          "backward from now on (no overlap)")
            self._overlap = False
            if self._model.posted:
                warnings.warn("terse: %d bucket(s) of this step already took their step with "
                              "unclipped gradients" % self._model.posted)

    @contextlib.contextmanager
    def skip_synchronize(self):
        yield

    # -- the step --------------------------------------------------------------------------
    def _check_ef_params(self):
        for _, p in self._ef_named:
            if not p.requires_grad:
                raise ValueError("the set of parameters with requires_grad changed after the "
                                 "compressed DistributedOptimizer was created; create a new one")

    def step(self, closure=None):
        """One step of Algorithm 1. If the exchange fails (e.g. TerseError ERR_NONFINITE for a
        NaN/Inf Delta on any rank, raised on every rank) the parameters and the C state are
        as before the step, but the wrapped optimizer's own state (momentum, ...) has taken
        the step: reload it from a checkpoint to retry."""
        if self._in_consensus:
            raise RuntimeError("step() inside consensus_parameters()")
        self._check_ef_params()
        model = self._model
        ptrs = self._pointers()
        if self._overlap and self._grads_changed():
            warnings.warn("terse: gradients changed between backward and step() (e.g. "
                          "clipping): compressed exchanges run after backward from now on"
                          + (" (%d bucket(s) of this step already took their step)"
                             % model.posted if model.posted else ""))
            self._overlap = False
        at_once = model.posted == 0 and (closure is not None or not self._overlap_live())
        loss = None
        try:
            if not model.has_point:  # first step: the parameters hold x_t
                model.set_point(ptrs)
            if at_once:
                loss = self._local_step(None, closure)
            else:
                for b in range(model.posted, len(self._bucket_params)):
                    self._run_bucket(b)
            sent = self._exact_message_bytes() if self.exact_bytes_sent else self.message_bytes
            model.finish(ptrs)
            self.bytes_sent += sent
        finally:
            self._ready.clear()
            self._ptrs = None
        return loss

    def _exact_message_bytes(self):
        """Sizes of this worker's messages of C(Delta_k) now (statistics; one compression)."""
        total, saef, step = 0, self._ef == "saef", self._model.step
        for j, (n, p) in enumerate(self._ef_named):
            if not p.numel():
                continue
            x = torch.from_numpy(self._model.consensus(j)).float()
            e = torch.from_numpy(self._model.worker_error(j)).float()
            xh = x - e if saef else x
            d = (xh - p.detach().reshape(-1).float()) + (e if self._ef else 0)
            try:
                total += len(self._model.compressor.compress(
                    d.numpy(), tensor_id_of("terse.opt." + n), step)[0])
            except Exception:  # noqa: B902 - non-finite: the exchange fails anyway
                total += self._model.compressor.max_bytes(p.numel())
        return total

    # -- state -----------------------------------------------------------------------------
    def worker_errors(self):
        """This rank's error e_k per parameter name (copies; empty without error feedback)."""
        if not self._ef:
            return {}
        return {n: torch.from_numpy(self._model.worker_error(j)).view(p.shape)
                for j, (n, p) in enumerate(self._ef_named)}

    def server_errors(self):
        """The server error e_s per parameter name (double-way only; copies)."""
        if not self._double_way:
            return {}
        return {n: torch.from_numpy(self._model.server_error(j)).view(p.shape)
                for j, (n, p) in enumerate(self._ef_named)}

    @contextlib.contextmanager
    def consensus_parameters(self):
        """Within the block the parameters hold the consensus model x_t (identical on all
        ranks): for evaluation and checkpoints. Only SAEF parameters differ from x_t."""
        if self._ef != "saef" or self._in_consensus or not self._model.has_point:
            yield
            return
        for j, (_, p) in enumerate(self._ef_named):
            self._model.consensus_into(j, p.data_ptr())
        self._in_consensus = True
        try:
            yield
        finally:
            self._in_consensus = False
            self._model.write_point(self._fresh_pointers())

    def state_dict(self):
        sd = super(self.__class__, self).state_dict()
        sd["terse"] = {
            "version": 3,
            "step": self._model.step,
            "compressor": self._compressor.spec,
            "error_feedback": self._ef,
            "error_average_period": self._ef_period,
            "double_way": self._double_way,
            "names": [n for n, _ in self._ef_named],
            "ef_state": self._model.save(),  # terse_model_save: x_t, e_k, e_s, step, ...
        }
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        ts = state_dict.pop("terse", None)
        if ts is not None:
            if not isinstance(ts, dict) or ts.get("version") != 3 or "ef_state" not in ts:
                raise ValueError("load_state_dict: unsupported terse optimizer state (saved by "
                                 "another version of terse)")
            names = [n for n, _ in self._ef_named]
            if ts["names"] != names:
                raise ValueError("load_state_dict: the checkpoint's compressed parameters (%d) "
                                 "differ from this optimizer's (%d)" % (len(ts["names"]),
                                                                         len(names)))
            with torch.no_grad():
                self._model.restore(ts["ef_state"], self._fresh_pointers())
        super(self.__class__, self).load_state_dict(state_dict)
