"""``estimate_memory``: the library entry point of ``kvscope memory`` (the CLI is a thin client of it).

    >>> import kvscope as ks
    >>> est = ks.estimate_memory("llama-3.1-8b", "h100-sxm", batch=1, context=131_072)
    >>> est.kv_bytes / 2**30
    16.0

``model`` is a catalog name, a path to a ``config.json`` (or its folder), a hub id, a config dict, a
transformers config or a loaded model (its ``.config``). Counting a config imports torch (meta device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvscope.errors import ParameterTypeError, UsageError, expect
from kvscope.kit.results import ResultMixin
from kvscope.memory.settings import MemorySettings as S

GIB = 2**30


@dataclass(repr=False)
class MemoryEstimate(ResultMixin):
    """Every number of one state (``numbers``: see ``kvscope.memory.budget.compute``) with its inputs.

    ``kv_bytes`` is the KV cache for every slot full (batch x context); ``kv_peak_bytes`` the most the
    workload reserves at once; ``gpus_required`` rests on the peak. Bytes are exact; GiB = 2**30 bytes.
    """

    model: dict[str, Any]
    gpu: dict[str, Any]
    options: dict[str, Any]
    numbers: dict[str, Any]
    slots: list[dict[str, Any]] = field(repr=False, default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def capacity(self) -> dict[str, Any]:
        return self.numbers["capacity"]

    @property
    def kv_bytes(self) -> int:
        return self.capacity["kv_full_bytes"]

    @property
    def kv_peak_bytes(self) -> int:
        return self.capacity["kv_peak_bytes"]

    @property
    def gpus_required(self) -> int | None:
        return self.capacity["gpus_required"]

    @property
    def efficiency(self) -> float:
        """KV token-steps of running requests / token-steps reserved, over the whole run."""
        return self.numbers["run_efficiency"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: catalog entries, options and every number (without the per-slot states)."""
        return {"model_entry": self.model, "gpu_entry": self.gpu, **self.numbers}

    command = "memory"

    def summary(self) -> list[tuple[str, Any]]:
        o, cap = self.options, self.capacity
        return [
            ("model", self.model["name"]),
            ("gpu", self.gpu["name"]),
            ("tokens", f"{o['batch']:,} x {o['context']:,} ({o['mode']})"),
            ("kv", fmt_bytes(cap["kv_full_bytes"])),
            ("peak", fmt_bytes(cap["kv_peak_bytes"])),
            ("gpus", cap["gpus_required"]),
        ]

    def details(self) -> list[tuple[str, str]]:
        """The headline as (name, value) rows."""
        o, cap = self.options, self.capacity
        gpus = str(cap["gpus_required"]) if cap["gpus_required"] else "none with tensor parallelism alone"
        return [
            ("model / GPU", f"{self.model['name']} on {self.gpu['name']}"),
            (f"KV for {o['batch']:,} x {o['context']:,}", fmt_bytes(cap["kv_full_bytes"])),
            ("KV at the peak", f"{fmt_bytes(cap['kv_peak_bytes'])} ({cap['basis']})"),
            ("weights", fmt_bytes(self.numbers["weights_bytes"])),
            (f"GPUs required (peak, {cap['fit_fraction']:.0%} of each)", gpus),
            ("efficiency over the run", f"{self.efficiency:.1%} ({o['mode']})"),
        ]

    def notes(self) -> list[str]:
        return list(self.warnings)

    def write(self, folder: Path) -> list[str]:
        """``memory.json``: every number (``kvscope memory --json`` prints the same document)."""
        from kvscope.fileio import write_json

        write_json(folder / "memory.json", self.to_dict())
        return ["memory.json"]


def fmt_params(n: float) -> str:
    """A parameter count with a unit that keeps a digit: '8.03 B', '135 M', '20.6 K', '512'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:,.{2 if n < 10 * size else 1 if n < 100 * size else 0}f} {unit}"
    return f"{n:,.0f}"


def budget_text(available: float) -> str:
    """vLLM's available KV memory, or that none is left ('does not fit'), never '0.00 KiB'."""
    if available > 0:
        return fmt_bytes(available)
    return f"none: does not fit (weights and overheads exceed the budget by {fmt_bytes(-available)})"


