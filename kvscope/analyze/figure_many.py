"""Many-prompt figures: per-layer curves with 95 % bootstrap bands, correlations as distributions over
prompts, quantization error with intervals, token types pooled over prompts. Each reads
``data.results["many"]`` (``kvscope.analyze.many.ManyPrompts``)."""

from __future__ import annotations

import numpy as np

from kvscope.analyze.figure_base import (
    K_COLOR,
    SINK_COLOR,
    V_COLOR,
    FigureData,
    layer_axis,
    log_scale,
    new_figure,
    no_data,
    wrap,
)


def _band(ax, band, color, label, marker="o") -> None:
    mean, low, high = band
    x = np.arange(len(mean))
    ax.plot(x, mean, marker + "-", color=color, ms=3, label=label)
    ax.fill_between(x, low, high, color=color, alpha=0.25, lw=0)


def _n(data: FigureData) -> str:
    m = data.results["many"]
    return f"{m.n_prompts} prompts ({min(m.tokens)}-{max(m.tokens)} tokens), mean and 95 % bootstrap band"


def layer_statistics(data: FigureData):
    """std, mean |x|, K-V norm correlation and the sink share of position 0 per layer, with bands."""
    b = data.results["many"].layer_bands
    fig, axes = new_figure(12, 7.5, 2, 2)
    panels = (
        (axes[0][0], ("std_k", "std_v"), "(a) standard deviation"),
        (axes[0][1], ("mean_abs_k", "mean_abs_v"), "(b) mean |x|"),
        (axes[1][0], ("kv_norm_spearman",), "(c) Spearman of per-token ||k|| vs ||v||"),
        (axes[1][1], ("first_share",), "(d) attention share of position 0 (per seeing query)"),
    )
    for ax, names, title in panels:
        if not all(n in b for n in names):
            no_data(ax, "not measured (no attention data)")
            continue
        for n, color, label in zip(
            names,
            (K_COLOR, V_COLOR) if len(names) == 2 else ("k",),
            ("keys", "values") if len(names) == 2 else (title.split(" ", 1)[1],),
        ):
            _band(ax, b[n], color, label)
        layer_axis(ax, len(b[names[0]][0]))
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("KV cache statistics across layers: " + _n(data), fontsize=10)
    fig.tight_layout()
    return fig


def head_specialization(data: FigureData):
    """Mean over q_heads of look-back on non-sink attention and of the sink share, per layer, with bands."""
    b = data.results["many"].layer_bands
    fig, axes = new_figure(12, 4.5, 1, 2)
    for ax, name, color, label in (
        (axes[0][0], "lookback", "#2ca02c", "look-back of non-sink attention (tokens)"),
        (axes[0][1], "sink_share", SINK_COLOR, "share of attention on the sinks"),
    ):
        if name not in b:
            no_data(ax, "needs captured queries")
            continue
        _band(ax, b[name], color, label)
        layer_axis(ax, len(b[name][0]))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle("Heads, mean over q_heads: " + _n(data), fontsize=10)
    fig.tight_layout()
    return fig


def importance(data: FigureData):
    """Partial Spearman (given position) of each proxy with each reference: one dot per prompt, the mean
    and its interval."""
    from kvscope.analyze.figure_tokens import PROXY_NAMES

    m = data.results["many"]
    fig, axes = new_figure(11, 5)
    ax = axes[0][0]
    names = [n for n in PROXY_NAMES if n != "attention"]
    for j, ref in enumerate(m.correlations):
        for i, name in enumerate(names):
            y = i + 0.3 * j
            vals = m.correlations[ref][name]
            ax.scatter(vals, np.full(vals.size, y), s=14, alpha=0.6, color=f"C{j}")
            mean, lo, hi = m.intervals[ref][name]
            ax.errorbar(
                [mean],
                [y],
                xerr=[[mean - lo], [hi - mean]],
                fmt="D",
                color=f"C{j}",
                capsize=4,
                label=("vs " + ref.replace("_", "-")) if i == 0 else None,
            )
    ax.set_yticks(np.arange(len(names)) + 0.15 * (len(m.correlations) - 1), [PROXY_NAMES[n] for n in names])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("partial Spearman given position (dots: prompts; diamond: mean, bar: 95 % interval)")
    ax.legend(fontsize=7)
    ax.set_title(wrap(m.verdict, 120), fontsize=8)
    fig.suptitle("Importance proxies over " + _n(data), fontsize=10)
    fig.tight_layout()
    return fig


def quantization(data: FigureData):
    """Error against effective bits, mean over prompts with 95 % intervals, keys and values."""
    q = data.results["many"].quantization
    fig, axes = new_figure(12, 10, 3, 2)
    for col, kind in enumerate(("key", "value")):
        for row, (err, what) in enumerate(
            (("tensor", "||x_q - x|| / ||x||"), ("output", "attention-output error"), ("kl", "next-token KL (nats)"))
        ):
            ax = axes[row][col]
            drawn = False
            for var in q["variants"]:
                e = q[kind][var]
                ok = np.isfinite(e[err][0])  # KL: only some bit widths
                if not ok.any():
                    continue
                drawn = True
                mean, lo, hi = (np.asarray(a)[ok] for a in e[err])
                ax.errorbar(
                    e["effective_bits"][ok],
                    np.maximum(mean, 1e-12),
                    yerr=[np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)],
                    fmt="o-",
                    ms=3,
                    capsize=2,
                    label=var,
                )
            if not drawn:
                no_data(ax, q["notes"].get(err, "not measured"))
                continue
            log_scale(ax, "y")
            ax.set_xlabel("effective bits per element")
            ax.set_ylabel(what, fontsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=6, ncol=2)
            ax.set_title(f"{kind}s quantized", fontsize=9)
    fig.suptitle("Quantization at equal cost: " + _n(data), fontsize=10)
    fig.tight_layout()
    return fig


def token_types(data: FigureData):
    """Key and value norms by word type, pooled over every prompt."""
    from kvscope.tokens import TOKEN_TYPES

    tn = data.results["many"].type_norms
    fig, axes = new_figure(12, 4.5, 1, 2)
    for ax, which, color in ((axes[0][0], "key_norm", K_COLOR), (axes[0][1], "value_norm", V_COLOR)):
        types = [t for t in TOKEN_TYPES if tn[which].get(t, np.zeros(0)).size]
        bp = ax.boxplot([tn[which][t] for t in types], patch_artist=True, showfliers=False)
        for box in bp["boxes"]:
            box.set_facecolor(color)
            box.set_alpha(0.4)
        ax.set_xticks(
            range(1, len(types) + 1), [f"{t}\n(n={tn[which][t].size})" for t in types], fontsize=7, rotation=30
        )
        ax.set_ylabel(which.replace("_", " "))
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Magnitude by word type, tokens of " + _n(data).split(",")[0] + " pooled", fontsize=10)
    fig.tight_layout()
    return fig
