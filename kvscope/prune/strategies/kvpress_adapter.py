"""kvpress presses as kvscope strategies (the optional extra, ``pip install 'kvscope[kvpress]'``).

A press of NVIDIA's kvpress that ranks tokens by a score (a ``ScorerPress`` that keeps its base class's
``compress``, ``forward_hook`` and ``__call__``: ``KnormPress``, ``SnapKVPress``,
``ExpectedAttentionPress``, ``TOVAPress``, ``StreamingLLMPress``, ...) becomes a ``Strategy``: its keep plan
for a prefill is, per layer and kv_head, the top ``compute_n_kept(n, ratio)`` positions of the press's own
``score(module, hidden_states, keys, values, attentions, kwargs)``, the count and the ``topk`` kvpress
uses. So it runs wherever kvscope's strategies run with a model at hand: ``kvscope bench --strategies
kvpress:SnapKVPress`` (intervals, one prefill per sample, eviction maps) and ``ks.compress(model, press)``.

The score needs what the attention layers received during the prefill (their input ``hidden_states``
and RoPE ``position_embeddings``), which a ``Prefill`` does not hold: :func:`attached` records them with
forward pre-hooks during every forward that starts from an empty cache, so the prefill kvscope runs
anyway serves every press and ratio (no extra forward).

Conventions (``CONVENTIONS``, also in each run's warnings):

- ``ratio`` is kvpress's ``compression_ratio`` (fraction of the prompt's tokens evicted);
- the count kept per layer and kv_head is kvpress's ``max(1, int(n * (1 - ratio)))`` (floor, at least
  one), not kvscope's default ``ceil``; ``rounding`` is fixed to ``"floor"``;
- ``attentions`` is None, as kvpress sees with SDPA attention (presses that need the attention matrix,
  i.e. eager attention, are refused); attention-based presses compute their window attention themselves;
- every layer is scored; kvscope then cuts a sliding-window layer to its window before applying the plan
  (kvpress leaves Gemma 3's sliding layers uncompressed and does not cut the others).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.errors import KvscopeError, UsageError
from kvscope.prune.evict import Prefill
from kvscope.prune.strategies.base import Strategy, top_keep

PREFIX = "kvpress:"
INSTALL = "pip install 'kvscope[kvpress]'"
# Scorer presses whose score needs the attention matrix, which only eager attention returns.
NEEDS_ATTENTIONS = {"ObservedAttentionPress": "reads the attention matrix (eager attention)"}
CONVENTIONS = (
    "kvpress conventions: ratio = compression_ratio; keeps max(1, int(n * (1 - ratio))) per layer and kv_head "
    "(floor, not kvscope's ceil); attentions=None as with SDPA; every layer scored, sliding-window layers "
    "then cut to their window"
)


def is_press_name(name: Any) -> bool:
    """True for ``"kvpress:<PressClass>"``."""
    return isinstance(name, str) and name.startswith(PREFIX)


def is_press(obj: Any) -> bool:
    """True for a kvpress press object (without importing kvpress when nothing imported it)."""
    module = sys.modules.get("kvpress")
    return module is not None and isinstance(obj, module.BasePress)


def _kvpress(name: str) -> Any:
    """The kvpress module, or a one-line ``UsageError`` with the install command."""
    try:
        import kvpress
        import kvpress.utils
    except ImportError as exc:
        raise UsageError(f"{name} needs the optional extra kvpress ({exc}): {INSTALL}") from None
    return kvpress


def scorer_names() -> list[str]:
    """The kvpress classes kvscope can run (ScorerPress-like), sorted."""
    kvpress = _kvpress("kvpress presses")
    return sorted(
        n for n in dir(kvpress) if isinstance(getattr(kvpress, n), type) and _refusal(getattr(kvpress, n)) is None
    )


def _refusal(cls: type) -> str | None:
    """Why kvscope cannot run press class ``cls`` (one phrase), or None."""
    kvpress = _kvpress(PREFIX + cls.__name__)
    BasePress, ScorerPress = kvpress.BasePress, kvpress.ScorerPress
    if not issubclass(cls, BasePress):
        return "is not a kvpress press"
    if cls is ScorerPress or not issubclass(cls, ScorerPress):
        return "does not rank tokens by a score (it is not a ScorerPress)"
    for method, base in (("compress", ScorerPress), ("forward_hook", BasePress), ("__call__", BasePress)):
        if getattr(cls, method) is not getattr(base, method):
            return f"compresses through its own {method}, which kvscope cannot run"
    return NEEDS_ATTENTIONS.get(cls.__name__)


def press_class(name: str) -> type:
    """The press class named by ``"kvpress:<PressClass>"``; one-line ``UsageError`` otherwise."""
    kvpress = _kvpress(name)
    short = name.removeprefix(PREFIX)
    cls = getattr(kvpress, short, None)
    if not isinstance(cls, type) or not issubclass(cls, kvpress.BasePress):
        raise UsageError(f"unknown kvpress press {short!r}: use kvpress:<one of {', '.join(scorer_names())}>")
    why = _refusal(cls)
    if why:
        raise UsageError(f"{PREFIX}{short} {why}: use one of {', '.join(scorer_names())}")
    return cls


def setting_defaults(name: str) -> dict[str, Any]:
    """The settings press ``name`` takes (its dataclass fields but ``compression_ratio``) and ``rounding``."""
    fields = dataclasses.fields(press_class(name))
    own = {f.name: f.default for f in fields if f.init and f.name != "compression_ratio"}
    return {**own, "rounding": "floor"}


def make(name: str, **settings: Any) -> PressStrategy:
    """``make_strategy("kvpress:SnapKVPress", window_size=32)``: the press with those settings, as a strategy."""
    cls, defaults = press_class(name), setting_defaults(name)
    if "compression_ratio" in settings:
        raise UsageError(f"{name}: the ratio comes from ratio= (bench: ratios), not compression_ratio")
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise UsageError(f"{name} has no setting {', '.join(unknown)}: it takes {', '.join(defaults)}")
    rounding = settings.pop("rounding", "floor")
    try:
        press = cls(**settings)
    except (TypeError, ValueError, AssertionError) as exc:
        raise UsageError(f"{name}: {exc}") from None
    return PressStrategy(press=press, rounding=rounding)


def from_press(press: Any, ratio: float | None) -> tuple[PressStrategy, float | None]:
    """A press object given to ``ks.compress``: ``(strategy, ratio)``, the ratio being ``ratio`` or else
    the press's own ``compression_ratio``. Refuses two different ratios."""
    name = PREFIX + type(press).__name__
    press_class(name)
    own = getattr(press, "compression_ratio", 0.0)
    if ratio is not None and own and float(own) != float(ratio):
        raise UsageError(f"{name}: compression_ratio={own:g} and ratio={ratio:g} disagree: give one of them")
    return PressStrategy(press=copy.copy(press)), (ratio if ratio is not None else float(own))


@dataclass
class PressStrategy(Strategy):
    """A kvpress ``ScorerPress`` as a strategy (see the module docstring). ``press``: the press object (its
    ``compression_ratio`` is ignored: the ratio comes from ``keep(pre, ratio)``). Needs :func:`attached`
    around the prefill (bench and ``ks.compress`` do it)."""

    summary = "a kvpress press's own score (kvscope[kvpress])"

    press: Any = field(kw_only=True)
    rounding: str = "floor"

    def __post_init__(self) -> None:
        self.name = PREFIX + type(self.press).__name__
        super().__post_init__()
        if self.rounding != "floor":
            raise UsageError(f"{self.name}: rounding is kvpress's own (floor, at least 1 token), not {self.rounding!r}")
        self._recorder: Recorder | None = None

    def budget(self, n_positions: int, ratio: float) -> int:
        """kvpress's count: ``compute_n_kept`` (``max(1, int(n * (1 - ratio)))``); all ``n`` at ratio 0."""
        kvpress = _kvpress(self.name)
        return n_positions if ratio == 0 else kvpress.utils.compute_n_kept(n_positions, ratio)

    def scores(self, pre: Prefill, k: int) -> torch.Tensor:
        raise UsageError(f"{self.name} scores at a ratio (its score reads the ratio): use keep(pre, ratio)")

    def keep(self, pre: Prefill, ratio: float) -> torch.Tensor:
        """Keep plan ``[layer, kv_head, n]``: per layer, the press's score ``[1, kv_head, n]`` on the prompt's
        keys and values (model dtype) and recorded inputs, top ``budget(n, ratio)`` by ``torch.topk``."""
        n = pre.n_positions
        if ratio == 0:  # kvpress returns the cache unchanged without scoring
            return torch.ones(len(pre.keys), pre.keys[0].shape[1], n, dtype=torch.bool)
        inputs = self._inputs(pre)
        press = copy.copy(self.press)
        press.compression_ratio = ratio  # some scores read it (StreamingLLMPress)
        k, plans = self.budget(n, ratio), []
        with torch.inference_mode(), _rotary(self._recorder):
            for layer, (module, hidden, kwargs) in enumerate(inputs):
                plans.append(top_keep(self._score(press, layer, module, hidden, pre, kwargs)[0], k).cpu())
        return torch.stack(plans)

    def _score(self, press: Any, layer: int, module: Any, hidden, pre: Prefill, kwargs: dict) -> torch.Tensor:
        try:
            scores = press.score(module, hidden, pre.keys[layer], pre.values[layer], None, kwargs)
        except (AssertionError, RuntimeError, NotImplementedError, AttributeError, KeyError) as exc:
            raise KvscopeError(f"{self.name} failed to score layer {layer}: {exc}") from None
        if tuple(scores.shape) != tuple(pre.keys[layer].shape[:3]):
            raise KvscopeError(f"{self.name}: layer {layer} scores have shape {tuple(scores.shape)}")
        return scores

    def _inputs(self, pre: Prefill) -> list[tuple[Any, torch.Tensor, dict]]:
        if self._recorder is None:
            raise UsageError(
                f"{self.name} scores from the model's attention inputs: run it through kvscope bench or "
                "ks.compress, or prefill inside `with attached(model, [strategy])`"
            )
        return self._recorder.inputs(pre, self.name)

    def warnings(self, n_positions: int, ratio: float, layers: int | None = None) -> list[str]:
        return [*super().warnings(n_positions, ratio, layers), f"{self.name}: {CONVENTIONS}"]

    def settings(self) -> dict[str, Any]:
        """``{"press": "SnapKVPress", "window_size": 64, ..., "rounding": "floor"}`` (plain values only)."""
        own = {f.name: getattr(self.press, f.name) for f in dataclasses.fields(self.press) if f.init}
        own.pop("compression_ratio", None)
        plain = {k: v for k, v in own.items() if isinstance(v, (bool, int, float, str, type(None)))}
        return {"press": type(self.press).__name__, **plain, "rounding": self.rounding}

    @property
    def label(self) -> str:
        """``kvpress:SnapKVPress``, plus the press settings that differ from its defaults."""
        defaults = setting_defaults(self.name)
        changed = [f"{k}={v}" for k, v in self.settings().items() if k in defaults and v != defaults[k]]
        return f"{self.name}({', '.join(changed)})" if changed else self.name


