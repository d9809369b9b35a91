"""The capture's column-sum pass in key tiles: the tiles cover every key once, and the sums stay exact."""

from __future__ import annotations

import pytest
import torch

import kvscope.attention as attention
from kvscope.attention import _key_tiles, _received_from_lse


@pytest.mark.parametrize(
    "s,e,tiles",
    [
        (0, 64, [(0, 64)]),  # the first chunk: one tile
        (448, 512, [(0, 512)]),  # inside the first block
        (512, 576, [(0, 512), (512, 576)]),  # a new block, wide enough
        (512, 513, [(0, 513)]),  # one query past a block start: the last tile reaches one block back
        (1024, 1030, [(0, 512), (512, 1030)]),
        (1088, 1152, [(0, 512), (512, 1024), (1024, 1152)]),
        (1100, 1107, [(0, 512), (512, 1024), (1024, 1107)]),  # a chunk of 7 inside the third block
    ],
)
def test_key_tiles_golden(s, e, tiles):
    assert attention.KEY_BLOCK == 512
    assert _key_tiles(s, e) == tiles


@pytest.mark.parametrize("block", [8, 16, 512])
def test_key_tiles_cover_every_visible_key_once(monkeypatch, block):
    monkeypatch.setattr(attention, "KEY_BLOCK", block)
    for chunk in (1, 7, 64):
        for s in range(0, 1300, chunk):
            e = s + chunk
            tiles = _key_tiles(s, e)
            assert tiles[0][0] == 0 and tiles[-1][1] == e
            assert all(a[1] == b[0] for a, b in zip(tiles, tiles[1:]))  # contiguous, no overlap
            assert tiles[-1][0] <= s  # the queries' own block is in the last tile, which the mask reads
            assert all(b1 - b0 == block for b0, b1 in tiles[:-1])


def _scores(query, key, scaling):
    """Causal scores ``[q_head, n, n]`` of ``query`` ``[q_head, n, d]`` against ``key`` ``[kv_head, n, d]``."""
    n, g = query.shape[1], query.shape[0] // key.shape[0]
    scores = query @ key.repeat_interleave(g, 0).transpose(-1, -2) * scaling
    return scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))


@pytest.mark.parametrize("block", [16, 512])
@pytest.mark.parametrize("n,chunk", [(70, 7), (70, 64), (33, 1), (129, 16), (33, 100_000)])  # a chunk past n
def test_tiled_column_sums_match_float64(monkeypatch, block, n, chunk):
    monkeypatch.setattr(attention, "KEY_BLOCK", block)
    gen = torch.Generator().manual_seed(n + chunk)
    query, key = torch.randn(6, n, 8, generator=gen) * 2, torch.randn(2, n, 8, generator=gen)
    scaling = 8**-0.5
    got = _received_from_lse(query, key, torch.logsumexp(_scores(query, key, scaling), -1), scaling, chunk)
    expected = _scores(query.double(), key.double(), scaling).softmax(-1).sum(1).view(2, 3, n).sum(1)
    torch.testing.assert_close(got.double(), expected, rtol=2e-6, atol=1e-6)
    # every query row sums to one: each kv_head receives n x group in all
    torch.testing.assert_close(got.sum(-1), torch.full((2,), 3.0 * n), rtol=1e-6, atol=1e-4)
