"""``kvscope bench`` on the embedded SmolLM2-135M: the baseline answers most passkey samples at the
default length; keeping everything gives exactly the baseline's answers; evicting every context token
drops accuracy to chance (a 5-digit key: 1 in 90,000)."""

from __future__ import annotations

import pytest
import torch

from kvscope.bench.benchmark import DEFAULT_CONTEXT
from kvscope.bench.sample_runner import run_sample
from kvscope.bench.tasks import generate
from kvscope.prune.engine import Config

pytestmark = pytest.mark.embedded


class Fixed:
    def __init__(self, value: bool):
        self.value = value

    def keep(self, pre, ratio):
        return torch.full((len(pre.keys), pre.keys[0].shape[1], pre.n_positions), self.value, dtype=torch.bool)

    def warnings(self, n_positions, ratio, layers=None):
        return []


def test_passkey_baseline_keep_all_and_evict_all(embedded):
    model, tok, info = embedded

    def count(text):
        return len(tok(text, add_special_tokens=False).input_ids)

    samples = generate("passkey", 4, DEFAULT_CONTEXT, count, seed=0)
    configs = [
        Config("baseline", "baseline"),
        Config("all@0.5", "all", 0.5, strategy=Fixed(True)),
        Config("none@0.5", "none", 0.5, strategy=Fixed(False)),
    ]
    runs = [run_sample(model, tok, info, s, configs, steps=6) for s in samples]
    base = [r.outcomes[0] for r in runs]
    assert sum(o.correct for o in base) >= 3, [o.answer for o in base]  # most samples
    assert [r.outcomes[1].answer for r in runs] == [o.answer for o in base]  # keep all == baseline, exactly
    gone = [r.outcomes[2] for r in runs]
    assert sum(o.correct for o in gone) == 0 and all(o.kv_bytes == 0 for o in gone)
