"""The one engine behind ``kvscope prune``, ``kvscope bench`` and ``ks.compress``.

- ``Config``: one configuration: the baseline, a ``Strategy`` with a ``ratio`` (evicted after the
  prefill) or a ``budget`` (kept tokens while decoding), and/or a KIVI spec.
- ``build_grid``: baseline + every strategy x ratio + every KIVI spec, each given once, for
  ``prune --sweep`` and ``bench``; ``SWEEP`` and ``BENCH`` are the two commands' named defaults.
- ``check_ratio``: the one ratio check (``UsageError`` naming the parameter ``ratio``).
- ``CONVENTIONS``: the settings where papers and reproductions disagree (SnapKV's window, budget
  rounding, KNorm's skipped layers); ``conventions(configs)`` says which values a run used. A strategy
  is configured through its settings only (``make_strategy(name, **settings)``, never by inspecting its
  class); a run's settings go to every strategy that declares them and ``Grid.applied`` records which
  strategy took which; ``parse_pairs`` reads ``KEY=VALUE`` pairs and shortcut flags.
- The forward counter is ``kvscope.prune.evict.count_forwards`` (the prefill counts its own passes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from kvscope.errors import UsageError
from kvscope.prune.evict import Prefill
from kvscope.prune.strategies import (
    STRATEGIES,
    Strategy,
    convert_setting,
    make_strategy,
    setting_defaults,
    split_setting,
)
from kvscope.quant import KiviSpec, parse_spec


@dataclass(frozen=True)
class Defaults:
    """A command's default grid: ``ratios`` (fractions of prompt tokens evicted) and KIVI ``quantize`` specs."""

    ratios: tuple[float, ...]
    quantize: tuple[str, ...]


# `kvscope prune --sweep`: one text, so every ratio and three KIVI specs are cheap.
SWEEP = Defaults(ratios=(0.25, 0.5, 0.75, 0.9), quantize=("K8V8", "K4V4", "K2V2"))
# `kvscope bench`: one ratio, so the default run answers in minutes on the embedded model (benchmarks/results/
# bench_default.md); the published table (`make bench`) passes its ratios explicitly.
BENCH = Defaults(ratios=(0.5,), quantize=("K4V4", "K2V2"))

# setting -> what it decides; each strategy that declares the setting takes it (defaults: the strategy's own)
CONVENTIONS = {
    "window": "SnapKV's observation window (32; some reproductions use 64): snapkv, pyramidkv, adakv",
    "rounding": "budget rounding: ceil never evicts more than asked, floor is kvpress's int(n * (1 - ratio))",
    "skip_layers": "first layers KNorm keeps whole (0; its authors' code skips 2)",
}


def check_ratio(ratio: Any, zero: bool = False) -> float:
    """``ratio`` as a float strictly between 0 and 1 (``zero``: 0 too, keep everything); else a one-line
    ``UsageError`` naming the parameter ``ratio``."""
    number = isinstance(ratio, (int, float)) and not isinstance(ratio, bool)
    if number and (0.0 < float(ratio) < 1.0 or (zero and float(ratio) == 0.0)):
        return float(ratio)
    also = " (or 0: keep everything)" if zero else ""
    raise UsageError(
        f"ratio must be strictly between 0 and 1{also}, the fraction of prompt tokens evicted; got {ratio!r}",
        param="ratio",
    )


