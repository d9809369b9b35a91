"""``ks.view``: the view page of a snapshot or of a bench output folder, as a result object."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvscope.errors import UsageError
from kvscope.kit.results import ResultMixin


@dataclass(repr=False)
class ViewPage(ResultMixin):
    """The page's ``data`` (JSON-ready) and its self-contained ``html``. ``_repr_html_`` shows the page
    itself inline in a notebook (in a sandboxed iframe: its script and style stay apart from the notebook's)."""

    data: dict[str, Any]
    command = "view"

    @property
    def html(self) -> str:
        from kvscope.view.page import export_html

        return export_html(self.data)

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def save(self, directory: str | os.PathLike, force: bool = False) -> list[Path]:
        """Write the self-contained page: to ``directory`` itself when it names an ``.html`` file (what
        ``kvscope view --export FILE`` writes), else as ``view.html`` inside that folder; atomically."""
        if str(directory).lower().endswith(".html"):
            from kvscope.fileio import write_text

            return [write_text(directory, self.html)]
        return super().save(directory, force=force)

    def write(self, folder: Path) -> list[str]:
        from kvscope.fileio import write_text

        return [write_text(folder / "view.html", self.html).name]

    def summary(self) -> list[tuple[str, Any]]:
        d = self.data
        if d["kind"] == "bench":
            return [("bench", d["source"]), ("answers", len(d["outcomes"])), ("eviction_maps", len(d["maps"]))]
        usable = sum("unavailable" not in s for s in d["strategies"])
        return [
            ("model", d["model"]["name"]),
            ("tokens", d["n"]),
            ("strategies", f"{usable} of {len(d['strategies'])}"),
            ("ratios", f"0..{d['ratios'][-1]:g} step {d['ratios'][1]:g}"),
        ]

    def _repr_html_(self) -> str:
        doc = html.escape(self.html, quote=True)
        return f'<iframe sandbox="allow-scripts" style="width:100%;height:900px;border:0" srcdoc="{doc}"></iframe>'


def view_data(source: Any, strategies: list[str] | None = None, step: float | None = None) -> dict[str, Any]:
    """Data of a ``KVSnapshot``, a ``.kvs`` path or a bench output folder (see ``kvscope.view.export``)."""
    from kvscope.snapshot import KVSnapshot
    from kvscope.view.export import DEFAULT_STEP, snapshot_data, stops

    stops(DEFAULT_STEP if step is None else step)  # validate before reading anything
    if isinstance(source, KVSnapshot):
        return snapshot_data(source, strategies, step or DEFAULT_STEP)
    if not isinstance(source, (str, os.PathLike)):
        raise UsageError(f"source must be a KVSnapshot, a .kvs path or a bench folder, got {type(source).__name__}")
    path = Path(source)
    if (path / "bench.json").exists() or (path.is_dir() and not (path / "snapshot.json").exists()):
        from kvscope.view.bench import bench_data

        return bench_data(path)
    snap = KVSnapshot.load(path)
    return snapshot_data(snap, strategies, step or DEFAULT_STEP, source=path.name)


def view(source: Any, strategies: list[str] | None = None, step: float | None = None) -> ViewPage:
    """The view page of ``source``: a ``KVSnapshot`` captured with ``attention=True`` (and
    ``queries=True`` for SnapKV, TOVA, PyramidKV, Ada-KV), a ``.kvs`` path, or a bench output folder.

    ``strategies``: registered names (default: every one); ``step``: the ratio slider's step (default
    0.05; each stop runs every strategy once). One-line ``UsageError`` on bad input.
    """
    return ViewPage(view_data(source, strategies, step))
