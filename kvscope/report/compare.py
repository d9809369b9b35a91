"""``kvscope.compare``: two snapshots side by side (two prompts, two models of the same shape, or one
model before and after a change): per-layer statistics, sinks, outlier channels and quantization error,
as one report.

>>> result = compare(snap_a, snap_b)          # doctest: +SKIP
>>> result.figures["compare_layers"], result.metrics; result.save("out/")

Per-layer comparisons need the same number of layers, kv_heads and head_dim; otherwise a one-line
``UsageError`` says what differs. Differences are B minus A.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kvscope.analyses.layer_stats import layer_stats
from kvscope.analyses.quantization import quantization_error
from kvscope.analyses.registry import torch_threads
from kvscope.analyses.sinks import detect_sinks
from kvscope.errors import UsageError
from kvscope.snapshot import KVSnapshot

TOP_CHANNELS = 5


@dataclass
class CompareResult:
    """``metrics``: both sides' per-layer statistics, sinks, outlier channels, quantization errors and
    their differences; ``figures``: name -> ``matplotlib.figure.Figure``; ``labels``: names of A and B."""

    metrics: dict[str, Any]
    figures: dict[str, Any]
    labels: tuple[str, str]

    def save(self, directory: str | Path, force: bool = False) -> Path:
        """Write the figures (PNG), ``metrics.json`` and ``report.html`` into ``directory`` as one unit
        (``kvscope.fileio.atomic_dir``: a folder holding files kvscope did not write is refused unless
        ``force``)."""
        from kvscope.fileio import atomic_dir

        with atomic_dir(directory, command="compare", force=force) as tmp:
            self._write(tmp)
        return Path(directory)

    def _write(self, out: Path) -> None:
        from kvscope.fileio import write_bytes, write_json, write_text
        from kvscope.plots.analyze import encode
        from kvscope.report.html import data_uri

        parts = []
        for name, fig in self.figures.items():
            payload = encode(fig, "png")
            write_bytes(out / f"{name}.png", payload)
            parts.append(
                f'<figure><h3>{html.escape(name)}</h3><img style="max-width:100%" '
                f'src="{data_uri(payload, "png")}"></figure>'
            )
        write_json(out / "metrics.json", self.metrics)
        write_text(out / "report.html", _page(self, "".join(parts)))

    def __repr__(self) -> str:
        return f"CompareResult(A={self.labels[0]!r}, B={self.labels[1]!r}, {len(self.figures)} figures)"

    def _repr_html_(self) -> str:
        from kvscope.plots.analyze import encode
        from kvscope.report.html import data_uri

        figs = "".join(
            f'<img style="max-width:100%" src="{data_uri(encode(f, "png"), "png")}">' for f in self.figures.values()
        )
        return _summary_table(self) + figs


def _summary_table(result: CompareResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in result.metrics["summary"].items()
    )
    return f"<table>{rows}</table>"


def _page(result: CompareResult, figures: str) -> str:
    a, b = (html.escape(x) for x in result.labels)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{_csp_meta()}<title>kvscope compare</title></head>"
        "<body style='font-family:sans-serif;max-width:1100px;margin:2em auto'>"
        f"<h1>kvscope compare</h1><p>A = {a}<br>B = {b}</p>{_summary_table(result)}{figures}</body></html>\n"
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
    shared = [set(x.tolist()) & set(y.tolist()) for x, y in zip(a["top_key_channels"], b["top_key_channels"])]
    summary = {
        "A": f"{labels[0]} ({a['model']}, {a['tokens']} tokens)",
        "B": f"{labels[1]} ({b['model']}, {b['tokens']} tokens)",
        "sinks A / B": f"{a['sinks']} / {b['sinks']}",
        "largest |std_k| change (layer)": int(np.nanargmax(np.abs(b["std_k"] - a["std_k"]))),
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
        "difference": {
            k: b[k] - a[k] for k in ("std_k", "std_v", "mean_abs_k", "mean_abs_v", "outlier_ratio_k", "outlier_ratio_v")
        },
        "shared_top_key_channels": [sorted(s) for s in shared],
    }
    from kvscope.plots.analyze.compare import compare_figures

    return CompareResult(metrics, compare_figures(a, b, labels), tuple(labels))


def _at4(side: dict, kind: str, variant: str) -> float:
    q = side["quantization"]
    return float(q["tensor"][kind][variant][q["bits"].index(4)]) if 4 in q["bits"] else float("nan")


def _csp_meta() -> str:
    from kvscope.plots.common import CSP_META

    return CSP_META
