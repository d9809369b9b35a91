"""Answer extraction and scoring: every trap the LatentMAS reference lists, and a few more."""

import pytest

from kvscope.mas.answers import boxed_contents, extract_answer, gsm8k_gold, is_correct, normalize_answer

TRAPS = [
    (r"so the total is \boxed{1,000}.", "1000"),  # the original read "1"
    (r"\boxed{18.00}", "18"),  # the original compared "18.00" != "18"
    (r"\boxed{\text{A}}", "a"),  # nested braces defeated the original's [^}]* regex
    (r"\boxed{\frac{3}{4}}", "0.75"),
    (r"\boxed{\dfrac{10}{5}}", "2"),
    (r"first \boxed{3}, on reflection \boxed{5}", "5"),  # the last box wins
    (r"\boxed{\$1,234.50}", "1234.5"),
    (r"\boxed{72 \text{ dollars}}", "72"),
    (r"\boxed{-7}", "-7"),
    (r"\boxed{50\%}", "50"),
    ("She pays 12 dollars, then 30 more, so 42 in total.", "42"),  # no box: last number
    ("The answer is 1,250,000.", "1250000"),
    ("pairs like 1,2 and then 9", "9"),  # "1,2" is not a thousands-separated number
    (r"\boxed{} and then 8", "8"),  # an empty box is ignored
    ("no digits here", None),
    (r"\boxed{2\frac{1}{2}}", "2.5"),  # a mixed number (read as 0.5 before)
    (r"\boxed{2 \dfrac{1}{4}}", "2.25"),
    (r"\boxed{-\frac{1}{2}}", "-0.5"),
    (r"\boxed{3/4}", "0.75"),  # read as 3 before
    (r"\boxed{\text{3/4}}", "0.75"),
    ("\\boxed{\u22125}", "-5"),  # Unicode minus (read as 5 before)
    ("the change is \u22123 degrees", "-3"),
    (r"\boxed{1 000}", "1000"),  # spaced thousands (read as 1 before)
    (r"\boxed{12\,500}", "12500"),
    (r"\boxed{1 234 567}", "1234567"),
    (r"\boxed{12 5}", "12"),  # not a group of three: no join
]


@pytest.mark.parametrize("text,expected", TRAPS)
def test_extract_answer_traps(text, expected):
    assert extract_answer(text) == expected


def test_boxed_contents_balances_nested_braces():
    assert boxed_contents(r"a \boxed{\frac{1}{2}} b \boxed{x^{2}}") == [r"\frac{1}{2}", "x^{2}"]
    assert boxed_contents(r"\boxed{unclosed") == []


@pytest.mark.parametrize(
    "pred,gold,ok",
    [
        ("18.00", "18", True),
        ("1,000", "1000", True),
        ("0.50", ".5", True),
        ("17", "18", False),
        (None, "18", False),
        ("A", "a", True),
        ("18", "", False),
    ],
)
def test_is_correct(pred, gold, ok):
    assert is_correct(pred, gold) is ok


def test_gsm8k_gold():
    assert gsm8k_gold("She has 3 + 4 = <<3+4=7>>7 left.\n#### 1,007") == "1007"
    assert gsm8k_gold("no final marker 5") is None
    assert normalize_answer(" 3.0 ") == "3"
