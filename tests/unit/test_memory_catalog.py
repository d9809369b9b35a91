"""Catalogs: required entries, provenance, consistency; names and nearest-name errors."""

from __future__ import annotations

import re

import pytest

from kvscope.errors import UsageError
from kvscope.memory import catalog

REQUIRED_GPUS = [
    "a100-40gb",
    "a100-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h200",
    "b200",
    "mi300x",
    "l4",
    "l40s",
    "rtx-4090",
    "t4",
]
REQUIRED_MODELS = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "llama-2-7b",
    "mistral-7b",
    "mixtral-8x7b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "qwen3-4b",
    "qwen3-8b",
    "qwen3-32b",
    "gemma-2-9b",
    "gemma-2-27b",
    "deepseek-v3",
    "gpt-3-175b",
    "tinyllama-1.1b",
    "smollm2-135m",
]
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def test_required_entries_present_with_source_and_date():
    gpus, models = catalog.gpus(), catalog.models()
    assert set(REQUIRED_GPUS) <= set(gpus) and set(REQUIRED_MODELS) <= set(models)
    for entry in [*gpus.values(), *models.values()]:
        assert entry["source"] and DATE.match(entry["checked"]) and isinstance(entry["verified"], bool)


def test_hbm_stacks_active_and_sites():
    g = catalog.gpus()
    assert [g[n]["hbm"] for n in ("a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie")] == [{"active": 5, "sites": 6}] * 4
    assert g["h200"]["hbm"] == {"active": 6, "sites": 6} and g["b200"]["hbm"]["active"] == 8
    assert g["mi300x"]["hbm"]["active"] == 8
    for name in ("l4", "l40s", "rtx-4090", "t4"):
        assert "hbm" not in g[name] and g[name]["gddr_chips"] > 0


def test_visible_mib_differs_from_marketed_gb():
    g = catalog.gpus()["h100-sxm"]
    assert g["memory_gb"] == 80 and g["visible_mib"] == 81_559  # 79.65 GiB


def test_model_layer_types_add_up_and_moe_active_below_total():
    for m in catalog.models().values():
        lt = m["layer_types"]
        assert lt["full"] + lt["sliding"] + lt["linear"] == m["layers"]
        assert (lt["sliding"] > 0) == (m["sliding_window"] is not None)
        assert 0 < m["params_active"] <= m["params_total"]
    ds = catalog.models()["deepseek-v3"]
    assert ds["mla"] == {"rank": 512, "rope": 64} and round(ds["params_active"] / 1e9) == 38


def test_lookup_by_name_case_and_hub_id():
    assert catalog.gpu("H100 SXM")["id"] == "h100-sxm"
    assert catalog.model("meta-llama/Llama-3.1-8B")["id"] == "llama-3.1-8b"
    assert catalog.model("Qwen3-4B")["id"] == "qwen3-4b"


def test_unknown_names_list_nearest():
    with pytest.raises(UsageError, match="did you mean h100-sxm"):
        catalog.gpu("h100-sxn")
    with pytest.raises(UsageError, match="unknown model 'lama-3.1-8b': did you mean llama-3.1-8b"):
        catalog.model("lama-3.1-8b")


def test_page_data_carries_catalogs_and_tables():
    d = catalog.page_data()
    assert {g["id"] for g in d["gpus"]} == set(catalog.gpus())
    assert d["kv_dtypes"]["int4"]["group"] == 32 and d["defaults"]["page"] == 16
