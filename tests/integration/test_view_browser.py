"""The view page in headless Debian chromium, on a snapshot of the embedded model: the page's kept sets
equal the Python engine's (a fresh ``evict.prefill`` on the live model, as ``kvscope prune``/``bench``
run it) for every registered strategy at ratios 0.25, 0.5 and 0.9; the slider and the keyboard; no
console errors or requests; hostile token text stays text; the export works from a file alone."""

from __future__ import annotations

import pytest
import torch

from tests.integration import test_memory_browser

pytestmark = [pytest.mark.browser, pytest.mark.embedded]
browser = test_memory_browser.browser  # the memory page's chromium fixture (module scope)
PROMPT = (
    'Notes on <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2"> in a page. '
    "The library in Lisbon opens at nine; Amara counted 27 pencils, 3 notebooks and one question about "
    "which words matter. Her colleague Tomasz sorted the cards into nouns, verbs and names."
)
RATIOS = (0.25, 0.5, 0.9)
CONTROLS = ("quantity", "layer", "head", "strategy-a", "strategy-b", "marks", "ratio")


@pytest.fixture(scope="module")
def case(embedded):
    """The page's data for the prompt, and the engine's keep plans at ``RATIOS`` for every strategy."""
    from kvscope.capture.capturing import capture
    from kvscope.prune.evict import prefill
    from kvscope.prune.strategies import STRATEGIES, make_strategy
    from kvscope.view.export import snapshot_data

    model, tok, info = embedded
    snap = capture(model, tok, PROMPT, attention=True, queries=True)
    data = snapshot_data(snap)
    pre = prefill(model, tok, info, snap.token_ids[None])
    engine = {name: {r: make_strategy(name).keep(pre, r) for r in RATIOS} for name in STRATEGIES}
    return data, engine


@pytest.fixture(scope="module")
def site(case):
    from kvscope.view.page import serve_in_thread

    server, url = serve_in_thread(case[0])
    yield url
    server.shutdown()
    server.server_close()


def open_page(browser, url):
    pg = browser.new_page(viewport={"width": 1920, "height": 1080})
    pg.events = {"console": [], "requests": []}
    noisy = ("error", "warning")
    pg.on("console", lambda m: pg.events["console"].append(f"{m.type}: {m.text}") if m.type in noisy else None)
    pg.on("pageerror", lambda e: pg.events["console"].append(f"pageerror: {e}"))
    pg.on("request", lambda r: pg.events["requests"].append(r.url))
    pg.goto(url)
    for _ in range(200):
        if pg.evaluate("window.kvFrames || 0") > 0:
            return pg
        pg.wait_for_timeout(50)
    raise AssertionError(f"the page never drew: {pg.events['console']}")


@pytest.fixture()
def page(browser, site):
    pg = open_page(browser, site)
    yield pg
    pg.close()


def stop_of(data, ratio):
    return data["ratios"].index(ratio)


def test_kept_sets_equal_the_engine_for_every_strategy(page, case):
    data, engine = case
    assert [s["name"] for s in data["strategies"]] == list(engine) and len(engine) >= 9
    for name, plans in engine.items():
        for r, plan in plans.items():
            got = page.evaluate(f"window.kvscope.keptAt({name!r}, {stop_of(data, r)})")
            want = plan.reshape(-1).to(torch.uint8).tolist()
            assert got == want, f"{name} at ratio {r}: {sum(a != b for a, b in zip(got, want))} cells differ"
    assert page.events["console"] == []


def set_select(pg, element_id, value):
    pg.select_option(f"#{element_id}", value)


def strip_marks(pg):
    return pg.evaluate("window.kvscope.marks()")


@pytest.mark.parametrize("name", ["snapkv", "pyramidkv", "h2o"])
def test_slider_moves_the_kept_set_as_the_engine_says(page, case, name):
    """Layer 3, kv_head 1: at each ratio the text marks exactly the engine's evicted positions, and the
    bytes line counts the engine's kept entries."""
    data, engine = case
    index = [s["name"] for s in data["strategies"]].index(name)
    set_select(page, "strategy-a", str(index))
    set_select(page, "layer", "3")
    set_select(page, "head", "1")
    before = None
    for r in RATIOS:
        page.fill("#ratio", str(stop_of(data, r)))  # fires input, as a drag does
        plan = engine[name][r]
        want = ["" if k else "ev" for k in plan[3, 1].tolist()]
        assert strip_marks(page) == want, f"{name} at {r}"
        count = int(plan.sum())
        assert f"{count:,} of {plan.numel():,} entries" in page.inner_text("#bytes-a")
        assert page.inner_text("#ratio-out") == f"{r:g}"
        assert want != before
        before = want
    assert page.events["console"] == []


def test_keyboard_reaches_and_moves_every_control(page, case):
    data, _ = case
    seen = []
    for _ in range(40):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id"))
    assert set(CONTROLS) <= set(seen), seen
    page.focus("#ratio")
    page.keyboard.press("End")
    assert page.inner_text("#ratio-out") == f"{data['ratios'][-1]:g}"
    page.keyboard.press("ArrowLeft")
    assert page.inner_text("#ratio-out") == f"{data['ratios'][-2]:g}"
    page.focus("#strategy-a")
    page.keyboard.press("ArrowDown")
    assert page.inner_text("#name-a").startswith(f"A: {data['strategies'][1]['label']}")
    assert page.events["console"] == []


def test_hostile_prompt_text_stays_text_and_nothing_is_fetched(page, site):
    text = page.inner_text("#strip")
    assert "<script>" in text and "<img" in text and "onerror" in text
    assert page.evaluate("window.__xss === undefined")
    assert page.evaluate("document.querySelectorAll('img, #strip script, #strip *:not(span)').length") == 0
    page.hover("#strip span:nth-child(3)")
    assert "position 2" in page.inner_text("#tip")
    assert {u.split("?")[0] for u in page.events["requests"]} == {site, site + "view.js", site + "style.css"}
    assert page.events["console"] == []


def test_export_runs_from_the_file_alone(browser, case, tmp_path):
    from kvscope.view.page import export_html

    data, engine = case
    path = tmp_path / "view.html"
    path.write_text(export_html(data), encoding="utf-8")
    pg = open_page(browser, path.as_uri())
    got = pg.evaluate(f"window.kvscope.keptAt('adakv', {stop_of(data, 0.5)})")
    assert got == engine["adakv"][0.5].reshape(-1).to(torch.uint8).tolist()
    assert pg.events["requests"] == [path.as_uri()]
    assert pg.events["console"] == []
    pg.close()
