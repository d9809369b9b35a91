"""Attention sinks (``kvscope.analyze.sinks``): no figure of their own (the token and head figures mark
them); over many prompts, in how many prompts position 0 is a sink and its attention share per layer."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.sinks import detect_sinks

    return detect_sinks(ctx.snapshot, ctx.options.sink_share)


def _aggregate(results: list[Any]) -> dict[str, Any]:
    """Over the prompts where sinks were detected: the share of position 0 per layer (a band) and counts."""
    import numpy as np

    from kvscope.analyze.many import bands
    from kvscope.stats import bootstrap_ci

    found = [s for s in results if s.detected]
    if not found:
        return {}
    first = np.array([0 in s.positions.tolist() for s in found], dtype=float)
    count = np.array([s.positions.size for s in found], dtype=float)
    share = np.array([float(s.layer_share[:, 0].mean()) for s in found])
    sinks = {
        "prompts": len(found),
        "first_token_is_sink": int(first.sum()),
        "sinks_per_prompt": bootstrap_ci(count),
        "first_token_share": bootstrap_ci(share),
    }
    return {"layer_bands": {"first_share": bands([s.layer_share[:, 0] for s in found])}, "sinks": sinks}


ANALYSIS = register(
    Analysis(
        name="sinks",
        compute=_compute,
        place=10,
        aggregate=_aggregate,
    )
)
