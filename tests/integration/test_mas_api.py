"""``kvscope.mas.run_mas`` as a library call, its result object, and models it must refuse or adapt to."""

import json

import pytest
import torch

from kvscope.errors import UsageError
from kvscope.mas import KnnConfig, MasResult, run_mas
from kvscope.mas.experiment import as_problems
from kvscope.mas.prompts import render
from kvscope.models import byte_tokenizer

QUESTIONS = [("What is 2 + 2?", "4"), ("Ana has 3 apples and buys 40 more. How many?", "43")]


def test_run_mas_all_methods_interleaved_then_save(tiny, tmp_path, monkeypatch):
    order = []
    import kvscope.mas.runner as runner

    real = runner.run_batch
    monkeypatch.setattr(runner, "run_batch", lambda s, m, b: order.append((m, b[0].index)) or real(s, m, b))
    result = run_mas(
        tiny.model,
        tiny.tokenizer,
        QUESTIONS,
        "all",
        latent_steps=2,
        max_new_tokens=3,
        temperature=0.0,
        knn=KnnConfig(0.5, 2),
        similarities=True,
        quiet=True,
    )
    assert order == [(m, i) for i in (1, 2) for m in ("baseline", "text_mas", "latent_mas")]  # per problem
    assert isinstance(result, MasResult) and [r.problem.gold for r in result.runs["baseline"]] == ["4", "43"]
    assert repr(result).startswith("MasResult(") and len(repr(result)) < 400
    assert "<table>" in result._repr_html_() and "latent_mas" in result._repr_html_()
    lat = result.summaries["latent_mas"]
    assert 0 < lat["latent_seconds_total"] < lat["seconds_total"]
    files = result.save(tmp_path / "out", multi=True, single=False)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["methods"]["latent_mas"]["problems"] == 2
    assert sum("charts/heatmap_planner_to_critic" in str(f) for f in files) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_bad_settings_are_refused_before_running(tiny):
    with pytest.raises(UsageError, match="knn_positions"):
        run_mas(tiny.model, tiny.tokenizer, QUESTIONS, knn_positions="fork")
    with pytest.raises(UsageError, match="include_old_prompts"):
        run_mas(tiny.model, tiny.tokenizer, QUESTIONS, prompt="hierarchical", include_old_prompts=True)
    with pytest.raises(UsageError, match="method"):
        run_mas(tiny.model, tiny.tokenizer, QUESTIONS, "best")


def test_sliding_window_models_are_refused_in_one_line():
    from tests.families import build

    model = build("mistral")  # sliding_window=8
    with pytest.raises(UsageError) as err:
        run_mas(model, byte_tokenizer(), QUESTIONS, latent_steps=1, max_new_tokens=2)
    assert "sliding-window attention (window 8)" in str(err.value) and "\n" not in str(err.value)


def test_knn_positions_reuse_continues_from_the_kept_slot_count(tiny):
    """With reuse, the Critic's first prompt token sits at the number of slots kept; with true, after the
    Planner's true length."""
    from kvscope.mas.config import MasConfig
    from kvscope.mas.methods import MasSettings, run_latent_mas

    runs = {}
    for mode in ("true", "reuse"):
        s = MasSettings(
            tiny.model,
            tiny.tokenizer,
            tiny.info,
            MasConfig(
                latent_steps=2,
                max_new_tokens=2,
                temperature=0.0,
                knn=KnnConfig(0.5, 2),
                knn_positions=mode,
                similarities=True,
            ),
        )
        runs[mode] = run_latent_mas(s, as_problems(QUESTIONS[:1]))[0]
    for mode, run in runs.items():
        event = run.knn_events[1]  # critic -> refiner: the cache holds planner leftovers + the critic's slots
        t = run.transitions[1].before
        critic = [p for p, label in zip(t.positions, t.labels) if label.startswith("critic:")]
        kept_planner = run.knn_events[0]["slots_after"]
        start = kept_planner if mode == "reuse" else run.knn_events[0]["slots_before"]
        assert critic == list(range(start, start + len(critic))) and event["slots_before"] == len(t.positions)


def test_a_template_that_rejects_the_system_role_gets_it_merged_into_the_user_turn():
    tok = byte_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    text = render(tok, "What is 1 + 1?", system="Be brief.")
    assert text == "<user>Be brief.\n\nWhat is 1 + 1?</user><assistant>"


def test_decode_generate_default_step_equals_a_hand_loop(tiny):
    """kvscope.decode.generate from a prompt with its own cache: greedy ids equal argmax of full forwards."""
    from kvscope.decode import generate

    ids = torch.tensor([list(b"the cat sat")])
    out = generate(tiny.model, None, first_tokens=ids, max_new_tokens=5)
    seq, ref = ids, []
    with torch.inference_mode():
        for _ in range(5):
            ref.append(int(tiny.model(input_ids=seq).logits[0, -1].argmax()))
            seq = torch.cat([seq, torch.tensor([[ref[-1]]])], dim=1)
    assert out.tokens == [ref] and len(out.step_seconds) == 5
    assert out.cache.get_seq_length() == ids.shape[1] + 4  # the last picked token is never fed
