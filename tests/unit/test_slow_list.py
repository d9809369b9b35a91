"""tests/slow_tests.txt names tests that exist: a renamed test would otherwise drop out of the list unseen."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import slow_listed

ROOT = Path(__file__).resolve().parents[2]


def test_every_listed_slow_test_exists():
    listed = slow_listed()
    assert listed, "tests/slow_tests.txt lists nothing"
    missing = []
    for node in sorted(listed):
        path, _, name = node.partition("::")
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        if name.split("::")[-1] not in names:
            missing.append(node)
    assert not missing, f"not found: {missing}"
