"""``accelerate launch --num_processes 2 -m kvscope bench`` on CPU gives the same bench.json numbers as
one process (timings aside): the samples are sharded and gathered, and every seeded choice depends only
on the sample."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = [
    "bench",
    "-m",
    "tiny",
    "--task",
    "passkey",
    "--task",
    "multi_needle",
    "--samples",
    "3",
    "--context-tokens",
    "100",
    "--strategies",
    "knorm,random",
    "--ratios",
    "0.5",
    "--quantize",
    "K2V2",
    "--json",
]
TIMING = {"seconds", "prefill_seconds", "processes"}


def strip_timing(obj):
    if isinstance(obj, dict):
        return {k: strip_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [strip_timing(v) for v in obj]
    return obj


def accelerate() -> str | None:
    exe = Path(sys.executable).with_name("accelerate")
    return str(exe) if exe.exists() else shutil.which("accelerate")


@pytest.mark.skipif(accelerate() is None, reason="accelerate's launcher is not installed")
def test_two_processes_give_the_same_numbers_as_one(tmp_path):
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    )
    one = subprocess.run(
        [sys.executable, "-m", "kvscope", *ARGS, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert one.returncode == 0, one.stderr
    # On a CPU-only machine accelerate starts N processes only with --multi_gpu (torchrun underneath).
    two = subprocess.run(
        [
            accelerate(),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "kvscope",
            *ARGS,
            "--out",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "bench.json").read_text())
    b = json.loads((tmp_path / "two" / "bench.json").read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    assert strip_timing(a) == strip_timing(b)
    assert (tmp_path / "one" / "samples.jsonl").read_text().count("\n") == 6 * 4  # 6 samples x 4 configurations
    rows_a = [json.loads(x) for x in (tmp_path / "one" / "samples.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (tmp_path / "two" / "samples.jsonl").read_text().splitlines()]
    assert strip_timing(rows_a) == strip_timing(rows_b)
    assert json.loads(two.stdout)["prefills"] == 6  # printed once, by the main process
