"""ks.capture takes what users have: text, a batch, token ids, a BatchEncoding, chat messages, a cache."""

from __future__ import annotations

import pytest
import torch

import kvscope as ks


@pytest.fixture(scope="module")
def tiny_model():
    torch.set_num_threads(1)
    return ks.load_model("tiny", device="cpu")


def test_every_accepted_input_gives_the_same_cache(tiny_model):
    model, tok, _ = tiny_model
    ref = ks.capture(model, tok, "Hello there")
    ids = tok("Hello there", return_tensors="pt").input_ids
    for inputs in (ids, ids[0], ids[0].tolist(), tok("Hello there", return_tensors="pt")):
        snap = ks.capture(model, tok, inputs)
        assert torch.equal(snap.token_ids, ref.token_ids) and torch.equal(snap.keys[1], ref.keys[1])


def test_batches_give_one_snapshot_per_row_without_padding(tiny_model):
    model, tok, _ = tiny_model
    snaps = ks.capture(model, tok, ["Hello there", "Hi"])
    assert [s.n_positions for s in snaps] == [11, 2]
    tok.padding_side = "right"
    enc = tok(["Hello there", "Hi"], return_tensors="pt", padding=True)
    padded = ks.capture(model, tok, enc)
    assert [s.n_positions for s in padded] == [11, 2]
    assert torch.equal(padded[1].keys[0], snaps[1].keys[0])


def test_chat_messages_go_through_the_template(tiny_model):
    model, tok, _ = tiny_model
    snap = ks.capture(model, tok, [{"role": "user", "content": "Hi"}])
    assert "".join(snap.tokens) == "<|im_start|>user\nHi<|im_end|>\n"


def test_an_existing_cache_is_snapshotted_as_it_holds(tiny_model):
    from transformers import DynamicCache

    from kvscope.compat import forward

    model, tok, _ = tiny_model
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        forward(model, cache, input_ids=tok("Hello there", return_tensors="pt").input_ids, use_cache=True)
    snap = ks.capture(model, tok, cache)
    assert torch.equal(snap.keys[0], ks.capture(model, tok, "Hello there").keys[0])
    assert snap.meta["tokens"].startswith("unknown")


@pytest.mark.parametrize("bad", [3.5, {"text": "x"}, torch.zeros(2, 3), [1.5, 2.0], None])
def test_anything_else_is_a_type_error_naming_the_accepted_types(tiny_model, bad):
    model, tok, _ = tiny_model
    with pytest.raises(TypeError, match="a list of strings, token ids .* BatchEncoding, chat messages"):
        ks.capture(model, tok, bad)
