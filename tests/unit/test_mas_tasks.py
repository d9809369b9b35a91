"""Task loaders: the seeded arithmetic generator, GSM8K JSONL parsing, clear errors."""

import json
import logging
import re

import pytest

from kvscope.errors import UsageError
from kvscope.mas.problems import load_arith, load_task, read_gsm8k_jsonl


def solve_by_reading(question: str) -> int:
    """An independent solver of the generator's wording, to check every gold answer."""
    nums = [int(x) for x in re.findall(r"\d+", question)]
    total = nums[0] + nums[1]
    if "boxes" in question:
        total *= nums[2] + 1
    if "equal groups" in question:
        total = total // nums[3] - nums[4]
    return total


def test_arith_golden_values_worked_by_hand():
    p = load_arith(3, 42)
    # 4 + 25 = 29; (17 + 6) * 3 = 69; (40 + 15) * 3 = 165, / 3 = 55, - 2 = 53
    assert [x.gold for x in p] == ["29", "69", "53"]
    assert [x.level for x in p] == [1, 2, 3]
    assert [x.index for x in p] == [1, 2, 3]


def test_arith_is_seeded_exact_and_consistent():
    a, b = load_arith(60, 7), load_arith(60, 7)
    assert a == b and a != load_arith(60, 8)
    for p in a:
        assert int(p.gold) == solve_by_reading(p.question) and int(p.gold) >= 0
        if p.level == 3:  # the split is always exact
            nums = [int(x) for x in re.findall(r"\d+", p.question)]
            assert ((nums[0] + nums[1]) * (nums[2] + 1)) % nums[3] == 0


def test_gsm8k_jsonl_skips_malformed_lines_with_their_number(tmp_path, caplog):
    f = tmp_path / "g.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps({"question": "Q1?", "answer": "x #### 1,000"}),
                "{not json",
                json.dumps({"question": "Q3?", "answer": "no marker"}),
                json.dumps({"question": 5, "answer": "#### 3"}),
                "",
                json.dumps({"question": "Q6?", "answer": "#### 18.00"}),
            ]
        )
        + "\n"
    )
    with caplog.at_level(logging.WARNING, logger="kvscope"):
        problems = read_gsm8k_jsonl(f, -1)
    assert [(p.index, p.question, p.gold) for p in problems] == [(1, "Q1?", "1000"), (2, "Q6?", "18")]
    text = caplog.text
    assert "line 2" in text and "line 3" in text and "line 4" in text and "line 6" not in text


def test_gsm8k_max_samples_and_errors(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text("".join(json.dumps({"question": f"Q{i}", "answer": f"#### {i}"}) + "\n" for i in range(5)))
    assert [p.gold for p in load_task("gsm8k", 2, data=f)] == ["0", "1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(UsageError, match="no usable GSM8K items"):
        load_task("gsm8k", -1, data=bad)
    with pytest.raises(UsageError, match="cannot read"):
        load_task("gsm8k", -1, data=tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="unknown task"):
        load_task("mmlu")


def test_gsm8k_without_data_is_a_clear_error_here(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="data must name a GSM8K-format JSONL file for the gsm8k task"):
        load_task("gsm8k", 3)
