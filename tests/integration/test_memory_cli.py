"""``kvscope memory`` on the command line: numbers, export, configs on the meta device, bad input."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest

from kvscope.cli import main
from kvscope.memory import budget, catalog


def run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(["memory", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def run_ok(capsys, *args):
    try:
        main(["memory", *args])
    except SystemExit as exc:  # pragma: no cover - a failure shows its message
        raise AssertionError(capsys.readouterr().err) from exc
    out = capsys.readouterr()
    return out.out, out.err


def test_json_matches_the_formulas(capsys):
    out, _ = run_ok(
        capsys,
        "--model",
        "llama-3.1-8b",
        "--gpu",
        "h100-sxm",
        "--batch",
        "32",
        "--context",
        "8192",
        "--kv-dtype",
        "fp8",
        "--mode",
        "static",
        "--tp",
        "2",
        "--engine",
        "vllm",
        "--json",
    )
    got = json.loads(out)
    want = budget.compute(
        catalog.models()["llama-3.1-8b"],
        catalog.gpus()["h100-sxm"],
        {"batch": 32, "context": 8192, "kv_dtype": "fp8", "mode": "static", "tp": 2, "engine": "vllm"},
    )
    assert got["kv_bytes_per_token"] == 65_536 == want["kv_bytes_per_token"]
    assert got["kv_reserved_bytes"] == 32 * 8192 * 65_536
    assert got["engine"]["kv_blocks"] == want["engine"]["kv_blocks"] > 0
    assert got["per_gpu"]["kv_share"] == 0.5 and "slots" not in got


def test_block_table_in_paged_mode(capsys):
    out, _ = run_ok(capsys, "--batch", "2", "--context", "100", "--tokens", "40", "--block-table", "--json")
    table = json.loads(out)["block_table"]
    # slot 1's first request (32 tokens) finished at step 32; request 3 entered at step 33
    assert [(r["request"], r["tokens"], r["pages"], r["last_page_tokens"]) for r in table] == [
        (0, 40, 3, 8),
        (3, 8, 1, 8),
    ]


def test_table_output_and_list(capsys):
    out, _ = run_ok(capsys, "--model", "deepseek-v3", "--gpu", "h200", "--batch", "1")
    assert "70,272 B" in out and "GPUs required" in out
    out, _ = run_ok(capsys, "--list", "--json")
    assert "h100-sxm" in json.loads(out)["gpus"]


def test_export_writes_one_file(capsys, tmp_path):
    dest = tmp_path / "memory.html"
    run_ok(capsys, "--export", str(dest))
    html = dest.read_text()
    assert html.startswith("<!doctype html>") and 'id="kv-data"' in html and 'src="app.js"' not in html


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "lama-3.1-8b"], "did you mean llama-3.1-8b"),
        (["--gpu", "h100"], "h100-sxm, h100-nvl"),
        (["--batch", "0"], "--batch must be between 1 and 4,096"),
        (["--batch", "-3"], "--batch must be between"),
        (["--batch", "100000"], "--batch must be between"),
        (["--context", "0"], "--context must be between 1 and 10,000,000"),
        (["--context", "99999999999"], "--context must be between"),
        (["--kv-dtype", "fp7"], "use one of fp32, bf16, fp16, fp8, int8, int4"),
        (["--mode", "dynamic"], "use one of static, cb, paged"),
        (["--engine", "tgi"], "use one of vllm"),
        (["--tokens", "9000", "--context", "8192"], "--tokens must be between 0 and 8,192"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args, "--json")
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--json", "--export", "x.html"], "choose one"),
        (["--serve", "--json"], "choose one"),
        (["--serve", "--export", "x.html"], "choose one"),
        (["--activation-gib", "nan", "--json"], "--activation-gib must be a finite number"),
        (["--activation-gib", "inf", "--json"], "--activation-gib must be a finite number"),
        (["--gpu-memory-utilization", "1.5", "--json"], "--gpu-memory-utilization must be between"),
        (["--max-num-seqs", "0", "--json"], "--max-num-seqs must be between"),
        (["--port", "99999"], "--port must be between 0 and 65,535"),
        (["--port", "-1"], "--port must be between"),
    ],
)
def test_conflicts_non_finite_numbers_and_bad_ports_exit_2(capsys, args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()


def test_json_reports_capacity_at_the_peak_and_every_slot_full(capsys):
    out, _ = run_ok(capsys, "--model", "llama-3.1-70b", "--batch", "64", "--context", "32768", "--json")
    cap = json.loads(out)["capacity"]
    assert cap["basis"].startswith("workload peak") and cap["kv_full_bytes"] == 640 * 2**30
    assert cap["gpus_required"] == json.loads(out)["gpus_required"] == 8
    out, _ = run_ok(capsys, "--batch", "1", "--context", "131072", "--json")
    assert json.loads(out)["capacity"]["kv_full_bytes"] == 16 * 2**30


def test_library_entry_point_is_what_the_cli_prints(capsys):
    from kvscope.memory import estimate_memory

    est = estimate_memory("llama-3.1-8b", "h100-sxm", batch=1, context=131_072)
    assert est.kv_bytes == 16 * 2**30 and est.gpus_required == 1
    assert "16.00 GiB" in repr(est) and "<table>" in est._repr_html_()
    out, _ = run_ok(capsys, "--batch", "1", "--context", "131072", "--json")
    assert json.loads(out) == json.loads(json.dumps(est.to_dict()))
    with pytest.raises(ValueError, match="^batch must be between"):  # the library names the parameter
        estimate_memory("llama-3.1-8b", "h100-sxm", batch=0)


def test_library_accepts_a_config_dict():
    from kvscope.memory import estimate_memory

    cfg = {
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    est = estimate_memory(cfg, "t4", batch=3, context=64)
    assert est.numbers["kv_bytes_per_token"] == 2 * 2 * 2 * 8 * 2  # K+V, layers, kv_heads, head_dim, bf16
    assert est.kv_bytes == 3 * 64 * 128 and est.model["params_total"] > 0


def test_context_above_native_window_warns(capsys):
    out, err = run_ok(capsys, "--model", "gemma-2-9b", "--context", "131072", "--json")
    assert "above Gemma-2-9B's native window of 8,192" in err and json.loads(out)["model"] == "gemma-2-9b"


def test_unparseable_config_is_a_usage_error(capsys, tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "--model", str(bad), "--json")
    assert code == 2 and "cannot parse config" in err
    bad.write_text('{"hidden_size": 8}')
    code, _, err = run(capsys, "--model", str(bad), "--json")
    assert code == 2 and "no 'model_type'" in err


@pytest.mark.parametrize(
    "change,field",
    [({"num_attention_heads": 0}, "num_attention_heads"), ({"num_hidden_layers": "2"}, "num_hidden_layers")],
)
def test_broken_config_fields_are_one_line_exit_2(capsys, tmp_path, change, field):
    cfg = {
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        **change,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    code, _, err = run(capsys, "--model", str(tmp_path / "config.json"), "--json")
    assert code == 2 and field in err and err.count("\n") == 1 and "Traceback" not in err


def test_config_path_is_counted_on_the_meta_device(capsys, tmp_path, tiny):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(tiny.model.config.to_dict()))
    out, _ = run_ok(
        capsys,
        "--model",
        str(cfg),
        "--batch",
        "1",
        "--context",
        "64",
        "--json",
        "--mode",
        "static",
        "--kv-dtype",
        "fp32",
    )
    got = json.loads(out)
    assert got["model_entry"]["params_total"] == tiny.info.parameters
    assert got["kv_bytes_per_token"] == tiny.info.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4


def test_moe_config_active_parameters(tmp_path):
    from transformers import MixtralConfig

    from kvscope.memory.hfconfig import model_from_config

    cfg = MixtralConfig(
        vocab_size=100,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=1,
    )
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    m = model_from_config(str(tmp_path / "config.json"))
    expert_params = 2 * 4 * 3 * 32 * 64  # layers x experts x (gate, up, down) x hidden x intermediate
    assert m["params_total"] - m["params_active"] == expert_params * 3 // 4


@pytest.mark.slow
def test_json_path_does_not_import_torch():
    code = (
        "import sys; from kvscope.cli import main\n"
        "try:\n main(['memory', '--json', '--batch', '4'])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["options"]["batch"] == 4


def serve_proc(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "kvscope", "memory", "--no-browser", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_model_or_gpu_alone_open_the_page_on_it():
    import re as _re

    proc = serve_proc("--model", "qwen3-8b", "--gpu", "h200")
    try:
        line = proc.stderr.readline()
        assert _re.search(r"http://127\.0\.0\.1:\d+/\?model=qwen3-8b&gpu=h200&", line), line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_unknown_gpu_exits_2_before_any_server_starts():
    res = subprocess.run(
        [sys.executable, "-m", "kvscope", "memory", "--no-browser", "--gpu", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "unknown GPU 'nope'" in res.stderr and "serving" not in res.stderr
    assert res.stderr.count("\n") == 1


def test_clients_that_hang_up_leave_no_traceback():
    import re as _re
    import socket
    import struct

    proc = serve_proc()
    try:
        port = int(_re.search(r"127\.0\.0\.1:(\d+)/", proc.stderr.readline()).group(1))
        for _ in range(40):  # ask for the page, then reset the connection without reading it
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            s.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200  # still serving
        conn.close()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err and "BrokenPipe" not in err and "ConnectionReset" not in err, err


@pytest.mark.slow
def test_serve_prints_a_loopback_url_and_answers():
    import http.client
    import re as _re

    proc = subprocess.Popen(
        [sys.executable, "-m", "kvscope", "memory", "--serve", "--no-browser", "--batch", "4"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        m = _re.search(r"http://127\.0\.0\.1:(\d+)/(\S*)", line)
        assert m, line
        assert "batch=4" in m.group(2) and "model=llama-3.1-8b" in m.group(2)
        conn = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and b"kv-data" in resp.read()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_batch_one_at_full_context_needs_four_h100s_and_says_vllm_would_refuse(capsys):
    """Issue 23 items 17-19: Llama-3.1-70B, one 131,072-token request on H100 said '2 GPUs' at 99 %,
    next to a vLLM block at 0.17x concurrency and an available KV of '0.00 KiB'."""
    args = ("--model", "llama-3.1-70b", "--batch", "1", "--context", "131072", "--engine", "vllm")
    out, _ = run_ok(capsys, *args, "--json")
    got = json.loads(out)
    assert got["capacity"]["gpus_required"] == got["gpus_required"] == 4
    assert got["capacity"]["kv_peak_bytes"] == 40 * 2**30 and got["capacity"]["fit_fraction"] == 0.9
    rows = shown_rows(capsys, *args)
    assert rows["GPUs required (peak, 90% of each)"] == "4"
    assert rows["vllm: available KV"].startswith("none: does not fit (weights and overheads exceed the budget by")
    assert rows["vllm: max concurrency"] == "0.00x at 131,072 tokens (under 1: vLLM refuses to start)"
    rows = shown_rows(capsys, *args, "--tp", "4")
    assert "does not fit" not in str(rows) and "refuses" not in str(rows)


def shown_rows(capsys, *args) -> dict[str, str]:
    """The table's rows as printed, wrapped cells joined back into one line each."""
    out, _ = run_ok(capsys, *args)
    rows: list[list[str]] = []
    for line in out.splitlines():
        parts = line.split("│")
        if len(parts) != 4:
            continue
        cells = [parts[1].strip(), parts[2].strip()]
        if cells[0] or not rows:
            rows.append(cells)
        else:  # a wrapped continuation line
            rows[-1][1] += " " + cells[1]
    return {k: v for k, v in rows}


