"""The README's ``kvscope prune`` and ``kvscope mas`` examples parse, and spell every option the one
canonical way (``--kebab-case``), not as a seed's hidden alias (``--prune_layers``), except in the
paragraph saying that those still work."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
SECTIONS = {"prune": "## Pruning and compressing the KV cache", "mas": "## LatentMAS"}


def commands(name: str) -> list[list[str]]:
    """The argument lists of every ``kvscope NAME`` line in the bash blocks of its README section."""
    section = README[README.index(SECTIONS[name]) :]
    section = section[: section.index("\n## ", 1)]
    lines = [ln for b in re.findall(r"```bash\n(.*?)```", section, re.S) for ln in b.replace("\\\n", " ").splitlines()]
    return [shlex.split(ln, comments=True)[2:] for ln in lines if ln.startswith(f"kvscope {name} ")]


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_examples_parse_with_canonical_spellings(name):
    import importlib

    command = getattr(importlib.import_module(f"kvscope.cli.{name}"), name)
    aliases = {a for p in command.params for a in getattr(p, "aliases", ())}
    found = commands(name)
    assert len(found) >= 2, name
    for argv in found:
        command.make_context(f"kvscope {name}", list(argv))  # raises on an unknown option or bad value
        assert not aliases & set(argv), argv
    prose = README[README.index(SECTIONS[name]) :]
    prose = prose[: prose.index("\n## ", 1)].split("\n\n")
    prose = [p for p in prose if "still work" not in p]  # the one paragraph that names the aliases
    assert not aliases & set(re.findall(r"`(--[\w-]+)", "\n\n".join(prose))), name
