# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The KV cache, step by step
#
# A decoder computes a key and a value for every token in every layer. Later tokens need them
# again, so a generation loop keeps them: the **KV cache**. This notebook opens one layer of a
# real model and checks, number by number, what the cache holds and what it saves:
#
# 1. the Q, K, V and O projections of one layer, captured by forward hooks;
# 2. RoPE: the cache stores keys *after* the rotation;
# 3. attention rebuilt by hand (RoPE + the true GQA mapping) equals the model's own;
# 4. one real decode step that consumes the cache, against recomputing everything;
# 5. greedy generation with and without the cache: same tokens, different cost;
# 6. prefix reuse: a second prompt continues from the first one's cached prefix.
#
# Everything runs offline on the embedded SmolLM2-135M-Instruct (a Llama with 9 query heads
# sharing 3 kv_heads), on CPU, in float32.

# %%
import os
from pathlib import Path

import kvscope as ks
from kvscope.attention import causal_attention
from kvscope.caching import decode_step, greedy, hooked_forward, prefix_reuse
from kvscope.compat import output_cache

OUT = Path(os.environ.get("KVSCOPE_DEMO_OUT", "kv_cache_demo_out"))
NEW_TOKENS = int(os.environ.get("KVSCOPE_DEMO_TOKENS", "16"))
model, tokenizer, info = ks.load_model("embedded")
print(
    f"{info.layers} layers, {info.q_heads} q_heads, {info.kv_heads} kv_heads, head_dim {info.head_dim}; "
    f"q_head h reads kv_head h // {info.group_size}"
)

# %% [markdown]
# ## 1. Hook the projections of one layer
# `hooked_forward` registers forward hooks on `q_proj`, `k_proj`, `v_proj` and a pre-hook on
# `o_proj` (its input is the attention output), runs the model once, and removes them.

# %%
PROMPT = "You are a concise geography assistant. Question: What is the capital of France?"
ids = tokenizer(PROMPT, return_tensors="pt").input_ids
LAYER = info.layers // 2
proj, out = hooked_forward(model, info, ids, LAYER, use_cache=True)
for name in ("q_pre", "k_pre", "v", "o_in"):
    print(f"{name:6s} {tuple(getattr(proj, name).shape)}  [heads, position, head_dim]")

# %% [markdown]
# ## 2. RoPE: what the cache really stores
# The keys in the cache are rotated by their position (RoFormer, Su et al. 2021). We rotate the hooked
# keys with the model's own `rotary_emb` and compare with the cache. A rotation keeps each key's norm.

# %%
from kvscope.hfcache import cache_layer_kv  # noqa: E402

cached_keys, cached_values = cache_layer_kv(output_cache(out), LAYER)
print("post-RoPE keys vs cache:", float((proj.k_post - cached_keys[0]).abs().max()))
print("pre-RoPE keys vs cache: ", float((proj.k_pre - cached_keys[0]).abs().max()), "(not what is cached)")
print("norm change through RoPE:", float((proj.k_pre.norm(dim=-1) - proj.k_post.norm(dim=-1)).abs().max()))

# %% [markdown]
# ## 3. Attention by hand
# `softmax(q' k'ᵀ · scale + causal mask) v`, with q_head `h` reading kv_head `h // group`. It must equal
# the o_proj input. Without RoPE (the original demo's mistake) it does not.

# %%
mine, probs = causal_attention(proj.q_post, proj.k_post, proj.v, proj.scaling)
no_rope, _ = causal_attention(proj.q_pre, proj.k_pre, proj.v, proj.scaling)
print("with RoPE, max |Δ| vs o_proj input:   ", float((mine - proj.o_in).abs().max()))
print("without RoPE, max |Δ| vs o_proj input:", float((no_rope - proj.o_in).abs().max()))

# %% [markdown]
# ## 4. One decode step that consumes the cache
# Prefill all tokens but the last into a cache, then feed only the last one: its single query row
# attends to the cached keys. Recomputing the whole prompt must give the same row and logits.

# %%
step = decode_step(model, info, ids, LAYER, [])
print(f"cache held {step.cached_slots_before} slots; the step computed {step.step_query_rows} query row")
for name, value in step.diffs.items():
    print(f"  {name:32s} {value:.1e}")

# %% [markdown]
# ## 5. Greedy generation with and without the cache

# %%
with_cache, without = greedy(model, ids, NEW_TOKENS, True), greedy(model, ids, NEW_TOKENS, False)
print("same tokens:", with_cache.tokens == without.tokens, "->", repr(tokenizer.decode(with_cache.tokens)))
print(f"time: {sum(with_cache.step_seconds):.2f} s with the cache, {sum(without.step_seconds):.2f} s without")

# %% [markdown]
# ## 6. Prefix reuse
# The second prompt shares its beginning with the first. Its first `reused` cache slots are copied
# from the first prompt's cache and only the rest is computed, at the right positions.

# %%
SECOND = "You are a concise geography assistant. Question: What is the capital of Germany?"
ids2 = tokenizer(SECOND, return_tensors="pt").input_ids
reuse = prefix_reuse(model, info, ids, ids2, LAYER, ([], []), repeats=3)
f = reuse.flops
print(
    f"reused {reuse.reused} of {ids2.shape[1]} tokens; FLOPs saved {f['share_total']:.1%} "
    f"(attention triangle: {f['share_attention']:.1%})"
)
print(
    f"logits vs a fresh run: max |Δ| = {reuse.logits_max_abs_diff:.1e}; "
    f"time {reuse.seconds_fresh * 1e3:.0f} ms fresh, {reuse.seconds_reuse * 1e3:.0f} ms reusing"
)

# %% [markdown]
# ## All figures at once
# `ks.explain_caching` does all of the above (and times it with repeats); `report.save` writes the six
# figures and `caching.json` that `kvscope caching` writes, and the report shows itself in a notebook.

# %%
report = ks.explain_caching(model, tokenizer, PROMPT, SECOND, layer=LAYER, new_tokens=NEW_TOKENS, repeats=1)
for path in report.save(OUT):
    print(path)
assert report.manual_vs_model < 1e-4 and report.generation_tokens_equal and report.prefix.logits_match
