"""LatentMAS: agents that collaborate through the KV cache, against one agent and text-exchanging agents.

Re-implements "Latent Collaboration in Multi-Agent Systems" (Zou et al., arXiv 2511.20639) and the
kNN-filtering / similarity-heatmap extension on kvscope's capture layer, with positions and masks under
our control. Entry point: :func:`run_mas` -> :class:`MasResult`. Modules: ``tasks`` (problem sets),
``answers`` (extraction, scoring), ``prompts`` (agents), ``config`` (settings), ``engine`` (shared-cache
bookkeeping over :mod:`kvscope.decode`), ``realign`` (W_a), ``knn`` (similarity, filtering), ``methods``
(baseline, text_mas, latent_mas), ``runner`` (interleaved batches, summaries, files), ``api`` (run_mas).
"""

from kvscope.mas.config import MasConfig
from kvscope.mas.experiment import MasResult, run_mas
from kvscope.mas.knn import KnnConfig
from kvscope.mas.methods import METHODS, MasSettings, ProblemRun
from kvscope.mas.problems import PROBLEM_SETS, Problem, load_task

__all__ = [
    "METHODS",
    "PROBLEM_SETS",
    "KnnConfig",
    "MasConfig",
    "MasResult",
    "MasSettings",
    "Problem",
    "ProblemRun",
    "load_task",
    "run_mas",
]
