"""``kvscope analyze`` end to end on the tiny model, a saved snapshot, and bad input."""

from __future__ import annotations

import json

import pytest

from kvscope.analyze.figure_registry import FIGURES
from tests.helpers import all_figure_files, assert_one_line_error, check_metrics, run_cli

ALL_FILES = all_figure_files()


PROMPT = "Alice paid 42 euros. <script>alert('x')</script> Bob!"


@pytest.fixture(scope="module")
def tiny_run(tiny, tmp_path_factory):
    """One full run: a ground-truth file waiting in the out dir, and a layer + head scan."""
    from kvscope.capture.capturing import encode_prompt
    from kvscope.cli import main

    out = tmp_path_factory.mktemp("analyze")
    ids = encode_prompt(tiny.tokenizer, PROMPT, 0)[0].tolist()
    gt = {
        "model": "tiny",
        "prompt": PROMPT,
        "tokens": [str(i) for i in ids],
        "token_ids": ids,
        "delta_loglik": [-float(i % 5) for i in range(len(ids))],
    }
    from kvscope.fileio import atomic_dir

    with atomic_dir(out, command="prune --leave-one-out") as tmp:  # as prune --leave-one-out writes it
        (tmp / "importance_ground_truth.json").write_text(json.dumps(gt))
    main(
        [
            "analyze",
            "--model",
            "tiny",
            "--prompt",
            PROMPT,
            "--out",
            str(out),
            "--json",
            "--scan",
            "--scan-heads",
            "--continuation",
            " Alice paid 42 euros.",
        ]
    )
    return out


def test_tiny_run_writes_every_file(tiny_run):
    for name in ALL_FILES + ["metrics.json", "report.html"]:
        assert (tiny_run / name).is_file(), name
    doc = json.loads((tiny_run / "metrics.json").read_text())
    check_metrics(doc, doc["prompt"]["tokens"])
    assert all("files" in v for v in doc["figures"].values())


def test_report_is_self_contained_and_escapes_script(tiny_run):
    html = (tiny_run / "report.html").read_text()
    assert html.count("<script") == 2  # the JSON data element and our own code, nothing injected
    assert "alert(" not in html.split('<script type="application/json"')[0]
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") == len(FIGURES)
    for spec in FIGURES.values():
        assert spec.explanation[:40].replace("'", "&#x27;").replace('"', "&quot;") in html


def test_snapshot_without_attention_skips_with_notes(tiny, tmp_path, capsys):
    from kvscope.capture.capturing import capture

    snap = capture(tiny.model, tiny.tokenizer, "The cat sat on the mat.", info=tiny.info)
    snap.save(tmp_path / "s.kvs")
    code, out, err = run_cli(
        ["analyze", "--snapshot", str(tmp_path / "s.kvs"), "--out", str(tmp_path / "o"), "--json"], capsys
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert "no attention data" in doc["figures"]["importance_validation"]["skipped"]
    assert "no model is loaded" in doc["figures"]["weight_magnitude_distribution"]["skipped"]
    assert "files" in doc["figures"]["low_importance_tokens"]
    assert any("No attention data" in w for w in doc["warnings"])


def test_ground_truth_is_read_from_the_out_dir(tiny_run):
    doc = json.loads((tiny_run / "metrics.json").read_text())
    assert doc["headline"]["verdict_reference"] == "leave_one_out"
    assert "leave-one-out" in doc["headline"]["verdict"]
    gt = doc["analyses"]["importance"]["partial"]["leave_one_out"]
    assert set(gt) == {"magnitude", "key_norm", "value_norm", "attention"}
    assert all(v is None or -1 <= v <= 1 for v in gt.values())
    assert (tiny_run / "importance_ground_truth.json").is_file()  # kept when the out dir is replaced


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--prompt", "   "], 2),
        (["--prompt-file", "/nonexistent/prompt.txt"], 2),
        (["--prompt", "hi there", "--layer", "7"], 2),
        (["--prompt", "hi", "--snapshot", "x.kvs"], 2),
    ],
)
def test_bad_input_is_one_line(argv, expected, tmp_path, capsys):
    code, _, err = run_cli(["analyze", "--model", "tiny", "--out", str(tmp_path / "out")] + argv, capsys)
    assert_one_line_error(err, code, expected)
    assert not (tmp_path / "out").exists()


def _prompts_cases(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "notext.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.md").write_text("hi")
    return {"empty.jsonl": "is empty", "notext.jsonl": 'no non-empty "text"', "folder": "no .txt files"}


def test_bad_prompts_and_layer_fail_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import kvscope.models

    def no_load(*a, **k):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(kvscope.models, "load_model", no_load)
    for name, message in _prompts_cases(tmp_path).items():
        code, _, err = run_cli(["analyze", "--prompts", str(tmp_path / name), "--out", str(tmp_path / "out")], capsys)
        assert_one_line_error(err, code, 2)
        assert message in err, err
    code, _, err = run_cli(["analyze", "--layer", "30", "--out", str(tmp_path / "out")], capsys)
    assert_one_line_error(err, code, 2)
    assert "30 layers" in err
    assert not (tmp_path / "out").exists()


