"""Test helpers shared across tiers."""

from __future__ import annotations

import pytest


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``kvscope`` in-process; return (exit code, stdout, stderr)."""
    from kvscope.cli import main

    code = 0
    try:
        main(argv)
    except SystemExit as exc:  # main exits only on errors or --help/--version
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err: str, code: int, expected_code: int) -> None:
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kvscope: error:"), err
    assert "Traceback" not in err


__all__ = ["run_cli", "assert_one_line_error", "pytest"]
