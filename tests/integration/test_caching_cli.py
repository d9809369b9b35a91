"""``kvscope caching`` end to end on the tiny model, and its bad-input paths."""

from __future__ import annotations

import json

import pytest

from kvscope.caching.caching_figures import CACHING_FIGURES
from tests.helpers import assert_one_line_error, run_cli

BASE = ["caching", "-m", "tiny", "--new-tokens", "4", "--repeats", "1"]


def test_caching_writes_figures_json_and_table(tmp_path, capsys):
    code, out, err = run_cli(BASE + ["--out", str(tmp_path), "--layer", "1"], capsys)
    assert code == 0, err
    for name in CACHING_FIGURES:
        assert (tmp_path / name).stat().st_size > 10_000, name
    data = json.loads((tmp_path / "caching.json").read_text())
    assert data["layer"] == 1 and data["projections"]["matches"]
    assert data["projections"]["q"] == [4, len(data["tokens"]), 16] and data["projections"]["k"][0] == 2
    assert data["gqa"]["kv_head_of_q_head"] == [0, 0, 1, 1] and data["gqa"]["saving_ratio"] == 2
    assert data["decode_step"]["query_rows"] == 1
    assert data["decode_step"]["cached_slots_consumed"] == len(data["tokens"]) - 1
    assert data["generation"]["tokens_equal"] and data["prefix_reuse"]["logits_match"]
    assert data["prefix_reuse"]["reused_tokens"] > 0
    for row in ("attention by hand vs o_proj input", "speedup with cache", "prefix reused"):
        assert row in out


def test_json_flag_prints_the_same_numbers(tmp_path, capsys):
    code, out, err = run_cli(
        BASE + ["--out", str(tmp_path), "--json", "--prompt", "ab cd", "--second-prompt", "ab ce"], capsys
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["prefix_reuse"]["shared_prefix_tokens"] == 4 and data["prefix_reuse"]["prompt2_tokens"] == 5
    assert json.loads((tmp_path / "caching.json").read_text())["prefix_reuse"] == data["prefix_reuse"]


def test_no_shared_prefix_is_reported_with_the_figure_drawn(tmp_path, capsys):
    code, out, err = run_cli(BASE + ["--out", str(tmp_path), "--prompt", "abc def", "--second-prompt", "xyz"], capsys)
    assert code == 0, err
    assert "0 tokens (no shared prefix)" in out and "shares no prefix" in " ".join(err.split())
    assert (tmp_path / "prefix_reuse.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "caching.json").read_text())["prefix_reuse"]
    assert data["reused_tokens"] == 0 and data["flops"]["saved"]["total"] == 0 and data["logits_match"]


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--layer", "2"], "--layer 2 is out of range: the model has 2 layers (0-1)"),
        (["--layer", "-1"], "out of range"),
        (["--prompt", "   "], "prompt is empty"),
        (["--second-prompt", " "], "--second-prompt is empty"),
        (["--prompt", "a"], "at least 2 tokens"),
        (["--new-tokens", "0"], "--new-tokens"),
        (["--new-tokens", "4096"], "--new-tokens must be between 1 and 4095"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, extra, fragment):
    out = tmp_path / "out"
    code, _, err = run_cli(BASE + ["--out", str(out)] + extra, capsys)
    assert_one_line_error(err, code, 2)
    assert fragment in err
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(BASE + ["--out", str(tmp_path / "f")], capsys)
    assert_one_line_error(err, code, 2)
    assert "is a file" in err and (tmp_path / "f").read_text() == "x"


def test_a_second_run_replaces_the_folder_whole(tmp_path, capsys):
    from kvscope.fileio import atomic_dir

    with atomic_dir(tmp_path, command="caching") as tmp:  # an earlier run's file, no longer written
        (tmp / "stale.txt").write_text("old run")
    code, _, err = run_cli(BASE + ["--out", str(tmp_path), "--prompt", "ab cd", "--second-prompt", "ab ce"], capsys)
    assert code == 0, err
    assert not (tmp_path / "stale.txt").exists() and (tmp_path / "caching.json").is_file()


def test_help_has_an_example(capsys):
    code, out, _ = run_cli(["caching", "-h"], capsys)
    assert code == 0 and "Example" in out and "--second-prompt" in out
