"""report.html in headless Debian chromium: offline, no script injection from token text, and the
token strip's hover card shows type, norms, attention and sink flag."""

from __future__ import annotations

import shutil

import pytest
import torch

from kvscope.analyze.analyze_html import build_report
from kvscope.analyze.figure_registry import FIGURES
from kvscope.analyze.metrics import build_metrics
from kvscope.analyze.pipeline import token_data
from kvscope.analyze.registry import AnalysisOptions, run_all
from tests.helpers import make_snapshot

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
TOKENS = ["<s>", "<script>alert(1)</script>", " Alice", " paid", " 42", "</script><b>x", "."] * 3


def _report(tmp_path):
    n = len(TOKENS)
    keys = [torch.zeros(1, n, 4) for _ in range(2)]
    for k in keys:
        k[0, 0, 0] = 30.0  # position 0 draws the attention: a sink
        k[0, 1:, 1] = torch.linspace(1, 2, n - 1)
    snap = make_snapshot(keys, [torch.ones(1, n, 4)] * 2, tokens=list(TOKENS), q_heads=2)
    from tests.helpers import causal_attention

    for l in range(2):
        snap.queries[l][:] = 0.0
        snap.queries[l][:, :, 0] = 1.0
        snap.attention_received[l] = causal_attention(snap.queries[l], keys[l]).sum(1).reshape(1, 2, n).sum(1)
    ctx = run_all(snap, AnalysisOptions(layer=0))
    metrics = build_metrics(snap, ctx.results, ctx.notes, {}, {}, None)
    path = tmp_path / "report.html"
    path.write_text(build_report(metrics, token_data(ctx.results), FIGURES), encoding="utf-8")
    return path


def test_report_in_chromium(tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (run 'make chromium')")
    from playwright.sync_api import sync_playwright

    path = _report(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        dialogs, errors, requests = [], [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        spans = page.locator("#strip .tok")
        assert spans.count() == len(TOKENS)
        assert spans.nth(1).text_content() == TOKENS[1]  # shown as text, not run
        assert page.locator("b").count() == 0  # "<b>" in a token made no element
        assert page.locator("#strip .tok.sink").count() >= 1
        spans.nth(0).hover()
        tip = page.locator("#tip").text_content()
        assert "sink: yes" in tip and "attention received:" in tip and "position 0" in tip
        spans.nth(4).hover()
        assert "type: number" in page.locator("#tip").text_content()
        browser.close()
    assert dialogs == [] and errors == []
    assert all(u.startswith("file://") for u in requests)
