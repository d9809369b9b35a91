"""The ``kvscope mas`` table: binary units named as such, totals labelled, "KV handed" defined and what is
held at each hand-off reported (issue 23 item 15)."""

from __future__ import annotations

from kvscope.cli.mas import _human_bytes, print_results


def _summary(handed: float, held: dict[str, float]) -> dict:
    return {
        "accuracy": 0.5,
        "correct": 1,
        "problems": 2,
        "generated_tokens_per_problem": 10.0,
        "generated_tokens_per_agent": {"planner": 0, "critic": 0, "refiner": 0, "judger": 20},
        "seconds_per_problem_median": 1.0,
        "latent_seconds_total": 0.5,
        "latent_share_of_time": 0.25,
        "kv_bytes_handed_per_problem": handed,
        "kv_bytes_in_per_agent_per_problem": held,
        "knn_bytes_before": 0,
        "knn_bytes_after": 0,
    }


def test_binary_units_are_named_mib():
    assert _human_bytes(3 * 2**20) == "3.0 MiB" and _human_bytes(1536) == "1.5 KiB" and _human_bytes(5) == "5 B"


def test_table_labels_totals_defines_kv_handed_and_reports_each_hand_off(capsys):
    held = {"planner": 0.0, "critic": 1 * 2**20, "refiner": 2 * 2**20, "judger": 3 * 2**20}
    results = {
        "model": "m",
        "task": "arith",
        "methods": {"latent_mas": _summary(6 * 2**20, held)},
        "files": ["out/results.json"],
    }
    print_results(results)
    out = capsys.readouterr().out
    assert "6.0 MiB" in out and " MB" not in out
    assert "tokens by agent" in out and "(total)" in out  # the header may wrap
    assert "KV handed: the KV cache each agent receives" in out and "summed over a problem's hand-offs" in out
    assert "KV held at each hand-off, mean per problem: critic 1.0 MiB, refiner 2.0 MiB, judger 3.0 MiB" in out
