"""The result contract every ``ks.*`` result follows, in one mixin.

A result defines ``summary()`` (a few ``(name, value)`` pairs that say what it found), ``to_dict()`` (its JSON
document), ``figures()`` (name -> Matplotlib ``Figure``, drawn on each call) and, when it writes files,
``write(folder)`` (its command's files, returning their names) and ``command`` (the owner name its files get
in the folder's marker, ``kvscope.outdir``). The mixin gives it:

- ``save(dir, force=False) -> list[Path]``: exactly the files the CLI writes, swapped in as one unit through
  ``kvscope.fileio.atomic_dir`` (this command's earlier files replaced, every other command's kept);
- a one-line ``__repr__`` (at most ``REPR_LIMIT`` characters) and a ``_repr_html_`` (table and figures),
  built the same way for every command.

A result that holds its figures already (``AnalyzeResult.figures``) keeps them in a :class:`FigureDict`,
which is also callable: ``result.figures["name"]`` and ``result.figures()`` both work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPR_LIMIT = 200  # characters of a repr, so a notebook cell or a log line stays short


class FigureDict(dict):
    """name -> Matplotlib ``Figure``; calling it returns itself (the contract's ``figures()``)."""

    def __call__(self) -> FigureDict:
        return self


class ResultMixin:
    """``save``, ``__repr__`` and ``_repr_html_`` from ``summary()``, ``write()`` and ``figures()``."""

    command: str = "kvscope"  # owner of the files in the folder's marker

    def summary(self) -> list[tuple[str, Any]]:
        """A few ``(name, value)`` pairs that say what the result found (the repr and the notebook table)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def figures(self) -> dict[str, Any]:
        return {}

    def details(self) -> list[tuple[str, Any]]:
        """The notebook table: ``summary()`` unless the result has a fuller one."""
        return self.summary()

    def notes(self) -> list[str]:
        """Lines shown under the notebook table (caveats, warnings)."""
        return []

    def write(self, folder: Path, **options: Any) -> list[str]:
        """Write the command's files into the (temporary, empty) ``folder``; return their relative names."""
        raise NotImplementedError(f"{type(self).__name__} writes no files")

    def save(self, directory: str | Path, force: bool = False, **options: Any) -> list[Path]:
        """Write :meth:`write`'s files into ``directory`` as one unit (``kvscope.fileio.atomic_dir``): this
        command's earlier files there are replaced, every other entry kept; a folder holding files kvscope
        did not write is refused unless ``force``. Returns the final paths."""
        from kvscope.fileio import atomic_dir

        with atomic_dir(directory, command=self.command, force=force) as tmp:
            names = self.write(tmp, **options)
        return [Path(directory) / n for n in names]

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value}" for name, value in self.summary())
        text = " ".join(f"{type(self).__name__}({inner})".split())
        return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 4] + "...)"

    def _repr_html_(self) -> str:
        from kvscope.kit.pages import summary_html

        figures = self.figures()
        held = isinstance(figures, FigureDict)  # the result's own figures stay open
        return summary_html(type(self).__name__, self.details(), figures, self.notes(), close=not held)
