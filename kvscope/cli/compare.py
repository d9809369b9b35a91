"""``kvscope compare A.kvs B.kvs``: two snapshots side by side, a thin client of ``kvscope.analyze.comparison``."""

from __future__ import annotations

from pathlib import Path

import click

from kvscope.analyze.settings import CompareSettings as S
from kvscope.cli.common import (
    CONTEXT_SETTINGS,
    check_out,
    emit_json,
    force_option,
    json_option,
    out_option,
    print_table,
    setup_logging,
)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("snapshot_a", type=click.Path(path_type=Path))
@click.argument("snapshot_b", type=click.Path(path_type=Path))
@out_option(
    S.out,
    "Folder for the figures, metrics.json and report.html (kvscope's own earlier files replaced; "
    "a folder holding other files is refused unless --force).",
)
@force_option
@json_option
def compare(snapshot_a, snapshot_b, out, force, as_json):
    """Compare two saved snapshots: per-layer statistics, sinks, outlier channels, quantization error.

    \b
    Example:
      kvscope compare story.kvs code.kvs --out story-vs-code
    """
    from kvscope.analyze.comparison import compare as run
    from kvscope.snapshot import KVSnapshot

    setup_logging(quiet=as_json)
    check_out(out, "compare", force, [snapshot_a, snapshot_b])
    a, b = KVSnapshot.load(snapshot_a, require_finite=True), KVSnapshot.load(snapshot_b, require_finite=True)
    result = run(a, b, labels=(snapshot_a.name, snapshot_b.name))
    result.save(out, force=force)
    summary = {"out": str(out), **result.metrics["summary"], "report": str(out / "report.html")}
    if as_json:
        emit_json(summary)
    else:
        print_table("kvscope compare", list(summary.items()))
