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
import sys
import types
from typing import Any

__version__ = "0.1.0"

# name -> "module:attribute"; each capability's owner keeps its entry point at this address.
API: dict[str, str] = {
    "load_model": "kvscope.models:load_model",
    "capture": "kvscope.capture.capturing:capture",
    "analyze": "kvscope.analyze.analysis:analyze",
    "compare": "kvscope.analyze.comparison:compare",
    "compare_pruning": "kvscope.prune.pruning:compare_pruning",
    "bench": "kvscope.bench:bench",
    "bench_streaming": "kvscope.bench.streaming:bench_streaming",
    "compress": "kvscope.compress:compress",
    "strategy": "kvscope.compress:strategy",
    "explain_caching": "kvscope.caching:explain_caching",
    "estimate_memory": "kvscope.memory.estimate:estimate_memory",
    "run_mas": "kvscope.mas:run_mas",
    "KVSnapshot": "kvscope.snapshot:KVSnapshot",
    "view": "kvscope.view.viewer:view",
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


class _Kvscope(types.ModuleType):
    """The ``kvscope`` module: importing a command package (``kvscope.analyze``, ``kvscope.bench``) never
    hides the function of the same name (``ks.analyze``, ``ks.bench``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in API and isinstance(value, types.ModuleType):
            return  # the import system binding a subpackage; the package stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Kvscope
