"""The demo notebook cannot rot: its jupytext twin runs offline on the embedded model, and the .ipynb
holds the same cells."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWIN = ROOT / "notebooks" / "kv_cache_demo.py"
NOTEBOOK = ROOT / "notebooks" / "kv_cache_demo.ipynb"


def test_notebook_matches_its_twin():
    jupytext = pytest.importorskip("jupytext")
    py, nb = jupytext.read(TWIN), jupytext.read(NOTEBOOK)
    assert [c.source for c in py.cells] == [c.source for c in nb.cells]
    assert [c.cell_type for c in py.cells] == [c.cell_type for c in nb.cells]


@pytest.mark.embedded
def test_twin_runs_offline_on_the_embedded_model(tmp_path):
    env = dict(
        os.environ,
        KVSCOPE_DEMO_OUT=str(tmp_path),
        KVSCOPE_DEMO_TOKENS="4",
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    run = subprocess.run(
        [sys.executable, str(TWIN)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "same tokens: True" in run.stdout
    lines = dict(line.split(":", 1) for line in run.stdout.splitlines() if ":" in line)
    assert float(lines["post-RoPE keys vs cache"]) < 1e-5 < float(lines["pre-RoPE keys vs cache"].split()[0])
    assert float(lines["with RoPE, max |Δ| vs o_proj input"]) < 1e-4
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(
        [
            "attention_projections.png",
            "attention_patterns.png",
            "gqa_mapping.png",
            "kv_caching_comparison.png",
            "kv_cache_speedup.png",
            "prefix_reuse.png",
        ]
    )


TOUR = ROOT / "notebooks" / "kvscope_tour.py"
TOUR_NOTEBOOK = ROOT / "notebooks" / "kvscope_tour.ipynb"


def test_tour_matches_its_twin():
    jupytext = pytest.importorskip("jupytext")
    py, nb = jupytext.read(TOUR), jupytext.read(TOUR_NOTEBOOK)
    assert [(c.cell_type, c.source) for c in py.cells] == [(c.cell_type, c.source) for c in nb.cells]


def _execute_tour(folder: Path):
    """The tour executed as a notebook (nbclient, Agg backend, offline) in ``folder``; ``None`` without
    nbclient, nbformat or ipykernel."""
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError:
        return None
    nb = nbformat.read(TOUR_NOTEBOOK, as_version=4)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = {"MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(
            nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb


def _run_tour_script(folder: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    run = subprocess.run([sys.executable, str(TOUR)], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The tour, run once for the two tests below (about 45 s of CPU a run): ``(stdout, executed notebook)``.

    Executed as a notebook where nbclient and ipykernel are installed: its cells are the .py twin's
    (``test_tour_matches_its_twin``), and its stdout is what the twin prints. Elsewhere (``make test-oldest``'s
    virtualenv) the twin runs as a script and the notebook is ``None``.
    """
    folder = tmp_path_factory.mktemp("tour")
    nb = _execute_tour(folder)
    if nb is None:
        return _run_tour_script(folder), None
    code = [c for c in nb.cells if c.cell_type == "code"]
    stdout = "".join(o.text for c in code for o in c.outputs if o.output_type == "stream" and o.name == "stdout")
    return stdout, nb


@pytest.mark.embedded
def test_tour_runs_offline_on_the_embedded_model(tour):
    from kvscope.analyze.figure_registry import FIGURES

    lines = dict(line.split(": ", 1) for line in tour[0].splitlines() if ": " in line)
    assert lines["model"].startswith("30 layers, 9 q_heads, 3 kv_heads")
    assert lines["snapshot"].startswith("KVSnapshot(") and len(lines["snapshot"]) < 300
    assert int(lines["figures"]) == len(FIGURES)
    fulls = set()
    for name in ("snapkv", "streaming"):
        full, half = (float(x.split()[0]) for x in lines[name].split("perplexity ")[1].split(", "))
        assert 1 < full < 1e4 and 1 < half < 1e4 and half != full  # one text: either direction is possible
        fulls.add(full)
    assert len(fulls) == 1  # both strategies are measured against the same unpruned baseline
    assert "llama" in lines["memory"].lower()
    assert lines["ks.compress"].startswith("32 tokens held at most, '")  # decodetask: the ks.compress cell


@pytest.mark.embedded
def test_tour_notebook_shows_its_figures_inline(tour):
    """Executed as a notebook, with matplotlib's Agg backend (no inline backend, no %matplotlib inline), the
    cells ending in ``result.figures[...]`` output real PNG images, and the analysis' HTML stays under 1 MB."""
    nb = tour[1]
    if nb is None:
        pytest.skip("needs nbclient, nbformat and ipykernel")
    code = [c for c in nb.cells if c.cell_type == "code"]
    figure_cells = [c for c in code if c.source.strip().startswith('result.figures["')]
    assert len(figure_cells) == 3
    for cell in figure_cells:
        pngs = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert pngs and len(pngs[0]["data"]["image/png"]) > 10_000, cell.source  # a real image, base64
    analysis = next(c for c in code if c.source.rstrip().endswith("\nresult"))
    html = next(o["data"]["text/html"] for o in analysis.outputs if "text/html" in o.get("data", {}))
    assert "data:image/png;base64," in html and len(html.encode()) < 1_000_000
