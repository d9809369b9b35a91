"""Figures for ``kvscope prune``: the compression Pareto front, the leave-one-out importance check and
the measured-vs-predicted layer/head pruning scan. Each takes a result dataclass and returns a figure."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from kvscope.kit.figures import token_label

MIB = 1024**2


def compression_pareto(result: Any) -> Any:
    """KV bytes kept (x, MiB) against continuation perplexity change (y, %, symlog), one line per method."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    methods = [m for m in dict.fromkeys(r.method for r in result.rows) if m != "baseline"]
    start = (result.baseline_bytes / MIB, 0.0)
    for i, method in enumerate(methods):
        rows = sorted((r for r in result.rows if r.method == method), key=lambda r: -r.kv_bytes)
        style = dict(marker="s", linestyle="--", color="black") if method == "kivi" else dict(marker="o")
        xs, ys = [r.kv_bytes / MIB for r in rows], [r.ppl_change_pct for r in rows]
        line_x, line_y = ([start[0]] + xs, [start[1]] + ys) if method != "kivi" else (xs, ys)
        ax.plot(line_x, line_y, label=method, alpha=0.85, **style)
        if method == "kivi" or i == 0:  # ratios label the first strategy; every line shares its x positions
            for r, x, y in zip(rows, xs, ys):
                text = r.setting if method == "kivi" else f"R={r.setting}"
                ax.annotate(text, (x, y), fontsize=7, textcoords="offset points", xytext=(4, -10))
    ax.scatter(
        [result.baseline_bytes / MIB],
        [0.0],
        marker="*",
        s=160,
        color="gold",
        edgecolor="black",
        zorder=5,
        label=f"baseline (ppl {result.baseline_ppl:.2f})",
    )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_yscale("symlog", linthresh=1.0)
    low = min(r.ppl_change_pct for r in result.rows)
    ax.set_ylim(bottom=min(-2.0, 3 * low), top=3 * max(10.0, max(r.ppl_change_pct for r in result.rows)))
    ax.set_xlabel("KV cache bytes kept for the prompt (MiB; quantized: codes + scales + zeros)")
    ax.set_ylabel("continuation perplexity change (%)")
    ax.set_title(
        f"{result.model}: eviction strategies and KIVI quantization on one text (an example, not a "
        f"ranking)\n{result.prompt_tokens} prompt tokens, {result.scored_tokens} scored continuation tokens, "
        "one prefill",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return fig


def importance_ground_truth(result: Any) -> Any:
    """Top: change in continuation log-likelihood when each prompt token is evicted. Bottom: Spearman of
    each importance proxy against that ground truth."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(min(16.0, max(8.0, 0.1 * len(result.tokens))), 6.5), gridspec_kw={"height_ratios": [2, 1]}
    )
    delta = np.asarray(result.delta_loglik)
    top.bar(np.arange(len(delta)), delta, color=np.where(delta < 0, "tab:red", "tab:blue"), width=0.9)
    top.set_ylabel("Δ log-likelihood (nats)\nwhen evicted")
    top.set_title(
        f"{result.model}: leave-one-out importance of each prompt token (all layers and kv_heads)", fontsize=9
    )
    worst = np.argsort(delta)[: min(12, len(delta))]
    top.set_xticks(worst, [token_label(result.tokens[i]) for i in worst], rotation=90, fontsize=7)
    top.axhline(0.0, color="grey", lw=0.8)
    names = list(result.spearman)
    rhos = [result.spearman[n] for n in names]
    bars = bottom.barh(names, [0.0 if np.isnan(r) else r for r in rhos], color="tab:purple")
    for bar, rho in zip(bars, rhos):
        bottom.annotate(
            "n/a" if np.isnan(rho) else f"{rho:+.2f}",
            (bar.get_width(), bar.get_y() + 0.4),
            fontsize=8,
            xytext=(3, 0),
            textcoords="offset points",
        )
    bottom.axvline(0.0, color="grey", lw=0.8)
    bottom.set_xlim(-1, 1)
    bottom.set_xlabel("Spearman ρ of the proxy (higher = keep) against the likelihood lost when evicted")
    fig.tight_layout()
    return fig


def scan_figure(result: Any, predicted: np.ndarray | None, definition: str = "") -> Any:
    """Measured perplexity change of evicting each layer (or kv_head) beside the predicted potential."""
    measured = np.asarray(result.ppl_change_pct)
    panels = 2 if predicted is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 4.2), squeeze=False)
    if result.kind == "layers":
        axes[0, 0].bar(np.arange(len(measured)), measured, color="tab:red")
        axes[0, 0].set_yscale("symlog", linthresh=1.0)
        axes[0, 0].set_xlabel("layer")
        axes[0, 0].set_ylabel("perplexity change when evicted (%)")
    else:
        _heatmap(fig, axes[0, 0], np.log10(np.maximum(measured, 0.0) + 1.0), "log10(1 + ppl change %)")
    axes[0, 0].set_title(f"measured (baseline ppl {result.baseline_ppl:.2f})", fontsize=9)
    if predicted is not None:
        pred = np.asarray(predicted)
        if result.kind == "layers":
            axes[0, 1].bar(np.arange(len(pred)), pred, color="tab:green")
            axes[0, 1].set_xlabel("layer")
            axes[0, 1].set_ylabel("predicted pruning potential (1 = safest)")
        else:
            _heatmap(fig, axes[0, 1], pred, "predicted pruning potential")
        from kvscope.stats import spearman

        rho = spearman(pred.ravel(), -measured.ravel())
        axes[0, 1].set_title(f"predicted by kvscope analyze; Spearman vs −measured: {rho:+.2f}", fontsize=9)
        fig.text(0.5, -0.02, definition, ha="center", fontsize=7, wrap=True)
    fig.suptitle(f"{result.model}: evicting one {result.kind[:-1]} at a time", fontsize=10)
    fig.tight_layout()
    return fig


def _heatmap(fig: Any, ax: Any, x: np.ndarray, label: str) -> None:
    im = ax.imshow(x, aspect="auto", cmap="viridis")
    ax.set_xlabel("kv_head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(x.shape[1]))
    fig.colorbar(im, ax=ax, label=label)
