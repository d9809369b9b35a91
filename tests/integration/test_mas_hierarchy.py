"""Hierarchical latent_mas on the tiny model: parallel experts in separate caches, joined in time."""

import torch

from kvscope.mas.config import MasConfig
from kvscope.mas.engine import CacheState, append_ids, concat_states
from kvscope.mas.methods import MasSettings, ProblemRun, _encode, _latent_steps, run_experts, run_latent_mas
from kvscope.mas.problems import Problem
from kvscope.mas.prompts import MODES, agent_user_text

Q = Problem(1, "Ana has 3 apples and buys 40 more. How many apples does she have?", "43")


def settings(tiny, **kw):
    base = dict(latent_steps=2, max_new_tokens=8, temperature=0.0)
    base.update(kw)
    return MasSettings(tiny.model, tiny.tokenizer, tiny.info, MasConfig(**base))


def test_each_expert_cache_holds_only_its_own_slots_and_the_join_keeps_true_positions(tiny):
    s = settings(tiny, prompt="hierarchical")
    problems = [Q, Problem(2, "What is 2 + 2?", "4")]
    runs = [ProblemRun("latent_mas", p, "", []) for p in problems]
    parts, _ = run_experts(s, problems, runs)
    experts = MODES["hierarchical"][:3]
    for row in range(2):
        start = 0
        for agent, part, trace in zip(experts, parts, runs[row].agents):
            n = trace.prompt_tokens + 2
            slots = part.real_slots(row).tolist()
            labels = [part.labels[row][i] for i in slots]
            assert labels == [f"{agent.role}:prompt"] * trace.prompt_tokens + [f"{agent.role}:latent"] * 2
            assert [int(part.positions[row, i]) for i in slots] == list(range(start, start + n))
            assert trace.cache_slots_in == 0  # an expert reads no earlier agent's cache
            start += n
    joined = concat_states(tiny.model, parts, tiny.info.layers)
    for row in range(2):
        real = joined.real_slots(row)
        assert joined.positions[row, real].tolist() == list(range(int(joined.lengths[row])))
        assert joined.labels[row][int(real[0])].startswith("math:")
    for layer in range(tiny.info.layers):
        keys = torch.cat([p.cache.layers[layer].keys for p in parts], dim=2)
        assert torch.equal(joined.cache.layers[layer].keys, keys)


def test_an_expert_attends_only_to_itself(tiny):
    """The science agent's last-layer values equal those of running it alone from position 0: RoPE
    attention sees relative positions only, so starting after the math agent changes nothing."""
    s = settings(tiny, prompt="hierarchical")
    runs = [ProblemRun("latent_mas", Q, "", [])]
    parts, _ = run_experts(s, [Q], runs)
    alone = CacheState.empty(tiny.model, 1)
    ids = _encode(s, agent_user_text("hierarchical", "science", Q.question, latent=True))
    first = append_ids(tiny.model, alone, [ids], "science:prompt", 258, want="hidden")
    _latent_steps(s, alone, first.hidden, "science")
    last = tiny.info.layers - 1
    assert torch.allclose(parts[1].cache.layers[last].values, alone.cache.layers[last].values, atol=1e-5)


def test_hierarchical_summariser_reads_the_joined_cache(tiny):
    s = settings(tiny, prompt="hierarchical", similarities=True)
    run = run_latent_mas(s, [Q])[0]
    assert [a.role for a in run.agents] == ["math", "science", "code", "summariser"]
    assert run.agents[-1].cache_slots_in == sum(a.prompt_tokens + 2 for a in run.agents[:3])
    [t] = run.transitions
    assert t.name == "experts_to_summariser" and t.positions == list(range(len(t.positions)))
    assert 0 < run.latent_seconds < run.seconds or run.seconds == 0.0
