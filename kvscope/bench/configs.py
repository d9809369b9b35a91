"""The configurations a bench run compares: ``baseline``, ``<strategy>@<ratio>`` for every strategy
of ``kvscope.prune``'s registry, and ``kivi@<spec>`` for each KIVI quantization spec.

Convention options (SnapKV's observation window, budget rounding, KNorm's skipped first layers) are
passed to each strategy that declares a field or attribute of that name; which strategy took which
option is recorded (``applied``), so a run never claims a convention it did not use.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.errors import UsageError
from kvscope.prune.evict import Prefill
from kvscope.prune.strategies import STRATEGIES
from kvscope.prune.strategies import make_strategy as registry_strategy
from kvscope.quant import KiviSpec, parse_spec

# One ratio by default, so `kvscope bench` answers in about 3 minutes at one thread on the embedded model;
# the published table (`make bench`) passes its ratios explicitly.
RATIOS = (0.5,)
QUANT_SPECS = ("K4V4", "K2V2")
# option name -> the strategy field/attribute it sets
CONVENTIONS = {"window": "window", "rounding": "rounding", "skip_layers": "skip_layers"}


@dataclass
class Config:
    """``name`` as written in outputs; ``method`` = ``baseline``, a strategy name or ``kivi``."""

    name: str
    method: str
    ratio: float | None = None
    quant: KiviSpec | None = None
    strategy: Any = None

    def keep(self, pre: Prefill) -> torch.Tensor | None:
        """The keep plan ``[layer, kv_head, position]`` for ``pre`` (``None`` = keep everything)."""
        return None if self.strategy is None else self.strategy.keep(pre, self.ratio)


def declared(cls: type) -> set[str]:
    """Names a strategy class accepts: dataclass fields, ``__init__`` parameters and class attributes."""
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    names |= {p for p in inspect.signature(cls.__init__).parameters if p != "self"}
    return (
        names
        | {n for n in vars(cls) if not n.startswith("_")}
        | {
            n
            for base in cls.__mro__[1:]
            for n in vars(base)
            if not n.startswith("_") and not callable(getattr(base, n))
        }
    )


def make_strategy(name: str, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The registry's strategy ``name`` with the convention ``options`` it declares; returns
    ``(strategy, applied)``. Options set to ``None`` keep the strategy's own default."""
    cls = type(registry_strategy(name))  # one-line error for an unknown name (kvpress:<Press> too)
    wanted = {CONVENTIONS[k]: v for k, v in options.items() if v is not None}
    applied = {k: v for k, v in wanted.items() if k in declared(cls)}
    return registry_strategy(name, **applied), applied


def check_ratio(r: float) -> float:
    if not isinstance(r, (int, float)) or not 0.0 < float(r) < 1.0:
        raise UsageError(f"a ratio is the fraction of context tokens removed, strictly between 0 and 1; got {r!r}")
    return float(r)


def build_configs(
    strategies: list[str] | None = None, ratios=RATIOS, quantize=QUANT_SPECS, options: dict[str, Any] | None = None
) -> tuple[list[Config], dict[str, dict[str, Any]]]:
    """Baseline, each strategy x ratio, each KIVI spec; and the options each strategy took."""
    names = list(STRATEGIES) if strategies is None else list(strategies)
    ratios = [check_ratio(r) for r in ratios]
    _once("strategies", names)
    _once("ratios", [f"{r:g}" for r in ratios])
    configs = [Config("baseline", "baseline")]
    applied: dict[str, dict[str, Any]] = {}
    for name in names:
        strategy, applied[name] = make_strategy(name, options or {})
        configs += [Config(f"{name}@{r:g}", name, r, strategy=strategy) for r in ratios]
    for spec in quantize:
        q = parse_spec(spec) if isinstance(spec, str) else spec
        configs.append(Config(f"kivi@{q.label}", "kivi", quant=q))
    _once("quantize", [c.name.removeprefix("kivi@") for c in configs if c.method == "kivi"])
    return configs, applied


def _once(param: str, values: list[str]) -> None:
    """Refuse a value given twice (it would make two rows that each count the same samples)."""
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise UsageError(f"{param} lists {v} twice: give each once")
        seen.add(v)
