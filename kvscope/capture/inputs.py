"""What ``ks.capture`` accepts, turned into token-id rows: the one place that reads a user's inputs.

Accepted: a string; a list of strings (a batch); token ids (a list of ints, a list of lists, or an int
tensor ``[P]`` or ``[B, P]``); a ``BatchEncoding`` (padding dropped by its ``attention_mask``); chat
messages (a list of ``{"role", "content"}`` dicts, rendered by the tokenizer's chat template); or a
transformers ``Cache`` (snapshotted as it is, no forward pass). Anything else is a ``TypeError`` that
names these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

ACCEPTED = (
    "a string, a list of strings, token ids (list of ints or an int tensor [P] or [B, P]), a BatchEncoding, "
    "chat messages (a list of {'role', 'content'} dicts) or a transformers Cache (DynamicCache)"
)


def is_cache(inputs: Any) -> bool:
    """Whether ``inputs`` is a transformers cache (snapshotted without a forward pass)."""
    from transformers import Cache

    return isinstance(inputs, Cache)


def is_batch(inputs: Any) -> bool:
    """Whether ``inputs`` holds several sequences (the capture then returns one snapshot per row)."""
    if isinstance(inputs, list) and inputs and all(isinstance(x, (str, list)) for x in inputs):
        return True
    ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else inputs
    return isinstance(ids, torch.Tensor) and ids.ndim == 2 and ids.shape[0] > 1


def _is_chat(inputs: Any) -> bool:
    return isinstance(inputs, list) and bool(inputs) and all(isinstance(m, Mapping) and "role" in m for m in inputs)


def rows(tokenizer: Any, inputs: Any) -> list[tuple[torch.Tensor | None, str]]:
    """``[(ids [1, P] or None, text)]``: token ids per sequence (None: a string still to tokenize)."""
    if isinstance(inputs, str):
        return [(None, inputs)]
    if _is_chat(inputs):
        text = tokenizer.apply_chat_template([dict(m) for m in inputs], tokenize=False)
        return [(tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids, text)]
    if isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
        return [(None, x) for x in inputs]
    if isinstance(inputs, Mapping) and "input_ids" in inputs:
        ids, mask = torch.as_tensor(inputs["input_ids"]), inputs.get("attention_mask")
        ids = ids[None] if ids.ndim == 1 else ids
        mask = torch.ones_like(ids) if mask is None else torch.as_tensor(mask).reshape(ids.shape)
        return [(row[m.bool()][None], "") for row, m in zip(ids, mask)]
    if isinstance(inputs, list) and inputs and all(isinstance(x, int) for x in inputs):
        return [(torch.tensor([inputs], dtype=torch.int64), "")]
    if isinstance(inputs, list) and inputs and all(isinstance(x, list) for x in inputs):
        return [r for x in inputs for r in rows(tokenizer, x)]
    if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point() and inputs.ndim in (1, 2):
        ids = inputs[None] if inputs.ndim == 1 else inputs
        return [(row[None].to(torch.int64), "") for row in ids]
    raise TypeError(f"capture takes {ACCEPTED}; got {type(inputs).__name__}")
