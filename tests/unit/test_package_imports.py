"""``import kvscope`` is cheap and side-effect free; the library never reaches up into the CLI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kvscope

PACKAGE = Path(kvscope.__file__).resolve().parent

# Entry points another branch adds; the lead empties this after merging (the test below then checks them).
PENDING_API: dict[str, str] = {}
# Library modules that still import kvscope.cli on this branch, and the branch that removes the import.
PENDING_CLI_IMPORTS: dict[str, str] = {}


def _python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_import_kvscope_loads_neither_torch_nor_matplotlib():
    out = _python(
        "import sys, kvscope; print(sorted(m for m in ('torch', 'transformers', 'matplotlib', 'click') "
        "if m in sys.modules))"
    )
    assert out == "[]"


def test_dir_lists_the_whole_api():
    assert set(kvscope.API) <= set(dir(kvscope))
    assert {
        "load_model",
        "capture",
        "analyze",
        "compare",
        "compare_pruning",
        "bench",
        "explain_caching",
        "estimate_memory",
        "run_mas",
    } <= set(kvscope.API)


def test_names_resolve_to_their_modules():
    from kvscope.caching import explain_caching
    from kvscope.capture.capturing import capture
    from kvscope.models import load_model

    assert (kvscope.load_model, kvscope.capture, kvscope.explain_caching) == (load_model, capture, explain_caching)


@pytest.mark.parametrize("name", sorted(kvscope.API))
def test_every_api_name_resolves(name):
    if name in PENDING_API:
        with pytest.raises((AttributeError, ImportError)):
            getattr(kvscope, name)
        pytest.skip(f"{name} arrives with the {PENDING_API[name]}: remove it from PENDING_API after merging")
    assert callable(getattr(kvscope, name))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kvscope.nope  # noqa: B018


def test_importing_every_module_keeps_the_matplotlib_backend():
    code = (
        "import importlib, pkgutil, matplotlib, kvscope\n"
        "matplotlib.use('svg')\n"
        "for m in pkgutil.walk_packages(kvscope.__path__, 'kvscope.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(matplotlib.get_backend())"
    )
    assert _python(code) == "svg"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _library_modules() -> list[Path]:
    skip = {PACKAGE / "__main__.py"}
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "cli" not in p.relative_to(PACKAGE).parts[:1] and p not in skip]


def test_no_library_module_imports_click_or_the_cli():
    offenders = set()
    for path in _library_modules():
        bad = {
            n
            for n in _imports(path)
            if n.split(".")[0] == "click" or n == "kvscope.cli" or n.startswith("kvscope.cli.")
        }
        if bad:
            offenders.add(path.relative_to(PACKAGE).as_posix())
    assert offenders == set(PENDING_CLI_IMPORTS), "library modules importing click or kvscope.cli"


def test_the_import_walker_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from kvscope.cli.common import load\n    import click\n")
    assert {"kvscope.cli.common", "click"} <= _imports(src)
