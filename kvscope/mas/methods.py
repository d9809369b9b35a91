"""The three methods, each run on a batch of problems: ``baseline``, ``text_mas`` and ``latent_mas``.

- ``baseline``: one agent answers.
- ``text_mas``: the four agents each decode text; later agents read the earlier agents' text (in the
  hierarchical variant only the Judger does). No KV is reused.
- ``latent_mas`` (Zou et al., arXiv 2511.20639, Alg. 1): each non-deciding agent appends its prompt, then
  runs ``latent_steps`` steps that feed the realigned last hidden state back as one input embedding (one
  new slot each). Sequential: one shared cache, each agent reads all earlier slots. Hierarchical (the
  paper's Fig. 2): the three experts think in separate caches from the question alone, then the caches
  are joined in time for the Summariser. Only the last agent decodes text. Optionally the cache is
  kNN-filtered, and its similarity to the incoming agent recorded, at each agent transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from kvscope.decode import Sampler
from kvscope.mas.answers import extract_answer, is_correct
from kvscope.mas.config import MasConfig
from kvscope.mas.engine import CacheState, Sampling, append_ids, concat_states, decode, forward
from kvscope.mas.knn import all_layer_similarity, fold_query, knn_filter, prompt_query, reuse_positions
from kvscope.mas.problems import Problem
from kvscope.mas.prompts import (
    MODES,
    Agent,
    agent_user_text,
    agents,
    baseline_user_text,
    context_block,
    encode,
    render,
    stacked_user_text,
)
from kvscope.mas.realign import Realigner, realigner


@dataclass
class MasSettings:
    """A model, its tokenizer and facts, and the run's :class:`MasConfig` (its fields read through)."""

    model: Any
    tokenizer: Any
    info: Any
    config: MasConfig = field(default_factory=MasConfig)
    _realigner: Realigner | None = field(default=None, repr=False)
    _stops_pad: tuple[frozenset[int], int] | None = field(default=None, repr=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "config":
            raise AttributeError(name)
        return getattr(self.config, name)

    def get_realigner(self) -> Realigner:
        if self._realigner is None:
            self._realigner = realigner(self.model, self.realign)
        return self._realigner

    def stops_and_pad(self) -> tuple[frozenset[int], int]:
        """The ids that end an agent's text and the padding id, looked up once (the tokenizer's whole
        vocabulary is built to find ``<|im_end|>``, about a tenth of a second each time)."""
        if self._stops_pad is None:
            self._stops_pad = _stops_and_pad(self.model, self.tokenizer)
        return self._stops_pad


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
    before: Transition | None = None  # the same, before kNN filtering (when filtering was on)


@dataclass
class ProblemRun:
    """One problem under one method; ``seconds`` is the batch's wall time divided by its size."""

    method: str
    problem: Problem
    text: str
    agents: list[AgentTrace]
    seconds: float = 0.0
    latent_seconds: float = 0.0  # latent_mas: prompt prefills + latent steps of the non-deciding agents
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
    roles = [a.role for a in MODES["sequential"]] + ["baseline"] + [a.role for a in MODES["hierarchical"]]
    return torch.Generator().manual_seed(seed * 1_000_003 + problem.index * 101 + roles.index(role) * 2 + purpose)


def _stops_and_pad(model: Any, tok: Any) -> tuple[frozenset[int], int]:
    stops = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    stops |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
    end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    stops |= {end} if end is not None else set()
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    return frozenset(stops), pad


def _sampling(s: MasSettings, problems: list[Problem], role: str) -> Sampling:
    stops, pad = s.stops_and_pad()
    sampler = Sampler(s.temperature, s.top_k, s.top_p)
    return Sampling(s.max_new_tokens, sampler, [seeded(s.seed, p, role) for p in problems], stops, pad)


def _generate(
    s: MasSettings, problems: list[Problem], prompts: list[list[int]], role: str, state: CacheState | None = None
) -> list[list[int]]:
    """Append ``prompts`` (one per row) to ``state`` (a fresh cache if None) and decode."""
    sampling = _sampling(s, problems, role)
    state = state if state is not None else CacheState.empty(s.model, len(problems))
    first = append_ids(s.model, state, prompts, f"{role}:prompt", sampling.pad_id)
    return decode(s.model, state, first, sampling, f"{role}:output")


def _text(s: MasSettings, ids: list[int]) -> str:
    return s.tokenizer.decode(ids, skip_special_tokens=True).strip()


def _encode(s: MasSettings, user: str) -> list[int]:
    return encode(s.tokenizer, render(s.tokenizer, user))


def run_baseline(s: MasSettings, problems: list[Problem]) -> list[ProblemRun]:
    prompts = [_encode(s, baseline_user_text(p.question)) for p in problems]
    outs = _generate(s, problems, prompts, "baseline")
    return [
        ProblemRun("baseline", p, _text(s, o), [AgentTrace("baseline", len(ids), len(o), output=_text(s, o))])
        for p, ids, o in zip(problems, prompts, outs)
    ]


def _sees_context(prompt: str, agent: Agent) -> bool:
    return prompt == "sequential" or agent == MODES[prompt][-1]


def run_text_mas(s: MasSettings, problems: list[Problem]) -> list[ProblemRun]:
    earlier: list[list[tuple[str, str]]] = [[] for _ in problems]
    traces: list[list[AgentTrace]] = [[] for _ in problems]
    for agent in agents(s.prompt):
        prompts = []
        for row, p in enumerate(problems):
            ctx = context_block(earlier[row]) if _sees_context(s.prompt, agent) else ""
            prompts.append(_encode(s, agent_user_text(s.prompt, agent.role, p.question, ctx)))
        outs = _generate(s, problems, prompts, agent.role)
        for row, (ids, o) in enumerate(zip(prompts, outs)):
            text = _text(s, o)
            earlier[row].append((agent.name, text))
            traces[row].append(AgentTrace(agent.role, len(ids), len(o), output=text))
    return [ProblemRun("text_mas", p, t[-1].output, t) for p, t in zip(problems, traces)]


def _latent_steps(s: MasSettings, state: CacheState, hidden: torch.Tensor, role: str) -> None:
    """``latent_steps`` times: realign the last hidden state ``[B, hidden]`` and append it as one embedding.

    The decoder runs without the vocabulary head: nothing reads a latent step's logits.
    """
    align = s.get_realigner()
    dtype = next(s.model.parameters()).dtype
    real = torch.ones(state.batch, 1, dtype=torch.bool)
    for _ in range(s.latent_steps):
        embeds = align(hidden).to(dtype=dtype)[:, None, :]
        hidden = forward(s.model, state, real, f"{role}:latent", embeds=embeds, want="hidden").hidden


def _think(s: MasSettings, state: CacheState, prompts: list[list[int]], agent: Agent) -> float:
    """Append an agent's prompt and run its latent steps; returns the seconds it took."""
    t0 = time.perf_counter()
    first = append_ids(s.model, state, prompts, f"{agent.role}:prompt", s.stops_and_pad()[1], want="hidden")
    _latent_steps(s, state, first.hidden, agent.role)
    return time.perf_counter() - t0


def _similarities(s: MasSettings, state: CacheState, row: int, query: torch.Tensor, name: str) -> Transition:
    slots = state.real_slots(row).tolist()
    return Transition(
        name,
        all_layer_similarity(state, row, query, s.info.layers),
        [state.labels[row][i] for i in slots],
        [int(state.positions[row, i]) for i in slots],
    )


def _transition(
    s: MasSettings, state: CacheState, runs: list[ProblemRun], prompts: list[list[int]], prev: str, agent: Agent
) -> CacheState:
    """Before ``agent`` reads the cache: record similarities (if asked), kNN-filter it (if asked), record
    the similarities of what is left. ``prev`` names the agent(s) that filled the cache."""
    if s.knn is None and not s.similarities:
        return state
    name = f"{prev}_to_{agent.role}"
    queries = [fold_query(prompt_query(s.model, ids), s.info.head_dim) for ids in prompts]
    before = [_similarities(s, state, r, q, name) if s.similarities and s.knn else None for r, q in enumerate(queries)]
    if s.knn is not None:
        gens = [seeded(s.seed, r.problem, agent.role, purpose=1) for r in runs]
        state, event = knn_filter(s.model, state, queries, s.knn, s.info.layers, gens)
        if s.knn_positions == "reuse":
            state = reuse_positions(state)
        for row, run in enumerate(runs):
            run.knn_events.append(
                {"transition": name, **{k: (v[row] if isinstance(v, list) else v) for k, v in event.items()}}
            )
    if s.similarities:
        for row, run in enumerate(runs):
            run.transitions.append(_similarities(s, state, row, queries[row], name))
            run.transitions[-1].before = before[row]
    return state


def _user_texts(
    s: MasSettings, problems: list[Problem], agent: Agent, previous: list[tuple[str, str] | None]
) -> list[str]:
    texts = [agent_user_text(s.prompt, agent.role, p.question, latent=True) for p in problems]
    if s.include_old_prompts:
        texts = [stacked_user_text(t, prev) for t, prev in zip(texts, previous)]
    return texts


def _note_agent(
    s: MasSettings, runs: list[ProblemRun], state: CacheState | None, agent: Agent, prompts: list[list[int]]
) -> None:
    for row, (run, ids) in enumerate(zip(runs, prompts)):
        run.agents.append(
            AgentTrace(
                agent.role,
                len(ids),
                kv_bytes_in=state.row_nbytes(row, s.info.layers) if state else 0,
                cache_slots_in=int(state.real_slots(row).numel()) if state else 0,
                latent_steps=0 if agent == agents(s.prompt)[-1] else s.latent_steps,
            )
        )


def run_experts(s: MasSettings, problems: list[Problem], runs: list[ProblemRun]) -> tuple[list[CacheState], float]:
    """Hierarchical latent_mas: each expert thinks from the question alone, in its own cache.

    Expert ``i`` starts at the position where expert ``i - 1`` ended, so the joined cache has distinct,
    increasing true positions while each expert attended only to its own slots (RoPE attention depends
    on relative positions only). Returns the experts' caches and the seconds they took.
    """
    parts, seconds = [], 0.0
    start = torch.zeros(len(problems), dtype=torch.int64)
    for agent in agents(s.prompt)[:-1]:
        prompts = [_encode(s, t) for t in _user_texts(s, problems, agent, [None] * len(problems))]
        _note_agent(s, runs, None, agent, prompts)
        state = CacheState.empty(s.model, len(problems))
        state.lengths = start.clone()
        seconds += _think(s, state, prompts, agent)
        start = state.lengths
        parts.append(state)
    return parts, seconds


def run_latent_mas(s: MasSettings, problems: list[Problem]) -> list[ProblemRun]:
    runs = [ProblemRun("latent_mas", p, "", []) for p in problems]
    team = agents(s.prompt)
    if s.prompt == "hierarchical":
        parts, seconds = run_experts(s, problems, runs)
        state, prev = concat_states(s.model, parts, s.info.layers), "experts"
    else:
        state, seconds, previous = CacheState.empty(s.model, len(problems)), 0.0, [None] * len(problems)
        for i, agent in enumerate(team[:-1]):
            users = _user_texts(s, problems, agent, previous)
            prompts = [_encode(s, t) for t in users]
            if i > 0:
                state = _transition(s, state, runs, prompts, team[i - 1].role, agent)
            _note_agent(s, runs, state, agent, prompts)
            seconds += _think(s, state, prompts, agent)
            previous = [(agent.name, u) for u in users]
        prev = team[-2].role
    judge = team[-1]
    prompts = [
        _encode(s, t)
        for t in _user_texts(s, problems, judge, previous if s.prompt == "sequential" else [None] * len(problems))
    ]
    state = _transition(s, state, runs, prompts, prev, judge)
    _note_agent(s, runs, state, judge, prompts)
    outs = _generate(s, problems, prompts, judge.role, state)
    for run, o in zip(runs, outs):
        run.text = run.agents[-1].output = _text(s, o)
        run.agents[-1].generated_tokens = len(o)
        run.latent_seconds = seconds / len(problems)
    return runs


METHODS: dict[str, Callable[[MasSettings, list[Problem]], list[ProblemRun]]] = {
    "baseline": run_baseline,
    "text_mas": run_text_mas,
    "latent_mas": run_latent_mas,
}
