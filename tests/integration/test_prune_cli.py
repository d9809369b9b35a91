"""``kvscope prune`` end to end on the tiny model: the seed's flags, the modes' files, bad input."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from kvscope.prune.strategies import STRATEGIES
from tests.helpers import assert_one_line_error, run_cli

BASE = [
    "prune",
    "-m",
    "tiny",
    "--prompt",
    "The lamp flashes twice, then once.",
    "--continuation",
    " It flashes twice.",
    "--repeats",
    "1",
]


def test_seed_flags_as_written_and_dash_spellings(capsys):
    code, out, err = run_cli(BASE + ["--prune_layers", "0,1", "--prune_heads", "1", "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["plan"] == "layers 0,1 + kv_heads 1"
    assert d["change_pct"]["kv_bytes"] == pytest.approx(-50.0)
    assert d["pruned"]["masked_layers"] == [0, 1] and d["group_size"] == 2
    code, out2, err = run_cli(BASE + ["--prune-layers", "0,1", "--prune-heads", "1", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out2)["pruned"]["ppl"] == d["pruned"]["ppl"]


def test_table_output_mentions_gqa(capsys):
    code, out, err = run_cli(BASE + ["--strategy", "snapkv", "--ratio", "0.75", "--setting", "window=16"], capsys)
    assert code == 0, err
    assert "perplexity" in out and "KV cache bytes" in out and "float16" in out
    flat = " ".join(out.split())
    assert "kv_heads: each serves 2 of 4 query heads" in flat and "snapkv(window=16) 0.75" in flat
    assert "an example, not a ranking" in flat and "kvscope bench" in flat
    assert "warning: snapkv(window=16): budget 9 tokens < observation window 16" in flat  # 34 tokens


def test_help_says_one_text_is_an_example(capsys):
    code, out, _ = run_cli(["prune", "--help"], capsys)
    flat = " ".join(out.split())
    assert code == 0 and "an example, not a ranking" in flat and "kvscope bench" in flat
    assert f"{len(STRATEGIES)} strategies" in flat and all(name in flat for name in STRATEGIES)


def test_json_latency_spread_and_strategy_settings(capsys):
    code, out, err = run_cli(
        BASE
        + [
            "--strategy",
            "snapkv",
            "--ratio",
            "0.5",
            "--setting",
            "window=64",
            "--setting",
            "rounding=floor",
            "--repeats",
            "3",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["settings"] == {
        "strategy": "snapkv",
        "ratio": 0.5,
        "rounding": "floor",
        "window": 64,
        "kernel": 5,
        "sinks": 4,
    }
    lo, hi = d["baseline"]["continuation_ms_range"]
    assert lo <= d["baseline"]["continuation_ms"] <= hi
    assert isinstance(d["within_spread"]["decode_ms"], bool) and d["prefills"] == 1
    assert any("observation window 34" in w for w in d["warnings"])  # the prompt is shorter than 64


def test_quantize_json(capsys):
    code, out, err = run_cli(BASE + ["--quantize", "K4V2R0", "--json"], capsys)
    assert code == 0, err
    d = json.loads(out)
    assert d["plan"] == "K4V2G32R0" and d["pruned"]["kv_bytes"] < d["baseline"]["kv_bytes"] / 4
    assert d["pruned"]["kv_bytes_fp16"] == d["pruned"]["kv_bytes"]  # no full-precision residual left


def test_sweep_scan_loo_write_files(tmp_path, capsys):
    code, out, err = run_cli(BASE + ["--sweep", "--out", str(tmp_path), "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert len(rows) == 1 + len(STRATEGIES) * 4 + 3
    assert (tmp_path / "sweep.csv").read_text().count("\n") == len(rows) + 1
    assert json.loads((tmp_path / "sweep.json").read_text())["prefills"] == 1
    code, out, err = run_cli(BASE + ["--scan", "heads", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert (tmp_path / "prune_scan_heads.json").is_file()
    code, out, err = run_cli(BASE + ["--leave-one-out", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    gt = json.loads((tmp_path / "importance_ground_truth.json").read_text())
    assert list(gt) == ["model", "prompt", "tokens", "token_ids", "delta_loglik"]
    assert (
        len(gt["tokens"])
        == len(gt["token_ids"])
        == len(gt["delta_loglik"])
        == len("The lamp flashes twice, then once.")
    )
    for name in ("compression_pareto.png", "prune_scan_heads.png", "importance_ground_truth.png"):
        assert Image.open(tmp_path / name).size[0] > 200


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--prune_layers", "2"], "valid indices 0..1"),
        (["--prune_layers", "-1"], "valid indices 0..1"),
        (["--prune_heads", "2"], "2 kv_heads (GQA"),
        (["--prune_layers", "a,b"], "comma-separated integers"),
        (["--strategy", "knorm", "--ratio", "1.0"], "between 0 and 1"),
        (["--strategy", "knorm", "--ratio", "0"], "between 0 and 1"),
        (["--strategy", "quest"], ", ".join(STRATEGIES)),
        (["--strategy", "snapkv", "--setting", "window=abc"], "window must be int"),
        (["--strategy", "snapkv", "--setting", "window=0"], "window must be at least 1"),
        (["--strategy", "snapkv", "--setting", "kernel=4"], "kernel must be odd"),
        (
            ["--strategy", "knorm", "--setting", "window=8"],
            "knorm takes KEY=VALUE with KEY one of rounding, skip_layers",
        ),
        (["--strategy", "knorm", "--setting", "rounding=up"], "rounding must be ceil or floor"),
        (["--strategy", "adakv", "--setting", "floor=1.5"], "floor must be in [0, 1]"),
        (["--prune_layers", "0", "--setting", "window=8"], "--setting needs --strategy"),
        (["--quantize", "K4"], "cannot parse quantize spec"),
        (["--quantize", "int4"], "cannot parse quantize spec"),
        (["--ratio", "0.5"], "--ratio needs --strategy"),
        (["--sweep", "--strategy", "knorm"], "drop --strategy"),
        ([], "nothing to prune"),
        (["--repeats", "0", "--prune_layers", "0"], "at least 1"),
        (["--scan", "tokens"], "tokens"),
    ],
)
def test_bad_input_one_line_exit_2(args, needle, capsys):
    code, _, err = run_cli(BASE + args, capsys)
    assert_one_line_error(err, code, 2)
    assert needle in err


def test_empty_continuation(capsys):
    code, _, err = run_cli(["prune", "-m", "tiny", "--continuation", "  ", "--prune_layers", "0"], capsys)
    assert_one_line_error(err, code, 2)
    assert "continuation is empty" in err


def test_out_that_is_a_file_is_refused_before_loading(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    code, _, err = run_cli(["prune", "-m", "no-such-model", "--sweep", "--out", str(target)], capsys)
    assert_one_line_error(err, code, 2)
    assert "it exists and is not a folder" in err and target.read_text() == "x"
