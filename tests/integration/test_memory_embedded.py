"""The measured check: a real DynamicCache from the embedded model holds exactly the bytes the formula
predicts from its config (and from the catalog's SmolLM2-135M entry)."""

from __future__ import annotations

import pytest
import torch

from kvscope.hfcache import cache_nbytes
from kvscope.memory import catalog
from kvscope.memory import formulas as f
from kvscope.memory.hfconfig import entry_from_config


@pytest.mark.embedded
def test_dynamic_cache_bytes_equal_the_formula(embedded):
    model, tok, info = embedded
    entry = entry_from_config(model.config, "embedded")
    assert entry["params_total"] == info.parameters == catalog.models()["smollm2-135m"]["params_total"]
    from transformers import DynamicCache

    ids = torch.randint(0, info.vocab_size, (1, 37))
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(ids, past_key_values=cache, use_cache=True)
        model(ids[:, :5], past_key_values=cache, use_cache=True)  # decode 5 more: 42 tokens
    n = 42
    measured = cache_nbytes(cache)
    assert measured == f.seq_kv_bytes(entry, "fp32", n) == 30 * 2 * 3 * 64 * 4 * n
    assert measured == f.seq_kv_bytes(catalog.models()["smollm2-135m"], "fp32", n)
