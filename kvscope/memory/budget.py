"""Capacity, GPUs required, the vLLM start-up budget, the decode bound and ``compute`` (every number of
one state). Definitions and references are in ``formulas``' docstring; ``web/formulas.js`` mirrors this
module too, function for function.
"""

from __future__ import annotations

import math

from kvscope.memory.formulas import (
    ENGINES,
    GIB,
    MAX_TP,
    MIB,
    PAPER_BAND,
    batch_state,
    default_weight_dtype,
    kv_bytes_per_token,
    kv_share,
    layer_bytes_per_token,
    normalize,
    request_length,
    run_efficiency,
    slot_bytes,
    weight_bytes,
)

NUMPY_ABOVE = 100_000  # slot x step evaluations above which the paged peak uses numpy
# keys kept one release for readers of older JSON: key -> what to read instead
DEPRECATED = {"efficiency": "step_efficiency (the drawn step's value; run_efficiency is over the whole run)"}


def flash_workspace(model: dict, opts: dict, tp: int) -> dict:
    """Transient per-layer prefill workspace on one rank for ``batch`` prompts of ``tokens`` tokens."""
    q = math.ceil(model["q_heads"] / tp)
    n, b = opts["tokens"], opts["batch"]
    score = 4 if opts["weight_dtype"] == "fp32" else 2
    without = b * q * n * n * score
    with_fa = b * q * n * 4
    return {"without_flash": without, "with_flash": with_fa, "saved": without - with_fa, "score_bytes": score}


def usable_bytes(gpu: dict) -> int:
    """Memory one GPU exposes: nvidia-smi MiB when verified, else the marketed decimal GB."""
    mib = gpu.get("visible_mib")
    return mib * MIB if mib else gpu["memory_gb"] * 10**9


def cuda_total_bytes(gpu: dict) -> int:
    """What CUDA reports as the device total (torch.cuda.mem_get_info), the base of vLLM's budget: the
    logged value where the catalog has one, else the nvidia-smi total less the driver reserve."""
    mib = gpu.get("cuda_total_mib")
    return mib * MIB if mib else usable_bytes(gpu) - ENGINES["vllm"]["driver_reserve_mib"] * MIB


def per_rank_need(model: dict, opts: dict, tp: int, kv_reserved: int) -> float:
    """Resident bytes on one of ``tp`` ranks: its weight shard plus its KV share."""
    return weight_bytes(model["params_total"], opts["weight_dtype"]) / tp + kv_reserved * kv_share(model, tp)


def fit_bytes(gpu: dict, opts: dict) -> float:
    """What weights + KV may fill on one GPU: ``gpu_memory_utilization`` of the memory it exposes (the
    rest is left for activations, the Flash workspace and the CUDA context, as vLLM leaves it)."""
    return usable_bytes(gpu) * opts["gpu_memory_utilization"]


def gpus_required(model: dict, gpu: dict, opts: dict, kv_reserved: int) -> int | None:
    """Smallest power-of-two tp dividing q_heads whose per-rank need fits ``fit_bytes`` of one GPU
    (None if > MAX_TP)."""
    cap, tp = fit_bytes(gpu, opts), 1
    while tp <= MAX_TP:
        if model["q_heads"] % tp == 0 and per_rank_need(model, opts, tp, kv_reserved) <= cap:
            return tp
        tp *= 2
    return None


def _paged_bytes(model: dict, opts: dict, held):
    """Reserved KV bytes of slots holding ``held`` tokens in pages (an int or a numpy int64 array)."""
    lt, lb, p = model["layer_types"], layer_bytes_per_token(model, opts["kv_dtype"]), opts["page"]
    w = model.get("sliding_window") if opts["free_sliding"] else None
    if not w:
        windowed = held
    elif isinstance(held, int):
        windowed = min(held, w)
    else:
        windowed = held.clip(max=w)  # a numpy array
    return lb * (lt["full"] * (-(-held // p) * p) + lt["sliding"] * (-(-windowed // p) * p))


def workload_peak(model: dict, opts: dict) -> tuple[int, int]:
    """(bytes, step): the most KV the workload reserves at any step 1..context. Static and cb reserve the
    full context per slot from the first step; paged peaks at the last step of some request (a slot's
    pages only drop when its request ends), so only those steps (and the last) are evaluated."""
    T, B = opts["context"], opts["batch"]
    if opts["mode"] != "paged":
        return B * slot_bytes(model, opts, T)[1], 1
    segs, ends = [], {T}
    for s in range(B):
        k, start, starts, lens = s, 1, [], []
        while start <= T:
            n = request_length(k, T)
            starts.append(start)
            lens.append(n)
            ends.add(min(start + n - 1, T))
            start, k = start + n, k + B
        segs.append((starts, lens))
    steps = sorted(ends)
    if B * len(steps) > NUMPY_ABOVE:  # large runs: vectorised (numpy is imported only then)
        return _peak_numpy(model, opts, segs, steps)
    total = [0] * len(steps)
    for starts, lens in segs:
        i = 0
        for j, t in enumerate(steps):  # steps ascend: walk this slot's requests alongside
            while i + 1 < len(starts) and starts[i + 1] <= t:
                i += 1
            total[j] += _paged_bytes(model, opts, min(t - starts[i] + 1, lens[i]))
    best = max(range(len(steps)), key=lambda j: (total[j], -j))  # the first step reaching the maximum
    return total[best], steps[best]


def _peak_numpy(model: dict, opts: dict, segs: list, steps: list) -> tuple[int, int]:
    import numpy as np

    at = np.array(steps, dtype=np.int64)
    total = np.zeros(len(steps), dtype=np.int64)
    for starts, lens in segs:
        a, n = np.array(starts, dtype=np.int64), np.array(lens, dtype=np.int64)
        i = np.searchsorted(a, at, side="right") - 1  # the request running at each step
        total += _paged_bytes(model, opts, np.minimum(at - a[i] + 1, n[i]))
    best = int(np.argmax(total))
    return int(total[best]), int(at[best])


def capacity(model: dict, gpu: dict, o: dict, weights: int) -> dict:
    """Memory the run needs: KV for every slot full (batch x context) and at the workload's peak, with the
    GPUs each needs (tensor parallel); ``basis`` says which one ``gpus_required`` rests on (the peak).
    The peak is never below one request of the full context (``kv_longest_request_bytes``): the longest
    request the workload allows must fit, even when the synthetic workload happens not to send one."""
    full = o["batch"] * slot_bytes(model, o, o["context"])[1]
    longest = slot_bytes(model, o, o["context"])[1]
    workload, step = workload_peak(model, o)
    peak = max(workload, longest)
    tp, share = o["tp"], kv_share(model, o["tp"])
    basis = (
        "every slot reserves the full context from its first step"
        if o["mode"] != "paged"
        else "workload peak (paged: the most pages held at once)"
        if workload >= longest
        else "one request of the full context; the workload's own peak is lower"
    )
    return {
        "basis": basis,
        "peak_step": step,
        "kv_full_bytes": full,
        "kv_workload_peak_bytes": workload,
        "kv_longest_request_bytes": longest,
        "kv_peak_bytes": peak,
        "total_full_bytes": weights + full,
        "total_peak_bytes": weights + peak,
        "per_gpu_peak_bytes": weights / tp + peak * share,
        "per_gpu_full_bytes": weights / tp + full * share,
        "occupancy_peak": (weights / tp + peak * share) / usable_bytes(gpu),
        "fit_fraction": o["gpu_memory_utilization"],
        "fit_bytes": fit_bytes(gpu, o),
        "gpus_required": gpus_required(model, gpu, o, peak),
        "gpus_required_full": gpus_required(model, gpu, o, full),
    }


def activation_estimate(model: dict, opts: dict) -> float:
    """vLLM's profiled activation peak (bytes), an estimate: one forward of ``max_num_batched_tokens``
    tokens, M*(4*hidden + 3*intermediate/tp)*2 B, plus fp32 logits of min(max_num_seqs, M) rows. vLLM
    measures this instead; ``activation_gib`` (the logged peak) overrides it."""
    if opts.get("activation_gib") is not None:
        return opts["activation_gib"] * GIB
    m = opts["max_num_batched_tokens"]
    mlp = model["hidden"] * 4 + model["intermediate"] * 3 / opts["tp"]
    return m * mlp * 2 + min(opts["max_num_seqs"], m) * model["vocab"] * 4


def engine_budget(model: dict, gpu: dict, opts: dict) -> dict | None:
    """What vLLM logs at start-up on each of ``tp`` GPUs (None without ``opts['engine']``).

    available = CUDA total x gpu_memory_utilization - weights / tp - activation peak - non-torch memory
    - communication buffers (tp > 1) - CUDA graphs; ``block_size``-token blocks over every attention
    layer (sliding layers at full size, as with the hybrid allocator off); max concurrency = blocks /
    ceil(context / block_size). Checked against logged start-ups in tests/unit/test_memory_vllm.py.
    """
    if not opts.get("engine"):
        return None
    eng, tp = ENGINES[opts["engine"]], opts["tp"]
    total = cuda_total_bytes(gpu)
    requested = total * opts["gpu_memory_utilization"]
    weights = weight_bytes(model["params_total"], opts["weight_dtype"]) / tp
    act = activation_estimate(model, opts)
    non_torch = eng["non_torch_gib"] * GIB
    comm = eng["comm_gib"] * GIB if tp > 1 else 0
    graphs = (eng["cuda_graph_gib"] if opts.get("cuda_graph_gib") is None else opts["cuda_graph_gib"]) * GIB
    avail = requested - weights - act - non_torch - comm - graphs
    per_block = eng["block_size"] * kv_bytes_per_token(model, opts["kv_dtype"]) * kv_share(model, tp)
    blocks = max(0, math.floor(avail / per_block)) if avail > 0 else 0
    per_req = math.ceil(opts["context"] / eng["block_size"])
    return {
        "engine": opts["engine"],
        "block_size": eng["block_size"],
        "cuda_total_bytes": total,
        "cuda_total_measured": bool(gpu.get("cuda_total_mib")),
        "gpu_memory_utilization": opts["gpu_memory_utilization"],
        "max_num_batched_tokens": opts["max_num_batched_tokens"],
        "max_num_seqs": opts["max_num_seqs"],
        "requested_bytes": requested,
        "weights_bytes": weights,
        "activation_bytes": act,
        "activation_measured": opts.get("activation_gib") is not None,
        "non_torch_bytes": non_torch,
        "comm_bytes": comm,
        "cuda_graph_bytes": graphs,
        "available_kv_bytes": avail,
        "kv_blocks": blocks,
        "kv_tokens": blocks * eng["block_size"],
        "max_concurrency": blocks / per_req,
    }


def decode_bound(model: dict, gpu: dict, opts: dict, kv_real: int) -> dict:
    """Upper bound on decode tokens/s from bandwidth: one step reads the active weights and live KV."""
    tp = opts["tp"]
    step = weight_bytes(model["params_active"], opts["weight_dtype"]) / tp + kv_real * kv_share(model, tp)
    bw = gpu["bandwidth_gbps"] * 1e9
    return {
        "bytes_per_step": step,
        "step_seconds": step / bw,
        "tokens_per_s": opts["batch"] * bw / step,
        "tokens_per_s_per_seq": bw / step,
    }


def compute(model: dict, gpu: dict, opts: dict | None = None) -> dict:
    """Every number the page and ``kvscope memory`` show: ``capacity`` (what to provision) and the state
    at step ``tokens`` (what the animation draws)."""
    o = normalize(opts)
    if o["weight_dtype"] is None:
        o["weight_dtype"] = default_weight_dtype(model)
    st = batch_state(model, o)
    tp = o["tp"]
    weights = weight_bytes(model["params_total"], o["weight_dtype"])
    kv_rank = st["kv_reserved"] * kv_share(model, tp)
    resident_rank = weights / tp + kv_rank
    fa = flash_workspace(model, o, tp)
    cap = capacity(model, gpu, o, weights)
    step_eff = st["kv_real"] / st["kv_reserved"] if st["kv_reserved"] else 0.0
    return {
        "model": model["id"],
        "gpu": gpu["id"],
        "options": o,
        "layer_bytes_per_token": layer_bytes_per_token(model, o["kv_dtype"]),
        "kv_bytes_per_token": kv_bytes_per_token(model, o["kv_dtype"]),
        "weights_bytes": weights,
        "capacity": cap,
        "gpus_required": cap["gpus_required"],
        "kv_real_bytes": st["kv_real"],
        "kv_reserved_bytes": st["kv_reserved"],
        "total_bytes": weights + st["kv_reserved"],
        "per_gpu": {
            "tp": tp,
            "kv_share": kv_share(model, tp),
            "weights_bytes": weights / tp,
            "kv_bytes": kv_rank,
            "resident_bytes": resident_rank,
            "usable_bytes": usable_bytes(gpu),
            "occupancy": resident_rank / usable_bytes(gpu),
            "peak_without_flash": cap["per_gpu_peak_bytes"] + fa["without_flash"],
            "peak_with_flash": cap["per_gpu_peak_bytes"] + fa["with_flash"],
        },
        "step_efficiency": step_eff,
        "efficiency": step_eff,  # deprecated alias of step_efficiency (see "deprecated")
        "run_efficiency": run_efficiency(model, o),
        "requests_done": st["requests_done"],
        "slots": st["slots"],
        "flash": fa,
        "engine": engine_budget(model, gpu, o),
        "decode": decode_bound(model, gpu, o, st["kv_real"]),
        "paper_band": PAPER_BAND,
        "deprecated": DEPRECATED,
    }
