"""Forwards with a cache use the keyword the installed transformers documents: no deprecation warning
reaches a user, even with FutureWarning turned into an error."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest


def _kvscope(*args: str, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-m", "kvscope", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_capture_raises_no_future_warning(tmp_path):
    run = _kvscope(
        "capture",
        "--model",
        "tiny",
        "--prompt",
        "Hello there",
        "--out",
        "h.kvs",
        "--attention",
        "--queries",
        "--pre-rope",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "FutureWarning" not in run.stderr and "deprecated" not in run.stderr
    assert (tmp_path / "h.kvs").exists()


def test_caching_raises_no_future_warning(tmp_path):
    run = _kvscope(
        "caching",
        "--model",
        "tiny",
        "--new-tokens",
        "2",
        "--repeats",
        "1",
        "--prompt",
        "ab cd",
        "--second-prompt",
        "ab ce",
        "--out",
        "c",
        "--json",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "deprecated" not in run.stderr and (tmp_path / "c" / "caching.json").is_file()


def test_the_old_keyword_would_have_warned(tiny):
    """The check above can fail: on a transformers that renamed the keyword, the old one warns."""
    import torch

    from kvscope.compat import cache_keyword

    if cache_keyword(tiny.model) != "cache":
        pytest.skip("this transformers still takes past_key_values")
    from transformers import DynamicCache

    with warnings.catch_warnings(record=True) as caught, torch.inference_mode():
        warnings.simplefilter("always")
        tiny.model(input_ids=torch.tensor([[1, 2]]), past_key_values=DynamicCache(config=tiny.model.config))
    assert any(issubclass(w.category, FutureWarning) for w in caught)
