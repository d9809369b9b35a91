"""Synthetic long-context tasks in the spirit of RULER (Hsieh et al., "RULER: What's the Real Context
Size of Your Long-Context Language Models?", 2024), generated in code, seeded and offline.

Each generator returns a :class:`Sample`: a context of about ``tokens`` tokens (counted with the
model's own tokenizer), a question fed right after it, and a gold answer that appears exactly once
in the context, inside ``needle``. Tasks are looked up by name in ``TASKS``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

from kvscope.bench.filler import filler
from kvscope.errors import UsageError

Counter = Callable[[str], int]  # text -> number of tokens

ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "dusty",
    "eager",
    "faint",
    "gentle",
    "hollow",
    "icy",
    "jolly",
    "keen",
    "lofty",
    "mellow",
    "nimble",
    "olive",
    "proud",
    "quiet",
    "rusty",
    "silent",
    "tidy",
    "urban",
    "vivid",
    "woolly",
    "young",
    "zesty",
    "bold",
    "crisp",
    "deep",
    "early",
    "fierce",
)
NOUNS = (
    "falcon",
    "harbor",
    "lantern",
    "meadow",
    "orchid",
    "pebble",
    "quartz",
    "river",
    "saddle",
    "thistle",
    "violin",
    "walnut",
    "anchor",
    "beacon",
    "cedar",
    "dolphin",
    "ember",
    "fern",
    "garnet",
    "heron",
    "island",
    "juniper",
    "kettle",
    "lagoon",
    "maple",
    "nectar",
    "otter",
    "pepper",
    "raven",
    "spruce",
)


@dataclass
class Sample:
    """One test item. ``kind`` is ``"qa"`` (the answer is generated and string-matched) or ``"ppl"``
    (``answer`` is a continuation whose perplexity is scored). ``needle``: the context's substring
    holding the answer (``""`` when there is none); ``depth``: where it starts, as a fraction of the
    context's characters."""

    task: str
    index: int
    context: str
    question: str
    answer: str
    needle: str = ""
    depth: float | None = None
    kind: str = "qa"
    meta: dict = field(default_factory=dict)

    def needle_span(self) -> tuple[int, int] | None:
        """Character span ``[start, end)`` of the needle in the context."""
        if not self.needle or self.needle not in self.context:
            return None
        start = self.context.index(self.needle)
        return start, start + len(self.needle)


@dataclass(frozen=True)
class Task:
    """A registered task: ``make(rng, tokens, count, index) -> Sample``; ``min_tokens`` is the smallest
    context it can be built in; ``answer_tokens`` the default generation length."""

    name: str
    summary: str
    make: Callable[[random.Random, int, Counter, int], Sample]
    min_tokens: int = 64
    answer_tokens: int = 8
    kind: str = "qa"


def number(rng: random.Random, used: set[int] | None = None) -> int:
    """A fresh 5-digit number (not in ``used``)."""
    used = used if used is not None else set()
    while True:
        n = rng.randint(10000, 99999)
        if n not in used:
            used.add(n)
            return n


def word_pair(rng: random.Random, used: set[str]) -> str:
    """A fresh ``adjective-noun`` label, e.g. ``amber-falcon``, sharing neither word with the labels in
    ``used`` (so the first word already tells two labels apart)."""
    while True:
        adj, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
        if adj not in used and noun not in used:
            used.update((adj, noun))
            return f"{adj}-{noun}"


def weave(rng: random.Random, tokens: int, count: Counter, needles: list[tuple[float, str]]) -> str:
    """Filler sentences up to about ``tokens`` tokens with each ``(depth, sentence)`` inserted at that
    fraction of the filler (0 = first, 1 = last)."""
    budget = tokens - sum(count(" " + s) for _, s in needles)
    parts: list[str] = []
    used = 0
    for s in filler(rng, 10 * tokens):
        cost = count(" " + s)
        if used + cost > budget and parts:
            break
        parts.append(s)
        used += cost
    n = len(parts)  # positions refer to the filler alone, inserted from the back so none shifts another
    for depth, s in sorted(needles, key=lambda item: item[0], reverse=True):
        parts.insert(round(depth * n), s)
    return " ".join(parts)


def passkey(rng: random.Random, tokens: int, count: Counter, index: int, depth: float | None = None) -> Sample:
    """A 5-digit pass key stated once at ``depth`` (random when ``None``) of the filler."""
    depth = rng.random() if depth is None else depth
    key = number(rng)
    needle = f"The pass key is {key}. Remember it."
    context = weave(rng, tokens, count, [(depth, needle)])
    return _sample("passkey", index, context, "\nWhat is the pass key? The pass key is", str(key), needle)


def kv_retrieval(
    rng: random.Random, tokens: int, count: Counter, index: int, depth: float | None = None, pairs: int = 8
) -> Sample:
    """A block of ``pairs`` key -> value lines ``The value of amber-falcon is 38291.`` at a random depth of
    the filler; the question asks for the value of one key (the one at ``depth`` of the block when given)."""
    labels: set[str] = set()
    values: set[int] = set()
    lines = [f"The value of {word_pair(rng, labels)} is {number(rng, values)}." for _ in range(pairs)]
    pick = rng.randrange(pairs) if depth is None else min(pairs - 1, int(depth * pairs))
    block = "Here is a list of keys and their values.\n" + "\n".join(lines) + "\nEnd of the list."
    context = weave(rng, tokens, count, [(rng.random() if depth is None else depth, block)])
    label, value = lines[pick][len("The value of ") : -1].split(" is ")
    return _sample(
        "kv_retrieval",
        index,
        context,
        f"\nWhat is the value of key {label}? The value of {label} is",
        value,
        lines[pick],
    )


def multi_needle(
    rng: random.Random, tokens: int, count: Counter, index: int, depth: float | None = None, needles: int = 4
) -> Sample:
    """``needles`` lines ``The special magic number for amber-falcon is 38291.`` at random depths; the
    question asks for one of them by its label (the one at ``depth`` when given)."""
    labels: set[str] = set()
    values: set[int] = set()
    items = [(rng.random(), word_pair(rng, labels), number(rng, values)) for _ in range(needles)]
    if depth is not None:
        items[0] = (depth, *items[0][1:])
    texts = [(d, f"The special magic number for {label} is {value}.") for d, label, value in items]
    context = weave(rng, tokens, count, texts)
    ask = 0 if depth is not None else rng.randrange(needles)
    _, label, value = items[ask]
    question = f"\nWhat is the special magic number for {label}? The special magic number for {label} is"
    return _sample("multi_needle", index, context, question, str(value), texts[ask][1])


def variable_tracking(
    rng: random.Random, tokens: int, count: Counter, index: int, depth: float | None = None, hops: int = 2
) -> Sample:
    """A chain ``VAR A = 52931.`` then ``VAR B = A.`` ... (``hops`` copies), plus a distractor chain,
    spread through the filler; the question asks for the last variable of the first chain."""
    names: set[str] = set()
    values: set[int] = set()

    def chain() -> tuple[list[str], list[str]]:
        vs = [_var(rng, names) for _ in range(hops + 1)]
        lines = [f"VAR {vs[0]} = {number(rng, values)}."] + [f"VAR {b} = {a}." for a, b in pairwise(vs)]
        return vs, lines

    names_a, lines_a = chain()
    _, lines_b = chain()
    start = rng.random() * 0.5 if depth is None else depth
    step = (1.0 - start) / (hops + 1)
    placed = [(start + i * step, s) for i, s in enumerate(lines_a)]
    placed += [(rng.random(), s) for s in lines_b]
    context = weave(rng, tokens, count, placed)
    answer = lines_a[0].split(" = ")[1].rstrip(".")
    question = f"\nWhat is the value of VAR {names_a[-1]}? VAR {names_a[-1]} holds the value"
    return _sample("variable_tracking", index, context, question, answer, lines_a[0])


def _var(rng: random.Random, used: set[str]) -> str:
    while True:
        v = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
        if v not in used:
            used.add(v)
            return v


def _sample(task: str, index: int, context: str, question: str, answer: str, needle: str) -> Sample:
    depth = context.index(needle) / max(1, len(context))
    return Sample(task, index, context, question, answer, needle, depth)


def text_sample(rng: random.Random, tokens: int, count: Counter, index: int) -> Sample:
    """Built-in text number ``index`` (its own length; ``tokens`` does not apply)."""
    from kvscope.bench.texts import TEXTS

    kind, title, context, continuation = TEXTS[index % len(TEXTS)]
    return Sample("text", index, context, "", continuation, kind="ppl", meta={"kind": kind, "title": title})


def stream_sample(rng: random.Random, tokens: int, count: Counter, index: int) -> Sample:
    """The built-in texts (context + continuation each) joined into one stream, stream ``index`` starting
    at text ``index`` and going round in order (later streams: a seeded order), for the ``streaming``
    task (``kvscope.bench.streaming``, which cuts it to ``tokens`` tokens)."""
    from kvscope.bench.texts import TEXTS

    order = list(range(len(TEXTS)))
    order = order[index:] + order[:index] if index < len(TEXTS) else rng.sample(order, len(order))
    context = "\n\n".join(TEXTS[i][2] + TEXTS[i][3] for i in order)
    return Sample("streaming", index, context, "", "", kind="stream", meta={"order": [TEXTS[i][1] for i in order]})


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("passkey", "a 5-digit key stated once in filler text", passkey, 48, 6),
        Task("kv_retrieval", "many key -> value lines; asks for one value", kv_retrieval, 48, 6),
        Task("multi_needle", "4 labelled numbers in filler; asks for one by its label", multi_needle, 96, 6),
        Task(
            "variable_tracking",
            "chained assignments VAR B = A; asks for the last one's value",
            variable_tracking,
            96,
            6,
        ),
        Task(
            "text",
            "continuation perplexity on built-in texts (narrative, technical, dialogue, code, ...)",
            text_sample,
            0,
            0,
            "ppl",
        ),
        Task(
            "streaming",
            "per-token log-perplexity along the joined texts under a fixed cache budget (StreamingLLM Fig. 3)",
            stream_sample,
            0,
            0,
            "stream",
        ),
    )
}


def get_task(name: str) -> Task:
    """The task registered as ``name``; a one-line ``UsageError`` listing the valid ones otherwise."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}: use one of {', '.join(TASKS)}")
    return TASKS[name]


def generate(name: str, n: int, tokens: int, count: Counter, seed: int = 0) -> list[Sample]:
    """``n`` samples of task ``name`` (for ``text``: at most one per built-in text), seeded by
    ``(seed, name, index)`` so a sample does not depend on how many others are drawn."""
    task = get_task(name)
    if task.name == "text":
        from kvscope.bench.texts import TEXTS

        n = min(n, len(TEXTS))
    return [task.make(random.Random(f"{seed}:{name}:{i}"), tokens, count, i) for i in range(n)]
