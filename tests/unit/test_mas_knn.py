"""kNN slot selection, query folding and cache slot selection (no model: synthetic caches)."""

import math
from types import SimpleNamespace

import pytest
import torch

from kvscope.errors import UsageError
from kvscope.mas.engine import CacheState, select_slots
from kvscope.mas.knn import KnnConfig, fold_query, keep_count, layer_similarity, select_indices
from kvscope.models import tiny_config


def gen():
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize(
    "n,p,min_keep", [(10, 0.8, 5), (10, 0.5, 2), (7, 0.3, 5), (100, 0.29, 5), (3, 0.5, 5), (12, 1.0, 5), (9, 0.6, 0)]
)
def test_keep_count_formula(n, p, min_keep):
    expected = min(n, max(math.floor(round(n * p, 6)), min_keep))
    assert keep_count(n, p, min_keep) == expected


def test_top_keeps_highest_older_slots_then_the_recent_ones():
    scores = torch.tensor([0.9, -0.5, 0.1, 0.8, 0.7, 0.2, -0.9, -0.8, -0.7, 0.0])
    # S=10, p=0.6 -> k=6; r=3 most recent (7, 8, 9); 3 more among slots 0..6 by highest score: 0, 3, 4
    assert select_indices(scores, 0.6, 3, "top", gen()).tolist() == [0, 3, 4, 7, 8, 9]
    # bottom: lowest among 0..6 are 6 (-0.9), 1 (-0.5), 2 (0.1)
    assert select_indices(scores, 0.6, 3, "bottom", gen()).tolist() == [1, 2, 6, 7, 8, 9]


def test_random_is_seeded_sorted_and_sized():
    scores = torch.zeros(50)
    a = select_indices(scores, 0.5, 5, "random", gen())
    b = select_indices(scores, 0.5, 5, "random", gen())
    assert a.tolist() == b.tolist() and len(a) == 25
    assert a.tolist() == sorted(a.tolist()) and a[-5:].tolist() == list(range(45, 50))


def test_min_keep_dominates_and_full_keep_is_identity():
    scores = torch.arange(8.0)
    assert select_indices(scores, 0.1, 5, "top", gen()).tolist() == [3, 4, 5, 6, 7]  # floor(0.8)=0 < 5
    assert select_indices(scores, 1.0, 2, "top", gen()).tolist() == list(range(8))
    assert select_indices(scores, 0.5, 20, "top", gen()).tolist() == list(range(8))  # min_keep > S


def test_fold_query_is_the_chunk_mean():
    q = torch.arange(12.0)  # hidden 12, head_dim 4 -> chunks [0..3], [4..7], [8..11]
    assert fold_query(q, 4).tolist() == [4.0, 5.0, 6.0, 7.0]
    with pytest.raises(UsageError):
        fold_query(torch.zeros(10), 4)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5])
def test_knn_percentage_out_of_range(p):
    with pytest.raises(UsageError, match="keep_fraction"):
        KnnConfig(p, 5, "top")


def test_unknown_strategy():
    with pytest.raises(UsageError, match="unknown strategy"):
        KnnConfig(0.8, 5, "middle")


def synthetic_state(batch=2, slots=6, layers=2, heads=2, dim=3):
    from kvscope.hfcache import cache_from_tensors

    cfg = tiny_config(num_hidden_layers=layers)
    keys = [torch.randn(batch, heads, slots, dim, generator=gen()) + l for l in range(layers)]
    values = [k * 10 for k in keys]
    positions = torch.arange(slots).repeat(batch, 1)
    positions[1, :2] = -1  # row 1 is left-padded by two slots
    positions[1, 2:] = torch.arange(slots - 2)
    labels = [[f"a:{i}" for i in range(slots)], ["", ""] + [f"b:{i}" for i in range(slots - 2)]]
    state = CacheState(cache_from_tensors(cfg, keys, values), positions, torch.tensor([slots, slots - 2]), labels)
    return SimpleNamespace(config=cfg), state, keys, values


def test_select_slots_moves_kv_positions_and_labels_together():
    model, state, keys, values = synthetic_state()
    keep = [torch.tensor([0, 2, 5]), torch.tensor([3, 4])]
    new = select_slots(model, state, keep, 2)
    assert new.positions.tolist() == [[0, 2, 5], [-1, 1, 2]]
    assert new.labels == [["a:0", "a:2", "a:5"], ["", "b:1", "b:2"]]
    assert new.lengths.tolist() == [6, 4]  # the next true position is unchanged
    for layer in range(2):
        k = new.cache.layers[layer].keys
        v = new.cache.layers[layer].values
        assert torch.equal(k[0], keys[layer][0][:, [0, 2, 5]])
        assert torch.equal(v[1, :, 1:], values[layer][1][:, [3, 4]])
        assert torch.all(k[1, :, 0] == 0)  # the padding slot is zeroed and masked
    assert new.mask.tolist() == [[1, 1, 1], [0, 1, 1]]
    assert new.row_nbytes(0, 2) == 3 * 2 * 2 * 3 * 4 * 2 and state.row_nbytes(1, 2) == 4 * 2 * 2 * 3 * 4 * 2


def test_layer_similarity_skips_padding_and_averages_heads():
    _, state, keys, _ = synthetic_state()
    q = torch.tensor([1.0, -2.0, 0.5])
    sim = layer_similarity(state, 1, 1, q)
    k = keys[1][1][:, 2:].mean(dim=0)
    expected = (k @ q) / (k.norm(dim=1) * q.norm())
    assert sim.shape == (4,) and torch.allclose(sim, expected, atol=1e-6)


def test_knn_positions_reuse_gives_the_forks_positions_and_true_the_real_ones():
    """After keeping 3 of row 0's 6 slots and 2 of row 1's 4, the fork's next position is the cache length
    after filtering (3 and 2); kvscope's default continues at the true length (6 and 4)."""
    from kvscope.mas.knn import reuse_positions

    model, state, _, _ = synthetic_state()
    keep = [torch.tensor([0, 2, 5]), torch.tensor([3, 4])]
    true = select_slots(model, state, keep, 2)
    assert true.lengths.tolist() == [6, 4]
    fork = reuse_positions(select_slots(model, state, keep, 2))
    assert fork.lengths.tolist() == [3, 2]
    assert fork.positions.tolist() == true.positions.tolist() == [[0, 2, 5], [-1, 1, 2]]  # kept slots keep their phase