def check_budget(budget: Any) -> int:
    """``budget`` (kept tokens per layer and kv_head while decoding) as a positive int; else ``UsageError``."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UsageError(f"budget must be a positive integer (tokens kept per kv_head), got {budget!r}", param="budget")
    return budget


@dataclass(frozen=True)
class Config:
    """One configuration. ``name`` as written in outputs (``baseline``, ``snapkv@0.5``, ``kivi@K4V4G32R128``);
    ``method``: ``baseline``, the strategy's name or ``kivi``; ``ratio``: fraction of the prompt evicted
    after the prefill; ``budget``: kept tokens per (layer, kv_head) while decoding; ``quant``: KIVI."""

    name: str
    method: str
    ratio: float | None = None
    quant: KiviSpec | None = None
    strategy: Any = None
    budget: int | None = None

    def keep(self, pre: Prefill) -> torch.Tensor | None:
        """The keep plan ``[layer, kv_head, position]`` for ``pre`` (``None`` = keep everything)."""
        return None if self.strategy is None or self.ratio is None else self.strategy.keep(pre, self.ratio)

    def warnings(self, n_positions: int, layers: int | None = None) -> list[str]:
        """The strategy's guardrail messages for an ``n_positions``-token prompt (empty without a ratio)."""
        if self.strategy is None or self.ratio is None:
            return []
        return self.strategy.warnings(n_positions, self.ratio, layers=layers)

    @property
    def label(self) -> str:
        """What was run, settings included: ``snapkv(window=64) ratio=0.5``, ``h2o budget=64``,
        ``kivi@K4V4G32R128``, ``baseline``."""
        parts = [self.strategy.label] if self.strategy is not None else []
        parts += [f"ratio={self.ratio:g}"] if self.ratio is not None else []
        parts += [f"budget={self.budget}"] if self.budget is not None else []
        parts += [f"kivi@{self.quant.label}"] if self.quant is not None else []
        return " ".join(parts) or "baseline"


BASELINE = Config("baseline", "baseline")


def conventions(configs: Sequence[Config]) -> dict[str, dict[str, Any]]:
    """Per strategy in ``configs``, the value of each of ``CONVENTIONS`` it declares and ran with (its own
    default, or the run's setting): ``{"snapkv": {"rounding": "ceil", "window": 32}, ...}``."""
    return {
        c.method: {k: v for k, v in c.strategy.settings().items() if k in CONVENTIONS}
        for c in configs
        if isinstance(c.strategy, Strategy)
    }


def evicting(strategy: Strategy, ratio: float) -> Config:
    """``strategy`` evicting a fraction ``ratio`` of the prompt after the prefill: ``snapkv@0.5``."""
    r = check_ratio(ratio)
    return Config(f"{strategy.name}@{r:g}", strategy.name, r, strategy=strategy)


def quantized(spec: str | KiviSpec) -> Config:
    """KIVI quantization of the prompt's cache: ``kivi@K4V4G32R128``."""
    q = parse_spec(spec) if isinstance(spec, str) else spec
    return Config(f"kivi@{q.label}", "kivi", quant=q)


def resolve_strategy(strategy: str | Strategy | None, settings: dict[str, Any]) -> Strategy | None:
    """A strategy from a registered name and its ``settings``, or a ``Strategy`` as it is (settings then go
    to ``make_strategy``, not beside it). One-line ``UsageError`` naming ``strategy`` otherwise."""
    if isinstance(strategy, Strategy):
        if settings:
            raise UsageError(
                f"settings {', '.join(settings)} go into the strategy when it is made "
                "(make_strategy or ks.strategy), not next to it"
            )
        return strategy
    if strategy is None:
        if settings:
            raise UsageError(f"settings {', '.join(settings)} need a strategy", param="strategy")
        return None
    if not isinstance(strategy, str):
        raise UsageError(f"strategy must be a name or a made strategy, got {type(strategy).__name__}", param="strategy")
    return make_strategy(strategy, **settings)


def configure(
    strategy: str | Strategy | None = None,
    ratio: Any = None,
    budget: Any = None,
    quantize: str | KiviSpec | None = None,
    settings: dict[str, Any] | None = None,
    zero: bool = False,
) -> Config:
    """One configuration from a strategy (name + ``settings``, or a ``Strategy``) with ``ratio`` or
    ``budget``, and/or KIVI ``quantize`` (``ks.compress``). ``zero``: ratio 0 allowed (keep everything)."""
    chosen = resolve_strategy(strategy, settings or {})
    r = check_ratio(ratio, zero) if ratio is not None else None
    b = check_budget(budget) if budget is not None else None
    if chosen is None and (r is not None or b is not None):
        raise UsageError("ratio and budget need a strategy (a name or a made strategy)", param="strategy")
    if chosen is not None and r is None and b is None:
        raise UsageError(f"{chosen.name}: give ratio (after the prefill) or budget (while decoding)", param="ratio")
    if chosen is None and quantize is None:
        raise UsageError("nothing to do: give a strategy with a ratio or a budget, or quantize")
    q = quantized(quantize).quant if quantize is not None else None
    config = Config("", chosen.name if chosen is not None else "kivi", r, q, chosen, b)
    return dataclasses.replace(config, name=config.label)


