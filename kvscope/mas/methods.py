"""The three methods, each run on a batch of problems: ``baseline``, ``text_mas`` and ``latent_mas``.

- ``baseline``: one agent answers.
- ``text_mas``: the four agents each decode text; later agents read the earlier agents' text (in the
  hierarchical variant only the Judger does). No KV is reused.
- ``latent_mas`` (Zou et al., arXiv 2511.20639, Alg. 1): one shared cache. Each non-judger agent appends
  its prompt, then runs ``latent_steps`` steps that feed the realigned last hidden state back as one input
  embedding (one new slot each). Only the Judger decodes text, attending to the whole cache. Optionally the
  cache is kNN-filtered, and its similarity to the incoming agent recorded, at each agent transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from kvscope.mas.answers import extract_answer, is_correct
from kvscope.mas.engine import CacheState, Sampling, append_ids, decode, forward
from kvscope.mas.knn import KnnConfig, all_layer_similarity, fold_query, knn_filter, prompt_query
from kvscope.mas.prompts import AGENTS, Agent, agent_user_text, baseline_user_text, context_block, encode, render
from kvscope.mas.realign import Realigner, realigner
from kvscope.mas.tasks import Problem


@dataclass
class MasSettings:
    """Everything a method needs besides the problems."""

    model: Any
    tokenizer: Any
    info: Any
    prompt: str = "sequential"
    latent_steps: int = 10
    max_new_tokens: int = 256
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 42
    realign: bool = False
    knn: KnnConfig | None = None
    similarities: bool = False  # record query-to-cache similarity at each transition (for heatmaps)
    _realigner: Realigner | None = field(default=None, repr=False)

    def get_realigner(self) -> Realigner:
        if self._realigner is None:
            self._realigner = realigner(self.model, self.realign)
        return self._realigner


@dataclass
class AgentTrace:
    """One agent's part in one problem. ``kv_bytes_in``: real KV bytes of the cache it received."""

    role: str
    prompt_tokens: int
    generated_tokens: int = 0
    latent_steps: int = 0
    output: str = ""
    kv_bytes_in: int = 0
    cache_slots_in: int = 0


@dataclass
class Transition:
    """Query-to-cache cosine at one agent transition, for one problem: ``similarity`` ``[layer, slot]``."""

    name: str  # e.g. "planner_to_critic"
    similarity: torch.Tensor
    labels: list[str]  # per slot, "agent:prompt" or "agent:latent"
    positions: list[int]  # true position of each slot


@dataclass
class ProblemRun:
    """One problem under one method; ``seconds`` is the batch's wall time divided by its size."""

    method: str
    problem: Problem
    text: str
    agents: list[AgentTrace]
    seconds: float = 0.0
    knn_events: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    @property
    def pred(self) -> str | None:
        return extract_answer(self.text)

    @property
    def correct(self) -> bool:
        return is_correct(self.pred, self.problem.gold)

    @property
    def generated_tokens(self) -> int:
        return sum(a.generated_tokens for a in self.agents)

    @property
    def kv_bytes_handed(self) -> int:
        return sum(a.kv_bytes_in for a in self.agents)


