"""GPU and model catalogs (``data/gpus.json``, ``data/models.json``) as registries keyed by id.

Each entry carries its ``source`` and the date it was ``checked``; ``verified`` is false where a value
comes from recall or a secondary source. Lookups are case-insensitive and also accept the display
name; an unknown name raises ``UsageError`` naming the closest entries.
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from kvscope.errors import UsageError


@functools.cache
def _load(name: str) -> tuple[dict[str, Any], ...]:
    text = resources.files("kvscope.memory").joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)[name])


def gpus() -> dict[str, dict[str, Any]]:
    """GPU registry: id -> entry."""
    return {g["id"]: dict(g) for g in _load("gpus")}


def models() -> dict[str, dict[str, Any]]:
    """Model registry: id -> entry."""
    return {m["id"]: dict(m) for m in _load("models")}


def _key(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum() or ch == ".")


def lookup(registry: dict[str, dict[str, Any]], name: str, kind: str) -> dict[str, Any]:
    """The entry whose id, display name or hub id matches ``name`` (case and punctuation ignored)."""
    wanted = _key(name)
    for entry in registry.values():
        names = (entry["id"], entry.get("name", ""), entry.get("hf_id", ""))
        if any(wanted == _key(n) for n in names if n):
            return entry
    close = difflib.get_close_matches(name.lower(), list(registry), n=3, cutoff=0.3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UsageError(f"unknown {kind} {name!r}: {hint}valid: {', '.join(registry)}")


def gpu(name: str) -> dict[str, Any]:
    return lookup(gpus(), name, "GPU")


def looks_like_config(name: str) -> bool:
    """A path to a config.json (or a folder holding one), or a hub id ``owner/name``."""
    p = Path(name)
    return p.suffix == ".json" or p.is_dir() or ("/" in name and not p.exists() and name.count("/") == 1)


def model(name: str, trust_remote_code: bool = False) -> dict[str, Any]:
    """A catalog entry by name, else an entry counted from a config path or hub id (imports torch)."""
    try:
        return lookup(models(), name, "model")
    except UsageError:
        if not looks_like_config(name):
            raise
    from kvscope.memory.hfconfig import model_from_config

    return model_from_config(name, trust_remote_code=trust_remote_code)


def page_data(
    extra_models: list[dict[str, Any]] | None = None, initial: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the web page needs, inlined in the HTML: catalogs, the formula constants and the
    starting state (``initial``: URL parameters used when the page's own URL has none)."""
    from kvscope.memory import budget
    from kvscope.memory import formulas as f

    return {
        "gpus": list(_load("gpus")),
        "models": list(_load("models")) + list(extra_models or []),
        "initial": {k: str(v) for k, v in (initial or {}).items()},
        "engine_limits": f.ENGINE_LIMITS,
        "kv_dtypes": f.KV_DTYPES,
        "weight_dtypes": f.WEIGHT_DTYPES,
        "modes": f.MODES,
        "engines": f.ENGINES,
        "defaults": f.DEFAULTS,
        "deprecated": budget.DEPRECATED,
        "limits": {"batch": f.MAX_BATCH, "context": f.MAX_CONTEXT, "tp": f.MAX_TP},
    }


def lookup_or_none(name: str) -> dict[str, Any] | None:
    """The catalog model matching ``name``, or None (no error, no torch)."""
    try:
        return lookup(models(), name, "model")
    except UsageError:
        return None
