"""Token typing per word: BPE pieces are joined into words, the word gets one category, and every
piece of it carries that category (so " Am" of " Amara" is part of a proper noun, not a stopword).

A *word* is a run of pieces where each later piece has no leading whitespace and continues letters or
digits of the piece before it (``" un" "believ" "able"`` is one word). Categories, tested in this
order on the word's text (the first that applies wins):

1. ``special``: a tokenizer special token (BOS, chat markers ...); always its own word.
2. ``whitespace``: only spaces, tabs or newlines.
3. ``number``: contains a digit.
4. ``punctuation``: only punctuation/symbol characters (after stripping spaces).
5. ``stopword``: in kvscope's English function-word list (``STOPWORDS``), case-insensitive.
6. ``proper_noun``: starts with a capital letter and is not sentence-initial (the previous
   non-space word is not ``. ! ? :``, a quote, a newline or the start of the text).
7. ``other``.
"""

from __future__ import annotations

import unicodedata

TOKEN_TYPES = ("number", "punctuation", "stopword", "proper_noun", "special", "whitespace", "other")

# Function words of English, written for kvscope: articles, determiners, pronouns, auxiliaries and
# modal verbs, prepositions, conjunctions and common adverbs of degree, time and place.
STOPWORDS = frozenset(
    """
a an the this that these those some any each every either neither no none all both few many much more
most other another such own same several enough
i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves one ones someone something anyone
anything everyone everything nobody nothing somebody anybody everybody who whom whose which what
whoever whatever whichever
am is are was were be been being have has had having do does did doing done will would shall should
can could may might must ought
about above across after against along among around as at before behind below beneath beside besides
between beyond by down during except for from in inside into near of off on onto out outside over past
per since through throughout till to toward towards under underneath until up upon via with within without
and or but nor so yet if then else than because although though while whereas unless whether once
when where why how however therefore thus hence also too very just only even still already again ever
never not here there now always often sometimes seldom rather quite almost perhaps maybe indeed
""".split()
)


def _is_punct(text: str) -> bool:
    return bool(text) and all(unicodedata.category(c)[0] in "PS" for c in text)


def _ends_sentence(word: str, before: bool) -> bool:
    """Whether a sentence starts after ``word``; ``before`` is the state before it."""
    if "\n" in word:
        return True
    if not word.strip():
        return before
    return word.rstrip()[-1] in ".!?:\"'"


def word_type(text: str, sentence_start: bool = True, special: bool = False) -> str:
    """The category of one word's ``text`` (see the module doc)."""
    word = text.strip()
    if special:
        return "special"
    if not word:
        return "whitespace"
    if any(c.isdigit() for c in word):
        return "number"
    if _is_punct(word):
        return "punctuation"
    if word.lower() in STOPWORDS:
        return "stopword"
    if word[0].isupper() and not sentence_start:
        return "proper_noun"
    return "other"


def words(tokens: list[str], special: list[bool] | None = None) -> list[list[int]]:
    """Token positions grouped into words, in order (see the module doc)."""
    special = list(special) if special is not None else [False] * len(tokens)
    groups: list[list[int]] = []
    for i, (text, sp) in enumerate(zip(tokens, special)):
        prev = tokens[i - 1] if i else ""
        joins = (
            groups
            and not sp
            and not special[i - 1]
            and text
            and not text[0].isspace()
            and prev
            and prev[-1].isalnum()
            and text[0].isalnum()
        )
        if joins:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def token_types(tokens: list[str], special: list[bool] | None = None) -> list[str]:
    """Category of every token ``[position]``: the category of the word it belongs to."""
    special = list(special) if special is not None else [False] * len(tokens)
    out = [""] * len(tokens)
    start = True
    for group in words(tokens, special):
        text = "".join(tokens[i] for i in group)
        is_special = special[group[0]]
        kind = word_type(text, start, is_special)
        for i in group:
            out[i] = kind
        start = True if is_special else _ends_sentence(text, start)
    return out
