"""Value distribution (``kvscope.analyze.distribution``): histograms, kurtosis and outlier share of every
key and value element."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, plain, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.distribution import value_distribution

    return value_distribution(ctx.snapshot)


def _metrics(result: Any) -> dict[str, Any]:
    return {
        "key": plain(result.key),
        "value": plain(result.value),
        "outlier_sigma": result.outlier_sigma,
        "layer_kurtosis_k": result.layer_kurtosis_k,
        "layer_kurtosis_v": result.layer_kurtosis_v,
    }


KV_VALUE_DISTRIBUTION = (
    "Histograms of every key and value element with a log count axis, so the tails are visible. A "
    "Gaussian has excess kurtosis 0 and almost nothing beyond 6 standard deviations; a large kurtosis or "
    "outlier share means a few extreme values would stretch a uniform quantization grid and waste most of"
    " its levels on empty range."
)


ANALYSIS = register(
    Analysis(
        name="distribution",
        compute=_compute,
        place=40,
        figures=(
            Figure(
                files=("kv_value_distribution",),
                draw=lazy("kvscope.analyze.figure_layers:kv_value_distribution"),
                title="Value distribution",
                explanation=KV_VALUE_DISTRIBUTION,
                place=30,
            ),
        ),
        to_metrics=_metrics,
    )
)
