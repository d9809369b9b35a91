"""``kvscope analyze`` on the embedded SmolLM2-135M: every file, the metrics schema, escaping, and
what the model really does with its lowest-magnitude token."""

from __future__ import annotations

import json

import pytest

from kvscope.analyze.figure_registry import FIGURES
from tests.helpers import all_figure_files, check_metrics
from tests.helpers import png_ok as _png_ok

ALL_FILES = all_figure_files()

PROMPT = (
    "On 3 May, Alice Moreau paid 42 euros for 7 books in Paris. <script>alert('owned')</script> "
    "She said the price was fair, and the shop owner, Mr. Lee, agreed."
)


@pytest.mark.embedded
def test_embedded_analyze(embedded, tmp_path, monkeypatch):
    import kvscope.models

    monkeypatch.setattr(kvscope.models, "load_model", lambda *a, **k: embedded)
    from kvscope.cli import main

    main(["analyze", "--prompt", PROMPT, "--out", str(tmp_path), "--json"])
    for name in ALL_FILES:
        assert _png_ok(tmp_path / name), name
    doc = json.loads((tmp_path / "metrics.json").read_text())
    n = doc["prompt"]["tokens"]
    check_metrics(doc, n)
    assert doc["model"]["layers"] == 30 and doc["model"]["kv_heads"] == 3
    assert all("files" in v for v in doc["figures"].values()), doc["figures"]
    # the recomputed attention (model's own scale) matches the captured one in every layer
    assert doc["analyses"]["heads"]["parity"] < 1e-4 and doc["analyses"]["heads"]["scaling_source"] == "model"
    # the look-back is measured on non-sink attention, for every layer and q_head
    assert len(doc["analyses"]["heads"]["lookback"]) == 30 and len(doc["analyses"]["heads"]["lookback"][0]) == 9
    # end-to-end next-token KL of quantization (bits 8, 4, 3, 2; measured at 4 and 2): larger at 2 bits
    kl = doc["analyses"]["quantization"]["kl"]["key"]["channel/g32"]
    assert 0 <= kl[1] < kl[3]
    assert doc["headline"]["verdict_reference"] == "attention" and "partial Spearman" in doc["headline"]["verdict"]
    # SmolLM2's first tokens are attention sinks with the lowest magnitude: the report must say so
    low = doc["headline"]["lowest_magnitude_token"]
    assert low["is_sink"] and low["position"] <= 1
    assert 0 in [s["position"] for s in doc["headline"]["sinks"]]
    assert any("attention sinks" in w for w in doc["warnings"])
    html = (tmp_path / "report.html").read_text()
    assert html.count("<script") == 2 and "alert('owned')" not in html
    assert html.count("data:image/png;base64,") == len(FIGURES)
