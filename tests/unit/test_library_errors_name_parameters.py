"""The library speaks parameters, not flags: no error raised outside ``kvscope/cli/`` names a ``--flag``.

A library error names its own parameter (``UsageError("samples must be ...", param="samples")``); the CLI
spells it as the command's flag (``kvscope.cli.flag_message``). Checked on the source: every string literal
(f-strings included) inside a ``raise`` statement or an ``...Error(...)`` call.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kvscope
from kvscope.cli import flag_message
from kvscope.errors import UsageError

PACKAGE = Path(kvscope.__file__).resolve().parent
FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")


def _literals(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _is_error_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    return name.endswith("Error")


def flags_in_errors(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each string literal naming a ``--flag`` inside a raise or an error's construction."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) or _is_error_call(node):
            found += [(node.lineno, t) for t in _literals(node) if FLAG.search(t)]
    return sorted(set(found))


def test_no_library_error_names_a_flag():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        where = path.relative_to(PACKAGE).as_posix()
        for line, text in flags_in_errors(path.read_text()):
            bad.append(f"{where}:{line}: {text!r}")
    assert bad == []


def test_the_scan_finds_a_flag_in_a_raise_and_in_an_error_built_apart():
    src = 'def f(n):\n    if n:\n        raise UsageError(f"--samples must be at least 1, got {n}")\n'
    src += 'ERR = KvscopeError("use --force")\nOK = ValueError("samples must be at least 1")\n'
    assert flags_in_errors(src) == [(3, "--samples must be at least 1, got "), (4, "use --force")]


@pytest.mark.parametrize(
    "argv, message, shown",
    [
        (["bench", "--samples", "0"], "samples must be at least 1, got 0", "--samples must be at least 1, got 0"),
        (["mas", "--method", "all"], "latent_steps must be >= 0, got -1", "--latent-steps must be >= 0, got -1"),
        (["mas", "--method", "all"], "keep_fraction must be in (0, 1], got 2", "--knn-percentage must be in (0, 1]"),
        (["caching"], "second_prompt is empty: give a text", "--second-prompt is empty: give a text"),
        (["prune"], "head 5 is out of range: heads takes kv_head indices", "--prune-heads takes kv_head"),
    ],
)
def test_the_cli_spells_a_parameter_as_its_commands_flag(argv, message, shown):
    param = re.match(r"(?:head \d+ is out of range: )?(\w+)", message).group(1)
    assert shown in flag_message(UsageError(message, param=param), argv)


def test_a_parameter_the_command_lacks_stays_as_the_library_wrote_it():
    exc = UsageError("samples must be at least 1, got 0", param="samples")
    assert flag_message(exc, ["caching"]) == "samples must be at least 1, got 0"
