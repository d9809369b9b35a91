"""User-facing errors.

``UsageError`` means the caller asked for something invalid (exit code 2): a bad option value, an
unreadable or invalid input file, an invalid model config, a corrupted snapshot. It is a ``ValueError``,
so library callers catch it with built-in exceptions; ``ParameterTypeError`` (also a ``TypeError``) is an
argument of the wrong type, ``InputNotFoundError`` (also a ``FileNotFoundError``) an input path that does
not exist. ``KvscopeError`` means the run failed (exit code 1). The CLI prints any of them as one line.
``Terminated`` is raised by the CLI's SIGTERM/SIGHUP handlers so that every ``with`` block cleans up as it
does on Ctrl+C.
"""

from __future__ import annotations

from typing import Any


class KvscopeError(Exception):
    """A failure at run time; the CLI exits with code 1 and one line, no traceback."""

    exit_code = 1


class UsageError(KvscopeError, ValueError):
    """Invalid input from the caller; the CLI exits with code 2.

    ``param`` names the library parameter at fault (``"layer"``); the message names it the same way and the
    CLI prints the matching ``--flag`` in its place.
    """

    exit_code = 2

    def __init__(self, message: str = "", param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ParameterTypeError(UsageError, TypeError):
    """An argument of the wrong type: ``PARAM must be WHAT, got TYPE``."""


class InputNotFoundError(UsageError, FileNotFoundError):
    """An input path that does not exist (a ``FileNotFoundError`` with one line of text)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def expect(value: Any, kinds: type | tuple[type, ...], param: str, what: str) -> Any:
    """``value`` if it is an instance of ``kinds``, else ``ParameterTypeError`` naming ``param``."""
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        return value
    shown = repr(value) if isinstance(value, (str, int, float, type(None))) else type(value).__name__
    raise ParameterTypeError(f"{param} must be {what}, got {shown[:80]}")


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def expect_model(model: Any, tokenizer: Any) -> None:
    """A loaded model (with ``.config``) and a tokenizer (callable): ``ParameterTypeError`` otherwise."""
    if model is None or not hasattr(model, "config") or not callable(model):
        shown = "None" if model is None else type(model).__name__
        raise ParameterTypeError(f"model must be a loaded transformers model (ks.load_model(...).model), got {shown}")
    if tokenizer is None or not callable(tokenizer):
        shown = "None" if tokenizer is None else type(tokenizer).__name__
        raise ParameterTypeError(f"tokenizer must be the model's tokenizer (ks.load_model(...).tokenizer), got {shown}")


class CorruptSnapshotError(UsageError):
    """A snapshot folder that fails validation: ``snapshot PATH is corrupted: WHAT`` (exit code 2)."""

    def __init__(self, path: object, what: str) -> None:
        super().__init__(f"snapshot {path} is corrupted: {what}")
        self.path, self.what = path, what


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived; like ``KeyboardInterrupt`` it is not an ``Exception``.

    The CLI exits with ``128 + signum`` (143 for SIGTERM, 129 for SIGHUP).
    """

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum
