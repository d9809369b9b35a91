"""The shared result contract (``kvscope.kit.results.ResultMixin``): every class a ``ks.*`` function returns
follows it. The classes are found from ``kvscope.API`` (each entry's return annotation, and those of the
public functions beside it, e.g. ``sweep_pruning`` next to ``compare_pruning``), so a new result cannot
slip past; ``tests/integration/test_result_contract_tiny.py`` checks a real instance of each."""

from __future__ import annotations

import importlib
import inspect
import json
import typing

import numpy as np
from matplotlib.figure import Figure

import kvscope
from kvscope.fileio import to_jsonable
from kvscope.kit.results import REPR_LIMIT, FigureDict, ResultMixin
from kvscope.prune.loo import LooResult
from kvscope.prune.scan import ScanResult
from tests.helpers import check_result_contract

# What a ks.* function returns that is not a result, and why.
NOT_RESULTS = {
    "LoadedModel": "ks.load_model's (model, tokenizer, info) tuple",
    "ModelInfo": "a model's facts, part of every result",
    "CaptureResult": "run_capture's snapshot plus logits, for the library's own commands",
    "Compressor": "ks.compress's context manager around the caller's generate()",
    "Strategy": "ks.strategy's configuration, applied by ks.compress",
    "Run": "one configuration's per-token NLL inside a StreamingResult (run_config's return), not a result",
}
# Results of the core, which cannot import the kit: their own repr and _repr_html_, one .kvs folder as file.
CORE_RESULTS = {"KVSnapshot"}


def api_classes() -> dict[str, type]:
    """name -> class of every class a ``ks.*`` entry is or returns (and its module's other public functions)."""
    found: dict[str, type] = {}
    for name in kvscope.API:
        obj = getattr(kvscope, name)
        if inspect.isclass(obj):
            found[obj.__name__] = obj
            continue
        module = importlib.import_module(obj.__module__)
        for fname, fn in vars(module).items():
            if fname.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            ret = typing.get_type_hints(fn).get("return")
            if inspect.isclass(ret) and ret.__module__.startswith("kvscope."):
                found[ret.__name__] = ret
    return found


def result_classes() -> dict[str, type]:
    return {n: c for n, c in api_classes().items() if n not in NOT_RESULTS and n not in CORE_RESULTS}


def test_the_api_table_yields_every_result_class():
    expected = {
        "AnalyzeResult",
        "CompareResult",
        "PruneResult",
        "SweepResult",
        "ScanResult",
        "LooResult",
        "BenchResult",
        "CachingReport",
        "MemoryEstimate",
        "MasResult",
        "ViewPage",
    }
    assert set(result_classes()) == expected
    assert set(api_classes()) == expected | set(NOT_RESULTS) | CORE_RESULTS  # nothing unclassified


def test_every_result_takes_the_contract_from_the_kit():
    for name, cls in result_classes().items():
        assert issubclass(cls, ResultMixin), name
        for method in ("save", "__repr__", "_repr_html_"):
            owner = next(k for k in cls.__mro__ if method in vars(k))
            allowed = {ResultMixin} | ({cls} if (name, method) in OWN_METHODS else set())
            assert owner in allowed, f"{name}.{method} is written by hand in {owner.__name__}"
        for method in ("summary", "to_dict", "write"):
            assert getattr(cls, method) is not getattr(ResultMixin, method), f"{name} lacks {method}()"


# Where a result's own method is the contract, with the reason: the view page shows itself (an iframe), and
# saves to a file name as `kvscope view --export FILE` does; mas writes its heatmaps to a second folder.
OWN_METHODS = {("ViewPage", "_repr_html_"), ("ViewPage", "save"), ("MasResult", "save")}


def scan_result() -> ScanResult:
    change = np.array([[1.0, 30.5], [0.5, 2.0]])
    return ScanResult("heads", "m<x>", 10.0, 10.0 * (1 + change / 100), change, 9, 4, np.ones((2, 2)), "potential")


def loo_result() -> LooResult:
    delta = np.array([-0.5, 0.1, -0.2])
    proxies = {"magnitude": np.array([3.0, 1.0, 2.0])}
    return LooResult("m", "a b c", ["a", " b", " <c>"], [1, 2, 3], delta, -4.0, proxies, {"magnitude": 1.0})


def test_scan_and_loo_follow_the_contract(tmp_path):
    check_result_contract(scan_result(), tmp_path / "scan", ["prune_scan_heads.json", "prune_scan_heads.png"])
    loo_files = ["importance_ground_truth.json", "importance_ground_truth.png"]
    check_result_contract(loo_result(), tmp_path / "loo", loo_files)


def test_scan_repr_is_short_and_names_the_largest_change_and_where():
    text = repr(scan_result())
    assert text.startswith("ScanResult(kind=heads") and len(text) <= REPR_LIMIT
    assert "largest_change=+30.5 % at (0, 1)" in text


def test_loo_repr_gives_the_spearman_of_each_proxy():
    text = repr(loo_result())
    assert text == "LooResult(model=m, tokens=3, spearman=magnitude +1.00)"


def test_repr_is_cut_to_one_line_of_the_limit():
    class Long(ResultMixin):
        def summary(self):
            return [("text", "a\nb " * 300)]

    text = repr(Long())
    assert "\n" not in text and len(text) == REPR_LIMIT and text.endswith("...)")


def test_html_escapes_text_and_inlines_each_figure():
    page = scan_result()._repr_html_()
    assert "m&lt;x&gt;" in page and "m<x>" not in page
    assert page.count("data:image/png;base64,") == 1


def test_figures_are_matplotlib_figures_named_as_the_cli_files():
    assert list(scan_result().figures()) == ["prune_scan_heads"]
    figs = loo_result().figures()
    assert list(figs) == ["importance_ground_truth"] and isinstance(figs["importance_ground_truth"], Figure)


def test_a_held_figure_dict_is_also_the_contracts_figures_call():
    figs = FigureDict(a=1)
    assert figs() is figs and figs["a"] == 1


def test_to_dict_is_json_and_holds_the_ground_truth_contract():
    doc = json.loads(json.dumps(to_jsonable(loo_result().to_dict())))
    assert doc["delta_loglik"] == [-0.5, 0.1, -0.2] and doc["proxies"]["magnitude"] == [3.0, 1.0, 2.0]
    assert set(loo_result().ground_truth_json()) <= set(doc)
    assert json.loads(json.dumps(to_jsonable(scan_result().to_dict())))["ppl_change_pct"] == [[1.0, 30.5], [0.5, 2.0]]


def test_the_core_snapshot_has_a_short_repr_and_a_bounded_html_view():
    from tests.helpers import random_snapshot

    snap = random_snapshot()
    text = repr(snap)
    assert type(snap).__name__ in CORE_RESULTS and text.startswith("KVSnapshot(")
    assert "\n" not in text and len(text) <= REPR_LIMIT
    assert "<table>" in snap._repr_html_() and len(snap._repr_html_().encode()) < 1_000_000
