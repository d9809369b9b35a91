"""benchmarks/bench.py's prefill-reuse report: repeats with their spread, against kvscope's own
instrumented ``reuse_prefill=False``, and the speed-up estimated against plain prefills."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]


def load_bench_script():
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reuse_report_gives_repeats_spread_and_the_plain_estimate(tmp_path):
    script = load_bench_script()
    work = tmp_path / "work"
    work.mkdir()
    answers = [["baseline", "12345"]]
    for rep, (once, fresh) in enumerate(((10.0, 100.0), (20.0, 120.0))):
        common = {"prefills": 1, "tokens": 100, "configs": 30, "answers": answers, "load": 2.0}
        (work / f"reuse-passkey-once-{rep}.json").write_text(
            json.dumps(dict(common, wall=once, prefill_seconds=2.0, plain_prefill=None))
        )
        (work / f"reuse-passkey-fresh-{rep}.json").write_text(
            json.dumps(dict(common, wall=fresh, prefills=30, tokens=3000, prefill_seconds=60.0, plain_prefill=1.0))
        )
    args = SimpleNamespace(
        reuse_samples=1,
        reuse_context=500,
        reuse_repeats=2,
        reuse_tasks="passkey,kv_retrieval",
        reuse_strategies="knorm",
        reuse_quantize="",
        out=str(tmp_path / "bench.md"),
    )
    script.write_reuse(args, work)
    text = (tmp_path / "bench.md").read_text()
    assert "reuse_prefill=False" in text and "instrumented" in text and "median [min, max]" in text
    # speed-ups 10x and 6x; plain: (100 - 60 + 30 * 1) / 10 = 7x and (120 - 60 + 30) / 20 = 4.5x
    row = next(line for line in text.splitlines() if line.startswith("| passkey"))
    assert "| 2 |" in row and "8.0x [6.0x, 10.0x]" in row and "5.8x [4.5x, 7.0x]" in row and row.endswith("yes |")
    assert "15 [10, 20]" in row and "110 [100, 120]" in row
