"""Issue 19, the rest: a full disk during a snapshot save, file modes, CSP meta tags in the bench and
compare reports, ``KVSCOPE_DEBUG=1`` keeping exit codes, Ctrl+C during interpreter exit, the memory
server's idle timeout and connection cap, library misuse raising built-in exceptions."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run_cli

ROOT = str(Path(__file__).resolve().parents[2])
CSP = "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'"


def _finite_snapshot():
    from tests.unit.test_snapshot import make_snapshot

    s = make_snapshot()
    s.keys, s.pre_rope_keys = [k.nan_to_num() for k in s.keys], [k.nan_to_num() for k in s.pre_rope_keys]
    return s


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs (needs root; skipped elsewhere)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_during_snapshot_save_is_one_line_and_leaves_nothing(full_disk, capsys):
    code, _, err = run_cli(
        ["capture", "-m", "tiny", "--prompt", "hello " * 200, "-o", str(full_disk / "s.kvs")], capsys
    )
    assert_one_line_error(err, code, 1)
    assert "no space left on device" in err, err
    assert os.listdir(full_disk) == []


def test_snapshot_files_get_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        _finite_snapshot().save(tmp_path / "s.kvs")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "s.kvs").iterdir()}
    assert modes == {"snapshot.json": 0o644, "tensors.safetensors": 0o644}


def test_bench_and_compare_reports_carry_a_csp_meta_tag(tmp_path, capsys):
    for name in ("a.kvs", "b.kvs"):
        _finite_snapshot().save(tmp_path / name)
    code, _, err = run_cli(
        ["compare", str(tmp_path / "a.kvs"), str(tmp_path / "b.kvs"), "-o", str(tmp_path / "c")], capsys
    )
    assert code == 0, err
    assert CSP in (tmp_path / "c" / "report.html").read_text()
    argv = ["bench", "-m", "tiny", "-t", "passkey", "--samples", "1", "--strategies", "snapkv", "--ratios", "0.5"]
    code, _, err = run_cli([*argv, "--quantize", "", "-o", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert CSP in (tmp_path / "b" / "report.html").read_text()


def test_debug_shows_a_traceback_and_keeps_the_exit_code(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KVSCOPE_DEBUG", "1")
    code, _, err = run_cli(["analyze", "--snapshot", str(tmp_path / "missing.kvs"), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("kvscope: error:"), err


def test_ctrl_c_during_interpreter_exit_prints_no_traceback():
    script = (
        "import atexit, os, signal, sys, time\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(1)))\n"
        "sys.argv = ['kvscope', 'memory', '--list', '--json']\n"
        "from kvscope.cli import main\n"
        "main()\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in proc.stderr and proc.returncode == 130, proc.stderr[-2000:]


def test_memory_server_caps_connections_and_drops_idle_ones(monkeypatch):
    from kvscope.kit import pages as server
    from kvscope.memory import catalog
    from kvscope.memory.server import serve_in_thread

    monkeypatch.setattr(server, "IDLE_TIMEOUT_S", 0.5)
    srv, url = serve_in_thread(catalog.page_data())
    port = srv.server_address[1]
    try:
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(server.MAX_CONNECTIONS + 40)]
        time.sleep(0.3)
        assert threading.active_count() - before <= server.MAX_CONNECTIONS
        time.sleep(1.5)  # past the idle timeout: every handler thread is gone
        assert threading.active_count() - before <= 1
        for s in idle:
            s.close()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            assert s.recv(12).startswith(b"HTTP/1.0 200")
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    "call,kind,needle",
    [
        (lambda ks, m, t: ks.analyze("not a snapshot"), TypeError, "snapshot must be a KVSnapshot"),
        (lambda ks, m, t: ks.capture(None, None, "x"), TypeError, "model must be a loaded transformers model"),
        (lambda ks, m, t: ks.capture(m, t, 5), TypeError, "capture takes a string, a list of strings, token ids"),
        (lambda ks, m, t: ks.compare("a.kvs", "b.kvs"), TypeError, "snap_a must be a KVSnapshot"),
        (lambda ks, m, t: ks.bench(m, t, tasks="passkey"), TypeError, "tasks must be a list such as ['passkey']"),
        (lambda ks, m, t: ks.bench(m, t, tasks=["passkey"], ratios=[0.5, 0.5]), ValueError, "ratios lists 0.5 twice"),
        (lambda ks, m, t: ks.KVSnapshot.load("/no/such.kvs"), FileNotFoundError, "does not exist"),
        (lambda ks, m, t: ks.compare_pruning(None, t, "a b c"), TypeError, "model must be"),
        (lambda ks, m, t: ks.explain_caching(m, None), TypeError, "tokenizer must be"),
        (lambda ks, m, t: ks.estimate_memory(5, "h100-sxm"), TypeError, "model must be a catalog name"),
        (lambda ks, m, t: ks.estimate_memory("llama-3.1-8b", 5), TypeError, "gpu must be a catalog name"),
        (lambda ks, m, t: ks.estimate_memory("llama-3.1-8b", "h100-sxm", batch="x"), TypeError, "batch must be an"),
        (lambda ks, m, t: ks.estimate_memory("llama-3.1-8b", "h100-sxm", batch=0), ValueError, "batch must be betw"),
        (lambda ks, m, t: ks.estimate_memory(kv_dtype=8), TypeError, "kv_dtype must be a string"),
        (lambda ks, m, t: ks.estimate_memory(gpu_memory_utilization="0.9"), TypeError, "gpu_memory_utilization must"),
        (lambda ks, m, t: ks.estimate_memory(flash="no"), TypeError, "flash must be True or False"),
        (lambda ks, m, t: ks.load_model(None), TypeError, "name must be a model name"),
        (lambda ks, m, t: ks.load_model(3), TypeError, "name must be a model name"),
        (lambda ks, m, t: ks.load_model("tiny", device=0), TypeError, "device must be a string"),
        (lambda ks, m, t: ks.load_model("tiny", dtype=["float32"]), TypeError, "dtype must be a torch dtype"),
        (lambda ks, m, t: ks.load_model("tiny", trust_remote_code="yes"), TypeError, "trust_remote_code must be"),
    ],
)
def test_library_misuse_raises_built_in_exceptions(call, kind, needle):
    import kvscope as ks

    model, tok, _ = ks.load_model("tiny")
    with pytest.raises(kind) as err:
        call(ks, model, tok)
    assert needle in str(err.value) and "--" not in str(err.value), str(err.value)


# issue 19 point 4: every prompt of a many-prompt analyze is measured before the first one runs
def test_analyze_texts_refuses_a_too_long_second_prompt_before_any_capture(tiny, monkeypatch):
    from kvscope.analyze import analysis
    from kvscope.capture import capturing
    from kvscope.errors import UsageError

    def no_capture(*_a, **_k):
        raise AssertionError("a prompt was captured before every length was checked")

    monkeypatch.setattr(capturing, "capture", no_capture)
    limit = tiny.info.max_positions
    texts = ["a short first prompt", "word " * (limit + 10)]
    with pytest.raises(UsageError) as err:
        analysis.analyze_texts(tiny.model, tiny.tokenizer, texts, info=tiny.info)
    message = str(err.value)
    assert message.startswith("prompt 2 of 2 has ") and f"at most {limit:,}" in message, message
    assert "--" not in message and err.value.param == "truncate"


def test_analyze_texts_truncates_a_too_long_prompt_when_asked(tiny, caplog):
    import dataclasses

    from kvscope.analyze import analysis

    limit = 32
    info = dataclasses.replace(tiny.info, max_positions=limit)
    with caplog.at_level("WARNING"):
        result = analysis.analyze_texts(
            tiny.model, tiny.tokenizer, ["a short first prompt", "word " * 100], info=info, truncate=True
        )
    assert result.metrics["per_prompt"][1]["tokens"] == limit
    assert "truncated" in caplog.text
