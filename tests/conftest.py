"""Shared fixtures. Tiers (see CONTRIBUTING.md):

- ``tests/unit``: no model, synthetic data, milliseconds.
- ``tests/integration``: the tiny random-weight GQA Llama, or the embedded SmolLM2-135M
  (marked ``embedded``; converted once, then read from the cache in ~0.5 s).

``slow`` (``pytest -m "not slow"`` runs the fast part): every ``embedded`` and ``browser`` test, every test
of ``SLOW_FILES`` and every test listed in ``slow_tests.txt`` (measured at a second or more on a quiet
machine) is marked here; a test that runs a subprocess carries ``@pytest.mark.slow`` itself.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each avoids oversubscription.
    torch.set_num_threads(1)


# Whole files that run notebooks, installs, accelerate launches or the CLI in subprocesses.
SLOW_FILES = {"test_notebook.py", "test_package_install.py", "test_bench_accelerate.py", "test_package_compat.py"}


SLOW_LIST = Path(__file__).with_name("slow_tests.txt")


def slow_listed() -> set[str]:
    """Node ids (``tests/...py::name``, parameters left out) listed in ``slow_tests.txt``."""
    lines = SLOW_LIST.read_text(encoding="utf-8").splitlines() if SLOW_LIST.is_file() else []
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def pytest_collection_modifyitems(config, items):
    listed = slow_listed()
    unit = Path(__file__).with_name("unit")
    for item in items:
        if unit in item.path.parents:
            item.add_marker(pytest.mark.unit)
        if (
            item.get_closest_marker("embedded")
            or item.get_closest_marker("browser")
            or item.path.name in SLOW_FILES
            or item.nodeid.split("[")[0] in listed
        ):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config):
    """Convert the embedded model once, in the main process, before pytest-xdist starts its workers.

    On a fresh machine every worker that needs the model would otherwise convert it from the GGUF at the
    same time (about 20 s of CPU each); the other virtualenvs of ``make test`` then read the same cache.
    Nothing happens when the cache exists, without workers, or when the run leaves the model out.
    """
    markexpr = config.getoption("markexpr", "") or ""
    if os.environ.get("PYTEST_XDIST_WORKER") or not config.getoption("numprocesses", None):
        return
    if "not embedded" in markexpr or "not slow" in markexpr:
        return
    from kvscope.models import EMBEDDED_CACHE_NAME, cache_dir, load_model

    dest = cache_dir() / EMBEDDED_CACHE_NAME
    if not (dest / "model.safetensors").is_file():
        with contextlib.suppress(Exception):  # a failure shows in the tests that need the model
            load_model("embedded")


@pytest.fixture(scope="session")
def tiny():
    """``LoadedModel`` of the random-weight GQA Llama (2 layers, 4 q_heads, 2 kv_heads, head_dim 16)."""
    from kvscope.models import load_model

    return load_model("tiny")


@pytest.fixture(scope="session")
def embedded():
    """``LoadedModel`` of the embedded SmolLM2-135M-Instruct (float32, CPU). Read-only: never mutate it."""
    from kvscope.models import load_model

    return load_model("embedded")
