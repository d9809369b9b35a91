"""Answer extraction and scoring for math word problems.

The reference implementation of LatentMAS (Zou et al., arXiv 2511.20639) compared strings, so
``\\boxed{1,000}`` read as "1", ``18.00`` differed from ``18`` and ``\\boxed{\\text{A}}`` failed on
its nested braces. Here a prediction is the content of the LAST ``\\boxed{...}`` (braces balanced),
or, without a box, the last number in the text; numbers are compared as exact decimals. Fractions and
mixed numbers become decimals, a Unicode minus is a minus, and spaced thousands are joined.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_FRAC = re.compile(r"^(-?)\s*(?:(\d+)\s*)?\\[dt]?frac\s*\{(-?[\d.,]+)\}\s*\{(-?[\d.,]+)\}")
_SLASH = re.compile(r"(-?)\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")
_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-"})
_SPACED = re.compile(r"(?<![\d.])\d{1,3}(?:(?:\s|\\[,;! ]|~|\{,\})\d{3})+(?![\d])")
_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|boxed)\{([^{}]*)\}")


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, nested braces included."""
    found = []
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found.append(text[start:i])
                break
    return found


def _to_number(token: str) -> str | None:
    """``"1,000"`` -> ``"1000"``, ``"18.00"`` -> ``"18"``, ``"0.50"`` -> ``"0.5"``; None if not a number."""
    cleaned = token.replace(",", "").strip()
    if not cleaned or not _NUMBER.fullmatch(cleaned):
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _thousands_ok(token: str) -> bool:
    """A comma inside a number is a thousands separator only in groups of three (``1,000`` not ``1,2``)."""
    head = token.lstrip("-").split(".")[0]
    return "," not in head or bool(re.fullmatch(r"\d{1,3}(,\d{3})+", head))


def _fraction(s: str) -> str | None:
    """``2\\frac{1}{2}`` -> ``"2.5"``, ``-\\frac{3}{4}`` -> ``"-0.75"``, ``3/4`` -> ``"0.75"``; None if ``s``
    (the whole answer, wrappers peeled) is not a fraction or mixed number."""
    frac = _FRAC.match(s)
    if frac and not s[frac.end() :].strip(" .$"):
        sign, whole, num, den = frac.groups()
    else:
        slash = _SLASH.fullmatch(s.strip(" .$"))
        if not slash:
            return None
        (sign, num, den), whole = slash.groups(), None
    num, den = _to_number(num), _to_number(den)
    if num is None or den in (None, "0"):
        return None
    value = Decimal(num) / Decimal(den) + (Decimal(whole) if whole else 0)
    return _to_number(str(-value if sign else value))


def _join_spaced_thousands(s: str) -> str:
    """``1 000`` / ``1\\,000`` / ``12{,}500`` -> ``1000`` / ``1000`` / ``12500`` (groups of three only)."""
    return _SPACED.sub(lambda m: re.sub(r"\D", "", m.group(0)), s)


def normalize_answer(text: str) -> str:
    """Canonical form of one answer: a number without separators or trailing zeros, else lowercase text.

    Handles ``\\frac``, mixed numbers (``2\\frac{1}{2}``), ``a/b``, the Unicode minus and thousands
    separated by spaces or LaTeX thin spaces.
    """
    s = _join_spaced_thousands(text.translate(_MINUS).strip())
    prev = None
    while prev != s:  # peel \text{...}, \mathrm{...} and friends, innermost first
        prev, s = s, _WRAPPERS.sub(r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").replace("\\!", "").strip()
    fraction = _fraction(s)
    if fraction is not None:
        return fraction
    for token in _NUMBER.findall(s):
        if _thousands_ok(token):
            number = _to_number(token)
            if number is not None:
                return number
    return s.strip().strip(".").lower()


def extract_answer(text: str) -> str | None:
    """The predicted answer in ``text``: the last boxed answer, else the last number; None if neither."""
    boxes = [b for b in boxed_contents(text) if b.strip()]
    if boxes:
        return normalize_answer(boxes[-1])
    numbers = [t for t in _NUMBER.findall(text.translate(_MINUS)) if _thousands_ok(t)]
    if not numbers:
        return None
    return _to_number(numbers[-1])


def gsm8k_gold(answer: str) -> str | None:
    """The gold answer of a GSM8K solution: the number after ``####`` (``"#### 1,000"`` -> ``"1000"``)."""
    if "####" not in answer:
        return None
    tail = answer.rsplit("####", 1)[1].strip()
    return normalize_answer(tail) if tail else None


def is_correct(pred: str | None, gold: str) -> bool:
    """Exact match of canonical forms (numbers as decimals, so ``18.00 == 18``)."""
    if pred is None or not gold:
        return False
    return normalize_answer(pred) == normalize_answer(gold)
