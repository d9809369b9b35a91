"""``kvscope analyze`` from inputs to files, in the library: the checks that need no weights (run before
anything loads), the ground truth an output folder holds, and :func:`analyze_into`, the single- and
many-prompt run from a snapshot or texts to the saved folder. The CLI parses flags, calls it and prints;
errors name parameters (``UsageError(param=...)``), which the CLI spells as its flags."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvscope.analyze.analysis import analyze, analyze_texts
from kvscope.analyze.pipeline import GROUND_TRUTH_FILE
from kvscope.analyze.registry import torch_threads
from kvscope.errors import UsageError
from kvscope.snapshot import KVSnapshot


def package_text(name: str) -> str:
    """A text shipped in ``kvscope/data`` (the default prompt and its continuation)."""
    from importlib import resources

    return resources.files("kvscope").joinpath("data", name).read_text(encoding="utf-8")


def check_before_loading(
    *, model: str, snapshot: Path | None, ground_truth: Path | None, threads: int | None, layer: int | None
) -> None:
    """Every check of :func:`analyze_into`'s inputs that needs no weights, run before anything loads or is
    written; errors name the parameter (``threads``, ``ground_truth``, ``layer``)."""
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be at least 1, got {threads}", param="threads")
    if ground_truth is not None and not Path(ground_truth).is_file():
        raise UsageError(f"cannot read ground truth {ground_truth}: no such file", param="ground_truth")
    if layer is not None and snapshot is None:
        from kvscope.configcheck import check_layer

        check_layer(layer, layers_before_loading(model))


def layers_before_loading(model: str) -> int:
    """The model's layer count from its config alone (no weights loaded)."""
    if model == "embedded":
        return 30
    if model == "tiny":
        from kvscope.models import tiny_config

        return tiny_config().num_hidden_layers
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(model)
        cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        return int(cfg.num_hidden_layers)
    except Exception as exc:
        raise UsageError(f"cannot read the config of {model} to check layer: {exc}", param="layer") from None


def ground_truth_for(out: Path, ground_truth: Path | None) -> tuple[Path | None, bool]:
    """The leave-one-out file to use (``ground_truth``, else ``out``'s own if there) and whether it is another
    command's file in ``out`` (prune's: kept where it is, never copied over). ``out`` holding another
    command's file while ``ground_truth`` names a different one is refused."""
    here = out / GROUND_TRUTH_FILE
    truth = ground_truth or (here if here.is_file() else None)
    theirs = _owned_by_other(out, GROUND_TRUTH_FILE)
    in_out = theirs and truth is not None and _same_file(truth, here)
    if truth is not None and theirs and not in_out:
        raise UsageError(
            f"the output folder {out} holds another {GROUND_TRUTH_FILE} than ground_truth {truth}: use another "
            "output folder",
            param="ground_truth",
        )
    return truth, bool(in_out)


def _same_file(a: Path, b: Path) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _owned_by_other(out: Path, name: str) -> bool:
    """True when ``out`` holds ``name`` written by another command than analyze (``kvscope.outdir``)."""
    from kvscope.outdir import read_marker

    owners = read_marker(out) or {}
    return any(name in names for command, names in owners.items() if command != "analyze")


def analyze_into(
    out: Path,
    *,
    texts: list[str] | None = None,
    snapshot: Path | None = None,
    loader: Callable[[], Any] | None = None,
    threads: int | None = None,
    truncate: bool = False,
    ground_truth: Path | None = None,
    force: bool = False,
    quiet: bool = True,
    status: Callable[[str], Any] | None = None,
    one_prompt: dict[str, Any] | None = None,
    **kw: Any,
) -> tuple[Any, dict[str, float]]:
    """``kvscope analyze`` from inputs to files: analyze a saved ``snapshot`` (path), or capture ``texts``
    with the model ``loader()`` returns (default: the embedded one) on ``threads`` torch threads, then save
    the result into ``out``. ``one_prompt``: parameters that only one text or snapshot takes
    (``continuation``, ``scan_layers``, ``scan_heads``, ``cache_scale``, ``cache_norm``); ``kw``: those of
    :func:`kvscope.analyze.analysis.analyze` that every run takes (``layer``, ``fmt``, ...); ``status(text)``:
    a context manager shown while one text is captured and analyzed. Returns ``(result, seconds per step)``."""
    truth, keep_theirs = ground_truth_for(out, ground_truth)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    if snapshot is not None:
        snap = KVSnapshot.load(snapshot, require_finite=True)
        timing["load"] = time.perf_counter() - t0
        result = analyze(snap, ground_truth=truth, **(one_prompt or {}), **kw)
    else:
        loaded = (loader or _load_embedded)()
        timing["load"] = time.perf_counter() - t0
        with torch_threads(threads):
            result = _from_texts(loaded, texts or [], truncate, truth, quiet, status, timing, one_prompt or {}, kw)
    t0 = time.perf_counter()
    if keep_theirs:  # the file is prune's, kept where it is; no copy of analyze's beside it
        result.ground_truth_file = None
    result.save(out, force=force)
    return result, {**timing, **result.timing, "report": time.perf_counter() - t0}


def _from_texts(loaded, texts, truncate, truth, quiet, status, timing, one_prompt, kw):
    """Many texts through ``analyze_texts``; one captured here (attention and queries) and analyzed with the
    model at hand, its capture timed apart."""
    if len(texts) > 1:
        return analyze_texts(
            loaded.model,
            loaded.tokenizer,
            texts,
            info=loaded.info,
            truncate=truncate,
            quiet=quiet,
            ground_truth=truth,
            **kw,
        )
    from kvscope.capture.capturing import capture

    with (status or (lambda _: contextlib.nullcontext()))("capturing and analyzing ..."):
        t0 = time.perf_counter()
        snap = capture(
            loaded.model, loaded.tokenizer, texts[0], info=loaded.info, attention=True, queries=True, truncate=truncate
        )
        timing["capture"] = time.perf_counter() - t0
        return analyze(snap, model=loaded.model, tokenizer=loaded.tokenizer, ground_truth=truth, **one_prompt, **kw)


def _load_embedded() -> Any:
    from kvscope.models import load_model

    return load_model("embedded")
