"""Benchmark: where one LatentMAS latent step's time goes, on the embedded model (one torch thread).

A latent step is one decoder pass over one input embedding (no LM head) through kvscope.mas.engine.forward.
After a 500-token prefill, ``--steps`` steps are timed (median ms a step), then cProfile splits ``--steps``
more by PyTorch operator: the linear layers, sdpa and the cache's ``torch.cat``; the decoder's float32 weight
bytes of its linear layers, which a one-token step must read once, are printed beside them.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/latent_step.py [--steps 20]``
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from kvscope.mas.engine import CacheState, append_ids, forward
    from kvscope.models import load_model

    model = load_model("embedded").model
    state = CacheState.empty(model, 1)
    hidden = append_ids(model, state, [list(range(100, 600))], "a:prompt", 0, want="hidden").hidden
    real = torch.ones(1, 1, dtype=torch.bool)

    def step(h):
        return forward(model, state, real, "a:latent", embeds=h[:, None, :], want="hidden").hidden

    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        hidden = step(hidden)
        times.append(time.perf_counter() - t)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.steps):
        hidden = step(hidden)
    profile.disable()
    by_name = {f[2]: v[3] for f, v in pstats.Stats(profile).stats.items()}  # function name -> cumulative s
    linear = [m.weight for m in model.get_decoder().modules() if isinstance(m, torch.nn.Linear)]
    weights = sum(w.numel() * w.element_size() for w in linear)
    print(f"torch threads {torch.get_num_threads()}; {args.steps} latent steps after a 500-token prefill")
    print(
        f"median {1000 * statistics.median(times):.1f} ms a step "
        f"(min {1000 * min(times):.1f}, max {1000 * max(times):.1f})"
    )
    for label, name in (
        ("linear layers", "<built-in method torch._C._nn.linear>"),
        ("sdpa", "<built-in method torch._C._nn.scaled_dot_product_attention>"),
        ("torch.cat (the cache growing)", "<built-in method torch.cat>"),
    ):
        print(f"{label}: {1000 * by_name.get(name, 0.0) / args.steps:.1f} ms a step (cProfile)")
    print(f"linear-layer weights read a step: {weights / 1e6:.0f} MB in {len(linear)} matrices")


if __name__ == "__main__":
    main()
