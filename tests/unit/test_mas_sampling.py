"""Top-k and nucleus filtering, sampling and the realignment maths, on hand-made tensors."""

import pytest
import torch

from kvscope.decode import Sampler, sample_token, top_k_filter, top_p_filter
from kvscope.mas.engine import last_real_index
from kvscope.mas.realign import Realigner, ridge_matrix


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1], dtype=torch.float64)
    # sorted 0.5, 0.3, 0.1, 0.1: with p=0.7 the nucleus is {0.5, 0.3} (0.5 < 0.7, 0.8 >= 0.7)
    assert torch.allclose(top_p_filter(probs, 0.7), torch.tensor([0, 0.625, 0.375, 0], dtype=torch.float64))
    assert torch.allclose(top_p_filter(probs, 0.4), torch.tensor([0, 1.0, 0, 0], dtype=torch.float64))
    assert torch.equal(top_p_filter(probs, 1.0), probs)


def test_sampling_is_greedy_at_zero_and_seeded_otherwise():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    assert sample_token(logits, Sampler(0.0, None, 0.9), torch.Generator()) == 1
    draws = [sample_token(logits, Sampler(1.0, None, 0.95), torch.Generator().manual_seed(s)) for s in range(40)]
    again = [sample_token(logits, Sampler(1.0, None, 0.95), torch.Generator().manual_seed(s)) for s in range(40)]
    assert draws == again and set(draws) == {1, 2}  # token 0 (p ~ 0.026) lies outside the 0.95 nucleus
    top1 = [sample_token(logits, Sampler(1.0, 1, 1.0), torch.Generator().manual_seed(s)) for s in range(20)]
    assert set(top1) == {1}  # top-k 1 is greedy whatever the temperature


def test_top_k_keeps_the_k_largest_then_top_p_applies_to_what_is_left():
    logits = torch.tensor([1.0, 4.0, 3.0, 2.0])
    kept = top_k_filter(logits, 2)
    assert kept.tolist() == [float("-inf"), 4.0, 3.0, float("-inf")]
    assert torch.equal(top_k_filter(logits, None), logits) and torch.equal(top_k_filter(logits, 9), logits)
    # warper order (temperature, top-k, top-p): with k=3, p(4)=0.665, p(3)=0.245 -> nucleus 0.8 keeps {4, 3}
    probs = top_p_filter(torch.softmax(top_k_filter(logits.double(), 3), -1), 0.8)
    assert (probs > 0).tolist() == [False, True, True, False]
    draws = {sample_token(logits, Sampler(1.0, 2, 1.0), torch.Generator().manual_seed(s)) for s in range(60)}
    assert draws == {1, 2}


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}])
def test_sampler_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        Sampler(**kw)


def test_last_real_index():
    real = torch.tensor([[False, True, True], [True, True, True], [True, False, False]])
    assert last_real_index(real).tolist() == [2, 2, 0]


def test_ridge_recovers_a_linear_map():
    g = torch.Generator().manual_seed(1)
    w_out = torch.randn(500, 16, generator=g)
    m = torch.randn(16, 16, generator=g)
    w_a = ridge_matrix(w_out, w_out @ m)
    assert torch.allclose(w_a, m, atol=1e-4)
    assert torch.allclose(ridge_matrix(w_out, w_out), torch.eye(16), atol=1e-5)  # tied embeddings


def test_ridge_satisfies_the_normal_equations():
    g = torch.Generator().manual_seed(2)
    w_out, w_in = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    w_a = ridge_matrix(w_out, w_in, lam=0.5).double()
    lhs = (w_out.double().T @ w_out.double() + 0.5 * torch.eye(8, dtype=torch.float64)) @ w_a
    assert torch.allclose(lhs, w_out.double().T @ w_in.double(), atol=1e-3)


def test_realigner_rescales_to_the_target_norm_even_as_identity():
    align = Realigner(torch.eye(3), target_norm=2.0)
    out = align(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]))
    assert torch.allclose(out[0], torch.tensor([1.2, 1.6, 0.0]))
    assert torch.all(out[1] == 0)  # a zero vector stays zero (norm clamped, no NaN)
