"""The memory page on 127.0.0.1: the kit's loopback server (``kvscope.kit.pages``: known files only, a
Host check, the page's Content-Security-Policy on every answer) over the files of ``web/``."""

from __future__ import annotations

import http.server
from typing import Any

from kvscope.kit import pages
from kvscope.memory.page import render_index, web_files


def make_server(data: dict[str, Any], port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0 picks a free port) for the page with ``data`` inlined."""
    files = web_files()
    files["index.html"] = render_index(data).encode("utf-8")
    return pages.loopback_server(files, port)


def serve_in_thread(data: dict[str, Any], port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (for tests and benchmarks)."""
    return pages.serve_in_thread(make_server(data, port))
