"""Every command on a tiny model of each of eleven families: it runs, or it is refused in one line with
exit 2 before any weights load. ``ks.compress`` is a Python API: its case calls the library on the loaded
model (``model.generate`` inside the block). The README's support table is generated from the same
expectations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kvscope.errors import UsageError
from tests.families import COMMANDS, EXPECTED, FAMILIES, save, support_table
from tests.helpers import assert_one_line_error, run_cli

PROMPT = "The quick brown fox jumps over the lazy dog near the river."  # longer than the window (8)
CASES = {
    "capture": lambda m, out: ["capture", "-m", m, "--prompt", PROMPT, "--attention", "--out", f"{out}/c.kvs"],
    "analyze": lambda m, out: ["analyze", "-m", m, "--prompt", PROMPT, "--out", f"{out}/a"],
    "prune snapkv": lambda m, out: ["prune", "-m", m, "--prompt", PROMPT, "--strategy", "snapkv", "--ratio", "0.5",
                                    "--repeats", "1", "--out", f"{out}/p"],
    "prune K4V4": lambda m, out: ["prune", "-m", m, "--prompt", PROMPT, "--quantize", "K4V4", "--repeats", "1",
                                  "--out", f"{out}/q"],
    "bench": lambda m, out: ["bench", "-m", m, "--task", "passkey", "--samples", "2", "--context-tokens", "60",
                             "--strategies", "snapkv", "--ratios", "0.5", "--quantize", "K4V4", "--out", f"{out}/b"],
    "caching": lambda m, out: ["caching", "-m", m, "--prompt", PROMPT, "--new-tokens", "2", "--repeats", "1",
                               "--out", f"{out}/k"],
    "mas": lambda m, out: ["mas", "-m", m, "--method", "baseline", "--max_new_tokens", "2", "--max_samples", "1",
                           "--out", f"{out}/m"],
}  # fmt: skip


def compress_case(path: str) -> None:
    """``ks.compress`` around the user's own ``model.generate``: SnapKV at ratio 0.9 (window 4) after the prefill, then
    StreamingLLM under a budget of 6 tokens while decoding (the cache never holds more)."""
    import kvscope as ks
    from kvscope.models import load_model

    loaded = load_model(path)
    model, enc = loaded.model, loaded.tokenizer(PROMPT, return_tensors="pt")
    n, new = enc.input_ids.shape[1], 4
    with ks.compress(model, "snapkv", ratio=0.9, window=4) as c:  # evicts inside an 8-token window too
        out = model.generate(**enc, max_new_tokens=new, do_sample=False, pad_token_id=258)
    assert out.shape[1] == n + new and c.stats.bytes_after <= c.stats.bytes_before
    held = []
    with ks.compress(model, "streaming", budget=6) as c:
        handle = model.register_forward_hook(lambda *_: held.append(int(c.held().max())))
        try:
            model.generate(**enc, max_new_tokens=new, do_sample=False, pad_token_id=258)
        finally:
            handle.remove()
    assert len(held) == new and max(held) <= 6 and c.stats.max_held <= 6


LIBRARY = {"compress": compress_case}  # commands that are Python APIs, not CLI commands


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(family: str) -> str:
        if family not in made:
            made[family] = save(family, tmp_path_factory.mktemp(family))
        return str(made[family])

    return get


@pytest.mark.slow
@pytest.mark.parametrize(("family", "command"), list(EXPECTED))
def test_family_by_command(family, command, folder, tmp_path, capsys, monkeypatch):
    torch.set_num_threads(1)
    if command in LIBRARY:
        if EXPECTED[family, command] == "refused":
            with pytest.raises(UsageError):
                LIBRARY[command](folder(family))
        else:
            LIBRARY[command](folder(family))
        return
    argv = CASES[command](folder(family), tmp_path)
    if EXPECTED[family, command] == "refused":
        import kvscope.models

        def no_load(*_a, **_k):
            raise AssertionError("weights loaded before the refusal")

        monkeypatch.setattr(kvscope.models, "load_model", no_load)
        code, _, err = run_cli(argv, capsys)
        assert_one_line_error(err, code, 2)
        return
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "internal error" not in err


def test_every_command_is_in_the_matrix():
    assert set(CASES) | set(LIBRARY) == set(COMMANDS) and len(EXPECTED) == len(FAMILIES) * len(COMMANDS)


def test_readme_support_table_is_generated_from_the_matrix():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert support_table() in readme, "run `python -m tests.families` to regenerate the README's support table"
