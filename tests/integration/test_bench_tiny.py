"""``kvscope.bench.bench`` on the tiny model: one prefill per sample whatever the number of
configurations, keep-everything equals the baseline, the files, escaping, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

from kvscope.bench import bench
from kvscope.bench.sample_runner import run_sample
from kvscope.bench.tasks import generate
from kvscope.prune.engine import Config, build_grid
from kvscope.prune.evict import count_forwards
from tests.helpers import assert_one_line_error, run_cli


def counter(tok):
    return lambda text: len(tok(text, add_special_tokens=False).input_ids)


class Fixed:
    """A keep plan that keeps everything (or nothing) regardless of ratio."""

    def __init__(self, value: bool):
        self.value = value

    def keep(self, pre, ratio):
        n = pre.n_positions
        return torch.full((len(pre.keys), pre.keys[0].shape[1], n), self.value, dtype=torch.bool)

    def warnings(self, n_positions, ratio, layers=None):
        return []


def test_one_prefill_per_sample_whatever_the_configurations(tiny):
    model, tok, _ = tiny
    seen: list[tuple[int, ...]] = []

    def hook(_m, args, kwargs):  # an independent record of every forward's tokens
        seen.append(tuple(kwargs["input_ids"][0].tolist()))

    samples = generate("passkey", 2, 80, counter(tok))
    contexts = {tuple(tok(s.context).input_ids) for s in samples}
    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        few = bench(
            model, tok, tasks=["passkey"], samples=2, context_tokens=80, strategies=["knorm"], ratios=[0.5], quantize=[]
        )
        few_seen, seen[:] = list(seen), []
        many = bench(
            model,
            tok,
            tasks=["passkey"],
            samples=2,
            context_tokens=80,
            strategies=["knorm", "h2o", "snapkv"],
            ratios=[0.5, 0.9],
            quantize=["K2V2"],
        )
    finally:
        handle.remove()
    assert len(few.rows) == 2 and len(many.rows) == 8
    assert sum(ids in contexts for ids in few_seen) == sum(ids in contexts for ids in seen) == 2
    assert few.prefills == many.prefills == 2
    assert len(seen) > len(few_seen)  # more configurations did run, on the same two prefills
    assert many.forwarded_tokens == sum(len(ids) for ids in seen)


def test_keep_everything_equals_baseline_and_evict_everything_differs(tiny):
    model, tok, info = tiny
    sample = generate("passkey", 1, 80, counter(tok))[0]
    configs = [Config("baseline", "baseline"), Config("all@0.5", "all", 0.5, strategy=Fixed(True))]
    run = run_sample(model, tok, info, sample, configs, steps=6)
    base, kept = run.outcomes
    assert kept.answer == base.answer and kept.kv_bytes == base.kv_bytes and kept.kv_fraction == 1.0
    gone = run_sample(
        model, tok, info, sample, [configs[0], Config("none@0.5", "none", 0.5, strategy=Fixed(False))], steps=6
    )
    assert gone.outcomes[1].kv_bytes == 0


def test_forward_counter_counts_prefills_and_tokens(tiny, monkeypatch):
    from kvscope.bench import sample_runner

    model, tok, info = tiny
    sample = generate("passkey", 1, 80, counter(tok))[0]
    configs, _ = build_grid(["knorm", "streaming"], [0.5, 0.75], [])
    with count_forwards(model) as settled:  # the random model's answers are wrong, settled before 3 tokens
        run_sample(model, tok, info, sample, configs, steps=3)
    monkeypatch.setattr(sample_runner, "settled_by", lambda *a: None)  # every answer decoded to its end
    with count_forwards(model) as c:
        run = run_sample(model, tok, info, sample, configs, steps=3)
    assert settled.forwards < c.forwards
    q = len(tok(sample.question, add_special_tokens=False).input_ids)
    assert c.prefills == 1
    assert c.forwards == 1 + len(configs) * 3  # prefill, then per config: question + 2 decode steps
    assert c.tokens == run.context_tokens + len(configs) * (q + 2)
    with count_forwards(model) as fresh:
        run_sample(model, tok, info, sample, configs, steps=3, reuse_prefill=False)
    assert fresh.prefills == len(configs)


def test_convention_options_reach_the_strategies_that_declare_them():
    configs, applied = build_grid(["snapkv", "knorm"], [0.5], [], {"window": 64, "rounding": None})
    assert applied["snapkv"] == {"window": 64} and configs[1].strategy.window == 64
    assert "window" not in applied["knorm"]


def test_files_and_escaping(tiny, tmp_path):
    model, tok, _ = tiny
    from kvscope.bench.tasks import Sample

    evil = Sample(
        "data", 0, "Ignore <script>alert('x')</script> & the key is 31337 here.", "\nKey?", "31337", "31337", 0.5
    )
    result = bench(
        model,
        tok,
        tasks=["passkey"],
        samples=1,
        context_tokens=80,
        strategies=["knorm", "streaming"],
        ratios=[0.5],
        quantize=[],
        data=[evil],
    )
    assert "BenchResult(" in repr(result) and "<table>" in result._repr_html_()
    out = tmp_path / "b"
    assert result.save(out) == [out / n for n in ("bench.json", "samples.jsonl", "bench_pareto.png", "report.html")]
    names = sorted(p.name for p in out.iterdir())
    assert names == [".kvscope-out.json", "bench.json", "bench_pareto.png", "report.html", "samples.jsonl"]
    d = json.loads((out / "bench.json").read_text())
    assert d["settings"]["seed"] == 0 and d["kvscope_version"] and d["model"]["layers"] == 2
    assert [r["config"] for r in d["rows"]] == ["baseline", "knorm@0.5", "streaming@0.5"]
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 3 and {"task", "sample", "config", "answer", "correct", "kv_bytes"} <= set(lines[0])
    html = (out / "report.html").read_text()
    assert "<script" not in html.lower() and "&lt;" in html  # the byte tokenizer splits it: &lt;, s, c, ...
    assert html.count('class="needle"') >= 1 and "data:image/png;base64," in html


def test_cli_writes_the_folder_and_json(tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = run_cli(
        [
            "bench",
            "-m",
            "tiny",
            "--task",
            "passkey",
            "--samples",
            "2",
            "--context-tokens",
            "80",
            "--strategies",
            "knorm",
            "--ratios",
            "0.5",
            "--quantize",
            "",
            "--out",
            str(out),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads(stdout)
    assert d["prefills"] == 2 and len(d["rows"]) == 2 and (out / "report.html").is_file()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--task", "nope"], "use one of passkey"),
        (["--strategies", "nope"], "unknown strategy"),
        (["--samples", "0"], "--samples"),
        (["--ratios", "1.5"], "strictly between 0 and 1"),
        (["--ratios", "0"], "strictly between 0 and 1"),
        (["--context-tokens", "10"], "too small for passkey"),
        (["--quantize", "Q9"], "cannot parse quantize spec"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "o"
    code, _, err = run_cli(["bench", "-m", "tiny", "--task", "passkey", "--out", str(out)] + args, capsys)
    assert_one_line_error(err, code, 2)
    assert needle in err and not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", ["", '{"context": "x"}\nnot json\n'])
def test_bad_data_file(tmp_path, capsys, content):
    data = tmp_path / "d.jsonl"
    data.write_text(content)
    out = tmp_path / "o"
    code, _, err = run_cli(["bench", "-m", "tiny", "--data", str(data), "--out", str(out)], capsys)
    assert_one_line_error(err, code, 2)
    assert not out.exists()


def test_context_above_the_model_limit(tiny, tmp_path, capsys):
    limit = tiny.info.max_positions
    out = tmp_path / "o"
    code, _, err = run_cli(
        ["bench", "-m", "tiny", "--task", "passkey", "--context-tokens", str(limit), "--out", str(out)], capsys
    )
    assert_one_line_error(err, code, 2)
    assert "limit" in err and not out.exists()


def test_chat_wraps_context_and_question_in_the_template(tiny):
    from kvscope.bench.sample_runner import encode

    _, tok, _ = tiny
    sample = generate("passkey", 1, 60, counter(tok))[0]
    raw_ctx, raw_q = encode(tok, sample)
    ctx, tail = encode(tok, sample, chat=True)
    # the question in the user's turn, its answer primer as the start of the assistant's (kvpress's answer_prefix)
    user = [{"role": "user", "content": sample.context + "\nWhat is the pass key?"}]
    whole = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert tok.decode(ctx[0]) + tok.decode(tail[0]) == whole + "The pass key is"
    assert tok.decode(ctx[0]).endswith(sample.context) and tok.decode(tail[0]).endswith("assistant\nThe pass key is")
    assert tok.decode(raw_ctx[0]) == sample.context and tok.decode(raw_q[0]) == sample.question
    data = generate("passkey", 1, 60, counter(tok))[0]
    data.task, data.question = "data", "\nWhat is it? Say it."  # a user's question is kept whole
    assert tok.decode(encode(tok, data, chat=True)[1][0]).endswith("Say it.<|im_end|>\n<|im_start|>assistant\n")


def forced_baseline(tiny, script, steps: int):
    """``(outcome, sample)``: the baseline on one passkey sample while the model is forced to say
    ``script(tok, sample)`` (token ids) from its first answer token on, in at most ``steps`` tokens."""
    from kvscope.bench.sample_runner import encode

    model, tok, info = tiny
    sample = generate("passkey", 1, 80, counter(tok))[0]
    ctx, question = encode(tok, sample)
    first_answer_pos = ctx.shape[1] + question.shape[1] - 1  # its logits give the first answer token
    ids = script(tok, sample)

    def force(_m, _args, kwargs, out):
        pos = kwargs.get("position_ids")
        if pos is not None and int(pos[0, -1]) >= first_answer_pos:
            i = min(int(pos[0, -1]) - first_answer_pos, len(ids) - 1)
            out.logits[0, -1] = -1e4
            out.logits[0, -1, ids[i]] = 1e4

    handle = model.register_forward_hook(force, with_kwargs=True)
    try:
        (base,) = run_sample(model, tok, info, sample, [Config("baseline", "baseline")], steps=steps).outcomes
    finally:
        handle.remove()
    return base, sample


def test_decoding_stops_at_eos_so_text_after_it_is_never_credited(tiny):
    """The model is forced to say "x", EOS, then the gold answer: the answer ends at EOS."""

    def script(tok, sample):
        def ids(text):
            return tok(text, add_special_tokens=False).input_ids

        return [*ids("x"), tok.eos_token_id, *ids(sample.answer)]

    base, sample = forced_baseline(tiny, script, steps=8)
    assert tiny[1].eos_token_id == 257 and sample.answer.isdigit()
    assert base.answer == "x" and base.correct is False and base.settled is False  # ended by EOS


def forced_answer(tiny, words: str, steps: int) -> tuple[str, str, bool, bool]:
    """The baseline's answer, gold, verdict and ``settled`` when the model is forced to say ``words`` and
    then the gold, in ``steps`` tokens."""
    base, sample = forced_baseline(
        tiny, lambda tok, s: tok(words + s.answer, add_special_tokens=False).input_ids, steps
    )
    return base.answer, sample.answer, base.correct, base.settled


def test_an_answer_stops_only_when_the_tokens_left_cannot_write_the_gold(tiny):
    """One byte a token: after "x" the 5 tokens left can still write a 5-digit key, after "xy" the 4 left cannot.
    ``settled`` says which answers stopped early (samples.jsonl carries it)."""
    answer, gold, correct, settled = forced_answer(tiny, "x", steps=6)
    assert answer == "x" + gold and correct is True and settled is False  # all 6 tokens
    answer, gold, correct, settled = forced_answer(tiny, "xy", steps=6)
    assert answer == "xy" and correct is False and settled is True
    answer, gold, correct, settled = forced_answer(tiny, "", steps=8)
    assert answer == gold and correct is True and settled is True  # settled once the gold is there: 5 of 8 tokens


def test_stop_tokens_are_eos_generation_config_and_end_of_turn(tiny):
    from kvscope.decode import stop_tokens

    model, tok, _ = tiny
    assert stop_tokens(tok, model) == {257}  # <|im_end|>: the tokenizer's EOS and the model's
    model.generation_config.eos_token_id = [257, 3]
    try:
        assert stop_tokens(tok, model) == {257, 3}
    finally:
        model.generation_config.eos_token_id = 257


def test_data_uses_every_line_unless_samples_is_given(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    lines = [{"context": f"The code is {i}{i}{i}.", "question": " Code?", "answer": f"{i}" * 3} for i in range(7)]
    data.write_text("".join(json.dumps(x) + "\n" for x in lines))
    base = ["bench", "-m", "tiny", "--data", str(data), "--strategies", "knorm", "--ratios", "0.5", "--quantize", ""]
    code, stdout, err = run_cli([*base, "--out", str(tmp_path / "all")], capsys)
    assert code == 0, err
    assert "--data: scored 7 of its 7 samples" in stdout  # 7 lines, not the 5 of --samples' default
    d = json.loads((tmp_path / "all" / "bench.json").read_text())
    assert d["settings"]["data_samples"] == 7 and d["settings"]["data_lines"] == 7
    assert "7 of 7 data samples" in (tmp_path / "all" / "report.html").read_text()
    assert len((tmp_path / "all" / "samples.jsonl").read_text().splitlines()) == 7 * 2
    code, stdout, err = run_cli([*base, "--samples", "3", "--out", str(tmp_path / "three"), "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["settings"]["data_samples"] == 3


def test_bench_json_states_the_prompt_format_and_the_tie_test(tiny):
    model, tok, _ = tiny
    kw = dict(tasks=["passkey"], samples=1, context_tokens=80, strategies=["knorm"], ratios=[0.5], quantize=[])
    raw = bench(model, tok, **kw).to_dict()
    assert raw["settings"]["prompt_format"].startswith("raw text, no chat template")
    assert "McNemar" in raw["ties"] and "McNemar" in bench(model, tok, **kw)._repr_html_()
    assert bench(model, tok, chat=True, **kw).to_dict()["settings"]["prompt_format"].startswith("chat template")


# --- speed (issue 24): the default runs one ratio; its cells are the four-ratio sweep's cells at 0.5 ---
def test_default_ratio_rows_equal_the_sweeps(tiny):
    from kvscope.prune.engine import BENCH

    model, tok, _ = tiny
    kw = dict(tasks=["passkey", "text"], samples=2, context_tokens=80, strategies=["knorm", "h2o"], quantize=["K2V2"])
    default = bench(model, tok, **kw)
    sweep = bench(model, tok, ratios=[0.25, 0.5, 0.75, 0.9], **kw)
    assert BENCH.ratios == (0.5,) and default.settings["ratios"] == [0.5]

    def cells(result):
        return {
            (o.task, o.sample, o.config): (o.answer, o.correct, o.ppl, o.kv_bytes)
            for o in result.outcomes
            if "@0.25" not in o.config and "@0.75" not in o.config and "@0.9" not in o.config
        }

    assert cells(default) == cells(sweep) and len(cells(default)) == 2 * 2 * 4


# --- the engine (issue 21 part 2): settings reach the strategies, bench and prune --sweep are one engine ---
def test_bench_settings_reach_the_strategies_and_bench_json_records_them(tiny, tmp_path, capsys):
    from kvscope.prune.engine import evicting
    from kvscope.prune.evict import n_keep
    from kvscope.prune.strategies import make_strategy

    model, tok, info = tiny
    kw = dict(tasks=["passkey"], samples=1, context_tokens=80, strategies=["snapkv", "knorm"], ratios=[0.3])
    result = bench(model, tok, quantize=[], settings={"window": 8, "rounding": "floor"}, **kw)
    assert result.settings["settings_applied"] == {
        "snapkv": {"window": 8, "rounding": "floor"},
        "knorm": {"rounding": "floor"},
    }
    sample = generate("passkey", 1, 80, counter(tok))[0]
    made = [evicting(make_strategy("snapkv", window=8, rounding="floor"), 0.3)]
    made += [evicting(make_strategy("knorm", rounding="floor"), 0.3)]
    direct = run_sample(model, tok, info, sample, [Config("baseline", "baseline"), *made], steps=6).outcomes
    got = [(o.config, o.answer, o.kv_bytes) for o in result.outcomes]
    assert got == [(o.config, o.answer, o.kv_bytes) for o in direct]
    n = run_sample(model, tok, info, sample, [], steps=1).context_tokens
    assert n_keep(n, 0.3, "floor") < n_keep(n, 0.3)  # so the bytes show that rounding=floor was taken
    per_token = result.outcomes[0].kv_bytes // n
    assert result.outcomes[2].kv_bytes == n_keep(n, 0.3, "floor") * per_token
    out = tmp_path / "o"
    code, _, err = run_cli(
        ["bench", "-m", "tiny", "--task", "passkey", "--samples", "1", "--context-tokens", "80", "--quantize", ""]
        + ["--strategies", "snapkv,knorm", "--ratios", "0.3", "--setting", "window=8", "--rounding", "floor"]
        + ["--out", str(out)],
        capsys,
    )
    assert code == 0, err
    recorded = json.loads((out / "bench.json").read_text())["settings"]
    assert recorded["strategy_settings"] == {"window": 8, "rounding": "floor"}
    assert recorded["settings_applied"] == result.settings["settings_applied"]
    conventions = {"snapkv": {"rounding": "floor", "window": 8}, "knorm": {"rounding": "floor", "skip_layers": 0}}
    assert recorded["conventions"] == result.settings["conventions"] == conventions  # defaults stated too


def test_bench_and_prune_sweep_rows_are_the_same_engine(tiny):
    """The text task's continuation perplexity and bytes per configuration equal prune --sweep's rows on the
    same text, to the last bit."""
    from kvscope.bench.benchmark import make_samples
    from kvscope.prune import sweep_pruning

    model, tok, info = tiny
    strategies, ratios, quantize = ["knorm", "snapkv", "tova"], [0.5, 0.75], ["K4V4"]
    sample = make_samples(tok, ["text"], 1, 0, 0)[0]
    res = bench(model, tok, tasks=["text"], samples=1, strategies=strategies, ratios=ratios, quantize=quantize)
    rows = sweep_pruning(
        model, tok, sample.context, sample.answer, ratios=ratios, strategies=strategies, quantize=quantize
    )
    bench_cells = [(o.config, o.ppl, o.kv_bytes) for o in res.outcomes]
    names = ["baseline"] + [f"{s}@{r:g}" for s in strategies for r in ratios] + ["kivi@K4V4G32R128"]
    assert [(n, r.ppl, r.kv_bytes) for n, r in zip(names, rows.rows)] == bench_cells
    assert len(bench_cells) == 8 and len({c[1] for c in bench_cells}) > 2  # configurations that differ
