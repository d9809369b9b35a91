"""Measured pruning potential: the perplexity change of evicting each layer, or each kv_head of each
layer, alone (every prompt position of it), on one prefill."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kvscope.errors import UsageError
from kvscope.kit.results import ResultMixin
from kvscope.models import ModelInfo
from kvscope.progress import track
from kvscope.prune.default_texts import DEFAULT_CONTINUATION, DEFAULT_PROMPT
from kvscope.prune.evict import Prefill, prefill, structural_keep
from kvscope.prune.lab import Plan, measure

KINDS = ("layers", "heads")


@dataclass(repr=False)
class ScanResult(ResultMixin):
    """``ppl`` and ``ppl_change_pct`` are ``[layer]`` (kind ``"layers"``) or ``[layer, kv_head]``;
    ``predicted_potential``: analyze's predicted pruning potential for the same prompt (same shape)."""

    kind: str
    model: str
    baseline_ppl: float
    ppl: np.ndarray
    ppl_change_pct: np.ndarray
    prompt_tokens: int
    scored_tokens: int
    predicted_potential: np.ndarray | None = None
    predicted_definition: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def command(self) -> str:
        return f"prune --scan {self.kind}"

    def summary(self) -> list[tuple[str, Any]]:
        return [
            ("kind", self.kind),
            ("model", self.model),
            ("baseline_ppl", f"{self.baseline_ppl:.3f}"),
            ("largest_change", _largest(np.asarray(self.ppl_change_pct, dtype=np.float64))),
            ("prompt_tokens", self.prompt_tokens),
        ]

    def figures(self) -> dict[str, Any]:
        from kvscope.prune.prune_figures import scan_figure

        fig = scan_figure(self, self.predicted_potential, self.predicted_definition)
        return {f"prune_scan_{self.kind}": fig}

    def write(self, folder: Path) -> list[str]:
        """``prune_scan_<kind>.json`` and ``.png`` (measured beside analyze's predicted potential)."""
        from kvscope.fileio import write_json
        from kvscope.kit.figures import save_figures

        write_json(folder / f"prune_scan_{self.kind}.json", self.to_dict())
        return [f"prune_scan_{self.kind}.json", *save_figures(self.figures(), folder)]


def _largest(change: np.ndarray) -> str:
    """``"+12.3 % at (layer,)"`` (or ``(layer, kv_head)``): the largest perplexity change and where."""
    if not change.size or not np.isfinite(change).any():
        return "n/a"
    where = np.unravel_index(int(np.nanargmax(change)), change.shape)
    return f"{np.nanmax(change):+.1f} % at {tuple(int(i) for i in where)}"


def encode_texts(
    tokenizer: Any, info: ModelInfo, prompt: str | None, continuation: str | None, truncate: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[1, P]`` and ``[1, C]``; the continuation needs at least 2 tokens to score one."""
    from kvscope.capture.capturing import encode_prompt

    ids = encode_prompt(tokenizer, prompt if prompt is not None else DEFAULT_PROMPT, info.max_positions, truncate)
    text = continuation if continuation is not None else DEFAULT_CONTINUATION
    if not text or not text.strip():
        raise UsageError("continuation is empty: give a text of at least two tokens", param="continuation")
    cont = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    if cont.shape[1] < 2:
        raise UsageError("the continuation must have at least two tokens (the first is predicted before pruning)")
    if info.max_positions and ids.shape[1] + cont.shape[1] > info.max_positions:
        raise UsageError(
            f"prompt + continuation are {ids.shape[1] + cont.shape[1]} tokens; the model takes "
            f"at most {info.max_positions}"
        )
    return ids, cont


def scan(
    model: Any,
    tokenizer: Any,
    info: ModelInfo,
    kind: str = "layers",
    prompt: str | None = None,
    continuation: str | None = None,
    pre: Prefill | None = None,
    cont_ids: torch.Tensor | None = None,
    quiet: bool = False,
) -> ScanResult:
    """Evict each layer (or each (layer, kv_head)) alone and measure the continuation perplexity
    (progress on stderr in a terminal unless ``quiet``)."""
    if kind not in KINDS:
        raise UsageError(f"unknown scan kind {kind!r}: use layers or heads")
    if pre is None or cont_ids is None:
        ids, cont_ids = encode_texts(tokenizer, info, prompt, continuation)
        pre = prefill(model, tokenizer, info, ids)
    base = measure(model, pre, cont_ids, Plan("baseline")).ppl
    n = pre.n_positions
    shape = (info.layers,) if kind == "layers" else (info.layers, info.kv_heads)
    ppl = np.zeros(shape)
    for index in track(list(np.ndindex(*shape)), f"scan {kind}", quiet=quiet):
        heads = [index[1]] if kind == "heads" else None
        keep = structural_keep(info, n, [index[0]], heads)
        ppl[index] = measure(model, pre, cont_ids, Plan(str(index), keep)).ppl
    predicted, definition = _predicted(pre, kind)
    return ScanResult(
        kind, info.name, base, ppl, 100.0 * (ppl - base) / base, n, int(cont_ids.shape[1]) - 1, predicted, definition
    )


def _predicted(pre: Prefill, kind: str) -> tuple[np.ndarray | None, str]:
    """Analyze's predicted pruning potential for the same prompt."""
    from kvscope.analyze.pruning_potential import pruning_potential

    pot = pruning_potential(pre.snapshot)
    return (pot.layer if kind == "layers" else pot.head), pot.definition
