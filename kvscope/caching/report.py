"""``run_caching``: every measurement behind ``kvscope caching`` in one pure function (no file I/O)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from kvscope.caching.decode import DecodeComparison, GenerationTrace, decode_step, timed_generation
from kvscope.caching.flops import FlopModel, generation_flops
from kvscope.caching.prefix import PrefixReuse, prefix_reuse
from kvscope.caching.projections import LayerProjections, check_layer, hooked_forward, manual_attention
from kvscope.capturing import encode_prompt, token_strings
from kvscope.errors import UsageError

DEFAULT_PROMPT = ("You are a concise geography assistant. Answer in one short sentence. "
                  "Question: What is the capital of France?")
DEFAULT_SECOND_PROMPT = ("You are a concise geography assistant. Answer in one short sentence. "
                         "Question: What is the capital of Germany, and which river runs through it?")
ATTENTION_TOLERANCE = 1e-4  # float32 parity of the hand-made attention with the model's o_proj input


@dataclass
class CachingReport:
    """Everything ``kvscope caching`` measures. Tensors are float32 on CPU.

    ``projections``: the chosen layer on prompt 1; ``probs`` ``[q_head, n, n]`` its attention rebuilt by
    hand; ``decode``: one real cached decode step versus recomputation; ``generation``: greedy traces
    keyed by ``use_cache``; ``work``: counted cumulative FLOPs of those traces; ``prefix``: prompt 2 reusing
    prompt 1's cached prefix.
    """

    info: Any
    layer: int
    tokens: list[str]
    projections: LayerProjections
    probs: torch.Tensor
    manual_vs_model: float
    decode: DecodeComparison
    generation: dict[bool, GenerationTrace]
    work: dict[bool, list[int]]
    prefix: PrefixReuse

    @property
    def generation_tokens_equal(self) -> bool:
        return self.generation[True].tokens == self.generation[False].tokens

    def speedups(self) -> dict[str, float]:
        """Without-cache over with-cache time: last step (longest sequence), decode steps only (median), total."""
        w, wo = self.generation[True].step_seconds, self.generation[False].step_seconds
        rest = slice(1, None) if len(w) > 1 else slice(0, None)
        return {"last_step": wo[-1] / w[-1],
                "median_decode_step": statistics.median(wo[rest]) / statistics.median(w[rest]),
                "total": sum(wo) / sum(w)}

    def gqa(self) -> dict[str, Any]:
        """The q_head -> kv_head map and the KV bytes per token with GQA against MHA (all heads cached)."""
        i = self.info
        mha = i.kv_bytes_per_token * i.q_heads // i.kv_heads
        return {"q_heads": i.q_heads, "kv_heads": i.kv_heads, "group_size": i.group_size,
                "kv_head_of_q_head": [h // i.group_size for h in range(i.q_heads)],
                "kv_bytes_per_token_gqa": i.kv_bytes_per_token, "kv_bytes_per_token_mha": mha,
                "saving_ratio": mha / i.kv_bytes_per_token, "max_positions": i.max_positions,
                "kv_bytes_at_max_positions_gqa": i.kv_bytes_per_token * i.max_positions,
                "kv_bytes_at_max_positions_mha": mha * i.max_positions}

    def to_dict(self) -> dict[str, Any]:
        """Every number for ``caching.json`` (no tensors beyond small lists)."""
        p, d, r = self.projections, self.decode, self.prefix
        shape = lambda t: list(t.shape)  # noqa: E731
        return {
            "model": self.info.to_dict(), "layer": self.layer, "tokens": self.tokens,
            "projections": {"q": shape(p.q_pre), "k": shape(p.k_pre), "v": shape(p.v), "o_proj_input": shape(p.o_in),
                            "layout": "[heads, position, head_dim]", "scaling": p.scaling,
                            "manual_attention_vs_o_proj_input_max_abs": self.manual_vs_model,
                            "tolerance": ATTENTION_TOLERANCE, "matches": self.manual_vs_model <= ATTENTION_TOLERANCE,
                            "key_norm_change_from_rope_max_rel": _norm_change(p.k_pre, p.k_post)},
            "gqa": self.gqa(),
            "decode_step": {"cached_slots_consumed": d.cached_slots_before, "query_rows": d.step_query_rows,
                            "max_abs_diff": d.diffs},
            "generation": {"new_tokens": len(self.generation[True].tokens),
                           "tokens_equal": self.generation_tokens_equal,
                           "tokens": self.generation[True].tokens, "lengths": self.generation[True].lengths,
                           "seconds_per_step_with_cache": self.generation[True].step_seconds,
                           "seconds_per_step_without_cache": self.generation[False].step_seconds,
                           "speedup": self.speedups(),
                           "flops_cumulative_with_cache": self.work[True],
                           "flops_cumulative_without_cache": self.work[False]},
            "prefix_reuse": {"prompt1_tokens": len(r.tokens1), "prompt2_tokens": len(r.tokens2),
                             "shared_prefix_tokens": r.shared, "reused_tokens": r.reused, "flops": r.flops,
                             "logits_max_abs_diff": r.logits_max_abs_diff, "logits_match": r.logits_match,
                             "seconds_fresh": r.seconds_fresh, "seconds_reuse": r.seconds_reuse,
                             "seconds_saved": r.seconds_saved, "seconds_cache_copy": r.seconds_cache_copy},
        }


def _norm_change(pre: torch.Tensor, post: torch.Tensor) -> float:
    """Largest relative change of a key's L2 norm through RoPE (a rotation: ~1e-7 in float32)."""
    a, b = pre.norm(dim=-1), post.norm(dim=-1)
    return float(((a - b).abs() / a.clamp_min(1e-12)).max())


