"""kvscope.memory.formulas against values worked by hand (reference: gpu_memory.md, sections B3 and C2)."""

from __future__ import annotations

import math

import pytest

from kvscope.memory import budget as b
from kvscope.memory import catalog
from kvscope.memory import formulas as f

GIB = 2**30
M = catalog.models()
G = catalog.gpus()


def test_llama_3_1_8b_bytes_per_token_and_128k():
    m = M["llama-3.1-8b"]
    assert f.kv_bytes_per_token(m, "bf16") == 2 * 32 * 8 * 128 * 2 == 131_072
    assert f.seq_kv_bytes(m, "bf16", 131_072) == 16 * GIB


def test_deepseek_v3_mla_stores_rank_plus_rope_per_layer():
    m = M["deepseek-v3"]
    assert f.kv_bytes_per_token(m, "bf16") == (512 + 64) * 61 * 2 == 70_272
    assert f.kv_share(m, 8) == 1.0  # one latent per layer: replicated on every rank


def test_qwen3_uses_explicit_head_dim_not_hidden_over_heads():
    m = M["qwen3-4b"]
    assert m["head_dim"] == 128 and m["hidden"] // m["q_heads"] == 80
    assert f.kv_bytes_per_token(m, "bf16") == 147_456
    assert f.kv_bytes_per_token(M["qwen3-32b"], "bf16") == 262_144


def test_gemma2_9b_head_dim_256_and_sliding_layers_capped_at_window():
    m = M["gemma-2-9b"]
    assert m["head_dim"] == 256 and m["layer_types"] == {"full": 21, "sliding": 21, "linear": 0}
    per_layer = 2 * 8 * 256 * 2
    assert f.kv_bytes_per_token(m, "bf16") == 42 * per_layer == 344_064
    n = 131_072
    assert f.seq_kv_bytes(m, "bf16", n) == per_layer * (21 * n + 21 * 4096)
    assert f.seq_kv_bytes(m, "bf16", n, free_sliding=False) == 42 * per_layer * n == 42 * GIB
    assert f.seq_kv_bytes(m, "bf16", 1000) == 42 * per_layer * 1000  # under the window: no cap


@pytest.mark.parametrize(
    "model,expected",
    [
        ("llama-3.1-70b", 327_680),
        ("llama-3.1-405b", 516_096),
        ("qwen2.5-7b", 57_344),
        ("tinyllama-1.1b", 22_528),
        ("smollm2-135m", 23_040),
        ("gpt-3-175b", 4_718_592),
    ],
)
def test_catalog_table_c2(model, expected):
    assert f.kv_bytes_per_token(M[model], "bf16") == expected


def test_quantized_kv_includes_scales():
    m = M["llama-3.1-8b"]
    assert f.vec_bytes(128, "fp8") == 128  # one scale per tensor: nothing per token
    assert f.vec_bytes(128, "int8") == 128 + 2  # fp16 scale per kv_head and token
    assert f.vec_bytes(128, "int4") == 64 + 4 * 4  # 4 groups of 32, fp16 scale + zero each
    assert f.kv_bytes_per_token(m, "int4") == 32 * 2 * 8 * 80


def test_weights_use_their_own_dtype_and_moe_keeps_all_experts():
    mix = M["mixtral-8x7b"]
    assert f.weight_bytes(mix["params_total"], "bf16") == 2 * 46_702_792_704
    assert mix["params_active"] < mix["params_total"] / 3
    r = b.compute(mix, G["h100-sxm"], {"weight_dtype": "fp8", "kv_dtype": "bf16"})
    assert r["weights_bytes"] == 46_702_792_704 and r["kv_bytes_per_token"] == 131_072
    assert f.weight_bytes(1000, "int4") == math.ceil(1000 * 4.25 / 8)


def test_pages_round_the_last_page_up():
    assert [f.pages(n, 16) for n in (0, 1, 16, 17, 33)] == [0, 16, 16, 32, 48]
    table = f.block_table([{"tokens": 33, "request": 4}], 16)[0]
    assert (table["pages"], table["last_page_tokens"], table["wasted_slots"]) == (3, 1, 15)


def test_paged_bytes_round_per_layer_and_sliding_window():
    m = M["gemma-2-9b"]
    o = f.normalize({"mode": "paged", "page": 16, "context": 8192})
    real, reserved = f.slot_bytes(m, o, 4100)
    lb = 2 * 8 * 256 * 2
    assert real == lb * (21 * 4100 + 21 * 4096)
    assert reserved == lb * (21 * 4112 + 21 * 4096)


