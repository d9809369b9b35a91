"""An analysis is one registry entry: one registered here, from this test module alone, is computed, drawn,
written and explained in report.html and metrics.json, and aggregated over prompts, with no other file
touched. The built-in entries keep their report order."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

import kvscope as ks
from kvscope.analyze.figure_base import new_figure
from kvscope.analyze.registry import ANALYSES, FIGURES, Analysis, Figure, many_analyses, register, unregister
from tests.helpers import png_ok, random_snapshot

EXPLANATION = "The largest |key| element of the snapshot, over every layer, kv_head and position."


@dataclass(frozen=True)
class Peak:
    peak: float  # max |key| over [layer][kv_head, position, head_dim]
    positions: int


def _compute(ctx) -> Peak:
    return Peak(max(float(k.abs().max()) for k in ctx.snapshot.keys), ctx.snapshot.n_positions)


def _draw(data):
    fig, axes = new_figure(3, 2)
    axes[0][0].bar([0], [data.results["planted_peak"].peak])
    fig.tight_layout()
    return fig


def _draw_many(data):
    fig, axes = new_figure(3, 2)
    axes[0][0].plot(data.results["many"].extra["planted_peaks"])
    fig.tight_layout()
    return fig


@pytest.fixture
def planted():
    register(
        Analysis(
            name="planted_peak",
            compute=_compute,
            figures=(Figure(("planted_figure",), _draw, "Planted peak", EXPLANATION, draw_many=_draw_many),),
            aggregate=lambda results: {"planted_peaks": [r.peak for r in results]},
        )
    )
    yield
    unregister("planted_peak")


def _peak(snap) -> float:
    return float(max(k.abs().max() for k in snap.keys))


def test_a_registered_analysis_shows_up_in_the_report_and_metrics(planted, tmp_path):
    snap = random_snapshot(layers=2, kv_heads=2, n=20, d=8, seed=1)
    ks.analyze(snap).save(tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["analyses"]["planted_peak"] == {"peak": pytest.approx(_peak(snap)), "positions": 20}
    assert doc["figures"]["planted_figure"] == {"files": ["planted_figure.png"]}
    assert list(doc["figures"])[-1] == "planted_figure"  # no place given: after every built-in figure
    assert png_ok(tmp_path / "out" / "planted_figure.png")
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<figure id="planted_figure"><h3>Planted peak' in html and EXPLANATION in html


def test_a_registered_aggregation_runs_over_prompts(planted):
    snaps = [random_snapshot(layers=2, kv_heads=2, n=20, d=8, seed=s) for s in (1, 2)]
    result = ks.analyze(snaps)
    assert "planted_peak" in many_analyses()
    assert result.metrics["aggregate"]["planted_peaks"] == pytest.approx([_peak(s) for s in snaps])
    assert "planted_figure" in result.figures and result.metrics["figures"]["planted_figure"]["files"]


def test_unregister_restores_the_built_in_registry(planted):
    assert "planted_figure" in FIGURES
    unregister("planted_peak")
    assert "planted_peak" not in ANALYSES and "planted_figure" not in FIGURES
    assert len(FIGURES) == 17 and list(ANALYSES)[0] == "sinks"


def test_a_figure_file_registered_twice_is_refused():
    taken = FIGURES["kv_cache_layers"]
    with pytest.raises(ValueError, match="already registered"):
        register(Analysis(name="copy", compute=_compute, figures=(taken,)))
    assert "copy" not in ANALYSES


def test_figures_follow_their_place_not_their_analysis():
    """head_sparsity belongs to layer_stats but stands after the token figures, as before the registry."""
    names = list(FIGURES)
    assert names.index("head_sparsity") > names.index("token_key_value_scatter")
    assert names[0] == "kv_cache_layers" and names[-1] == "importance_validation"
    assert FIGURES["kv_pca_by_position"].needs == ("pca", "tokens")


def test_ground_truth_in_the_output_folder(tmp_path):
    """analyze_into's ground truth: the given file, else the folder's own; prune's file in the folder is used
    in place (not copied), and another file while prune's is there is refused naming ground_truth."""
    from kvscope.analyze.command import ground_truth_for
    from kvscope.analyze.pipeline import GROUND_TRUTH_FILE
    from kvscope.errors import UsageError
    from kvscope.outdir import MARKER, marker_text

    out = tmp_path / "out"
    out.mkdir()
    assert ground_truth_for(out, None) == (None, False)
    theirs = out / GROUND_TRUTH_FILE
    theirs.write_text("{}")
    assert ground_truth_for(out, None) == (theirs, False)  # analyze's own earlier copy: replaced by the save
    (out / MARKER).write_text(marker_text({"prune": [GROUND_TRUTH_FILE]}))
    assert ground_truth_for(out, None) == (theirs, True)
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(UsageError, match="holds another") as err:
        ground_truth_for(out, other)
    assert err.value.param == "ground_truth"
