"""``kvscope bench``: KV-cache compression judged on tasks and many samples, with 95 % intervals.

Modules: ``tasks`` (generated RULER-style tasks, registry ``TASKS``), ``texts`` and ``filler`` (our
own prose), ``data`` (a user's JSONL or Hugging Face dataset), ``sample_runner`` (one prefill per
sample, every configuration against a compressed copy), ``summary`` (the table, ties, guardrails;
intervals from ``kvscope.stats``), ``shard`` (accelerate processes), ``bench_output``, ``bench_html``
and ``bench_figures`` (files), ``benchmark`` (``bench`` and ``BenchResult``).
The configurations (baseline, strategy@ratio, kivi@spec), their grid and settings come from the engine
shared with ``kvscope prune`` and ``ks.compress``: ``kvscope.prune.engine``.
"""

from kvscope.bench.benchmark import BenchResult, bench

__all__ = ["BenchResult", "bench"]
