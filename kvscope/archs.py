"""What each layer's attention is, read from the model's attention interface (not from module names).

Every transformers decoder kvscope supports routes attention through ``AttentionInterface``: a module
with a ``layer_idx`` calls ``attention(module, query, key, value, mask, scaling=..., softcap=...,
sliding_window=...)`` with post-RoPE (and post q/k-norm) ``query [b, q_head, q, head_dim]`` and the
cache's ``key``/``value`` ``[b, kv_head, k, head_dim]``. So fused projections (GPT-2's ``c_attn``,
Phi-3's ``qkv_proj``), multi-query attention (GPT-BigCode) and grouped-query attention all look the
same from there. This module gives, per layer, the facts the engine needs before the first call:

- ``scaling``: the factor on ``q·k`` (the module's ``scaling``);
- ``softcap``: logit soft-capping ``tanh(s / c) * c`` (Gemma 2, ``attn_logit_softcapping``) or None;
- ``window``: the sliding window in tokens (a query at position ``p`` sees keys ``p - window < j <= p``)
  or None for full attention; read from the cache layout transformers builds from the config;
- ``held(n)``: positions the model's cache holds after a prefill of ``n`` tokens (``window - 1`` for a
  sliding layer, as transformers' sliding cache keeps them; ``n`` otherwise).

``refusal(config)`` says, from a config alone (before any weights load), why a model cannot be run by
the engine, or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvscope.errors import KvscopeError

SUPPORTED_LAYER_TYPES = ("full_attention", "sliding_attention")


@dataclass(frozen=True)
class LayerAttention:
    """One layer's attention facts (see the module docstring); ``module`` is the attention module."""

    layer: int
    module: Any
    scaling: float
    softcap: float | None
    window: int | None
    layer_type: str

    def held(self, n: int) -> int:
        """Positions this layer's cache holds after ``n`` tokens: ``min(n, window - 1)`` or ``n``."""
        return min(n, self.window - 1) if self.window else n


def attention_modules(model: Any) -> list[Any]:
    """The self-attention modules (a ``layer_idx`` and a class named ``*Attention``), by ``layer_idx``."""
    found = {
        m.layer_idx: m
        for m in model.modules()
        if type(m).__name__.endswith("Attention") and isinstance(getattr(m, "layer_idx", None), int)
    }
    if not found:
        raise KvscopeError(f"{type(model).__name__}: no attention modules with a layer_idx found")
    return [found[i] for i in sorted(found)]


def text_config(config: Any) -> Any:
    """The decoder's config (the text config of a multimodal model)."""
    if hasattr(config, "get_text_config"):
        return config.get_text_config(decoder=True)
    return config


def layer_types(config: Any) -> list[str]:
    """``[layer]`` attention type, as transformers lays out the cache: ``full_attention``,
    ``sliding_attention``, ``chunked_attention`` ..."""
    try:
        from transformers.cache_utils import get_layer_types_and_kwargs
    except ImportError:  # transformers < 5.2: DynamicCache(config=) applies this rule itself
        return _layer_types_before_5_2(text_config(config))
    return list(get_layer_types_and_kwargs(text_config(config))[0])


def _layer_types_before_5_2(cfg: Any) -> list[str]:
    """The rule of ``DynamicCache.__init__`` in transformers 5.0/5.1: ``layer_types`` when the config has it,
    else every layer sliding when it names a window (or chunk size), else every layer full."""
    types = getattr(cfg, "layer_types", None)
    if types is None:
        windowed = (getattr(cfg, "sliding_window", None) or getattr(cfg, "attention_chunk_size", None)) is not None
        types = ["sliding_attention" if windowed else "full_attention"] * cfg.num_hidden_layers
    return list(types)


def layer_windows(config: Any) -> list[int | None]:
    """``[layer]`` sliding window in tokens, None for a full-attention layer."""
    window = getattr(text_config(config), "sliding_window", None)
    return [window if t == "sliding_attention" else None for t in layer_types(config)]


def layer_attention(model: Any) -> list[LayerAttention]:
    """Per-layer attention facts of a loaded model, in layer order."""
    cfg = text_config(model.config)
    softcap = getattr(cfg, "attn_logit_softcapping", None) or None
    types, windows = layer_types(model.config), layer_windows(model.config)
    out = []
    for m in attention_modules(model):
        i = m.layer_idx
        scaling = float(getattr(m, "scaling", None) or getattr(m, "head_dim", cfg.hidden_size) ** -0.5)
        out.append(LayerAttention(i, m, scaling, softcap, windows[i], types[i]))
    return out


def config_before_loading(name: str, trust_remote_code: bool = False) -> Any:
    """The transformers config of model ``name`` read without any weights: a local folder's config.json
    or a hub id's config already in the local cache; None for the built-in names or when not at hand. A local
    folder is checked first (``configcheck.check_model_folder``: size, JSON, plausible sizes, safetensors)."""
    from pathlib import Path

    if name in ("tiny", "embedded"):
        return None
    local = bool(name) and Path(name).is_dir()  # '' is the working folder to Path, never a model name
    if local:  # bounded and plausible first: transformers walks every layer of the config it builds
        from kvscope.configcheck import check_model_folder

        check_model_folder(Path(name))
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, local_files_only=not local)
    except Exception:  # not cached, not a model: the load itself reports it
        return None


def refuse_before_loading(name: str, *checks: Any, trust_remote_code: bool = False) -> None:
    """``UsageError`` (exit 2, one line) when :func:`refusal` or any of ``checks`` (``config -> reason or
    None``) refuses model ``name``'s config, before its weights load."""
    from kvscope.errors import UsageError

    config = config_before_loading(name, trust_remote_code)
    if config is None:
        return
    for check in (refusal, *checks):
        why = check(config)
        if why:
            raise UsageError(f"model {name}: {why}")


def refusal(config: Any) -> str | None:
    """Why the engine cannot run a model with ``config`` (one line), or None when it can."""
    cfg = text_config(config)
    if getattr(cfg, "is_encoder_decoder", False):
        return f"{cfg.model_type} is an encoder-decoder; kvscope handles decoder-only causal LMs"
    try:
        types = layer_types(config)
    except Exception:  # an unusual config: let the load itself decide
        return None
    odd = sorted(set(types) - set(SUPPORTED_LAYER_TYPES))
    if odd:
        return (
            f"{cfg.model_type} has {odd[0]} layers, whose cache is not a per-token KV cache kvscope can evict "
            f"from (supported: {', '.join(SUPPORTED_LAYER_TYPES)})"
        )
    return None
