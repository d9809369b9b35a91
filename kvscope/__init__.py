"""kvscope: see, measure and shrink the KV cache of a transformer language model.

Vocabulary used everywhere: ``layer``, ``kv_head``, ``q_head``, ``position``, ``head_dim``.

The top-level names are resolved lazily, on first access, so ``import kvscope`` imports neither torch
nor transformers and changes no global state (``kvscope memory`` answers in a fraction of a second)::

    import kvscope as ks
    model, tokenizer, info = ks.load_model("embedded")
    snap = ks.capture(model, tokenizer, "The capital of France is Paris.", attention=True)
    result = ks.analyze(snap)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> "module:attribute"; each capability's owner keeps its entry point at this address.
API: dict[str, str] = {
    "load_model": "kvscope.models:load_model",
    "capture": "kvscope.capturing:capture",
    "analyze": "kvscope.report.api:analyze",
    "compare": "kvscope.report.compare:compare",
    "compare_pruning": "kvscope.prune.api:compare_pruning",
    "bench": "kvscope.evaluation:bench",
    "explain_caching": "kvscope.caching:explain_caching",
    "estimate_memory": "kvscope.memory.api:estimate_memory",
    "run_mas": "kvscope.mas:run_mas",
    "KVSnapshot": "kvscope.snapshot:KVSnapshot",
    "view": "kvscope.view.api:view",
}

__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    """Import ``name``'s module on first access and cache the attribute in this module."""
    target = API.get(name)
    if target is None:
        raise AttributeError(f"module 'kvscope' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(API))
