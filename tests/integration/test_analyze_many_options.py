"""``--prompts`` honours the ground truth (matched to its prompt by token ids) and refuses, before a model
loads, every option that only one prompt uses, instead of dropping it without a word (issue 23 item 8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kvscope.errors import UsageError
from tests.helpers import assert_one_line_error, random_snapshot, run_cli

ONE_PROMPT_ONLY = [
    ["--scan"],
    ["--scan-heads"],
    ["--continuation", "and then"],
    ["--cache-scale", "shared"],
    ["--cache-norm", "log"],
    ["--cache-scale", "layer"],  # given explicitly, even at its default value
]


@pytest.mark.parametrize("extra", ONE_PROMPT_ONLY, ids=lambda e: e[0])
def test_prompts_refuses_one_prompt_options_before_loading(extra, tmp_path, monkeypatch, capsys):
    import kvscope.cli.common as common

    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(common, "load", no_load)
    argv = ["analyze", "--model", "tiny", "--prompts", "default", *extra, "--out", str(tmp_path / "o")]
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(err, code, 2)
    assert f"{extra[0]} applies to one prompt, not to --prompts" in err
    assert not (tmp_path / "o").exists()


def test_no_scan_is_accepted_with_prompts(monkeypatch, tmp_path, capsys):
    import kvscope.cli.common as common

    monkeypatch.setattr(common, "load", lambda *a, **k: (_ for _ in ()).throw(SystemExit(7)))
    argv = ["analyze", "--model", "tiny", "--prompts", "default", "--no-scan", "--out", str(tmp_path / "o")]
    code, _, err = run_cli(argv, capsys)
    assert code == 7, err  # got as far as loading the model: --no-scan asks for nothing a many-prompt run drops


@pytest.mark.parametrize(
    "kw", [{"scan_layers": True}, {"scan_heads": True}, {"continuation": "x"}, {"cache_norm": "log"}]
)
def test_the_library_refuses_one_snapshot_parameters_for_a_list(kw):
    from kvscope.analyze.analysis import analyze

    snaps = [random_snapshot(layers=2, n=12, d=8, seed=s) for s in range(2)]
    with pytest.raises(UsageError, match=next(iter(kw))):
        analyze(snaps, **kw)


def _truth_file(path, snap, seed=0):
    delta = -np.random.default_rng(seed).random(snap.n_positions)
    path.write_text(json.dumps({"delta_loglik": delta.tolist(), "token_ids": snap.token_ids.tolist()}))
    return path


def test_ground_truth_is_used_for_the_prompt_with_its_token_ids(tmp_path):
    from kvscope.analyze.analysis import analyze

    snaps = [random_snapshot(layers=2, n=n, d=8, seed=n) for n in (20, 25, 30)]  # token ids 0..n-1 differ
    result = analyze(snaps, ground_truth=_truth_file(tmp_path / "gt.json", snaps[1]))
    per = result.metrics["per_prompt"]
    assert ["leave-one-out" in p["verdict"] for p in per] == [False, True, False]
    assert any("matches prompt 1 (of 3) by token ids" in w for w in result.metrics["warnings"])
    assert result.metrics["headline"]["verdict_reference"] == "attention"  # the other prompts have no file
    assert result.ground_truth_file == (tmp_path / "gt.json").read_bytes()  # kept in the out dir on save
    other = analyze(snaps, ground_truth=_truth_file(tmp_path / "none.json", random_snapshot(n=7)))
    assert any("matches none of the 3 prompts" in w for w in other.metrics["warnings"])
    assert other.ground_truth_file is None


def test_cli_prompts_read_the_ground_truth_in_the_out_dir(tiny, tmp_path, capsys):
    from kvscope.capture.capturing import capture

    texts = ["Alice paid 42 euros in Paris on a rainy day.", "def f(x):\n    return x + 1  # add one"]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
    from kvscope.fileio import atomic_dir

    out = tmp_path / "many"
    with atomic_dir(out, command="prune --leave-one-out") as tmp:  # as prune --leave-one-out writes it
        _truth_file(tmp / "importance_ground_truth.json", capture(tiny.model, tiny.tokenizer, texts[1], info=tiny.info))
    argv = ["analyze", "--model", "tiny", "--prompts", str(tmp_path / "p.jsonl"), "--out", str(out), "--json"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    assert ["leave-one-out" in p["verdict"] for p in doc["per_prompt"]] == [False, True]
    assert "matches prompt 1 (of 2)" in doc["options"]["ground_truth"]
    assert (out / "importance_ground_truth.json").is_file()
