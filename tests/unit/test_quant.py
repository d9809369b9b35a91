"""Quantizer: exact on grid values, error within half a step, group layout, KIVI bytes."""

import math

import pytest
import torch

from kvscope.errors import UsageError
from kvscope.quant import KiviSpec, kivi, parse_spec, quantize, quantize_with_stats, round_to_dtype


def _grid(shape, bits, lo=-1.5, step=0.25):
    """Values on the grid ``lo + step * q`` with both ends present in every row and column."""
    levels = 2 ** bits - 1
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


@pytest.mark.parametrize("scheme,group", [("tensor", None), ("token", None), ("token", 4),
                                          ("channel", None), ("channel", 3)])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_error_within_half_step(scheme, group, bits):
    x = torch.randn(3, 10, 8, generator=torch.Generator().manual_seed(bits))
    out = quantize(x, bits, scheme, group)
    # the step of every element's own group, computed independently by brute force
    if scheme == "tensor":
        step = (x.max() - x.min()) / (2 ** bits - 1) * torch.ones_like(x)
    elif scheme == "token":
        g = group or 8
        step = torch.empty_like(x)
        for c in range(0, 8, g):
            blk = x[..., c:c + g]
            step[..., c:c + g] = (blk.amax(-1, keepdim=True) - blk.amin(-1, keepdim=True)) / (2 ** bits - 1)
    else:
        g = group or 10
        step = torch.empty_like(x)
        for p in range(0, 10, g):
            blk = x[..., p:p + g, :]
            step[..., p:p + g, :] = (blk.amax(-2, keepdim=True) - blk.amin(-2, keepdim=True)) / (2 ** bits - 1)
    assert ((out - x).abs() <= step / 2 + 1e-6).all()
    assert not torch.equal(out, x)  # random data is not on the grid


def test_hand_worked_values():
    # one token, 4 channels, 2 bits: min 0, max 3 -> step 1; 1.4 -> 1, 1.6 -> 2
    x = torch.tensor([[0.0, 1.4, 1.6, 3.0]])
    assert torch.equal(quantize(x, 2, "token"), torch.tensor([[0.0, 1.0, 2.0, 3.0]]))
    # channel scheme on the transposed layout gives the same thing
    assert torch.equal(quantize(x.T.contiguous(), 2, "channel"), torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    # 1 bit: values snap to min or max
    assert torch.equal(quantize(torch.tensor([[0.0, 0.4, 0.6, 1.0]]), 1, "tensor"),
                       torch.tensor([[0.0, 0.0, 1.0, 1.0]]))


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


def test_round_to_dtype():
    x = torch.tensor([1.0 + 2 ** -9, 1.0 + 2 ** -12])
    assert torch.equal(round_to_dtype(x, "bfloat16"), torch.tensor([1.0, 1.0]))
    assert round_to_dtype(x, "float16")[0] == 1.0 + 2 ** -9  # 10 mantissa bits keep it
    assert round_to_dtype(x, "float16").dtype == torch.float32
    with pytest.raises(UsageError):
        round_to_dtype(x, "int8")


def test_parse_spec():
    assert parse_spec("K4V2") == KiviSpec(4, 2, 32, 0)
    assert parse_spec("k2v2g16r64") == KiviSpec(2, 2, 16, 64)
    assert parse_spec("K8V8-G64") == KiviSpec(8, 8, 64, 0)
    for bad in ["", "K4", "V2K4", "K0V2", "K9V2", "K4V2G0", "4bit", "K4V2X"]:
        with pytest.raises(UsageError):
            parse_spec(bad)


def test_kivi_layout_residual_and_bytes():
    torch.manual_seed(0)
    k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    spec = KiviSpec(2, 4, group_size=4, residual=3)
    kq, vq, nbytes = kivi(k, v, spec)
    assert torch.equal(kq[..., 7:, :], k[..., 7:, :]) and torch.equal(vq[..., 7:, :], v[..., 7:, :])
    assert torch.allclose(kq[..., :7, :], quantize(k[..., :7, :], 2, "channel", 4), atol=2e-3)
    # codes: 2*7*8 elements at 2 and 4 bits; stats: keys 2 heads x 8 channels x 2 groups,
    # values 2 heads x 7 positions x 2 groups, 2 float16 numbers each; window: 2*3*8*2 float32
    expected = (112 * 2 + 7) // 8 + 112 * 4 // 8 + (32 + 28) * 2 * 2 + 2 * 48 * 4
    assert nbytes == expected
    # the float16 statistics are really used: not bit-identical to exact statistics in general
    assert (kq[..., :7, :] - k[..., :7, :]).abs().max() > 0
