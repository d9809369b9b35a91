"""``ks.compress(model, strategy, ratio=..., budget=..., quantize=...)``: kvscope's strategies inside the
caller's own ``model.generate`` or forward loop (see :mod:`kvscope.compress.manager`)."""

from kvscope.compress.manager import Compressor, CompressStats, compress, strategy

__all__ = ["compress", "strategy", "Compressor", "CompressStats"]
