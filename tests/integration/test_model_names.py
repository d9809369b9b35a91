"""Results name a model as the user gave it: the load_model name, or the id or folder from_pretrained got."""

from __future__ import annotations

import torch

import kvscope as ks
from kvscope.models import describe, model_name
from tests.families import build, save


def test_names_follow_what_the_user_gave(tmp_path):
    torch.set_num_threads(1)
    model, tok, info = ks.load_model("tiny", device="cpu")
    assert info.name == "tiny" and describe(model).name == "tiny"
    assert ks.capture(model, tok, "Hello there").info.name == "tiny"
    from transformers import AutoModelForCausalLM

    folder = save("phi3", tmp_path / "my-phi3")
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert model_name(loaded) == str(folder)  # the folder given, not the class name
    assert model_name(build("gpt2")) == "GPT2LMHeadModel"  # built in code: nothing else to go by
