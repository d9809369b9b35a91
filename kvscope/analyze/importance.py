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
differ, the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kvscope.errors import KvscopeError
from kvscope.scores import magnitude
from kvscope.snapshot import KVSnapshot
from kvscope.stats import nanmean_or_nan, nanmedian_or_nan, partial_spearman, spearman

PROXIES = ("magnitude", "key_norm", "value_norm")
REFERENCES = {
    "leave_one_out": "leave-one-out ground truth (-delta_loglik, kvscope prune --leave-one-out)",
    "attention": "attention received per query that can see the token",
}
HOLDS = 0.3  # |rho| below this is "no meaningful relation"
CONTROL = "partial Spearman given position"


@dataclass(frozen=True)
class Importance:
    """``partial[ref][proxy]``: position-controlled rho over tokens; ``raw[ref][proxy]``: plain Spearman;
    ``layer_partial[proxy]``: ``[layer]`` partial rho vs attention; ``reference``: the verdict's
    reference; ``rho``: the verdict's number (magnitude vs ``reference``, partial)."""

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


def classify(rho: float, low: float | None = None, high: float | None = None) -> str:
    """ "holds", "inverted", "does not hold", "inconclusive" (interval spans 0) or "unknown"."""
    if not np.isfinite(rho):
        return "unknown"
    if low is not None and high is not None and low <= 0 <= high:
        return "inconclusive"
    return "holds" if rho >= HOLDS else "inverted" if rho <= -HOLDS else "does not hold"


def sentence(kind: str, reference: str, rho: float, interval: tuple[float, float] | None, n_prompts: int) -> str:
    """The verdict sentence: what it rests on, the number and its interval."""
    ci = (
        f", 95 % bootstrap interval [{interval[0]:+.2f}, {interval[1]:+.2f}] over {n_prompts} prompts"
        if interval
        else " on one prompt (an example, not a finding)"
    )
    what = {
        "holds": "holds",
        "inverted": "is inverted (low-magnitude tokens matter more)",
        "does not hold": "does not hold (|rho| < 0.3)",
        "inconclusive": "is inconclusive (the interval spans 0)",
        "unknown": "cannot be judged (too few tokens)",
    }[kind]
    return (
        f'"Low magnitude = low importance" {what}: {CONTROL} of magnitude with the {REFERENCES[reference]} '
        f"is {rho:+.2f}{ci}."
    )


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
    partial["attention"]["attention"] = 1.0
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
    rho = partial[reference]["magnitude"]
    kind = classify(rho)
    disagree = "leave_one_out" in partial and classify(partial["attention"]["magnitude"]) != kind
    verdict = sentence(kind, reference, rho, None, 1)
    if disagree:
        verdict += (
            f" The references disagree: against attention received it is "
            f"{partial['attention']['magnitude']:+.2f} ({classify(partial['attention']['magnitude'])})."
        )
    return Importance(
        partial,
        raw,
        layer,
        reference,
        rho,
        verdict,
        None if kind == "unknown" else kind == "holds",
        ground_truth_note=note,
        disagree=disagree,
    )


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
    "importance",
    "layer_median",
    "proxies",
    "sentence",
]
