"""``kvscope.report.compare`` moved to ``kvscope.analyze.comparison`` (removed next release)."""

from kvscope.compat import moved_module

__getattr__ = moved_module(__name__, "kvscope.analyze.comparison")
