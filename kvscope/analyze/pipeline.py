"""Inputs of ``kvscope.analyze`` read from files: the leave-one-out ground truth, and the per-token data
of the report's token strip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kvscope.errors import UsageError
from kvscope.snapshot import KVSnapshot

GROUND_TRUTH_FILE = "importance_ground_truth.json"


def load_ground_truth(path: Path | None, snapshot: KVSnapshot) -> tuple[np.ndarray | None, str]:
    """``delta_loglik`` from a leave-one-out file if it matches the snapshot's tokens, else a note."""
    if path is None or not path.is_file():
        return None, ""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        delta = np.asarray(doc["delta_loglik"], dtype=np.float64)
        ids = [int(i) for i in doc.get("token_ids", [])]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read ground truth {path}: {exc}") from None
    if ids and ids != snapshot.token_ids.tolist():
        return None, f"{path.name} was measured on a different prompt ({len(ids)} tokens); not compared"
    return delta, f"ground truth from {path.name}"


def token_data(results: dict[str, Any]) -> dict[str, Any]:
    t = results["tokens"]
    return {
        "tokens": t.tokens,
        "types": t.types,
        "key_norm": t.key_norm,
        "value_norm": t.value_norm,
        "magnitude": t.magnitude,
        "attention": t.attention,
        "sink": t.sink,
    }
