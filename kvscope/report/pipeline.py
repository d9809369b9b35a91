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
    from kvscope.fileio import read_text_input

    text = read_text_input(path, "ground truth")  # regular file, 50 MB, UTF-8
    try:
        doc = json.loads(text)
        delta = np.asarray(doc["delta_loglik"], dtype=np.float64)
        ids = [int(i) for i in doc.get("token_ids", [])]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise UsageError(f"cannot read ground truth {path}: {str(exc)[:160] or type(exc).__name__}") from None
    if delta.ndim != 1 or not delta.size:
        raise UsageError(f"cannot read ground truth {path}: delta_loglik must be a list of numbers, one per token")
    if not np.isfinite(delta).all():
        raise UsageError(f"cannot read ground truth {path}: delta_loglik holds NaN or infinite values")
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
