"""Token eviction strategies: one small dataclass each, created by name through ``STRATEGIES``.

>>> s = make_strategy("snapkv", window=64)
>>> s.label, s.settings()["window"]
('snapkv(window=64)', 64)

Each strategy ranks the prompt's tokens per (layer, kv_head) and keeps ``budget(n, ratio)`` of them
(``ceil((1 - ratio) * n)`` by default, ``rounding="floor"`` for ``floor``), except where its docstring
says how it shares that budget (``pyramidkv`` across layers, ``adakv`` across a layer's kv_heads, both
with the same total; ``knorm`` with ``skip_layers`` keeps those layers whole). ``keep(pre, ratio)``
returns bool ``[layer, kv_head, position]``; ``warnings(n_positions, ratio, layers=None)`` lists
guardrail messages (a budget below a strategy's window, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kvscope.errors import UsageError
from kvscope.prune.strategies import kvpress_adapter
from kvscope.prune.strategies.base import PROTECT, Strategy, top_keep
from kvscope.prune.strategies.classic import H2O, KNorm, Magnitude, Random, SnapKV, Streaming
from kvscope.prune.strategies.literature import TOVA, AdaKV, PyramidKV

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (KNorm, Streaming, H2O, SnapKV, Magnitude, Random, TOVA, PyramidKV, AdaKV)
}


def strategy_names() -> str:
    """``"knorm, streaming, ..."``: the registered names, for messages and help text."""
    return ", ".join(STRATEGIES)


def summaries() -> dict[str, str]:
    """name -> one-line summary (with its citation), in registry order."""
    return {name: cls.summary for name, cls in STRATEGIES.items()}


def setting_defaults(name: str) -> dict[str, Any]:
    """The settings ``name`` takes and their defaults, e.g. ``{"rounding": "ceil", "window": 32, ...}``."""
    if kvpress_adapter.is_press_name(name):  # kvpress:<PressClass>: the press's own fields
        return kvpress_adapter.setting_defaults(name)
    return {f.name: f.default for f in dataclasses.fields(_cls(name))}


def make_strategy(name: str, **settings: Any) -> Strategy:
    """The strategy registered as ``name`` with ``settings`` as keyword arguments (its fields).

    One-line ``UsageError`` for an unknown name (listing the valid ones), an unknown setting (listing the
    ones it takes) or a bad value. ``"kvpress:<PressClass>"`` names a kvpress press (the extra
    ``kvscope[kvpress]``, ``kvpress_adapter``).
    """
    if kvpress_adapter.is_press_name(name):
        return kvpress_adapter.make(name, **settings)
    cls = _cls(name)
    unknown = sorted(set(settings) - set(setting_defaults(name)))
    if unknown:
        raise UsageError(f"{name} has no setting {', '.join(unknown)}: it takes {', '.join(setting_defaults(name))}")
    return cls(**settings)


def parse_settings(name: str, pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["window=64", "rounding=floor"]`` -> ``{"window": 64, "rounding": "floor"}``, each value converted
    to its setting's type (for command lines). One-line ``UsageError`` on anything else."""
    defaults, out = setting_defaults(name), {}
    for pair in pairs:
        key, text = split_setting(pair)
        if text is None or key not in defaults:
            raise UsageError(f"{name} takes KEY=VALUE with KEY one of {', '.join(defaults)}; got {pair!r}")
        out[key] = convert_setting(name, key, text)
    return out


def split_setting(pair: str) -> tuple[str, str | None]:
    """``"skip-layers = 2"`` -> ``("skip_layers", "2")``; the text is None without ``=``."""
    key, sep, text = pair.partition("=")
    return key.strip().replace("-", "_"), (text.strip() if sep else None)


def convert_setting(name: str, key: str, value: Any) -> Any:
    """``value`` for strategy ``name``'s setting ``key``: text (a command line's) converted to the setting's
    type, anything else as it is (the strategy checks it when made)."""
    kind = type(setting_defaults(name)[key])
    if not isinstance(value, str) or kind is str:
        return value
    return _convert(name, key, value.strip(), kind)


def _convert(name: str, key: str, text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"{name}: {key} takes true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{name}: {key} must be {kind.__name__}, got {text!r}") from None


def _cls(name: str) -> type[Strategy]:
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}: use one of {strategy_names()}")
    return STRATEGIES[name]


__all__ = [
    "STRATEGIES",
    "Strategy",
    "make_strategy",
    "summaries",
    "strategy_names",
    "setting_defaults",
    "parse_settings",
    "convert_setting",
    "split_setting",
    "top_keep",
    "PROTECT",
    "KNorm",
    "Streaming",
    "H2O",
    "SnapKV",
    "Magnitude",
    "Random",
    "TOVA",
    "PyramidKV",
    "AdaKV",
]
