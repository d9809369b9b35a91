"""Agent prompts: roles in both variants, text context kept whole, latent prompts without earlier text."""

from kvscope.mas.methods import _sees_context, seeded
from kvscope.mas.problems import Problem
from kvscope.mas.prompts import AGENTS, MODES, agent_user_text, context_block, role_instruction, stacked_user_text


def test_agents_and_order():
    assert [a.role for a in AGENTS] == ["planner", "critic", "refiner", "judger"]
    assert [a.name for a in MODES["hierarchical"]] == ["Math Agent", "Science Agent", "Code Agent", "Summariser"]


def test_every_role_has_its_own_text_and_the_last_agent_asks_for_a_box():
    for mode, team in MODES.items():
        texts = [role_instruction(mode, a.role, latent=False) for a in team]
        assert len(set(texts)) == 4
        assert "\\boxed{}" in texts[-1]
        if mode == "hierarchical":  # every expert solves it; none is told to estimate
            assert all("\\boxed{}" in t and "estimat" not in t for t in texts)
            assert all(t.startswith(f"You are the {a.name.lower()}") for t, a in zip(texts, team))
    assert "hidden working memory" in role_instruction("sequential", "critic", latent=True)
    assert "hidden working memory" not in role_instruction("sequential", "critic", latent=False)


def test_context_is_kept_whole_and_labelled():
    block = context_block([("Planner", "1. add\n"), ("Critic", "fine.")])
    assert block == "[Planner]:\n1. add\n\n[Critic]:\nfine."  # the original's [:-1] slice cut the last char
    text = agent_user_text("sequential", "judger", "What is 2+2?", block)
    assert text.endswith("fine.") and "Question: What is 2+2?" in text


def test_who_reads_earlier_text():
    assert all(_sees_context("sequential", a) for a in AGENTS)
    assert [_sees_context("hierarchical", a) for a in MODES["hierarchical"]] == [False, False, False, True]


def test_stacked_prompts_nest_the_previous_agents_whole_prompt():
    planner = agent_user_text("sequential", "planner", "Q?")
    critic = stacked_user_text(agent_user_text("sequential", "critic", "Q?"), ("Planner", planner))
    refiner = stacked_user_text(agent_user_text("sequential", "refiner", "Q?"), ("Critic", critic))
    assert critic.startswith("The previous agent (Planner) was given this prompt:\n---\n" + planner + "\n---\n")
    assert refiner.count("---") == 4 and planner in refiner and critic in refiner
    assert stacked_user_text("x", None) == "x"


def test_generators_depend_on_problem_role_and_purpose_only():
    p, q = Problem(1, "q", "1"), Problem(2, "q", "1")

    def draw(g):
        return torch_rand(g)

    assert draw(seeded(42, p, "critic")) == draw(seeded(42, p, "critic"))
    values = {draw(seeded(42, x, r, k)) for x in (p, q) for r in ("critic", "judger", "baseline") for k in (0, 1)}
    assert len(values) == 12


def torch_rand(g):
    import torch

    return float(torch.rand(1, generator=g))
