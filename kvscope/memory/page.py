"""Build the memory page: ``web/index.html`` with the catalogs inlined, served as separate ES modules,
or bundled into one self-contained HTML file for ``--export``.

The page never fetches anything: its data sits in ``<script type="application/json" id="kv-data">``.
Modules are listed in ``MODULES`` in dependency order; the bundler drops their ``import`` lines and
``export`` keywords, so a module may only import names from modules listed before it.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

MODULES = ("formulas.js", "draw.js", "app.js")
STYLES = "style.css"
DATA_MARK = "<!--KV-DATA-->"
SCRIPT_MARK = '<script type="module" src="app.js"></script>'
_IMPORT = re.compile(r"^import\s.*?;\s*$", re.M | re.S)


def web_file(name: str) -> str:
    """Text of one file of the web folder."""
    return resources.files("kvscope.memory").joinpath("web", name).read_text(encoding="utf-8")


def web_files() -> dict[str, bytes]:
    """Every servable file of the web folder by name (no sub-folders)."""
    root = resources.files("kvscope.memory").joinpath("web")
    return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file() and not p.name.startswith(".")}


def data_script(data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="kv-data">{text}</script>'


def render_index(data: dict[str, Any]) -> str:
    """index.html with ``data`` inlined; scripts and styles stay separate files."""
    return web_file("index.html").replace(DATA_MARK, data_script(data))


def bundle_modules() -> str:
    """The ES modules concatenated in ``MODULES`` order, imports and export keywords removed."""
    parts = []
    for name in MODULES:
        src = _IMPORT.sub("", web_file(name))
        parts.append(f"// ---- {name}\n" + re.sub(r"^export\s+", "", src, flags=re.M))
    return "\n".join(parts)


def export_html(data: dict[str, Any]) -> str:
    """One self-contained HTML file: styles, data and the bundled modules inlined."""
    html = render_index(data)
    html = html.replace('<link rel="stylesheet" href="style.css">', f"<style>\n{web_file(STYLES)}</style>")
    script = bundle_modules().replace("</script", "<\\/script")
    return html.replace(SCRIPT_MARK, f'<script type="module">\n{script}\n</script>')
