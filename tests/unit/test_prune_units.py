"""Model-free pieces of prune: the attention masks, index parsing, CSV and figures from synthetic results."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kvscope.cli.prune import parse_indices
from kvscope.errors import UsageError
from kvscope.prune.evict_attention import build_mask, causal_keep
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
    assert mask[0, :, 0].tolist() == [
        [True, False, True],
        [True, False, True],
        [False, True, True],
        [False, True, True],
    ]
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
    assert (
        lines[0]
        == "method,setting,ratio,ppl,ppl_change_pct,kv_bytes,kv_fraction,seconds,kv_bytes_fp16,kv_fraction_fp16"
    )
    assert lines[3].split(",")[:3] == ["knorm", "0.5", "0.5"] and lines[4].split(",")[2] == ""


def test_figures_render(tmp_path):
    from kvscope.kit.figures import save_figure
    from kvscope.prune.prune_figures import compression_pareto, importance_ground_truth, scan_figure

    loo = LooResult(
        "m",
        "ab",
        ["a", "b", "c"],
        [1, 2, 3],
        np.array([-1.0, 0.5, -2.0]),
        -3.0,
        {"magnitude": np.array([1.0, 2, 3])},
        {"magnitude": -0.5},
    )
    scan = ScanResult("heads", "m", 4.0, np.ones((2, 2)) * 5, np.array([[25.0, 0.0], [1.0, 3.0]]), 10, 5)
    layers = ScanResult("layers", "m", 4.0, np.array([5.0, 4.0]), np.array([25.0, 0.0]), 10, 5)
    for name, fig in [
        ("p", compression_pareto(_sweep())),
        ("l", importance_ground_truth(loo)),
        ("s", scan_figure(scan, np.array([[0.1, 0.9], [0.5, 0.4]]), "def")),
        ("n", scan_figure(layers, None)),
    ]:
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.stat().st_size > 5000


# ----------------------------------------------------------------------------- strategy registry

from kvscope.prune.evict import n_keep  # noqa: E402
from kvscope.prune.strategies import (  # noqa: E402
    STRATEGIES,
    make_strategy,
    parse_settings,
    setting_defaults,
    summaries,
)


def test_registry_makes_strategies_by_name_with_settings():
    s = make_strategy("snapkv", window=64, rounding="floor")
    assert (s.window, s.kernel, s.rounding) == (64, 5, "floor") and s.label == "snapkv(rounding=floor, window=64)"
    assert make_strategy("snapkv").label == "snapkv" and make_strategy("random", seed=3).seed == 3
    assert list(summaries()) == list(STRATEGIES) and all(summaries().values())
    assert {"tova", "pyramidkv", "adakv"} <= set(STRATEGIES)
    assert setting_defaults("knorm") == {"rounding": "ceil", "skip_layers": 0}
    with pytest.raises(UsageError, match="snapkv has no setting seed: it takes rounding, window, kernel, sinks"):
        make_strategy("snapkv", seed=1)
    with pytest.raises(UsageError, match="window must be int"):
        make_strategy("snapkv", window=32.5)
    with pytest.raises(UsageError, match="sinks must be at least 0"):
        make_strategy("streaming", sinks=-1)
    with pytest.raises(UsageError, match="beta must be at least 1"):
        make_strategy("pyramidkv", beta=0.5)


def test_parse_settings_converts_by_type():
    assert parse_settings("pyramidkv", ["window=64", "beta=10", "rounding=floor"]) == {
        "window": 64,
        "beta": 10.0,
        "rounding": "floor",
    }
    assert parse_settings("knorm", ["skip-layers=2"]) == {"skip_layers": 2}
    for bad in (["window"], ["nope=1"]):
        with pytest.raises(UsageError, match="takes KEY=VALUE"):
            parse_settings("snapkv", bad)


def test_n_keep_rounding():
    assert n_keep(10, 0.25) == 8 and n_keep(10, 0.25, "floor") == 7
    assert n_keep(10, 0.7, "floor") == 3 and n_keep(3, 0.9, "floor") == 0 and n_keep(3, 0.9) == 1
    with pytest.raises(UsageError, match="ceil or floor"):
        n_keep(10, 0.5, "round")


def test_warnings_are_guardrails():
    assert make_strategy("snapkv").warnings(1000, 0.5) == []
    assert "observation window 32" in make_strategy("snapkv").warnings(100, 0.9)[0]
    assert make_strategy("snapkv", window=8).warnings(100, 0.9) == []
    assert "keeps 0 of 3" in make_strategy("knorm", rounding="floor").warnings(3, 0.9)[0]
    assert "layers 0..1 are kept whole" in make_strategy("knorm", skip_layers=2).warnings(100, 0.5)[0]
    assert "no recent window" in make_strategy("streaming").warnings(10, 0.7)[0]
    # pyramidkv never puts a layer under the window unless the mean budget itself is under it
    assert make_strategy("pyramidkv").warnings(1000, 0.5, layers=30) == []
    assert "budget 10 tokens < observation window 32" in make_strategy("pyramidkv").warnings(100, 0.9, layers=30)[0]


def test_result_html_escapes_text():
    from kvscope.kit.pages import summary_html

    html = summary_html("<b>t</b>", [("a", "<script>x</script>")], notes=["1 < 2"])
    assert "<script>" not in html and "&lt;script&gt;" in html and "1 &lt; 2" in html and "<b>t</b>" not in html
