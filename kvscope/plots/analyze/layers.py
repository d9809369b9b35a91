"""Layer-level figures: cache heatmaps, layer statistics, value histograms, head sparsity,
quantization error."""

from __future__ import annotations

import math

import numpy as np

from kvscope.plots.analyze.base import K_COLOR, V_COLOR, FigureData, layer_axis, new_figure, no_data


def kv_cache_layers(data: FigureData):
    """|K| and |V| heatmaps per layer (positions x kv_head*head_dim), shared robust colour scale.

    All layers of one kind are tiled into a single image (fast to draw whatever the depth)."""
    maps = data.results["cache_maps"]
    n, cols = len(maps.key), min(6, len(maps.key))
    rows, h, w = math.ceil(n / cols), maps.key[0].shape[0], maps.key[0].shape[1]
    gap = max(2, w // 12)
    gap_y = max(2, round(gap * h / w * 1.6)) if h > 1 else 2
    fig, axes = new_figure(2.1 * cols + 1.5, 2 * (1.5 * rows + 0.4), 2, 1, layout="constrained")
    for ax, kind, mats, vmax, cmap in ((axes[0][0], "K", maps.key, maps.vmax_k, "viridis"),
                                       (axes[1][0], "V", maps.value, maps.vmax_v, "magma")):
        img = np.full((rows * (h + gap_y) - gap_y, cols * (w + gap) - gap), np.nan)
        for i, m in enumerate(mats):
            r, c = divmod(i, cols)
            img[r * (h + gap_y): r * (h + gap_y) + m.shape[0], c * (w + gap): c * (w + gap) + w] = m
            ax.text(c * (w + gap) + 1, r * (h + gap_y) + 0.5, f"{kind}{i}", color="white", fontsize=7,
                    va="top", ha="left", bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"})
        cm = __import__("matplotlib").colormaps[cmap].resampled(100).with_extremes(bad="white")
        im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap=cm, vmin=0, vmax=vmax)
        xs = [c * (w + gap) + hh * maps.head_dim - 0.5 for c in range(cols) for hh in range(1, maps.kv_heads)]
        ax.vlines(xs, -0.5, img.shape[0] - 0.5, colors="white", linestyles="--", linewidth=0.6)
        ax.set_xticks([])
        ax.set_yticks([r * (h + gap_y) for r in range(rows)] + [h - 1],
                      ["0"] * rows + [str(maps.n_positions - 1)], fontsize=6)
        ax.set_ylabel("position (each tile: 0 at top)", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label=f"|{kind}| (clip: 99.5th pct, {vmax:.3g})")
    fig.suptitle(f"KV cache per layer (tiles, layer number top-left): rows = positions ({maps.block} per row), "
                 f"columns = kv_head x head_dim, dashed = kv_head boundaries", fontsize=10)
    return fig


def layer_statistics(data: FigureData):
    """Four panels across layers: sparsity, K-V norm correlation, std, mean |x|."""
    st = data.results["layer_stats"]
    n = len(st.std_k)
    x = np.arange(n)
    fig, axes = new_figure(12, 7.5, 2, 2)
    panels = [
        (axes[0][0], st.sparsity_k * 100, st.sparsity_v * 100, f"(a) sparsity: % of |x| < {st.threshold:g}", "%"),
        (axes[0][1], st.kv_norm_spearman, None, "(b) K-V correlation: Spearman of per-token ||k|| vs ||v||",
         "Spearman rho"),
        (axes[1][0], st.std_k, st.std_v, "(c) standard deviation", "std"),
        (axes[1][1], st.mean_abs_k, st.mean_abs_v, "(d) mean |x|", "mean |x|"),
    ]
    for ax, k, v, title, ylabel in panels:
        ax.plot(x, k, "o-", color=K_COLOR if v is not None else "k", ms=3, label="keys" if v is not None else "rho")
        if v is not None:
            ax.plot(x, v, "s-", color=V_COLOR, ms=3, label="values")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        layer_axis(ax, n)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][1].axhline(0, color="grey", lw=0.8)
    axes[0][1].set_ylim(-1.05, 1.05)
    fig.suptitle("KV cache statistics across layers (all kv_heads and positions)", fontsize=11)
    fig.tight_layout()
    return fig


