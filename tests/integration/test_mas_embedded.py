"""The embedded SmolLM2-135M (tied embeddings): all three methods on one problem, greedy parity with
``model.generate`` for the baseline, a text_mas agent and the Judger."""

import copy

import pytest
import torch

from kvscope.mas.config import MasConfig
from kvscope.mas.engine import CacheState, append_ids
from kvscope.mas.methods import MasSettings, _encode, _latent_steps, _sampling, run_latent_mas
from kvscope.mas.problems import Problem, load_arith
from kvscope.mas.prompts import MODES, agent_user_text, baseline_user_text, context_block
from kvscope.mas.realign import embedding_matrices, realigner
from kvscope.mas.runner import ratios, run_method, summarize_runs

pytestmark = pytest.mark.embedded
Q = Problem(1, "Ana has 3 apples and buys 40 more. How many apples does she have?", "43")


def settings(lm, **kw):
    return MasSettings(lm.model, lm.tokenizer, lm.info, MasConfig(**kw))


def test_realignment_is_near_identity_for_tied_embeddings(embedded, tmp_path, monkeypatch):
    monkeypatch.setenv("KVSCOPE_CACHE", str(tmp_path))
    w_in, w_out = embedding_matrices(embedded.model)
    assert embedded.info.tied_embeddings and torch.equal(w_in, w_out)
    align = realigner(embedded.model, True)
    assert torch.allclose(align.matrix, torch.eye(embedded.info.hidden_size), atol=1e-3)
    rows = w_out[::997]  # every output row maps onto its input row
    assert torch.allclose(rows @ align.matrix, w_in[::997], atol=1e-3)
    assert list((tmp_path / "mas").glob("realign-*.safetensors"))  # cached on disk for the next run


def test_one_arith_problem_all_methods(embedded):
    s = MasSettings(
        embedded.model,
        embedded.tokenizer,
        embedded.info,
        MasConfig(latent_steps=3, max_new_tokens=8, temperature=0.6, seed=42),
    )
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
    r = ratios({m: summarize_runs(v) for m, v in runs.items()})
    assert r["token_ratio_latent_vs_text"] == pytest.approx(lat.generated_tokens / runs["text_mas"][0].generated_tokens)


def hf_greedy(lm, ids, n, cache=None, past=0):
    """``model.generate``'s greedy tokens after ``ids`` (with ``past`` cached slots already in ``cache``)."""
    stops = sorted(_sampling(settings(lm), [], "baseline").stop_ids)
    full = torch.tensor([[0] * past + ids])
    kw = {"past_key_values": cache} if cache is not None else {}
    with torch.inference_mode():
        out = lm.model.generate(
            full,
            attention_mask=torch.ones_like(full),
            do_sample=False,
            max_new_tokens=n,
            eos_token_id=stops,
            pad_token_id=stops[0],
            **kw,
        )
    return out[0, full.shape[1] :].tolist()


def text(lm, ids):
    return lm.tokenizer.decode(ids, skip_special_tokens=True).strip()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_greedy_baseline_and_text_mas_agent_equal_generate(embedded):
    lm = embedded
    s = settings(lm, latent_steps=2, max_new_tokens=8, temperature=0.0)
    base = run_method(s, "baseline", [Q])[0]
    ref = hf_greedy(lm, _encode(s, baseline_user_text(Q.question)), 8)
    assert base.agents[0].generated_tokens == len(ref) and base.text == text(lm, ref) and len(set(ref)) > 3
    mas = run_method(s, "text_mas", [Q])[0]
    critic = _encode(
        s, agent_user_text("sequential", "critic", Q.question, context_block([("Planner", mas.agents[0].output)]))
    )
    ref = hf_greedy(lm, critic, 8)
    assert mas.agents[1].generated_tokens == len(ref) and mas.agents[1].output == text(lm, ref)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_greedy_judger_equals_generate_from_the_same_cache(embedded):
    lm = embedded
    s = settings(lm, latent_steps=2, max_new_tokens=8, temperature=0.0)
    state = CacheState.empty(lm.model, 1)
    for agent in MODES["sequential"][:3]:
        ids = _encode(s, agent_user_text("sequential", agent.role, Q.question, latent=True))
        first = append_ids(lm.model, state, [ids], f"{agent.role}:prompt", 0, want="hidden")
        _latent_steps(s, state, first.hidden, agent.role)
    judger = _encode(s, agent_user_text("sequential", "judger", Q.question, latent=True))
    ref = hf_greedy(lm, judger, 8, cache=copy.deepcopy(state.cache), past=state.slots)
    run = run_latent_mas(s, [Q])[0]
    assert run.agents[-1].cache_slots_in == state.slots
    assert run.agents[-1].generated_tokens == len(ref) and run.text == text(lm, ref)
