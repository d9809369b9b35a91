"""Token typing: one category per token from its decoded text and its neighbours.

Categories, tested in this order (the first that applies wins):

1. ``special``: a tokenizer special token (BOS, chat markers ...).
2. ``whitespace``: only spaces, tabs or newlines.
3. ``number``: contains a digit.
4. ``punctuation``: only punctuation/symbol characters (after stripping spaces).
5. ``subword``: continues a word: no leading space, and the previous token ends in a letter or digit.
6. ``stopword``: in scikit-learn's English stop-word list (318 words), case-insensitive.
7. ``proper_noun``: starts with a capital letter and is not sentence-initial (the previous
   non-space token is not ``. ! ?``, a newline or the start of the text).
8. ``other``.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

TOKEN_TYPES = ("number", "punctuation", "stopword", "proper_noun", "special", "whitespace", "subword",
               "other")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """scikit-learn's English stop words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def _is_punct(text: str) -> bool:
    return bool(text) and all(unicodedata.category(c)[0] in "PS" for c in text)


def _ends_sentence(token: str, before: bool) -> bool:
    """Whether a sentence starts after ``token``; ``before`` is the state before it."""
    if "\n" in token:
        return True
    if not token.strip():
        return before
    return token.rstrip()[-1] in ".!?:\"'"


def token_type(text: str, previous: str = "", sentence_start: bool = True, special: bool = False) -> str:
    """The category of ``text``; ``previous`` is the token before it (see the module doc)."""
    word = text.strip()
    if special:
        return "special"
    if not word:
        return "whitespace"
    if any(c.isdigit() for c in word):
        return "number"
    if _is_punct(word):
        return "punctuation"
    if not text[0].isspace() and previous and previous[-1].isalnum():
        return "subword"
    if word.lower() in stopwords():
        return "stopword"
    if word[0].isupper() and not sentence_start:
        return "proper_noun"
    return "other"


def token_types(tokens: list[str], special: list[bool] | None = None) -> list[str]:
    """Categories of every token of a sequence, ``[position]``."""
    special = list(special) if special is not None else [False] * len(tokens)
    out, start, prev = [], True, ""
    for text, is_special in zip(tokens, special):
        out.append(token_type(text, prev, start, bool(is_special)))
        start = True if is_special else _ends_sentence(text, start)
        prev = text
    return out
