"""Tiny random-weight models of eleven families, built in code from their real config classes.

Each has 2 layers (4 for the alternating-window Gemmas), 4 q_heads, 260 tokens (kvscope's byte
tokenizer) and a few thousand parameters, so every command runs on it in about a second. ``save``
writes one as a model folder (safetensors + tokenizer) that ``--model PATH`` loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COMMON = dict(vocab_size=260, bos_token_id=256, eos_token_id=257, pad_token_id=258, tie_word_embeddings=False)
LLAMA_LIKE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=1024,
    **COMMON,
)
GPT_LIKE = dict(n_embd=64, n_layer=2, n_head=4, n_positions=1024, **COMMON)
WINDOW = 8  # the sliding window of mistral, gemma2 and gemma3: shorter than the test prompts

# family -> (config class, model class, config kwargs); registries, not if/elif
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama3": ("LlamaConfig", "LlamaForCausalLM", LLAMA_LIKE),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", LLAMA_LIKE),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", LLAMA_LIKE),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", LLAMA_LIKE),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {**LLAMA_LIKE, "num_key_value_heads": 1}),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", GPT_LIKE),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {**LLAMA_LIKE, "pad_token_id": 258}),
    "gpt_bigcode": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", {**GPT_LIKE, "multi_query": True}),
    "gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        {
            **LLAMA_LIKE,
            "num_hidden_layers": 4,
            "sliding_window": WINDOW,
            "attn_logit_softcapping": 0.5,
            "final_logit_softcapping": None,
            "initializer_range": 0.2,
        },
    ),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {**LLAMA_LIKE, "num_hidden_layers": 4, "sliding_window": WINDOW, "sliding_window_pattern": 2},
    ),
    "mistral": ("MistralConfig", "MistralForCausalLM", {**LLAMA_LIKE, "sliding_window": WINDOW}),
}


def build(family: str, seed: int = 0) -> Any:
    """The tiny ``family`` model (float32, eval mode), weights drawn from ``seed``."""
    import torch
    import transformers

    cfg_name, model_name, kwargs = FAMILIES[family]
    cfg = getattr(transformers, cfg_name)(**kwargs)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    return getattr(transformers, model_name)(cfg).eval()


def save(family: str, folder: Path) -> Path:
    """Write the tiny ``family`` model and kvscope's byte tokenizer to ``folder`` (a ``--model`` path)."""
    from kvscope.models import byte_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    build(family).save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder
