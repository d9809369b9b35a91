"""BENCHMARKS.md is what `make bench` collects: every file of benchmarks/results/ in name order, nothing else,
so a number edited into BENCHMARKS.md alone (and lost at the next `make bench`) fails here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmarks_md_is_the_results_files_in_order():
    parts = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert parts, "benchmarks/results/ holds no results"
    collected = "".join(p.read_text(encoding="utf-8") for p in parts)
    assert (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8") == collected, (
        "BENCHMARKS.md differs from `cat benchmarks/results/*.md`: edit the results file, then run that command"
    )