def kv_value_distribution(data: FigureData):
    """Histograms of all K and V elements, log count axis, kurtosis and outlier share printed."""
    dist = data.results["distribution"]
    fig, axes = new_figure(12, 4.2, 1, 2)
    for ax, h, name, color in ((axes[0][0], dist.key, "keys", K_COLOR), (axes[0][1], dist.value, "values", V_COLOR)):
        ax.stairs(np.maximum(h.counts, 0), h.edges, fill=True, color=color, alpha=0.7)
        ax.set_yscale("log")
        ax.set_xlabel(f"{name} element value")
        ax.set_ylabel("count (log)")
        ax.set_title(f"{name}: {h.n:,} elements", fontsize=10)
        ax.text(0.02, 0.97, f"excess kurtosis {h.kurtosis:.2f}\n>{dist.outlier_sigma:g} sigma: "
                f"{h.outlier_share * 100:.3f} %\nstd {h.std:.3g}, range [{h.min:.3g}, {h.max:.3g}]",
                transform=ax.transAxes, va="top", fontsize=8,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    fig.suptitle("Distribution of cached values (Gaussian: kurtosis 0, 6-sigma share ~0 %)", fontsize=11)
    fig.tight_layout()
    return fig


def head_sparsity(data: FigureData):
    """Layer x kv_head heatmaps of the share of near-zero elements, K and V."""
    st = data.results["layer_stats"]
    fig, axes = new_figure(10, max(3.0, 0.22 * st.head_sparsity_k.shape[0] + 1.5), 1, 2)
    vmax = max(float(st.head_sparsity_k.max()), float(st.head_sparsity_v.max()), 1e-9) * 100
    for ax, mat, name in ((axes[0][0], st.head_sparsity_k, "keys"), (axes[0][1], st.head_sparsity_v, "values")):
        im = ax.imshow(mat * 100, aspect="auto", cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xlabel("kv_head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(mat.shape[1]))
        ax.set_yticks(range(0, mat.shape[0], max(1, mat.shape[0] // 15)))
        ax.set_title(f"{name}: % of |x| < {st.threshold:g}", fontsize=10)
        fig.colorbar(im, ax=ax, label="%")
    fig.suptitle(f"Sparsity per layer and kv_head (max {vmax:.3g} %)", fontsize=11)
    fig.tight_layout()
    return fig


def kv_quantization_error(data: FigureData):
    """Relative tensor error and attention-output error vs bits, per scheme, keys and values."""
    q = data.results["quantization"]
    fig, axes = new_figure(12, 7.5, 2, 2)
    styles = {"tensor": ("o-", "per-tensor"), "token": ("s-", "per-token"),
              "channel": ("^-", f"per-channel (groups of {q.group_size} positions)")}
    labels = [f"{b}\n({q.sixteen_bit})" if b == 16 else str(b) for b in q.bits]
    for col, kind in enumerate(("key", "value")):
        for row, (table, what) in enumerate(((q.tensor, "||x_q - x|| / ||x||"),
                                             (q.output, "||o_q - o|| / ||o|| (attention output)"))):
            ax = axes[row][col]
            if row == 1 and not q.output_layers:
                no_data(ax, "attention-output error needs captured queries")
                continue
            for scheme in q.schemes:
                style, name = styles[scheme]
                ax.plot(range(len(q.bits)), np.maximum(table[kind][scheme], 1e-12), style, label=name, ms=4)
            ax.set_yscale("log")
            ax.set_xticks(range(len(q.bits)), labels)
            ax.set_xlabel("bits")
            ax.set_ylabel(what, fontsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
            extra = f", layers {q.output_layers}, last {q.n_queries} queries" if row == 1 else ", all layers"
            ax.set_title(f"{kind}s quantized{extra}", fontsize=9)
    fig.suptitle("Quantization error (16 = float16 rounding; 8/4/2 = asymmetric min-max integer grids). "
                 "KIVI: keys per-channel, values per-token", fontsize=10)
    fig.tight_layout()
    return fig
