"""``kvscope.compare``: two snapshots side by side (two prompts, two models of the same shape, or one
model before and after a change): per-layer statistics, sinks, outlier channels and quantization error,
as one report.

>>> result = compare(snap_a, snap_b)          # doctest: +SKIP
>>> result.figures["compare_layers"], result.metrics; result.save("out/")

Per-layer comparisons need the same number of layers, kv_heads and head_dim; otherwise a one-line
``UsageError`` says what differs. Differences are B minus A.

Length matters: the same text cut at 85 and at 185 tokens differs about as much as two different texts
do. So ``difference`` is always taken over the first ``min(n_A, n_B)`` positions of each side (the
length-matched statistics, ``matched``), the summary says when the lengths differ, and ``noise`` gives a
scale to read a difference against: per layer, the larger of A's and B's spread between the two halves
of their matched positions (one prompt against itself).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kvscope.analyze.layer_stats import layer_stats
from kvscope.analyze.quantization import quantization_error
from kvscope.analyze.registry import torch_threads
from kvscope.analyze.sinks import detect_sinks
from kvscope.errors import UsageError
from kvscope.kit.pages import CSP_META
from kvscope.kit.results import FigureDict, ResultMixin
from kvscope.snapshot import KVSnapshot

TOP_CHANNELS = 5
MATCHED = ("std_k", "std_v", "mean_abs_k", "mean_abs_v", "outlier_ratio_k", "outlier_ratio_v")


@dataclass(repr=False)
class CompareResult(ResultMixin):
    """``metrics``: both sides' per-layer statistics, sinks, outlier channels, quantization errors and
    their differences; ``figures``: name -> ``matplotlib.figure.Figure``; ``labels``: names of A and B."""

    metrics: dict[str, Any]
    figures: dict[str, Any] = field()  # a FigureDict: also callable, as the contract's figures()
    labels: tuple[str, str]

    command = "compare"

    def __post_init__(self) -> None:
        self.figures = FigureDict(self.figures)

    def to_dict(self) -> dict[str, Any]:
        return self.metrics

    def write(self, out: Path) -> list[str]:
        """The figures (PNG), ``metrics.json`` and ``report.html``."""
        from kvscope.analyze.analyze_html import data_uri
        from kvscope.analyze.figure_registry import encode
        from kvscope.fileio import write_bytes, write_json, write_text

        parts, names = [], []
        for name, fig in self.figures.items():
            payload = encode(fig, "png")
            names.append(write_bytes(out / f"{name}.png", payload).name)
            parts.append(
                f'<figure><h3>{html.escape(name)}</h3><img style="max-width:100%" '
                f'src="{data_uri(payload, "png")}"></figure>'
            )
        names.append(write_json(out / "metrics.json", self.metrics).name)
        names.append(write_text(out / "report.html", _page(self, "".join(parts))).name)
        return names

    def summary(self) -> list[tuple[str, Any]]:
        return [("A", self.labels[0]), ("B", self.labels[1]), ("figures", len(self.figures))]

    def details(self) -> list[tuple[str, Any]]:
        return list(self.metrics["summary"].items())


def _page(result: CompareResult, figures: str) -> str:
    from kvscope.kit.pages import summary_html

    a, b = (html.escape(x) for x in result.labels)
    table = summary_html("summary", result.details())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{CSP_META}<title>kvscope compare</title></head>"
        "<body style='font-family:sans-serif;max-width:1100px;margin:2em auto'>"
        f"<h1>kvscope compare</h1><p>A = {a}<br>B = {b}</p>{table}{figures}</body></html>\n"
    )


def check_comparable(a: KVSnapshot, b: KVSnapshot) -> None:
    """A one-line ``UsageError`` naming every shape that differs."""
    facts = (
        ("layers", a.n_layers, b.n_layers),
        ("kv_heads", a.keys[0].shape[0], b.keys[0].shape[0]),
        ("head_dim", a.keys[0].shape[-1], b.keys[0].shape[-1]),
    )
    diff = [f"{n} {x} vs {y}" for n, x, y in facts if x != y]
    if diff:
        raise UsageError(
            f"cannot compare per layer: the snapshots differ in {', '.join(diff)} "
            f"(models {a.info.name} vs {b.info.name})"
        )


def _side(snap: KVSnapshot) -> dict[str, Any]:
    st = layer_stats(snap)
    sinks = detect_sinks(snap)
    q = quantization_error(snap, n_layers=3)
    top = np.argsort(-st.channel_mean_abs_k, axis=1)[:, :TOP_CHANNELS]
    return {
        "tokens": snap.n_positions,
        "model": snap.info.name,
        "std_k": st.std_k,
        "std_v": st.std_v,
        "mean_abs_k": st.mean_abs_k,
        "mean_abs_v": st.mean_abs_v,
        "outlier_ratio_k": st.outlier_ratio_k,
        "outlier_ratio_v": st.outlier_ratio_v,
        "top_key_channels": top,
        "channel_mean_abs_k": st.channel_mean_abs_k,
        "sinks": sinks.positions.tolist() if sinks.detected else None,
        "first_share": sinks.layer_share[:, 0] if sinks.detected else None,
        "quantization": {
            "bits": list(q.bits),
            "effective_bits": q.effective_bits,
            "tensor": q.tensor,
            "output": q.output,
            "variants": list(q.variants),
        },
    }


def first_positions(snap: KVSnapshot, start: int, end: int) -> KVSnapshot:
    """The keys and values of positions ``[start, end)`` only (no attention or queries: what the other
    positions received or asked cannot be split off)."""
    import dataclasses

    return dataclasses.replace(
        snap,
        keys=[k[:, start:end] for k in snap.keys],
        values=[v[:, start:end] for v in snap.values],
        token_ids=snap.token_ids[start:end],
        tokens=list(snap.tokens[start:end]),
        special=snap.special[start:end],
        positions=snap.positions[start:end],
        queries=None,
        attention_received=None,
        attention_counts=None,
    )


def _stats(snap: KVSnapshot) -> dict[str, np.ndarray]:
    st = layer_stats(snap)
    return {k: getattr(st, k) for k in MATCHED}


def matched_and_noise(snap_a: KVSnapshot, snap_b: KVSnapshot) -> tuple[int, dict, dict, dict]:
    """``(m, stats_a, stats_b, noise)`` over the first ``m = min(n_A, n_B)`` positions: each statistic of
    ``MATCHED`` ``[layer]`` for A and B, and per layer the larger of the two sides' half-vs-half spread."""
    m = min(snap_a.n_positions, snap_b.n_positions)
    sides = [_stats(first_positions(s, 0, m)) for s in (snap_a, snap_b)]
    noise = {}
    for s in (snap_a, snap_b):
        h1, h2 = _stats(first_positions(s, 0, m // 2)), _stats(first_positions(s, m // 2, m))
        for k in MATCHED:
            spread = np.abs(h1[k] - h2[k])
            noise[k] = np.fmax(noise.get(k, spread), spread)
    return m, sides[0], sides[1], noise


def _length_note(a: dict, b: dict, m: int) -> str:
    if a["tokens"] == b["tokens"]:
        return f"both {m} tokens"
    return (
        f"differ ({a['tokens']} vs {b['tokens']} tokens): differences are over the first {m} positions of "
        "each; sinks and quantization are over each side's full length"
    )


def compare(snap_a: KVSnapshot, snap_b: KVSnapshot, labels: tuple[str, str] = ("A", "B")) -> CompareResult:
    """Compare two snapshots (see the module doc); in memory, nothing written."""
    from kvscope.errors import expect
    from kvscope.snapshot import KVSnapshot

    expect(snap_a, KVSnapshot, "snap_a", "a KVSnapshot (ks.KVSnapshot.load(path))")
    expect(snap_b, KVSnapshot, "snap_b", "a KVSnapshot (ks.KVSnapshot.load(path))")
    snap_a.check_finite(f"snapshot {labels[0]}")
    snap_b.check_finite(f"snapshot {labels[1]}")
    check_comparable(snap_a, snap_b)
    with torch_threads(1):
        a, b = _side(snap_a), _side(snap_b)
        m, ma, mb, noise = matched_and_noise(snap_a, snap_b)
    diff = {k: mb[k] - ma[k] for k in MATCHED}
    shared = [set(x.tolist()) & set(y.tolist()) for x, y in zip(a["top_key_channels"], b["top_key_channels"])]
    summary = {
        "A": f"{labels[0]} ({a['model']}, {a['tokens']} tokens)",
        "B": f"{labels[1]} ({b['model']}, {b['tokens']} tokens)",
        "lengths": _length_note(a, b, m),
        "sinks A / B": f"{a['sinks']} / {b['sinks']}",
        "largest |std_k| change (layer)": int(np.nanargmax(np.abs(diff["std_k"]))),
        "median |std_k| change / half-vs-half spread": (
            f"{np.nanmedian(np.abs(diff['std_k'])):.3g} / {np.nanmedian(noise['std_k']):.3g}"
        ),
        f"top-{TOP_CHANNELS} outlier key channels shared (median over layers)": float(
            np.median([len(s) for s in shared])
        ),
        "4-bit channel/g32 key error A / B": (
            f"{_at4(a, 'key', 'channel/g32'):.4g} / {_at4(b, 'key', 'channel/g32'):.4g}"
        ),
    }
    metrics = {
        "labels": list(labels),
        "summary": summary,
        "A": a,
        "B": b,
        "matched_positions": m,
        "matched": {"A": ma, "B": mb},
        "difference": diff,
        "noise": noise,
        "noise_definition": "per layer, max over A and B of |statistic(first half) - statistic(second half)| "
        "of the matched positions",
        "shared_top_key_channels": [sorted(s) for s in shared],
    }
    from kvscope.analyze.figure_compare import compare_figures

    figures = compare_figures({**a, **ma}, {**b, **mb}, labels, noise=noise, note=summary["lengths"])
    return CompareResult(metrics, figures, tuple(labels))


def _at4(side: dict, kind: str, variant: str) -> float:
    q = side["quantization"]
    return float(q["tensor"][kind][variant][q["bits"].index(4)]) if 4 in q["bits"] else float("nan")
