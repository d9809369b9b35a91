"""``kvscope memory``: GPU memory of LLM inference (weights, KV cache, batching, paging, FlashAttention).

``estimate_memory`` (``api``) is the library entry point. ``formulas`` defines the per-token and workload
numbers, ``budget`` capacity, GPUs required and the vLLM start-up budget; ``catalog`` holds the GPU and
model catalogs (``data/*.json``); ``hfconfig`` turns a Hugging Face config into a catalog entry; ``page``
builds the web page in ``web/`` and ``server`` serves it on 127.0.0.1. Nothing here imports click, rich or
torch (torch only when a config must be counted).
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_memory", "MemoryEstimate"]


def __getattr__(name: str) -> Any:  # lazy: importing the package stays cheap
    if name in __all__:
        from kvscope.memory import estimate as api

        return getattr(api, name)
    raise AttributeError(name)