def test_readme_vllm_example_reproduces_its_cited_log(capsys):
    """Issue 23 item 19: the README's vLLM command must land within 3 % of the log it cites."""
    import re as _re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("kvscope memory") and "--engine vllm --act" in x)
    cited = _re.search(r"logged ([\d.]+) GiB of KV, ([\d,]+) blocks, ([\d.]+)x", readme)
    args = shlex.split(line.split("#")[0])[2:]
    out, _ = run_ok(capsys, *args, "--json")
    e = json.loads(out)["engine"]
    kv, blocks, conc = float(cited[1]), int(cited[2].replace(",", "")), float(cited[3])
    assert (kv, blocks, conc) == (3.81, 1952, 1.56)  # vllm#10517, as in tests/unit/test_memory_vllm.py
    assert e["available_kv_bytes"] / 2**30 == pytest.approx(kv, rel=0.03)
    assert e["kv_blocks"] == pytest.approx(blocks, rel=0.03)
    assert e["max_concurrency"] == pytest.approx(conc, rel=0.03)
    printed = _re.search(r"this prints ([\d.]+) GiB, ([\d,]+), ([\d.]+)x", readme)
    assert printed[1] == f"{e['available_kv_bytes'] / 2**30:.2f}" and printed[2] == f"{e['kv_blocks']:,}"
    assert printed[3] == f"{e['max_concurrency']:.2f}"


