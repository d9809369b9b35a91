"""What ``kvscope analyze`` does, step by step (the click module only parses options)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kvscope.analyses.registry import AnalysisOptions, torch_threads
from kvscope.errors import UsageError
from kvscope.fileio import ensure_dir
from kvscope.report.pipeline import GROUND_TRUTH_FILE, AnalyzeRun, analyze_snapshot, load_ground_truth

DEFAULT_PROMPT_FILE = "default_prompt.txt"
DEFAULT_CONTINUATION_FILE = "default_continuation.txt"


def _text(name: str) -> str:
    from importlib import resources

    return resources.files("kvscope").joinpath("data", name).read_text(encoding="utf-8")


def _check_layer(layer: int | None, n_layers: int) -> int:
    if layer is None:
        return n_layers // 2
    if not 0 <= layer < n_layers:
        raise UsageError(f"unknown --layer {layer}: the model has {n_layers} layers (0-{n_layers - 1})")
    return layer


def _capture(args: dict[str, Any], timing: dict[str, float]):
    """Load the model and capture (attention + queries), or read ``--snapshot``."""
    from kvscope.cli.common import load, read_prompt, stderr_console
    from kvscope.snapshot import KVSnapshot

    if args["snapshot"] is not None:
        if args["prompt"] is not None or args["prompt_file"] is not None:
            raise UsageError("give either --snapshot or a prompt, not both")
        t0 = time.perf_counter()
        snap = KVSnapshot.load(args["snapshot"])
        timing["load"] = time.perf_counter() - t0
        return snap, None, None, False
    is_default = args["prompt"] is None and args["prompt_file"] is None
    text = read_prompt(args["prompt"], args["prompt_file"], _text(DEFAULT_PROMPT_FILE))
    t0 = time.perf_counter()
    model, tok, info = load(args["model"], args["device"], args["dtype"], args["trust_remote_code"],
                            args["device_map"])
    timing["load"] = time.perf_counter() - t0
    from kvscope.capturing import capture

    t0 = time.perf_counter()
    with stderr_console().status("capturing (attention and queries) ..."), torch_threads(args.get("threads")):
        snap = capture(model, tok, text, info=info, attention=True, queries=True, truncate=args["truncate"])
    timing["capture"] = time.perf_counter() - t0
    return snap, model, tok, is_default


def _scan(args, snap, model, tok, is_default, options, timing) -> tuple[dict | None, dict[str, str]]:
    from kvscope.analyses.pruning_potential import pruning_potential
    from kvscope.cli.common import stderr_console
    from kvscope.report.scan import measure_scan, scan_available

    want = bool(args["do_scan"]) or args["scan_heads"]
    if not want:
        return None, {}
    if model is None:
        return None, {"scan": "skipped: no model is loaded (analyzing a saved --snapshot)"}
    if not scan_available():
        return None, {"scan": "skipped: kvscope.prune.scan is not installed"}
    continuation = args["continuation"] or (_text(DEFAULT_CONTINUATION_FILE) if is_default else None)
    if continuation is None:
        return None, {"scan": "skipped: pass --continuation TEXT to score the scan on your prompt"}
    t0 = time.perf_counter()
    with stderr_console().status("measuring the perplexity change of evicting each layer ..."):
        result = measure_scan(model, tok, snap.info, pruning_potential(snap), snap.text, continuation,
                              heads=args["scan_heads"])
    timing["scan"] = time.perf_counter() - t0
    return result, {}


def run(**args: Any) -> AnalyzeRun:
    """Everything ``kvscope analyze`` does; ``args`` are the CLI options by name."""
    if args.get("threads") is not None and args["threads"] < 1:
        raise UsageError(f"--threads must be at least 1, got {args['threads']}")
    out = ensure_dir(args["out"])
    if args["ground_truth"] is not None and not Path(args["ground_truth"]).is_file():
        raise UsageError(f"cannot read ground truth {args['ground_truth']}: no such file")
    timing: dict[str, float] = {}
    snap, model, tok, is_default = _capture(args, timing)
    layer = _check_layer(args["layer"], snap.n_layers)
    truth, truth_note = load_ground_truth(args["ground_truth"] or out / GROUND_TRUTH_FILE, snap)
    options = AnalysisOptions(layer=layer, sparsity_threshold=args["sparsity_threshold"],
                              sink_share=args.get("sink_share", 0.2), delta_loglik=truth)
    scan, notes = _scan(args, snap, model, tok, is_default, options, timing)
    if truth_note and truth is None:
        notes["ground_truth"] = truth_note
    run_options = {"layer": layer, "sparsity_threshold": args["sparsity_threshold"],
                   "sink_share": options.sink_share, "format": args["fmt"],
                   "default_prompt": is_default, "snapshot": str(args["snapshot"]) if args["snapshot"] else None,
                   "ground_truth": truth_note or None}
    from kvscope.cli.common import stderr_console

    with stderr_console().status("analyzing and drawing figures ..."):
        return analyze_snapshot(snap, out, options, model=model, fmt=args["fmt"], jobs=args["jobs"], scan=scan,
                                timing=timing, extra_notes=notes, run_options=run_options)
