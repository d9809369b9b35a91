"""Atomic writes: all or nothing, usual permissions, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvscope.errors import UsageError
from kvscope.fileio import atomic_path, ensure_dir, write_json, write_text
from tests.helpers import crash_in_child


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


# ----------------------------------------------------------------------------- atomic folders and crashes

import signal  # noqa: E402

import kvscope.fileio as fileio  # noqa: E402
from kvscope.fileio import atomic_dir, check_out_dir, check_out_file, clean_stale, read_text_input  # noqa: E402

STEPS_EXCHANGE = ["tmp", "written", "swap", "swapped"]
STEPS_FALLBACK = ["tmp", "written", "swap", "moved-old", "swapped"]


def write_run(dest, tag: str, n: int = 3) -> None:
    with atomic_dir(dest) as tmp:
        for i in range(n):
            (tmp / f"f{i}.txt").write_text(f"{tag}{i}")


def contents(dest) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(dest.iterdir()) if p.name != fileio.outdir.MARKER}


@pytest.fixture(params=["exchange", "fallback"])
def swap_mode(request, monkeypatch):
    if request.param == "fallback":
        monkeypatch.setattr(fileio, "exchange", lambda a, b: False)
    return request.param


def test_exchange_is_available_here(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    assert fileio.exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b" / "x").read_text() == "a" and not (tmp_path / "a" / "x").exists()


def test_atomic_dir_replaces_whole_folder(tmp_path, swap_mode):
    dest = tmp_path / "out"
    write_run(dest, "old", n=4)
    write_run(dest, "new", n=2)
    assert contents(dest) == {"f0.txt": "new0", "f1.txt": "new1"}  # nothing of the old run mixed in
    assert os.listdir(tmp_path) == ["out"]


def test_crash_at_every_step_leaves_old_or_new_and_next_run_cleans(tmp_path, swap_mode):
    old, new = {f"f{i}.txt": f"old{i}" for i in range(3)}, {f"f{i}.txt": f"new{i}" for i in range(3)}
    for step in STEPS_EXCHANGE if swap_mode == "exchange" else STEPS_FALLBACK:
        dest = tmp_path / step / "out"
        write_run(dest, "old")
        crash_in_child(step, lambda d=dest: write_run(d, "new"))
        clean_stale(dest)  # what the next run does first
        assert contents(dest) in (old, new), step
        assert os.listdir(dest.parent) == ["out"], step
        write_run(dest, "third")
        assert os.listdir(dest.parent) == ["out"] and contents(dest)["f0.txt"] == "third0"


def test_exception_at_every_step_keeps_old_output(tmp_path, swap_mode, monkeypatch):
    dest = tmp_path / "out"
    write_run(dest, "old")
    for step in ("tmp", "written", "swap"):

        def boom(s, step=step):
            if s == step:
                raise RuntimeError(step)

        monkeypatch.setattr(fileio, "crash_hook", boom)
        with pytest.raises(RuntimeError):
            write_run(dest, "new")
        assert contents(dest) == {f"f{i}.txt": f"old{i}" for i in range(3)} and os.listdir(tmp_path) == ["out"]


def test_failed_run_removes_the_parent_folders_it_created(tmp_path):
    dest = tmp_path / "a" / "b" / "out"
    with pytest.raises(KeyError):
        with atomic_dir(dest) as tmp:
            (tmp / "x").write_text("x")
            raise KeyError("fail")
    assert os.listdir(tmp_path) == []


def test_terminate_signal_cleans_like_ctrl_c(tmp_path):
    from kvscope.errors import Terminated

    old = signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(Terminated(s)))
    try:
        with pytest.raises(Terminated):
            with atomic_dir(tmp_path / "new" / "out") as tmp:
                (tmp / "x").write_text("x")
                os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_of_dead_writers_go_live_ones_stay(tmp_path):
    dest = tmp_path / "out.kvs"
    dead = os.fork()
    if dead == 0:  # pragma: no cover
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / f".out.kvs.{dead}-abc123.tmp").mkdir()
    (tmp_path / f".out.kvs.{dead}-xyz.tmp.png").write_text("partial")
    (tmp_path / f".out.kvs.{os.getpid()}-live.tmp").mkdir()
    (tmp_path / ".other.1-a.tmp").mkdir()
    removed = clean_stale(dest)
    assert sorted(p.name for p in removed) == sorted([f".out.kvs.{dead}-abc123.tmp", f".out.kvs.{dead}-xyz.tmp.png"])
    assert sorted(os.listdir(tmp_path)) == sorted([f".out.kvs.{os.getpid()}-live.tmp", ".other.1-a.tmp"])


def test_atomic_path_crash_leaves_old_file_and_next_write_cleans(tmp_path):
    dest = tmp_path / "fig.png"
    write_text(dest, "old")

    def child():
        with fileio.atomic_path(dest, suffix=".png") as tmp:
            tmp.write_text("half")

    crash_in_child("written", child)
    assert dest.read_text() == "old" and len(os.listdir(tmp_path)) == 2
    write_text(dest, "new")
    assert dest.read_text() == "new" and os.listdir(tmp_path) == ["fig.png"]


# ----------------------------------------------------------------------------- reading inputs


def test_read_text_input_accepts_utf8_and_strips_bom(tmp_path):
    f = tmp_path / "p.txt"
    f.write_bytes("\ufeffhé".encode())
    assert read_text_input(f, "--prompt-file") == "hé"


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda d: d / "missing.txt", "No such file"),
        (lambda d: d, "not a regular file"),
        (lambda d: Path("/dev/zero"), "not a regular file"),
        (lambda d: (os.mkfifo(d / "fifo"), d / "fifo")[1], "not a regular file"),
        (lambda d: ((d / "bad.txt").write_bytes(b"ok \xff\xfe"), d / "bad.txt")[1], "not valid UTF-8 text (byte 3)"),
        (lambda d: ((d / "big.txt").write_bytes(b"x" * 101), d / "big.txt")[1], "over the limit of 100"),
    ],
)
def test_read_text_input_refuses(tmp_path, make, fragment):
    path = make(tmp_path)
    with pytest.raises(UsageError, match="--data") as err:
        read_text_input(path, "--data", limit=100)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_output_checks_create_nothing(tmp_path):
    assert check_out_dir(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b" / "c"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_out_dir(tmp_path / "file")
    with pytest.raises(UsageError, match="is not a folder"):
        check_out_dir(tmp_path / "file" / "sub")
    with pytest.raises(UsageError, match="does not exist"):
        check_out_file(tmp_path / "no" / "x.html", "--export")
    with pytest.raises(UsageError, match="is a folder"):
        check_out_file(tmp_path, "--export")
    assert os.listdir(tmp_path) == ["file"]


def test_temporaries_of_kvscope_0_1_go_once_an_hour_old(tmp_path):
    dest = tmp_path / "s.kvs"
    for name in (".s.kvs.old", ".s.kvs.ab12cd_e", ".s.kvs.oldabcde", ".s.kvs.x1y2z3w4.tmp", ".s.kvs.fresh123"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)
        if name != ".s.kvs.fresh123":
            os.utime(tmp_path / name, (1, 1))
    clean_stale(dest)
    assert (dest / "f").read_text() == ".s.kvs.old"  # the old code's backup, put back where it belongs
    assert sorted(os.listdir(tmp_path)) == [".s.kvs.fresh123", "s.kvs"]