def test_deepseek_v3_defaults_to_its_fp8_weights(capsys):
    """Issue 23 item 19: DeepSeek-V3 ships in FP8; BF16 was the default."""
    from kvscope.memory import estimate_memory

    est = estimate_memory("deepseek-v3", "h200")
    assert est.options["weight_dtype"] == "fp8" and est.numbers["weights_bytes"] == 671_026_404_352
    assert estimate_memory("deepseek-v3", "h200", weight_dtype="bf16").numbers["weights_bytes"] == 2 * 671_026_404_352
    assert estimate_memory("llama-3.1-8b").options["weight_dtype"] == "bf16"
    out, _ = run_ok(capsys, "--model", "deepseek-v3", "--gpu", "h200", "--json")
    assert json.loads(out)["options"]["weight_dtype"] == "fp8"


def test_fp8_config_ships_fp8_weights():
    from kvscope.memory.hfconfig import shipped_weight_dtype

    class Cfg:
        quantization_config = {"quant_method": "fp8", "weight_block_size": [128, 128]}

    assert shipped_weight_dtype(Cfg()) == "fp8" and shipped_weight_dtype(object()) is None


def test_tiny_configs_show_a_parameter_unit_not_zero_b(capsys, tmp_path):
    """Issue 23 item 19: a 20K-parameter config printed '0.00 B params'."""
    from kvscope.memory.estimate import fmt_bytes, fmt_params

    cfg = {
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    rows = shown_rows(capsys, "--model", str(tmp_path / "config.json"), "--batch", "2")
    assert rows["model"].endswith("(26.8 K params, 26.8 K active)"), rows["model"]
    assert [fmt_params(n) for n in (512, 20_608, 134_515_008, 8_030_261_248, 671e9)] == [
        "512",
        "20.6 K",
        "135 M",
        "8.03 B",
        "671 B",
    ]
    assert fmt_bytes(0) == "0 B" and fmt_bytes(-3 * 2**30) == "-3.00 GiB"
