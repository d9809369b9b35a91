"""LatentMAS: four agents (Planner -> Critic -> Refiner -> Judger) sharing one KV cache.

Re-implements "Latent Collaboration in Multi-Agent Systems" (Zou et al., arXiv 2511.20639) and the
kNN-filtering / similarity-heatmap extension on kvscope's capture layer, with positions and masks under
our control. Modules: ``tasks`` (problem sets), ``answers`` (extraction, scoring), ``prompts`` (agents),
``engine`` (batched forward/decode loop), ``realign`` (W_a), ``knn`` (similarity, filtering), ``methods``
(baseline, text_mas, latent_mas), ``runner`` (batches, summaries, files).
"""

from kvscope.mas.methods import METHODS, MasSettings, ProblemRun
from kvscope.mas.tasks import TASKS, Problem, load_task

__all__ = ["METHODS", "TASKS", "MasSettings", "Problem", "ProblemRun", "load_task"]
