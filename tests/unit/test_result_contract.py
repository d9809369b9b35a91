"""The shared result contract (``kvscope.kit.results.ResultMixin``) on the prune results that had no repr:
a short ``__repr__`` that says what was found, an escaped ``_repr_html_`` with the figures inlined,
``to_dict`` and ``figures``."""

from __future__ import annotations

import json

import numpy as np
from matplotlib.figure import Figure

from kvscope.fileio import to_jsonable
from kvscope.prune.loo import LooResult
from kvscope.prune.scan import ScanResult


def scan_result() -> ScanResult:
    change = np.array([[1.0, 30.5], [0.5, 2.0]])
    return ScanResult("heads", "m<x>", 10.0, 10.0 * (1 + change / 100), change, 9, 4, np.ones((2, 2)), "potential")


def loo_result() -> LooResult:
    delta = np.array([-0.5, 0.1, -0.2])
    proxies = {"magnitude": np.array([3.0, 1.0, 2.0])}
    return LooResult("m", "a b c", ["a", " b", " <c>"], [1, 2, 3], delta, -4.0, proxies, {"magnitude": 1.0})


def test_scan_repr_is_short_and_names_the_largest_change_and_where():
    text = repr(scan_result())
    assert text.startswith("ScanResult(kind=heads") and len(text) <= 200
    assert "largest_change=+30.5 % at (0, 1)" in text


def test_loo_repr_gives_the_spearman_of_each_proxy():
    text = repr(loo_result())
    assert text == "LooResult(model=m, tokens=3, spearman=magnitude +1.00)"


def test_html_escapes_text_and_inlines_each_figure():
    page = scan_result()._repr_html_()
    assert "m&lt;x&gt;" in page and "m<x>" not in page
    assert page.count("data:image/png;base64,") == 1


def test_figures_are_matplotlib_figures_named_as_the_cli_files():
    assert list(scan_result().figures()) == ["prune_scan_heads"]
    figs = loo_result().figures()
    assert list(figs) == ["importance_ground_truth"] and isinstance(figs["importance_ground_truth"], Figure)


def test_to_dict_is_json_and_holds_the_ground_truth_contract():
    doc = json.loads(json.dumps(to_jsonable(loo_result().to_dict())))
    assert doc["delta_loglik"] == [-0.5, 0.1, -0.2] and doc["proxies"]["magnitude"] == [3.0, 1.0, 2.0]
    assert set(loo_result().ground_truth_json()) <= set(doc)
    assert json.loads(json.dumps(to_jsonable(scan_result().to_dict())))["ppl_change_pct"] == [[1.0, 30.5], [0.5, 2.0]]
