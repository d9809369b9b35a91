"""Every command on a tiny model of each of eleven families: it runs, or it is refused in one line with
exit 2 before any weights load. The README's support table is generated from the same expectations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.families import COMMANDS, EXPECTED, FAMILIES, save, support_table
from tests.helpers import assert_one_line_error, run_cli

PROMPT = "The quick brown fox jumps over the lazy dog near the river."  # longer than the window (8)
CASES = {
    "capture": lambda m, out: ["capture", "-m", m, "--prompt", PROMPT, "--attention", "--out", f"{out}/c.kvs"],
    "analyze": lambda m, out: ["analyze", "-m", m, "--prompt", PROMPT, "--out", f"{out}/a"],
    "prune snapkv": lambda m, out: ["prune", "-m", m, "--prompt", PROMPT, "--strategy", "snapkv", "--ratio", "0.5",
                                    "--repeats", "1", "--out", f"{out}/p"],
    "prune K4V4": lambda m, out: ["prune", "-m", m, "--prompt", PROMPT, "--quantize", "K4V4", "--repeats", "1",
                                  "--out", f"{out}/q"],
    "bench": lambda m, out: ["bench", "-m", m, "--task", "passkey", "--samples", "2", "--context-tokens", "60",
                             "--strategies", "snapkv", "--ratios", "0.5", "--quantize", "K4V4", "--out", f"{out}/b"],
    "caching": lambda m, out: ["caching", "-m", m, "--prompt", PROMPT, "--new-tokens", "2", "--repeats", "1",
                               "--out", f"{out}/k"],
    "mas": lambda m, out: ["mas", "-m", m, "--method", "baseline", "--max_new_tokens", "2", "--max_samples", "1",
                           "--out", f"{out}/m"],
}  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(family: str) -> str:
        if family not in made:
            made[family] = save(family, tmp_path_factory.mktemp(family))
        return str(made[family])

    return get


@pytest.mark.slow
@pytest.mark.parametrize(("family", "command"), list(EXPECTED))
def test_family_by_command(family, command, folder, tmp_path, capsys, monkeypatch):
    torch.set_num_threads(1)
    argv = CASES[command](folder(family), tmp_path)
    if EXPECTED[family, command] == "refused":
        import kvscope.models

        def no_load(*_a, **_k):
            raise AssertionError("weights loaded before the refusal")

        monkeypatch.setattr(kvscope.models, "load_model", no_load)
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(err, code, 2)
        return
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "internal error" not in err


def test_every_command_is_in_the_matrix():
    assert set(CASES) == set(COMMANDS) and len(EXPECTED) == len(FAMILIES) * len(COMMANDS)


def test_readme_support_table_is_generated_from_the_matrix():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert support_table() in readme, "run `python -m tests.families` to regenerate the README's support table"
