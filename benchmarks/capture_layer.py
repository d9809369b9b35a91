"""Benchmark: one layer's attention-received capture at N tokens, in parts (CPU seconds, one torch thread).

Random queries/keys/values of the embedded model's shapes (9 q_heads, 3 kv_heads, head_dim 64). Rows, each the
minimum CPU time (``time.process_time``) of ``--repeats`` runs in this one process:

- ``flash``: PyTorch's fused CPU kernel (``_scaled_dot_product_flash_attention_for_cpu``), output and
  log-sum-exp: what a bare forward's attention costs;
- ``column sums (chunk C)``: ``kvscope.attention._received_from_lse``, the capture's extra pass;
- ``Q·Kᵀ only`` / ``+ exp`` / ``+ exp + column sum``: that pass's parts, 64 positions a chunk, in the same key
  tiles and reused buffer (``kvscope.attention._key_tiles``), no shift or mask: the floor of any pass that
  recomputes the scores beside the fused kernel;
- ``one pass``: an alternative not in kvscope, Q·Kᵀ, the diagonal block masked, softmax, column sums and P·V
  in one chunked loop (its own output, not bit-identical to the fused kernel's; the max difference is printed).

Usage: ``python benchmarks/capture_layer.py [--tokens 8192] [--repeats 3]`` (prints a Markdown table).
"""

from __future__ import annotations

import argparse
import time

import torch

from kvscope.attention import KEY_BLOCK, _key_tiles, _received_from_lse

Q_HEADS, KV_HEADS, DIM = 9, 3, 64


def cpu_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def flash(q, k, v, scale):
    g = Q_HEADS // KV_HEADS
    kr, vr = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, kr, vr, 0.0, True, attn_mask=None, scale=scale)


def grouped_rows(q, scale):
    """Queries ``[1, q_head, n, d]`` as ``[kv_head, n * group, d]`` rows (position-major), scaled."""
    n, g = q.shape[2], Q_HEADS // KV_HEADS
    return (q[0] * scale).view(KV_HEADS, g, n, DIM).transpose(1, 2).reshape(KV_HEADS, n * g, DIM)


def parts(rows, keys_t, n, chunk, steps):
    """The column-sum pass's products in key tiles, with ``steps`` of ("exp", "sum") applied; no shift, no mask."""
    g = Q_HEADS // KV_HEADS
    tile = torch.empty(KV_HEADS * chunk * g * (2 * KEY_BLOCK + chunk))
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        for b0, b1 in _key_tiles(s, e):
            x = tile[: KV_HEADS * (e - s) * g * (b1 - b0)].view(KV_HEADS, (e - s) * g, b1 - b0)
            torch.bmm(rows[:, s * g : e * g], keys_t[..., b0:b1], out=x)
            if "exp" in steps:
                x.exp_()
            if "sum" in steps:
                x.sum(1)


def one_pass(rows, k, v, n, chunk):
    """Output ``[kv_head, n * group, d]`` and received ``[kv_head, n]`` in one chunked loop."""
    g = Q_HEADS // KV_HEADS
    upper = torch.ones(chunk, chunk, dtype=torch.bool).triu(1)[:, None, :]
    received, out = torch.zeros(KV_HEADS, n), torch.empty(KV_HEADS, n * g, DIM)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        scores = torch.matmul(rows[:, s * g : e * g], k[0, :, :e].transpose(-1, -2))
        scores.view(KV_HEADS, e - s, g, e)[..., s:e].masked_fill_(upper[: e - s, :, : e - s], float("-inf"))
        probs = torch.softmax(scores, -1)
        received[:, :e] += probs.sum(1)
        out[:, s * g : e * g] = torch.matmul(probs, v[0, :, :e])
    return out, received


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n, scale = args.tokens, DIM**-0.5
    q, k, v = torch.randn(1, Q_HEADS, n, DIM), torch.randn(1, KV_HEADS, n, DIM), torch.randn(1, KV_HEADS, n, DIM)
    ref, lse = flash(q, k, v, scale)[:2]
    rows, keys_t = grouped_rows(q, scale), k[0].transpose(-1, -2)
    arms = {"flash (output + log-sum-exp)": lambda: flash(q, k, v, scale)}
    for c in (32, 64):
        arms[f"column sums, chunk {c} (kvscope)"] = lambda c=c: _received_from_lse(q[0], k[0], lse[0], scale, c)
    for label, steps in (("Q·Kᵀ only", ()), ("Q·Kᵀ + exp", ("exp",)), ("Q·Kᵀ + exp + column sum", ("exp", "sum"))):
        arms[f"{label}, chunk 64, key tiles"] = lambda steps=steps: parts(rows, keys_t, n, 64, steps)
    arms["one pass (not in kvscope), chunk 32"] = lambda: one_pass(rows, k, v, n, 32)
    out = one_pass(rows, k, v, n, 32)[0].view(KV_HEADS, n, Q_HEADS // KV_HEADS, DIM).permute(0, 2, 1, 3)
    diff = float((out.reshape(Q_HEADS, n, DIM) - ref[0]).abs().max())
    print(f"One layer at {n} tokens, torch threads {torch.get_num_threads()}, min of {args.repeats} (CPU s)\n")
    print("| part | CPU s |\n|---|---|")
    for label, fn in arms.items():
        print(f"| {label} | {cpu_seconds(fn, args.repeats):.3f} |")
    print(f"\none pass vs flash output: max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
