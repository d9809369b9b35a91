"""``kvscope.report.api`` moved to ``kvscope.analyze.analysis`` (removed next release)."""

from kvscope.compat import moved_module

__getattr__ = moved_module(__name__, "kvscope.analyze.analysis")
