"""The view page: ``web/index.html`` with the data inlined, served as separate files on 127.0.0.1 or
written as one self-contained HTML file (``--export``, ``ks.view(...).save``).

It follows the memory page (``kvscope.memory.page``/``server``): the data sits in a JSON element whose
``<``, ``>`` and ``&`` are escaped, a Content-Security-Policy allows only the page's own script and style
(by hash in the export) and no connection, and the server answers only known names, for a Host of
127.0.0.1 or localhost. The script is one classic ES module without imports, so the export inlines it as is.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from importlib import resources
from typing import Any

from kvscope.memory.page import _BASE_CSP, CSP, csp_meta, data_script
from kvscope.memory.server import HOST, QuietServer, make_handler

SCRIPT, STYLE = "view.js", "style.css"
DATA_MARK, CSP_MARK = "<!--KV-DATA-->", "<!--KV-CSP-->"
SCRIPT_TAG = f'<script type="module" src="{SCRIPT}"></script>'
STYLE_TAG = f'<link rel="stylesheet" href="{STYLE}">'


def web_file(name: str) -> str:
    """Text of one file of ``kvscope/view/web``."""
    return resources.files("kvscope.view").joinpath("web", name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def render_index(data: dict[str, Any]) -> str:
    """index.html with ``data`` inlined; script and style stay separate files (served mode)."""
    return web_file("index.html").replace(CSP_MARK, csp_meta(CSP)).replace(DATA_MARK, data_script(data))


def export_html(data: dict[str, Any]) -> str:
    """One self-contained HTML file: style, data and script inlined, allowed by their hashes."""
    style = f"\n{web_file(STYLE)}"
    script = "\n" + web_file(SCRIPT).replace("</script", "<\\/script") + "\n"
    policy = f"{_BASE_CSP}; script-src {_sha256(script)}; style-src {_sha256(style)}; connect-src 'none'"
    html = web_file("index.html").replace(CSP_MARK, csp_meta(policy)).replace(DATA_MARK, data_script(data))
    html = html.replace(STYLE_TAG, f"<style>{style}</style>")
    return html.replace(SCRIPT_TAG, f'<script type="module">{script}</script>')


def bind(port: int = 0) -> tuple[http.server.ThreadingHTTPServer, dict[str, bytes]]:
    """A server bound to 127.0.0.1:``port`` (0: a free one) and the dict of files it serves, still
    without ``index.html`` (so a port in use is reported before the page's data is computed)."""
    files = {name: web_file(name).encode("utf-8") for name in (SCRIPT, STYLE)}
    return QuietServer((HOST, port), make_handler(files)), files


def make_server(data: dict[str, Any], port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` for the page with ``data`` inlined."""
    server, files = bind(port)
    files["index.html"] = render_index(data).encode("utf-8")
    return server


def serve_in_thread(data: dict[str, Any], port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (tests and benchmarks)."""
    server = make_server(data, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/"
