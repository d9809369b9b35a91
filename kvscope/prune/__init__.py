"""``kvscope prune``: a KV-cache compression lab with measured perplexity, latency and memory.

The prompt is prefilled once (``evict.prefill``); each configuration builds a pruned or quantized
copy of that cache (``evict.build_cache``) and scores the continuation against it. Modules:
``attention`` (masked causal attention), ``evict`` (mechanics), ``strategies`` (token eviction
registry), ``lab`` (baseline vs pruned with timing), ``sweep``, ``scan``, ``loo`` (leave-one-out),
``report`` (runs a CLI mode, writes its files, prints its table) and ``texts`` (default texts).
"""
