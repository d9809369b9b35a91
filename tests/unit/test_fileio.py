"""Atomic writes: all or nothing, usual permissions, clear errors."""

from __future__ import annotations

import os

import pytest

from kvscope.errors import UsageError
from kvscope.fileio import atomic_path, ensure_dir, write_json, write_text


def test_write_is_atomic_and_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "out.txt"
    write_text(dest, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_written_files_get_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_json_has_no_nan_and_converts_tuples(tmp_path):
    write_json(tmp_path / "m.json", {"a": float("nan"), "b": (1, 2)})
    assert (tmp_path / "m.json").read_text().split() == ["{", '"a":', "null,", '"b":', "[", "1,", "2", "]", "}"]


def test_unwritable_places_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        write_text(tmp_path / "missing" / "a.txt", "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create output directory"):
        ensure_dir(tmp_path / "file" / "sub")
