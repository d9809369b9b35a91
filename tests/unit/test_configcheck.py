"""Model configs are checked before any weights are built: real configs pass, broken or implausible ones
are refused with the field named."""

from __future__ import annotations

import pytest

from kvscope.configcheck import check_config
from kvscope.errors import UsageError

# Published configs at the top of each range must pass (Llama-3.1-405B, Gemma-3-27B text config, GPT-2 names).
LLAMA_405B = {
    "num_hidden_layers": 126,
    "num_attention_heads": 128,
    "num_key_value_heads": 8,
    "hidden_size": 16384,
    "intermediate_size": 53248,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
}
GEMMA3 = {
    "model_type": "gemma3",
    "text_config": {
        "num_hidden_layers": 62,
        "num_attention_heads": 32,
        "num_key_value_heads": 16,
        "head_dim": 128,
        "hidden_size": 5376,
        "vocab_size": 262208,
    },
}
GPT2 = {"n_layer": 12, "n_head": 12, "n_embd": 768, "vocab_size": 50257, "n_positions": 1024}


@pytest.mark.parametrize("cfg", [LLAMA_405B, GEMMA3, GPT2], ids=["llama405b", "gemma3", "gpt2"])
def test_published_configs_pass(cfg):
    check_config(cfg, "cfg")


@pytest.mark.parametrize(
    "change,fragment",
    [
        ({"num_hidden_layers": 0}, "num_hidden_layers = 0 must be at least 1"),
        ({"num_hidden_layers": 1261}, "num_hidden_layers = 1,261 is implausible"),
        ({"num_attention_heads": "128"}, "num_attention_heads is '128', not an integer"),
        ({"num_key_value_heads": 7}, "not a multiple of num_key_value_heads 7"),
        ({"hidden_size": -1}, "hidden_size = -1 must be at least 1"),
        ({"intermediate_size": 10**7}, "intermediate_size = 10,000,000 is implausible"),
        ({"max_position_embeddings": None, "vocab_size": 0}, "vocab_size = 0"),
    ],
)
def test_broken_configs_are_refused_with_the_field(change, fragment):
    with pytest.raises(UsageError, match="invalid model config cfg") as err:
        check_config({**LLAMA_405B, **change}, "cfg")
    assert fragment in str(err.value)


def test_aliases_and_nested_text_configs_are_checked():
    with pytest.raises(UsageError, match="n_layer = 200,000"):
        check_config({**GPT2, "n_layer": 200_000}, "cfg")
    with pytest.raises(UsageError, match="head_dim = 0"):
        check_config({"text_config": {**GEMMA3["text_config"], "head_dim": 0}}, "cfg")
