"""A user's own task: ``--data FILE.jsonl`` with ``{"context": ..., "question": ..., "answer": ...}``
lines, or ``hf:NAME[:split]`` for a Hugging Face dataset with those fields (needs ``datasets`` and
the hub). Malformed lines are skipped with a warning naming their line numbers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kvscope.bench.tasks import Sample
from kvscope.errors import KvscopeError, UsageError

log = logging.getLogger("kvscope")
FIELDS = ("context", "question", "answer")


def parse_record(record: Any) -> tuple[str, str, str] | None:
    """``(context, question, answer)`` when ``record`` is an object with three non-empty strings."""
    if not isinstance(record, dict):
        return None
    vals = [record.get(f) for f in FIELDS]
    if not all(isinstance(v, str) and v.strip() for v in vals):
        return None
    return vals[0], vals[1], vals[2]


def samples_from(records: Iterable[tuple[int, Any]], source: str) -> list[Sample]:
    """Valid records as ``data`` samples; warn once listing the skipped line numbers."""
    out, bad = [], []
    for line, rec in records:
        parsed = parse_record(rec)
        if parsed is None:
            bad.append(line)
            continue
        context, question, answer = parsed
        needle = answer if answer in context else ""
        out.append(
            Sample(
                "data",
                len(out),
                context,
                question,
                answer,
                needle,
                context.index(answer) / len(context) if needle else None,
            )
        )
    if not out:
        raise UsageError(
            f"{source} has no valid line ({len(bad)} malformed): each line must be a JSON object "
            'with non-empty "context", "question" and "answer" strings'
        )
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        log.warning(
            "%s: skipped %d malformed line(s) (need non-empty context, question and answer strings): %s",
            source,
            len(bad),
            shown,
        )
    return out


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """``(line number, parsed JSON or None)`` for each non-blank line of ``path``."""
    from kvscope.jsonl import read_jsonl as read_lines

    rows = read_lines(path, "data")  # regular files only, size-bounded, UTF-8
    if not rows:
        raise UsageError(f"data file {path} is empty", param="data")
    return rows


def read_hf(spec: str) -> list[tuple[int, Any]]:
    """Rows of ``hf:NAME[:split]`` (split ``test`` by default)."""
    name, _, split = spec[3:].partition(":")
    if not name:
        raise UsageError("data hf:NAME[:split] needs a dataset name", param="data")
    try:
        import datasets
    except ImportError:
        raise UsageError("data hf:... needs the 'datasets' package (pip install datasets)", param="data") from None
    try:
        ds = datasets.load_dataset(name, split=split or "test")
    except Exception as exc:
        raise KvscopeError(f"cannot load Hugging Face dataset {name!r}: {str(exc).splitlines()[0]}") from None
    return [(i + 1, dict(row)) for i, row in enumerate(ds)]


def load_samples(spec: str) -> list[Sample]:
    """The samples of a JSONL file or an ``hf:`` dataset."""
    if spec.startswith("hf:"):
        return samples_from(read_hf(spec), spec)
    path = Path(spec)
    if not os.path.lexists(path):
        raise UsageError(
            f"data file {path} does not exist", param="data"
        )  # anything else: read_text_input says what it is
    return samples_from(read_jsonl(path), str(path))
