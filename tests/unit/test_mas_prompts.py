"""Agent prompts: roles in both variants, text context kept whole, latent prompts without earlier text."""

from kvscope.mas.methods import _sees_context, seeded
from kvscope.mas.prompts import AGENTS, agent_user_text, context_block, role_instruction
from kvscope.mas.tasks import Problem


def test_agents_and_order():
    assert [a.role for a in AGENTS] == ["planner", "critic", "refiner", "judger"]


def test_every_role_has_both_variants_and_the_judger_asks_for_a_box():
    for mode in ("sequential", "hierarchical"):
        texts = [role_instruction(mode, a.role, latent=False) for a in AGENTS]
        assert len(set(texts)) == 4
        assert "\\boxed{}" in texts[-1]
    assert "hidden working memory" in role_instruction("sequential", "critic", latent=True)
    assert "hidden working memory" not in role_instruction("sequential", "critic", latent=False)


def test_context_is_kept_whole_and_labelled():
    block = context_block([("Planner", "1. add\n"), ("Critic", "fine.")])
    assert block == "[Planner]:\n1. add\n\n[Critic]:\nfine."  # the original's [:-1] slice cut the last char
    text = agent_user_text("sequential", "judger", "What is 2+2?", block)
    assert text.endswith("fine.") and "Question: What is 2+2?" in text


def test_who_reads_earlier_text():
    assert all(_sees_context("sequential", a) for a in AGENTS)
    assert [_sees_context("hierarchical", a) for a in AGENTS] == [False, False, False, True]


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
