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

from kvscope.memory import budget, catalog

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
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
    pg.on(
        "console",
        lambda m: pg.events["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    pg.on("pageerror", lambda e: pg.events["console"].append(f"pageerror: {e}"))
    pg.on("request", lambda r: pg.events["requests"].append(r.url))
    yield pg
    pg.close()


def gib_of(text: str) -> float:
    """The first number of a panel text, e.g. '14.96 GiB (BF16)' -> 14.96."""
    return float(re.search(r"[\d,]+(?:\.\d+)?", text).group(0).replace(",", ""))


def wait_ready(pg, timeout_s=15.0):
    """Poll until the page has drawn a few frames (wait_for_function evaluates a string: the CSP forbids it)."""
    for _ in range(int(timeout_s / 0.05)):
        if pg.evaluate("window.kvscope ? window.kvFrames : 0") > 2:
            return
        pg.wait_for_timeout(50)
    raise AssertionError("the page never drew")


def open_page(pg, site, query=""):
    pg.goto(site + query)
    wait_ready(pg)


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
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP violations too
    pg.goto(path.as_uri())
    wait_ready(pg)
    assert errors == [] and urls == [path.as_uri()]
    pg.close()


def test_js_formulas_match_python_vectors(page, site, tmp_path):
    cases = []
    gpus = catalog.gpus()
    for i, model in enumerate(catalog.models().values()):
        for j, opts in enumerate(
            [
                {"mode": "static", "batch": 3, "context": 5000, "tokens": 1234},
                {
                    "mode": "cb",
                    "batch": 16,
                    "context": 8192,
                    "kv_dtype": "int4",
                    "tp": 4,
                    "engine": "vllm",
                    "activation_gib": 1.5,
                    "gpu_memory_utilization": 0.8,
                },
                {
                    "mode": "paged",
                    "batch": 128,
                    "context": 131072,
                    "kv_dtype": "fp8",
                    "weight_dtype": "int4",
                    "engine": "vllm",
                    "tp": 16,
                    "max_num_seqs": 64,
                    "max_num_batched_tokens": 2048,
                    "cuda_graph_gib": 0,
                },
                {"mode": "static", "batch": 1, "context": 131_072, "tokens": 100_000},  # issue 23 item 19
                {"mode": "paged", "batch": 1, "context": 131_072, "gpu_memory_utilization": 0.8},  # items 17, 18
                {
                    "mode": "paged",
                    "batch": 7,
                    "context": 1_000_000,
                    "page": 32,
                    "free_sliding": False,
                    "kv_dtype": "int8",
                    "weight_dtype": "fp32",
                },
            ]
        ):
            gpu = list(gpus.values())[(i + j) % len(gpus)]
            cases.append({"model": model, "gpu": gpu, "opts": opts, "expected": budget.compute(model, gpu, opts)})
    vectors = {"tables": catalog.page_data(), "cases": cases}
    (tmp_path / "vectors.json").write_text(json.dumps(vectors))  # the shared vectors, as JSON
    open_page(page, site)
    got = page.evaluate(
        """async (vec) => {
        const m = await import('/formulas.js');
        m.configure(vec.tables);
        return vec.cases.map((c) => m.compute(c.model, c.gpu, c.opts));
    }""",
        json.loads((tmp_path / "vectors.json").read_text()),
    )
    assert len(got) == len(cases) == 6 * len(catalog.models())
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
    return budget.compute(catalog.models()[model], catalog.gpus()[gpu], {**base, **opts})


@pytest.mark.parametrize(
    "control,value,opts,field,key",
    [
        ("#batch", "32", {"batch": 32}, "#v-full", "kv_full_bytes"),
        ("#context", "131072", {"context": 131072}, "#v-full", "kv_full_bytes"),
        ("#model", "qwen3-4b", {"model": "qwen3-4b"}, "#v-weights", "weights_bytes"),
        ("#kv", "fp8", {"kv_dtype": "fp8"}, "#v-kvpeak", "kv_peak_bytes"),
        ("#w", "int4", {"weight_dtype": "int4"}, "#v-weights", "weights_bytes"),
    ],
)
def test_each_control_sets_the_expected_number(page, site, control, value, opts, field, key):
    open_page(page, site)
    page.select_option(control, value)
    r = expected(**opts)
    want = r["capacity"][key] if key in r["capacity"] else r[key]
    assert gib_of(page.locator(field).inner_text()) == pytest.approx(want / GIB, rel=0.01)


def test_batch_one_at_128k_shows_16_gib_and_gpus_from_the_peak(page, site):
    open_page(page, site, "?batch=1&context=131072&tokens=10")
    assert page.locator("#k-full").inner_text() == "KV for 1 × 131,072"
    assert page.locator("#v-full").inner_text() == "16.00 GiB"
    page.evaluate("window.kvscope.set('tokens', 131072)")
    assert page.locator("#v-full").inner_text() == "16.00 GiB"
    assert "1.03 TiB" in page.locator("#v-peak").inner_text()  # with the 128K score matrix: TiB, not "1055 GiB"
    assert "−1,023.98 GiB" in page.locator("#v-peak").inner_text()  # thousands separators
    few = page.evaluate("window.kvscope.particles()")
    page.select_option("#batch", "128")
    assert page.evaluate("window.kvscope.particles()") > few  # more bytes per step, denser particles
    open_page(page, site, "?model=llama-3.1-70b&batch=64&context=32768")
    assert page.locator("#v-gpus").inner_text().startswith("8 (tensor parallel) at the peak")
    tips = [r["tip"] for r in page.evaluate("window.kvscope.regions()")]
    assert sum(t.startswith("GPU ") and " of 8:" in t for t in tips) == 8  # every GPU drawn


def test_gpu_and_tp_controls_change_occupancy_and_gpus_required(page, site):
    open_page(page, site)
    page.select_option("#model", "llama-3.1-70b")
    assert page.locator("#v-gpus").inner_text().startswith("2")
    page.select_option("#gpu", "h200")  # 140.0 GiB at the peak: 99.7 % of an H200, over the 90 % a GPU may fill
    assert page.locator("#v-gpus").inner_text().startswith("2 (tensor parallel) at the peak, ≤ 90 % of each")
    page.select_option("#gpu", "b200")
    assert page.locator("#v-gpus").inner_text().startswith("1 at the peak, ≤ 90 % of each")
    page.select_option("#tp", "4")
    occ = expected("llama-3.1-70b", "b200", tp=4)["capacity"]["occupancy_peak"]
    assert gib_of(page.locator("#v-occ").inner_text()) == pytest.approx(100 * occ, abs=0.06)


def test_each_toggle_changes_the_picture_and_cb_raises_efficiency(page, site):
    """README example (batch 32, 8K): static -> CB -> paged -> Flash off -> vLLM, each snapshot differs."""
    open_page(page, site, "?batch=32&cb=0&paged=0")
    shots, eff = [page.evaluate("window.kvscope.snapshot(1000)")], {}
    assert page.evaluate("window.kvscope.snapshot(1000)") == shots[0]  # deterministic at a fixed time
    eff["static"] = gib_of(page.locator("#v-eff").inner_text())
    formulas = [page.locator("#v-formula").inner_text()]
    for button, mode in (("#cb", "cb"), ("#paged", "paged"), ("#flash", None), ("#engine", None)):
        page.click(button)
        shots.append(page.evaluate("window.kvscope.snapshot(1000)"))
        assert differing_pixels(shots[-2], shots[-1]) > 500, button
        formulas.append(page.locator("#v-formula").inner_text())
        if mode:
            eff[mode] = gib_of(page.locator("#v-eff").inner_text())
    assert len(set(formulas[:4])) == 4  # static, CB, paged, Flash off: the formula box changes with the mode
    assert "⌈n/16⌉·16" in formulas[2] and "⌈" not in formulas[0] + formulas[1]
    for mode, got in eff.items():
        assert got == pytest.approx(100 * expected(batch=32, mode=mode)["run_efficiency"], abs=0.06), mode
    assert eff["static"] < eff["cb"] < eff["paged"]
    assert "paged=1" in page.url and "flash=0" in page.url and "engine=1" in page.url


def image(data_url: str):
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def differing_pixels(a: str, b: str) -> int:
    from PIL import ImageChops

    diff = ImageChops.difference(image(a), image(b)).convert("L").point(lambda v: 255 if v > 24 else 0)
    return sum(diff.histogram()[255:])


def test_flash_toggle_draws_banner_ghosts_and_strikethrough(page, site):
    open_page(page, site)
    on, total_on = page.evaluate("window.kvscope.snapshot(0)"), page.locator("#v-total").inner_text()
    assert page.locator("#v-peak s").count() == 1
    ghosts = [r for r in page.evaluate("window.kvscope.regions()") if r["tip"].startswith("SAVED")]
    assert len(ghosts) == 5 and "GiB" in ghosts[0]["tip"]  # one per active HBM stack of an H100
    page.click("#flash")
    off, total_off = page.evaluate("window.kvscope.snapshot(0)"), page.locator("#v-total").inner_text()
    assert page.locator("#v-peak s").count() == 0 and on != off
    assert not [r for r in page.evaluate("window.kvscope.regions()") if r["tip"].startswith("SAVED")]
    assert banner_red(on) and not banner_red(off)
    assert total_on == total_off  # the saving is transient: resident memory is the same
    assert gib_of(total_on) == pytest.approx(expected()["capacity"]["total_peak_bytes"] / GIB, rel=0.01)


def banner_red(data_url: str) -> bool:
    img = image(data_url)
    r, g, b = img.getpixel((20, 14))  # the banner's left end (it sits top left)
    return r > 150 and g < 60 and b < 60


def test_dot_is_visible_at_every_sampled_step(page, site):
    open_page(page, site, "?batch=128")
    for frac in (0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1):
        page.evaluate("(t) => window.kvscope.set('tokens', t)", round(8192 * frac))
        img = image(page.evaluate("window.kvscope.snapshot(500)"))
        dot = page.evaluate("window.kvscope.dot()")
        r, g, b = img.getpixel((round(dot["x"]), round(dot["y"])))
        assert (r, g, b) == (217, 249, 157), (frac, dot, (r, g, b))  # the dot colour, nothing drawn over it


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


def test_url_state_is_restored_and_clamped(page, site):
    open_page(page, site, "?model=gemma-2-9b&gpu=l4&batch=4&context=4096&cb=0&paged=0&flash=0&kv=fp8")
    assert page.locator("#model").input_value() == "gemma-2-9b"
    assert page.locator("#gpu").input_value() == "l4"
    assert page.locator("#flash").get_attribute("aria-pressed") == "false"
    want = expected("gemma-2-9b", "l4", batch=4, context=4096, mode="static", kv_dtype="fp8")
    assert gib_of(page.locator("#v-full").inner_text()) == pytest.approx(
        want["capacity"]["kv_full_bytes"] / GIB, rel=0.01
    )
    open_page(page, site, "?tp=0&batch=-5&context=1e99&tokens=NaN&util=7")
    state = page.evaluate("window.kvscope.state")
    assert (state["tp"], state["batch"], state["context"], state["util"]) == (1, 1, 10_000_000, 1)
    text = page.locator("#left").inner_text()
    assert "NaN" not in text and "∞" not in text and "Infinity" not in text


@pytest.mark.parametrize("size", [(1280, 720), (1366, 768)])
def test_left_column_scrolls_when_it_does_not_fit(browser, site, size):
    pg = browser.new_page(viewport={"width": size[0], "height": size[1]})
    open_page(pg, site)
    left = pg.locator("#left")
    assert left.evaluate("e => e.scrollHeight > e.clientHeight + 20")
    box = left.bounding_box()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.mouse.wheel(0, 2000)  # a user's wheel, which an overflow: hidden column would ignore
    pg.wait_for_timeout(300)
    assert left.evaluate("e => e.scrollTop") > 0 and pg.locator("#factoid").is_visible()
    pg.close()


def test_screenshot_is_not_blank(page, site):
    from PIL import Image

    open_page(page, site)
    img = Image.open(io.BytesIO(page.screenshot())).convert("RGB").resize((400, 225))
    assert len(img.getcolors(maxcolors=1 << 24)) > 200


def test_hover_shows_tooltips(page, site):
    open_page(page, site)
    page.hover("#flash")
    assert "FlashAttention" in page.locator("#tip").inner_text()
    stack = next(r for r in page.evaluate("window.kvscope.regions()") if r["tip"].startswith("HBM3 stack"))
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + stack["x"] + stack["w"] / 2, box["y"] + stack["y"] + stack["h"] - 4)
    assert "left and right of the die" in page.locator("#tip").inner_text()
    die = next(r for r in page.evaluate("window.kvscope.regions()") if "bandwidth" in r["tip"])
    assert die["w"] == die["h"]  # the die carries the bandwidth indicator


def test_factoid_refreshes_on_every_change(page, site):
    open_page(page, site)
    before = page.locator("#v-factoid").inner_text()
    page.select_option("#gpu", "h200")
    after = page.locator("#v-factoid").inner_text()
    assert before != after and "4,800 GB/s" in after


def test_step_slider_and_engine_toggle(page, site):
    open_page(page, site)
    page.locator("#tokens").fill("1000")
    assert page.locator("#v-context").inner_text().startswith("1,000 / 8,192")
    reserved = expected(tokens=1000)["kv_reserved_bytes"]
    assert f"1,000: {reserved / 2**20:,.2f} MiB reserved" in page.locator("#v-basis").inner_text()
    assert page.locator("#v-engine").is_hidden()
    page.click("#engine")
    text = page.locator("#v-engine").inner_text()
    assert f"{expected(engine='vllm')['engine']['kv_tokens']:,} tokens" in text


HOSTILE = ["<img src=x onerror=alert(1)>", "<!--<script>"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_folder_names_are_inert_in_export_and_serve(browser, tmp_path, name, capsys):
    """Issue 11: a folder name reached innerHTML (script ran) or broke the data element (page died)."""
    from kvscope.cli import main
    from kvscope.memory.hfconfig import model_from_config
    from kvscope.memory.server import serve_in_thread

    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    export = tmp_path / "page.html"
    main(["memory", "--model", str(folder), "--export", str(export)])
    html = export.read_text()
    assert str(tmp_path) not in html and name not in html  # no local path; the name only as JSON escapes
    entry = model_from_config(str(folder))
    server, url = serve_in_thread(catalog.page_data([entry], {"model": entry["id"]}))
    try:
        for target in (export.as_uri(), url):
            pg = browser.new_page()
            dialogs, errors = [], []
            pg.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
            pg.on("pageerror", lambda e, seen=errors: seen.append(str(e)))
            pg.goto(target)
            wait_ready(pg)
            assert pg.locator("#model").input_value() == name  # the page works, on that model
            assert pg.locator("#v-model").inner_text().startswith(name)
            assert pg.locator("#v-model").inner_text().endswith("26.8 K params")  # issue 23: not "0 B params"
            assert pg.locator("img").count() == 0 and not dialogs and not errors, target
            pg.close()
    finally:
        server.shutdown()
        server.server_close()


TINY_CONFIG = {
    "model_type": "llama",
    "vocab_size": 128,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}


# ---- issue 23, items 17-20: the page's numbers and its layout below ~1400 px

LAYOUT_STATES = {
    "default": "",
    "four-gpus": "?model=llama-3.1-70b&batch=16&context=32768",
    "sixteen-gpus": "?model=llama-3.1-405b&batch=8&context=32768&tp=16",
    "vllm-128k": "?batch=1&context=131072&engine=1",
    "static-gddr": "?model=gemma-2-9b&gpu=l4&cb=0&paged=0&flash=0&engine=1",
}


def overlap(a, b) -> bool:
    apart_x = a["x"] >= b["x"] + b["w"] or b["x"] >= a["x"] + a["w"]
    return not (apart_x or a["y"] >= b["y"] + b["h"] or b["y"] >= a["y"] + a["h"])


def inside(a, box, slack=0.5) -> bool:
    return (
        a["x"] >= box["x"] - slack
        and a["y"] >= box["y"] - slack
        and a["x"] + a["w"] <= box["x"] + box["w"] + slack
        and a["y"] + a["h"] <= box["y"] + box["h"] + slack
    )


@pytest.mark.parametrize("size", [(1280, 720), (390, 844)], ids=["1280x720", "390x844"])
@pytest.mark.parametrize("state", list(LAYOUT_STATES))
def test_canvas_texts_fit_and_never_overlap(browser, site, size, state, tmp_path):
    """Item 20: particles covered the die's text, the multi-GPU caption ran under the gauge label, the
    16-GPU labels collided, and at 390 px the SAVED labels, die title and banner ran out of their boxes."""
    pg = browser.new_page(viewport={"width": size[0], "height": size[1]})
    open_page(pg, site, LAYOUT_STATES[state])
    pg.evaluate("window.kvscope.snapshot(1000)")
    labels, lanes = pg.evaluate("window.kvscope.labels()"), pg.evaluate("window.kvscope.lanes()")
    regions = pg.evaluate("window.kvscope.regions()")
    w, h = pg.evaluate("[document.getElementById('view').clientWidth, document.getElementById('view').clientHeight]")
    texts = [x["text"] for x in labels]
    assert len(labels) > 10 and all(inside(x, {"x": 0, "y": 0, "w": w, "h": h}) for x in labels), texts
    pairs = [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1 :] if overlap(a, b)]
    assert pairs == []  # the dot's label included: at the last step it rests top right, beside the banner
    assert len(lanes) == 2 and not [x["text"] for x in labels for lane in lanes if overlap(x, lane)]
    die = next(r for r in regions if "bandwidth" in r["tip"])
    stacks = [r for r in regions if r["tip"].startswith(("HBM", "GDDR")) and " active." in r["tip"]]
    assert stacks and all(not overlap(lane, r) for lane in lanes for r in stacks + [die])  # lanes: their own
    in_die = [x for x in labels if x["text"].endswith(("DIE", "SRAM", "HBM", "GB per step", "GB/s", "tok/s"))]
    assert any("DIE" in x["text"] for x in in_die) and all(inside(x, die) for x in in_die), in_die
    saved = [x for x in labels if x["text"].startswith(("SAVED", "×"))]
    flash = "flash=0" not in LAYOUT_STATES[state]
    assert len(saved) == (len(stacks) if flash else 0)  # one per active stack, each inside its stack
    assert all(any(inside(x, r) for r in stacks) for x in saved)
    if flash:
        assert any("SAVED" in x["text"] and x["w"] > 40 for x in labels if x["y"] < 60), texts  # the banner title
    pkgs = [r for r in regions if r["tip"].startswith("GPU ") and " of " in r["tip"]]
    gpu_labels = [x for x in labels if x["text"].removeprefix("GPU ").isdigit()]
    assert len(gpu_labels) == len(pkgs) and all(any(inside(x, r) for r in pkgs) for x in gpu_labels)
    assert len({x["text"].startswith("GPU") for x in gpu_labels}) <= 1  # one label style per row
    pg.locator("#stage").screenshot(path=str(tmp_path / f"{state}-{size[0]}.png"))
    pg.close()


@pytest.mark.parametrize("size", [(1280, 720), (390, 844), (1366, 768)], ids=["1280x720", "390x844", "1366x768"])
def test_no_column_or_page_overflows_sideways(browser, site, size):
    """Item 20: the controls column overflowed by 2 px at 1280x720."""
    pg = browser.new_page(viewport={"width": size[0], "height": size[1]})
    open_page(pg, site, "?model=llama-3.1-70b&batch=16&context=32768")
    widths = pg.evaluate(
        """() => ['controls', 'left', 'stage'].map((id) => {
            const e = document.getElementById(id);
            return [id, e.scrollWidth, e.clientWidth];
        }).concat([['page', document.documentElement.scrollWidth, innerWidth]])"""
    )
    assert [x for x in widths if x[1] > x[2]] == []
    pg.close()


def test_ghost_over_a_whole_stack_keeps_the_stack_tooltip(page, site):
    """Item 20: at 32K the ghost covers every stack (2 TiB of scores, 25.7x a GPU) and hid their tooltips."""
    open_page(page, site, "?model=llama-3.1-70b&batch=16&context=32768")
    regions = page.evaluate("window.kvscope.regions()")
    stack = next(r for r in regions if r["tip"].startswith("HBM3 stack 1 "))
    ghost = next(r for r in regions if r["tip"].startswith("SAVED") and inside(r, stack))
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + stack["x"] + 4, box["y"] + stack["y"] + 4)  # stripes, beside the label
    tip = page.locator("#tip").inner_text()
    assert tip.startswith("HBM3 stack 1 of 5 active") and "Red stripes" in tip
    page.mouse.move(box["x"] + ghost["x"] + ghost["w"] / 2, box["y"] + ghost["y"] + ghost["h"] / 2)
    assert page.locator("#tip").inner_text().startswith("SAVED by FlashAttention")


