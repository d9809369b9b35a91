"""LatentMAS on the tiny random GQA Llama: slots, positions, parity with plain forward passes, batching."""

import pytest
import torch
from transformers import DynamicCache

from kvscope import compat
from kvscope.mas.config import MasConfig
from kvscope.mas.engine import CacheState, append_ids, forward
from kvscope.mas.knn import KnnConfig, all_layer_similarity, fold_query, knn_filter, prompt_query
from kvscope.mas.methods import MasSettings, _latent_steps, run_latent_mas
from kvscope.mas.problems import Problem, load_arith
from kvscope.mas.realign import realigner
from kvscope.mas.runner import run_method


def settings(tiny, **kw):
    base = dict(latent_steps=3, max_new_tokens=6, temperature=0.0)
    base.update(kw)
    return MasSettings(tiny.model, tiny.tokenizer, tiny.info, MasConfig(**base))


def ids_of(text):
    return list(text.encode())


def test_latent_steps_add_one_slot_each_with_contiguous_positions(tiny):
    s = settings(tiny, latent_steps=4)
    state = CacheState.empty(tiny.model, 1)
    first = append_ids(tiny.model, state, [ids_of("plan this")], "planner:prompt", 258, want="hidden")
    _latent_steps(s, state, first.hidden, "planner")
    assert state.slots == 9 + 4 and state.cache.get_seq_length() == 13
    second = append_ids(tiny.model, state, [ids_of("next")], "critic:prompt", 258, want="hidden")
    _latent_steps(s, state, second.hidden, "critic")
    assert state.positions[0].tolist() == list(range(13 + 4 + 4))
    assert state.labels[0][9:13] == ["planner:latent"] * 4 and state.labels[0][-4:] == ["critic:latent"] * 4


def test_latent_step_feeds_the_realigned_hidden_state(tiny):
    """One latent step equals a plain forward of the realigned embedding at the next position."""
    s = settings(tiny, latent_steps=1, realign=True)
    state = CacheState.empty(tiny.model, 1)
    first = append_ids(tiny.model, state, [ids_of("abc")], "p", 258, want="hidden")
    ref = DynamicCache(config=tiny.model.config)
    with torch.inference_mode():
        out = compat.forward(tiny.model, ref, input_ids=torch.tensor([ids_of("abc")]), output_hidden_states=True)
        h = out.hidden_states[-1][:, -1]
        assert torch.allclose(h, tiny.model.model(input_ids=torch.tensor([ids_of("abc")])).last_hidden_state[:, -1])
        e = realigner(tiny.model, True)(h)[:, None]
        compat.forward(tiny.model, ref, inputs_embeds=e, position_ids=torch.tensor([[3]]))
    _latent_steps(s, state, first.hidden, "p")
    assert torch.allclose(state.cache.layers[1].keys, ref.layers[1].keys, atol=1e-5)
    assert torch.allclose(e.norm(), torch.tensor(realigner(tiny.model, True).target_norm), rtol=1e-5)


def test_judger_receives_the_prompt_cache_with_zero_latent_steps(tiny):
    """K = 0, no kNN: the judger's greedy text equals decoding the four prompts concatenated, from scratch."""
    s = settings(tiny, latent_steps=0, max_new_tokens=5)
    problem = load_arith(1, 3)
    run = run_latent_mas(s, problem)[0]
    prompt_lens = [a.prompt_tokens for a in run.agents]
    assert run.agents[-1].cache_slots_in == sum(prompt_lens[:3]) > 0
    from kvscope.mas.prompts import AGENTS, agent_user_text, encode, render

    ids = sum(
        (
            encode(
                tiny.tokenizer,
                render(tiny.tokenizer, agent_user_text("sequential", a.role, problem[0].question, latent=True)),
            )
            for a in AGENTS
        ),
        [],
    )
    seq = torch.tensor([ids])
    out = []
    with torch.inference_mode():
        for _ in range(5):
            nxt = int(tiny.model(input_ids=seq).logits[0, -1].argmax())
            out.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    assert run.agents[-1].generated_tokens == len(out)
    assert run.text == tiny.tokenizer.decode(out, skip_special_tokens=True).strip()


