"""Turn a Hugging Face ``config.json`` into a model entry of the memory catalog.

Parameters are counted exactly by building the model on the meta device (no memory, no weights): tied
embeddings count once, and MoE active parameters are the total minus the unused share of every
``*.experts`` module (``1 - experts_per_token / experts``). Layer types come from the config's
``layer_types`` (full / sliding / linear attention); MLA from ``kv_lora_rank`` + ``qk_rope_head_dim``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from kvscope.configcheck import check_config, config_facts
from kvscope.errors import UsageError


def load_config(name: str, trust_remote_code: bool = False) -> Any:
    """A transformers config from a ``config.json`` path, a folder holding one, or a hub id."""
    from transformers import AutoConfig

    p = Path(name)
    if p.is_dir():
        p = p / "config.json"
    if p.suffix == ".json" or p.exists():
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read config {p}: {exc.strerror or exc}") from None
        except (ValueError, RecursionError) as exc:
            why = (str(exc).splitlines() or ["nested too deep"])[0][:160]
            raise UsageError(f"cannot parse config {p}: {why}") from None
        return config_from_dict(raw, str(p))
    from kvscope.models import hub_reachable

    try:  # without the hub, only the local cache is read (instead of minutes of retries)
        return AutoConfig.from_pretrained(
            name, trust_remote_code=trust_remote_code, local_files_only=not hub_reachable()
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot load config {name!r} (the hub may be unreachable; pass a path to a config.json): {first}"
        ) from None


def config_from_dict(raw: Any, where: str) -> Any:
    """A transformers config from a ``config.json``'s dict (``model_type`` picks the class)."""
    from transformers import AutoConfig

    if not isinstance(raw, dict) or "model_type" not in raw:
        raise UsageError(f"cannot parse config {where}: no 'model_type' key")
    check_config(raw, where)
    try:
        raw = dict(raw)
        return AutoConfig.for_model(raw.pop("model_type"), **raw)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot parse config {where}: {first}") from None


def display_name(name: str) -> str:
    """What the page and the catalog show for ``name``: a hub id as is, a local path as its folder name
    only (the page never embeds an absolute local path)."""
    p = Path(name)
    if not (p.suffix == ".json" or p.exists() or p.is_absolute() or name.startswith(".")):
        return name
    folder = p.parent if p.suffix == ".json" else p
    return folder.name or p.stem or "config"


def count_parameters(cfg: Any) -> tuple[int, int]:
    """(total, active) parameters of ``cfg`` built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(cfg)
            model.tie_weights()  # transformers 5.0's from_config on meta leaves tied embeddings untied
    except (ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError, RuntimeError) as exc:
        raise UsageError(
            f"cannot build model type {cfg.model_type!r} from its config: {str(exc).splitlines()[0][:160]}"
        ) from None
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    n_exp = _first(text, "num_local_experts", "n_routed_experts", "num_experts")
    top_k = _first(text, "num_experts_per_tok", "moe_topk")
    expert = 0
    for name, mod in model.named_modules():
        if name.endswith(".experts"):
            expert += sum(p.numel() for p in mod.parameters())
    inactive = round(expert * (1 - top_k / n_exp)) if (n_exp and top_k and expert) else 0
    return int(total), int(total - inactive)


def _first(cfg: Any, *names: str) -> Any:
    for n in names:
        v = getattr(cfg, n, None)
        if v:
            return v
    return None


def layer_counts(text: Any) -> dict[str, int]:
    """Layers by type: full, sliding (window attention) and linear (no per-token KV)."""
    types = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
    counts = {"full": 0, "sliding": 0, "linear": 0}
    for t in types:
        counts["sliding" if "sliding" in t else "linear" if ("linear" in t or "mamba" in t) else "full"] += 1
    if counts["sliding"] and not getattr(text, "sliding_window", None):
        counts["full"], counts["sliding"] = counts["full"] + counts["sliding"], 0
    return counts


def shipped_weight_dtype(cfg: Any) -> str | None:
    """ "fp8" when the config declares FP8 weights (``quantization_config.quant_method``), else None
    (the default, bf16)."""
    q = getattr(cfg, "quantization_config", None) or {}
    method = q.get("quant_method") if isinstance(q, dict) else getattr(q, "quant_method", None)
    return "fp8" if str(method).lower() == "fp8" else None


def model_from_config(name: str, trust_remote_code: bool = False) -> dict[str, Any]:
    """A catalog entry (see ``data/models.json``) for the config at ``name``."""
    return entry_from_config(load_config(name, trust_remote_code), name)


def entry_from_config(cfg: Any, name: str) -> dict[str, Any]:
    """A catalog entry for a transformers config object (parameters counted on the meta device)."""
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for field in ("num_hidden_layers", "num_attention_heads", "hidden_size"):
        value = getattr(text, field, None)
        if type(value) is not int or value < 1:
            raise UsageError(
                f"invalid model config {display_name(name)}: {field} = {value!r} must be an integer of at least 1"
            )
    total, active = count_parameters(cfg)
    facts = config_facts(cfg)
    kv_lora = getattr(text, "kv_lora_rank", None)
    counts = layer_counts(text)
    inter = getattr(text, "intermediate_size", None) or 4 * text.hidden_size
    shown = display_name(name)
    local = shown != name
    return {
        "id": shown,
        "name": shown,
        "hf_id": None if local else name,
        "layers": facts["layers"],
        "hidden": facts["hidden_size"],
        "q_heads": facts["q_heads"],
        "kv_heads": facts["kv_heads"],
        "head_dim": facts["head_dim"],
        "intermediate": int(inter),
        "vocab": facts["vocab_size"],
        "layer_types": counts,
        "sliding_window": getattr(text, "sliding_window", None) if counts["sliding"] else None,
        "mla": {"rank": kv_lora, "rope": text.qk_rope_head_dim} if kv_lora else None,
        "params_total": total,
        "params_active": active,
        "weight_dtype": shipped_weight_dtype(cfg),
        "tied_embeddings": facts["tied_embeddings"],
        "native_context": facts["max_positions"],
        "verified": True,
        "source": f"{'a local config.json' if local else name}; parameters counted on the meta device",
        "checked": datetime.date.today().isoformat(),
    }
