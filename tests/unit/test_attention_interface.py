"""``kvscope.attention_interface.interface_args``/``interface_output``: the keyword handling that the recording,
prune and compress attention functions share."""

from __future__ import annotations

import pytest
import torch

from kvscope.attention_interface import interface_args, interface_output
from kvscope.errors import KvscopeError


def test_defaults_and_off_values():
    query = torch.zeros(1, 4, 3, 16)
    call = interface_args("x", query, None, {"softcap": 0.0, "sliding_window": None})
    assert call.scaling == 0.25 and call.softcap is None and call.window is None  # 16 ** -0.5
    call = interface_args("x", query, 0.1, {"softcap": 50.0, "sliding_window": 4096, "s_aux": None})
    assert (call.scaling, call.softcap, call.window) == (0.1, 50.0, 4096)


@pytest.mark.parametrize("who", ["kvscope prune", "ks.compress", "kvscope's recorder"])
def test_attention_sinks_are_refused_naming_the_caller(who):
    with pytest.raises(KvscopeError, match=f"^{who} does not support attention sinks"):
        interface_args(who, torch.zeros(1, 2, 1, 8), None, {"s_aux": torch.zeros(2)})


def test_output_is_batch_query_head_contiguous():
    out = torch.arange(2 * 3 * 5 * 4.0).reshape(2, 3, 5, 4)  # [b, q_head, q, d]
    got, weights = interface_output(out)
    assert weights is None and got.shape == (2, 5, 3, 4) and got.is_contiguous()
    assert torch.equal(got[1, 4, 2], out[1, 2, 4])
