"""Shared fixtures. Tiers (see CONTRIBUTING.md):

- ``tests/unit``: no model, synthetic data, milliseconds.
- ``tests/integration``: the tiny random-weight GQA Llama, or the embedded SmolLM2-135M
  (marked ``embedded``; converted once, then read from the cache in ~0.5 s).

``slow`` (``pytest -m "not slow"`` runs the fast part): every ``embedded`` and ``browser`` test and every test
of ``SLOW_FILES`` is marked here; a test that runs a subprocess carries ``@pytest.mark.slow`` itself.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each avoids oversubscription.
    torch.set_num_threads(1)


# Whole files that run notebooks, installs, accelerate launches or the CLI in subprocesses.
SLOW_FILES = {"test_notebook.py", "test_package_install.py", "test_bench_accelerate.py", "test_package_compat.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("embedded") or item.get_closest_marker("browser") or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


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
