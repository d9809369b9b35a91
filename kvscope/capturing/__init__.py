"""``kvscope.capturing`` moved to ``kvscope.capture`` (removed next release)."""

from kvscope.compat import moved_module

__getattr__ = moved_module(__name__, "kvscope.capture.capturing", "kvscope.hfcache")
