"""``--out`` never deletes what kvscope did not write (issue 19).

A folder holding a user's file, then a ``.git`` folder, given as ``--out`` to bench, analyze, compare and
mas: refused with exit 2 before any work (no model or snapshot is loaded), and both survive. Prune's
leave-one-out files survive an ``analyze`` into the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run_cli

T = ["-m", "tiny"]


def _argv(command: str, out: str, snaps: Path) -> list[str]:
    return {
        "bench": ["bench", *T, "--samples", "1", "-o", out],
        "analyze": ["analyze", *T, "--prompt", "hello there", "-o", out],
        "compare": ["compare", str(snaps / "a.kvs"), str(snaps / "b.kvs"), "-o", out],
        "mas": ["mas", "--method", "baseline", *T, "--max_samples", "1", "--out", out],
    }[command]


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    from tests.unit.test_snapshot import make_snapshot

    root = tmp_path_factory.mktemp("snaps")
    for name in ("a.kvs", "b.kvs"):
        s = make_snapshot()
        s.keys[1], s.pre_rope_keys[1] = s.keys[1].nan_to_num(), s.pre_rope_keys[1].nan_to_num()
        s.save(root / name)
    return root


@pytest.fixture
def no_work(monkeypatch):
    """Any model or snapshot load fails the test: the refusal must come first."""

    def boom(*a, **k):
        raise AssertionError("work started before --out was checked")

    import kvscope.cli.common
    import kvscope.snapshot

    monkeypatch.setattr(kvscope.cli.common, "load", boom)
    monkeypatch.setattr(kvscope.snapshot.KVSnapshot, "load", classmethod(lambda cls, *a, **k: boom()))


def _snapshot_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", ["bench", "analyze", "compare", "mas"])
def test_a_users_file_then_a_git_folder_survive(tmp_path, capsys, monkeypatch, snaps, no_work, command):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "project"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    for step in ("user file", ".git"):
        if step == ".git":
            (out / ".git" / "objects").mkdir(parents=True)
            (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        before = _snapshot_of(out)
        for where in (str(out), "project"):
            code, _, err = run_cli(_argv(command, where, snaps), capsys)
            assert_one_line_error(err, code, 2)
            assert "holds files kvscope did not write" in err and str(out) in err, err
            assert _snapshot_of(out) == before, step
        assert sorted(os.listdir(tmp_path)) == ["project"], "a temporary was left"


def test_out_as_the_working_clone_is_refused(tmp_path, capsys, monkeypatch, snaps, no_work):
    (tmp_path / ".git").mkdir()
    (tmp_path / "README.md").write_text("x")
    monkeypatch.chdir(tmp_path)
    for command in ("bench", "analyze", "compare", "mas"):
        code, _, err = run_cli(_argv(command, ".", snaps), capsys)
        assert_one_line_error(err, code, 2)
    assert sorted(os.listdir(tmp_path)) == [".git", "README.md"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["compare", "{s}/a.kvs", "{s}/b.kvs", "-o", "{s}/a.kvs"], "it is the input"),
        (["compare", "{s}/a.kvs", "{s}/b.kvs", "-o", "{s}"], "it holds the input"),
        (["analyze", "--snapshot", "{s}/a.kvs", "-o", "{s}/a.kvs"], "it is the input"),
        (
            ["analyze", "--snapshot", "{s}/a.kvs", "--ground-truth", "{s}/a.kvs/snapshot.json", "-o", "{s}/a.kvs"],
            "input",
        ),
    ],
)
def test_out_equal_to_or_above_an_input_is_refused(tmp_path, capsys, snaps, no_work, argv, needle):
    before = _snapshot_of(snaps)
    code, _, err = run_cli([a.replace("{s}", str(snaps)) for a in argv], capsys)
    assert_one_line_error(err, code, 2)
    assert needle in err, err
    assert _snapshot_of(snaps) == before


def test_analyze_after_prune_keeps_prunes_files(tmp_path, capsys):
    out = tmp_path / "x"
    prune = ["prune", *T, "--prompt", "The lamp flashes twice.", "--continuation", " It flashes.", "--repeats", "1"]
    code, _, err = run_cli([*prune, "--leave-one-out", "--out", str(out)], capsys)
    assert code == 0, err
    png = (out / "importance_ground_truth.png").read_bytes()
    for _ in range(2):  # the second analyze replaces its own files only
        code, _, err = run_cli(["analyze", *T, "--prompt", "The lamp flashes twice.", "--out", str(out)], capsys)
        assert code == 0, err
        assert (out / "importance_ground_truth.png").read_bytes() == png
        assert (out / "importance_ground_truth.json").is_file() and (out / "report.html").is_file()
    code, _, err = run_cli([*prune, "--leave-one-out", "--out", str(out)], capsys)  # prune again: analyze's stay
    assert code == 0, err
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()


def test_force_replaces_a_foreign_folder(tmp_path, capsys, snaps):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    argv = _argv("compare", str(out), snaps)
    code, _, err = run_cli([*argv, "--force"], capsys)
    assert code == 0, err
    assert not (out / "notes.txt").exists() and (out / "report.html").is_file()
