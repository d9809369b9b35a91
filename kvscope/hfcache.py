"""The only module that reads Hugging Face caches and finds a model's attention modules.

A cache layer holds ``[batch, kv_head, slot, head_dim]`` keys and values. Part of the core: it imports
nothing from kvscope but ``errors``, so ``attention``, ``capture`` and every command can use it.
"""

from __future__ import annotations

from typing import Any

import torch

from kvscope.errors import KvscopeError


def attention_modules(model: Any) -> list[Any]:
    """The self-attention modules, ordered by ``layer_idx`` (:func:`kvscope.archs.attention_modules`)."""
    from kvscope.archs import attention_modules as modules

    return modules(model)


def cache_layer_kv(cache: Any, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keys, values)`` of one cache layer, each ``[batch, kv_head, slot, head_dim]`` (live tensors)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        entry = layers[layer]
        if getattr(entry, "keys", None) is None:
            raise KvscopeError(f"cache layer {layer} is empty")
        return entry.keys, entry.values
    if isinstance(cache, (tuple, list)):  # legacy tuple-of-tuples
        return cache[layer][0], cache[layer][1]
    raise KvscopeError(f"unsupported cache type {type(cache).__name__}")


def cache_to_lists(cache: Any, n_layers: int, row: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Float32 CPU copies of batch row ``row``: two lists of ``[kv_head, slot, head_dim]``."""
    keys, values = [], []
    for layer in range(n_layers):
        k, v = cache_layer_kv(cache, layer)
        keys.append(k[row].detach().to(device="cpu", dtype=torch.float32, copy=True))
        values.append(v[row].detach().to(device="cpu", dtype=torch.float32, copy=True))
    return keys, values


def cache_nbytes(cache: Any) -> int:
    """Bytes held by a live cache's K and V tensors, summed over layers (as stored, any dtype)."""
    total = 0
    for entry in getattr(cache, "layers", []):
        for t in (getattr(entry, "keys", None), getattr(entry, "values", None)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def cache_from_tensors(config: Any, keys: list[torch.Tensor], values: list[torch.Tensor]) -> Any:
    """A new ``DynamicCache`` holding ``keys[layer]``/``values[layer]`` ``[batch, kv_head, slot, head_dim]``.

    The tensors are copied, so the new cache never aliases its source. Note that a cache's slot count
    is not a token position: after eviction, pass ``position_ids`` explicitly for new tokens.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for layer, (k, v) in enumerate(zip(keys, values)):
        cache.update(k.clone(), v.clone(), layer)
    return cache
