"""Write a prune mode's files: figures and data, one unit per mode (``kvscope.fileio.atomic_dir``).

Each ``save_*`` takes a result dataclass and returns the paths it wrote. A mode replaces only its own
earlier files in ``out`` (the folder's marker names them under ``command(mode)``): the other modes'
files, and other commands' files, stay. Printing tables is the CLI's job (``kvscope.cli.prune``).
"""

from __future__ import annotations

from pathlib import Path

from kvscope.fileio import atomic_dir, write_json, write_text
from kvscope.prune.loo import LooResult
from kvscope.prune.scan import ScanResult
from kvscope.prune.sweep import SweepResult, to_csv


def command(mode: str, scan: str | None = None) -> str:
    """The owner name a mode's files get in the folder's marker (``"prune --sweep"`` ...)."""
    return {"sweep": "prune --sweep", "scan": f"prune --scan {scan}", "leave_one_out": "prune --leave-one-out"}[mode]


def save_sweep(res: SweepResult, out: Path, force: bool = False) -> list[Path]:
    """``sweep.csv``, ``sweep.json`` and ``compression_pareto.png``, written as one unit."""
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import compression_pareto

    with atomic_dir(out, command=command("sweep"), force=force) as tmp:
        write_text(tmp / "sweep.csv", to_csv(res))
        write_json(tmp / "sweep.json", res.to_dict())
        save_figure(compression_pareto(res), tmp / "compression_pareto.png")
    return [Path(out) / n for n in ("sweep.csv", "sweep.json", "compression_pareto.png")]


def save_scan(res: ScanResult, out: Path, force: bool = False) -> list[Path]:
    """``prune_scan_<kind>.json`` and ``.png`` (measured beside analyze's predicted potential)."""
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import scan_figure

    names = [f"prune_scan_{res.kind}.json", f"prune_scan_{res.kind}.png"]
    with atomic_dir(out, command=command("scan", res.kind), force=force) as tmp:
        write_json(tmp / names[0], res.to_dict())
        save_figure(scan_figure(res, res.predicted_potential, res.predicted_definition), tmp / names[1])
    return [Path(out) / n for n in names]


def save_loo(res: LooResult, out: Path, force: bool = False) -> list[Path]:
    """``importance_ground_truth.json`` (the contract ``kvscope analyze`` reads) and ``.png``."""
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import importance_ground_truth

    names = ["importance_ground_truth.json", "importance_ground_truth.png"]
    with atomic_dir(out, command=command("leave_one_out"), force=force) as tmp:
        write_json(tmp / names[0], res.ground_truth_json())
        save_figure(importance_ground_truth(res), tmp / names[1])
    return [Path(out) / n for n in names]
