"""``kvscope compare`` and ``kvscope.compare``: two snapshots side by side, and one-line errors when
their shapes differ."""

from __future__ import annotations

import json

import numpy as np
import torch

from tests.helpers import assert_one_line_error, make_snapshot, random_snapshot, run_cli


def test_compare_two_prompts_writes_one_report(tmp_path, capsys):
    a = random_snapshot(layers=3, kv_heads=2, n=40, d=16, seed=1)
    keys = [k.clone() for k in a.keys]
    keys[1][:, :, 5] += 20.0  # B has an outlier key channel in layer 1
    b = make_snapshot(keys, [v.clone() for v in a.values], seed=1)
    a.save(tmp_path / "a.kvs")
    b.save(tmp_path / "b.kvs")
    code, out, err = run_cli(
        ["compare", str(tmp_path / "a.kvs"), str(tmp_path / "b.kvs"), "--out", str(tmp_path / "cmp"), "--json"], capsys
    )
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "cmp").iterdir() if p.name != ".kvscope-out.json")  # the marker
    assert names == [
        "compare_channels.png",
        "compare_layers.png",
        "compare_quantization.png",
        "metrics.json",
        "report.html",
    ]
    doc = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    diff = np.array(doc["difference"]["outlier_ratio_k"])
    assert diff[1] > 1 and np.allclose(diff[[0, 2]], 0)  # only layer 1 changed
    assert 5 in doc["B"]["top_key_channels"][1][:1]


def test_compare_with_different_shapes_says_what_differs(tmp_path, capsys):
    random_snapshot(layers=3, kv_heads=2, n=10, d=8).save(tmp_path / "a.kvs")
    random_snapshot(layers=2, kv_heads=2, n=10, d=16).save(tmp_path / "b.kvs")
    code, _, err = run_cli(
        ["compare", str(tmp_path / "a.kvs"), str(tmp_path / "b.kvs"), "--out", str(tmp_path / "cmp")], capsys
    )
    assert_one_line_error(err, code, 2)
    assert "layers 3 vs 2" in err and "head_dim 8 vs 16" in err
    assert not (tmp_path / "cmp").exists()


def test_library_compare_is_in_memory():
    from kvscope.analyze.comparison import compare

    a, b = random_snapshot(n=12, d=8, seed=0), random_snapshot(n=12, d=8, seed=2)
    result = compare(a, b)
    assert set(result.figures) == {"compare_layers", "compare_channels", "compare_quantization"}
    assert "CompareResult" in repr(result) and "<table>" in result._repr_html_()
    assert torch.is_tensor(a.keys[0])
