"""HTML pages: a result's notebook view, and the pages with scripts (memory, view) with their
Content-Security-Policy, inlined data and loopback server. Every text is escaped; figures are inlined as
PNG (no file, no network).

``summary_html`` is the notebook view every result shares (``ResultMixin._repr_html_``): a title, a table
of ``(name, value)`` rows, notes under it, then the result's figures (full size when there are a few,
thumbnails when there are many, so that the page stays well under a megabyte).
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

FULL_SIZE_FIGURES = 6  # more figures than this are shown as thumbnails


def summary_html(
    title: str,
    rows: Iterable[tuple[str, Any]],
    figures: dict[str, Any] | None = None,
    notes: Iterable[str] = (),
    close: bool = True,
) -> str:
    """``<div>`` with ``title`` in bold, one table row per ``(name, value)``, each note in small print and
    each figure inlined (closed after, unless ``close`` is False: figures the result holds)."""
    from kvscope.kit.figures import figure_html, thumbnail_html

    esc = lambda x: html.escape(str(x))  # noqa: E731
    body = "".join(f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    foot = "".join(f"<p><small>{esc(n)}</small></p>" for n in notes)
    figures = figures or {}
    if len(figures) > FULL_SIZE_FIGURES:
        images = "".join(thumbnail_html(name, fig) for name, fig in figures.items())
        if close:
            import matplotlib.pyplot as plt

            for fig in figures.values():
                plt.close(fig)
    else:
        images = "".join(figure_html(fig, close=close) for fig in figures.values())
    return f"<div><b>{esc(title)}</b><table>{body}</table>{foot}{images}</div>"


# ---- self-contained pages: the Content-Security-Policy, the inlined data, the assembly of index.html

# The Content-Security-Policy of a self-contained report without scripts (bench, compare): images are
# data: URIs and styles inline, so nothing is fetched and nothing runs.
CSP_META = (
    "<meta http-equiv='Content-Security-Policy' "
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
)


BASE_CSP = "default-src 'none'; img-src 'self' data:; base-uri 'none'; form-action 'none'; object-src 'none'"
# a served page (memory, view): only its own scripts and styles, connections to its own server only
SERVED_CSP = f"{BASE_CSP}; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'"
DATA_MARK, CSP_MARK = "<!--KV-DATA-->", "<!--KV-CSP-->"


def data_script(data: dict[str, Any]) -> str:
    """The data element: JSON whose ``<``, ``>`` and ``&`` are ``\\u`` escapes (inert in any HTML state)."""
    text = json.dumps(data, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="kv-data">{text}</script>'


def csp_meta(policy: str) -> str:
    """A meta tag for ``policy`` (frame-ancestors only works as a header and is dropped here)."""
    kept = "; ".join(d for d in policy.split("; ") if not d.startswith("frame-ancestors"))
    return f'<meta http-equiv="Content-Security-Policy" content="{kept}">'


def fill_page(template: str, data: dict[str, Any], policy: str = SERVED_CSP) -> str:
    """``template`` (an index.html holding ``CSP_MARK`` and ``DATA_MARK``) with the meta tag of ``policy``
    and ``data`` inlined."""
    return template.replace(CSP_MARK, csp_meta(policy)).replace(DATA_MARK, data_script(data))


def inline_page(template: str, data: dict[str, Any], tags: dict[str, str], script: str, style: str) -> str:
    """One self-contained HTML file: ``template`` with ``data`` inlined, the ``tags["script"]`` element
    replaced by ``script`` and the ``tags["style"]`` element by ``style``, both allowed by their SHA-256
    hashes (no other script, style or connection is)."""
    style = f"\n{style}"
    script = "\n" + script.replace("</script", "<\\/script") + "\n"
    policy = f"{BASE_CSP}; script-src {_sha256(script)}; style-src {_sha256(style)}; connect-src 'none'"
    page = fill_page(template, data, policy).replace(tags["style"], f"<style>{style}</style>")
    return page.replace(tags["script"], f'<script type="module">{script}</script>')


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


# ---- the loopback server of a page
#
# It binds 127.0.0.1 (never a public interface) and answers only for the files known at start, by exact
# name: no directory listing, no path that could leave a folder, GET and HEAD only. Only requests whose Host
# header is ``127.0.0.1:PORT`` or ``localhost:PORT`` are answered (a page on another origin cannot reach it
# through DNS rebinding); every answer carries the page's Content-Security-Policy, error pages (400, 414,
# 501, ...) included; a client that hangs up mid-answer is dropped quietly.

HOST = "127.0.0.1"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
IDLE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


def _content_type(name: str) -> str:
    return next((t for ext, t in TYPES.items() if name.endswith(ext)), "application/octet-stream")


def make_handler(files: dict[str, bytes], csp: str = SERVED_CSP) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler class serving exactly ``files`` (name -> bytes), ``/`` being ``index.html``, every answer
    with the header ``Content-Security-Policy: csp``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "kvscope"
        sys_version = ""
        timeout = IDLE_TIMEOUT_S  # an idle connection is closed (socket timeout), its thread freed

        def _host_ok(self) -> bool:
            port = self.server.server_address[1]
            return self.headers.get("Host", "").lower() in (f"127.0.0.1:{port}", f"localhost:{port}")

        def _resolve(self) -> tuple[int, bytes, str]:
            if not self._host_ok():
                return 421, b"misdirected request: use http://127.0.0.1:PORT/\n", "text/plain; charset=utf-8"
            path = urlsplit(self.path).path
            name = "index.html" if path == "/" else path[1:] if path.startswith("/") else ""
            if name not in files:
                return 404, b"not found\n", "text/plain; charset=utf-8"
            return 200, files[name], _content_type(name)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own errors (400, 414, 431, 501, ...) as plain text with the page's headers;
            a request whose headers were read and whose Host is foreign gets 421, as every other answer.
            (400 and 414 come before the headers are read: no Host to check, and nothing of ours sent.)"""
            if getattr(self, "headers", None) is not None and not self._host_ok():
                code, message = 421, "misdirected request: use http://127.0.0.1:PORT/"
            text = f"{code} {message or self.responses.get(code, ('error',))[0]}\n".encode("latin-1", "replace")
            self.close_connection = True
            self.request_version = "HTTP/1.0"  # a line too broken to name its version still gets headers
            self._answer(code, text, "text/plain; charset=utf-8", self.command != "HEAD")

        def _send(self, body: bool) -> None:
            self._answer(*self._resolve(), body)

        def _answer(self, code: int, data: bytes, ctype: str, body: bool) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
                self.close_connection = True  # the client hung up: nothing to answer

        def do_GET(self) -> None:
            self._send(True)

        def do_HEAD(self) -> None:
            self._send(False)

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    """Drops clients that hang up without printing a traceback (socketserver prints one by default).

    At most ``MAX_CONNECTIONS`` connections are served at once (one thread each); a connection beyond
    that is closed at once, and an idle one after ``IDLE_TIMEOUT_S`` seconds."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: refuse, keep no thread
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def loopback_server(files: dict[str, bytes], port: int = 0, csp: str = SERVED_CSP) -> QuietServer:
    """A server bound to 127.0.0.1:``port`` (0 picks a free one) answering ``files`` (name -> bytes). The dict
    is served as it is at each request: a caller may bind first and add ``index.html`` after (so that a port
    in use is reported before the page's data is computed). Raises ``OSError`` when it cannot bind."""
    return QuietServer((HOST, port), make_handler(files, csp))


def serve_in_thread(server: http.server.ThreadingHTTPServer) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start ``server`` in a daemon thread; returns it and its base URL (tests and benchmarks)."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/"
