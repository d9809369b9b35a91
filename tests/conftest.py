"""Shared fixtures. Tiers (see CONTRIBUTING.md):

- ``tests/unit``: no model, synthetic data, milliseconds.
- ``tests/integration``: the tiny random-weight GQA Llama, or the embedded SmolLM2-135M
  (marked ``embedded``; converted once, then read from the cache in ~0.5 s).
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
