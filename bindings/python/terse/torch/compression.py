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
    allreduce(..., compression=...) for a one-shot compressed average)."""

    def __init__(self, spec):
        self.compressor = Compressor.of(spec)

    @property
    def spec(self):
        return self.compressor.spec

    def compress(self, tensor):
        return tensor, None

    def decompress(self, tensor, ctx):
        return tensor

    def __repr__(self):
        return "Compression(%r)" % self.spec


class Compression:
    """Compression algorithms: Horovod's ``none`` and ``fp16``; terse's ``topk(ratio)``,
    ``sign()``, ``randk(ratio)``, ``induced(topk_ratio, randk_ratio)`` (each with an optional
    ``block_size``), or ``Compression.terse("topk:0.01,block=4096")``."""

    none = NoneCompressor
    fp16 = FP16Compressor

    @staticmethod
    def topk(ratio, block_size=0):
        return TerseCompression(Compressor.topk(ratio, block_size))

    @staticmethod
    def sign(block_size=0):
        return TerseCompression(Compressor.sign(block_size))

    @staticmethod
    def randk(ratio, block_size=0, seed=0):
        return TerseCompression(Compressor.randk(ratio, block_size, seed))

    @staticmethod
    def induced(topk_ratio, randk_ratio, block_size=0, seed=0):
        return TerseCompression(Compressor.induced(topk_ratio, randk_ratio, block_size, seed))

    @staticmethod
    def terse(spec):
        return TerseCompression(spec)


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
