"""The bench figure draws what the rows say, even when an interval does not hold its own value."""

from __future__ import annotations

from types import SimpleNamespace

from kvscope.bench.bench_figures import bench_pareto
from kvscope.bench.summary import Cell, Row


def _row(config: str, method: str, kept: float, ppl: Cell) -> Row:
    return Row(config, method, None if method == "baseline" else 1 - kept, ppl_ratio=ppl, kv_fraction=kept)


def test_text_only_figure_with_a_bootstrap_interval_that_misses_its_mean():
    # a percentile bootstrap interval can lie wholly above a skewed sample's mean: the bar below is 0 long
    rows = [
        _row("baseline", "baseline", 1.0, Cell(1.0, 1.0, 1.0, 8)),
        _row("snapkv@0.5", "snapkv", 0.5, Cell(1.30, 1.31, 1.60, 8)),
        _row("snapkv@0.9", "snapkv", 0.1, Cell(2.0, 1.5, 2.5, 8)),
    ]
    fig = bench_pareto(SimpleNamespace(rows=rows, outcomes=[], model={"name": "m"}))
    ax = fig.axes[0]
    line = next(c for c in ax.containers if c.get_label() == "snapkv")
    assert list(line.lines[0].get_ydata()) == [1.30, 2.0]
    bars = line.lines[2][0].get_segments()  # one vertical segment per point: [(x, low), (x, high)]
    assert [(round(s[0][1], 6), round(s[1][1], 6)) for s in bars] == [(1.30, 1.60), (1.5, 2.5)]
    assert ax.get_ylabel().startswith("mean perplexity ratio")


def test_title_counts_only_the_plotted_samples():
    # 2 QA samples and 1 text: the pooled-accuracy figure is drawn from 2, and says 2
    from kvscope.bench.sample_runner import Outcome
    from kvscope.bench.summary import POOLED

    def out(task: str, sample: int, correct: bool | None) -> Outcome:
        return Outcome(task=task, sample=sample, config="baseline", correct=correct)

    rows = [Row("baseline", "baseline", None, accuracy={POOLED: Cell(0.5, 0.1, 0.9, 2)}, kv_fraction=1.0)]
    outs = [out("passkey", 0, True), out("kv_retrieval", 0, False), out("text", 0, None)]
    fig = bench_pareto(SimpleNamespace(rows=rows, outcomes=outs, model={"name": "m"}))
    assert fig.axes[0].get_title().startswith("m: 2 QA samples")
