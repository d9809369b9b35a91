"""The import rules of CONTRIBUTING.md's map, checked on the source (AST walk, imports inside functions too).

- no import cycle among kvscope's modules;
- the core (flat modules at the top level) and the kit never import a command package;
- nothing outside ``kvscope/cli/`` imports click, rich's console or ``kvscope.cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kvscope

PACKAGE = Path(kvscope.__file__).resolve().parent
COMMANDS = {"capture", "analyze", "compare", "prune", "bench", "caching", "memory", "mas", "view", "cli"}
# Old import paths kept one release (they forward to the new modules); they import what they alias.
ALIASES = {"capturing", "evaluation", "report", "plots"}
# progress.py draws the library's progress bar on stderr, which rich.progress needs a stderr Console for.
RICH_CONSOLE_ALLOWED = {"kvscope.progress"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every module named by an import statement in ``path``: ``from a import b`` names ``a.b`` when that
    is a module of kvscope, else ``a``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                names.add(sub if sub in MODULES else node.module)
    return names


def graph() -> dict[str, set[str]]:
    return {m: {n for n in imports(p) if n in MODULES and n != m} for m, p in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def is_core(name: str) -> bool:
    return name.count(".") == 1 and top(name) not in COMMANDS | ALIASES | {"__main__"}


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_and_kit_never_import_a_command_package():
    bad = {
        (m, n)
        for m, deps in graph().items()
        if is_core(m) or top(m) == "kit"
        for n in deps
        if top(n) in COMMANDS | ALIASES
    }
    assert bad == set()


def test_core_modules_are_the_ones_the_map_names():
    core = {m.split(".")[1] for m in MODULES if is_core(m)}
    assert {"errors", "models", "snapshot", "hfcache", "attention", "decode", "quant", "fileio", "stats"} <= core


def test_nothing_outside_the_cli_imports_click_or_a_console():
    bad = set()
    for m, path in MODULES.items():
        if top(m) == "cli" or m == "kvscope.__main__":
            continue
        for n in imports(path):
            console = n.startswith("rich.console") and m not in RICH_CONSOLE_ALLOWED
            if n.split(".")[0] == "click" or console or n == "kvscope.cli" or n.startswith("kvscope.cli."):
                bad.add((m, n))
    assert bad == set()


def test_the_walker_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from kvscope.cli import common\n    import click\n")
    assert {"kvscope.cli.common", "click"} <= imports(src)
