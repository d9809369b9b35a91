"""The importance verdict reads its class from the interval, never from the point estimate alone; it
cannot be judged on a handful of tokens or on a reference that is a monotone function of position; its
wording matches its reference; and the validation figure draws no tautological bar and no NaN as 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from kvscope.analyze.importance import Importance, importance
from kvscope.analyze.many import aggregate
from kvscope.analyze.verdict import HOLDS, MIN_TOKENS, classify, sentence, token_interval
from tests.helpers import random_snapshot


@pytest.mark.parametrize(
    "rho, low, high, kind",
    [
        (0.31, 0.06, 0.56, "not established"),  # the issue's case: the point estimate passes 0.3, the interval does not
        (0.3013, 0.16, 0.43, "not established"),
        (-0.31, -0.56, -0.06, "not established"),
        (0.45, 0.31, 0.60, "holds"),
        (-0.51, -0.56, -0.46, "inverted"),
        (0.05, -0.20, 0.29, "does not hold"),
        (0.10, -0.10, 0.45, "inconclusive"),
        (float("nan"), float("nan"), float("nan"), "unknown"),
    ],
)
def test_the_class_comes_from_the_interval(rho, low, high, kind):
    assert classify(rho, low, high) == kind


def test_a_sentence_that_is_not_settled_prints_its_interval():
    text = sentence("not established", "attention", "attention received", 0.3013, (0.16, 0.43), "over 9 prompts")
    assert "not established" in text and "[+0.16, +0.43]" in text and "holds" not in text


def test_one_prompt_interval_is_fisher_z_with_the_spearman_standard_error():
    # by hand: z = atanh(0.5) = 0.549306; se = sqrt(1.06 / (100 - 4)) = 0.105079; tanh(z -+ 1.959964 se)
    low, high = token_interval(0.5, 100)
    assert low == pytest.approx(np.tanh(0.549306 - 1.959964 * 0.105079), abs=1e-5)
    assert high == pytest.approx(np.tanh(0.549306 + 1.959964 * 0.105079), abs=1e-5)
    assert low == pytest.approx(0.3305, abs=1e-3) and high == pytest.approx(0.6384, abs=1e-3)


def test_four_tokens_cannot_be_judged():
    imp = importance(random_snapshot(layers=2, n=4, d=8, seed=3))
    assert imp.kind == "unknown" and imp.holds is None
    assert "cannot be judged" in imp.verdict and f"at least {MIN_TOKENS}" in imp.verdict
    assert "inverted" not in imp.verdict and "-1.00" not in imp.verdict and "nan" not in imp.verdict.lower()


def _monotone_reference(n: int = 40):
    """A snapshot whose attention received per seeing query rises strictly with position."""
    snap = random_snapshot(layers=2, n=n, d=8, seed=1)
    ramp = torch.linspace(0.01, 1.0, n)
    received = snap.attention_counts.unsqueeze(1) * ramp * torch.ones(1, snap.keys[0].shape[0], 1)
    return dataclasses.replace(snap, attention_received=received)


def test_a_reference_monotone_in_position_is_named_and_never_prints_nan():
    imp = importance(_monotone_reference())
    assert imp.kind == "unknown"
    assert "monotone function of position" in imp.verdict and "too few tokens" not in imp.verdict
    assert "nan" not in imp.verdict.lower()


def _imp(rho: float, n_tokens: int = 50) -> Importance:
    partial = {"attention": {"magnitude": rho, "key_norm": -rho, "value_norm": rho}}
    return Importance(partial, partial, {}, "attention", rho, "", None, n_tokens=n_tokens)


def test_a_prompt_too_short_to_judge_has_no_value_over_prompts():
    runs = [{"importance": _imp(r)} for r in (-0.5, -0.55, -0.6, -0.45)] + [{"importance": _imp(1.0, 4)}]
    many = aggregate(runs, [50] * 4 + [4])
    assert np.isnan(many.correlations["attention"]["magnitude"][-1])
    assert "over 4 prompts" in many.verdict and "1 of 5 had no value" in many.verdict
    assert many.intervals["attention"]["magnitude"][0] == pytest.approx(-0.525)


def test_over_n_prompts_counts_only_prompts_with_a_value():
    runs = [{"importance": _imp(r)} for r in (-0.5, -0.55, -0.6, float("nan"), -0.45)]
    many = aggregate(runs, [50] * 5)
    assert "over 4 prompts" in many.verdict and "1 of 5 had no value" in many.verdict
    assert "over 5 prompts" not in many.verdict


def test_inverted_against_attention_says_more_attention_not_matter_more():
    runs = [{"importance": _imp(r)} for r in (-0.5, -0.55, -0.6, -0.52, -0.48)]
    many = aggregate(runs, [50] * 5)
    assert many.kind == "inverted"
    assert "get more attention" in many.verdict and "matter more" not in many.verdict


def test_the_issue_interval_does_not_print_holds_over_prompts():
    rhos = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.15])  # mean 0.306
    many = aggregate([{"importance": _imp(r)} for r in rhos], [50] * rhos.size)
    mean, low, high = many.intervals["attention"]["magnitude"]
    assert mean > HOLDS and low < HOLDS  # the point estimate passes the threshold, the interval does not
    assert many.kind == "not established" and "holds" not in many.verdict
    assert f"[{low:+.2f}, {high:+.2f}]" in many.verdict


def test_validation_figure_has_no_tautological_bar_and_draws_nan_as_na():
    from kvscope.analyze.figure_base import FigureData
    from kvscope.analyze.figure_tokens import importance_validation

    imp = importance(random_snapshot(layers=2, n=40, d=8, seed=2))
    assert "attention" not in imp.partial["attention"]  # attention against itself is 1 by construction
    part = {"attention": {**imp.partial["attention"], "value_norm": float("nan")}}
    imp = dataclasses.replace(imp, partial=part)
    fig = importance_validation(FigureData({"importance": imp}, {}))
    bars = fig.axes[1].patches
    widths = sorted(round(b.get_width(), 6) for b in bars)
    assert len(bars) == 2 and 1.0 not in widths and 0.0 not in widths
    assert "n/a" in [t.get_text() for t in fig.axes[1].texts]
