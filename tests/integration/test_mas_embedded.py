"""One arith problem on the embedded SmolLM2-135M (tied embeddings), all three methods."""

import pytest
import torch

from kvscope.mas.config import MasConfig
from kvscope.mas.methods import MasSettings
from kvscope.mas.realign import embedding_matrices, realigner
from kvscope.mas.runner import ratios, run_method, summarize
from kvscope.mas.tasks import load_arith

pytestmark = pytest.mark.embedded


def test_realignment_is_near_identity_for_tied_embeddings(embedded, tmp_path, monkeypatch):
    monkeypatch.setenv("KVSCOPE_CACHE", str(tmp_path))
    w_in, w_out = embedding_matrices(embedded.model)
    assert embedded.info.tied_embeddings and torch.equal(w_in, w_out)
    align = realigner(embedded.model, True)
    assert torch.allclose(align.matrix, torch.eye(embedded.info.hidden_size), atol=1e-3)
    rows = w_out[:: 997]  # every output row maps onto its input row
    assert torch.allclose(rows @ align.matrix, w_in[:: 997], atol=1e-3)
    assert list((tmp_path / "mas").glob("realign-*.safetensors"))  # cached on disk for the next run


def test_one_arith_problem_all_methods(embedded):
    s = MasSettings(embedded.model, embedded.tokenizer, embedded.info,
                    MasConfig(latent_steps=3, max_new_tokens=8, temperature=0.6, seed=42))
    problem = load_arith(1, 42)
    runs = {m: run_method(s, m, problem) for m in ("baseline", "text_mas", "latent_mas")}
    lat = runs["latent_mas"][0]
    prompts = [a.prompt_tokens for a in lat.agents]
    # The judger receives the three prompts plus 3 latent slots each; 30 layers x 3 kv_heads x 64 x 2 x 4 B.
    assert lat.agents[-1].cache_slots_in == sum(prompts[:3]) + 9
    assert lat.agents[-1].kv_bytes_in == (sum(prompts[:3]) + 9) * 30 * 3 * 64 * 2 * 4
    assert 0 < lat.generated_tokens <= 8 and lat.text
    assert [a.generated_tokens for a in lat.agents[:3]] == [0, 0, 0]
    assert all(0 < a.generated_tokens <= 8 for a in runs["text_mas"][0].agents)
    r = ratios({m: summarize(v) for m, v in runs.items()})
    assert r["token_ratio_latent_vs_text"] == pytest.approx(lat.generated_tokens / runs["text_mas"][0].generated_tokens)