def test_knn_keeps_right_slots_and_new_tokens_continue_from_true_length(tiny):
    s = settings(tiny, latent_steps=2)
    state = CacheState.empty(tiny.model, 1)
    first = append_ids(tiny.model, state, [ids_of("The planner prompt here.")], "planner:prompt", 258, want="hidden")
    _latent_steps(s, state, first.hidden, "planner")
    before = state.slots  # 24 + 2
    old_keys = state.cache.layers[0].keys.clone()
    query = fold_query(prompt_query(tiny.model, ids_of("critic")), tiny.info.head_dim)
    sims = all_layer_similarity(state, 0, query, tiny.info.layers)[tiny.info.layers // 2]
    new, event = knn_filter(
        tiny.model, state, [query], KnnConfig(0.5, 4, "top"), tiny.info.layers, [torch.Generator().manual_seed(0)]
    )
    k = max(int(before * 0.5), 4)
    assert new.slots == k == event["slots_after"][0] and event["slots_before"][0] == before
    older = sorted(torch.topk(sims[: before - 4], k - 4).indices.tolist())
    kept = older + list(range(before - 4, before))
    assert new.positions[0].tolist() == kept
    assert torch.equal(new.cache.layers[0].keys[0], old_keys[0][:, kept])
    assert event["kv_bytes_after"][0] * before == event["kv_bytes_before"][0] * k
    # A new token continues at the true length: its layer-0 key depends only on token and position.
    forward(tiny.model, new, torch.tensor([[True]]), "critic:prompt", input_ids=torch.tensor([[65]]))
    forward(tiny.model, state, torch.tensor([[True]]), "critic:prompt", input_ids=torch.tensor([[65]]))
    assert new.positions[0, -1] == before and new.lengths.item() == before + 1
    assert torch.allclose(new.cache.layers[0].keys[0, :, -1], state.cache.layers[0].keys[0, :, -1], atol=1e-6)


def test_heatmap_values_equal_a_direct_cosine(tiny):
    s = settings(tiny, latent_steps=2, similarities=True)
    run = run_latent_mas(s, load_arith(1, 5))[0]
    assert [t.name for t in run.transitions] == ["planner_to_critic", "critic_to_refiner", "refiner_to_judger"]
    t = run.transitions[0]
    from kvscope.mas.prompts import agent_user_text, encode, render

    ids = encode(
        tiny.tokenizer,
        render(tiny.tokenizer, agent_user_text("sequential", "critic", run.problem.question, latent=True)),
    )
    state = CacheState.empty(tiny.model, 1)
    planner = encode(
        tiny.tokenizer,
        render(tiny.tokenizer, agent_user_text("sequential", "planner", run.problem.question, latent=True)),
    )
    first = append_ids(tiny.model, state, [planner], "planner:prompt", 258, want="hidden")
    _latent_steps(s, state, first.hidden, "planner")
    w = tiny.model.get_input_embeddings().weight.detach().double()
    mean = w[ids].mean(dim=0).numpy()
    q = sum(mean[i * 16 : (i + 1) * 16] for i in range(4)) / 4  # hidden 64 -> four head_dim-16 chunks
    for layer in range(2):
        keys = state.cache.layers[layer].keys[0].double().mean(dim=0).numpy()  # [slot, head_dim]
        for slot in (0, 7, keys.shape[0] - 1):
            cos = keys[slot] @ q / ((keys[slot] @ keys[slot]) ** 0.5 * (q @ q) ** 0.5)
            assert abs(float(t.similarity[layer, slot]) - cos) < 1e-5
    assert t.labels[-2:] == ["planner:latent"] * 2 and t.positions == list(range(len(t.positions)))


@pytest.mark.parametrize("method", ["baseline", "text_mas", "latent_mas"])
def test_batch_of_two_equals_batch_of_one_greedy(tiny, method):
    s = settings(tiny, latent_steps=2, max_new_tokens=6, knn=KnnConfig(0.7, 3, "top"))
    problems = [Problem(1, "What is 2 + 2?", "4"), Problem(2, "Ana has 3 apples and buys 40 more. How many?", "43")]
    one = run_method(s, method, problems, batch_size=1)
    two = run_method(s, method, problems, batch_size=2)
    assert [r.text for r in one] == [r.text for r in two]
    assert [[a.generated_tokens for a in r.agents] for r in one] == [
        [a.generated_tokens for a in r.agents] for r in two
    ]
    assert [r.knn_events for r in one] == [r.knn_events for r in two]


def test_sampling_is_per_problem_so_batches_agree(tiny):
    s = settings(tiny, latent_steps=1, max_new_tokens=8, temperature=0.9, top_p=0.9)
    problems = load_arith(2, 11)
    one = [r.text for r in run_method(s, "latent_mas", problems, 1)]
    assert one == [r.text for r in run_method(s, "latent_mas", problems, 2)]
    other = settings(tiny, latent_steps=1, max_new_tokens=8, temperature=0.9, top_p=0.9, seed=43)
    assert one != [r.text for r in run_method(other, "latent_mas", problems, 1)]


def test_text_mas_context_flow_in_both_variants(tiny):
    from kvscope.mas.prompts import agent_user_text, agents, context_block, encode, render

    tok, q = tiny.tokenizer, "What is 2 + 2?"

    def plain(mode, role, ctx=""):
        return len(encode(tok, render(tok, agent_user_text(mode, role, q, ctx))))

    for mode in ("sequential", "hierarchical"):
        run = run_method(settings(tiny, prompt=mode, max_new_tokens=4), "text_mas", [Problem(1, q, "4")])[0]
        roles = [a.role for a in agents(mode)]
        names = [a.name for a in agents(mode)]
        outs = [(n, a.output) for n, a in zip(names[:3], run.agents)]
        expected = [
            plain(mode, roles[0]),
            plain(mode, roles[1], context_block(outs[:1])),
            plain(mode, roles[2], context_block(outs[:2])),
            plain(mode, roles[3], context_block(outs)),
        ]
        if mode == "hierarchical":  # the experts see only the question
            expected[1:3] = [plain(mode, roles[1]), plain(mode, roles[2])]
        assert [a.prompt_tokens for a in run.agents] == expected


def test_the_vocabulary_is_read_once_per_settings(tiny, monkeypatch):
    """Stop and padding ids are looked up once (building the vocabulary costs time inside the latent steps)."""
    s = settings(tiny, latent_steps=2, max_new_tokens=2)
    calls, real = [], type(tiny.tokenizer).get_vocab
    monkeypatch.setattr(type(tiny.tokenizer), "get_vocab", lambda self: calls.append(1) or real(self))
    problems = load_arith(2, 0)
    runs = [run_method(s, "latent_mas", problems), run_method(s, "text_mas", problems)]
    assert len(calls) == 1 and all(len(r) == 2 for r in runs)