class Recorder:
    """What each attention module received in the latest forward that started from an empty cache:
    ``hidden[layer]`` ``[batch, P, hidden]``, ``rope[layer]`` ``(cos, sin)`` ``[batch, P, head_dim]``, and
    the batch's ``ids`` ``[batch, P]`` with its left-padding ``pads`` per row."""

    def __init__(self, model: Any) -> None:
        from kvscope.archs import attention_modules

        self.model, self.modules = model, attention_modules(model)
        self.fresh, self.ids, self.pads = False, None, []
        self.hidden: dict[int, torch.Tensor] = {}
        self.rope: dict[int, Any] = {}

    @contextlib.contextmanager
    def hooks(self) -> Iterator[Recorder]:
        handles = [self.model.register_forward_pre_hook(self._model_hook, with_kwargs=True)]
        try:
            for layer, module in enumerate(self.modules):
                handles.append(module.register_forward_pre_hook(self._layer_hook(layer), with_kwargs=True))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _model_hook(self, _module: Any, args: tuple, kwargs: dict) -> None:
        from kvscope.compat import cache_keyword

        cache = kwargs.get(cache_keyword(self.model), kwargs.get("past_key_values"))
        self.fresh = cache is None or not int(cache.get_seq_length())
        if not self.fresh:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        self.ids = None if ids is None else ids.detach().cpu()
        two_d = isinstance(mask, torch.Tensor) and mask.ndim == 2
        self.pads = (mask == 0).sum(1).tolist() if two_d else [0] * (0 if ids is None else ids.shape[0])
        self.hidden, self.rope = {}, {}

    def _layer_hook(self, layer: int):
        def hook(_module: Any, args: tuple, kwargs: dict) -> None:
            if self.fresh:
                self.hidden[layer] = kwargs.get("hidden_states", args[0] if args else None).detach()
                self.rope[layer] = kwargs.get("position_embeddings")

        return hook

    def inputs(self, pre: Prefill, name: str) -> list[tuple[Any, torch.Tensor, dict]]:
        """Per layer ``(module, hidden [1, n, hidden], kwargs)`` for the row whose real tokens are
        ``pre.prompt_ids``; one-line ``KvscopeError`` when no recorded prefill holds them."""
        row = self._row(pre.prompt_ids)
        if row is None or len(self.hidden) != len(self.modules):
            raise KvscopeError(f"{name}: no prefill of these {pre.n_positions} tokens was recorded")
        b, pad = row
        n = pre.n_positions
        out = []
        for layer, module in enumerate(self.modules):
            rope = self.rope[layer]
            kwargs = {
                "position_embeddings": None if rope is None else tuple(t[b : b + 1, pad:] for t in rope),
                "cache_position": torch.arange(n, device=self.hidden[layer].device),
                "attention_mask": None,
            }
            out.append((module, self.hidden[layer][b : b + 1, pad:], kwargs))
        return out

    def _row(self, prompt_ids: torch.Tensor) -> tuple[int, int] | None:
        """``(row, pad)`` of the recorded batch whose real tokens equal ``prompt_ids`` ``[1, n]``."""
        if self.ids is None:
            return None
        want, total = prompt_ids[0].cpu(), self.ids.shape[1]
        for b, pad in enumerate(self.pads):
            if total - pad == want.shape[0] and torch.equal(self.ids[b, pad:], want):
                return b, int(pad)
        return None

    def rotary(self) -> Any:
        """The model's rotary embedding module (kvpress hands it to each attention module), or None."""
        inner = getattr(self.model, "model", self.model)
        inner = getattr(inner, "language_model", inner)
        return getattr(inner, "rotary_emb", None)


@contextlib.contextmanager
def _rotary(recorder: Recorder) -> Iterator[None]:
    """Each attention module gets the model's ``rotary_emb`` while scoring (as kvpress's ``__call__`` does;
    ``ExpectedAttentionPress`` reads it), removed again afterwards where the module had none."""
    rot, added = recorder.rotary(), []
    try:
        for module in recorder.modules if rot is not None else []:
            if not hasattr(module, "rotary_emb"):
                module.rotary_emb = rot
                added.append(module)
        yield
    finally:
        for module in added:
            del module.rotary_emb


@contextlib.contextmanager
def attached(model: Any, strategies: Iterable[Any]) -> Iterator[None]:
    """Record the attention inputs of ``model``'s prefills for every kvpress strategy among ``strategies``
    (one recorder shared by all; ``post_init_from_model`` called once each). Nothing without one."""
    presses = [s for s in strategies if isinstance(s, PressStrategy)]
    if not presses:
        yield
        return
    recorder = Recorder(model)
    for s in presses:
        s.press.post_init_from_model(model)
        s._recorder = recorder
    try:
        with recorder.hooks():
            yield
    finally:
        for s in presses:
            s._recorder = None
