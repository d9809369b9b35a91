"""``kvscope bench``: KV-cache compression judged on tasks and many samples, with 95 % intervals.

Modules: ``tasks`` (generated RULER-style tasks, registry ``TASKS``), ``texts`` and ``filler`` (our
own prose), ``data`` (a user's JSONL or Hugging Face dataset), ``configs`` (baseline, strategy@ratio,
kivi@spec), ``runner`` (one prefill per sample, every configuration against a compressed copy),
``intervals`` (Wilson, bootstrap), ``summary`` (the table, ties, guardrails), ``shard`` (accelerate
processes), ``output`` and ``report`` (files), ``api`` (``bench`` and ``BenchResult``).
"""

from kvscope.evaluation.api import BenchResult, bench

__all__ = ["BenchResult", "bench"]
