"""Problem sets for ``kvscope mas``: a built-in seeded arithmetic generator and GSM8K from JSONL.

``PROBLEM_SETS`` maps a task name to a loader ``(max_samples, seed, data) -> list[Problem]``. ``arith`` works
offline: each problem is a multi-step word problem whose answer is an exact integer, checked while it is
built. ``gsm8k`` reads a local JSONL in the GSM8K format (Cobbe et al., arXiv 2110.14168): one
``{"question": ..., "answer": "... #### N"}`` object per line.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvscope.errors import UsageError
from kvscope.mas.answers import gsm8k_gold

log = logging.getLogger("kvscope")

ARITH_LEVELS = (1, 2, 3)
_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena")
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards")


@dataclass(frozen=True)
class Problem:
    """One question with its canonical gold answer; ``index`` is the 1-based problem number."""

    index: int
    question: str
    gold: str
    level: int | None = None


def arith_problem(rng: random.Random, level: int) -> tuple[str, int]:
    """A word problem of ``level + 1`` arithmetic steps and its exact integer answer (always >= 0)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(3, 40), rng.randint(2, 30)
    text = f"{name} has {a} {item} and buys {b} more."
    total = a + b
    if level >= 2:
        k = rng.randint(2, 5)  # k + 1 in 3..6 always has a divisor in 2..5 for level 3
        text += f" Then {name} buys {k} boxes, each with the same number of {item} as {name} now has."
        total *= k + 1
    if level >= 3:
        parts = rng.choice([d for d in (2, 3, 4, 5) if total % d == 0])
        gift = rng.randint(1, min(9, total // parts))
        text += (
            f" {name} splits all the {item} into {parts} equal groups, keeps one group and gives {gift} of those away."
        )
        total = total // parts - gift
    text += f" How many {item} does {name} have now?"
    return text, total


MAX_ARITH = 100_000


def load_arith(max_samples: int, seed: int, data: Path | None = None) -> list[Problem]:
    """``max_samples`` problems (default 20), cycling difficulty 1, 2, 3; the same seed gives the same set."""
    if data is not None:
        raise UsageError("data is only read by the gsm8k task; arith problems are generated", param="data")
    rng = random.Random(seed)
    n = 20 if max_samples < 0 else max_samples
    if n > MAX_ARITH:
        raise UsageError(
            f"max_samples must be at most {MAX_ARITH:,} for arith (generated problems), got {n:,}", param="max_samples"
        )
    problems = []
    for i in range(n):
        level = ARITH_LEVELS[i % len(ARITH_LEVELS)]
        question, answer = arith_problem(rng, level)
        problems.append(Problem(index=i + 1, question=question, gold=str(answer), level=level))
    return problems


def read_gsm8k_jsonl(path: Path, max_samples: int) -> list[Problem]:
    """GSM8K items from a JSONL file; a malformed line is reported with its number and skipped."""
    from kvscope.jsonl import read_jsonl

    problems: list[Problem] = []
    for number, item in read_jsonl(path, "data"):  # regular files only, size-bounded, UTF-8
        if max_samples >= 0 and len(problems) >= max_samples:
            break
        problem = _parse_gsm8k_item(item, number, path, len(problems) + 1)
        if problem is not None:
            problems.append(problem)
    if not problems:
        raise UsageError(
            f"data {path} holds no usable GSM8K items (question + answer ending in '#### N')", param="data"
        )
    return problems


def _parse_gsm8k_item(item: Any, number: int, path: Path, index: int) -> Problem | None:
    if item is None:
        log.warning("%s line %d: not valid JSON; skipped", path, number)
        return None
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("question"), str)
        or not isinstance(item.get("answer"), str)
    ):
        log.warning("%s line %d: needs string fields 'question' and 'answer'; skipped", path, number)
        return None
    gold = gsm8k_gold(item["answer"])
    if gold is None:
        log.warning("%s line %d: the answer has no '#### N' final answer; skipped", path, number)
        return None
    return Problem(index=index, question=item["question"].strip(), gold=gold)


def load_gsm8k(max_samples: int, seed: int, data: Path | None = None) -> list[Problem]:
    """GSM8K test problems from ``data``, else from the hub through ``datasets`` if both are available."""
    if data is not None:
        return read_gsm8k_jsonl(Path(data), max_samples)
    try:
        import datasets  # optional; never a dependency
    except ImportError:
        datasets = None
    from kvscope.models import hub_reachable

    if datasets is None or not hub_reachable():
        why = "the 'datasets' package is not installed" if datasets is None else "the hub is unreachable"
        raise UsageError(f"data must name a GSM8K-format JSONL file for the gsm8k task here: {why}", param="data")
    rows = datasets.load_dataset("openai/gsm8k", "main", split="test")
    n = len(rows) if max_samples < 0 else min(max_samples, len(rows))
    return [
        Problem(index=i + 1, question=rows[i]["question"], gold=gsm8k_gold(rows[i]["answer"]) or "") for i in range(n)
    ]


PROBLEM_SETS: dict[str, Callable[..., list[Problem]]] = {"arith": load_arith, "gsm8k": load_gsm8k}


def load_task(name: str, max_samples: int = -1, seed: int = 42, data: Path | None = None) -> list[Problem]:
    """Problems of task ``name`` (see ``PROBLEM_SETS``); ``max_samples`` < 0 means all (arith: 20)."""
    if name not in PROBLEM_SETS:
        raise UsageError(f"unknown task {name!r}: use one of {', '.join(PROBLEM_SETS)}")
    if max_samples == 0:
        raise UsageError("max_samples must be positive (or -1 for all)", param="max_samples")
    return PROBLEM_SETS[name](max_samples, seed, data)
