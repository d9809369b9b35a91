"""Every result class of ``tests/unit/test_result_contract.py`` (found from ``kvscope.API``), made by its
``ks.*`` function on the tiny model, follows the whole contract (``tests.helpers.check_result_contract``):
short repr, bounded ``_repr_html_``, ``to_dict``, ``figures()``, and ``save`` writing exactly the CLI's
files and keeping another command's file."""

from __future__ import annotations

import pytest

import kvscope as ks
from kvscope.prune import pruning
from tests.helpers import check_result_contract
from tests.unit.test_result_contract import result_classes

pytestmark = pytest.mark.slow  # a model run per result class (about three minutes on two busy cores)

PROMPT = "The cat sat on the mat and looked at the door of the old house."
CONT = " Then it slept for a while."


def _snapshots(tiny):
    a = ks.capture(tiny.model, tiny.tokenizer, PROMPT, info=tiny.info, attention=True, queries=True)
    b = ks.capture(tiny.model, tiny.tokenizer, PROMPT + CONT, info=tiny.info, attention=True, queries=True)
    return a, b


def make(name: str, tiny):
    """One real instance of result class ``name``, small settings; and the files its CLI writes (or None)."""
    m, tok, info = tiny
    kw = dict(info=info)
    if name == "AnalyzeResult":
        return ks.analyze(_snapshots(tiny)[0]), None
    if name == "CompareResult":
        return ks.compare(*_snapshots(tiny)), None
    if name == "PruneResult":
        return ks.compare_pruning(m, tok, PROMPT, CONT, "knorm", 0.5, repeats=1, decode_tokens=2, **kw), ["prune.json"]
    if name == "SweepResult":
        res = pruning.sweep_pruning(m, tok, PROMPT, CONT, ratios=(0.5,), strategies=["knorm"], quantize=(), **kw)
        return res, ["sweep.csv", "sweep.json", "compression_pareto.png"]
    if name == "ScanResult":
        return pruning.scan_pruning(m, tok, PROMPT, CONT, "layers", quiet=True, **kw), None
    if name == "LooResult":
        return pruning.token_importance(m, tok, "a b c d", CONT, quiet=True, **kw), None
    if name == "BenchResult":
        res = ks.bench(m, tok, tasks=["passkey"], samples=1, context_tokens=60, strategies=["knorm"], quantize=[])
        return res, ["bench.json", "samples.jsonl", "bench_pareto.png", "report.html"]
    if name == "CachingReport":
        return ks.explain_caching(m, tok, "ab cd", "ab ce", new_tokens=2, repeats=1, quiet=True), None
    if name == "MemoryEstimate":
        return ks.estimate_memory("llama-3.1-8b", "h100-sxm", batch=1, context=1024), ["memory.json"]
    if name == "MasResult":
        res = ks.run_mas(m, tok, ["What is 2 + 2?"], "latent_mas", latent_steps=1, max_new_tokens=2, quiet=True)
        return res, ["results.json", "trace.jsonl"]
    if name == "ViewPage":
        return ks.view(_snapshots(tiny)[0], strategies=["knorm"], step=0.25), ["view.html"]
    raise AssertionError(f"no instance of {name}: add one here")


@pytest.mark.parametrize("name", sorted(result_classes()))
def test_result_follows_the_contract(name, tiny, tmp_path):
    result, files = make(name, tiny)
    assert type(result).__name__ == name
    check_result_contract(result, tmp_path / "out", files)
