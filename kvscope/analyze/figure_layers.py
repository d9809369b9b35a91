"""Layer-level figures: cache heatmaps, layer statistics, value histograms, head sparsity,
quantization error."""

from __future__ import annotations

import math

import numpy as np

from kvscope.analyze.figure_base import (
    K_COLOR,
    V_COLOR,
    FigureData,
    layer_axis,
    log_scale,
    new_figure,
    no_data,
    wrap,
)


def _norm(scale: str, vmax: float, maps, log: bool):
    from matplotlib.colors import LogNorm, Normalize

    if log:
        return LogNorm(vmin=max(vmax * 1e-3, 1e-12), vmax=vmax, clip=True)
    return Normalize(vmin=0, vmax=vmax, clip=True)


def kv_cache_layers(data: FigureData):
    """|K| and |V| heatmaps per layer (positions x kv_head*head_dim). Every position gets at least one
    pixel row (the figure is sized from the pixel count) or rows are explicit block maxima (labelled).
    Colour per layer (default: each tile scaled by its own 99.5th percentile) or shared; log when asked
    or when one element exceeds the clip limit more than 20-fold."""
    from kvscope.kit.figures import DPI

    maps = data.results["cache_maps"]
    scale, log = data.meta.get("cache_scale", "layer"), data.meta.get("cache_norm", "auto")
    log = log == "log" or (log == "auto" and maps.dominance > 20)
    n, cols = len(maps.key), min(6, len(maps.key))
    rows, h, w = math.ceil(n / cols), maps.key[0].shape[0], maps.key[0].shape[1]
    gap, gap_y = 3, 3
    px_h, px_w = rows * (h + gap_y), cols * (w + gap)
    height = max(2 * (1.5 * rows + 0.4), 2 * (px_h * 1.15 / DPI) + 1.2)  # >= 1 pixel per row
    width = max(2.1 * cols + 1.5, px_w * 1.15 / DPI + 1.5)
    fig, axes = new_figure(width, height, 2, 1, layout="constrained")
    for ax, kind, mats, vmax, per, cmap in (
        (axes[0][0], "K", maps.key, maps.vmax_k, maps.layer_vmax_k, "viridis"),
        (axes[1][0], "V", maps.value, maps.vmax_v, maps.layer_vmax_v, "magma"),
    ):
        img = np.full((px_h - gap_y, px_w - gap), np.nan)
        for i, m in enumerate(mats):
            r, c = divmod(i, cols)
            tile = m / per[i] if scale == "layer" else m  # per layer: in units of the layer's own limit
            img[r * (h + gap_y) : r * (h + gap_y) + m.shape[0], c * (w + gap) : c * (w + gap) + w] = tile
            ax.text(  # bottom-left, so the label never covers the first rows (the sinks)
                c * (w + gap) + 1,
                r * (h + gap_y) + m.shape[0] - 1,
                f"{kind}{i}",
                color="white",
                fontsize=7,
                va="bottom",
                ha="left",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"},
            )
        cm = __import__("matplotlib").colormaps[cmap].resampled(100).with_extremes(bad="white")
        top = 1.0 if scale == "layer" else vmax
        im = ax.imshow(img, aspect="auto", interpolation="nearest", cmap=cm, norm=_norm(scale, top, maps, log))
        xs = [c * (w + gap) + hh * maps.head_dim - 0.5 for c in range(cols) for hh in range(1, maps.kv_heads)]
        ax.vlines(xs, -0.5, img.shape[0] - 0.5, colors="white", linestyles="--", linewidth=0.6)
        ax.set_xticks([])
        ax.set_yticks(
            [r * (h + gap_y) for r in range(rows)] + [h - 1], ["0"] * rows + [str(maps.n_positions - 1)], fontsize=6
        )
        ax.set_ylabel("position (each tile: 0 at top)", fontsize=8)
        what = (
            f"|{kind}| / the layer's 99.5th pct"
            if scale == "layer"
            else f"|{kind}| (shared limit: 99.5th pct, {vmax:.3g})"
        )
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01, label=f"{what}{', log' if log else ''}, clipped")
    rows_are = "one row per position" if maps.block == 1 else f"max |x| over blocks of {maps.block} positions"
    fig.suptitle(
        f"KV cache per layer (tiles, layer number bottom-left): {rows_are}; "
        f"columns = kv_head x head_dim, dashed = kv_head boundaries",
        fontsize=10,
    )
    return fig


def layer_statistics(data: FigureData):
    """Four panels across layers: sparsity, K-V norm correlation, std, mean |x|."""
    st = data.results["layer_stats"]
    n = len(st.std_k)
    x = np.arange(n)
    fig, axes = new_figure(12, 7.5, 2, 2)
    panels = [
        (axes[0][0], st.sparsity_k * 100, st.sparsity_v * 100, f"(a) sparsity: % of |x| < {st.threshold:g}", "%"),
        (
            axes[0][1],
            st.kv_norm_spearman,
            None,
            "(b) K-V correlation: Spearman of per-token ||k|| vs ||v||",
            "Spearman rho",
        ),
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
        log_scale(ax, "y")
        ax.set_xlabel(f"{name} element value")
        ax.set_ylabel("count (log)")
        ax.set_title(f"{name}: {h.n:,} elements", fontsize=10)
        ax.text(
            0.02,
            0.97,
            f"excess kurtosis {h.kurtosis:.2f}\n>{dist.outlier_sigma:g} sigma: "
            f"{h.outlier_share * 100:.3f} %\nstd {h.std:.3g}, range [{h.min:.3g}, {h.max:.3g}]",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
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
    """Error against effective bits per element (codes + float16 scales/zeros): tensor, attention output
    and next-token KL, keys and values, every scheme and group size."""
    q = data.results["quantization"]
    fig, axes = new_figure(12, 10, 3, 2)
    rows = (
        (q.tensor, "||x_q - x|| / ||x||", ""),
        (q.output, "||o_q - o|| / ||o|| (attention output)", "output"),
        (q.kl, "next-token KL (nats)", "kl"),
    )
    for col, kind in enumerate(("key", "value")):
        for row, (table, what, note) in enumerate(rows):
            ax = axes[row][col]
            if note and note in q.notes:
                no_data(ax, wrap(q.notes[note], 60))
                continue
            for var in q.variants:
                y, ok = table[kind][var], np.isfinite(table[kind][var])  # KL: only some bit widths
                if ok.any():
                    ax.plot(
                        q.effective_bits[kind][var][ok],
                        np.maximum(y[ok], 1e-12),
                        VARIANT_STYLE.get(var.split("/")[0], "o-"),
                        ms=4,
                        label=var,
                    )
            if row == 0:
                ax.plot([16], [max(q.float16[kind], 1e-12)], "k*", ms=9, label="float16")
            log_scale(ax, "y")
            ax.set_xlabel("effective bits per element (codes + float16 scale and zero)")
            ax.set_ylabel(what, fontsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6, ncol=2)
            ax.set_title(
                f"{kind}s quantized"
                + (
                    f", layers {q.output_layers}, last {q.n_queries} queries"
                    if row == 1
                    else f", last {q.n_kl} positions"
                    if row == 2
                    else ""
                ),
                fontsize=9,
            )
    fig.suptitle(
        f"Quantization at equal cost: bits {list(q.bits)} per scheme; token/g32 and channel/g32 pay "
        "the same +1 bit per element for their statistics",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


VARIANT_STYLE = {"tensor": "o-", "token": "s-", "channel": "^-"}
