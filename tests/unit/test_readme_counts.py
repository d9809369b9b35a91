"""Counts the README states come from the registries: a figure, strategy or catalog entry added or removed
without the README following fails here."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _stated(noun: str) -> set[int]:
    return {int(n) for n in re.findall(rf"\b(\d+) {noun}\b", README)}


def test_figure_count_matches_the_registry():
    from kvscope.analyze.figure_registry import FIGURES

    assert _stated("figures") == {len(FIGURES)}


def test_catalog_counts_match_the_catalogs():
    from kvscope.memory import catalog

    assert _stated("models") == {len(catalog.models())}
    assert _stated("GPUs") == {len(catalog.gpus())}


def test_strategy_counts_match_the_registry():
    from kvscope.prune.strategies import STRATEGIES

    assert _stated("strategies") == {len(STRATEGIES)}


def test_bad_input_count_matches_the_table():
    from tests.integration.test_bad_input import CASES

    assert _stated("hostile inputs") == {len(CASES)}
