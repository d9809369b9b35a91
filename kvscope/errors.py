"""User-facing errors.

``UsageError`` means the caller asked for something invalid (exit code 2);
``KvscopeError`` means the run failed (exit code 1). The CLI prints either as one line.
"""


class KvscopeError(Exception):
    """A failure at run time; the CLI exits with code 1 and one line, no traceback."""

    exit_code = 1


class UsageError(KvscopeError):
    """Invalid input from the caller; the CLI exits with code 2."""

    exit_code = 2