def parse_pairs(pairs: Sequence[str], shortcuts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A command line's settings: ``["window=64"]`` plus shortcut flags (``{"rounding": "floor"}``, None where
    not given) -> ``{"window": "64", "rounding": "floor"}``, text that ``build_grid`` converts per strategy.
    One-line ``UsageError`` (``settings``) for a pair without ``=`` or a setting given twice."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, text = split_setting(pair)
        if text is None or not key:
            raise UsageError(f"settings takes KEY=VALUE such as window=64, got {pair!r}", param="settings")
        _put(out, key, text)
    for key, value in (shortcuts or {}).items():
        if value is not None:
            _put(out, key, value)
    return out


def _put(settings: dict[str, Any], key: str, value: Any) -> None:
    if key in settings:
        raise UsageError(f"settings: {key} is given twice (a shortcut flag counts too): give it once", param="settings")
    settings[key] = value


class Grid(NamedTuple):
    """``configs``: baseline, each strategy x ratio, each KIVI spec; ``applied``: strategy name -> the
    settings of the run it took (converted to the setting's type)."""

    configs: list[Config]
    applied: dict[str, dict[str, Any]]


def build_grid(
    strategies: Sequence[str | Strategy] | None = None,
    ratios: Sequence[float] = BENCH.ratios,
    quantize: Sequence[str | KiviSpec] = BENCH.quantize,
    settings: dict[str, Any] | None = None,
) -> Grid:
    """Baseline, then each strategy (default: every registered one) at each ratio, then each KIVI spec.

    ``settings`` (``{"window": 64}``; values may be text, as on a command line) go to every strategy that
    declares them; a setting that none of them declares, or a strategy, ratio or spec given twice, is a
    one-line ``UsageError``.
    """
    given = {k: v for k, v in (settings or {}).items() if v is not None}
    checked = [check_ratio(r) for r in ratios]
    configured = [_configured(s, given) for s in (list(STRATEGIES) if strategies is None else strategies)]
    _refuse_undeclared(given, [s for s, _ in configured])
    configs = [BASELINE] + [evicting(s, r) for s, _ in configured for r in checked]
    configs += [quantized(q) for q in quantize]
    _once("strategies", [s.name for s, _ in configured])
    _once("ratios", [f"{r:g}" for r in checked])
    _once("quantize", [c.quant.label for c in configs if c.quant is not None])
    return Grid(configs, {s.name: taken for s, taken in configured})


def declared(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The ``settings`` strategy ``name`` declares, each converted to its type (text from a command line)."""
    defaults = setting_defaults(name)
    return {k: convert_setting(name, k, v) for k, v in settings.items() if k in defaults}


def _configured(strategy: str | Strategy, settings: dict[str, Any]) -> tuple[Strategy, dict[str, Any]]:
    """``(strategy with the settings it declares, those settings)``."""
    if isinstance(strategy, Strategy):
        taken = declared(strategy.name, settings)
        return (dataclasses.replace(strategy, **taken) if taken else strategy), taken
    if not isinstance(strategy, str):
        raise UsageError(f"strategies must be names or made strategies, got {type(strategy).__name__}")
    make_strategy(strategy)  # one line for an unknown name, before the settings are converted
    taken = declared(strategy, settings)
    return make_strategy(strategy, **taken), taken


def _refuse_undeclared(settings: dict[str, Any], chosen: list[Strategy]) -> None:
    for key in settings:
        if not any(key in setting_defaults(s.name) for s in chosen):
            names = ", ".join(s.name for s in chosen) or "none"
            raise UsageError(f"settings: {key} is declared by none of the strategies chosen ({names})", "settings")


def _once(param: str, values: list[str]) -> None:
    """Refuse a value given twice (it would make two rows that each count the same samples)."""
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise UsageError(f"{param} lists {v} twice: give each once", param=param)
        seen.add(v)
