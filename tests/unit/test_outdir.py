"""Output-folder ownership (issue 19): kvscope replaces or removes only what it wrote itself."""

from __future__ import annotations

import json
import os

import pytest

from kvscope.errors import UsageError
from kvscope.fileio import atomic_dir, check_out_dir
from kvscope.outdir import MARKER, read_marker


def run(dest, command: str, names: dict[str, str], **kw) -> None:
    with atomic_dir(dest, command=command, **kw) as tmp:
        for name, text in names.items():
            (tmp / name).write_text(text)


def tree(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER
    }


def test_a_new_folder_gets_the_marker_of_its_command(tmp_path):
    run(tmp_path / "out", "bench", {"a.json": "1", "b.png": "2"})
    assert read_marker(tmp_path / "out") == {"bench": ["a.json", "b.png"]}
    assert json.loads((tmp_path / "out" / MARKER).read_text())["written_by"] == "kvscope"


def test_an_empty_folder_is_used_in_place(tmp_path):
    (tmp_path / "out").mkdir()
    inode = os.stat(tmp_path / "out").st_ino
    run(tmp_path / "out", "analyze", {"a": "1"})
    assert os.stat(tmp_path / "out").st_ino == inode and tree(tmp_path / "out") == {"a": "1"}


@pytest.mark.parametrize("foreign", ["notes.txt", ".git"])
def test_a_folder_with_foreign_files_is_refused_before_and_after_the_work(tmp_path, foreign):
    out = tmp_path / "out"
    out.mkdir()
    (out / foreign).mkdir() if foreign == ".git" else (out / foreign).write_text("mine")
    before = sorted(os.listdir(out))
    with pytest.raises(UsageError, match=f"cannot write out {out}: the folder holds files kvscope did not write") as e:
        check_out_dir(out, command="bench")
    assert e.value.param == "out"  # the CLI spells it --out (kvscope.cli.flag_message)
    with pytest.raises(UsageError, match="force=True"):
        run(out, "bench", {"a": "1"})
    assert sorted(os.listdir(out)) == before and os.listdir(tmp_path) == ["out"]
    run(out, "bench", {"a": "1"}, force=True)  # --force replaces it whole
    assert tree(out) == {"a": "1"}


def test_the_same_command_replaces_its_own_files_and_keeps_a_users_later_file(tmp_path):
    out = tmp_path / "out"
    run(out, "bench", {"old.png": "o", "a.json": "1"})
    (out / "mine.txt").write_text("user")
    run(out, "bench", {"a.json": "2"})
    assert tree(out) == {"a.json": "2", "mine.txt": "user"}
    assert read_marker(out) == {"bench": ["a.json"]}


def test_another_command_adds_its_files_and_keeps_the_first_ones(tmp_path):
    out = tmp_path / "out"
    run(out, "prune", {"importance_ground_truth.png": "p", "importance_ground_truth.json": "j"})
    run(out, "analyze", {"report.html": "r"})
    run(out, "analyze", {"report.html": "r2"})
    assert tree(out) == {"importance_ground_truth.png": "p", "importance_ground_truth.json": "j", "report.html": "r2"}
    assert read_marker(out) == {
        "analyze": ["report.html"],
        "prune": ["importance_ground_truth.json", "importance_ground_truth.png"],
    }


def test_a_name_another_command_wrote_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    run(out, "analyze", {"report.html": "analyze"})
    with pytest.raises(UsageError, match="report.html there was written by kvscope analyze"):
        run(out, "compare", {"report.html": "compare"})
    assert tree(out) == {"report.html": "analyze"} and os.listdir(tmp_path) == ["out"]


def test_out_equal_to_or_above_an_input_is_refused(tmp_path):
    snap = tmp_path / "run.kvs"
    snap.mkdir()
    for out in (snap, tmp_path):
        with pytest.raises(UsageError, match="the input"):
            check_out_dir(out, command="analyze", inputs=[snap])
    check_out_dir(tmp_path / "other", command="analyze", inputs=[snap])


def test_an_input_another_command_wrote_into_out_is_allowed(tmp_path):
    out = tmp_path / "out"
    run(out, "prune", {"importance_ground_truth.json": "{}"})
    check_out_dir(out, command="analyze", inputs=[out / "importance_ground_truth.json"])
    run(out, "analyze", {"metrics.json": "{}"})
    with pytest.raises(UsageError, match="holds the input"):  # analyze's own file would be replaced
        check_out_dir(out, command="analyze", inputs=[out / "metrics.json"])


def test_the_working_folder_is_filled_in_place_and_never_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(".", "mas", {"results.json": "1"})
    (tmp_path / "mine.txt").write_text("user")
    run(".", "mas", {"results.json": "2"})
    assert tree(tmp_path) == {"results.json": "2", "mine.txt": "user"} and os.getcwd() == str(tmp_path)
    with pytest.raises(UsageError, match="working folder"):
        run(".", "mas", {"results.json": "3"}, force=True)


def test_a_folder_inside_the_output_is_carried_over_whole(tmp_path):
    out = tmp_path / "out"
    run(out, "caching", {"a.png": "1"})
    (out / "keep" / "deep").mkdir(parents=True)
    (out / "keep" / "deep" / "x").write_text("x")
    run(out, "caching", {"a.png": "2"})
    assert tree(out) == {"a.png": "2", "keep/deep/x": "x"}


def test_a_broken_marker_counts_as_no_marker(tmp_path):
    out = tmp_path / "out"
    run(out, "bench", {"a": "1"})
    (out / MARKER).write_text("[" * 100_000)
    with pytest.raises(UsageError, match="kvscope did not write"):
        run(out, "bench", {"a": "2"})
