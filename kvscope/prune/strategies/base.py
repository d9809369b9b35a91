"""The strategy base class, its settings checks and the budget helpers every strategy shares.

A strategy is a dataclass whose fields are its settings (``window``, ``sinks``, ``seed`` ...), each
with the default its paper or reference code uses. ``keep(pre, ratio)`` returns a keep plan, bool
``[layer, kv_head, position]`` (True = kept) over the prompt. Scores are float64 computed from the
float32 snapshot (in bf16 most key norms tie, kvpress issue #276).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from kvscope.attention import last_query_probs
from kvscope.errors import UsageError
from kvscope.prune.evict import ROUNDINGS, Prefill, n_keep

PROTECT = 1e12  # added to the score of tokens a strategy always keeps (sinks, recent window)


def top_keep(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool ``[..., n]``: True for the ``k`` highest scores of each row."""
    keep = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        keep.scatter_(-1, torch.topk(scores, k, dim=-1).indices, True)
    return keep


def last_probs(pre: Prefill, layer: int, w: int) -> torch.Tensor:
    """``[kv_head, group, w, n]`` float64: the attention of the prompt's last ``w`` queries in ``layer``, as
    the model computes it: its scaling, logit soft-capping (Gemma 2) and sliding window (a query at ``t``
    sees keys ``t - window + 1 .. t`` on a sliding layer; ``pre``'s keys hold every position)."""
    snap = pre.snapshot
    window = pre.windows[layer] if pre.windows else None
    return last_query_probs(snap.queries[layer], snap.keys[layer], pre.scaling[layer], w, pre.softcap, window)


def recent_bonus(n: int, window: int) -> torch.Tensor:
    """``[n]`` float64: PROTECT + position for the last ``window`` positions, 0 elsewhere."""
    bonus = torch.zeros(n, dtype=torch.float64)
    if window > 0:
        bonus[n - window :] = PROTECT + torch.arange(n - window, n, dtype=torch.float64)
    return bonus


def sinks_and_recent(n: int, k: int, sinks: int) -> torch.Tensor:
    """``[n]`` float64 scores whose top ``k`` are the first ``min(sinks, k)`` positions (attention sinks,
    Xiao et al., ICLR 2024) and the most recent ``k - min(sinks, k)``."""
    s = min(sinks, k)
    row = recent_bonus(n, k - s)
    row[:s] = 2 * PROTECT + n - torch.arange(s, dtype=torch.float64)
    return row


@dataclass
class Strategy:
    """Base: ``scores(pre, k)`` ``[layer, kv_head, n]`` (higher = keep); ``keep`` takes the top ``k``.

    ``rounding``: how the budget ``k`` is rounded from ``(1 - ratio) * n``: ``"ceil"`` (default: never
    evicts more than asked) or ``"floor"`` (kvpress's float ``int(n * (1 - ratio))``, see ``n_keep``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    minimum: ClassVar[dict[str, float]] = {}  # smallest allowed value of a numeric setting (default 0)

    rounding: str = "ceil"

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_setting(self.name, f.name, getattr(self, f.name), f.default, self.minimum.get(f.name, 0))
        if self.rounding not in ROUNDINGS:
            raise UsageError(f"{self.name}: rounding must be ceil or floor, got {self.rounding!r}")

    def budget(self, n_positions: int, ratio: float) -> int:
        """Tokens kept per kv_head when a fraction ``ratio`` of ``n_positions`` is evicted."""
        return n_keep(n_positions, ratio, self.rounding)

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        raise NotImplementedError

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        """Keep plan ``[layer, kv_head, n]`` removing a fraction ``ratio`` of the prompt tokens."""
        k = self.budget(pre.n_positions, ratio)
        return top_keep(self.scores(pre, k), k)

    def warnings(self, n_positions: int, ratio: float, layers: int | None = None) -> list[str]:
        """Guardrail messages for this budget (one line each; empty when nothing looks off)."""
        k = self.budget(n_positions, ratio)
        return [f"{self.label}: ratio {ratio:g} keeps 0 of {n_positions} prompt tokens"] if k == 0 else []

    def settings(self) -> dict[str, Any]:
        """The fields and their values, e.g. ``{"window": 32, "kernel": 5, ...}``."""
        return asdict(self)

    @property
    def label(self) -> str:
        """``name``, plus the settings that differ from their defaults: ``snapkv(window=64)``."""
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"{self.name}({', '.join(changed)})" if changed else self.name


def _check_setting(strategy: str, key: str, value: Any, default: Any, minimum: float) -> None:
    """One-line ``UsageError`` when ``value`` has the wrong type for its default or is below ``minimum``."""
    if default is MISSING:
        return
    kind = type(default)
    ok = (
        isinstance(value, bool)
        if kind is bool
        else (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, int) and not isinstance(value, bool)
            if kind is int
            else isinstance(value, kind)
        )
    )
    if not ok:
        raise UsageError(f"{strategy}: {key} must be {kind.__name__}, got {value!r}")
    if kind in (int, float) and value < minimum:
        raise UsageError(f"{strategy}: {key} must be at least {minimum:g}, got {value!r}")
