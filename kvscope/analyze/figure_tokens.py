"""Token-level figures: every token's key/value L2 norms, types, attention received and sinks."""

from __future__ import annotations

import numpy as np

from kvscope.analyze.figure_base import (
    K_COLOR,
    SINK_COLOR,
    V_COLOR,
    FigureData,
    label_points,
    layer_axis,
    log_scale,
    mark_sinks,
    new_figure,
    no_data,
    wrap,
)
from kvscope.kit.figures import token_label
from kvscope.tokens import TOKEN_TYPES


def _size(n: int) -> float:
    return float(np.clip(2000 / max(n, 1), 6, 60))


def _attn_note(t) -> str:
    return "" if t.has_attention else " (no attention data: sinks not detected)"


def low_importance_tokens(data: FigureData):
    """The lowest-magnitude tokens, each with the attention it actually receives; sinks called out."""
    t = data.results["tokens"]
    fig, axes = new_figure(13, 5, 1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    ax = axes[0][0]
    n = len(t.tokens)
    ax.scatter(t.key_norm, t.value_norm, c=np.arange(n), cmap="Greys", s=_size(n), alpha=0.5)
    low = t.lowest
    ax.scatter(t.key_norm[low], t.value_norm[low], marker="x", color="red", s=60, label="lowest magnitude")
    mark_sinks(ax, t.key_norm, t.value_norm, t.sink)
    label_points(ax, t.key_norm, t.value_norm, low, t.tokens, limit=8)
    ax.set_xlabel("key L2 norm (mean over layers, kv_heads)")
    ax.set_ylabel("value L2 norm")
    ax.legend(fontsize=7)
    ax.set_title("lowest (||k||+||v||)/2 tokens, red x", fontsize=9)
    _received_bars(axes[0][1], t)
    fig.suptitle(
        "Low-magnitude tokens: candidates by magnitude, checked against attention" + _attn_note(t), fontsize=11
    )
    fig.tight_layout()
    return fig


def position_relative(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``(ratio [position], w)``: each value divided by the median of the ``2w + 1`` tokens around its
    position (a window shifted inside the prompt at the ends; ``w = max(2, n // 20)``). Attention received
    per seeing query favours the last tokens (few queries see them, each from close by); against the
    tokens at the same place in the prompt, 1 means typical for its position, whatever the length."""
    n = values.size
    w = max(2, n // 20)
    out = np.full(n, np.nan)
    for j in range(n):
        s = min(max(0, j - w), max(0, n - 2 * w - 1))
        med = np.nanmedian(values[s : s + 2 * w + 1]) if np.isfinite(values[s : s + 2 * w + 1]).any() else np.nan
        out[j] = values[j] / med if med > 0 else np.nan
    return out, w


def _received_bars(ax, t) -> None:
    """Bars: what the lowest-magnitude tokens receive, on a length-fair scale; sinks called out."""
    if not t.has_attention:
        no_data(ax, "no attention data: cannot say what these tokens receive")
        return
    values, w = position_relative(t.attention)
    low = t.lowest
    att = values[low]
    colors = [SINK_COLOR if t.sink[i] else "#7f7f7f" for i in low]
    ax.bar(range(len(low)), att, color=colors)
    ax.axhline(np.nanmedian(values), color="k", ls="--", lw=1, label="median over all tokens")
    ax.set_xticks(range(len(low)), [f"{token_label(t.tokens[i])}\n@{i}" for i in low], fontsize=7)
    for j, i in enumerate(low):
        if t.sink[i]:
            ax.annotate(
                "attention sink:\nNOT unimportant",
                (j, att[j]),
                ha="center",
                va="bottom",
                fontsize=7,
                color=SINK_COLOR,
                fontweight="bold",
            )
    log = np.nanmax(att) > 20 * max(np.nanmin(att), 1e-12)  # a sink is ~100x typical: keep the rest readable
    if log:
        log_scale(ax, "y")
    if np.isfinite(att).any():
        ax.set_ylim(top=float(np.nanmax(att)) * (4 if log else 1.25))  # room for the sink's note
    ax.set_ylabel(f"attention received / median of the\ntokens within {w} positions (1 = typical)", fontsize=8)
    ax.legend(fontsize=7)
    ax.set_title("attention those tokens actually receive", fontsize=9)


def token_importance_comparison(data: FigureData):
    """High- vs low-magnitude tokens on ||k|| x ||v||, coloured by attention received."""
    t = data.results["tokens"]
    fig, axes = new_figure(8, 6)
    ax = axes[0][0]
    ax.scatter(t.key_norm, t.value_norm, color="#dddddd", s=_size(len(t.tokens)), label="other tokens")
    color = t.attention if t.has_attention else None
    for idx, marker, name in ((t.highest, "o", "highest magnitude"), (t.lowest, "X", "lowest magnitude")):
        kw = (
            {"c": color[idx], "cmap": "viridis", "vmin": np.nanmin(color), "vmax": _clip_limit(color, t.sink)}
            if color is not None
            else {"color": "tab:blue" if marker == "o" else "tab:red"}
        )
        sc = ax.scatter(
            t.key_norm[idx], t.value_norm[idx], marker=marker, s=70, edgecolors="k", linewidths=0.5, label=name, **kw
        )
    if color is not None:
        fig.colorbar(sc, ax=ax, extend="max", label="attention received per query (clipped at the non-sink 95th pct)")
    mark_sinks(ax, t.key_norm, t.value_norm, t.sink)
    label_points(ax, t.key_norm, t.value_norm, np.concatenate([t.highest[:5], t.lowest[:5]]), t.tokens)
    ax.set_xlabel("key L2 norm")
    ax.set_ylabel("value L2 norm")
    ax.legend(fontsize=7)
    ax.set_title("High vs low magnitude tokens, coloured by attention received" + _attn_note(t), fontsize=10)
    fig.tight_layout()
    return fig


def _clip_limit(values: np.ndarray, sink: np.ndarray) -> float:
    """Colour limit: the 95th percentile of the non-sink tokens, so one sink does not wash out the rest
    (the colour bar is clipped there; the sinks are ringed instead)."""
    rest = values[~sink & np.isfinite(values)]
    return float(np.percentile(rest, 95)) if rest.size else float(np.nanmax(values))


def _present_types(t) -> list[str]:
    return [ty for ty in TOKEN_TYPES if t.by_type[ty].size]


def token_magnitude_distributions(data: FigureData):
    """Boxplots of key and value L2 norm by token type."""
    t = data.results["tokens"]
    types = _present_types(t)
    fig, axes = new_figure(12, 4.5, 1, 2)
    for ax, vals, name, color in (
        (axes[0][0], t.key_norm, "key", K_COLOR),
        (axes[0][1], t.value_norm, "value", V_COLOR),
    ):
        groups = [vals[t.by_type[ty]] for ty in types]
        bp = ax.boxplot(groups, patch_artist=True, showfliers=True)
        for box in bp["boxes"]:
            box.set_facecolor(color)
            box.set_alpha(0.4)
        for j, ty in enumerate(types):
            sinks = t.by_type[ty][t.sink[t.by_type[ty]]]
            ax.scatter(
                np.full(sinks.size, j + 1),
                vals[sinks],
                s=70,
                color=SINK_COLOR,
                edgecolors="k",
                zorder=5,
                label="attention sink" if sinks.size and not ax.get_legend_handles_labels()[1] else None,
            )
        if t.sink.any():
            ax.legend(fontsize=7)
        ax.set_xticks(
            range(1, len(types) + 1), [f"{ty}\n(n={t.by_type[ty].size})" for ty in types], fontsize=7, rotation=30
        )
        ax.set_ylabel(f"{name} L2 norm")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Key and value magnitude by token type (mean over layers and kv_heads)" + _attn_note(t), fontsize=11)
    fig.tight_layout()
    return fig


def token_magnitudes(data: FigureData):
    """Top: ||k|| and ||v|| by position (sinks marked). Bottom: mean by token type."""
    t = data.results["tokens"]
    n = len(t.tokens)
    fig, axes = new_figure(13, 7, 2, 1)
    ax = axes[0][0]
    x = np.arange(n)
    ax.plot(x, t.key_norm, "-", color=K_COLOR, lw=1, marker="o" if n <= 80 else None, ms=3, label="key")
    ax.plot(x, t.value_norm, "-", color=V_COLOR, lw=1, marker="s" if n <= 80 else None, ms=3, label="value")
    for i in np.flatnonzero(t.sink):
        ax.axvline(i, color=SINK_COLOR, lw=2, alpha=0.6)
    if t.sink.any():
        ax.plot([], [], color=SINK_COLOR, lw=2, label="attention sink")
    if n <= 60:
        ax.set_xticks(x, [token_label(s, 8) for s in t.tokens], rotation=90, fontsize=7)
    ax.set_xlabel("position")
    ax.set_ylabel("L2 norm")
    ax.legend(fontsize=7)
    ax.set_title("magnitude by position" + _attn_note(t), fontsize=10)
    ax = axes[1][0]
    types = _present_types(t)
    km, vm = t.type_means("key_norm"), t.type_means("value_norm")
    w = 0.38
    ax.bar(np.arange(len(types)) - w / 2, [km[ty] for ty in types], w, color=K_COLOR, label="key")
    ax.bar(np.arange(len(types)) + w / 2, [vm[ty] for ty in types], w, color=V_COLOR, label="value")
    ax.set_xticks(range(len(types)), [f"{ty} (n={t.by_type[ty].size})" for ty in types], fontsize=8)
    ax.set_ylabel("mean L2 norm")
    ax.legend(fontsize=7)
    ax.set_title("average magnitude by token type", fontsize=10)
    fig.tight_layout()
    return fig


def token_key_value_scatter(data: FigureData):
    """Every token: key vs value L2 norm, coloured by position, top tokens labelled, sinks ringed."""
    t = data.results["tokens"]
    n = len(t.tokens)
    fig, axes = new_figure(8.5, 6.5)
    ax = axes[0][0]
    sc = ax.scatter(t.key_norm, t.value_norm, c=np.arange(n), cmap="viridis", s=_size(n), alpha=0.8)
    fig.colorbar(sc, ax=ax, label="position")
    mark_sinks(ax, t.key_norm, t.value_norm, t.sink)
    label_points(ax, t.key_norm, t.value_norm, t.highest, t.tokens, limit=10)
    ax.set_xlabel("key L2 norm")
    ax.set_ylabel("value L2 norm")
    if t.sink.any():
        ax.legend(fontsize=7)
    ax.set_title(f"Key vs value magnitude, {n} tokens (labels: highest magnitude)" + _attn_note(t), fontsize=10)
    fig.tight_layout()
    return fig


def kv_pca_by_position(data: FigureData):
    """PCA of one layer's per-position K and V vectors, coloured by position; sinks and specials marked."""
    p, t = data.results["pca"], data.results["tokens"]
    fig, axes = new_figure(12, 5, 1, 2)
    special = np.array([ty == "special" for ty in t.types])
    for ax, coords, share, name in (
        (axes[0][0], p.key, p.key_explained, "keys"),
        (axes[0][1], p.value, p.value_explained, "values"),
    ):
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=p.positions, cmap="viridis", s=_size(len(p.positions)))
        mark_sinks(ax, coords[:, 0], coords[:, 1], t.sink[p.positions])
        if special[p.positions].any():
            sp = special[p.positions]
            ax.scatter(coords[sp, 0], coords[sp, 1], marker="^", color="k", s=50, label="special token")
        if t.sink.any() or special.any():
            ax.legend(fontsize=7)
        ax.set_xlabel(f"PC1 ({share[0] * 100:.1f} % of variance)")
        ax.set_ylabel(f"PC2 ({share[1] * 100:.1f} %)")
        ax.set_title(f"{name}, layer {p.layer}" + (" (keys post-RoPE)" if name == "keys" else ""), fontsize=10)
        fig.colorbar(sc, ax=ax, label="position")
    fig.suptitle("PCA of per-position cache vectors (kv_heads concatenated)" + _attn_note(t), fontsize=11)
    fig.tight_layout()
    return fig


def importance_validation(data: FigureData):
    """Position-controlled correlation of each proxy with attention per layer; both references beside it."""
    from kvscope.analyze.importance import CONTROL, layer_median

    imp = data.results["importance"]
    fig, axes = new_figure(12, 5, 1, 2, gridspec_kw={"width_ratios": [2, 1]})
    ax = axes[0][0]
    med = layer_median(imp)
    for name, rho in imp.layer_partial.items():
        ax.plot(np.arange(len(rho)), rho, "o-", ms=3, label=f"{PROXY_NAMES[name]}: median {med[name]:+.2f}")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    layer_axis(ax, len(rho))
    ax.set_ylabel(f"{CONTROL}\nwith attention received", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(wrap(imp.verdict), fontsize=8)
    _reference_bars(axes[0][1], imp.partial, imp.ground_truth_note)
    fig.suptitle("Do the importance proxies predict importance once position is controlled for?", fontsize=11)
    fig.tight_layout()
    return fig


PROXY_NAMES = {
    "magnitude": "magnitude (||k||+||v||)/2",
    "key_norm": "KNorm (-||k||)",
    "value_norm": "||v||",
    "attention": "attention received",
}


def _reference_bars(ax, partial: dict[str, dict[str, float]], note: str = "") -> None:
    """Horizontal bars: partial rho of each proxy with each reference present. A pair that is not
    measured (attention against itself) has no bar; a NaN is written "n/a", never drawn as 0."""
    refs = [r for r in ("leave_one_out", "attention") if r in partial]
    names = [n for n in PROXY_NAMES if any(n in partial[r] for r in refs)]
    h = 0.8 / len(refs)
    for j, ref in enumerate(refs):
        label = "vs leave-one-out" if ref == "leave_one_out" else "vs attention received"
        y = np.arange(len(names)) + j * h
        vals = np.array([partial[ref].get(n, np.nan) for n in names], dtype=np.float64)
        ok = np.isfinite(vals)
        ax.barh(y[ok], vals[ok], h, label=label, color=f"C{j}")
        for i in np.flatnonzero(~ok):
            if names[i] in partial[ref]:
                ax.text(0.02, y[i], "n/a", va="center", ha="left", fontsize=7, color=f"C{j}")
    ax.set_yticks(np.arange(len(names)) + h * (len(refs) - 1) / 2, [PROXY_NAMES[n] for n in names], fontsize=7)
    ax.set_xlim(-1, 1)
    ax.axvline(0, color="grey", lw=0.8)
    ax.legend(fontsize=7)
    extra = (
        f"\n({note})"
        if note
        else ("" if "leave_one_out" in partial else "\n(no leave-one-out file: kvscope prune --leave-one-out)")
    )
    ax.set_title("partial Spearman given position, over tokens" + extra, fontsize=8)
