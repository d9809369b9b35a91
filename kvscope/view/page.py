"""The view page: ``web/index.html`` with the data inlined, served as separate files on 127.0.0.1 or
written as one self-contained HTML file (``--export``, ``ks.view(...).save``).

It shares the memory page's kit (``kvscope.kit.pages``): the data sits in a JSON element whose ``<``,
``>`` and ``&`` are escaped, a Content-Security-Policy allows only the page's own script and style (by hash
in the export) and no connection, and the server answers only known names, for a Host of 127.0.0.1 or
localhost. The script is one classic ES module without imports, so the export inlines it as is.
"""

from __future__ import annotations

import http.server
from importlib import resources
from typing import Any

from kvscope.kit import pages

SCRIPT, STYLE = "view.js", "style.css"
TAGS = {"script": f'<script type="module" src="{SCRIPT}"></script>', "style": f'<link rel="stylesheet" href="{STYLE}">'}


def web_file(name: str) -> str:
    """Text of one file of ``kvscope/view/web``."""
    return resources.files("kvscope.view").joinpath("web", name).read_text(encoding="utf-8")


def render_index(data: dict[str, Any]) -> str:
    """index.html with ``data`` inlined; script and style stay separate files (served mode)."""
    return pages.fill_page(web_file("index.html"), data)


def export_html(data: dict[str, Any]) -> str:
    """One self-contained HTML file: style, data and script inlined, allowed by their hashes."""
    return pages.inline_page(web_file("index.html"), data, TAGS, web_file(SCRIPT), web_file(STYLE))


def bind(port: int = 0) -> tuple[http.server.ThreadingHTTPServer, dict[str, bytes]]:
    """A server bound to 127.0.0.1:``port`` (0: a free one) and the dict of files it serves, still
    without ``index.html`` (so a port in use is reported before the page's data is computed)."""
    files = {name: web_file(name).encode("utf-8") for name in (SCRIPT, STYLE)}
    return pages.loopback_server(files, port), files


def make_server(data: dict[str, Any], port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` for the page with ``data`` inlined."""
    server, files = bind(port)
    files["index.html"] = render_index(data).encode("utf-8")
    return server


def serve_in_thread(data: dict[str, Any], port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (tests and benchmarks)."""
    return pages.serve_in_thread(make_server(data, port))
