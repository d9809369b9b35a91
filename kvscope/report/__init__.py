"""``kvscope.report`` moved to ``kvscope.analyze`` (removed next release)."""

from kvscope.compat import moved_module

__getattr__ = moved_module(__name__, "kvscope.analyze.analyze_html", "kvscope.analyze.metrics")
