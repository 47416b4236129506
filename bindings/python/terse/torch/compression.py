"""Horovod's Compression.none / Compression.fp16, plus terse's compressors for the
DistributedOptimizer (topk, sign, randk, induced)."""
import torch

from .._core import Compressor


class Compressor_:  # Horovod's interface
    @staticmethod
    def compress(tensor):
        raise NotImplementedError

    @staticmethod
    def decompress(tensor, ctx):
        raise NotImplementedError


class NoneCompressor(Compressor_):
    """No compression."""

    terse_spec = "none"

    @staticmethod
    def compress(tensor):
        return tensor, None

    @staticmethod
    def decompress(tensor, ctx):
        return tensor


class FP16Compressor(Compressor_):
    """Cast floating-point tensors to float16 for the allreduce, back afterwards."""

    terse_spec = "fp16"

    @staticmethod
    def compress(tensor):
        if tensor.dtype.is_floating_point:
            return tensor.type(torch.float16), tensor.dtype
        return tensor, tensor.dtype

    @staticmethod
    def decompress(tensor, ctx):
        return tensor.type(ctx) if ctx is not None and ctx.is_floating_point else tensor


class TerseCompression:
    """A terse compressor used layer-wise by DistributedOptimizer / ddp_comm_hook (or by
    allreduce(..., compression=...) for a one-shot compressed average).

    ``algorithm`` (auto|sparse_allgather|sparse_rs_ag|sign_allgather|sign_a2a_ag|dense) and
    ``hierarchy`` (none|node) choose the compressed allreduce for every exchange made with it;
    None: the communicator's, i.e. TERSE_COMPRESSED_ALGO / TERSE_HIERARCHY. Every rank must
    choose the same (else ERR_MISMATCH); the hierarchy changes what error feedback sees."""

    def __init__(self, spec, algorithm=None, hierarchy=None):
        self.compressor = Compressor.of(spec)
        for kind, v, words in (("algorithm", algorithm, _ALGORITHMS),
                               ("hierarchy", hierarchy, _HIERARCHIES)):
            if v is not None and v not in words:
                raise ValueError("%s must be None or one of %s, not %r"
                                 % (kind, "|".join(words), v))
        self.algorithm = algorithm
        self.hierarchy = hierarchy

    @property
    def spec(self):
        return self.compressor.spec

    def compress(self, tensor):
        return tensor, None

    def decompress(self, tensor, ctx):
        return tensor

    def __repr__(self):
        extra = "".join(", %s=%r" % (k, v) for k, v in (("algorithm", self.algorithm),
                                                         ("hierarchy", self.hierarchy)) if v)
        return "Compression(%r%s)" % (self.spec, extra)


_ALGORITHMS = ("auto", "sparse_allgather", "sparse_rs_ag", "sign_allgather", "sign_a2a_ag",
               "dense")
_HIERARCHIES = ("none", "node")


class Compression:
    """Compression algorithms: Horovod's ``none`` and ``fp16``; terse's ``topk(ratio)``,
    ``sign()``, ``randk(ratio)``, ``induced(topk_ratio, randk_ratio)`` (each with an optional
    ``block_size``), or ``Compression.terse("topk:0.01,block=4096")``."""

    none = NoneCompressor
    fp16 = FP16Compressor

    @staticmethod
    def topk(ratio, block_size=0, algorithm=None, hierarchy=None):
        return TerseCompression(Compressor.topk(ratio, block_size), algorithm, hierarchy)

    @staticmethod
    def sign(block_size=0, algorithm=None, hierarchy=None):
        return TerseCompression(Compressor.sign(block_size), algorithm, hierarchy)

    @staticmethod
    def randk(ratio, block_size=0, seed=0, algorithm=None, hierarchy=None):
        return TerseCompression(Compressor.randk(ratio, block_size, seed), algorithm, hierarchy)

    @staticmethod
    def induced(topk_ratio, randk_ratio, block_size=0, seed=0, algorithm=None, hierarchy=None):
        return TerseCompression(Compressor.induced(topk_ratio, randk_ratio, block_size, seed),
                                algorithm, hierarchy)

    @staticmethod
    def terse(spec, algorithm=None, hierarchy=None):
        return TerseCompression(spec, algorithm, hierarchy)


def choice_of(compression):
    """(algorithm, hierarchy) a compression argument chooses; (None, None): the communicator's."""
    if isinstance(compression, TerseCompression):
        return compression.algorithm, compression.hierarchy
    return None, None


def as_terse(compression):
    """A terse Compressor for any compression argument (class, TerseCompression, spec)."""
    if isinstance(compression, TerseCompression):
        return compression.compressor
    if isinstance(compression, (str, Compressor)):
        return Compressor.of(compression)
    spec = getattr(compression, "terse_spec", None)
    if spec is None:
        raise TypeError("unsupported compression %r" % (compression,))
    return Compressor(spec)
