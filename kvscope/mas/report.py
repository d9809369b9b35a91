"""From command-line options to results: validate, load, run every method, write files, return a dict."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import torch

from kvscope.errors import UsageError
from kvscope.mas.knn import KnnConfig
from kvscope.mas.methods import MasSettings
from kvscope.mas.runner import method_names, ratios, run_method, summarize, write_outputs
from kvscope.mas.tasks import load_task

log = logging.getLogger("kvscope")


def validate(kw: dict[str, Any]) -> KnnConfig:
    """Check the options that the CLI's types cannot; returns the kNN settings."""
    if kw["latent_steps"] < 0:
        raise UsageError(f"--latent_steps must be >= 0, got {kw['latent_steps']}")
    if kw["max_samples"] == 0 or kw["max_samples"] < -1:
        raise UsageError(f"--max_samples must be positive or -1 (all), got {kw['max_samples']}")
    return KnnConfig(kw["knn_percentage"], kw["knn_min_keep"], kw["knn_strategy"])


def config_record(kw: dict[str, Any]) -> dict[str, Any]:
    """The run's settings as written to results.json."""
    skip = {"as_json", "out", "charts"}
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items() if k not in skip}


def run_from_options(kw: dict[str, Any], loader: Callable[..., Any], console: Any) -> dict[str, Any]:
    """Run ``kw["method"]`` (or all three) and write ``results.json``, ``trace.jsonl`` and any heatmaps."""
    from kvscope.fileio import ensure_dir
    from kvscope.plots.mas import save_heatmaps

    knn = validate(kw)
    names = method_names(kw["method"])
    problems = load_task(kw["task"], kw["max_samples"], kw["seed"], kw["data"])
    out = ensure_dir(kw["out"])
    heat = kw["show_heatmaps"] or kw["show_heatmaps_singlelayer"]
    if (heat or kw["knn_filter"]) and "latent_mas" not in names:
        log.warning("heatmaps and kNN filtering apply to latent_mas only; %s has no shared cache", kw["method"])
    model, tok, info = loader(kw["model"], kw["device"], kw["dtype"])
    settings = MasSettings(model, tok, info, prompt=kw["prompt"], latent_steps=kw["latent_steps"],
                           max_new_tokens=kw["max_new_tokens"], temperature=kw["temperature"], top_p=kw["top_p"],
                           seed=kw["seed"], realign=kw["latent_space_realign"],
                           knn=knn if kw["knn_filter"] else None, similarities=heat)
    runs = {}
    for name in names:
        with console.status(f"{name}: 0/{len(problems)} problems") as status:
            runs[name] = run_method(settings, name, problems, kw["generate_bs"],
                                    lambda m, i, n: status.update(f"{m}: {i}/{n} problems"))
    summaries = {name: summarize(r) for name, r in runs.items()}
    results = {"model": info.name, "task": kw["task"], "torch_threads": torch.get_num_threads(),
               "config": config_record(kw), "methods": summaries, "ratios": ratios(summaries)}
    files = write_outputs(out, results, runs)
    if "latent_mas" in runs:
        files += save_heatmaps(runs["latent_mas"], kw["charts"] or out / "charts", kw["show_heatmaps"],
                               kw["show_heatmaps_singlelayer"], info.layers)
    results["files"] = [str(p) for p in files]
    return results
