"""GPU memory of LLM inference: the one place where kvscope's memory numbers are defined.

``web/formulas.js`` mirrors every function here and in ``budget`` (capacity, GPUs required, the vLLM
budget, ``compute``) line for line (the page and the CLI must agree;
``tests/integration/test_memory_browser.py`` evaluates shared test vectors in chromium). Both work on
plain dicts: a *model* and a *gpu* are entries of ``data/models.json`` / ``data/gpus.json`` and the
options are ``DEFAULTS`` updated by the caller. Bytes are exact counts; GiB = 2**30 bytes, GB = 10**9.

Definitions (references in brackets):

- KV bytes per token and layer: ``2 * kv_heads * vec(head_dim)`` for GQA/MHA/MQA, ``vec(rank + rope)``
  for multi-head latent attention, where ``vec(n)`` is the bytes of an ``n``-element vector in the KV
  dtype including its quantisation scales [DeepSeek-V2, arXiv 2405.04434; KIVI, arXiv 2402.02750].
  Sliding-window layers hold at most ``window`` tokens when the engine frees older ones; linear-attention
  layers keep no per-token KV (their constant state is not counted).
- Weights: ``params_total * bits(weight dtype) / 8``; every MoE expert is resident. Active params only
  set the bytes read per decode step.
- Workload: request ``k`` has ``ceil(context * r_k)`` tokens with ``r_k = 0.1 + 0.9 * frac((k+1)/phi)``,
  lengths spread evenly over 10-100 % of the context. One step adds one token to every running request.
  *static*: the run is a series of batches of ``batch`` requests (``jB .. jB + B - 1``); a batch ends when
  its longest request does and the next one starts the step after. Every slot reserves ``context`` tokens,
  and the tokens of a finished request that the slot still holds are waste (they serve no request),
  exactly like the reserved-but-empty rest of the slot. At batch 1 this is continuous batching. *cb* (continuous
  batching, Orca, OSDI'22): a slot admits the next request (``k + batch``) the step after its request
  finishes; each admitted request still reserves ``context``.
  *paged* (vLLM PagedAttention, Kwon et al., SOSP'23): cb scheduling, KV held in ``page``-token pages,
  the last page rounded up.
- Capacity (``budget.capacity``): ``kv_full`` is every slot holding ``context`` tokens ("KV for batch
  x context", what a fixed batch must be able to hold); ``kv_peak`` is the most KV the synthetic
  workload ever reserves (the same for static and cb, which reserve up front; for paged the largest page
  total, and never less than one request of the full ``context``: the longest request the workload
  allows, which vLLM refuses to start without). GPUs required come from the peak and count a GPU as full
  at ``gpu_memory_utilization`` (0.9, vLLM's default) of the memory nvidia-smi shows, leaving the rest
  for activations, the Flash workspace and the CUDA context; the step state is only the animated view.
- Memory efficiency: KV bytes holding tokens of running requests / KV bytes reserved (equal to the slot
  ratio when all layers store the same bytes per token). Kwon et al. measured 20.4-38.2 % before paging,
  < 4 % waste with.
- FlashAttention [Dao et al., arXiv 2205.14135; FA-2, arXiv 2307.08691]: without it, prefill
  materialises ``batch * q_heads * N**2`` scores in one layer at a time (transient, never resident);
  with it only the fp32 log-sum-exp ``batch * q_heads * N * 4`` bytes reach HBM.
- Tensor parallelism: a rank stores ``ceil(kv_heads / tp)`` kv_heads, one head (replicated) when
  ``tp > kv_heads``, and the whole MLA latent (it cannot be split).
- Decode bound: tokens/s <= bandwidth / bytes read per step (weights of active params + live KV).
"""

from __future__ import annotations

import math
from typing import Any

GIB = 2**30
MIB = 2**20
PHI_INV = 0.6180339887498949
MAX_BATCH = 4096
MAX_CONTEXT = 10_000_000
MAX_TP = 1024