def run_caching(model: Any, tokenizer: Any, info: Any, prompt: str = DEFAULT_PROMPT,
                second_prompt: str = DEFAULT_SECOND_PROMPT, layer: int | None = None, new_tokens: int = 32,
                repeats: int = 3) -> CachingReport:
    """Hook ``layer`` (default: the middle one) on ``prompt``, rebuild its attention by hand, compare one cached
    decode step with recomputation, time greedy decoding of ``new_tokens`` with and without the cache, and
    continue ``second_prompt`` from ``prompt``'s cached prefix. ``prompt`` needs at least 2 tokens."""
    layer = check_layer(info, layer)
    if not 1 <= new_tokens < info.max_positions:
        raise UsageError(f"--new-tokens must be between 1 and {info.max_positions - 1} (the model's max positions)")
    ids1 = encode_prompt(tokenizer, prompt, info.max_positions - new_tokens)
    ids2 = encode_prompt(tokenizer, second_prompt, info.max_positions)
    if ids1.shape[1] < 2:
        raise UsageError("the prompt needs at least 2 tokens (one to cache, one to decode)")
    tokens1 = token_strings(tokenizer, ids1[0].tolist())[0]
    proj, _ = hooked_forward(model, info, ids1, layer, use_cache=False)
    out, probs = manual_attention(proj.q_post, proj.k_post, proj.v, proj.scaling)
    generation = timed_generation(model, ids1, new_tokens, repeats)
    fm = FlopModel.from_model(model, info)
    work = {mode: generation_flops(fm, ids1.shape[1], new_tokens, mode) for mode in (True, False)}
    return CachingReport(
        info=info, layer=layer, tokens=tokens1, projections=proj, probs=probs,
        manual_vs_model=float((out - proj.o_in).abs().max()),
        decode=decode_step(model, info, ids1, layer, tokens1), generation=generation, work=work,
        prefix=prefix_reuse(model, info, ids1, ids2, layer,
                            (tokens1, token_strings(tokenizer, ids2[0].tolist())[0]), repeats=max(3, repeats)))
