"""Importance proxies against references (``kvscope.analyze.importance``): partial Spearman given position,
and the verdict; over many prompts, one correlation per prompt, the bootstrap interval of their mean and
the verdict's class from it (``kvscope.analyze.verdict.classify``)."""

from __future__ import annotations

from typing import Any

from kvscope.analyze.registry import Analysis, Figure, lazy, register


def _compute(ctx: Any) -> Any:
    from kvscope.analyze.importance import importance

    return importance(ctx.snapshot, ctx.options.delta_loglik)


def _value(imp: Any, ref: str, proxy: str) -> float:
    """One prompt's partial rho, NaN for a prompt too short to judge (``MIN_TOKENS``)."""
    import numpy as np

    from kvscope.analyze.verdict import MIN_TOKENS

    return imp.partial[ref].get(proxy, np.nan) if imp.n_tokens >= MIN_TOKENS else np.nan


def _aggregate(results: list[Any]) -> dict[str, Any]:
    """Correlations per prompt and their intervals for every reference all prompts have, and the verdict."""
    import numpy as np

    from kvscope.analyze.importance import PROXIES, REFERENCES
    from kvscope.stats import bootstrap_ci

    refs = [ref for ref in REFERENCES if all(ref in i.partial for i in results)]
    names = {ref: (*PROXIES, "attention") if ref != "attention" else PROXIES for ref in refs}
    corr = {ref: {p: np.array([_value(i, ref, p) for i in results]) for p in names[ref]} for ref in refs}
    ivals = {ref: {p: bootstrap_ci(v) for p, v in d.items()} for ref, d in corr.items()}
    reference = refs[0] if refs else ""
    verdict, kind, disagree = _verdict(corr, ivals, reference)
    return dict(correlations=corr, intervals=ivals, reference=reference, verdict=verdict, kind=kind, disagree=disagree)


def _verdict(corr: dict, ivals: dict, reference: str) -> tuple[str, str, bool]:
    """The verdict over prompts: its class from the bootstrap interval; "over N prompts" counts only the
    prompts with a value (a prompt too short, or whose reference is monotone in position, has none)."""
    import numpy as np

    from kvscope.analyze.importance import REFERENCES, classify, disagreement, sentence
    from kvscope.analyze.many import NO_VERDICT

    if not reference:
        return NO_VERDICT, "unknown", False
    mean, lo, hi = ivals[reference]["magnitude"]
    n = int(np.isfinite(corr[reference]["magnitude"]).sum())
    kind = classify(mean, lo, hi)
    of = len(corr[reference]["magnitude"])
    basis = f"over {n} prompts (bootstrap over prompts)" + (f"; {of - n} of {of} had no value" if n < of else "")
    reason = "no prompt has a value: each is too short or its reference is monotone in position"
    text = sentence(kind, reference, REFERENCES[reference], mean, (lo, hi), basis, reason if n == 0 else "")
    disagree = False
    if reference == "leave_one_out" and "attention" in ivals:
        m2, l2, h2 = ivals["attention"]["magnitude"]
        other = classify(m2, l2, h2)
        disagree = other != kind
        if disagree:
            text += disagreement(other, m2, l2, h2)
    return text, kind, disagree


IMPORTANCE_VALIDATION = (
    "Does a proxy rank tokens like their importance, once position is accounted for? Attention received "
    "tracks position, so every correlation here is a partial Spearman correlation given position. Left: "
    "per layer, each proxy against attention received. Right: each proxy against each reference present; "
    "the leave-one-out ground truth (kvscope prune --leave-one-out on the same text) is used for the "
    "verdict whenever it exists, and the verdict says when the two references disagree. One prompt is an "
    "example; run --prompts default for an interval over prompts."
)


ANALYSIS = register(
    Analysis(
        name="importance",
        compute=_compute,
        place=80,
        needs=("attention",),
        figures=(
            Figure(
                files=("importance_validation",),
                draw=lazy("kvscope.analyze.figure_tokens:importance_validation"),
                title="Importance proxies vs references",
                explanation=IMPORTANCE_VALIDATION,
                place=170,
                draw_many=lazy("kvscope.analyze.figure_many:importance"),
            ),
        ),
        aggregate=_aggregate,
    )
)
