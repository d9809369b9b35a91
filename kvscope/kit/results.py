"""The result contract every ``ks.*`` result follows, in one mixin.

A result defines ``rows()`` (a few ``(name, value)`` pairs that say what it found), ``to_dict()`` (its JSON
document) and ``figures()`` (name -> Matplotlib ``Figure``, drawn on each call). The mixin gives it a
one-line ``__repr__`` and a ``_repr_html_`` (table and figures) built the same way for every command.
"""

from __future__ import annotations

from typing import Any

REPR_LIMIT = 200  # characters of a repr, so a notebook cell or a log line stays short


class ResultMixin:
    """``__repr__`` and ``_repr_html_`` from ``rows()``; ``figures()`` defaults to none."""

    def rows(self) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def figures(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value}" for name, value in self.rows())
        text = f"{type(self).__name__}({inner})"
        return text if len(text) <= REPR_LIMIT else text[: REPR_LIMIT - 4] + "...)"

    def _repr_html_(self) -> str:
        from kvscope.kit.pages import summary_html

        return summary_html(type(self).__name__, self.rows(), self.figures())
