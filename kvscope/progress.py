"""Counted progress for long loops (sweeps, leave-one-out, scans, bench samples, mas problems).

Progress goes to stderr through ``rich.progress`` only when stderr is a terminal and the caller did
not ask for quiet (the CLI passes ``quiet=True`` under ``--json``); otherwise the loop runs silently.
Library callers get the same behaviour: nothing is printed into a pipe or a log file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled(quiet: bool = False) -> bool:
    """Whether progress would be shown: stderr is a TTY and ``quiet`` is false."""
    return not quiet and sys.stderr.isatty()


def track(items: Iterable[T], label: str, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """Yield ``items``, showing "label  done/total" on stderr when :func:`enabled`."""
    if not enabled(quiet):
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total if total is not None else _len(items))
        for item in items:
            yield item
            bar.advance(task)


def _len(items: Iterable[object]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None
