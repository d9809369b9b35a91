"""The four agents and their prompts, in our own words, for any chat-template model.

Agents run in a fixed order: Planner -> Critic -> Refiner -> Judger (LatentMAS, Zou et al., arXiv
2511.20639, Sec. 3). ``sequential`` gives them plan / critique / refine / judge roles; ``hierarchical``
makes the first three domain experts that each solve the problem, and the Judger a summariser. In
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
PROMPT_MODES = ("sequential", "hierarchical")


@dataclass(frozen=True)
class Agent:
    name: str  # display name, e.g. "Planner"
    role: str  # key, e.g. "planner"


AGENTS = (Agent("Planner", "planner"), Agent("Critic", "critic"), Agent("Refiner", "refiner"),
          Agent("Judger", "judger"))

# (mode, role) -> instruction; {latent} says how earlier work arrives in latent_mas.
_ROLES = {
    ("sequential", "planner"): "You are the Planner. Write a short numbered plan for solving the question. "
                               "Do not compute the final answer.",
    ("sequential", "critic"): "You are the Critic. Check the plan{latent} for mistakes or missing steps and "
                              "say briefly how to fix them.",
    ("sequential", "refiner"): "You are the Refiner. Using the plan and the critique{latent}, write a "
                               "corrected, concise plan.",
    ("sequential", "judger"): "You are the Judger. Use the earlier agents' work{latent} if it helps and "
                              "ignore it if it does not. " + ANSWER_TAIL,
    ("hierarchical", "planner"): "You are a math expert. Solve the question. " + ANSWER_TAIL,
    ("hierarchical", "critic"): "You are a careful checker who solves problems by estimating. Solve the "
                                "question. " + ANSWER_TAIL,
    ("hierarchical", "refiner"): "You are a programmer who solves problems by exact calculation. Solve the "
                                 "question. " + ANSWER_TAIL,
    ("hierarchical", "judger"): "You are the summariser. Compare the experts' answers{latent} and decide. "
                                + ANSWER_TAIL,
}
_LATENT_NOTE = " (you receive it as hidden working memory, not as text)"


def role_instruction(mode: str, role: str, latent: bool) -> str:
    """The role text for ``role`` in prompt ``mode``; ``latent`` notes that earlier work is in the cache."""
    return _ROLES[(mode, role)].replace("{latent}", _LATENT_NOTE if latent else "")


def agent_user_text(mode: str, role: str, question: str, context: str = "", latent: bool = False) -> str:
    """The user message: role, question, and (text_mas only) the earlier agents' labelled outputs."""
    parts = [role_instruction(mode, role, latent), f"Question: {question}"]
    if context:
        parts.append(f"Earlier agents' outputs:\n{context}")
    return "\n\n".join(parts)


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
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if id(tokenizer) not in _warned_plain:
        _warned_plain.add(id(tokenizer))
        log.warning("the tokenizer has no chat template; using a plain 'System/User/Assistant' layout")
    return f"System: {system}\n\nUser: {user}\n\nAssistant:"


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt (the template already holds any special tokens)."""
    return list(tokenizer(text, add_special_tokens=False).input_ids)
