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


def test_settled_answers_keep_every_verdict_of_full_decoding(embedded, monkeypatch):
    """Stopping once the verdict is settled gives every verdict of decoding all 6 tokens, each answer a start
    of the full one; most wrong answers stop early (answers as the default bench runs them)."""
    from kvscope.bench import sample_runner as runner
    from kvscope.prune.engine import build_grid

    model, tok, info = embedded

    def count(text):
        return len(tok(text, add_special_tokens=False).input_ids)

    samples = [s for t in ("passkey", "kv_retrieval", "multi_needle") for s in generate(t, 1, DEFAULT_CONTEXT, count)]
    configs = build_grid(["streaming", "random"], [0.5], ["K2V2"]).configs
    early = [o for s in samples for o in run_sample(model, tok, info, s, configs, steps=6).outcomes]
    monkeypatch.setattr(runner, "settled_by", lambda *a: None)
    full = [o for s in samples for o in run_sample(model, tok, info, s, configs, steps=6).outcomes]
    assert [o.correct for o in early] == [o.correct for o in full]
    assert all(f.answer.startswith(e.answer) for e, f in zip(early, full))
    shorter = sum(e.answer != f.answer for e, f in zip(early, full))
    assert shorter >= sum(not o.correct for o in full) // 2, [(e.answer, f.answer) for e, f in zip(early, full)]
