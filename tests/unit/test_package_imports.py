"""``import kvscope`` is cheap and side-effect free; the library never reaches up into the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kvscope

PACKAGE = Path(kvscope.__file__).resolve().parent


def _python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


@pytest.mark.slow
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
    assert callable(getattr(kvscope, name))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kvscope.nope  # noqa: B018


@pytest.mark.slow
def test_importing_every_module_keeps_the_matplotlib_backend():
    code = (
        "import importlib, pkgutil, matplotlib, kvscope\n"
        "matplotlib.use('svg')\n"
        "for m in pkgutil.walk_packages(kvscope.__path__, 'kvscope.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(matplotlib.get_backend())"
    )
    assert _python(code) == "svg"
