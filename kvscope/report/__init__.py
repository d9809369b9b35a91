"""``kvscope analyze`` outputs: ``metrics.json`` (every number the figures show) and ``report.html``;
``kvscope.report.api.analyze`` is the entry point."""

from kvscope.report.html import build_report
from kvscope.report.metrics import SCHEMA_VERSION, build_metrics, headline

__all__ = ["SCHEMA_VERSION", "build_metrics", "build_report", "headline"]
