"""``kvscope view`` on the tiny model's snapshot: export, serving (loopback, Host check, CSP), a port in
use, a bench folder; and the bench page in chromium (filters, maps, answers as text)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket

import pytest

from tests.helpers import assert_one_line_error, run_cli

HOSTILE = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'


@pytest.fixture(scope="module")
def snap_path(tiny, tmp_path_factory):
    from kvscope.capture.capturing import capture

    model, tok, _ = tiny
    path = tmp_path_factory.mktemp("view") / "s.kvs"
    capture(model, tok, "The cat sat on the mat. " + HOSTILE, attention=True, queries=True).save(path)
    return path


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "out"
    folder.mkdir()
    outcomes = [
        {"task": t, "sample": s, "config": c, "answer": a, "gold": "Paris", "correct": a == "Paris"}
        for t in ("qa", "needle")
        for s in (0, 1)
        for c, a in (("baseline", "Paris"), ("snapkv@0.5", HOSTILE), ("knorm@0.5", "Paris"))
    ]
    tokens = ["The", " code", " is", " Paris", HOSTILE]
    maps = [
        {"task": "qa", "sample": 0, "ratio": 0.5, "tokens": tokens, "needle": [3, 4],
         "shares": {"snapkv": [1, 0.5, 0, 1, 0.25], "knorm": [1, 1, 0, 0, 1]}, "correct": {"snapkv": False}}
    ]  # fmt: skip
    (folder / "bench.json").write_text(json.dumps({"model": {"name": "tiny"}, "maps": maps}))
    (folder / "samples.jsonl").write_text("".join(json.dumps(o) + "\n" for o in outcomes))
    return folder


def test_export_writes_one_self_contained_file(snap_path, tmp_path, capsys):
    out = tmp_path / "v.html"
    code, _, err = run_cli(["view", str(snap_path), "--export", str(out), "--strategies", "knorm,snapkv"], capsys)
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    data = json.loads(html.split('id="kv-data">')[1].split("</script>")[0])
    assert [s["name"] for s in data["strategies"]] == ["knorm", "snapkv"] and len(data["ratios"]) == 20
    assert "http://" not in html and "https://" not in html


def test_a_port_in_use_is_one_line_exit_2(snap_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_cli(["view", str(snap_path), "--port", str(port), "--no-browser"], capsys)
    assert_one_line_error(err, code, 2)
    assert f"--port {port}" in err


def test_server_answers_loopback_hosts_only_with_the_csp(snap_path):
    from kvscope.snapshot import KVSnapshot
    from kvscope.view.export import snapshot_data
    from kvscope.view.page import serve_in_thread

    server, url = serve_in_thread(snapshot_data(KVSnapshot.load(snap_path), ["knorm"]))
    port = server.server_address[1]
    try:
        assert server.server_address[0] == "127.0.0.1"
        for host, status in ((f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200), ("evil.example", 421)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == status, host
            if status == 200:
                assert "script-src 'self'" in resp.getheader("Content-Security-Policy")
                assert b'id="kv-data"' in body
        for path in ("/../../etc/passwd", "/web/", "/api.py"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{port}"})
            assert conn.getresponse().status == 404, path
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_bench_page_filters_and_shows_answers_as_text(bench_dir, tmp_path, capsys):
    if not shutil.which("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    out = tmp_path / "bench.html"
    code, _, err = run_cli(["view", str(bench_dir), "--export", str(out)], capsys)
    assert code == 0, err
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1920, "height": 1080})
        errors, requests = [], []
        pg.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("request", lambda r: requests.append(r.url))
        pg.goto(out.as_uri())
        assert pg.inner_text("#f-count") == "12 of 12 answers"
        pg.select_option("#f-verdict", "wrong")
        assert pg.inner_text("#f-count") == "4 of 12 answers"
        pg.select_option("#f-task", "qa")
        assert pg.inner_text("#f-count") == "2 of 12 answers"
        pg.select_option("#f-verdict", "")
        pg.select_option("#f-config", "knorm@0.5")
        assert pg.inner_text("#f-count") == "2 of 12 answers"
        assert "Paris" in pg.inner_text("#outcomes") and HOSTILE not in pg.inner_text("#outcomes")
        pg.select_option("#f-config", "snapkv@0.5")
        assert HOSTILE in pg.inner_text("#outcomes")
        pg.click("#outcomes button")  # sample 0 has a map
        assert "snapkv kept at ratio 0.5" in pg.text_content("#map-title")
        assert pg.inner_text("#bench-map") == "".join(["The", " code", " is", " Paris", HOSTILE])
        assert pg.evaluate("window.__xss === undefined && document.querySelectorAll('img').length === 0")
        pg.focus("#f-task")
        pg.keyboard.press("Tab")
        assert pg.evaluate("document.activeElement.id") == "f-config"
        assert errors == [] and requests == [out.as_uri()]
        browser.close()


@pytest.mark.browser
def test_notebook_view_draws_inside_its_iframe(snap_path):
    if not shutil.which("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    import kvscope as ks

    inline = ks.view(str(snap_path), strategies=["knorm", "streaming"])._repr_html_()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        pg = browser.new_page()
        errors = []
        pg.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        pg.set_content(f"<html><body><p>notebook cell</p>{inline}</body></html>")
        frame = pg.frames[1]
        for _ in range(100):
            if frame.evaluate("window.kvFrames || 0") > 0:
                break
            pg.wait_for_timeout(50)
        assert frame.evaluate("window.kvscope.keptAt('streaming', 0).every((x) => x === 1)")
        assert HOSTILE in frame.inner_text("#strip") and errors == []
        browser.close()


def test_a_real_bench_folder_gives_answers_and_maps(tiny, tmp_path):
    """bench on the tiny model -> its folder -> the page's data: every answer, and the eviction map."""
    from kvscope.bench import bench
    from kvscope.view.bench import bench_data

    model, tok, _ = tiny
    result = bench(
        model,
        tok,
        tasks=["passkey"],
        samples=1,
        context_tokens=80,
        strategies=["knorm", "streaming"],
        ratios=[0.5],
        quantize=[],
    )
    result.save(tmp_path / "b")
    data = bench_data(tmp_path / "b")
    assert [o["config"] for o in data["outcomes"]] == ["baseline", "knorm@0.5", "streaming@0.5"]
    assert data["outcomes"][1]["gold"] == result.outcomes[1].gold
    (m,) = data["maps"]
    assert set(m["shares"]) == {"knorm", "streaming"} and m["ratio"] == 0.5
    assert len(m["shares"]["knorm"]) == len(m["tokens"])


def test_ctrl_c_while_serving_exits_130_and_closes_the_socket(snap_path, capsys, monkeypatch):
    from kvscope.kit import pages

    made = []

    def serve_forever(self, *args, **kwargs):
        made.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(pages.QuietServer, "serve_forever", serve_forever)
    code, _, err = run_cli(["view", str(snap_path), "--strategies", "knorm", "--no-browser"], capsys)
    assert code == 130 and err.splitlines()[-1] == "kvscope view: stopped", err
    assert len(made) == 1 and made[0].socket.fileno() == -1
