"""Quantization error at equal cost (``kvscope.analyze.quantization``): tensor, attention-output and
next-token KL error per scheme and bit width; over many prompts, each as a mean with a bootstrap band."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.quantization import quantization_error

    return quantization_error(ctx.snapshot, model=ctx.model)


def _aggregate(results: list[Any]) -> dict[str, Any]:
    import numpy as np

    from kvscope.analyze.many import bands

    q0 = results[0]
    out: dict[str, Any] = {"bits": list(q0.bits), "variants": list(q0.variants), "notes": dict(q0.notes)}
    for kind in ("key", "value"):
        out[kind] = {}
        for var in q0.variants:
            entry = {"effective_bits": np.mean([q.effective_bits[kind][var] for q in results], axis=0)}
            for err in ("tensor", "output", "kl"):
                entry[err] = bands([getattr(q, err)[kind][var] for q in results])
            out[kind][var] = entry
    return {"quantization": out}


KV_QUANTIZATION_ERROR = (
    "Error of quantizing the cache against what it costs: the x axis is effective bits per element, "
    "counting the packed codes plus every float16 scale and zero point, so schemes with smaller groups "
    "pay for their extra statistics. tensor = one scale per layer tensor; token/gN = per N channels of a "
    "position (KIVI's values); channel/gN = per channel over N positions (KIVI's keys). token/g32 and "
    "channel/g32 cost the same, so their gap is a fair comparison. Rows: relative tensor error; relative "
    "attention-output error when only keys or only values are quantized; and the end-to-end next-token KL"
    " divergence against the unquantized cache, measured with the model (skipped, with the reason, when "
    "it is not loaded or a layer keeps a sliding window)."
)


ANALYSIS = register(
    Analysis(
        name="quantization",
        compute=_compute,
        place=100,
        figures=(
            Figure(
                files=("kv_quantization_error",),
                draw=lazy("kvscope.analyze.figure_layers:kv_quantization_error"),
                title="Quantization error",
                explanation=KV_QUANTIZATION_ERROR,
                place=60,
                draw_many=lazy("kvscope.analyze.figure_many:quantization"),
            ),
        ),
        aggregate=_aggregate,
    )
)
