"""Quantization at equal cost: effective bits count scales and zeros, error falls as bits rise, on-grid
values are exact, group sizes matter, and next-token KL needs the model (skipped with the reason)."""

from __future__ import annotations

import numpy as np
import torch

from kvscope.analyze.quantization import BITS, quantization_error
from tests.helpers import make_snapshot, random_snapshot


def test_error_falls_as_bits_rise_and_effective_bits_count_the_statistics():
    q = quantization_error(random_snapshot(layers=2, n=64, d=32), n_queries=16)
    assert q.bits == BITS and "token/g32" in q.variants and "channel/g64" in q.variants
    for kind in ("key", "value"):
        for var in q.variants:
            errs = q.tensor[kind][var]  # ordered 8, 4, 3, 2 bits
            assert np.all(np.diff(errs) > 0), (kind, var, errs)
            assert np.all(np.isfinite(q.output[kind][var]))
        # hand count: b bits of code + 2 float16 statistics (32 bits) per group of 32 elements
        np.testing.assert_allclose(q.effective_bits[kind]["token/g32"], [b + 1.0 for b in BITS])
        np.testing.assert_allclose(q.effective_bits[kind]["channel/g32"], [b + 1.0 for b in BITS])
        np.testing.assert_allclose(q.effective_bits[kind]["channel/g64"], [b + 0.5 for b in BITS])
    assert "no model" in q.notes["kl"] and np.isnan(q.kl["key"]["tensor"]).all()


def test_values_on_the_grid_have_zero_error():
    # every (kv_head, position) vector is {0,1,2,3} shifted: exact on any 2-bit per-token grid
    base = torch.tensor([0.0, 1.0, 2.0, 3.0])
    k = (base + torch.arange(6.0)[:, None]).expand(2, 6, 4).clone()
    q = quantization_error(make_snapshot([k], [k.clone()]), n_queries=6)
    for kind in ("key", "value"):
        assert q.tensor[kind]["token/g4"][-1] == 0.0  # 2 bits: levels 0..3 are exactly the values
        assert q.output[kind]["token/g4"][-1] == 0.0
        assert q.float16[kind] == 0.0  # small integers are exact in float16


def test_per_channel_group_size_is_honoured():
    # the channel drifts over positions: smaller groups of positions follow it, so they err less
    k = torch.linspace(0, 50, 256)[None, :, None].expand(1, 256, 32).clone()
    k += torch.randn(1, 256, 32, generator=torch.Generator().manual_seed(0))
    q = quantization_error(make_snapshot([k], [k.clone()], queries=False))
    err = q.tensor["key"]
    assert err["channel/g32"][-1] < err["channel/g64"][-1] < err["channel/g128"][-1]


def test_per_channel_keys_beat_per_token_at_equal_cost_with_an_outlier_channel():
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(2, 64, 32, generator=gen)
    k[:, :, 3] += 30.0  # a fixed outlier channel, as KIVI observed in keys
    q = quantization_error(make_snapshot([k], [k.clone()], queries=False))
    assert q.effective_bits["key"]["channel/g32"][-1] == q.effective_bits["key"]["token/g32"][-1]
    assert q.tensor["key"]["channel/g32"][-1] < q.tensor["key"]["token/g32"][-1]
    assert q.output_layers == [] and "no queries" in q.notes["output"]


def test_float16_rounding_error_is_tiny_but_not_zero():
    q = quantization_error(random_snapshot(n=20))
    assert 0 < q.float16["key"] < 2**-10


def test_next_token_kl_with_the_tiny_model_grows_as_bits_fall():
    from kvscope.capture.capturing import capture
    from kvscope.models import load_model

    model, tok, info = load_model("tiny")
    snap = capture(model, tok, "Alice paid 42 euros in Paris, and Bob paid 7.", info=info, attention=True, queries=True)
    q = quantization_error(snap, model=model, n_kl=8)
    kl = q.kl["key"]["tensor"]  # bits 8, 4, 3, 2: measured at 4 and 2
    assert q.n_kl == 8 and np.isnan(kl[[0, 2]]).all()
    assert 0 <= kl[1] < kl[3]  # 2 bits hurt more than 4
    assert np.isnan(q.kl["key"]["channel/g64"]).all()  # KL only for the equal-cost variants
