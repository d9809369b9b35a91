"""Head- and layer-level figures: head specialization, pruning potential, projection weights."""

from __future__ import annotations

import numpy as np

from kvscope.analyze.figure_base import K_COLOR, V_COLOR, FigureData, layer_axis, log_scale, new_figure


def head_specialization(data: FigureData):
    """Left: q_heads of the chosen layer by sink share (x) and look-back on non-sink attention (y).
    Right: every layer x q_head, look-back and sink share as two heatmaps."""
    hs = data.results["heads"]
    l = hs.layer
    if l is None:  # every layer windowed: nothing was recomputed, the scatter stays empty
        l = hs.requested or 0
    fig, axes = new_figure(
        15, max(5.5, 0.2 * hs.lookback.shape[0] + 2), 1, 3, gridspec_kw={"width_ratios": [1.3, 1, 1]}
    )
    ax = axes[0][0]
    cmap = __import__("matplotlib").colormaps["tab10"]
    for g in np.unique(hs.kv_head):
        idx = np.flatnonzero(hs.kv_head == g)
        ax.scatter(
            hs.sink_share[l, idx],
            hs.lookback[l, idx],
            s=60,
            color=cmap(int(g) % 10),
            edgecolors="k",
            alpha=0.85,
            label=f"kv_head {g} (q_heads {idx.min()}-{idx.max()})",
        )
        for h in idx:
            ax.annotate(
                f"q{h}", (hs.sink_share[l, h], hs.lookback[l, h]), xytext=(5, 3), textcoords="offset points", fontsize=8
            )
    ax.set_xlabel(f"share of attention on the sinks {hs.sinks[:4]}")
    ax.set_ylabel("mean look-back of non-sink attention (tokens)")
    ax.set_xlim(-0.02, 1.02)
    ax.legend(fontsize=7, title="GQA group", title_fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(_scatter_title(hs), fontsize=8)
    for ax, mat, name, cm in (
        (axes[0][1], hs.lookback, "look-back, non-sink (tokens)", "viridis"),
        (axes[0][2], hs.sink_share, "sink share", "Oranges"),
    ):
        im = ax.imshow(mat, aspect="auto", cmap=cm, interpolation="nearest")
        fig.colorbar(im, ax=ax, label=name)
        ax.set_xlabel("q_head")
        ax.set_ylabel("layer")
        ax.set_yticks(range(0, mat.shape[0], max(1, mat.shape[0] // 15)))
        blank = f"\n(blank: sliding-window layers {hs.skipped_layers})" if hs.skipped_layers else ""
        ax.set_title(f"every layer: {name}{blank}", fontsize=9)
    fig.suptitle("Head specialization: look-back measured without the sink, sink share as its own axis", fontsize=11)
    fig.tight_layout()
    return fig


def _scatter_title(hs) -> str:
    """What the scatter shows and what was checked: the parity claim only for layers recomputed."""
    if hs.layer is None:
        return "no layer recomputed: every layer keeps a sliding window\n(its cache lacks the keys; nothing checked)"
    check = f"matches capture to {hs.parity:.1e}" if np.isfinite(hs.parity) else "not checked: no attention captured"
    moved = f"; layer {hs.requested} keeps a sliding window" if hs.requested not in (None, hs.layer) else ""
    return f"layer {hs.layer}: recomputed attention (scale: {hs.scaling_source})\n{check}{moved}"


def _scan_rho(score: np.ndarray, measured) -> str:
    from kvscope.stats import spearman

    rho = spearman(np.ravel(score), np.ravel(np.asarray(measured, dtype=float)))
    return f"Spearman(potential, ppl change) = {rho:+.2f} (a good score is strongly negative)"


def _grid_ticks(ax, n_layers: int, n_heads: int) -> None:
    ax.set_xticks(range(n_heads))
    ax.set_xlabel("kv_head")
    step = max(1, n_layers // 15)
    ax.set_yticks(range(0, n_layers, step))


def pruning_heatmap_by_layer_head(data: FigureData):
    """Layer x kv_head pruning potential; beside it the measured perplexity change when scanned."""
    pp = data.results["pruning"]
    heads = data.scan.get("heads")
    cols = 2 if heads is not None else 1
    fig, axes = new_figure(5.5 * cols + 1, max(3.5, 0.22 * pp.head.shape[0] + 1.8), 1, cols)
    ax = axes[0][0]
    im = ax.imshow(pp.head, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="pruning potential (1 = writes least)")
    _grid_ticks(ax, *pp.head.shape)
    ax.set_ylabel("layer")
    ax.set_title("score: " + ("attention-weighted value norm" if pp.uses_attention else "mean value norm"), fontsize=9)
    if heads is not None:
        ax = axes[0][1]
        measured = np.asarray(heads, dtype=float)
        lim = max(float(np.abs(measured).max()), 1e-9)
        im = ax.imshow(measured, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        fig.colorbar(im, ax=ax, label="measured perplexity change (%)")
        _grid_ticks(ax, *measured.shape)
        ax.set_title("evicting that kv_head (kvscope prune --scan)\n" + _scan_rho(pp.head, heads), fontsize=8)
    fig.suptitle("Pruning potential per layer and kv_head", fontsize=11)
    fig.tight_layout()
    return fig


def layer_pruning_potential(data: FigureData):
    """Bars per layer; measured perplexity change of evicting the layer beside it when scanned."""
    pp = data.results["pruning"]
    layers = data.scan.get("layers")
    rows = 2 if layers is not None else 1
    fig, axes = new_figure(11, 3.6 * rows, rows, 1)
    x = np.arange(len(pp.layer))
    axes[0][0].bar(x, pp.layer, color="#2ca02c")
    axes[0][0].set_ylabel("pruning potential")
    axes[0][0].set_ylim(0, 1.05)
    layer_axis(axes[0][0], len(x))
    axes[0][0].set_title(pp.definition, fontsize=8)
    if layers is not None:
        ax = axes[1][0]
        ax.bar(x, np.asarray(layers, dtype=float), color="#d62728")
        ax.set_ylabel("ppl change when evicted (%)")
        ax.set_yscale("symlog")
        layer_axis(ax, len(x))
        ax.set_title("measured: " + _scan_rho(pp.layer, layers), fontsize=8)
    fig.suptitle("Pruning potential per layer", fontsize=11)
    fig.tight_layout()
    return fig


def head_pruning_potential(data: FigureData):
    """Per kv_head index: the potential in every layer (dots) and its mean (bar)."""
    pp = data.results["pruning"]
    n_layers, n_heads = pp.head.shape
    fig, axes = new_figure(max(5, 1.2 * n_heads + 2), 4.2)
    ax = axes[0][0]
    ax.bar(range(n_heads), pp.head.mean(axis=0), color="#2ca02c", alpha=0.5, label="mean over layers")
    jitter = np.linspace(-0.25, 0.25, n_layers) if n_layers > 1 else np.zeros(1)
    for h in range(n_heads):
        ax.scatter(h + jitter, pp.head[:, h], s=10, color="k", alpha=0.6, label="one layer" if h == 0 else None)
    ax.set_xticks(range(n_heads))
    ax.set_xlabel("kv_head index")
    ax.set_ylabel("pruning potential")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.set_title(
        "Pruning potential by kv_head index. Head h of one layer and head h of another are\n"
        "different heads: an index has no identity across layers, so read the dots, not the bar.",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def weight_magnitude_distribution(data: FigureData):
    """Histograms of |k_proj| and |v_proj| weights (log-spaced bins), all layers."""
    w = data.results["weights"]
    fig, axes = new_figure(12, 4.2, 1, 2)
    for ax, h, name, color in ((axes[0][0], w.k_proj, "k_proj", K_COLOR), (axes[0][1], w.v_proj, "v_proj", V_COLOR)):
        ax.stairs(h.counts, h.edges, fill=True, color=color, alpha=0.7)
        log_scale(ax, "x", "y")
        ax.set_xlabel(f"|{name} weight|")
        ax.set_ylabel("count (log)")
        ax.set_title(
            f"{name}: {h.n:,} weights, mean |w| {h.mean_abs:.3g}, max {h.max_abs:.3g}, exact zeros {h.zeros:,}",
            fontsize=9,
        )
    gguf = "GGUF" in str(data.meta.get("model", ""))
    fig.suptitle(
        "Projection weight magnitudes (all layers)"
        + (
            "\nthese weights come from a 4-bit GGUF file: the "
            "histogram shows its quantization grid (at most 16 values per block of 32), not trained weights"
            if gguf
            else ""
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return fig
