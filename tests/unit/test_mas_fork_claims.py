"""The kNN-fork table says exactly what is reproduced: the flags restore the fork's mechanisms, not its
prompts, and the implicit top-k is the model's generation-config value, not always 50 (issue 23 item 16)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from transformers import GenerationConfig

from kvscope.mas.config import MasConfig
from kvscope.mas.experiment import MasResult, generate_top_k

README = Path(__file__).resolve().parents[2] / "README.md"


def test_implicit_top_k_is_the_generation_config_value():
    assert generate_top_k(SimpleNamespace(generation_config=GenerationConfig(top_k=20))) == 20  # Qwen3's
    assert generate_top_k(SimpleNamespace(generation_config=GenerationConfig())) == 50  # none set
    assert generate_top_k(SimpleNamespace()) == 50  # no generation config at all: generate() makes one
    assert MasResult("m", None, MasConfig(), {}, 1, 2, 20).to_dict()["generate_top_k"] == 20


def test_readme_fork_section_says_what_is_reproduced():
    text = README.read_text(encoding="utf-8")
    fork = text[text.index("### Reproducing the kNN fork") :]
    fork = fork[: fork.index("\n## ")]
    assert "not its prompt texts" in fork and "mechanisms" in fork
    assert "generate_top_k" in fork and "Qwen3's sets 20" in fork
    assert not re.search(r"top-k 50 implicitly", fork) and "so its numbers can be" not in fork


def test_top_k_help_names_the_generation_config():
    from click.testing import CliRunner

    from kvscope.cli.mas import mas

    help_text = " ".join(CliRunner().invoke(mas, ["--help"]).output.split())
    assert "generation-config top_k" in help_text and "top-k 50 implicitly" not in help_text
