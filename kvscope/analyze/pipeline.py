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


def load_ground_truth(
    path: Path | None, snapshot: KVSnapshot, require_ids: bool = False
) -> tuple[np.ndarray | None, str]:
    """``delta_loglik`` from a leave-one-out file if it matches the snapshot's tokens, else a note.
    ``require_ids``: a file without ``token_ids`` matches nothing (many prompts are matched by ids)."""
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
    if (require_ids or ids) and ids != snapshot.token_ids.tolist():
        return None, f"{path.name} was measured on a different prompt ({len(ids)} tokens); not compared"
    return delta, f"ground truth from {path.name}"


def many_ground_truth(ground_truth: Any, snap: KVSnapshot, i: int, matched: list[int]) -> np.ndarray | None:
    """The leave-one-out values of prompt ``i`` when the ground-truth file was measured on its token ids."""
    if ground_truth is None:
        return None
    if not isinstance(ground_truth, (str, Path)):
        raise UsageError("with many snapshots, ground_truth must be a leave-one-out file's path (matched by token ids)")
    path = Path(ground_truth)
    if not path.is_file():
        raise UsageError(f"cannot read ground truth {path}: no such file")
    delta, _ = load_ground_truth(path, snap, require_ids=True)
    if delta is not None:
        matched.append(i)
    return delta


def ground_truth_note(ground_truth: Any, matched: list[int], n: int) -> str:
    """What a many-prompt run did with the ground-truth file: which prompts it matched."""
    if ground_truth is None:
        return ""
    name = Path(ground_truth).name
    if not matched:
        return f"{name} matches none of the {n} prompts by token ids; not compared"
    which = ", ".join(str(i) for i in matched)
    return (
        f"{name} matches prompt {which} (of {n}) by token ids: its per-prompt verdict rests on it; the verdict "
        "over prompts rests on attention received, which every prompt has"
        if len(matched) < n
        else f"{name} matches every prompt"
    )


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
