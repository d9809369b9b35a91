"""Prompt sets for ``kvscope analyze --prompts``: a JSONL file (one object with a ``text`` field per
line), a folder of ``.txt`` files (one prompt each, sorted by name), or ``default``: the built-in set
in ``kvscope/data/prompts/`` (narrative, technical, dialogue, code, numbers, instructions, news,
arithmetic reasoning and chat), which works offline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kvscope.errors import UsageError

DEFAULT = "default"


def default_prompts() -> list[str]:
    """The built-in prompt texts, in file-name order."""
    folder = resources.files("kvscope").joinpath("data", "prompts")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".txt")), key=lambda f: f.name)
    return [f.read_text(encoding="utf-8") for f in files]


def _jsonl(path: Path) -> list[str]:
    from kvscope.jsonl import read_jsonl

    texts = []
    for n, obj in read_jsonl(path, "prompts file"):
        if obj is None:
            raise UsageError(f"prompts file {path}: line {n} is not JSON")
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
            raise UsageError(f'prompts file {path}: line {n} has no non-empty "text" field')
        texts.append(obj["text"])
    return texts


def _texts(files: list[Path]) -> list[str]:
    """The texts of a prompts folder's files: each through ``read_text_input``, 50 MB in all."""
    from kvscope.fileio import MAX_INPUT_BYTES, read_text_input

    texts, total = [], 0
    for p in files:
        texts.append(read_text_input(p, "prompts", limit=MAX_INPUT_BYTES - total))
        total += len(texts[-1].encode("utf-8"))
    return texts


def load_prompts(spec: str | Path) -> list[str]:
    """The prompt texts of ``spec`` (see the module doc); a one-line ``UsageError`` when there are none."""
    if str(spec) == DEFAULT:
        return default_prompts()
    path = Path(spec)
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".txt" and p.is_file())
            if not files:
                raise UsageError(f"prompts folder {path} has no .txt files")
            texts = _texts(files)
            empty = [p.name for p, t in zip(files, texts) if not t.strip()]
            if empty:
                raise UsageError(f"prompts folder {path}: {empty[0]} is empty")
            return texts
        if not path.is_file():
            raise UsageError(f"cannot read prompts {path}: no such file or folder (or use 'default')")
        texts = _jsonl(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read prompts {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not texts:
        raise UsageError(f'prompts file {path} is empty: one JSON object with a "text" field per line')
    return texts