def test_gauge_shows_the_step_and_the_panel_the_peak(page, site):
    """Item 19: the gauge draws the current step and the panel the peak; both now say so."""
    open_page(page, site, "?tokens=1000")
    texts = [x["text"] for x in page.evaluate("window.kvscope.labels()")]
    assert "per GPU" in texts and "step 1,000" in texts and "peak" in texts
    gauge = next(r for r in page.evaluate("window.kvscope.regions()") if r["tip"].startswith("One GPU at step"))
    assert gauge["tip"].startswith("One GPU at step 1,000 (the drawing's step; the panel's capacity rows are at")
    assert (
        "The rows above are at the peak; the drawing and the gauge show step 1,000"
        in page.locator("#v-basis").inner_text()
    )
    assert "at step 1,000" in page.locator("#v-eff").inner_text()


def test_page_numbers_of_issue_23(page, site):
    """Items 17-19 on the page: a full-context request at batch 1, FP8 DeepSeek-V3, a budget that does
    not fit."""
    open_page(page, site, "?model=llama-3.1-70b&batch=1&context=131072&engine=1")
    assert page.locator("#v-gpus").inner_text().startswith("4 (tensor parallel) at the peak, ≤ 90 % of each")
    assert page.locator("#v-kvpeak").inner_text() == "40.00 GiB: one full-context request"
    engine = page.locator("#v-engine").inner_text()
    assert "none: does not fit (short by 62.91 GiB)" in engine and "0.00 KiB" not in engine
    assert "< 1: vLLM refuses to start" in engine
    page.select_option("#model", "deepseek-v3")
    assert page.locator("#w").input_value() == "fp8" and "(FP8)" in page.locator("#v-weights").inner_text()
    assert gib_of(page.locator("#v-weights").inner_text()) == pytest.approx(671_026_404_352 / GIB, abs=0.01)
    page.select_option("#model", "llama-3.1-8b")
    assert page.locator("#w").input_value() == "bf16"
    open_page(page, site, "?model=deepseek-v3&w=bf16")  # an explicit dtype in the URL wins
    assert page.locator("#w").input_value() == "bf16"
    open_page(page, site, "?batch=1&context=131072&cb=0&paged=0")  # static at batch 1 equals CB
    static = page.locator("#v-eff").inner_text()
    page.click("#cb")
    assert gib_of(static) == gib_of(page.locator("#v-eff").inner_text()) == 26.5
