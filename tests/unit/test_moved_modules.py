"""The move of issue 20: old import paths warn and forward, ``ks.*`` stays the function after its command
package is imported, and the CLI prints a library parameter as its flag."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from kvscope.errors import UsageError

OLD_PATHS = {
    "kvscope.capturing": ("capture", "kvscope.capture.capturing"),
    "kvscope.evaluation": ("bench", "kvscope.bench.benchmark"),
    "kvscope.report.api": ("analyze", "kvscope.analyze.analysis"),
    "kvscope.report.compare": ("compare", "kvscope.analyze.comparison"),
    "kvscope.plots.analyze": ("FIGURES", "kvscope.analyze.figure_registry"),
}


@pytest.mark.slow
@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_paths_warn_once_and_forward_to_the_new_module(old):
    name, new = OLD_PATHS[old]
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
        "warnings.simplefilter('ignore')\n"
        f"import importlib; old = importlib.import_module('{old}'); new = importlib.import_module('{new}')\n"
        f"print(getattr(old, '{name}') is getattr(new, '{name}'))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    warned, same = run.stdout.strip().splitlines()
    assert warned.startswith(f"warned: {old.rsplit('.', 1)[0] if old.startswith('kvscope.report.') else old}")
    assert same == "True"


def test_the_hf_cache_readers_stay_reachable_from_the_old_capturing_path():
    with pytest.warns(DeprecationWarning):
        old = importlib.reload(importlib.import_module("kvscope.capturing"))
    from kvscope.hfcache import cache_layer_kv

    assert old.cache_layer_kv is cache_layer_kv


def test_api_names_stay_functions_after_their_command_packages_are_imported():
    import kvscope as ks
    import kvscope.analyze.analysis
    import kvscope.bench.benchmark
    import kvscope.capture.capturing

    assert callable(ks.capture) and callable(ks.analyze) and callable(ks.bench) and callable(ks.compare)
    # the packages themselves are reached through sys.modules (kvscope.analyze names the function)
    assert ks.analyze is sys.modules["kvscope.analyze.analysis"].analyze
    assert ks.bench is sys.modules["kvscope.bench.benchmark"].bench


def test_the_cli_prints_the_flag_of_the_parameter_a_library_error_names():
    from kvscope.cli import flag_message

    err = UsageError("layer 9 is out of range: the model has 2 layers (0-1)", "layer")
    assert flag_message(err, ["analyze", "--layer", "9"]) == "--layer 9 is out of range: the model has 2 layers (0-1)"
    assert flag_message(err, ["caching"]).startswith("--layer 9 ")
    assert flag_message(UsageError("layer 9 bad"), ["analyze"]) == "layer 9 bad"  # no param: unchanged
