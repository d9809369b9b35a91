"""``MasCommandSettings``: every default of ``kvscope mas`` in one place; the CLI builds its options from
it. The run's own settings are :class:`kvscope.mas.config.MasConfig`'s and the kNN filter's
:class:`kvscope.mas.knn.KnnConfig`'s: their defaults are read from there, so each lives once."""

from __future__ import annotations

from dataclasses import dataclass

from kvscope.mas.config import MasConfig
from kvscope.mas.knn import KnnConfig


@dataclass(frozen=True)
class MasCommandSettings:
    """Field names are the command's option names; ``samples`` -1: all problems (arith: 20)."""

    model: str = "embedded"
    task: str = "arith"
    samples: int = 20
    prompt: str = MasConfig.prompt
    latent_steps: int = MasConfig.latent_steps
    max_new_tokens: int = MasConfig.max_new_tokens
    temperature: float = MasConfig.temperature
    top_p: float = MasConfig.top_p
    top_k: int | None = MasConfig.top_k
    seed: int = MasConfig.seed
    batch_size: int = MasConfig.batch_size
    knn_positions: str = MasConfig.knn_positions
    knn_percentage: float = KnnConfig.keep_fraction
    knn_min_keep: int = KnnConfig.min_keep
    knn_strategy: str = KnnConfig.strategy
    out: str = "kvscope-mas"
