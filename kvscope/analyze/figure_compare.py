"""Figures of ``kvscope compare``: A (solid) against B (dashed), per layer and per quantization setting."""

from __future__ import annotations

import numpy as np

from kvscope.analyze.figure_base import K_COLOR, SINK_COLOR, V_COLOR, layer_axis, new_figure, no_data


def _layers(a: dict, b: dict, labels: tuple[str, str], noise: dict | None = None, note: str = ""):
    """Per-layer statistics of A and B (length-matched when the lengths differ), with A's value
    +- the half-vs-half spread shaded as the noise scale."""
    fig, axes = new_figure(12, 7.5, 2, 2)
    panels = (
        (axes[0][0], ("std_k", "std_v"), "standard deviation"),
        (axes[0][1], ("mean_abs_k", "mean_abs_v"), "mean |x|"),
        (axes[1][0], ("outlier_ratio_k", "outlier_ratio_v"), "outlier-channel ratio (max/median)"),
        (axes[1][1], ("first_share",), "attention share of position 0"),
    )
    for ax, names, title in panels:
        if any(a[n] is None or b[n] is None for n in names):
            no_data(ax, "needs attention data in both snapshots")
            continue
        for n, color in zip(names, (K_COLOR, V_COLOR) if len(names) == 2 else (SINK_COLOR,)):
            kind = "keys" if n.endswith("_k") else "values" if n.endswith("_v") else "sink"
            ax.plot(a[n], "-", color=color, label=f"{labels[0]} {kind}")
            ax.plot(b[n], "--", color=color, label=f"{labels[1]} {kind}")
            if noise is not None and n in noise:
                x = np.arange(len(a[n]))
                lo, hi = a[n] - noise[n], a[n] + noise[n]
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0, label=f"{labels[0]} +- noise")
        layer_axis(ax, len(a[names[0]]))
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Per-layer statistics: {labels[0]} (solid) vs {labels[1]} (dashed); shaded: noise scale "
        f"(spread between the two halves of one prompt)\nlengths: {note}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _channels(a: dict, b: dict, labels: tuple[str, str]):
    fig, axes = new_figure(13, 5, 1, 3)
    mats = (a["channel_mean_abs_k"], b["channel_mean_abs_k"], b["channel_mean_abs_k"] - a["channel_mean_abs_k"])
    lim = max(float(np.nanmax(mats[0])), float(np.nanmax(mats[1])))
    dlim = float(np.nanmax(np.abs(mats[2]))) or 1.0
    for ax, m, title, kw in (
        (axes[0][0], mats[0], labels[0], {"cmap": "viridis", "vmin": 0, "vmax": lim}),
        (axes[0][1], mats[1], labels[1], {"cmap": "viridis", "vmin": 0, "vmax": lim}),
        (axes[0][2], mats[2], f"{labels[1]} - {labels[0]}", {"cmap": "RdBu_r", "vmin": -dlim, "vmax": dlim}),
    ):
        im = ax.imshow(m, aspect="auto", interpolation="nearest", **kw)
        fig.colorbar(im, ax=ax)
        ax.set_xlabel("key channel (kv_head x head_dim)")
        ax.set_ylabel("layer")
        ax.set_title(title, fontsize=9)
    fig.suptitle("Mean |K| per channel and layer: outlier channels are the bright columns", fontsize=11)
    fig.tight_layout()
    return fig


def _quant(a: dict, b: dict, labels: tuple[str, str]):
    fig, axes = new_figure(12, 4.5, 1, 2)
    for ax, kind in ((axes[0][0], "key"), (axes[0][1], "value")):
        for i, var in enumerate(a["quantization"]["variants"]):
            for side, style, label in ((a, "-", labels[0]), (b, "--", labels[1])):
                q = side["quantization"]
                ax.plot(
                    q["effective_bits"][kind][var],
                    q["tensor"][kind][var],
                    style,
                    marker="o",
                    ms=3,
                    color=f"C{i}",
                    label=f"{var} {label}",
                )
        ax.set_yscale("log")
        ax.set_xlabel("effective bits per element")
        ax.set_ylabel("||x_q - x|| / ||x||")
        ax.set_title(f"{kind}s", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"Quantization error at equal cost: {labels[0]} (solid) vs {labels[1]} (dashed)", fontsize=11)
    fig.tight_layout()
    return fig


def compare_figures(a: dict, b: dict, labels: tuple[str, str], noise: dict | None = None, note: str = "") -> dict:
    """``{name: Figure}`` for one comparison; ``noise`` ``{statistic: [layer]}`` is shaded around A."""
    return {
        "compare_layers": _layers(a, b, labels, noise, note),
        "compare_channels": _channels(a, b, labels),
        "compare_quantization": _quant(a, b, labels),
    }
