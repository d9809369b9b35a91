"""User-facing errors.

``UsageError`` means the caller asked for something invalid (exit code 2): a bad option value, an
unreadable or invalid input file, an invalid model config, a corrupted snapshot. ``KvscopeError``
means the run failed (exit code 1). The CLI prints either as one line. ``Terminated`` is raised by
the CLI's SIGTERM/SIGHUP handlers so that every ``with`` block cleans up as it does on Ctrl+C.
"""


class KvscopeError(Exception):
    """A failure at run time; the CLI exits with code 1 and one line, no traceback."""

    exit_code = 1


class UsageError(KvscopeError):
    """Invalid input from the caller; the CLI exits with code 2.

    ``param`` names the library parameter at fault (``"layer"``); the message names it the same way and the
    CLI prints the matching ``--flag`` in its place.
    """

    exit_code = 2

    def __init__(self, message: str = "", param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


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