# bits per element; per: "tensor" (one scale per tensor: no per-token bytes), "vector" (one scale per
# kv_head and token) or "group" (one scale (+ zero point) per `group` elements).
KV_DTYPES: dict[str, dict[str, Any]] = {
    "fp32": {"bits": 32, "per": "tensor", "group": 0, "scale_bytes": 0, "label": "FP32"},
    "bf16": {"bits": 16, "per": "tensor", "group": 0, "scale_bytes": 0, "label": "BF16"},
    "fp16": {"bits": 16, "per": "tensor", "group": 0, "scale_bytes": 0, "label": "FP16"},
    "fp8": {"bits": 8, "per": "tensor", "group": 0, "scale_bytes": 0, "label": "FP8 (per-tensor scale)"},
    "int8": {"bits": 8, "per": "vector", "group": 0, "scale_bytes": 2, "label": "INT8 (fp16 scale per head, token)"},
    "int4": {"bits": 4, "per": "group", "group": 32, "scale_bytes": 4, "label": "INT4 (fp16 scale + zero per 32)"},
}
# bits per weight, scales included (int4: fp16 scale and zero per group of 128 -> 4.25 bits).
WEIGHT_DTYPES: dict[str, dict[str, Any]] = {
    "fp32": {"bits": 32, "label": "FP32"},
    "bf16": {"bits": 16, "label": "BF16"},
    "fp16": {"bits": 16, "label": "FP16"},
    "fp8": {"bits": 8, "label": "FP8"},
    "int8": {"bits": 8, "label": "INT8"},
    "int4": {"bits": 4.25, "label": "INT4 (g128 scale+zero)"},
}
MODES = {
    "static": "static batching, max context reserved per slot",
    "cb": "continuous batching, max context reserved per request",
    "paged": "continuous batching + paged KV (PagedAttention)",
}
# vLLM's start-up budget (vllm/worker/gpu_worker.py, determine_available_memory). non_torch_gib: CUDA
# context, cuBLAS workspace and other memory outside torch's allocator (0.25-0.35 GiB in logged start-ups);
# comm_gib: NCCL / custom all-reduce buffers on each rank when tp > 1 (estimate); cuda_graph_gib: graph
# capture, subtracted from the budget by vLLM >= 0.11 (older versions captured after sizing the cache: 0).
ENGINES = {
    "vllm": {
        "block_size": 16,
        "non_torch_gib": 0.35,
        "comm_gib": 0.125,
        "cuda_graph_gib": 0.5,
        "driver_reserve_mib": 450,
    }
}
ENGINE_LIMITS = {
    "gpu_memory_utilization": (0.01, 1.0),
    "max_num_batched_tokens": (1, 10_000_000),
    "max_num_seqs": (1, 65_536),
    "activation_gib": (0.0, 1e6),
    "cuda_graph_gib": (0.0, 1e6),
}
DEFAULTS: dict[str, Any] = {
    "batch": 8,
    "context": 8192,
    "tokens": None,
    "kv_dtype": "bf16",
    "weight_dtype": None,  # None: as the model ships (default_weight_dtype), filled in by compute
    "mode": "paged",
    "flash": True,
    "tp": 1,
    "page": 16,
    "free_sliding": True,
    "engine": None,
    "activation_gib": None,
    "gpu_memory_utilization": 0.9,
    "max_num_batched_tokens": 8192,
    "max_num_seqs": 256,
    "cuda_graph_gib": None,
}
PAPER_BAND = {"used_before_paging": [0.204, 0.382], "waste_with_paging_below": 0.04}


def vec_bytes(n: int, kv_dtype: str) -> int:
    """Bytes of one ``n``-element K (or V, or MLA latent) vector in ``kv_dtype``, scales included."""
    d = KV_DTYPES[kv_dtype]
    scales = {
        "tensor": 0,
        "vector": d["scale_bytes"],
        "group": math.ceil(n / d["group"]) * d["scale_bytes"] if d["group"] else 0,
    }[d["per"]]
    return math.ceil(n * d["bits"] / 8) + scales


def layer_bytes_per_token(model: dict, kv_dtype: str) -> int:
    """KV bytes one token adds to one attention layer (all kv_heads)."""
    mla = model.get("mla")
    if mla:
        return vec_bytes(mla["rank"] + mla["rope"], kv_dtype)
    return 2 * model["kv_heads"] * vec_bytes(model["head_dim"], kv_dtype)


