"""The page's server: loopback only, its own files only (no traversal, no listing); the export."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from kvscope.memory import catalog
from kvscope.memory.page import MODULES, bundle_modules, export_html, web_files
from kvscope.memory.server import serve_in_thread


@pytest.fixture(scope="module")
def server():
    srv, url = serve_in_thread(catalog.page_data())
    yield srv
    srv.shutdown()
    srv.server_close()


def get(server, path, method="GET", host=None, headers=False):
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return (resp.status, body, dict(resp.getheaders())) if headers else (resp.status, body)


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example",
        "attacker.example:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "localhost.attacker.example:{port}",
        "",
    ],
)
def test_foreign_host_headers_are_refused(server, host):
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 must get nothing."""
    status, body = get(server, "/", host=host.format(port=server.server_address[1]))
    assert status == 421 and b"kv-data" not in body


def test_loopback_hosts_are_answered_with_a_csp(server):
    port = server.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, body, headers = get(server, "/", host=host, headers=True)
        assert status == 200 and b"kv-data" in body
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert b'http-equiv="Content-Security-Policy"' in body


def test_binds_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"
    others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for ip in others:  # the port is not reachable through any other interface of this machine
        with pytest.raises(OSError):
            socket.create_connection((ip, server.server_address[1]), timeout=1).close()


def test_serves_index_with_inlined_data_and_modules(server):
    status, body = get(server, "/")
    assert status == 200 and b'id="kv-data"' in body and b"llama-3.1-8b" in body
    for name in MODULES + ("style.css",):
        assert get(server, f"/{name}")[0] == 200
    assert get(server, "/app.js?x=1")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../formulas.py",
        "/..%2fformulas.py",
        "/%2e%2e/catalog.py",
        "/web/app.js",
        "//etc/passwd",
        "/../../../../etc/passwd",
        "/data/",
        "/data/gpus.json",
        "/web/",
        "/.",
        "/nope.js",
        "/index.html/",
        "/C:\\windows",
    ],
)
def test_no_traversal_and_no_listing(server, path):
    status, body = get(server, path)
    assert status == 404 and body == b"not found\n"


def test_other_methods_are_refused(server):
    assert get(server, "/", "POST")[0] == 501
    assert get(server, "/", "HEAD") == (200, b"")


def raw(server, request: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n", 501),
        (b"BREW / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: attacker.example\r\n\r\n", 421),
        (b"DELETE / HTTP/1.1\r\nHost: attacker.example:{port}\r\n\r\n", 421),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\nHost: 127.0.0.1:{port}\r\n\r\n", 505),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_error_pages_carry_the_csp_and_check_the_host(server, request_bytes, status):
    """Issue 23 item 19: http.server's own error pages lacked the CSP and answered any Host."""
    port = str(server.server_address[1]).encode()
    got, headers, body = raw(server, request_bytes.replace(b"{port}", port))
    assert got == status
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Type"].startswith("text/plain")
    assert b"<" not in body and body.startswith(str(status).encode())


def test_data_element_cannot_be_closed_or_commented_by_any_string():
    from kvscope.kit.pages import data_script

    hostile = {"name": "</script><script>alert(1)</script><!--<script>&amp;"}
    html = data_script(hostile)
    inner = html[html.index(">") + 1 : html.rindex("</script>")]
    assert "<" not in inner and ">" not in inner and "&" not in inner
    assert json.loads(inner) == hostile


def test_export_inlines_everything():
    html = export_html(catalog.page_data())
    assert 'src="' not in html and 'href="style.css"' not in html and "\nimport " not in html
    assert '<script type="module">' in html and 'id="kv-data"' in html
    assert "export function" not in bundle_modules()


def test_page_weight_under_300_kb():
    assert sum(len(b) for b in web_files().values()) + len(str(catalog.page_data())) < 300_000
