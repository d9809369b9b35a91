"""Is magnitude a good proxy of importance? Each proxy is checked against a named reference, with
position controlled for.

Proxies, per token, per layer and kv_head:

- ``magnitude``: ``kvscope.scores.magnitude`` = (||k||₂ + ||v||₂) / 2, the seeds' idea (high = important);
- ``key_norm``: -||k||₂, KNorm (Devoto et al., EMNLP 2024: a low key norm tends to mean high attention);
- ``value_norm``: ||v||₂.

References (``REFERENCES``):

- ``leave_one_out``: ``-delta_loglik`` from ``kvscope prune --leave-one-out``, the log-likelihood lost
  when the token alone is evicted: the ground truth. Used for the verdict whenever it is present.
- ``attention``: attention received per query that can see the token (H2O, Zhang et al. 2023). It
  tracks position (early tokens are seen by many queries, recent ones by few and strongly), so a raw
  correlation with it partly measures position.

Position control: the verdict's correlation is the **partial Spearman correlation given position**
(``kvscope.stats.partial_spearman``: the rank correlation of proxy and reference after the
part of each explained by the rank of the position is removed), over tokens, using each proxy's and
reference's mean over layers and kv_heads. Per-layer partial correlations feed the figure. Raw
Spearman values are kept beside them (``raw``). When both references are present and their verdicts
differ, the verdict says so. The verdict's class comes from the 95 % interval over tokens, never from the
point estimate, and a prompt under ``MIN_TOKENS`` tokens cannot be judged (``kvscope.analyze.verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvscope.analyze.verdict import CONTROL, HOLDS, MIN_TOKENS, classify, sentence, token_interval, why_unknown
from kvscope.errors import KvscopeError
from kvscope.scores import magnitude
from kvscope.snapshot import KVSnapshot
from kvscope.stats import nanmean_or_nan, nanmedian_or_nan, partial_spearman, spearman

PROXIES = ("magnitude", "key_norm", "value_norm")
REFERENCES = {
    "leave_one_out": "leave-one-out ground truth (-delta_loglik, kvscope prune --leave-one-out)",
    "attention": "attention received per query that can see the token",
}


@dataclass(frozen=True)
class Importance:
    """``partial[ref][proxy]``: position-controlled rho over tokens; ``raw[ref][proxy]``: plain Spearman;
    ``layer_partial[proxy]``: ``[layer]`` partial rho vs attention; ``reference``: the verdict's
    reference; ``rho``: the verdict's number (magnitude vs ``reference``, partial); ``interval``: its 95 %
    interval over tokens; ``kind``: the verdict class (``kvscope.analyze.verdict.classify``); ``n_tokens``:
    tokens with a value. The partial correlation of attention with itself is not stored (it is 1 by
    construction)."""

    partial: dict[str, dict[str, float]]
    raw: dict[str, dict[str, float]]
    layer_partial: dict[str, np.ndarray]
    reference: str
    rho: float
    verdict: str
    holds: bool | None
    control: str = CONTROL
    ground_truth_note: str = ""
    disagree: bool = False
    notes: list[str] = field(default_factory=list)
    interval: tuple[float, float] = (float("nan"), float("nan"))
    kind: str = "unknown"
    n_tokens: int = 0


def proxies(snapshot: KVSnapshot) -> dict[str, np.ndarray]:
    """Each proxy as ``[layer, kv_head, position]`` (NaN where a layer holds no slot)."""
    n = snapshot.n_positions
    shape = (snapshot.n_layers, snapshot.keys[0].shape[0], n)
    mag, kn, vn = (np.full(shape, np.nan) for _ in range(3))
    for l, (k, v) in enumerate(zip(snapshot.keys, snapshot.values)):
        s = n - k.shape[1]
        mag[l, :, s:] = magnitude(k, v).numpy()
        kn[l, :, s:] = -k.double().norm(dim=-1).numpy()
        vn[l, :, s:] = v.double().norm(dim=-1).numpy()
    return {"magnitude": mag, "key_norm": kn, "value_norm": vn}


def _per_layer(proxy: np.ndarray, ref: np.ndarray, pos: np.ndarray) -> np.ndarray:
    rows = []
    for l in range(proxy.shape[0]):
        rho = [partial_spearman(proxy[l, h], ref[l, h], pos) for h in range(proxy.shape[1])]
        rows.append(nanmean_or_nan(np.array(rho)))
    return np.array(rows, dtype=np.float64)


def _against(scores: dict[str, np.ndarray], ref: np.ndarray, pos: np.ndarray) -> tuple[dict, dict]:
    part = {n: partial_spearman(nanmean_or_nan(p, axis=(0, 1)), ref, pos) for n, p in scores.items()}
    raw = {n: spearman(nanmean_or_nan(p, axis=(0, 1)), ref) for n, p in scores.items()}
    return part, raw


def importance(snapshot: KVSnapshot, delta_loglik: np.ndarray | None = None) -> Importance:
    """Position-controlled correlations of each proxy with each reference present; see the module doc."""
    if not snapshot.has_attention:
        raise KvscopeError("importance needs attention received (capture with attention)")
    scores = proxies(snapshot)
    att = np.where(np.isfinite(scores["magnitude"]), snapshot.mean_attention().double().numpy(), np.nan)
    pos = snapshot.positions.double().numpy()
    partial, raw, note = {}, {}, ""
    partial["attention"], raw["attention"] = _against(scores, nanmean_or_nan(att, axis=(0, 1)), pos)
    if delta_loglik is not None:
        truth = -np.asarray(delta_loglik, dtype=np.float64)
        if truth.shape[0] != snapshot.n_positions:
            note = f"ground truth has {truth.shape[0]} tokens but the snapshot has {snapshot.n_positions}; not compared"
        else:
            partial["leave_one_out"], raw["leave_one_out"] = _against(scores, truth, pos)
            partial["leave_one_out"]["attention"] = partial_spearman(nanmean_or_nan(att, axis=(0, 1)), truth, pos)
            raw["leave_one_out"]["attention"] = spearman(nanmean_or_nan(att, axis=(0, 1)), truth)
    layer = {n: _per_layer(p, att, pos) for n, p in scores.items()}
    reference = "leave_one_out" if "leave_one_out" in partial else "attention"
    ref = truth if reference == "leave_one_out" else nanmean_or_nan(att, axis=(0, 1))
    mag = nanmean_or_nan(scores["magnitude"], axis=(0, 1))
    kind, interval, n, verdict = one_prompt_verdict(mag, ref, pos, partial[reference]["magnitude"], reference)
    disagree = False
    if reference == "leave_one_out":
        rho_att = partial["attention"]["magnitude"]
        other, (lo, hi), _, _ = one_prompt_verdict(mag, nanmean_or_nan(att, axis=(0, 1)), pos, rho_att)
        disagree = other != kind
        if disagree:
            verdict += disagreement(other, rho_att, lo, hi)
    return Importance(
        partial,
        raw,
        layer,
        reference,
        partial[reference]["magnitude"],
        verdict,
        {"holds": True, "inverted": False, "does not hold": False}.get(kind),
        ground_truth_note=note,
        disagree=disagree,
        interval=interval,
        kind=kind,
        n_tokens=n,
    )


def one_prompt_verdict(
    mag: np.ndarray, ref: np.ndarray, pos: np.ndarray, rho: float, reference: str = "attention"
) -> tuple[str, tuple[float, float], int, str]:
    """``(kind, interval, n_tokens, sentence)`` of one prompt's partial ``rho`` (magnitude ``mag`` vs
    ``ref``, both ``[position]``): "cannot be judged" below ``MIN_TOKENS`` tokens or when ``rho`` is NaN."""
    n = int((np.isfinite(mag) & np.isfinite(ref) & np.isfinite(pos)).sum())
    interval = token_interval(rho, n)
    kind = classify(rho, *interval) if n >= MIN_TOKENS else "unknown"
    reason = why_unknown(mag, ref, pos) if kind == "unknown" else ""
    basis = f"over the {n} tokens of one prompt (an example, not a finding)"
    return kind, interval, n, sentence(kind, reference, REFERENCES[reference], rho, interval, basis, reason)


def disagreement(kind: str, rho: float, low: float, high: float) -> str:
    """The sentence added when the attention reference's class differs from the ground truth's."""
    number = f" {rho:+.2f} [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) and np.isfinite(high) else ""
    return f" The references disagree: against attention received it is{number} ({kind})."


def layer_median(imp: Importance) -> dict[str, float]:
    """Median over layers of each proxy's per-layer partial rho vs attention."""
    return {n: nanmedian_or_nan(r) for n, r in imp.layer_partial.items()}


__all__ = [
    "CONTROL",
    "HOLDS",
    "PROXIES",
    "REFERENCES",
    "Importance",
    "classify",
    "disagreement",
    "importance",
    "layer_median",
    "proxies",
    "sentence",
]
