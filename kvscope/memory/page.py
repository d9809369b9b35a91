"""Build the memory page: ``web/index.html`` with the catalogs inlined, served as separate ES modules,
or bundled into one self-contained HTML file for ``--export``.

The page never fetches anything: its data sits in ``<script type="application/json" id="kv-data">``, with
every ``<``, ``>`` and ``&`` written as a JSON escape, so no string (a model folder named ``<!--<script>``
or ``</script>``) can end the element or open a comment. A Content-Security-Policy (``CSP``; in a meta tag
and, when served, a header) allows only the page's own scripts and styles (hashes in the export).
Modules are listed in ``MODULES`` in dependency order; the bundler drops their ``import`` lines and
``export`` keywords, so a module may only import names from modules listed before it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from importlib import resources
from typing import Any

MODULES = ("formulas.js", "canvas.js", "draw.js", "app.js")
STYLES = "style.css"
DATA_MARK = "<!--KV-DATA-->"
SCRIPT_MARK = '<script type="module" src="app.js"></script>'
CSP_MARK = "<!--KV-CSP-->"
_IMPORT = re.compile(r"^import\s.*?;\s*$", re.M | re.S)
_BASE_CSP = "default-src 'none'; img-src 'self' data:; base-uri 'none'; form-action 'none'; object-src 'none'"
CSP = f"{_BASE_CSP}; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'"


def web_file(name: str) -> str:
    """Text of one file of the web folder."""
    return resources.files("kvscope.memory").joinpath("web", name).read_text(encoding="utf-8")


def web_files() -> dict[str, bytes]:
    """Every servable file of the web folder by name (no sub-folders)."""
    root = resources.files("kvscope.memory").joinpath("web")
    return {p.name: p.read_bytes() for p in root.iterdir() if p.is_file() and not p.name.startswith(".")}


def data_script(data: dict[str, Any]) -> str:
    """The data element: JSON whose ``<``, ``>`` and ``&`` are ``\\u`` escapes (inert in any HTML state)."""
    text = json.dumps(data, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="kv-data">{text}</script>'


def csp_meta(policy: str) -> str:
    """A meta tag for ``policy`` (frame-ancestors only works as a header and is dropped here)."""
    kept = "; ".join(d for d in policy.split("; ") if not d.startswith("frame-ancestors"))
    return f'<meta http-equiv="Content-Security-Policy" content="{kept}">'


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_index(data: dict[str, Any]) -> str:
    """index.html with ``data`` inlined; scripts and styles stay separate files."""
    return web_file("index.html").replace(CSP_MARK, csp_meta(CSP)).replace(DATA_MARK, data_script(data))


def bundle_modules() -> str:
    """The ES modules concatenated in ``MODULES`` order, imports and export keywords removed."""
    parts = []
    for name in MODULES:
        src = _IMPORT.sub("", web_file(name))
        parts.append(f"// ---- {name}\n" + re.sub(r"^export\s+", "", src, flags=re.M))
    return "\n".join(parts)


def export_html(data: dict[str, Any]) -> str:
    """One self-contained HTML file: styles, data and the bundled modules inlined, allowed by hash."""
    style = f"\n{web_file(STYLES)}"
    script = "\n" + bundle_modules().replace("</script", "<\\/script") + "\n"
    policy = f"{_BASE_CSP}; script-src {_sha256(script)}; style-src {_sha256(style)}; connect-src 'none'"
    html = web_file("index.html").replace(CSP_MARK, csp_meta(policy)).replace(DATA_MARK, data_script(data))
    html = html.replace('<link rel="stylesheet" href="style.css">', f"<style>{style}</style>")
    return html.replace(SCRIPT_MARK, f'<script type="module">{script}</script>')
