"""Write a prune mode's files: figures and data, each written atomically into ``out``.

Each ``save_*`` takes a result dataclass and returns the paths it wrote. Printing tables is the
CLI's job (``kvscope.cli.prune``).
"""

from __future__ import annotations

from pathlib import Path

from kvscope.fileio import ensure_dir, write_json, write_text
from kvscope.prune.loo import LooResult
from kvscope.prune.scan import ScanResult
from kvscope.prune.sweep import SweepResult, to_csv


def save_sweep(res: SweepResult, out: Path) -> list[Path]:
    """``sweep.csv``, ``sweep.json`` and ``compression_pareto.png``."""
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import compression_pareto

    ensure_dir(out)
    return [
        write_text(out / "sweep.csv", to_csv(res)),
        write_json(out / "sweep.json", res.to_dict()),
        save_figure(compression_pareto(res), out / "compression_pareto.png"),
    ]


def save_scan(res: ScanResult, out: Path) -> list[Path]:
    """``prune_scan_<kind>.json`` and ``.png`` (measured beside analyze's predicted potential)."""
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import scan_figure

    ensure_dir(out)
    return [
        write_json(out / f"prune_scan_{res.kind}.json", res.to_dict()),
        save_figure(
            scan_figure(res, res.predicted_potential, res.predicted_definition), out / f"prune_scan_{res.kind}.png"
        ),
    ]


def save_loo(res: LooResult, out: Path) -> list[Path]:
    """``importance_ground_truth.json`` (the contract ``kvscope analyze`` reads) and ``.png``."""
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import importance_ground_truth

    ensure_dir(out)
    return [
        write_json(out / "importance_ground_truth.json", res.ground_truth_json()),
        save_figure(importance_ground_truth(res), out / "importance_ground_truth.png"),
    ]
