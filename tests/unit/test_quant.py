"""Quantizer: exact on grid values, error within half a step, group layout, KIVI bytes."""

import math

import pytest
import torch

from kvscope.errors import UsageError
from kvscope.quant import KiviSpec, kivi, kivi_layer, parse_spec, quantize, quantize_with_stats


def _grid(shape, bits, lo=-1.5, step=0.25):
    """Values on the grid ``lo + step * q`` with both ends present in every row and column."""
    levels = 2**bits - 1
    q = torch.randint(0, levels + 1, shape, generator=torch.Generator().manual_seed(0))
    q[..., 0, :] = 0
    q[..., -1, :] = levels
    q[..., :, 0] = 0
    q[..., :, -1] = levels
    return lo + step * q.float()


@pytest.mark.parametrize("scheme", ["tensor", "token", "channel"])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_round_trip_exact_on_grid(scheme, bits):
    x = _grid((2, 6, 8), bits)
    assert torch.equal(quantize(x, bits, scheme), x)


@pytest.mark.parametrize(
    "scheme,group", [("tensor", None), ("token", None), ("token", 4), ("channel", None), ("channel", 3)]
)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_error_within_half_step(scheme, group, bits):
    x = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(bits))
    out = quantize(x, bits, scheme, group)
    # the step of every element's own group, computed independently by brute force
    if scheme == "tensor":
        step = (x.max() - x.min()) / (2**bits - 1) * torch.ones_like(x)
    elif scheme == "token":
        g = group or 8
        step = torch.empty_like(x)
        for c in range(0, 8, g):
            blk = x[..., c : c + g]
            step[..., c : c + g] = (blk.amax(-1, keepdim=True) - blk.amin(-1, keepdim=True)) / (2**bits - 1)
    else:
        g = group or 10
        step = torch.empty_like(x)
        for p in range(0, 10, g):
            blk = x[..., p : p + g, :]
            step[..., p : p + g, :] = (blk.amax(-2, keepdim=True) - blk.amin(-2, keepdim=True)) / (2**bits - 1)
    assert ((out - x).abs() <= step / 2 + 1e-6).all()
    assert not torch.equal(out, x)  # random data is not on the grid


def test_hand_worked_values():
    # one token, 4 channels, 2 bits: min 0, max 3 -> step 1; 1.4 -> 1, 1.6 -> 2
    x = torch.tensor([[0.0, 1.4, 1.6, 3.0]])
    assert torch.equal(quantize(x, 2, "token"), torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    # channel scheme on the transposed layout gives the same thing
    assert torch.equal(quantize(x.T.contiguous(), 2, "channel"), torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    # 1 bit: values snap to min or max
    assert torch.equal(
        quantize(torch.tensor([[0.0, 0.4, 0.6, 1.0]]), 1, "tensor"), torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    )


def test_groups_are_independent():
    x = torch.zeros(1, 4, 4)
    x[0, :, :2] = torch.tensor([0.0, 1.0])  # channels 0-1 in [0, 1]
    x[0, :, 2:] = torch.tensor([100.0, 103.0])  # channels 2-3 in [100, 103]
    out = quantize(x, 2, "token", group_size=2)
    assert torch.equal(out, x)  # each half has its own grid, both exact
    # a whole-token grid cannot represent 1.0 with step 103/3
    assert not torch.equal(quantize(x, 2, "token"), x)


def test_constant_group_is_exact_and_counts():
    x = torch.full((2, 5, 4), 0.3)
    r = quantize_with_stats(x, 3, "channel", group_size=2)
    assert torch.equal(r.tensor, x)
    assert r.groups == 2 * 4 * 3  # heads x channels x ceil(5/2) position groups
    assert r.code_bytes == math.ceil(40 * 3 / 8)
    assert r.stats_bytes == 2 * r.groups * 4


def test_parse_spec():
    assert parse_spec("K4V2") == KiviSpec(4, 2, 32, 128)  # KIVI's defaults: group 32, residual 128
    assert parse_spec("k2v2g16r64") == KiviSpec(2, 2, 16, 64)
    assert parse_spec("K8V8-G64") == KiviSpec(8, 8, 64, 128)
    assert parse_spec("K4V4R0").residual == 0 and parse_spec("K4V2").label == "K4V2G32R128"
    for bad in ["", "K4", "V2K4", "K0V2", "K9V2", "K4V2G0", "4bit", "K4V2X"]:
        with pytest.raises(UsageError):
            parse_spec(bad)


def test_kivi_residual_follows_the_paper_code():
    # T = 10 tokens, R = 4: keys keep the last 10 mod 4 = 2 in full precision, values the last 4
    torch.manual_seed(0)
    k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    spec = KiviSpec(2, 4, group_size=4, residual=4)
    assert spec.full_precision(10) == (2, 4) and spec.full_precision(8) == (0, 4)
    assert spec.full_precision(3) == (3, 3) and KiviSpec(2, 2, residual=0).full_precision(10) == (0, 0)
    out = kivi_layer(k, v, spec)
    assert torch.equal(out.keys[..., 8:, :], k[..., 8:, :]) and torch.equal(out.values[..., 6:, :], v[..., 6:, :])
    assert not torch.equal(out.keys[..., 7, :], k[..., 7, :]) and not torch.equal(out.values[..., 5, :], v[..., 5, :])
    assert torch.allclose(out.keys[..., :8, :], quantize(k[..., :8, :], 2, "channel", 4), atol=2e-3)
    # keys: 2*8*8 codes at 2 bits = 32 B, 2 heads x 8 channels x 2 groups x 2 float16 = 128 B
    # values: 2*6*8 codes at 4 bits = 48 B, 2 heads x 6 tokens x 2 groups x 2 float16 = 96 B
    # full precision: keys 2*2*8 + values 2*4*8 = 96 elements, 4 bytes each (float32) or 2 (float16)
    assert out.nbytes == 32 + 128 + 48 + 96 + 96 * 4
    assert out.nbytes_fp16 == 32 + 128 + 48 + 96 + 96 * 2
    assert kivi(k, v, spec)[2] == out.nbytes
    # shorter than R: nothing is quantized
    short = kivi_layer(k[..., :3, :], v[..., :3, :], spec)
    assert torch.equal(short.keys, k[..., :3, :]) and torch.equal(short.values, v[..., :3, :])


def test_kivi_without_residual_quantizes_everything():
    torch.manual_seed(0)
    k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    out = kivi_layer(k, v, KiviSpec(2, 4, group_size=4, residual=0))
    assert (out.keys - k).abs()[..., -1, :].max() > 0 and out.nbytes == out.nbytes_fp16
    # the float16 statistics are really used: not bit-identical to exact statistics in general
    assert torch.allclose(out.keys, quantize(k, 2, "channel", 4), atol=2e-3)
