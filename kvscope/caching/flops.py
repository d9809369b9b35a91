"""Closed-form matmul FLOP counts of a Llama-style decoder, over the causal triangle.

Conventions: one multiply-add is 2 FLOPs; only matrix products are counted (norms, RoPE, softmax
and residual adds are O(hidden) per token and left out). Per layer, one token costs

- projections: ``2 h (q_heads d) + 2 * 2 h (kv_heads d) + 2 (q_heads d) h`` (q, k, v, o),
- MLP (gated, SwiGLU): ``3 * 2 h i``,
- attention at position ``p`` (it sees ``p + 1`` keys): ``2 q_heads d (p + 1)`` for ``q·k`` and the
  same for ``probs·v``,

and a forward adds one ``2 h vocab`` lm_head product for the next-token logits. Computing positions
``[start, end)`` therefore costs ``(end - start) L linear + 4 q_heads d L (T(end) - T(start))`` with the
triangle number ``T(n) = n (n + 1) / 2`` (Kaplan et al. 2020, Sec. 2.1, counts the same terms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FlopModel:
    """The sizes that set a decoder's matmul FLOPs."""

    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def from_model(cls, model: Any, info: Any) -> FlopModel:
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        return cls(
            layers=info.layers,
            hidden=info.hidden_size,
            q_heads=info.q_heads,
            kv_heads=info.kv_heads,
            head_dim=info.head_dim,
            intermediate=int(
                getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * info.hidden_size
            ),
            vocab=info.vocab_size,
        )

    @property
    def projection_per_token(self) -> int:
        """q, k, v and o projections of one token in one layer."""
        h, d = self.hidden, self.head_dim
        return 2 * h * self.q_heads * d + 4 * h * self.kv_heads * d + 2 * self.q_heads * d * h

    @property
    def mlp_per_token(self) -> int:
        return 6 * self.hidden * self.intermediate

    @property
    def attention_per_key(self) -> int:
        """``q·k`` plus ``probs·v`` for one (query, key) pair, all q_heads, one layer."""
        return 4 * self.q_heads * self.head_dim

    @property
    def lm_head(self) -> int:
        return 2 * self.hidden * self.vocab

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def triangle(n: int) -> int:
    """``1 + 2 + ... + n``: the (query, key) pairs a causal prefill of ``n`` tokens computes."""
    return n * (n + 1) // 2


def span_flops(fm: FlopModel, start: int, end: int, logits: int = 1) -> dict[str, int]:
    """FLOPs to compute positions ``[start, end)`` when keys ``0..end-1`` are (or become) cached.

    Returns ``projections``, ``mlp``, ``attention`` (the causal band ``start <= p < end``), ``lm_head``
    (``logits`` positions) and their ``total``.
    """
    if not 0 <= start <= end:
        raise ValueError(f"need 0 <= start <= end, got {start}, {end}")
    n = end - start
    parts = {
        "projections": n * fm.layers * fm.projection_per_token,
        "mlp": n * fm.layers * fm.mlp_per_token,
        "attention": fm.layers * fm.attention_per_key * (triangle(end) - triangle(start)),
        "lm_head": logits * fm.lm_head if n else 0,
    }
    parts["total"] = sum(parts.values())
    return parts


def prefix_savings(fm: FlopModel, prompt_len: int, reused: int) -> dict[str, Any]:
    """What reusing a cached prefix of ``reused`` tokens saves on a prompt of ``prompt_len`` tokens.

    ``fresh`` computes ``[0, prompt_len)``; ``reuse`` computes ``[reused, prompt_len)`` against the cached
    prefix. Both produce the last position's logits. ``share_*`` are saved / fresh.
    """
    fresh = span_flops(fm, 0, prompt_len)
    reuse = span_flops(fm, reused, prompt_len)
    saved = {k: fresh[k] - reuse[k] for k in fresh}
    return {
        "fresh": fresh,
        "reuse": reuse,
        "saved": saved,
        "share_total": saved["total"] / fresh["total"] if fresh["total"] else 0.0,
        "share_attention": saved["attention"] / fresh["attention"] if fresh["attention"] else 0.0,
        "share_tokens": reused / prompt_len if prompt_len else 0.0,
    }


def generation_flops(fm: FlopModel, prompt_len: int, new_tokens: int, use_cache: bool) -> list[int]:
    """Cumulative FLOPs after each of ``new_tokens`` greedy steps that follow a prompt of ``prompt_len``.

    With the cache step ``t`` computes one position (``prompt_len + t - 1``; step 1 is the prefill of the
    whole prompt); without it, every step recomputes all ``prompt_len + t - 1`` positions.
    """
    total, out = 0, []
    for t in range(1, new_tokens + 1):
        end = prompt_len + t - 1
        start = 0 if (t == 1 or not use_cache) else end - 1
        total += span_flops(fm, start, end)["total"]
        out.append(total)
    return out
