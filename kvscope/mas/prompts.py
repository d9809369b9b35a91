"""The four agents and their prompts, in our own words, for any chat-template model.

Agents run in a fixed order (LatentMAS, Zou et al., arXiv 2511.20639, Sec. 3). ``sequential``: Planner ->
Critic -> Refiner -> Judger. ``hierarchical``: a math, a science and a code agent each solve the problem
from the question alone, and a Summariser decides. In
``latent_mas`` an agent's prompt never holds earlier agents' text (that arrives as KV cache); in
``text_mas`` it does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kvscope")

SYSTEM = "You are a careful assistant who solves math word problems one step at a time."
ANSWER_TAIL = "Reason step by step, then give the final answer as a single number inside \\boxed{}."


@dataclass(frozen=True)
class Agent:
    name: str  # display name, e.g. "Planner"
    role: str  # key, unique across modes, e.g. "planner"


# Sequential: a chain of plan -> critique -> refine -> judge. Hierarchical (the paper's Fig. 2): three
# domain experts solve the question independently, a summariser decides; each name says what it is.
MODES: dict[str, tuple[Agent, ...]] = {
    "sequential": (
        Agent("Planner", "planner"),
        Agent("Critic", "critic"),
        Agent("Refiner", "refiner"),
        Agent("Judger", "judger"),
    ),
    "hierarchical": (
        Agent("Math Agent", "math"),
        Agent("Science Agent", "science"),
        Agent("Code Agent", "code"),
        Agent("Summariser", "summariser"),
    ),
}
AGENTS = MODES["sequential"]
ROLE_NAMES = {a.role: a.name for agents in MODES.values() for a in agents}

# role -> instruction; {latent} says how earlier work arrives in latent_mas.
_ROLES = {
    "planner": "You are the Planner. Write a short numbered plan for solving the question. "
    "Do not compute the final answer.",
    "critic": "You are the Critic. Check the plan{latent} for mistakes or missing steps and "
    "say briefly how to fix them.",
    "refiner": "You are the Refiner. Using the plan and the critique{latent}, write a corrected, concise plan.",
    "judger": "You are the Judger. Use the earlier agents' work{latent} if it helps and "
    "ignore it if it does not. " + ANSWER_TAIL,
    "math": "You are the math agent. Solve the question with arithmetic and algebra. " + ANSWER_TAIL,
    "science": "You are the science agent. Solve the question by tracking every quantity and its unit. " + ANSWER_TAIL,
    "code": "You are the code agent. Solve the question as a programmer would: name each quantity, compute "
    "it exactly, step by step. " + ANSWER_TAIL,
    "summariser": "You are the summariser. Compare the three experts' solutions{latent} and give the answer "
    "you judge correct. " + ANSWER_TAIL,
}
_LATENT_NOTE = " (you receive it as hidden working memory, not as text)"


def agents(mode: str) -> tuple[Agent, ...]:
    """The four agents of prompt ``mode``, in order; the last one decodes the answer."""
    return MODES[mode]


def role_instruction(mode: str, role: str, latent: bool) -> str:
    """The role text for ``role`` (a role of ``mode``); ``latent`` notes that earlier work is in the cache."""
    if role not in {a.role for a in MODES[mode]}:
        raise KeyError(f"role {role!r} is not part of the {mode} agents")
    return _ROLES[role].replace("{latent}", _LATENT_NOTE if latent else "")


def agent_user_text(mode: str, role: str, question: str, context: str = "", latent: bool = False) -> str:
    """The user message: role, question, and (text_mas only) the earlier agents' labelled outputs."""
    parts = [role_instruction(mode, role, latent), f"Question: {question}"]
    if context:
        parts.append(f"Earlier agents' outputs:\n{context}")
    return "\n\n".join(parts)


def stacked_user_text(user: str, previous: tuple[str, str] | None) -> str:
    """The kNN fork's ``--include_old_prompts``: ``user`` preceded by the previous agent's whole prompt
    (``(name, its user text)``, which itself holds the one before), fenced by ``---`` lines."""
    if previous is None:
        return user
    name, text = previous
    return f"The previous agent ({name}) was given this prompt:\n---\n{text}\n---\n\n{user}"


def baseline_user_text(question: str) -> str:
    return f"Question: {question}\n\n{ANSWER_TAIL}"


def context_block(outputs: list[tuple[str, str]]) -> str:
    """``[Name]:\\ntext`` blocks of earlier agents, in order, kept whole (no character is cut)."""
    return "\n\n".join(f"[{name}]:\n{text.strip()}" for name, text in outputs)


_warned_plain: set[int] = set()


def render(tokenizer: Any, user: str, system: str = SYSTEM) -> str:
    """The chat prompt as text, ending where the assistant starts to write.

    A tokenizer without a chat template gets a plain ``System:/User:/Assistant:`` layout, with a warning.
    """
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if getattr(tokenizer, "chat_template", None):
        from jinja2.exceptions import TemplateError

        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError:  # e.g. Gemma's template rejects the system role: merge it into the user turn
            merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
            return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    if id(tokenizer) not in _warned_plain:
        _warned_plain.add(id(tokenizer))
        log.warning("the tokenizer has no chat template; using a plain 'System/User/Assistant' layout")
    return f"System: {system}\n\nUser: {user}\n\nAssistant:"


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt (the template already holds any special tokens)."""
    return list(tokenizer(text, add_special_tokens=False).input_ids)
