"""``MemorySettings``: every default of ``kvscope memory`` in one place; the CLI builds its options from it
and ``ks.estimate_memory`` takes the same defaults. Imports nothing (``kvscope memory`` stays light)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemorySettings:
    """Field names are the command's option names (``model_name``, ``gpu_name``: catalog ids); ``batch``
    slots of ``context`` tokens; ``page``: tokens per KV page; ``gpu_memory_utilization``: the fraction of
    each GPU weights + KV may fill; ``max_num_batched_tokens`` / ``max_num_seqs``: vLLM's start-up knobs."""

    model_name: str = "llama-3.1-8b"
    gpu_name: str = "h100-sxm"
    batch: int = 8
    context: int = 8192
    kv_dtype: str = "bf16"
    mode: str = "paged"
    flash: bool = True
    tp: int = 1
    page: int = 16
    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
