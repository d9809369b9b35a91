"""Does computing only the last logit row (``logits_to_keep=1``) give that row's logits bit for bit?

Bench feeds a question of Q tokens in one forward pass and reads only the last row's argmax. Keeping one
row would skip Q - 1 rows of the LM head, but on CPU the one-row product goes through a different matrix
kernel than the Q-row one, so the sums may round differently and a near-tie argmax could flip. This script
checks it on the embedded model: 20 random contexts and questions, the last row both ways.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/logits_rows.py``
"""

from __future__ import annotations

import torch

from kvscope.compat import forward
from kvscope.models import load_model


def main() -> None:
    torch.set_num_threads(1)
    from transformers import DynamicCache

    model, _, _ = load_model("embedded")
    gen = torch.Generator().manual_seed(0)
    differ, worst = 0, 0.0
    for trial in range(20):
        n, q = 50 + 23 * trial, 5 + trial
        ids = torch.randint(0, 49000, (1, n + q), generator=gen)
        rows = []
        for keep in (0, 1):
            with torch.inference_mode():
                cache = DynamicCache(config=model.config)
                forward(model, cache, input_ids=ids[:, :n], use_cache=True)
                rows.append(
                    forward(model, cache, input_ids=ids[:, n:], use_cache=True, logits_to_keep=keep).logits[0, -1]
                )
        differ += not torch.equal(rows[0], rows[1])
        worst = max(worst, float((rows[0] - rows[1]).abs().max()))
    print(f"last row differs in {differ} of 20 trials; largest difference {worst:.2e}")


if __name__ == "__main__":
    main()
