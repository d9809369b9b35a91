"""Measured perplexity change of evicting each layer (or kv_head), from ``kvscope.prune.scan``, set beside
the pruning-potential score."""

from __future__ import annotations

from typing import Any

import numpy as np

from kvscope.stats import spearman


def measure_scan(
    model: Any,
    tokenizer: Any,
    info: Any,
    snapshot_layers_score: Any,
    prompt: str,
    continuation: str,
    heads: bool = False,
) -> dict[str, Any]:
    """``{"layers": [layer] ppl change %, "heads": [layer, kv_head] (with ``heads``), baseline, and the
    Spearman between pruning potential and the measured change (negative = the score predicts it)}``."""
    from kvscope.prune.scan import scan

    out: dict[str, Any] = {"prompt_chars": len(prompt), "continuation": continuation}
    kinds = ("layers", "heads") if heads else ("layers",)
    for kind in kinds:
        res = scan(model, tokenizer, info, kind=kind, prompt=prompt, continuation=continuation)
        out[kind] = np.asarray(res.ppl_change_pct, dtype=float)
        out["baseline_ppl"] = float(res.baseline_ppl)
        out["scored_tokens"] = int(res.scored_tokens)
        score = snapshot_layers_score.layer if kind == "layers" else snapshot_layers_score.head
        out[f"spearman_{kind}"] = spearman(np.ravel(score), np.ravel(out[kind]))
    return out
