"""A loopback-only HTTP server for the memory page.

It binds 127.0.0.1 (never a public interface) and answers only for the files of ``web/`` known at
start, by exact name: no directory listing, no path that could leave the folder, GET and HEAD only.
Only requests whose Host header is ``127.0.0.1:PORT`` or ``localhost:PORT`` are answered (a page on
another origin cannot reach it through DNS rebinding); every answer carries the page's
Content-Security-Policy, error pages (400, 414, 501, ...) included; a client that hangs up mid-answer is
dropped quietly.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any
from urllib.parse import urlsplit

from kvscope.memory.page import CSP, render_index, web_files

HOST = "127.0.0.1"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def _content_type(name: str) -> str:
    return next((t for ext, t in TYPES.items() if name.endswith(ext)), "application/octet-stream")


def make_handler(files: dict[str, bytes]) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler class serving exactly ``files`` (name -> bytes); ``/`` is ``index.html``."""

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
            self.send_header("Content-Security-Policy", CSP)
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


IDLE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


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


def make_server(data: dict[str, Any], port: int = 0) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` (0 picks a free port) for the page with ``data`` inlined."""
    files = web_files()
    files["index.html"] = render_index(data).encode("utf-8")
    return QuietServer((HOST, port), make_handler(files))


def serve_in_thread(data: dict[str, Any], port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start a server in a daemon thread; returns it and its base URL (for tests and benchmarks)."""
    server = make_server(data, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}/"
