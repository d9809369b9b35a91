"""KV caching explained and checked: hooked projections, attention by hand, decoding with and without the
cache, prefix reuse, FLOP counting and timing. ``explain_caching`` runs all of it and returns a
``CachingReport``; figures live in ``kvscope.caching.caching_figures`` and the command in ``kvscope.cli.caching``.

>>> from kvscope.models import load_model
>>> from kvscope.caching import explain_caching
>>> model, tok, info = load_model("tiny")
>>> report = explain_caching(model, tok, "Hello cache", "Hello world", new_tokens=4, repeats=1)
>>> report.decode.cached_slots_before, report.decode.step_query_rows  # one new query row reads the cache
(2, 1)
"""

from kvscope.caching.explain import CachingReport, explain_caching
from kvscope.caching.flops import FlopModel, generation_flops, prefix_savings, span_flops, triangle
from kvscope.caching.prefix import PrefixReuse, common_prefix, prefix_reuse
from kvscope.caching.projections import LayerProjections, apply_rope, hooked_forward, rope_tables
from kvscope.caching.stepping import DecodeComparison, GenerationTrace, decode_step, greedy, timed_generation

__all__ = [
    "CachingReport",
    "DecodeComparison",
    "FlopModel",
    "GenerationTrace",
    "LayerProjections",
    "PrefixReuse",
    "apply_rope",
    "common_prefix",
    "decode_step",
    "explain_caching",
    "generation_flops",
    "greedy",
    "hooked_forward",
    "prefix_reuse",
    "prefix_savings",
    "rope_tables",
    "span_flops",
    "timed_generation",
    "triangle",
]
