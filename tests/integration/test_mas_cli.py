"""``kvscope mas`` end to end on the tiny model, its files, and one-line errors for bad input."""

import json
import logging

import pytest

from kvscope.mas.prompts import render
from kvscope.models import byte_tokenizer
from tests.helpers import assert_one_line_error, run_cli

TINY = ["--model", "tiny", "--max_new_tokens", "4", "--latent_steps", "2", "--max_samples", "2"]


def test_end_to_end_all_methods_with_knn_and_heatmaps(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        [
            "mas",
            "--method",
            "all",
            *TINY,
            "--knn_filter",
            "--knn_percentage",
            "0.5",
            "--show_heatmaps",
            "--show_heatmaps_singlelayer",
            "--out",
            str(out),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    res = json.loads(stdout)
    assert set(res["methods"]) == {"baseline", "text_mas", "latent_mas"}
    lat, txt = res["methods"]["latent_mas"], res["methods"]["text_mas"]
    assert lat["generated_tokens_per_agent"]["planner"] == 0 and lat["kv_bytes_handed"] > 0
    assert txt["kv_bytes_handed"] == 0 and txt["generated_tokens"] == sum(txt["generated_tokens_per_agent"].values())
    assert res["ratios"]["token_ratio_latent_vs_text"] == pytest.approx(
        lat["generated_tokens"] / txt["generated_tokens"]
    )
    assert lat["knn_bytes_after"] < lat["knn_bytes_before"]
    assert json.loads((out / "results.json").read_text())["methods"] == res["methods"]
    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    assert [(t["method"], t["problem"]) for t in trace] == [
        (m, i) for m in ("baseline", "text_mas", "latent_mas") for i in (1, 2)
    ]
    assert all(len(t["knn_events"]) == 3 for t in trace if t["method"] == "latent_mas")
    names = sorted(p.name for p in (out / "charts").iterdir())
    for n in (1, 2):  # the real problem number, never the agent count
        for t in ("planner_to_critic", "critic_to_refiner", "refiner_to_judger"):
            assert f"heatmap_{t}_problem{n}.png" in names and f"heatmap_singlelayer_{t}_problem{n}.png" in names
    assert len(names) == 12


def test_table_output_and_custom_charts_dir(tmp_path, capsys):
    charts = tmp_path / "deep" / "charts"
    code, stdout, err = run_cli(
        [
            "mas",
            "--method",
            "latent_mas",
            *TINY,
            "--max_samples",
            "1",
            "--show_heatmaps",
            "--out",
            str(tmp_path / "o"),
            "--charts",
            str(charts),
            "--model_name",
            "tiny",
        ],
        capsys,
    )
    assert code == 0, err
    assert "latent_mas" in stdout and "accuracy" in stdout
    assert sorted(p.name for p in charts.iterdir() if p.name[0] != ".")[0] == "heatmap_critic_to_refiner_problem1.png"


def test_gsm8k_from_jsonl_with_a_malformed_line(tmp_path, capsys):
    data = tmp_path / "g.jsonl"
    data.write_text('{"question": "2 + 3?", "answer": "#### 5"}\n{broken\n')
    code, stdout, err = run_cli(
        [
            "mas",
            "--method",
            "baseline",
            *TINY,
            "--task",
            "gsm8k",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads(stdout)["methods"]["baseline"]["problems"] == 1
    assert "line 2" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--method", "best"], "method"),
        (["--method", "all", "--task", "mmlu"], "task"),
        (["--method", "latent_mas", "--knn_percentage", "0"], "--knn-percentage"),
        (["--method", "latent_mas", "--knn_percentage", "1.5"], "--knn-percentage"),
        (["--method", "latent_mas", "--latent_steps", "-1"], "--latent-steps"),
        (["--method", "latent_mas", "--task", "gsm8k"], "--data"),
        (["--method", "latent_mas", "--generate_bs", "0"], "generate_bs"),
        (["--method", "latent_mas", "--task", "gsm8k", "--data", "/nonexistent/x.jsonl"], "cannot read"),
        (["--method", "latent_mas", "--knn_positions", "fork"], "knn_positions"),
        (["--method", "latent_mas", "--top_k", "0"], "top_k"),
        (["--method", "latent_mas", "--prompt", "hierarchical", "--include_old_prompts"], "--include-old-prompts"),
        (["--method", "latent_mas", "--max_samples", "0"], "--samples must be positive"),
        (["--method", "latent_mas", "--out", "/dev/null/mas"], "/dev/null is not a folder"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(["mas", "--model", "tiny", "--out", str(tmp_path), *args], capsys)
    assert_one_line_error(err, code, 2)
    assert needle in err


def test_fork_reproduction_flags_are_recorded(tmp_path, capsys):
    code, stdout, err = run_cli(
        [
            "mas",
            "--method",
            "latent_mas",
            *TINY,
            "--max_samples",
            "1",
            "--knn_filter",
            "--knn_positions",
            "reuse",
            "--include_old_prompts",
            "--top_k",
            "50",
            "--out",
            str(tmp_path / "o"),
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    config = json.loads(stdout)["config"]
    assert (config["knn_positions"], config["include_old_prompts"], config["top_k"]) == ("reuse", True, 50)
    agents = json.loads((tmp_path / "o" / "trace.jsonl").read_text())["agents"]
    assert agents[1]["prompt_tokens"] > 2 * agents[0]["prompt_tokens"] - 60  # the critic's prompt holds the planner's


def test_no_chat_template_falls_back_with_a_warning(caplog):
    tok = byte_tokenizer()
    tok.chat_template = None
    with caplog.at_level(logging.WARNING, logger="kvscope"):
        text = render(tok, "What is 1 + 1?", system="Be brief.")
    assert text == "System: Be brief.\n\nUser: What is 1 + 1?\n\nAssistant:"
    assert "no chat template" in caplog.text