def fmt_bytes(b: float) -> str:
    """Binary units with thousands separators: '16.00 GiB', '1.25 TiB', '131,070.00 GiB' never."""
    for unit, size in (("TiB", 2**40), ("GiB", GIB), ("MiB", 2**20), ("KiB", 1024)):
        if abs(b) >= size:
            return f"{b / size:,.2f} {unit}"
    return f"{b:,.0f} B"


def _range(name: str, value: Any, low: float, high: float, integer: bool = True) -> Any:
    """``value`` within ``[low, high]``; a wrong type is a ``ParameterTypeError``, a bad value a ``UsageError``,
    each naming the parameter (the CLI prints its ``--flag`` in its place)."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ParameterTypeError(
            f"{name} must be {'an integer' if integer else 'a number'}, got {_shown(value)}", param=name
        )
    if not integer and not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number (got {value!r})", param=name)
    if not low <= value <= high:
        raise UsageError(f"{name} must be between {low:,} and {high:,} (got {value:,})", param=name)
    return value


def _choice(name: str, value: Any, valid: list[str]) -> str:
    if not isinstance(value, str):
        raise ParameterTypeError(
            f"{name} must be a string (one of {', '.join(valid)}), got {_shown(value)}", param=name
        )
    if value not in valid:
        raise UsageError(f"{name} {value!r} is not valid: use one of {', '.join(valid)}", param=name)
    return value


def _shown(value: Any) -> str:
    return (repr(value) if isinstance(value, (str, int, float, type(None))) else type(value).__name__)[:80]


def build_options(
    *,
    batch: int,
    context: int,
    tokens: int | None,
    kv_dtype: str,
    weight_dtype: str | None,
    mode: str,
    flash: bool,
    tp: int,
    page: int,
    engine: str | None,
    keep_sliding: bool,
    gpu_memory_utilization: float,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    activation_gib: float | None,
    cuda_graph_gib: float | None,
) -> tuple[dict, list[str]]:
    """Validated options (``formulas.DEFAULTS`` keys); a bad value raises ``UsageError``. Needs no model,
    so every option is checked before a config is read or counted. ``weight_dtype`` None stays None
    (the model's own, ``formulas.default_weight_dtype``, is filled in once the model is known)."""
    from kvscope.memory import formulas as f

    lim, weights = f.ENGINE_LIMITS, list(f.WEIGHT_DTYPES)
    _range("batch", batch, 1, f.MAX_BATCH)
    _range("context", context, 1, f.MAX_CONTEXT)
    _range("tp", tp, 1, f.MAX_TP)
    _range("page", page, 1, 4096)
    if tokens is not None:
        _range("tokens", tokens, 0, context)
    _range("gpu_memory_utilization", gpu_memory_utilization, *lim["gpu_memory_utilization"], integer=False)
    _range("max_num_batched_tokens", max_num_batched_tokens, *lim["max_num_batched_tokens"])
    _range("max_num_seqs", max_num_seqs, *lim["max_num_seqs"])
    for name, v in (("activation_gib", activation_gib), ("cuda_graph_gib", cuda_graph_gib)):
        if v is not None:
            _range(name, v, *lim[name], integer=False)
    for name, v in (("flash", flash), ("keep_sliding", keep_sliding)):
        expect(v, bool, name, "True or False")
    return f.normalize(
        {
            "batch": batch,
            "context": context,
            "tokens": tokens,
            "kv_dtype": _choice("kv_dtype", kv_dtype, list(f.KV_DTYPES)),
            "weight_dtype": None if weight_dtype is None else _choice("weight_dtype", weight_dtype, weights),
            "mode": _choice("mode", mode, list(f.MODES)),
            "flash": bool(flash),
            "tp": tp,
            "page": page,
            "engine": _choice("engine", engine, list(f.ENGINES)) if engine is not None else None,
            "free_sliding": not keep_sliding,
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "max_num_batched_tokens": max_num_batched_tokens,
            "max_num_seqs": max_num_seqs,
            "activation_gib": activation_gib,
            "cuda_graph_gib": cuda_graph_gib,
        }
    )


def warnings_for(model: dict, opts: dict) -> list[str]:
    """What is allowed but probably not meant: a context above the native window, tp not dividing heads."""
    out, native = [], model.get("native_context") or 0
    if native and opts["context"] > native:
        out.append(f"context {opts['context']:,} is above {model['name']}'s native window of {native:,} tokens")
    if model["q_heads"] % opts["tp"]:
        out.append(f"tp {opts['tp']} does not divide {model['q_heads']} query heads; engines such as vLLM refuse this")
    return out


def resolve_model(model: Any, trust_remote_code: bool = False) -> dict[str, Any]:
    """A catalog entry for ``model`` (see the module docstring for what it may be)."""
    from kvscope.memory import catalog

    expect(trust_remote_code, bool, "trust_remote_code", "True or False")
    if isinstance(model, str):
        return catalog.model(model, trust_remote_code=trust_remote_code)
    if isinstance(model, dict) and "layer_types" in model and "params_total" in model:
        return dict(model)  # already a catalog entry
    from kvscope.memory.hfconfig import config_from_dict, entry_from_config

    cfg = getattr(model, "config", model)
    if isinstance(cfg, dict):
        cfg = config_from_dict(cfg, "config dict")
    if not hasattr(cfg, "num_hidden_layers") and not hasattr(cfg, "get_text_config"):
        raise ParameterTypeError(
            f"model must be a catalog name, a config path, a config dict or a transformers config/model, "
            f"got {_shown(model)}",
            param="model",
        )
    return entry_from_config(cfg, getattr(cfg, "_name_or_path", "") or getattr(cfg, "model_type", "model"))


def resolve_gpu(gpu: Any) -> dict[str, Any]:
    from kvscope.memory import catalog

    if isinstance(gpu, dict):
        return dict(gpu)
    expect(gpu, str, "gpu", "a catalog name such as 'h100-sxm' or a GPU dict")
    return catalog.gpu(gpu)


def estimate_memory(
    model: Any = S.model_name,
    gpu: Any = S.gpu_name,
    batch: int = S.batch,
    context: int = S.context,
    *,
    tokens: int | None = None,
    kv_dtype: str = S.kv_dtype,
    weight_dtype: str | None = None,
    mode: str = S.mode,
    flash: bool = S.flash,
    tp: int = S.tp,
    page: int = S.page,
    engine: str | None = None,
    keep_sliding: bool = False,
    gpu_memory_utilization: float = S.gpu_memory_utilization,
    max_num_batched_tokens: int = S.max_num_batched_tokens,
    max_num_seqs: int = S.max_num_seqs,
    activation_gib: float | None = None,
    cuda_graph_gib: float | None = None,
    trust_remote_code: bool = False,
) -> MemoryEstimate:
    """GPU memory of serving ``model`` on ``gpu``: weights, KV for batch x context and at the workload's
    peak, GPUs required, efficiency of static / continuous batching / paging, FlashAttention's transient
    workspace and, with ``engine="vllm"``, the KV budget vLLM would log at start-up. Pure: no I/O.
    ``weight_dtype`` None is the dtype the model ships in (``fp8`` for DeepSeek-V3, else ``bf16``)."""
    from kvscope.memory import formulas as f
    from kvscope.memory.budget import compute

    opts = build_options(
        batch=batch,
        context=context,
        tokens=tokens,
        kv_dtype=kv_dtype,
        weight_dtype=weight_dtype,
        mode=mode,
        flash=flash,
        tp=tp,
        page=page,
        engine=engine,
        keep_sliding=keep_sliding,
        gpu_memory_utilization=gpu_memory_utilization,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
        activation_gib=activation_gib,
        cuda_graph_gib=cuda_graph_gib,
    )
    g = resolve_gpu(gpu)  # names before the config: an unknown GPU never waits for torch
    m = resolve_model(model, trust_remote_code)
    if opts["weight_dtype"] is None:
        opts["weight_dtype"] = f.default_weight_dtype(m)
    warnings = warnings_for(m, opts)
    numbers = compute(m, g, opts)
    slots = numbers.pop("slots")
    return MemoryEstimate(model=m, gpu=g, options=opts, numbers=numbers, slots=slots, warnings=warnings)
