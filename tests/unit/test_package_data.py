"""Packaging: the wheel's data globs cover every data file, every imported package is declared, MIT licence.

The built wheel itself is installed into a fresh virtualenv and run by ``make wheel-check``.
"""

from __future__ import annotations

import ast
import glob
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kvscope"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _data_files() -> set[str]:
    return {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }


def test_package_data_globs_cover_every_data_file():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["kvscope"]
    covered = {m for pat in patterns for m in glob.glob(pat, root_dir=PACKAGE, recursive=True)}
    assert {"memory/web/index.html", "memory/data/gpus.json", "analyze/template.html"} <= _data_files()
    assert _data_files() - covered == set()


def test_licence_is_mit_and_shipped():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def _declared() -> set[str]:
    names = {re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0] for d in PYPROJECT["project"]["dependencies"]}
    return {n.lower().replace("_", "-") for n in names}


def _optional(tree: ast.AST) -> set[int]:
    """Line numbers of imports guarded by ``except ImportError`` (optional extras, never dependencies)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"} for h in node.handlers
        ):
            lines |= {
                n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)
            }
    return lines


def _third_party_imports() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        optional = _optional(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in optional:
                continue
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {n for n in found if n not in sys.stdlib_module_names and n != "kvscope"}


def test_every_imported_package_is_declared():
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for name in _third_party_imports():
        dist = {d.lower().replace("_", "-") for d in dists.get(name, [name])}
        if not dist & _declared():
            missing[name] = sorted(dist)
    assert missing == {}


def test_no_unused_dependencies():
    assert {"psutil", "scikit-learn"} & _declared() == set()
    assert "pillow" in _declared()  # kvscope/analyze/figure_registry imports PIL directly
