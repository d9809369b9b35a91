"""Figures of ``kvscope caching``: one function per file name in ``CACHING_FIGURES``, each takes a report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.patches import Rectangle

from kvscope.kit.figures import plt, token_label

MAX_LABELS = 40  # token labels per axis before thinning


def _tick_tokens(ax: Any, tokens: list[str], axis: str = "y") -> None:
    """Label an axis with tokens, thinning them so that at most ``MAX_LABELS`` show."""
    step = max(1, -(-len(tokens) // MAX_LABELS))
    idx = list(range(0, len(tokens), step))
    labels = [token_label(tokens[i]) for i in idx]
    size = 7 if len(idx) <= 24 else 6
    if axis == "y":
        ax.set_yticks(idx, labels, fontsize=size)
    else:
        ax.set_xticks(idx, labels, fontsize=size, rotation=90)


def _heads_image(ax: Any, x: Any, title: str, prefix: str, tokens: list[str]) -> None:
    """``x [heads, position, head_dim]`` as one ``position x (heads * head_dim)`` image, heads separated."""
    h, n, d = x.shape
    img = x.permute(1, 0, 2).reshape(n, h * d).numpy()
    vmax = float(np.quantile(np.abs(img), 0.99)) or 1.0
    im = ax.imshow(img, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    for b in range(1, h):
        ax.axvline(b * d - 0.5, color="black", lw=0.8)
    ax.set_xticks([b * d + d / 2 - 0.5 for b in range(h)], [f"{prefix}{b}" for b in range(h)], fontsize=7)
    _tick_tokens(ax, tokens)
    ax.set_title(f"{title}\n[{h} {'q_heads' if prefix == 'q' else 'kv_heads'} × {n} positions × {d}]", fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.04, pad=0.01)


def _by_hand_verdict(r: Any) -> str:
    """The one sentence about the by-hand check: a match only when it is within the tolerance it states."""
    from kvscope.caching.projections import ATTENTION_TOLERANCE

    p = r.projections
    parts = [f"soft-capping {p.softcap:g}" if p.softcap else "", f"window {p.window}" if p.window else ""]
    how = " and ".join(x for x in parts if x)
    what = "attention rebuilt by hand from Q, K after RoPE and V" + (f" (with the model's {how})" if how else "")
    tol = f"tolerance {ATTENTION_TOLERANCE:.0e}"
    if r.manual_vs_model <= ATTENTION_TOLERANCE:
        return f"{what} matches the o_proj input to {r.manual_vs_model:.1e} ({tol})"
    return f"{what} DOES NOT MATCH the o_proj input: off by {r.manual_vs_model:.1e} ({tol})"


def attention_projections(r: Any) -> Any:
    """Q, K (pre- and post-RoPE), V and the o_proj input of one layer, per head."""
    p = r.projections
    fig, axes = plt.subplots(2, 3, figsize=(17, 9 + 0.08 * len(r.tokens)))
    panels = [
        (p.q_pre, "q_proj output: Q before RoPE", "q"),
        (p.k_pre, "k_proj output: K before RoPE", "kv"),
        (p.k_post, "K after RoPE (what the cache stores)", "kv"),
        (p.q_post, "Q after RoPE", "q"),
        (p.v, "v_proj output: V (cached as is)", "kv"),
        (p.o_in, "o_proj input: attention output", "q"),
    ]
    for ax, (x, title, prefix) in zip(axes.flat, panels):
        _heads_image(ax, x, title, prefix, r.tokens)
    fig.suptitle(
        f"{r.info.name}: layer {r.layer} projections captured by forward hooks (channels within each "
        f"head on x; colour clipped at the 99th percentile of |value|)\n{_by_hand_verdict(r)}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def attention_patterns(r: Any) -> Any:
    """Causal attention of every q_head, one column per kv_head the q_heads share."""
    g, hkv = r.info.group_size, r.info.kv_heads
    n = len(r.tokens)
    side = min(5.0, 2.2 + 0.09 * n)
    fig, axes = plt.subplots(g, hkv, figsize=(side * hkv + 1, side * g + 0.6), squeeze=False, layout="constrained")
    norm = PowerNorm(gamma=0.5, vmin=0, vmax=1)
    for h in range(r.info.q_heads):
        ax = axes[h % g][h // g]
        probs = r.probs[h].numpy().copy()
        probs[np.triu_indices(n, 1)] = np.nan
        im = ax.imshow(probs, cmap="viridis", norm=norm, interpolation="nearest")
        ax.set_title(f"q_head {h} → kv_head {h // g}", fontsize=9)
        _tick_tokens(ax, r.tokens, "y")
        _tick_tokens(ax, r.tokens, "x")
    fig.colorbar(im, ax=axes, fraction=0.02, pad=0.01, label="attention probability (√ scale)")
    fig.suptitle(
        f"Layer {r.layer}: softmax(Q Kᵀ·{r.projections.scaling:.3g} + causal mask), rows = queries, "
        f"columns = keys; column c holds the {g} q_heads reading kv_head c",
        fontsize=10,
    )
    return fig


def gqa_mapping(r: Any) -> Any:
    """Which q_heads read which kv_head, and the KV memory GQA saves against MHA."""
    q = r.gqa()
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(12, max(4.0, 0.45 * q["q_heads"] + 1.5)), gridspec_kw={"width_ratios": [1.2, 1]}
    )
    colours = plt.cm.tab10(np.arange(q["kv_heads"]) % 10)
    ys_q = np.linspace(1, 0, q["q_heads"])
    ys_kv = np.linspace(0.9, 0.1, q["kv_heads"]) if q["kv_heads"] > 1 else np.array([0.5])
    for h, kv in enumerate(q["kv_head_of_q_head"]):
        ax.plot([0, 1], [ys_q[h], ys_kv[kv]], color=colours[kv], lw=1.5)
        ax.text(-0.03, ys_q[h], f"q_head {h}", ha="right", va="center", fontsize=9)
    for kv in range(q["kv_heads"]):
        ax.text(
            1.03, ys_kv[kv], f"kv_head {kv}", ha="left", va="center", fontsize=10, color=colours[kv], fontweight="bold"
        )
    ax.set_xlim(-0.45, 1.45)
    ax.axis("off")
    ax.set_title(f"q_head h reads kv_head h // {q['group_size']}", fontsize=10)
    mib = [q["kv_bytes_at_max_positions_mha"] / 2**20, q["kv_bytes_at_max_positions_gqa"] / 2**20]
    bars = bx.bar(
        [f"MHA\n({q['q_heads']} kv_heads)", f"GQA\n({q['kv_heads']} kv_heads)"], mib, color=["#bbbbbb", "#1f77b4"]
    )
    bx.bar_label(bars, [f"{m:,.0f} MiB" for m in mib])
    bx.set_ylabel(f"KV cache at {q['max_positions']:,} tokens (MiB, {r.info.dtype})")
    bx.set_title(
        f"{q['kv_bytes_per_token_gqa']:,} vs {q['kv_bytes_per_token_mha']:,} bytes per token: "
        f"GQA stores {q['saving_ratio']:.0f}× less",
        fontsize=10,
    )
    fig.suptitle(f"{r.info.name}: grouped-query attention", fontsize=11)
    fig.tight_layout()
    return fig


def kv_caching_comparison(r: Any) -> Any:
    """A real decode step with the cache (one query row) against recomputing every row, and their difference."""
    d = r.decode
    n = len(d.tokens)
    fig = plt.figure(figsize=(16, 7.5))
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 1.6])
    ax = fig.add_subplot(grid[:, 0])
    full = d.probs_full.mean(0).numpy().copy()
    full[np.triu_indices(n, 1)] = np.nan
    ax.imshow(full, cmap="viridis", norm=PowerNorm(0.5, 0, 1), interpolation="nearest")
    ax.add_patch(Rectangle((-0.5, n - 1.5), n, 1, fill=False, ec="red", lw=2))
    ax.set_title(
        f"Without cache: all {n} rows recomputed (mean over q_heads);\nred = the row a cached decode step computes",
        fontsize=9,
    )
    _tick_tokens(ax, d.tokens, "y")
    _tick_tokens(ax, d.tokens, "x")
    rows = [
        (
            d.probs_cached,
            f"With cache: 1 new query row ('{token_label(d.tokens[-1])}') against "
            f"{d.cached_slots_before} cached keys + its own",
            "viridis",
        ),
        (d.probs_full[:, -1], "Without cache: the same row, taken from the full recomputation", "viridis"),
        (
            d.probs_diff,
            f"|difference|: max {d.diffs['attention_row_cached_vs_full']:.1e} "
            f"(logits: {d.diffs['logits_cached_vs_full']:.1e})",
            "magma",
        ),
    ]
    for i, (x, title, cmap) in enumerate(rows):
        bx = fig.add_subplot(grid[i, 1])
        im = bx.imshow(
            x.numpy(),
            aspect="auto",
            cmap=cmap,
            interpolation="nearest",
            norm=PowerNorm(0.5, 0, 1) if cmap == "viridis" else None,
        )
        bx.set_yticks(range(x.shape[0]), [f"q{h}" for h in range(x.shape[0])], fontsize=6)
        bx.set_title(title, fontsize=9)
        plt.colorbar(im, ax=bx, fraction=0.03, pad=0.01)
        if i == 2:
            _tick_tokens(bx, d.tokens, "x")
        else:
            bx.set_xticks([])
    fig.suptitle(
        f"Layer {d.layer}: decoding the last prompt token from a cache of {d.cached_slots_before} slots "
        f"(query rows computed: {d.step_query_rows} vs {n})",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def kv_cache_speedup(r: Any) -> Any:
    """Measured time per generated token with and without the cache, beside counted total work."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8))
    styles = {True: ("with cache", "#1f77b4"), False: ("without cache", "#d62728")}
    for mode, (label, colour) in styles.items():
        tr = r.generation[mode]
        ax.plot(tr.lengths[1:], [s * 1e3 for s in tr.step_seconds[1:]], "o-", ms=3, color=colour, label=label)
        bx.plot(
            tr.lengths,
            np.array(r.work[mode]) / 1e9,
            color=colour,
            label=f"{label}: counted work, ≈ O({'n' if mode else 'n²'})",
        )
    s = r.speedups()
    ax.set_xlabel("sequence length after the step (tokens)")
    ax.set_ylabel("time per generated token (ms, median)")
    ax.set_title(
        f"Measured decode steps (prefill step left out); last step {s['last_step']:.1f}× faster with the cache",
        fontsize=9,
    )
    ax.legend()
    bx.set_xlabel("sequence length (tokens)")
    bx.set_ylabel("cumulative matmul GFLOPs (counted)")
    bx.set_title(f"Total work to reach length n; measured total time ratio {s['total']:.1f}×", fontsize=9)
    twin = bx.twinx()
    for mode, (_label, colour) in styles.items():
        tr = r.generation[mode]
        twin.plot(tr.lengths, np.cumsum(tr.step_seconds), ":", color=colour, alpha=0.8)
    twin.set_ylabel("cumulative measured seconds (dotted)")
    bx.legend(loc="upper left", fontsize=8)
    fig.suptitle(
        f"{r.info.name}: greedy decoding of {len(r.generation[True].tokens)} tokens "
        f"(identical tokens both ways: {r.generation_tokens_equal})",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def _reuse_text(p: Any) -> str:
    f = p.flops
    if p.reused == 0:
        head = "No shared prefix: 0 tokens reused, nothing saved.\nPrompt 2 was computed from scratch."
    else:
        head = (
            f"Reused {p.reused} of {len(p.tokens2)} tokens ({f['share_tokens']:.0%}) from prompt 1's cache.\n"
            f"FLOPs saved: {f['saved']['total'] / 1e9:.3f} of {f['fresh']['total'] / 1e9:.3f} GFLOP "
            f"({f['share_total']:.1%});\n  of the causal attention triangle: {f['share_attention']:.1%}"
        )
    return (
        f"{head}\nTime (median): fresh {p.seconds_fresh * 1e3:.1f} ms, reuse {p.seconds_reuse * 1e3:.1f} ms "
        f"(+ cache copy {p.seconds_cache_copy * 1e3:.2f} ms)\nLogits vs a fresh full run: max |Δ| = "
        f"{p.logits_max_abs_diff:.1e} → {'match' if p.logits_match else 'MISMATCH'}"
    )


def prefix_reuse(r: Any) -> Any:
    """Prompt 2's attention with the rows reused from prompt 1's cache shaded, and what reuse saved."""
    p = r.prefix
    n = len(p.tokens2)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, max(6.0, 0.16 * n + 2)), gridspec_kw={"width_ratios": [1.3, 1]})
    att = p.attention.numpy().copy()
    att[np.triu_indices(n, 1)] = np.nan
    ax.imshow(att, cmap="viridis", norm=PowerNorm(0.5, 0, 1), interpolation="nearest")
    if p.reused:
        ax.add_patch(Rectangle((-0.5, -0.5), n, p.reused, color="white", alpha=0.45, hatch="///", ec="orange"))
        ax.axhline(p.reused - 0.5, color="orange", lw=2)
    _tick_tokens(ax, p.tokens2, "y")
    _tick_tokens(ax, p.tokens2, "x")
    ax.set_title(
        f"Prompt 2, layer {p.layer} attention (mean over q_heads); hatched rows = {p.reused} positions "
        "reused from prompt 1's cache",
        fontsize=9,
    )
    f = p.flops
    parts = [
        ("projections + MLP", lambda x: x["projections"] + x["mlp"]),
        ("attention", lambda x: x["attention"]),
        ("lm_head", lambda x: x["lm_head"]),
    ]
    bottom = np.zeros(2)
    for label, get in parts:
        vals = np.array([get(f["fresh"]), get(f["reuse"])]) / 1e9
        bars = bx.bar(["fresh run", "reuse prefix"], vals, bottom=bottom, label=label)
        bottom += vals
    bx.bar_label(bars, [f"{v:.4g} GFLOP" for v in bottom])
    bx.set_ylim(0, float(bottom.max()) * 1.3 or 1.0)
    bx.set_ylabel("matmul GFLOPs (counted)")
    bx.legend(loc="upper right", fontsize=8)
    bx.text(0.02, -0.16, _reuse_text(p), transform=bx.transAxes, va="top", fontsize=9, family="monospace")
    fig.suptitle(f"Prefix reuse: prompts of {len(p.tokens1)} and {n} tokens share {p.shared}", fontsize=11)
    fig.tight_layout()
    return fig


CACHING_FIGURES: dict[str, Callable[[Any], Any]] = {
    "attention_projections.png": attention_projections,
    "attention_patterns.png": attention_patterns,
    "gqa_mapping.png": gqa_mapping,
    "kv_caching_comparison.png": kv_caching_comparison,
    "kv_cache_speedup.png": kv_cache_speedup,
    "prefix_reuse.png": prefix_reuse,
}
