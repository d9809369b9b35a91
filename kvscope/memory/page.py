"""Build the memory page: ``web/index.html`` with the catalogs inlined, served as separate ES modules,
or bundled into one self-contained HTML file for ``--export``.

The page never fetches anything: its data sits in ``<script type="application/json" id="kv-data">``, with
every ``<``, ``>`` and ``&`` written as a JSON escape, so no string (a model folder named ``<!--<script>``
or ``</script>``) can end the element or open a comment. A Content-Security-Policy (in a meta tag and, when
served, a header) allows only the page's own scripts and styles (hashes in the export); both come from
``kvscope.kit.pages``, which the view page shares.
Modules are listed in ``MODULES`` in dependency order; the bundler drops their ``import`` lines and
``export`` keywords, so a module may only import names from modules listed before it.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from kvscope.kit.pages import fill_page, inline_page

MODULES = ("formulas.js", "canvas.js", "draw.js", "app.js")
STYLES = "style.css"
TAGS = {"script": '<script type="module" src="app.js"></script>', "style": '<link rel="stylesheet" href="style.css">'}
_IMPORT = re.compile(r"^import\s.*?;\s*$", re.M | re.S)


def web_file(name: str) -> str:
    """Text of one file of the web folder."""
    return resources.files("kvscope.memory").joinpath("web", name).read_text(encoding="utf-8")


def web_files() -> dict[str, bytes]:
    """Every servable file of the web folder by name (no sub-folders)."""
    root = resources.files("kvscope.memory").joinpath("web")
    return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file() and not p.name.startswith(".")}


def render_index(data: dict[str, Any]) -> str:
    """index.html with ``data`` inlined; scripts and styles stay separate files."""
    return fill_page(web_file("index.html"), data)


def bundle_modules() -> str:
    """The ES modules concatenated in ``MODULES`` order, imports and export keywords removed."""
    parts = []
    for name in MODULES:
        src = _IMPORT.sub("", web_file(name))
        parts.append(f"// ---- {name}\n" + re.sub(r"^export\s+", "", src, flags=re.M))
    return "\n".join(parts)


def export_html(data: dict[str, Any]) -> str:
    """One self-contained HTML file: styles, data and the bundled modules inlined, allowed by hash."""
    return inline_page(web_file("index.html"), data, TAGS, bundle_modules(), web_file(STYLES))