def test_library_save_writes_what_the_cli_writes(tiny, tmp_path, capsys):
    """``kvscope.analyze(snap).save(dir)`` and ``kvscope analyze --snapshot`` give the same files."""
    from kvscope.analyze.analysis import analyze
    from kvscope.capture.capturing import capture

    snap = capture(tiny.model, tiny.tokenizer, PROMPT, info=tiny.info, attention=True, queries=True)
    snap.save(tmp_path / "s.kvs")
    code, _, err = run_cli(
        ["analyze", "--snapshot", str(tmp_path / "s.kvs"), "--out", str(tmp_path / "cli"), "--json"], capsys
    )
    assert code == 0, err
    result = analyze(snap)
    assert "figures" in repr(result) and "<img" in result._repr_html_()
    assert len(result._repr_html_().encode()) < 1_000_000  # thumbnails, not every figure full size
    png = result.figures["low_importance_tokens"]._repr_png_()  # shown inline in a notebook, any backend
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    result.save(tmp_path / "lib")
    cli_files = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert cli_files == sorted(p.name for p in (tmp_path / "lib").iterdir())
    assert (tmp_path / "cli" / "metrics.json").read_bytes() == (tmp_path / "lib" / "metrics.json").read_bytes()
    assert set(result.figures) <= set(FIGURES) and result.metrics["headline"]["verdict"] == result.verdict


def test_many_prompts_give_intervals(tiny, tmp_path, capsys):
    (tmp_path / "p.jsonl").write_text(
        "\n".join(
            json.dumps({"text": t})
            for t in ["Alice paid 42 euros in Paris.", "def f(x):\n    return x + 1", "Tom said: call me at 9."]
        )
    )
    code, out, err = run_cli(
        [
            "analyze",
            "--model",
            "tiny",
            "--prompts",
            str(tmp_path / "p.jsonl"),
            "--out",
            str(tmp_path / "many"),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "many" / "metrics.json").read_text())
    verdict = doc["headline"]["verdict"]
    assert doc["headline"]["prompts"] == 3 and "nan" not in verdict.lower()
    # the tiny model's near-uniform attention makes the reference monotone in position: no prompt has a value
    assert "over 3 prompts" in verdict or ("3 of 3 had no value" in verdict and "monotone" in verdict)
    drawn = [n for n, v in doc["figures"].items() if "files" in v]
    assert drawn == [n for n, s in FIGURES.items() if s.draw_many is not None]


def test_many_snapshots_verdict_has_an_interval_and_its_class_comes_from_it():
    from kvscope.analyze.analysis import analyze
    from kvscope.analyze.verdict import classify
    from tests.helpers import random_snapshot

    result = analyze([random_snapshot(layers=2, n=40, d=8, seed=s) for s in range(5)])
    mean, low, high = result.metrics["headline"]["magnitude_vs_reference"]
    assert low <= mean <= high and result.metrics["headline"]["verdict_reference"] == "attention"
    assert result.metrics["headline"]["verdict_kind"] == classify(mean, low, high)
    assert ("inconclusive" in result.verdict) == (classify(mean, low, high) == "inconclusive")
    rhos = result.metrics["aggregate"]["correlations"]["attention"]["magnitude"]
    assert len(rhos) == 5 and mean == pytest.approx(sum(rhos) / 5)
    assert set(result.figures) == {n for n, s in FIGURES.items() if s.draw_many is not None}


def test_default_prompt_set_loads_offline():
    from kvscope.analyze.prompt_set import load_prompts

    texts = load_prompts("default")
    assert len(texts) >= 8 and len(set(texts)) == len(texts) and all(len(t) > 200 for t in texts)


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(["analyze", "--model", "tiny", "--prompt", "hi", "--out", str(blocker / "sub")], capsys)
    assert_one_line_error(err, code, 2)
    assert "file is not a folder" in err


def test_scan_puts_the_measured_change_beside_the_score(tiny_run):
    scan = json.loads((tiny_run / "metrics.json").read_text())["scan"]
    assert len(scan["layers"]) == 2 and len(scan["heads"]) == 2 and len(scan["heads"][0]) == 2
    assert scan["baseline_ppl"] > 1 and -1 <= scan["spearman_heads"] <= 1


def test_scan_on_a_custom_prompt_needs_a_continuation(tmp_path, capsys):
    code, _, err = run_cli(
        ["analyze", "--model", "tiny", "--prompt", "Alice paid 42 euros.", "--scan", "--out", str(tmp_path), "--json"],
        capsys,
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert doc["scan"] is None and "--continuation" in doc["skipped_analyses"]["scan"]
