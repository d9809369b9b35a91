"""Benchmark: greedy decoding of 128 tokens with and without the KV cache, and the bandwidth bound.

On the embedded SmolLM2-135M (float32, CPU), after GSM8K prompts of 128, 512 and 2048 tokens:

- with the cache: the prefill is timed apart; tokens/s = decoded tokens / summed decode-step time;
- without the cache: every step is a full forward over the whole sequence. Running all 128 steps at
  2048 tokens would take tens of minutes on this machine, so (unless ``--full-no-cache``) only
  ``--samples`` step lengths spread over ``[P, P + 127]`` are timed and the other steps' times are
  linearly interpolated between them (a step's cost is close to linear in its length). At P = 128 all
  128 steps are also run in full once, to check the estimate against a measurement;
- the bandwidth bound: a decode step must read every weight once (tied embeddings counted once) and
  the whole KV cache, so tokens/s <= bandwidth / (weight bytes + KV bytes). Bandwidth is measured with a
  large ``torch`` tensor copy (bytes read + bytes written per second).

Usage: ``python benchmarks/caching.py [--prompts 128 512 2048] [--new-tokens 128] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from capture import prompt_ids  # noqa: E402  (GSM8K questions concatenated to n tokens)

from kvscope.caching import greedy  # noqa: E402


def bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Bytes per second of ``dst.copy_(src)`` on float32 tensors of ``mib`` MiB (read + write), median."""
    src = torch.ones(mib * 2**18)
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - t0)
    return 2 * src.numel() * 4 / statistics.median(times[1:])


def weight_bytes(model) -> int:
    """Bytes of every distinct parameter tensor (a tied embedding / lm_head matrix counted once)."""
    seen = {p.data_ptr(): p for p in model.parameters()}
    return sum(p.numel() * p.element_size() for p in seen.values())


def with_cache(model, ids, new_tokens: int, repeats: int) -> dict:
    """Median prefill seconds and median decode tokens/s over ``repeats`` runs (after a warm-up)."""
    greedy(model, ids, 2, True)
    runs = [greedy(model, ids, new_tokens + 1, True) for _ in range(repeats)]
    decode = [sum(r.step_seconds[1:]) for r in runs]  # step 0 is the prefill + first token
    return {
        "prefill_s": statistics.median(r.step_seconds[0] for r in runs),
        "tok_s": new_tokens / statistics.median(decode),
        "tokens": runs[0].tokens,
    }


def forward_seconds(model, n: int, repeats: int) -> float:
    """Median time of one no-cache forward over ``n`` tokens (next-token logits only)."""
    ids = torch.randint(0, 1000, (1, n))
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def without_cache_estimate(model, p: int, new_tokens: int, samples: int, repeats: int) -> dict:
    """Time full forwards at ``samples`` lengths in ``[p, p + new_tokens - 1]``; interpolate every step."""
    lengths = np.linspace(p, p + new_tokens - 1, samples).round().astype(int)
    secs = [forward_seconds(model, int(n), repeats) for n in lengths]
    total = float(np.interp(np.arange(p, p + new_tokens), lengths, secs).sum())
    return {"tok_s": new_tokens / total, "sampled_lengths": lengths.tolist(), "sampled_s": secs}


def row(model, tok, info, p: int, args, bw: float, wbytes: int) -> dict:
    ids = prompt_ids(tok, p)
    cached = with_cache(model, ids, args.new_tokens, args.repeats)
    est = without_cache_estimate(model, p, args.new_tokens, args.samples, args.repeats)
    out = {"p": p, **{f"cache_{k}": v for k, v in cached.items()}, "nocache_est_tok_s": est["tok_s"]}
    if p <= args.full_no_cache:
        full = greedy(model, ids, args.new_tokens, False)
        out["nocache_full_tok_s"] = args.new_tokens / sum(full.step_seconds)
        out["tokens_equal"] = full.tokens == cached["tokens"][: args.new_tokens]
    mid_context = p + args.new_tokens // 2
    out["bound_weights_tok_s"] = bw / wbytes
    out["bound_tok_s"] = bw / (wbytes + info.kv_bytes_per_token * mid_context)
    return out


def table(rows: list[dict], args, bw: float, wbytes: int, threads: int, cmd: str, load: tuple[float, float]) -> str:
    lines = [
        "## KV caching: decode with and without the cache (`benchmarks/caching.py`)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Embedded SmolLM2-135M, float32, CPU, torch threads = {threads}. Greedy decoding of {args.new_tokens} "
        f"tokens after a GSM8K prompt of P tokens. With the cache: median of {args.repeats} runs after a warm-up "
        "(tokens/s over the decode steps; prefill apart). Without the cache: full forwards timed at "
        f"{args.samples} lengths spread over the {args.new_tokens} steps (median of {args.repeats} each), the "
        "other steps interpolated linearly; where a full no-cache run was also made, both are shown.",
        f"Measured copy bandwidth: {bw / 1e9:.2f} GB/s (read + write, 512 MiB float32 `copy_`, median of 5). "
        f"Weight bytes read per token: {wbytes / 1e6:.0f} MB (tied embedding counted once). The bound is "
        "bandwidth ÷ (weight bytes + KV-cache bytes at the middle of the decode).",
        "",
        "| prompt P | prefill s | with cache tok/s | without cache tok/s | speedup | bound tok/s (weights + KV) | "
        "with cache ÷ bound |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        wo = f"{r['nocache_est_tok_s']:.2f} (est.)"
        if "nocache_full_tok_s" in r:
            wo += f", {r['nocache_full_tok_s']:.2f} (full run)"
        lines.append(
            f"| {r['p']} | {r['cache_prefill_s']:.2f} | {r['cache_tok_s']:.1f} | {wo} | "
            f"{r['cache_tok_s'] / r['nocache_est_tok_s']:.1f}× | {r['bound_tok_s']:.1f} | "
            f"{r['cache_tok_s'] / r['bound_tok_s']:.2f} |"
        )
    eq = [r["tokens_equal"] for r in rows if "tokens_equal" in r]
    lines += [
        "",
        f"Weights-only bound: {rows[0]['bound_weights_tok_s']:.1f} tok/s. Greedy tokens with and without "
        f"the cache identical in the full runs: {all(eq) if eq else 'not run'}. The machine was shared with "
        f"other jobs (1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at the end, on "
        f"{os.cpu_count()} cores): absolute numbers are noisy, ratios within a row less so.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", nargs="+", type=int, default=[128, 512, 2048])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4, help="timed step lengths per no-cache estimate")
    ap.add_argument("--full-no-cache", type=int, default=128, help="also run all no-cache steps up to this P")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "caching.md")
    args = ap.parse_args()
    from kvscope.models import load_model

    start_load = os.getloadavg()[0]
    model, tok, info = load_model("embedded")
    bw, wbytes = bandwidth(), weight_bytes(model)
    rows = []
    for p in args.prompts:
        rows.append(row(model, tok, info, p, args, bw, wbytes))
        print(rows[-1] | {"cache_tokens": "..."}, file=sys.stderr)
    env = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    cmd = f"{env}python benchmarks/caching.py " + " ".join(sys.argv[1:])
    load = (start_load, os.getloadavg()[0])
    args.out.write_text(table(rows, args, bw, wbytes, torch.get_num_threads(), cmd.strip(), load), encoding="utf-8")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
