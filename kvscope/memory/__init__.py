"""``kvscope memory``: GPU memory of LLM inference (weights, KV cache, batching, paging, FlashAttention).

``formulas`` defines every number; ``catalog`` holds the GPU and model catalogs (``data/*.json``);
``hfconfig`` turns a Hugging Face config into a catalog entry; ``page`` builds the web page in ``web/``
and ``server`` serves it on 127.0.0.1. Nothing here imports torch unless a config must be counted.
"""