def test_static_mode_reserves_max_context_per_slot():
    m = M["llama-3.1-8b"]
    r = b.compute(m, G["h100-sxm"], {"mode": "static", "batch": 4, "context": 1000, "tokens": 50})
    assert r["kv_reserved_bytes"] == 4 * 1000 * 131_072
    assert r["kv_real_bytes"] == 4 * 50 * 131_072  # every request is longer than 50 tokens
    assert r["step_efficiency"] == pytest.approx(0.05)


def test_static_counts_tokens_held_after_finish_as_waste():
    m = M["llama-3.1-8b"]
    lengths = [f.request_length(k, 100) for k in range(3)]
    assert lengths == [66, 32, 87]  # ceil(100 * (0.1 + 0.9 * frac((k+1) * 0.618...)))
    r = b.compute(m, G["h100-sxm"], {"mode": "static", "batch": 3, "context": 100, "tokens": 50})
    # slot 1 finished at step 32 and still holds its 32 tokens: reserved, not real
    assert r["kv_real_bytes"] == (50 + 0 + 50) * 131_072
    assert [s["idle"] for s in r["slots"]] == [False, True, False]
    # the batch lasts 87 steps (its longest request); requests 3-5 (53, 19, 74 tokens) start at step 88
    assert f.static_round(87, 3, 100) == (0, 1) and f.static_round(88, 3, 100) == (1, 88)
    end = b.compute(m, G["h100-sxm"], {"mode": "static", "batch": 3, "context": 100})
    assert [(s["request"], s["tokens"]) for s in end["slots"]] == [(3, 13), (4, 13), (5, 13)]
    assert end["step_efficiency"] == end["efficiency"] == pytest.approx(3 * 13 / 300)
    second = [min(n, 13) for n in (53, 19, 74)]
    run = (sum(n * (n + 1) // 2 for n in lengths + second)) / (3 * 100 * 100)  # token-steps used / reserved
    assert end["run_efficiency"] == pytest.approx(run)


def test_static_at_batch_one_is_continuous_batching():
    """Issue 23 item 19: a batch of one ends with its request, so the next starts at once (21.5 % was
    reported against CB's 26.5 % for Llama-3.1-8B at 131,072 tokens)."""
    m = M["llama-3.1-8b"]
    eff = {mode: f.run_efficiency(m, f.normalize({"mode": mode, "batch": 1, "context": 131_072})) for mode in f.MODES}
    assert eff["static"] == eff["cb"] == pytest.approx(0.2646, abs=1e-4)
    for t in (1, 50_000, 86_000, 100_000, 131_072):
        st, cb = (f.slot_at(0, t, 1, 131_072, mode) for mode in ("static", "cb"))
        assert (st["tokens"], st["request"], st["done"]) == (cb["tokens"], cb["request"], cb["done"]), t


def test_json_names_the_step_efficiency_and_keeps_the_old_key_as_an_alias():
    r = b.compute(M["llama-3.1-8b"], G["h100-sxm"], {"mode": "static", "batch": 4, "context": 1000, "tokens": 50})
    assert r["step_efficiency"] == r["efficiency"] == pytest.approx(0.05)
    assert r["run_efficiency"] != r["step_efficiency"] and "step_efficiency" in r["deprecated"]["efficiency"]


def test_continuous_batching_raises_efficiency_on_the_readme_example():
    """README: Llama-3.1-8B on an H100, batch 32, context 8,192."""
    eff = {
        mode: f.run_efficiency(M["llama-3.1-8b"], f.normalize({"mode": mode, "batch": 32, "context": 8192}))
        for mode in f.MODES
    }
    assert eff["static"] < eff["cb"] < eff["paged"]
    assert eff["cb"] - eff["static"] > 0.05


def test_readme_efficiencies_for_batch_32_at_8k():
    """README: 18.9 % static, 29.9 % CB, 99.7 % paged over the run (Llama-3.1-8B, batch 32, 8K)."""
    opts = {mode: f.normalize({"mode": mode, "batch": 32, "context": 8192}) for mode in f.MODES}
    got = {mode: round(100 * f.run_efficiency(M["llama-3.1-8b"], o), 1) for mode, o in opts.items()}
    assert got == {"static": 18.9, "cb": 29.9, "paged": 99.7}


def test_run_efficiency_matches_a_step_by_step_sum():
    m = M["gemma-2-9b"]
    for mode in ("static", "cb", "paged"):
        o = f.normalize({"mode": mode, "batch": 3, "context": 5000, "page": 16})
        real = reserved = 0
        for t in range(1, 5001):
            st = f.batch_state(m, {**o, "tokens": t})
            real, reserved = real + st["kv_real"], reserved + st["kv_reserved"]
        assert f.run_efficiency(m, o) == pytest.approx(real / reserved, rel=1e-12)


def test_paper_band_static_inside_paged_above_96_percent():
    m = M["llama-3.1-8b"]
    eff = {mode: f.run_efficiency(m, f.normalize({"mode": mode, "batch": 32, "context": 8192})) for mode in f.MODES}
    assert 0.204 <= eff["cb"] <= 0.382  # admission over time does not stop max-length reservation
    assert eff["static"] < 0.204  # finished requests held until the batch ends: lower still
    assert eff["paged"] > 0.96


def test_continuous_batching_admits_new_requests_over_time():
    st = f.slot_at(0, 100, batch=2, context=100, mode="cb")
    assert f.request_length(0, 100) == 66
    assert st == {"tokens": 100 - 66, "request": 2, "done": 1, "idle": False}
    # static: slot 1's request (32 tokens) waits, held, until the batch's longest (66) ends at step 66
    assert f.slot_at(1, 60, batch=2, context=100, mode="static") == {
        "tokens": 32,
        "request": 1,
        "done": 1,
        "idle": True,
    }
    assert f.slot_at(1, 60, batch=2, context=100, mode="cb")["request"] == 3  # CB admitted the next at 33


def test_tp_shards_kv_heads_then_replicates():
    m = M["llama-3.1-8b"]  # 8 kv_heads
    assert [f.kv_share(m, tp) for tp in (1, 2, 8, 16)] == [1.0, 0.5, 0.125, 0.125]
    assert f.kv_share(M["smollm2-135m"], 2) == pytest.approx(2 / 3)  # ceil(3 / 2) heads of 3
    r = b.compute(m, G["h100-sxm"], {"tp": 16, "batch": 1, "context": 1024, "mode": "static"})
    assert r["per_gpu"]["kv_bytes"] * 16 == 2 * r["kv_reserved_bytes"]  # 16 ranks hold 2 copies


def test_capacity_is_batch_times_context_not_one_step():
    """Issue 11: one 128K sequence of Llama-3.1-8B needs 16 GiB whatever step the animation shows."""
    r = b.compute(M["llama-3.1-8b"], G["h100-sxm"], {"batch": 1, "context": 131_072, "tokens": 10})
    assert r["capacity"]["kv_full_bytes"] == 16 * GIB
    for mode in ("static", "cb"):
        cap = b.compute(M["llama-3.1-8b"], G["h100-sxm"], {"batch": 1, "context": 131_072, "mode": mode})["capacity"]
        assert cap["kv_peak_bytes"] == cap["kv_full_bytes"] == 16 * GIB


def test_paged_peak_equals_brute_force_over_every_step_and_sets_gpus_required():
    m = M["gemma-2-9b"]  # sliding layers too
    o = f.normalize({"mode": "paged", "batch": 5, "context": 3000, "page": 16})
    brute = max((f.batch_state(m, {**o, "tokens": t})["kv_reserved"], -t) for t in range(1, 3001))
    assert b.workload_peak(m, o) == (brute[0], -brute[1])
    big = b.compute(M["llama-3.1-70b"], G["h100-sxm"], {"batch": 64, "context": 32_768})
    cap = big["capacity"]
    assert 270 * GIB < cap["kv_peak_bytes"] < 280 * GIB < 640 * GIB == cap["kv_full_bytes"]
    assert big["gpus_required"] == cap["gpus_required"] == 8  # the step state at the end needs fewer
    assert cap["gpus_required_full"] is None  # 640 GiB over 8 kv_heads: TP alone cannot hold it


def test_paged_peak_includes_one_request_of_the_full_context():
    """Issue 23 item 17: Llama-3.1-70B, batch 1, 131,072 tokens on H100 reported 2 GPUs at 99 % each
    (the synthetic request stopped at 66 % of the context) while one full request needs 4."""
    r = b.compute(M["llama-3.1-70b"], G["h100-sxm"], {"batch": 1, "context": 131_072, "mode": "paged"})
    cap = r["capacity"]
    assert cap["kv_longest_request_bytes"] == cap["kv_peak_bytes"] == 327_680 * 131_072 == 40 * GIB
    assert cap["kv_workload_peak_bytes"] < cap["kv_peak_bytes"] and cap["basis"].startswith("one request")
    assert cap["gpus_required"] == 4  # 131.4 GiB of weights + 40 GiB of KV over 2 GPUs is 85.7 GiB each
    small = b.compute(M["llama-3.1-8b"], G["h100-sxm"], {"batch": 1, "context": 131_072})["capacity"]
    assert small["kv_peak_bytes"] == 16 * GIB == small["kv_full_bytes"]
    many = b.compute(M["llama-3.1-8b"], G["h100-sxm"], {"batch": 32, "context": 8192})["capacity"]
    assert many["kv_peak_bytes"] == many["kv_workload_peak_bytes"] > many["kv_longest_request_bytes"]


def test_gpus_required_leave_the_unused_utilisation_free():
    """Issue 23 item 18: a fit at 99.7 % of nvidia-smi memory is no fit; weights + KV may fill
    gpu_memory_utilization (0.9, vLLM's default) of each GPU."""
    m, g = M["llama-3.1-70b"], G["h200"]
    r = b.compute(m, g, {})  # batch 8, 8K, paged
    cap = r["capacity"]
    assert 0.99 < cap["occupancy_peak"] < 1.0 and cap["fit_fraction"] == 0.9
    assert cap["fit_bytes"] == 143_771 * 2**20 * 0.9
    assert cap["gpus_required"] == 2
    assert b.compute(m, g, {"gpu_memory_utilization": 1.0})["capacity"]["gpus_required"] == 1
    assert b.gpus_required(m, g, r["options"], cap["kv_peak_bytes"]) == 2


def test_paged_peak_is_the_same_with_and_without_numpy(monkeypatch):
    m, o = M["gemma-2-9b"], f.normalize({"mode": "paged", "batch": 300, "context": 9000})
    vectorised = b.workload_peak(m, o)
    monkeypatch.setattr(b, "NUMPY_ABOVE", 10**12)
    assert b.workload_peak(m, o) == vectorised


def test_gpus_required_is_smallest_power_of_two_that_fits():
    m = M["llama-3.1-70b"]
    r = b.compute(m, G["h100-sxm"], {"batch": 1, "context": 1024, "mode": "paged"})
    assert r["gpus_required"] == 2  # 131.4 GiB of bf16 weights; 65.7 GiB + KV per rank fits 79.65
    assert b.per_rank_need(m, r["options"], 1, r["kv_reserved_bytes"]) > 81_559 * 2**20


def test_flash_workspace_is_transient_and_not_subtracted():
    m = M["llama-3.1-8b"]
    on = b.compute(m, G["h100-sxm"], {"batch": 1, "context": 4096, "flash": True})
    off = b.compute(m, G["h100-sxm"], {"batch": 1, "context": 4096, "flash": False})
    assert on["total_bytes"] == off["total_bytes"]
    assert on["flash"]["without_flash"] == 32 * 4096 * 4096 * 2 == 1 * GIB  # 1 GiB, as in reference B3
    assert on["flash"]["with_flash"] == 32 * 4096 * 4


def test_vllm_budget_for_llama_8b_on_h100():
    m = M["llama-3.1-8b"]
    r = b.compute(m, G["h100-sxm"], {"engine": "vllm", "activation_gib": 2.0, "context": 131_072})
    e = r["engine"]
    avail = (81_559 - 450) * 2**20 * 0.9 - 8_030_261_248 * 2 - 2 * GIB - 0.35 * GIB - 0.5 * GIB
    assert e["available_kv_bytes"] == pytest.approx(avail)
    assert e["kv_blocks"] == math.floor(avail / (16 * 131_072))
    assert e["kv_tokens"] == e["kv_blocks"] * 16
    assert e["max_concurrency"] == pytest.approx(e["kv_blocks"] / (131_072 / 16))
    assert 3.2 < e["max_concurrency"] < 3.4


def test_decode_bound_uses_active_params_and_bandwidth():
    m = M["mixtral-8x7b"]
    r = b.compute(m, G["h100-sxm"], {"batch": 1, "context": 1, "mode": "static", "weight_dtype": "bf16"})
    step = m["params_active"] * 2 + 131_072
    assert r["decode"]["bytes_per_step"] == step
    assert r["decode"]["tokens_per_s"] == pytest.approx(3350e9 / step)


def test_usable_memory_is_visible_mib_not_marketed_gb():
    assert b.usable_bytes(G["h100-sxm"]) == 81_559 * 2**20
    assert b.usable_bytes(G["b200"]) == 192 * 10**9  # not verified: marketed decimal GB


@pytest.mark.parametrize("model,gib_per_1k", [("qwen3-8b", 0.1373), ("qwen3-32b", 0.2441), ("llama-3.1-70b", 0.3052)])
def test_lmcache_faq_gib_per_thousand_tokens(model, gib_per_1k):
    """Reference B1/C3: the LMCache FAQ's KV sizes per 1,000 tokens (its "GB" are GiB)."""
    assert round(f.kv_bytes_per_token(M[model], "bf16") * 1000 / GIB, 4) == gib_per_1k


def test_lmcache_faq_capacity_qwen3_8b():
    """50.32 GiB spare on an H100 holds about 366,400 Qwen3-8B tokens (8.95 x 40,960)."""
    tokens = 50.32 * GIB / f.kv_bytes_per_token(M["qwen3-8b"], "bf16")
    assert tokens == pytest.approx(366_400, rel=1e-3) and tokens / 40_960 == pytest.approx(8.95, abs=0.01)