def kv_bytes_per_token(model: dict, kv_dtype: str) -> int:
    """KV bytes one token adds over all attention layers (full + sliding), before any window cap."""
    lt = model["layer_types"]
    return (lt["full"] + lt["sliding"]) * layer_bytes_per_token(model, kv_dtype)


def window_tokens(model: dict, n: int, free_sliding: bool = True) -> int:
    """Tokens a sliding layer holds when a sequence has ``n``: ``min(n, window)`` if freed."""
    w = model.get("sliding_window")
    return min(n, w) if (free_sliding and w) else n


def seq_kv_bytes(model: dict, kv_dtype: str, n: int, free_sliding: bool = True) -> int:
    """KV bytes of one sequence of ``n`` tokens (sliding layers capped at the window when freed)."""
    lt = model["layer_types"]
    return layer_bytes_per_token(model, kv_dtype) * (
        lt["full"] * n + lt["sliding"] * window_tokens(model, n, free_sliding)
    )


def default_weight_dtype(model: dict) -> str:
    """The dtype a model's weights ship in: its catalog ``weight_dtype`` (DeepSeek-V3: fp8), else bf16."""
    return model.get("weight_dtype") or "bf16"


def weight_bytes(params: int, weight_dtype: str) -> int:
    """Bytes of ``params`` weights stored in ``weight_dtype``."""
    return math.ceil(params * WEIGHT_DTYPES[weight_dtype]["bits"] / 8)


def kv_share(model: dict, tp: int) -> float:
    """Fraction of the model's KV that one of ``tp`` ranks stores (replication included)."""
    if model.get("mla"):
        return 1.0
    kv = model["kv_heads"]
    return math.ceil(kv / tp) / kv if tp <= kv else 1 / kv


def pages(n: int, page: int) -> int:
    """Tokens reserved for ``n`` tokens in ``page``-token pages (last page rounded up)."""
    return math.ceil(n / page) * page


def request_length(k: int, context: int) -> int:
    """Total tokens of request ``k`` of the workload (10-100 % of ``context``)."""
    r = 0.1 + 0.9 * (((k + 1) * PHI_INV) % 1)
    return max(1, min(context, math.ceil(context * r)))


def static_round(step: int, batch: int, context: int) -> tuple[int, int]:
    """(j, start): the static batch running at ``step`` (requests ``j*batch ..``) and its first step.
    A batch lasts as long as its longest request; the next starts the step after."""
    starts = _static_starts(batch, context)
    j = max(i for i, first in enumerate(starts) if first <= max(step, 1))
    return j, starts[j]


def slot_at(slot: int, step: int, batch: int, context: int, mode: str, rnd: tuple[int, int] | None = None) -> dict:
    """State of ``slot`` after ``step`` steps: tokens held, request id, requests finished in it, and
    ``idle``: the request finished and its tokens wait for the batch to end (static only; ``rnd`` is
    ``static_round(step, ...)`` when the caller has it)."""
    if mode == "static":
        j, start = rnd or static_round(step, batch, context)
        k = j * batch + slot
        n, ran = request_length(k, context), step - start + 1
        return {"tokens": max(0, min(ran, n)), "request": k, "done": j + (1 if ran >= n else 0), "idle": ran > n}
    k, start, done = slot, 1, 0
    while True:
        n = request_length(k, context)
        if step < start + n:
            return {"tokens": max(0, step - start + 1), "request": k, "done": done, "idle": False}
        start, k, done = start + n, k + batch, done + 1


def _sum_to(m: int) -> int:
    return m * (m + 1) // 2


def _sum_window(m: int, w: int | None) -> int:
    """sum_{j=1..m} min(j, w)."""
    return _sum_to(m) if (not w or m <= w) else _sum_to(w) + (m - w) * w


def _sum_pages(m: int, w: int | None, page: int) -> int:
    """sum_{j=1..m} pages(min(j, w), page)."""
    if w and m > w:
        return _sum_pages(w, None, page) + (m - w) * pages(w, page)
    q, r = divmod(m, page)
    return page * page * q * (q + 1) // 2 + r * (q + 1) * page


