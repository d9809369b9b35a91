"""Model configs checked before any weights are built: types, plausible sizes, no pickle weights.

``check_config`` refuses (``UsageError``, exit 2) a layer, head, size or vocabulary field that is not an
integer or lies outside ``CONFIG_LIMITS``; ``check_model_folder`` also refuses a local folder whose
weights are pickle only. ``INFO_LIMITS`` are the same bounds in ``ModelInfo``'s vocabulary, used when
a snapshot is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kvscope.errors import UsageError

# Plausibility bounds: 10x the largest published model per field, so a typo or a hostile config is
# refused before any weights are built. Largest published: 126 layers and 128 query heads
# (Llama-3.1-405B), hidden size 20,480 (Megatron-Turing NLG 530B), head_dim 256 (Gemma), vocabulary
# 262,144 (Gemma 3), MLP width 73,728 (PaLM 540B), context 10M tokens (Llama 4 Scout).
CONFIG_LIMITS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, 1_260),
    "num_attention_heads": (1, 1_280),
    "num_key_value_heads": (1, 1_280),
    "hidden_size": (1, 204_800),
    "head_dim": (1, 2_560),
    "vocab_size": (1, 2_621_440),
    "intermediate_size": (1, 737_280),
    "max_position_embeddings": (1, 100_000_000),
    # mixture of experts (largest published: 512 experts, 10 routed per token; Qwen3-Next)
    "num_local_experts": (0, 5_120),
    "num_experts_per_tok": (0, 5_120),
    "moe_intermediate_size": (0, 737_280),
}
_CONFIG_ALIASES = {
    "num_hidden_layers": ("n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("n_head", "num_heads"),
    "hidden_size": ("n_embd", "d_model"),
    "max_position_embeddings": ("n_positions",),
    "num_local_experts": ("num_experts", "n_routed_experts", "moe_num_experts"),
}
# The same bounds in ModelInfo's vocabulary (checked when a snapshot is read).
INFO_LIMITS: dict[str, tuple[int, int]] = {
    "layers": CONFIG_LIMITS["num_hidden_layers"],
    "q_heads": CONFIG_LIMITS["num_attention_heads"],
    "kv_heads": CONFIG_LIMITS["num_key_value_heads"],
    "head_dim": CONFIG_LIMITS["head_dim"],
    "hidden_size": CONFIG_LIMITS["hidden_size"],
    "vocab_size": CONFIG_LIMITS["vocab_size"],
    "max_positions": (0, CONFIG_LIMITS["max_position_embeddings"][1]),
    "parameters": (0, 20 * 10**12),
    "kv_bytes_per_token": (0, 2**40),
}
MAX_CONFIG_BYTES = 10 * 1024 * 1024
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_config(cfg: dict[str, Any], source: str) -> None:
    """Refuse an invalid or implausible HF config before any weights are built (``UsageError``).

    Checks the layer, head, size and vocabulary fields (under their usual names and aliases, in the
    text config of a multimodal model): integers (not strings, not booleans) within ``CONFIG_LIMITS``,
    ``num_key_value_heads`` dividing ``num_attention_heads``.
    """
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    values: dict[str, Any] = {}
    for key in CONFIG_LIMITS:
        for name in (key, *_CONFIG_ALIASES.get(key, ())):
            if text.get(name) is not None:
                values[key] = (name, text[name])
                break
    for key, (name, value) in values.items():
        low, high = CONFIG_LIMITS[key]
        if type(value) is not int:
            raise UsageError(f"invalid model config {source}: {name} is {value!r}, not an integer")
        if not low <= value <= high:
            why = (
                "must be at least 1"
                if value < low
                else f"is implausible (over {high:,}, 10x the largest published model)"
            )
            raise UsageError(f"invalid model config {source}: {name} = {value:,} {why}")
    if "num_key_value_heads" in values and "num_attention_heads" in values:
        q, kv = values["num_attention_heads"][1], values["num_key_value_heads"][1]
        if q % kv:
            raise UsageError(
                f"invalid model config {source}: num_attention_heads {q} is not a multiple of num_key_value_heads {kv}"
            )


def check_model_folder(path: Path) -> None:
    """A local model folder: a bounded, valid ``config.json`` and safetensors weights (never pickle)."""
    import json

    from kvscope.fileio import read_text_input

    if not path.is_dir():
        raise UsageError(f"model {path} is not a model folder (expected config.json and *.safetensors)", param="model")
    try:
        cfg = json.loads(read_text_input(path / "config.json", "model", limit=MAX_CONFIG_BYTES))
    except UsageError:
        raise
    except RecursionError:
        raise UsageError(f"invalid model config {path / 'config.json'}: JSON nested too deep") from None
    except ValueError as exc:
        raise UsageError(f"invalid model config {path / 'config.json'}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"invalid model config {path / 'config.json'}: not a JSON object")
    check_config(cfg, str(path / "config.json"))
    names = os.listdir(path)
    if not any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
        pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
        what = f"only pickle weights ({', '.join(pickles[:2])})" if pickles else "no *.safetensors weights"
        raise UsageError(
            f"model {path} holds {what}; kvscope loads safetensors only "
            "(pickle can run code): convert the weights with save_pretrained(safe_serialization=True)",
            param="model",
        )


def config_facts(cfg: Any) -> dict[str, Any]:
    """The one reader of a transformers config into attention facts (its text config for multimodal models).

    Returns ``layers``, ``q_heads``, ``kv_heads``, ``head_dim``, ``hidden_size``, ``vocab_size``,
    ``rope_theta`` (None without RoPE), ``max_positions`` (0 when unknown) and ``tied_embeddings``; used by
    ``kvscope.models.describe`` (a loaded model) and ``kvscope.memory`` (a config alone).
    """
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    q_heads = text.num_attention_heads
    rope = getattr(text, "rope_parameters", None) or {}
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    theta = theta if theta is not None else getattr(text, "rope_theta", None)
    return {
        "layers": text.num_hidden_layers,
        "q_heads": q_heads,
        "kv_heads": getattr(text, "num_key_value_heads", None) or q_heads,
        "head_dim": getattr(text, "head_dim", None) or text.hidden_size // q_heads,
        "hidden_size": text.hidden_size,
        "vocab_size": text.vocab_size,
        "rope_theta": float(theta) if theta is not None else None,
        "max_positions": int(getattr(text, "max_position_embeddings", 0) or 0),
        "tied_embeddings": bool(getattr(text, "tie_word_embeddings", False)),
    }


def check_layer(layer: int | None, n_layers: int) -> int:
    """The layer to inspect: ``layer`` when it is one of ``0..n_layers-1``, the middle layer for ``None``,
    else a one-line ``UsageError``. The one layer check of analyze and caching."""
    if layer is None:
        return n_layers // 2
    if not 0 <= layer < n_layers:
        raise UsageError(f"layer {layer} is out of range: the model has {n_layers} layers (0-{n_layers - 1})", "layer")
    return layer
