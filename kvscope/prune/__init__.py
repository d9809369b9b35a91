"""``kvscope prune``: a KV-cache compression lab with measured perplexity, latency and memory.

Library entry points (``kvscope.prune.pruning``, imported lazily): ``compare_pruning`` (baseline against
one plan), ``sweep_pruning``, ``scan_pruning`` and ``token_importance`` (leave-one-out). One text is
an example, not a ranking: ``kvscope bench`` compares strategies over many samples.

The prompt is prefilled once (``evict.prefill``); each configuration builds a pruned or quantized
copy of that cache (``evict.build_cache``) and scores the continuation against it. Modules:
``attention`` (masked causal attention), ``evict`` (mechanics), ``strategies`` (token eviction
registry), ``engine`` (the configurations, grid, ratio check and settings that prune, bench and
``ks.compress`` share), ``lab`` (baseline vs pruned with timing), ``sweep``, ``scan``, ``loo`` (leave-one-out),
``report`` (writes a mode's files), ``html`` (notebook tables) and ``texts`` (default texts).
"""

from typing import Any

_API = ("compare_pruning", "sweep_pruning", "scan_pruning", "token_importance")


def __getattr__(name: str) -> Any:
    if name in _API:
        from kvscope.prune import pruning as api

        return getattr(api, name)
    raise AttributeError(f"module 'kvscope.prune' has no attribute {name!r}")


__all__ = list(_API)
