"""Per-token table: type, key/value L2 norms, attention received and sink flag; plus the rankings
the token figures use.

Norms are per kv_head L2 norms averaged over layers and kv_heads (RoPE-invariant). ``magnitude`` is
``kvscope.scores.magnitude`` = (||k||₂ + ||v||₂) / 2, averaged the same way. ``attention`` is the
attention received per query that can see the token, averaged over layers and kv_heads (NaN without attention data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kvscope.analyze.magnitudes import token_norms
from kvscope.analyze.sinks import Sinks
from kvscope.snapshot import KVSnapshot
from kvscope.stats import nanmean_or_nan
from kvscope.tokens import TOKEN_TYPES, token_types


@dataclass(frozen=True)
class TokenTable:
    """Arrays are ``[position]``. ``lowest``/``highest``: positions of the ``n_rank`` tokens with the
    smallest/largest magnitude (ascending / descending); ``by_type[type]``: positions of that type."""

    tokens: list[str]
    types: list[str]
    key_norm: np.ndarray
    value_norm: np.ndarray
    magnitude: np.ndarray
    attention: np.ndarray
    sink: np.ndarray
    lowest: np.ndarray
    highest: np.ndarray
    by_type: dict[str, np.ndarray]
    has_attention: bool

    def type_means(self, which: str) -> dict[str, float]:
        """Mean of ``which`` ("key_norm", "value_norm", ...) per token type present."""
        values = getattr(self, which)
        return {t: float(np.nanmean(values[idx])) for t, idx in self.by_type.items() if idx.size}


def token_table(snapshot: KVSnapshot, sinks: Sinks, n_rank: int = 10) -> TokenTable:
    """Build the table; ``n_rank`` tokens are ranked at each end (fewer when the prompt is short)."""
    norms = token_norms(snapshot)
    from kvscope.analyze.importance import proxies

    mag = nanmean_or_nan(proxies(snapshot)["magnitude"], axis=(0, 1))
    if snapshot.has_attention:
        attn = nanmean_or_nan(snapshot.mean_attention().double().numpy(), axis=(0, 1))
    else:
        attn = np.full(snapshot.n_positions, np.nan)
    sink = np.zeros(snapshot.n_positions, dtype=bool)
    sink[sinks.positions] = True
    types = token_types(snapshot.tokens, snapshot.special.tolist())
    order = np.argsort(mag, kind="stable")
    k = min(n_rank, max(1, snapshot.n_positions // 2))
    by_type = {t: np.array([i for i, x in enumerate(types) if x == t], dtype=np.int64) for t in TOKEN_TYPES}
    return TokenTable(
        tokens=list(snapshot.tokens),
        types=types,
        key_norm=norms.key_token,
        value_norm=norms.value_token,
        magnitude=mag,
        attention=attn,
        sink=sink,
        lowest=order[:k],
        highest=order[::-1][:k],
        by_type=by_type,
        has_attention=snapshot.has_attention,
    )
