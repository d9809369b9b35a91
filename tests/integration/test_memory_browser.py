"""The memory page in headless Debian chromium: offline, no console errors, controls, toggles, play,
URL state, and the JS formulas against vectors written by the Python formulas."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil

import pytest

from kvscope.memory import catalog
from kvscope.memory import formulas as f

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
GIB = 2**30


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (run 'make chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site():
    from kvscope.memory.server import serve_in_thread

    server, url = serve_in_thread(catalog.page_data())
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture()
def page(browser, site):
    pg = browser.new_page(viewport={"width": 1600, "height": 900})
    pg.events = {"console": [], "requests": []}
    pg.on("console", lambda m: pg.events["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
          else None)
    pg.on("pageerror", lambda e: pg.events["console"].append(f"pageerror: {e}"))
    pg.on("request", lambda r: pg.events["requests"].append(r.url))
    yield pg
    pg.close()


def gib_of(text: str) -> float:
    """The first number of a panel text, e.g. '14.96 GiB (BF16)' -> 14.96."""
    return float(re.search(r"[\d,]+(?:\.\d+)?", text).group(0).replace(",", ""))


def open_page(pg, site, query=""):
    pg.goto(site + query)
    pg.wait_for_function("window.kvscope && window.kvFrames > 2")


def test_loads_offline_without_errors_or_foreign_requests(page, site):
    open_page(page, site)
    page.wait_for_timeout(300)
    assert page.events["console"] == []
    assert page.events["requests"] and all(u.startswith(site) for u in page.events["requests"])
    assert page.locator("#v-model").inner_text().startswith("Llama-3.1-8B")


def test_export_is_self_contained(browser, tmp_path):
    from kvscope.memory.page import export_html

    path = tmp_path / "memory.html"
    path.write_text(export_html(catalog.page_data()), encoding="utf-8")
    pg = browser.new_page()
    urls, errors = [], []
    pg.on("request", lambda r: urls.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri())
    pg.wait_for_function("window.kvscope && window.kvFrames > 2")
    assert errors == [] and urls == [path.as_uri()]
    pg.close()


def test_js_formulas_match_python_vectors(page, site, tmp_path):
    cases = []
    gpus = catalog.gpus()
    for i, model in enumerate(catalog.models().values()):
        for j, opts in enumerate([{"mode": "static", "batch": 3, "context": 5000, "tokens": 1234},
                                  {"mode": "cb", "batch": 16, "context": 8192, "kv_dtype": "int4", "tp": 4},
                                  {"mode": "paged", "batch": 128, "context": 131072, "kv_dtype": "fp8",
                                   "weight_dtype": "int4", "engine": "vllm", "tp": 16},
                                  {"mode": "paged", "batch": 7, "context": 1_000_000, "page": 32,
                                   "free_sliding": False, "kv_dtype": "int8", "weight_dtype": "fp32"}]):
            gpu = list(gpus.values())[(i + j) % len(gpus)]
            cases.append({"model": model, "gpu": gpu, "opts": opts, "expected": f.compute(model, gpu, opts)})
    vectors = {"tables": catalog.page_data(), "cases": cases}
    (tmp_path / "vectors.json").write_text(json.dumps(vectors))  # the shared vectors, as JSON
    open_page(page, site)
    got = page.evaluate("""async (vec) => {
        const m = await import('/formulas.js');
        m.configure(vec.tables);
        return vec.cases.map((c) => m.compute(c.model, c.gpu, c.opts));
    }""", json.loads((tmp_path / "vectors.json").read_text()))
    assert len(got) == len(cases) == 4 * len(catalog.models())
    for case, js in zip(cases, got):
        assert_same(case["expected"], js, f"{case['model']['id']} {case['opts']}")


def assert_same(py, js, where):
    if isinstance(py, dict):
        assert set(py) == set(js), where
        for k in py:
            assert_same(py[k], js[k], f"{where}.{k}")
    elif isinstance(py, list):
        assert len(py) == len(js), where
        for a, b in zip(py, js):
            assert_same(a, b, where)
    elif isinstance(py, bool) or py is None or isinstance(py, str):
        assert py == js, where
    elif isinstance(py, int) and abs(py) < 2**53:
        assert py == js, where
    else:
        assert math.isclose(py, js, rel_tol=1e-12, abs_tol=1e-9), f"{where}: {py} != {js}"


def expected(model="llama-3.1-8b", gpu="h100-sxm", **opts):
    base = {"batch": 8, "context": 8192, "mode": "paged"}
    return f.compute(catalog.models()[model], catalog.gpus()[gpu], {**base, **opts})


@pytest.mark.parametrize("control,value,opts,field,key", [
    ("#batch", "32", {"batch": 32}, "#v-kv", "kv_reserved_bytes"),
    ("#context", "131072", {"context": 131072}, "#v-kv", "kv_reserved_bytes"),
    ("#model", "qwen3-4b", {"model": "qwen3-4b"}, "#v-weights", "weights_bytes"),
    ("#kv", "fp8", {"kv_dtype": "fp8"}, "#v-kv", "kv_reserved_bytes"),
    ("#w", "int4", {"weight_dtype": "int4"}, "#v-weights", "weights_bytes"),
])
def test_each_control_sets_the_expected_number(page, site, control, value, opts, field, key):
    open_page(page, site)
    page.select_option(control, value)
    want = expected(**opts)[key] / GIB
    assert gib_of(page.locator(field).inner_text()) == pytest.approx(want, rel=0.01)


def test_gpu_and_tp_controls_change_occupancy_and_gpus_required(page, site):
    open_page(page, site)
    page.select_option("#model", "llama-3.1-70b")
    assert page.locator("#v-gpus").inner_text().startswith("2")
    page.select_option("#gpu", "h200")
    assert page.locator("#v-gpus").inner_text() == "1"
    page.select_option("#tp", "4")
    occ = expected("llama-3.1-70b", "h200", tp=4)["per_gpu"]["occupancy"]
    assert gib_of(page.locator("#v-occ").inner_text()) == pytest.approx(100 * occ, abs=0.06)


def test_mode_toggles_change_efficiency_and_drawing(page, site):
    open_page(page, site, "?batch=32")
    shots = {"paged": page.evaluate("window.kvscope.snapshot(1000)")}
    eff = {"paged": page.locator("#v-eff").inner_text()}
    page.click("#paged")
    shots["cb"], eff["cb"] = page.evaluate("window.kvscope.snapshot(1000)"), page.locator("#v-eff").inner_text()
    page.click("#cb")
    shots["static"], eff["static"] = page.evaluate("window.kvscope.snapshot(1000)"), page.locator("#v-eff").inner_text()
    for mode in ("paged", "cb", "static"):
        want = 100 * expected(batch=32, mode=mode)["efficiency"]
        assert gib_of(eff[mode]) == pytest.approx(want, abs=0.06), mode
    assert len(set(shots.values())) == 3
    assert "?" in page.url and "paged=0" in page.url and "cb=0" in page.url


def test_flash_toggle_draws_banner_and_strikethrough(page, site):
    open_page(page, site)
    on, total_on = page.evaluate("window.kvscope.snapshot(0)"), page.locator("#v-total").inner_text()
    assert page.locator("#v-peak s").count() == 1
    page.click("#flash")
    off, total_off = page.evaluate("window.kvscope.snapshot(0)"), page.locator("#v-total").inner_text()
    assert page.locator("#v-peak s").count() == 0 and on != off
    # the banner's red sits at the top centre only when Flash is on
    assert banner_red(on) and not banner_red(off)
    # the saving is transient: resident memory is the same with and without Flash
    assert total_on == total_off
    assert gib_of(total_on) == pytest.approx(expected()["total_bytes"] / GIB, rel=0.01)
    peak = expected()["per_gpu"]
    assert gib_of(page.locator("#v-peak").inner_text()) == pytest.approx(peak["peak_without_flash"] / GIB, rel=0.01)


def banner_red(data_url: str) -> bool:
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")
    r, g, b = img.getpixel((img.width // 2 - 150, 14))
    return r > 150 and g < 60 and b < 60


def test_play_animates_and_pause_stops(page, site):
    open_page(page, site, "?tokens=0")
    assert page.evaluate("window.kvscope.state.tokens") == 0
    page.click("#play")
    page.wait_for_timeout(600)
    moved = page.evaluate("window.kvscope.state.tokens")
    assert moved > 0 and page.locator("#play").inner_text() == "Pause"
    page.click("#play")
    held = page.evaluate("window.kvscope.state.tokens")
    page.wait_for_timeout(300)
    assert page.evaluate("window.kvscope.state.tokens") == held
    assert f"tokens={round(held)}" in page.url


def test_url_state_is_restored(page, site):
    open_page(page, site, "?model=gemma-2-9b&gpu=l4&batch=4&context=4096&cb=0&paged=0&flash=0&kv=fp8")
    assert page.locator("#model").input_value() == "gemma-2-9b"
    assert page.locator("#gpu").input_value() == "l4"
    assert page.locator("#flash").get_attribute("aria-pressed") == "false"
    want = expected("gemma-2-9b", "l4", batch=4, context=4096, mode="static", kv_dtype="fp8")
    assert gib_of(page.locator("#v-kv").inner_text()) == pytest.approx(want["kv_reserved_bytes"] / GIB, rel=0.01)


def test_screenshot_is_not_blank(page, site):
    from PIL import Image

    open_page(page, site)
    img = Image.open(io.BytesIO(page.screenshot())).convert("RGB").resize((400, 225))
    assert len(img.getcolors(maxcolors=1 << 24)) > 200


def test_hover_shows_tooltip(page, site):
    open_page(page, site)
    page.hover("#flash")
    assert "FlashAttention" in page.locator("#tip").inner_text()
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2 - 40, box["y"] + box["height"] * 0.4)
    assert page.locator("#tip").is_visible()


def test_step_slider_and_engine_toggle(page, site):
    open_page(page, site)
    page.locator("#tokens").fill("1000")
    want = expected(tokens=1000)
    assert gib_of(page.locator("#v-kv").inner_text()) == pytest.approx(want["kv_reserved_bytes"] / GIB, rel=0.01)
    assert page.locator("#v-context").inner_text().startswith("1,000 / 8,192")
    assert page.locator("#v-engine").is_hidden()
    page.click("#engine")
    text = page.locator("#v-engine").inner_text()
    assert f"{expected(engine='vllm')['engine']['kv_tokens']:,} tokens" in text