def slot_bytes(model: dict, opts: dict, n: int, idle: bool = False) -> tuple[int, int]:
    """(real, reserved) KV bytes of one slot holding ``n`` tokens under ``opts['mode']``; an ``idle``
    slot (a finished request held until the static batch ends) holds no real tokens."""
    lt, lb = model["layer_types"], layer_bytes_per_token(model, opts["kv_dtype"])
    free = opts["free_sliding"]
    w = model.get("sliding_window") if free else None
    real = 0 if idle else lb * (lt["full"] * n + lt["sliding"] * (min(n, w) if w else n))
    if opts["mode"] == "paged":
        p = opts["page"]
        return real, lb * (lt["full"] * pages(n, p) + lt["sliding"] * pages(min(n, w) if w else n, p))
    cap = opts["context"]
    return real, lb * (lt["full"] * cap + lt["sliding"] * (min(cap, w) if w else cap))


def run_efficiency(model: dict, opts: dict) -> float:
    """Efficiency summed over steps 1..context (token-steps real / token-steps reserved)."""
    lt, lb = model["layer_types"], layer_bytes_per_token(model, opts["kv_dtype"])
    w = model.get("sliding_window") if opts["free_sliding"] else None
    T, B, mode = opts["context"], opts["batch"], opts["mode"]
    real = reserved = 0
    rounds = _static_starts(B, T) if mode == "static" else []
    for s in range(B):
        k, start, j = s, 1, 0
        while start <= T:
            n = request_length(k, T)
            m = min(n, T - start + 1)
            real += lt["full"] * _sum_to(m) + lt["sliding"] * _sum_window(m, w)
            if mode == "paged":
                reserved += lt["full"] * _sum_pages(m, None, opts["page"]) + lt["sliding"] * _sum_pages(
                    m, w, opts["page"]
                )
            if mode == "static":  # held after it finished (reserved, not real) until the next batch
                j += 1
                start = rounds[j] if j < len(rounds) else T + 1
            else:
                start = start + n
            k += B
        if mode != "paged":
            reserved += T * (lt["full"] * T + lt["sliding"] * (min(T, w) if w else T))
    return (lb * real) / (lb * reserved) if reserved else 0.0


def _static_starts(batch: int, context: int) -> list[int]:
    """First steps of the static batches that start within 1..context."""
    starts, j = [1], 0
    while True:
        nxt = starts[-1] + max(request_length(j * batch + s, context) for s in range(batch))
        if nxt > context:
            return starts
        starts.append(nxt)
        j += 1


def batch_state(model: dict, opts: dict) -> dict:
    """Per-slot tokens and KV bytes at step ``opts['tokens']`` (see ``slot_at``)."""
    step = opts["tokens"]
    slots, real, reserved, done = [], 0, 0, 0
    rnd = static_round(step, opts["batch"], opts["context"]) if opts["mode"] == "static" else None
    for s in range(opts["batch"]):
        st = slot_at(s, step, opts["batch"], opts["context"], opts["mode"], rnd)
        r, v = slot_bytes(model, opts, st["tokens"], st["idle"])
        slots.append(st)
        real, reserved, done = real + r, reserved + v, done + st["done"]
    return {"slots": slots, "kv_real": real, "kv_reserved": reserved, "requests_done": done}


def block_table(slots: list[dict], page: int) -> list[dict]:
    """Per slot: request id, tokens, pages held and the fill of the last page (paged mode)."""
    out = []
    for s, st in enumerate(slots):
        n = st["tokens"]
        blocks = math.ceil(n / page)
        out.append(
            {
                "slot": s,
                "request": st["request"],
                "tokens": n,
                "pages": blocks,
                "last_page_tokens": n - (blocks - 1) * page if blocks else 0,
                "wasted_slots": blocks * page - n,
            }
        )
    return out


def normalize(opts: dict | None) -> dict:
    """``DEFAULTS`` updated with ``opts``; ``tokens`` defaults to ``context``."""
    o = {**DEFAULTS, **(opts or {})}
    if o["tokens"] is None:
        o["tokens"] = o["context"]
    return o
