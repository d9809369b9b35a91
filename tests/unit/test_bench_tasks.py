"""Generated samples: the answer once in the context, at the requested depth, reproducible by seed;
built-in texts; the JSONL reader; the answer match."""

from __future__ import annotations

import json
import random

import pytest

from kvscope.bench import tasks as T
from kvscope.bench.data import load_samples
from kvscope.bench.texts import TEXTS
from kvscope.bench.verdict import is_correct, normalise
from kvscope.errors import UsageError


def words(text: str) -> int:
    """A stand-in token counter: whitespace-separated words."""
    return len(text.split())


QA = [name for name, t in T.TASKS.items() if t.kind == "qa"]


@pytest.mark.parametrize("name", QA)
def test_answer_appears_exactly_once_and_context_has_the_length(name):
    for s in T.generate(name, 5, 300, words, seed=1):
        assert s.context.count(s.answer) == 1, s.context
        assert s.answer in s.needle and s.context.count(s.needle) == 1
        assert 250 <= words(s.context) <= 310
        assert s.question.startswith("\n") and s.kind == "qa"


@pytest.mark.parametrize("name", ["passkey", "multi_needle", "variable_tracking"])
@pytest.mark.parametrize("depth", [0.0, 0.3, 0.75, 1.0])
def test_needle_at_the_requested_depth(name, depth):
    s = T.TASKS[name].make(random.Random(5), 400, words, 0, depth=depth)
    start = s.context.index(s.needle) / len(s.context)
    assert start == pytest.approx(depth, abs=0.08)  # the other needles (a few short lines) shift it a little
    assert s.depth == pytest.approx(start)


def test_kv_retrieval_depth_picks_the_key_in_the_block():
    first = T.kv_retrieval(random.Random(2), 300, words, 0, depth=0.0)
    last = T.kv_retrieval(random.Random(2), 300, words, 0, depth=0.999)
    block = first.context[first.context.index("Here is a list") :]
    assert block.index(first.needle) < block.index(last.needle)


def test_same_seed_same_samples_other_seed_others():
    a = T.generate("passkey", 4, 200, words, seed=7)
    b = T.generate("passkey", 4, 200, words, seed=7)
    c = T.generate("passkey", 4, 200, words, seed=8)
    assert [s.context for s in a] == [s.context for s in b]
    assert [s.answer for s in a] != [s.answer for s in c]
    # a sample does not depend on how many are drawn
    assert T.generate("passkey", 2, 200, words, seed=7)[1].context == a[1].context


def test_filler_has_no_digits():
    from kvscope.bench.filler import SENTENCES

    assert not any(ch.isdigit() for s in SENTENCES for ch in s)


def test_builtin_texts_are_eight_kinds_with_long_continuations():
    kinds = {kind for kind, *_ in TEXTS}
    assert len(TEXTS) >= 8 and len(kinds) == len(TEXTS)
    assert {"narrative", "technical", "dialogue", "code"} <= kinds
    assert all(words(cont) >= 30 for *_, cont in TEXTS)  # >= 64 tokens each with SmolLM2's tokenizer
    samples = T.generate("text", 20, 0, words)
    assert len(samples) == len(TEXTS) and all(s.kind == "ppl" for s in samples)


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(UsageError, match="passkey"):
        T.get_task("nope")


def test_answer_match_is_normalised_substring():
    assert normalise("The Key: 4-21!") == "the key 4 21"
    assert is_correct("48213", " 48213. Remember it")
    assert is_correct("Paris", "it is paris, france")
    assert not is_correct("48213", " 4821")
    assert not is_correct("", "anything")


def test_jsonl_skips_malformed_lines_with_their_numbers(tmp_path, caplog):
    f = tmp_path / "d.jsonl"
    good = {"context": "The cat is named Tom.", "question": " Name?", "answer": "Tom"}
    f.write_text(
        "\n".join(
            [json.dumps(good), "{broken", json.dumps({"context": "x"}), "", json.dumps(dict(good, answer="Jerry"))]
        )
        + "\n"
    )
    with caplog.at_level("WARNING", logger="kvscope"):
        samples = load_samples(str(f))
    assert [s.answer for s in samples] == ["Tom", "Jerry"] and [s.index for s in samples] == [0, 1]
    assert samples[0].needle == "Tom" and samples[1].needle == ""
    assert "2, 3" in caplog.text


@pytest.mark.parametrize("content, message", [("", "empty"), ("\n\n", "empty"), ("{bad\n[1]\n", "no valid line")])
def test_jsonl_refuses_empty_or_invalid_files(tmp_path, content, message):
    f = tmp_path / "d.jsonl"
    f.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_samples(str(f))
    with pytest.raises(UsageError, match="does not exist"):
        load_samples(str(tmp_path / "missing.jsonl"))


def test_hf_data_without_the_datasets_package_is_a_usage_error():
    import importlib.util

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed; the hub is not reachable from tests")
    with pytest.raises(UsageError, match="needs the 'datasets' package"):
        load_samples("hf:some/dataset:test")
    with pytest.raises(UsageError, match="needs a dataset name"):
        load_samples("hf:")
