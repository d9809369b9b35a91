"""``kvscope.evaluation`` moved to ``kvscope.bench`` (removed next release)."""

from kvscope.compat import moved_module

__getattr__ = moved_module(__name__, "kvscope.bench", "kvscope.bench.benchmark")