def seeded(seed: int, problem: Problem, role: str, purpose: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, problem number, role, purpose), never on the batch.

    ``purpose`` 0 is for sampling tokens, 1 for kNN's random strategy.
    """
    roles = [a.role for a in AGENTS] + ["baseline"]
    return torch.Generator().manual_seed(seed * 1_000_003 + problem.index * 101 + roles.index(role) * 2 + purpose)


def _sampling(s: MasSettings, problems: list[Problem], role: str) -> Sampling:
    tok = s.tokenizer
    stops = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    gen_eos = getattr(getattr(s.model, "generation_config", None), "eos_token_id", None)
    stops |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    stops |= {end} if end is not None else set()
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    return Sampling(s.max_new_tokens, s.temperature, s.top_p, [seeded(s.seed, p, role) for p in problems],
                    frozenset(stops), pad)


def _generate(s: MasSettings, problems: list[Problem], prompts: list[list[int]], role: str,
              state: CacheState | None = None) -> list[list[int]]:
    """Append ``prompts`` (one per row) to ``state`` (a fresh cache if None) and decode."""
    sampling = _sampling(s, problems, role)
    state = state if state is not None else CacheState.empty(s.model, len(problems))
    first = append_ids(s.model, state, prompts, f"{role}:prompt", sampling.pad_id)
    return decode(s.model, state, first, sampling, f"{role}:output")


def _text(s: MasSettings, ids: list[int]) -> str:
    return s.tokenizer.decode(ids, skip_special_tokens=True).strip()


def run_baseline(s: MasSettings, problems: list[Problem]) -> list[ProblemRun]:
    prompts = [encode(s.tokenizer, render(s.tokenizer, baseline_user_text(p.question))) for p in problems]
    outs = _generate(s, problems, prompts, "baseline")
    return [ProblemRun("baseline", p, _text(s, o), [AgentTrace("baseline", len(ids), len(o), output=_text(s, o))])
            for p, ids, o in zip(problems, prompts, outs)]


def _sees_context(prompt: str, agent: Agent) -> bool:
    return prompt == "sequential" or agent.role == "judger"


def run_text_mas(s: MasSettings, problems: list[Problem]) -> list[ProblemRun]:
    earlier: list[list[tuple[str, str]]] = [[] for _ in problems]
    traces: list[list[AgentTrace]] = [[] for _ in problems]
    for agent in AGENTS:
        prompts = []
        for row, p in enumerate(problems):
            ctx = context_block(earlier[row]) if _sees_context(s.prompt, agent) else ""
            prompts.append(encode(s.tokenizer, render(s.tokenizer, agent_user_text(s.prompt, agent.role,
                                                                                   p.question, ctx))))
        outs = _generate(s, problems, prompts, agent.role)
        for row, (ids, o) in enumerate(zip(prompts, outs)):
            text = _text(s, o)
            earlier[row].append((agent.name, text))
            traces[row].append(AgentTrace(agent.role, len(ids), len(o), output=text))
    return [ProblemRun("text_mas", p, t[-1].output, t) for p, t in zip(problems, traces)]


def _latent_steps(s: MasSettings, state: CacheState, hidden: torch.Tensor, role: str) -> None:
    """``latent_steps`` times: realign the last hidden state ``[B, hidden]`` and append it as one embedding."""
    align = s.get_realigner()
    dtype = next(s.model.parameters()).dtype
    device = next(s.model.parameters()).device
    real = torch.ones(state.batch, 1, dtype=torch.bool)
    for _ in range(s.latent_steps):
        embeds = align(hidden).to(device=device, dtype=dtype)[:, None, :]
        hidden = forward(s.model, state, real, f"{role}:latent", embeds=embeds).hidden


def _transition(s: MasSettings, state: CacheState, runs: list[ProblemRun], prompts: list[list[int]],
                prev: Agent, agent: Agent) -> CacheState:
    """Before ``agent`` reads the cache: kNN-filter it (if asked), record similarities, note the bytes."""
    if s.knn is None and not s.similarities:
        return state
    queries = [fold_query(prompt_query(s.model, ids), s.info.head_dim) for ids in prompts]
    if s.knn is not None:
        gens = [seeded(s.seed, r.problem, agent.role, purpose=1) for r in runs]
        state, event = knn_filter(s.model, state, queries, s.knn, s.info.layers, gens)
        for row, run in enumerate(runs):
            run.knn_events.append({"transition": f"{prev.role}_to_{agent.role}",
                                   **{k: (v[row] if isinstance(v, list) else v) for k, v in event.items()}})
    if s.similarities:
        for row, run in enumerate(runs):
            slots = state.real_slots(row).tolist()
            run.transitions.append(Transition(f"{prev.role}_to_{agent.role}",
                                              all_layer_similarity(state, row, queries[row], s.info.layers),
                                              [state.labels[row][i] for i in slots],
                                              [int(state.positions[row, i]) for i in slots]))
    return state


def run_latent_mas(s: MasSettings, problems: list[Problem]) -> list[ProblemRun]:
    runs = [ProblemRun("latent_mas", p, "", []) for p in problems]
    state = CacheState.empty(s.model, len(problems))
    pad = _sampling(s, problems, "judger").pad_id
    for i, agent in enumerate(AGENTS):
        prompts = [encode(s.tokenizer, render(s.tokenizer, agent_user_text(s.prompt, agent.role, p.question,
                                                                           latent=True))) for p in problems]
        if i > 0:
            state = _transition(s, state, runs, prompts, AGENTS[i - 1], agent)
        for row, (run, ids) in enumerate(zip(runs, prompts)):
            run.agents.append(AgentTrace(agent.role, len(ids), kv_bytes_in=state.row_nbytes(row, s.info.layers),
                                         cache_slots_in=int(state.real_slots(row).numel())))
        if agent.role == "judger":
            outs = _generate(s, problems, prompts, agent.role, state)
            for run, o in zip(runs, outs):
                run.text = run.agents[-1].output = _text(s, o)
                run.agents[-1].generated_tokens = len(o)
        else:
            first = append_ids(s.model, state, prompts, f"{agent.role}:prompt", pad)
            _latent_steps(s, state, first.hidden, agent.role)
            for run in runs:
                run.agents[-1].latent_steps = s.latent_steps
    return runs


METHODS: dict[str, Callable[[MasSettings, list[Problem]], list[ProblemRun]]] = {
    "baseline": run_baseline, "text_mas": run_text_mas, "latent_mas": run_latent_mas}
