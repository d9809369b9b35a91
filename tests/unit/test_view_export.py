"""The view page's data without a model: the kept-set encoding decodes to the engine's keep plans exactly,
the quantization bound, the slider stops, bench folders, the result object and the exported file."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import numpy as np
import pytest
import torch

from kvscope.errors import UsageError
from kvscope.view.export import encode_kept, quantize_rows, snapshot_data, snapshot_prefill, stops
from tests.unit.test_snapshot import make_snapshot


def decode(entry: dict, g: int, shape: tuple[int, int, int]) -> np.ndarray:
    """The page's decoding (view.js keptCells), in numpy: bool ``[layer, kv_head, n]`` at stop ``g``."""
    n = shape[-1]
    until = np.frombuffer(base64.b64decode(entry["until"]), dtype=np.uint8).reshape(-1, n)
    kept = (until[entry["rowOf"]] > g).reshape(-1)
    if entry["flips"][g]:
        kept[np.frombuffer(base64.b64decode(entry["flips"][g]), dtype="<u4")] ^= True
    return kept.reshape(shape)


def test_nested_plans_need_no_flips_and_share_identical_rows():
    n, masks = 6, []
    for g in range(4):  # kept sets shrink from the end; every row the same
        m = torch.zeros(2, 3, n, dtype=torch.bool)
        m[..., : n - g] = True
        masks.append(m)
    e = encode_kept(masks)
    assert e["flipCount"] == 0 and e["rowOf"] == [0] * 6 and e["kept"] == [36, 30, 24, 18]
    assert list(base64.b64decode(e["until"])) == [4, 4, 4, 3, 2, 1]
    for g, m in enumerate(masks):
        assert np.array_equal(decode(e, g, (2, 3, n)), m.numpy())


def test_any_plans_round_trip_exactly():
    g = torch.Generator().manual_seed(3)
    masks = [torch.rand(3, 2, 17, generator=g) < 0.5 for _ in range(7)]  # not nested at all
    e = encode_kept(masks)
    assert e["flipCount"] > 0
    for i, m in enumerate(masks):
        assert np.array_equal(decode(e, i, (3, 2, 17)), m.numpy()), i
    assert e["kept"] == [int(m.sum()) for m in masks]


def test_the_page_holds_the_engines_plans_at_every_stop():
    from kvscope.prune.strategies import STRATEGIES, make_strategy

    snap = make_snapshot()
    data = snapshot_data(snap)
    pre = snapshot_prefill(snap)
    assert [s["name"] for s in data["strategies"]] == list(STRATEGIES)
    for entry in data["strategies"]:
        assert "unavailable" not in entry, entry
        for g, r in enumerate(data["ratios"]):
            want = make_strategy(entry["name"]).keep(pre, r).numpy()
            assert np.array_equal(decode(entry, g, want.shape), want), (entry["name"], r)
    assert data["tokens"][-1] == "<script>"
    json.dumps(data, allow_nan=False)


def test_stops_and_their_limits():
    assert stops(0.05) == [round(0.05 * g, 6) for g in range(20)]
    assert stops(0.01)[-1] == 0.95 and len(stops(0.01)) == 96
    for bad in (0, -0.1, 0.6):
        with pytest.raises(UsageError, match="step"):
            stops(bad)


def test_quantized_rows_are_within_half_a_step():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(2, 3, 50, generator=g, dtype=torch.float64) * 7 - 2
    q = quantize_rows(values)
    codes = np.frombuffer(base64.b64decode(q["codes"]), dtype=np.uint8).reshape(6, 50)
    lo, hi = np.array(q["lo"])[:, None], np.array(q["hi"])[:, None]
    back = lo + codes * (hi - lo) / 255
    assert np.abs(back - values.reshape(6, 50).numpy()).max() <= ((hi - lo) / 510).max() + 1e-5
    assert np.allclose(q["mean"], values.mean(dim=(0, 1)).numpy(), rtol=1e-4)


def test_a_snapshot_without_attention_or_with_unknown_strategies_is_refused():
    with pytest.raises(UsageError, match="no attention data"):
        snapshot_data(make_snapshot(extras=False))
    with pytest.raises(UsageError, match="unknown strategy nope"):
        snapshot_data(make_snapshot(), ["nope"])


def test_strategies_needing_queries_say_why_they_are_missing():
    snap = make_snapshot()
    snap.queries = None
    entries = {s["name"]: s for s in snapshot_data(snap, ["knorm", "snapkv", "tova"])["strategies"]}
    assert "unavailable" not in entries["knorm"]
    assert "queries" in entries["snapkv"]["unavailable"] and "queries" in entries["tova"]["unavailable"]


def write_bench(folder, outcomes, maps=()):
    folder.mkdir()
    (folder / "bench.json").write_text(json.dumps({"model": {"name": "m"}, "maps": list(maps)}))
    (folder / "samples.jsonl").write_text("".join(json.dumps(o) + "\n" for o in outcomes))


def test_bench_folders(tmp_path):
    from kvscope.view.bench import bench_data

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="holds no bench.json or samples.jsonl"):
        bench_data(empty)
    write_bench(tmp_path / "none", [])
    with pytest.raises(UsageError, match="holds no outcomes"):
        bench_data(tmp_path / "none")
    row = {"task": "qa", "sample": 0, "config": "knorm@0.5", "answer": "x", "gold": "y", "correct": False, "ppl": 1}
    write_bench(tmp_path / "ok", [row])
    d = bench_data(tmp_path / "ok")
    assert d["outcomes"] == [{k: row[k] for k in ("task", "sample", "config", "answer", "gold", "correct")}]
    assert d["model"] == "m" and d["maps"] == []


def test_view_page_result_and_its_self_contained_html(tmp_path):
    import kvscope as ks

    page = ks.view(make_snapshot(), strategies=["knorm", "h2o"], step=0.25)
    assert repr(page) == "ViewPage(model=synthetic, tokens=5, strategies=2 of 2, ratios=0..0.75 step 0.25)"
    assert page.to_dict()["ratios"] == [0.0, 0.25, 0.5, 0.75]
    html = page.html
    assert "http://" not in html and "https://" not in html and "<script>" not in html.split('id="kv-data"')[1][:-9]
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    script = re.search(r'<script type="module">(.*?)</script>', html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "connect-src 'none'" in policy
    inline = page._repr_html_()
    assert inline.startswith('<iframe sandbox="allow-scripts"') and "<script" not in inline
    assert page.save(tmp_path / "v.html") == [tmp_path / "v.html"]  # a file name: that file, as --export writes
    assert (tmp_path / "v.html").read_text(encoding="utf-8") == html
    assert page.save(tmp_path / "folder") == [tmp_path / "folder" / "view.html"]
