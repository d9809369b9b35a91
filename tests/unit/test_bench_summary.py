"""The table's aggregation: Wilson cells, ties against the best compressed configuration, guardrails."""

from __future__ import annotations

import pytest

from kvscope.bench.sample_runner import Outcome, budget_warnings
from kvscope.bench.summary import POOLED, guardrails, summarize_outcomes
from kvscope.prune.engine import Config


def outcomes(config: str, task: str, correct: int, n: int) -> list[Outcome]:
    return [Outcome(task, i, config, correct=i < correct, kv_bytes=100) for i in range(n)]


CONFIGS = [
    Config("baseline", "baseline"),
    Config("a@0.5", "a", 0.5),
    Config("b@0.5", "b", 0.5),
    Config("c@0.5", "c", 0.5),
]


def test_ties_are_marked_against_the_best_compressed_configuration():
    outs = (
        outcomes("baseline", "passkey", 20, 20)
        + outcomes("a@0.5", "passkey", 18, 20)
        + outcomes("b@0.5", "passkey", 15, 20)
        + outcomes("c@0.5", "passkey", 2, 20)
    )
    rows = summarize_outcomes(outs, CONFIGS)
    cells = {r.config: r.accuracy["passkey"] for r in rows}
    assert cells["baseline"].mark == ""  # the reference, not a contender
    assert cells["a@0.5"].mark == "best" and cells["a@0.5"].value == pytest.approx(0.9)
    assert cells["b@0.5"].mark == "tied"  # 3 discordant pairs to 0: McNemar p = 0.25
    assert cells["c@0.5"].mark == ""  # 10 % [3, 30] does not
    assert cells["c@0.5"].text() == "10 [3, 30]"


def test_pooled_column_and_ppl_ratio():
    outs = outcomes("baseline", "passkey", 4, 4) + outcomes("baseline", "kv_retrieval", 2, 4)
    outs += [Outcome("text", i, "baseline", ppl=5.0, ppl_ratio=1.0, scored_tokens=40) for i in range(2)]
    row = summarize_outcomes(outs, CONFIGS[:1])[0]
    assert row.accuracy[POOLED].correct == 6 and row.accuracy[POOLED].n == 8
    assert row.ppl_ratio.value == 1.0 and row.ppl_ratio.n == 2
    warns = guardrails([row], outs, ["x@0.9: small budget", "x@0.9: small budget"])
    assert not any("kv_retrieval" in w for w in warns)  # 50 % is not under 50 %
    assert any("fewer than 50 tokens" in w for w in warns)
    assert "x@0.9: small budget (2 samples)" in warns


def test_baseline_under_half_warns():
    outs = outcomes("baseline", "passkey", 4, 10)
    warns = guardrails(summarize_outcomes(outs, CONFIGS[:1]), outs, [])
    assert len(warns) == 1 and "passkey is 40 %" in warns[0]


def test_budget_below_the_window_warns():
    from kvscope.prune.strategies import make_strategy

    snap = make_strategy("snapkv")  # observation window 32: at 100 tokens, 0.9 keeps 10
    cfgs = [Config("snapkv@0.5", "snapkv", 0.5, strategy=snap), Config("snapkv@0.9", "snapkv", 0.9, strategy=snap)]
    warns = budget_warnings(cfgs, 100)
    assert len(warns) == 1 and warns[0].startswith("snapkv@0.9: ") and "observation window 32" in warns[0]


def test_ties_come_from_a_paired_test_not_from_overlapping_intervals():
    # b is right on 12 of the 20 samples a gets right (18): Wilson 60 % [39, 78] overlaps 90 % [70, 97],
    # but on the same samples a wins 6 discordant pairs to 0: exact McNemar p = 2 / 2**6 = 0.03125
    outs = outcomes("a@0.5", "passkey", 18, 20) + outcomes("b@0.5", "passkey", 12, 20)
    outs += outcomes("c@0.5", "passkey", 15, 20)  # 3 discordant pairs to 0: p = 2 / 2**3 = 0.25
    cells = {r.config: r.accuracy["passkey"] for r in summarize_outcomes(outs, CONFIGS[1:])}
    assert cells["a@0.5"].mark == "best" and cells["a@0.5"].p_value is None
    assert cells["b@0.5"].p_value == pytest.approx(0.03125) and cells["b@0.5"].mark == ""
    assert cells["c@0.5"].p_value == pytest.approx(0.25) and cells["c@0.5"].mark == "tied"


def test_perplexity_ties_are_paired_too():
    # b is worse than a by 0.01 on every text: their bootstrap intervals overlap, the paired
    # difference's interval is [0.01, 0.01] and excludes 0
    ratios = [1.0, 1.3, 1.6, 1.9, 2.2, 2.5]
    outs = [Outcome("text", i, "a@0.5", ppl=r, ppl_ratio=r) for i, r in enumerate(ratios)]
    outs += [Outcome("text", i, "b@0.5", ppl=r, ppl_ratio=r + 0.01) for i, r in enumerate(ratios)]
    outs += [Outcome("text", i, "c@0.5", ppl=r, ppl_ratio=r + (0.05 if i % 2 else -0.04)) for i, r in enumerate(ratios)]
    rows = {r.config: r.ppl_ratio for r in summarize_outcomes(outs, CONFIGS[1:])}
    assert rows["a@0.5"].mark == "best" and rows["b@0.5"].low < rows["a@0.5"].high  # the intervals overlap
    assert rows["b@0.5"].mark == "" and rows["c@0.5"].mark == "tied"


def test_mcnemar_exact_by_hand_and_against_scipy():
    from scipy.stats import binomtest

    from kvscope.stats import mcnemar_exact

    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 4) == pytest.approx(2 * (1 + 5) / 32)
    for b, c in ((7, 2), (30, 18), (0, 11), (12, 12)):
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
