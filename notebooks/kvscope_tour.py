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
# # A tour of kvscope
#
# kvscope is a library first: every capability is a plain function that takes a model and tokenizer you
# already loaded and returns a result object that shows itself in a notebook. This tour:
#
# 1. loads the embedded SmolLM2-135M-Instruct (offline, CPU, float32);
# 2. captures its KV cache for a paragraph (post-RoPE keys and values, and the attention each key receives);
# 3. analyzes the snapshot and shows three of its figures inline;
# 4. evicts half of the cache with two strategies and compares the perplexity of a continuation;
# 5. sizes the GPU memory of a large model with the calculator.
#
# Any Hugging Face causal LM works in place of the embedded model: `AutoModelForCausalLM.from_pretrained(...)`
# and its tokenizer go straight into `ks.capture`, `ks.analyze` and `ks.compare_pruning`.

# %%
import kvscope as ks

model, tokenizer, info = ks.load_model("embedded")
print(f"model: {info.layers} layers, {info.q_heads} q_heads, {info.kv_heads} kv_heads, head_dim {info.head_dim}")

# %% [markdown]
# ## 1. Capture the KV cache
# One forward pass. The snapshot holds, per layer, keys and values laid out `[kv_head, position, head_dim]`,
# exactly as the model cached them, plus the attention each key received (summed over queries and q_heads).

# %%
TEXT = (
    "On a cold morning in March, Dr. Amara Okafor walked into the small library in Lisbon with 3 notebooks "
    "and a question: why do some words matter more than others? Her colleague had counted 1,482 sentences "
    "by hand and found that 'the', 'of' and 'and' appeared in almost all of them."
)
snap = ks.capture(model, tokenizer, TEXT, attention=True, queries=True)
print("snapshot:", repr(snap))
snap

# %% [markdown]
# ## 2. Analyze it
# `ks.analyze` runs every analysis in memory and returns figures (matplotlib), metrics and a verdict; no file is
# written unless you call `result.save("out/")`, which writes what `kvscope analyze` writes.

# %%
result = ks.analyze(snap, model=model)
print("figures:", len(result.figures))
print("verdict:", result.verdict)
result

# %% [markdown]
# Which tokens hold the least in the cache (the candidates an eviction would drop first)?

# %%
result.figures["low_importance_tokens"]

# %% [markdown]
# How keys and values differ across layers:

# %%
result.figures["kv_cache_layers"]

# %% [markdown]
# What each head attends to (recomputed from captured queries and keys):

# %%
result.figures["head_specialization"]

# %% [markdown]
# ## 3. Evict half of the cache, two ways
# `ks.compare_pruning` prefills the prompt, evicts the cache with a strategy, then scores a continuation with
# the full cache and with the evicted one. Perplexity tells what the eviction cost on this one text: an example,
# not a ranking (on a short text an eviction can even lower it). `kvscope bench` ranks strategies over many
# samples, with intervals.

# %%
PROMPT = TEXT
CONTINUATION = " Her colleague had counted 1,482 sentences by hand."
pruned = {
    name: ks.compare_pruning(model, tokenizer, PROMPT, CONTINUATION, strategy=name, ratio=0.5, repeats=1)
    for name in ("snapkv", "streaming")
}
for name, lab in pruned.items():
    print(f"{name}: perplexity {lab.baseline.ppl:.3f} with the full cache, {lab.pruned.ppl:.3f} with half of it")
pruned["snapkv"]

# %% [markdown]
# The same strategies run inside your own `model.generate` with `ks.compress`: here StreamingLLM (4 sink tokens
# + the most recent) holds the cache to 32 tokens per layer and kv_head at every step while the model writes.

# %%
inputs = tokenizer(PROMPT, return_tensors="pt")
with ks.compress(model, "streaming", budget=32) as c:
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
print(f"ks.compress: {c.stats.max_held} tokens held at most, {tokenizer.decode(out[0, inputs.input_ids.shape[1] :])!r}")

# %% [markdown]
# ## 4. Size the memory of a large model
# The calculator needs no weights: it reads the architecture from its catalog (or a `config.json`).

# %%
memory = ks.estimate_memory("llama-3.1-70b", "h100-sxm", batch=8, context=32768)
print("memory:", repr(memory))
memory
