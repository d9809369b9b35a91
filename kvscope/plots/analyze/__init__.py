"""``kvscope.plots.analyze`` moved to ``kvscope.analyze`` (removed next release)."""

from kvscope.compat import moved_module

__getattr__ = moved_module(__name__, "kvscope.analyze.figure_registry", "kvscope.analyze.figure_base")
