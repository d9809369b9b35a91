"""When a greedy answer's verdict is settled, so that ``kvscope bench`` stops decoding it.

The scorer (``is_correct``) asks whether the normalised gold is a substring of the normalised answer.
Once it is, more tokens cannot undo that: the answer's text only grows at its end. And when the tokens
still allowed cannot write the gold's missing characters, more tokens cannot make it appear either. A
token writes at most ``per_token`` characters of the gold: the longest piece of the gold found in any
vocabulary entry's normalised text, padded with a space on each side for the word boundaries that
normalising makes. SmolLM2's tokenizer has one token per digit, so a 5-digit gold needs 5 tokens: an
answer of at most 6 that starts with two tokens of words is settled wrong after the second.

Only ASCII golds stop early (lower-casing is per character there, so the answer's text normalises the
same piece by piece); a character split over tokens (UTF-8 bytes) that lower-cases to an ASCII letter
(the Kelvin sign, a dotted capital I) may write one gold character more per token, which
``per_token`` adds when the gold holds such a letter.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

# ASCII word characters that a non-ASCII character lower-cases to (tests/unit/test_bench_verdict.py scans Unicode)
ASCII_FROM_WIDE = frozenset("ik")


def normalise(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed (RULER-style string match)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def is_correct(gold: str, generated: str) -> bool:
    """The normalised gold answer appears in the normalised generated answer."""
    g = normalise(gold)
    return bool(g) and g in normalise(generated)


@functools.lru_cache(maxsize=4)
def vocabulary_text(tokenizer: Any) -> str:
    """Every vocabulary entry's normalised text, each padded with a space on both sides, one a line."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
    return "\n".join(f" {normalise(t)} " for t in texts)


@functools.lru_cache(maxsize=256)
def per_token(gold: str, vocabulary: str) -> int:
    """The most characters of the normalised ``gold`` one token can write: its longest piece in
    ``vocabulary`` (``vocabulary_text``), plus one when the gold holds a letter of ``ASCII_FROM_WIDE``.
    Cached: every configuration of a sample asks for the same gold."""
    longest = next(
        (n for n in range(len(gold), 0, -1) if any(gold[i : i + n] in vocabulary for i in range(len(gold) - n + 1))),
        0,
    )
    return longest + int(bool(set(gold) & ASCII_FROM_WIDE))


def overlap(text: str, gold: str) -> int:
    """The longest start of ``gold`` that the normalised ``text`` ends with, with or without a space
    after it (normalising strips one at the end; taking the longer of the two errs on the safe side)."""
    norm = normalise(text.rstrip("\ufffd"))  # a trailing U+FFFD: bytes of a character still to come
    return max((n for n in range(len(gold), 0, -1) for t in (norm, norm + " ") if t.endswith(gold[:n])), default=0)


def settled_by(tokenizer: Any, gold: str, steps: int) -> Callable[[list[int]], bool] | None:
    """A test ``done(ids)``: is the verdict of an answer starting with ``ids`` (of at most ``steps``
    tokens) already fixed? ``None`` (decode every token) for a gold that is empty or not ASCII."""
    g = normalise(gold)
    if not g or not g.isascii():
        return None
    most = per_token(g, vocabulary_text(tokenizer))

    def done(ids: list[int]) -> bool:
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if g in normalise(text):
            return True
        return len(g) - overlap(text, g) > most * (steps - len(ids))

    return done
