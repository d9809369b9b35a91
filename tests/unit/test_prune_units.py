"""Model-free pieces of prune: the attention masks, index parsing, CSV and figures from synthetic results."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kvscope.cli.prune import parse_indices
from kvscope.errors import UsageError
from kvscope.prune.attention import build_mask, causal_keep
from kvscope.prune.loo import LooResult
from kvscope.prune.scan import ScanResult
from kvscope.prune.sweep import SweepResult, SweepRow, to_csv


def test_causal_keep_is_bottom_right_aligned():
    # 2 new tokens after 3 cached slots: query 0 is key 3, query 1 is key 4
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_keep(2, 5), expected)
    assert torch.equal(causal_keep(3, 3), torch.ones(3, 3).tril().bool())


def test_build_mask_expands_kv_heads_to_their_query_group():
    keep = torch.tensor([[True, False], [False, True]])  # [kv_head, slots]
    mask = build_mask(1, 3, 2, keep)  # one new token: 2 slots + itself
    assert mask.shape == (1, 4, 1, 3)
    assert mask[0, :, 0].tolist() == [[True, False, True], [True, False, True], [False, True, True], [False, True, True]]
    assert build_mask(1, 3, 2, None) is None


def test_masked_key_gets_exactly_zero_probability():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 1, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    keep = torch.tensor([[True, False]])
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=build_mask(1, 3, 2, keep), enable_gqa=True)
    # by hand: softmax over keys 0 and 2 only
    kk, vv = k[0, 0, [0, 2]], v[0, 0, [0, 2]]
    ref = torch.softmax(q[0, :, 0] @ kk.T / 2.0, -1) @ vv
    torch.testing.assert_close(out[0, :, 0], ref)
    # zeroing the key instead is not eviction: it still takes softmax mass
    k_zero = k.clone()
    k_zero[0, 0, 1] = 0
    zeroed = F.scaled_dot_product_attention(q, k_zero, v, attn_mask=build_mask(1, 3, 2, None), enable_gqa=True)
    assert not torch.allclose(zeroed, out)


def test_parse_indices():
    assert parse_indices("2, 0,2", "--prune_layers") == [0, 2]
    assert parse_indices(None, "--prune_layers") is None
    for bad in ("", "1,,2", "x", "1.5"):
        with pytest.raises(UsageError, match="comma-separated"):
            parse_indices(bad, "--prune_layers")


def _sweep():
    rows = [SweepRow("baseline", "none", 0.0, 4.0, 0.0, 1000, 1.0, 0.1)]
    for i, r in enumerate((0.25, 0.5)):
        rows.append(SweepRow("knorm", f"{r:g}", r, 5.0 + i, 25.0 + 25 * i, int(1000 * (1 - r)), 1 - r, 0.1))
    rows.append(SweepRow("kivi", "K4V4G32", None, 4.1, 2.5, 300, 0.3, 0.1))
    return SweepResult("m", 4.0, 1000, rows, 10, 5, 0.5, 0.4)


def test_csv_round_trip():
    lines = to_csv(_sweep()).splitlines()
    assert lines[0] == "method,setting,ratio,ppl,ppl_change_pct,kv_bytes,kv_fraction,seconds"
    assert lines[3].split(",")[:3] == ["knorm", "0.5", "0.5"] and lines[4].split(",")[2] == ""


def test_figures_render(tmp_path):
    from kvscope.plots.common import save_figure
    from kvscope.plots.prune import compression_pareto, importance_ground_truth, scan_figure

    loo = LooResult("m", "ab", ["a", "b", "c"], [1, 2, 3], np.array([-1.0, 0.5, -2.0]), -3.0,
                    {"magnitude": np.array([1.0, 2, 3])}, {"magnitude": -0.5})
    scan = ScanResult("heads", "m", 4.0, np.ones((2, 2)) * 5, np.array([[25.0, 0.0], [1.0, 3.0]]), 10, 5)
    layers = ScanResult("layers", "m", 4.0, np.array([5.0, 4.0]), np.array([25.0, 0.0]), 10, 5)
    for name, fig in [("p", compression_pareto(_sweep())), ("l", importance_ground_truth(loo)),
                      ("s", scan_figure(scan, np.array([[0.1, 0.9], [0.5, 0.4]]), "def")),
                      ("n", scan_figure(layers, None))]:
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.stat().st_size > 5000
