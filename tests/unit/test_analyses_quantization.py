"""Quantization error: falls as bits rise, is exactly 0 on the grid, 16 bits is float16 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kvscope.analyses.quantization import BITS, quantization_error
from tests.unit.test_analyses_synth import make_snapshot, random_snapshot


def test_error_falls_as_bits_rise_for_every_scheme_and_kind():
    q = quantization_error(random_snapshot(layers=2, n=40, d=8), n_queries=16)
    assert q.bits == BITS and q.sixteen_bit == "float16"
    for kind in ("key", "value"):
        for scheme in q.schemes:
            errs = q.tensor[kind][scheme]            # ordered 16, 8, 4, 2 bits
            assert np.all(np.diff(errs) > 0), (kind, scheme, errs)
            out = q.output[kind][scheme]
            assert np.all(np.isfinite(out)) and out[0] < out[-1]
            assert q.layer_tensor[kind][scheme].shape == (2, 4)


def test_values_on_the_grid_have_zero_error():
    # every (kv_head, position) vector is {0,1,2,3} shifted: exact on any 2-bit per-token grid
    base = torch.tensor([0.0, 1.0, 2.0, 3.0])
    k = (base + torch.arange(6.0)[:, None]).expand(2, 6, 4).clone()
    q = quantization_error(make_snapshot([k], [k.clone()]), n_queries=6)
    for kind in ("key", "value"):
        assert np.all(q.tensor[kind]["token"] == 0.0)
        assert np.all(q.output[kind]["token"] == 0.0)
        assert q.tensor[kind]["tensor"][0] == 0.0  # small integers are exact in float16


def test_float16_rounding_error_is_tiny_but_not_zero():
    snap = random_snapshot(n=20)
    q = quantization_error(snap)
    err = q.tensor["key"]["tensor"][0]
    assert 0 < err < 2 ** -10  # float16 has a 10-bit mantissa: relative error <= 2^-11 per element


def test_kivi_per_channel_keys_beat_per_token_with_an_outlier_channel():
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(2, 64, 16, generator=gen)
    k[:, :, 3] += 30.0  # a fixed outlier channel, as KIVI observed in keys
    q = quantization_error(make_snapshot([k], [k.clone()], queries=False))
    assert q.tensor["key"]["channel"][-1] < q.tensor["key"]["token"][-1]
    assert q.output_layers == [] and np.isnan(q.output["key"]["token"]).all()
    assert q.tensor["key"]["channel"][1] == pytest.approx(q.layer_tensor["key"]["channel"][0, 1])
