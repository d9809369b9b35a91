"""``CaptureSettings``: every default of ``kvscope capture`` in one place (``ks.capture`` takes the same)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CaptureSettings:
    """What a capture records besides post-RoPE keys and values: attention received, pre-RoPE keys, queries."""

    attention: bool = False
    pre_rope: bool = False
    queries: bool = False
