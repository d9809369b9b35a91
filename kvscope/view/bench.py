"""What the view page shows of a ``kvscope bench`` output folder: every sample x configuration's gold
and generated answer and whether it was right (``samples.jsonl``), and the eviction maps (``bench.json``'s
``maps``: per token, the share of (layer, kv_head) rows each strategy kept; written by bench since
issue 25, absent from older folders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kvscope.errors import UsageError

OUTCOME_KEYS = ("task", "sample", "config", "answer", "gold", "correct")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path} is not readable JSON: {exc}") from None


def read_outcomes(path: Path) -> list[dict[str, Any]]:
    """One dict per line of ``samples.jsonl`` with the keys of ``OUTCOME_KEYS``."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not readable: {exc}") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UsageError(f"{path} line {i} is not JSON") from None
        if not isinstance(row, dict) or not {"task", "sample", "config"} <= set(row):
            raise UsageError(f"{path} line {i} is not a bench outcome (task, sample, config)")
        out.append({k: row.get(k, "" if k in ("answer", "gold") else None) for k in OUTCOME_KEYS})
    return out


def bench_data(folder: str | Path) -> dict[str, Any]:
    """The page's data for a bench output folder; one-line ``UsageError`` when it is not one."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (give a snapshot .kvs or a kvscope bench output folder)")
    missing = [name for name in ("bench.json", "samples.jsonl") if not (root / name).is_file()]
    if missing:
        raise UsageError(f"{root} holds no {' or '.join(missing)}: not a snapshot nor a bench output folder")
    bench = _read_json(root / "bench.json")
    if not isinstance(bench, dict):
        raise UsageError(f"{root / 'bench.json'} is not a kvscope bench result")
    outcomes = read_outcomes(root / "samples.jsonl")
    if not outcomes:
        raise UsageError(f"{root / 'samples.jsonl'} holds no outcomes: the bench run is empty")
    model = bench.get("model") or {}
    return {
        "kind": "bench",
        "source": str(root),
        "model": model.get("name", "") if isinstance(model, dict) else str(model),
        "outcomes": outcomes,
        "maps": bench.get("maps") or [],
    }
