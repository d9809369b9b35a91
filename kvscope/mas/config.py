"""The settings of a LatentMAS run, validated before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvscope.errors import UsageError
from kvscope.mas.knn import KnnConfig
from kvscope.mas.prompts import MODES

KNN_POSITIONS = {
    "true": "new tokens continue from each row's true length (kvscope's default)",
    "reuse": "new tokens take positions from the cache length after filtering, as the kNN fork did",
}


@dataclass(frozen=True)
class MasConfig:
    """Everything a method needs besides the model and the problems (option names as in the CLI)."""

    prompt: str = "sequential"
    latent_steps: int = 10
    max_new_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int | None = None
    seed: int = 42
    realign: bool = False
    knn: KnnConfig | None = None
    knn_positions: str = "true"
    include_old_prompts: bool = False
    similarities: bool = False  # record query-to-cache similarity at each transition (for heatmaps)
    batch_size: int = 1

    def __post_init__(self) -> None:
        checks = [
            (self.prompt in MODES, "prompt", f"prompt must be one of {', '.join(MODES)}, got {self.prompt!r}"),
            (self.latent_steps >= 0, "latent_steps", f"latent_steps must be >= 0, got {self.latent_steps}"),
            (self.max_new_tokens >= 1, "max_new_tokens", f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.temperature >= 0, "temperature", f"temperature must be >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, "top_p", f"top_p must be in (0, 1], got {self.top_p}"),
            (self.top_k is None or self.top_k >= 1, "top_k", f"top_k must be >= 1, got {self.top_k}"),
            (
                self.knn_positions in KNN_POSITIONS,
                "knn_positions",
                f"knn_positions must be one of {', '.join(KNN_POSITIONS)}, got {self.knn_positions!r}",
            ),
            (
                not self.include_old_prompts or self.prompt == "sequential",
                "include_old_prompts",
                "include_old_prompts stacks the sequential agents' prompts; it needs prompt='sequential'",
            ),
            (self.batch_size >= 1, "batch_size", f"batch_size must be >= 1, got {self.batch_size}"),
        ]
        for ok, param, message in checks:
            if not ok:
                raise UsageError(message, param=param)

    def record(self) -> dict[str, Any]:
        """Plain values, as written to results.json."""
        from dataclasses import asdict

        return asdict(self)
