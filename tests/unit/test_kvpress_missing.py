"""Without the extra kvscope[kvpress], naming a kvpress press is a one-line UsageError with the install command
(the press tests themselves, tests/integration/test_kvpress.py, run where kvpress is installed)."""

from __future__ import annotations

import sys

import pytest

import kvscope as ks
from kvscope.errors import UsageError
from kvscope.prune.strategies import make_strategy, parse_settings
from kvscope.prune.strategies.kvpress_adapter import INSTALL, is_press, is_press_name


@pytest.fixture
def no_kvpress(monkeypatch):
    monkeypatch.setitem(sys.modules, "kvpress", None)  # `import kvpress` raises ImportError


def test_naming_a_press_without_the_extra_says_how_to_install_it(no_kvpress):
    assert INSTALL == "pip install 'kvscope[kvpress]'"
    for call in (
        lambda: make_strategy("kvpress:KnormPress"),
        lambda: parse_settings("kvpress:SnapKVPress", ["window_size=16"]),
        lambda: ks.compress(object(), "kvpress:KnormPress", ratio=0.5),
    ):
        with pytest.raises(UsageError) as err:
            call()
        message = str(err.value)
        assert message.startswith("kvpress:") and INSTALL in message and "\n" not in message, message


def test_press_names_and_objects_are_told_apart(no_kvpress):
    assert is_press_name("kvpress:KnormPress") and not is_press_name("knorm") and not is_press_name(None)
    assert not is_press(object()) and not is_press("kvpress:KnormPress")  # no import of kvpress needed
    with pytest.raises(UsageError, match="unknown strategy 'kvpress'"):
        make_strategy("kvpress")


def test_a_press_makes_the_prefill_record_neither_attention_received_nor_queries():
    """A press scores from keys, values and the inputs its own recorder keeps (attentions=None): the session
    records what kvscope's own strategies read only for those (an unknown name: both, to be safe)."""
    from types import SimpleNamespace

    from kvscope.compress.session import Session
    from kvscope.models import describe, tiny_config

    transformers = pytest.importorskip("transformers")
    info = describe(transformers.LlamaForCausalLM(tiny_config()), "tiny")
    wants = {}
    for name in ("kvpress:SnapKVPress", "h2o", "snapkv", "knorm", "mystery"):
        s = Session(info, [1.0] * info.layers, SimpleNamespace(name=name), 0.5, None, 1, None)
        wants[name] = (s.want_received, s.want_queries)
    assert wants == {
        "kvpress:SnapKVPress": (False, False),
        "h2o": (True, False),
        "snapkv": (False, True),
        "knorm": (False, False),
        "mystery": (True, True),
    }
