"""Does computing only the last logit rows (``logits_to_keep=k``) give the last row's logits bit for bit?

Bench feeds a question of Q tokens in one forward pass and reads only the last row's argmax. Keeping k
rows skips Q - k rows of the LM head, but on CPU a product of one to three rows goes through a different
matrix kernel than the Q-row one, so the sums may round differently and a near-tie argmax could flip;
from four rows on the kernel is the Q-row one. This script checks it on the embedded model: 20 random
contexts and questions, the last row computed with every row and with the last ``k`` (1 and
``kvscope.bench.sample_runner.LAST_ROWS``, what bench keeps).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/logits_rows.py``
"""

from __future__ import annotations

import torch

from kvscope.bench.sample_runner import LAST_ROWS
from kvscope.compat import forward
from kvscope.models import load_model


def main() -> None:
    torch.set_num_threads(1)
    from transformers import DynamicCache

    model, _, _ = load_model("embedded")
    gen = torch.Generator().manual_seed(0)
    keeps = (1, LAST_ROWS)
    differ, worst = dict.fromkeys(keeps, 0), dict.fromkeys(keeps, 0.0)
    for trial in range(20):
        n, q = 50 + 23 * trial, 5 + trial
        ids = torch.randint(0, 49000, (1, n + q), generator=gen)
        rows = {}
        for keep in (0, *keeps):
            with torch.inference_mode():
                cache = DynamicCache(config=model.config)
                forward(model, cache, input_ids=ids[:, :n], use_cache=True)
                out = forward(model, cache, input_ids=ids[:, n:], use_cache=True, logits_to_keep=keep)
                rows[keep] = out.logits[0, -1]
        for keep in keeps:
            differ[keep] += not torch.equal(rows[0], rows[keep])
            worst[keep] = max(worst[keep], float((rows[0] - rows[keep]).abs().max()))
    for keep in keeps:
        print(f"logits_to_keep={keep}: last row differs in {differ[keep]} of 20 trials; largest {worst[keep]:.2e}")


if __name__ == "__main__":
    main()
