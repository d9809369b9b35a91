"""``kvscope.bench.verdict``: an answer whose verdict is called settled keeps that verdict whatever tokens follow,
checked against every continuation over a small vocabulary; and the letters a wide character lower-cases to."""

from __future__ import annotations

import itertools

import pytest

from kvscope.bench.verdict import ASCII_FROM_WIDE, is_correct, overlap, per_token, settled_by, vocabulary_text


class Pieces:
    """A tokenizer whose ids are the indices of ``pieces`` (text pieces, decoded by joining them)."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def __len__(self) -> int:
        return len(self.pieces)

    def decode(self, ids, skip_special_tokens=True) -> str:
        return "".join(self.pieces[i] for i in ids)

    def batch_decode(self, rows, skip_special_tokens=True) -> list[str]:
        return [self.decode(r) for r in rows]


PIECES = [" ", "1", "2", "12", "3", ".", " a", "b", "K"]


@pytest.mark.parametrize("gold", ["12", "123", "2 a", "21b", "k1", "1.2"])
def test_a_settled_verdict_never_changes(gold):
    tok, steps = Pieces(PIECES), 4
    done = settled_by(tok, gold, steps)
    ids_all = range(len(PIECES))
    stops = 0
    for n in range(1, steps + 1):
        for ids in itertools.product(ids_all, repeat=n):
            if done(list(ids)):
                stops += 1
                verdict = is_correct(gold, tok.decode(ids))
                for rest in itertools.product(ids_all, repeat=steps - n):
                    assert is_correct(gold, tok.decode(ids + rest)) == verdict, (ids, rest)
    assert stops, "no answer was ever settled early: the test says nothing"


def test_per_token_counts_the_longest_piece_a_token_writes():
    vocab = vocabulary_text(Pieces(PIECES))
    assert per_token("123", vocab) == 2  # "12"
    assert per_token("321", vocab) == 1
    assert per_token("2 a", vocab) == 2  # "2 " or " a": each piece padded with the spaces normalising makes
    assert per_token("k1", vocab) == 1 + 1  # "K" writes "k"; a split wide character may add one
    assert per_token("99", vocab) == 0


def test_overlap_counts_a_trailing_space():
    assert overlap("the key is 4", "45") == 1
    assert overlap("the key is 4.", "4 5") == 2
    assert overlap("the key is", "45") == 0
    assert overlap("x 1\ufffd", "12") == 1


def test_gold_that_is_empty_or_wide_decodes_every_token():
    tok = Pieces(PIECES)
    assert settled_by(tok, "", 4) is None
    assert settled_by(tok, "Zürich", 4) is None


def test_ascii_from_wide_is_every_ascii_word_character_a_wide_one_lowercases_to():
    found = {ch for c in range(0x80, 0x110000) for ch in chr(c).lower() if ch.isascii() and (ch.isalnum() or ch == "_")}
    assert found == set(ASCII_FROM_WIDE)
