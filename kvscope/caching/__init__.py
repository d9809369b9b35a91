"""KV caching explained and checked: hooked projections, attention by hand, decoding with and without the
cache, prefix reuse, FLOP counting and timing. ``run_caching`` runs all of it; figures live in
``kvscope.plots.caching`` and the command in ``kvscope.cli.caching``.

>>> from kvscope.models import load_model
>>> from kvscope.caching import run_caching
>>> model, tok, info = load_model("tiny")
>>> report = run_caching(model, tok, info, "Hello cache", "Hello world", new_tokens=4, repeats=1)
>>> report.manual_vs_model < 1e-4, report.generation_tokens_equal, report.prefix.reused  # "Hello " is shared
(True, True, 6)
"""

from kvscope.caching.decode import DecodeComparison, GenerationTrace, decode_step, greedy, timed_generation
from kvscope.caching.flops import FlopModel, generation_flops, prefix_savings, span_flops, triangle
from kvscope.caching.prefix import PrefixReuse, common_prefix, prefix_reuse
from kvscope.caching.projections import LayerProjections, apply_rope, hooked_forward, manual_attention, rope_tables
from kvscope.caching.report import CachingReport, run_caching

__all__ = ["CachingReport", "DecodeComparison", "FlopModel", "GenerationTrace", "LayerProjections", "PrefixReuse",
           "apply_rope", "common_prefix", "decode_step", "generation_flops", "greedy", "hooked_forward",
           "manual_attention", "prefix_reuse", "prefix_savings", "rope_tables", "run_caching", "span_flops",
           "timed_generation", "triangle"]
