"""The one JSONL reader of kvscope (bench ``--data``, mas ``--data``, analyze ``--prompts``)."""

from __future__ import annotations

import json
import os
from typing import Any

from kvscope.fileio import read_text_input


def read_jsonl(path: str | os.PathLike, option: str) -> list[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of the JSONL file ``path``, read by
    ``fileio.read_text_input`` (regular files only, size-bounded, UTF-8; errors name ``option``). A line
    that is not JSON gives ``(line number, None)``: each caller decides whether to refuse or skip it."""
    rows = []
    for number, line in enumerate(read_text_input(path, option).splitlines(), start=1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
                rows.append((number, None))
    return rows
