// Mirror of kvscope/memory/formulas.py and budget.py, function for function (read its docstring for the
// definitions and references). The dtype, engine and default tables come from the Python side through
// configure(data); tests evaluate shared vectors written by Python against this module in chromium.

export const GIB = 2 ** 30;
export const MIB = 2 ** 20;
const PHI_INV = 0.6180339887498949;
const MAX_TP = 1024;
let TABLES = null;

export function configure(data) {
  TABLES = {kv: data.kv_dtypes, w: data.weight_dtypes, engines: data.engines, defaults: data.defaults,
    deprecated: data.deprecated};
}

export function vecBytes(n, kvDtype) {
  const d = TABLES.kv[kvDtype];
  const scales = {tensor: 0, vector: d.scale_bytes,
    group: d.group ? Math.ceil(n / d.group) * d.scale_bytes : 0}[d.per];
  return Math.ceil(n * d.bits / 8) + scales;
}

export function layerBytesPerToken(model, kvDtype) {
  if (model.mla) return vecBytes(model.mla.rank + model.mla.rope, kvDtype);
  return 2 * model.kv_heads * vecBytes(model.head_dim, kvDtype);
}

export function kvBytesPerToken(model, kvDtype) {
  const lt = model.layer_types;
  return (lt.full + lt.sliding) * layerBytesPerToken(model, kvDtype);
}

export function seqKvBytes(model, kvDtype, n, freeSliding = true) {
  const lt = model.layer_types, w = model.sliding_window;
  const held = freeSliding && w ? Math.min(n, w) : n;
  return layerBytesPerToken(model, kvDtype) * (lt.full * n + lt.sliding * held);
}

export function defaultWeightDtype(model) {
  return model.weight_dtype || "bf16";
}

export function weightBytes(params, weightDtype) {
  return Math.ceil(params * TABLES.w[weightDtype].bits / 8);
}

export function kvShare(model, tp) {
  if (model.mla) return 1.0;
  const kv = model.kv_heads;
  return tp <= kv ? Math.ceil(kv / tp) / kv : 1 / kv;
}

export function pages(n, page) {
  return Math.ceil(n / page) * page;
}

export function requestLength(k, context) {
  const r = 0.1 + 0.9 * (((k + 1) * PHI_INV) % 1);
  return Math.max(1, Math.min(context, Math.ceil(context * r)));
}

function staticStarts(batch, context) {
  const starts = [1];
  for (let j = 0; ; j++) {
    let span = 0;
    for (let s = 0; s < batch; s++) span = Math.max(span, requestLength(j * batch + s, context));
    const next = starts[starts.length - 1] + span;
    if (next > context) return starts;
    starts.push(next);
  }
}

export function staticRound(step, batch, context) {
  const starts = staticStarts(batch, context);
  let j = 0;
  starts.forEach((first, i) => { if (first <= Math.max(step, 1)) j = i; });
  return [j, starts[j]];
}

export function slotAt(slot, step, batch, context, mode, rnd = null) {
  if (mode === "static") {
    const [j, start] = rnd || staticRound(step, batch, context);
    const k = j * batch + slot, n = requestLength(k, context), ran = step - start + 1;
    return {tokens: Math.max(0, Math.min(ran, n)), request: k, done: j + (ran >= n ? 1 : 0), idle: ran > n};
  }
  let k = slot, start = 1, done = 0;
  for (;;) {
    const n = requestLength(k, context);
    if (step < start + n) return {tokens: Math.max(0, step - start + 1), request: k, done, idle: false};
    start += n; k += batch; done += 1;
  }
}

const sumTo = (m) => m * (m + 1) / 2;
const sumWindow = (m, w) => (!w || m <= w) ? sumTo(m) : sumTo(w) + (m - w) * w;

function sumPages(m, w, page) {
  if (w && m > w) return sumPages(w, null, page) + (m - w) * pages(w, page);
  const q = Math.floor(m / page), r = m - q * page;
  return page * page * q * (q + 1) / 2 + r * (q + 1) * page;
}

export function slotBytes(model, opts, n, idle = false) {
  const lt = model.layer_types, lb = layerBytesPerToken(model, opts.kv_dtype);
  const w = opts.free_sliding ? model.sliding_window : null;
  const real = idle ? 0 : lb * (lt.full * n + lt.sliding * (w ? Math.min(n, w) : n));
  if (opts.mode === "paged") {
    const p = opts.page;
    return [real, lb * (lt.full * pages(n, p) + lt.sliding * pages(w ? Math.min(n, w) : n, p))];
  }
  const cap = opts.context;
  return [real, lb * (lt.full * cap + lt.sliding * (w ? Math.min(cap, w) : cap))];
}

export function runEfficiency(model, opts) {
  const lt = model.layer_types, lb = layerBytesPerToken(model, opts.kv_dtype);
  const w = opts.free_sliding ? model.sliding_window : null;
  const T = opts.context, B = opts.batch, mode = opts.mode;
  let real = 0, reserved = 0;
  const rounds = mode === "static" ? staticStarts(B, T) : [];
  for (let s = 0; s < B; s++) {
    let k = s, start = 1, j = 0;
    while (start <= T) {
      const n = requestLength(k, T);
      const m = Math.min(n, T - start + 1);
      real += lt.full * sumTo(m) + lt.sliding * sumWindow(m, w);
      if (mode === "paged") {
        reserved += lt.full * sumPages(m, null, opts.page) + lt.sliding * sumPages(m, w, opts.page);
      }
      if (mode === "static") { // held after it finished (reserved, not real) until the next batch
        j += 1;
        start = j < rounds.length ? rounds[j] : T + 1;
      } else {
        start += n;
      }
      k += B;
    }
    if (mode !== "paged") reserved += T * (lt.full * T + lt.sliding * (w ? Math.min(T, w) : T));
  }
  return reserved ? (lb * real) / (lb * reserved) : 0.0;
}

export function batchState(model, opts) {
  const slots = [];
  let real = 0, reserved = 0, done = 0;
  const rnd = opts.mode === "static" ? staticRound(opts.tokens, opts.batch, opts.context) : null;
  for (let s = 0; s < opts.batch; s++) {
    const st = slotAt(s, opts.tokens, opts.batch, opts.context, opts.mode, rnd);
    const [r, v] = slotBytes(model, opts, st.tokens, st.idle);
    slots.push(st);
    real += r; reserved += v; done += st.done;
  }
  return {slots, kv_real: real, kv_reserved: reserved, requests_done: done};
}

export function flashWorkspace(model, opts, tp) {
  const q = Math.ceil(model.q_heads / tp), n = opts.tokens, b = opts.batch;
  const score = opts.weight_dtype === "fp32" ? 4 : 2;
  const without = b * q * n * n * score, withFa = b * q * n * 4;
  return {without_flash: without, with_flash: withFa, saved: without - withFa, score_bytes: score};
}

export function usableBytes(gpu) {
  return gpu.visible_mib ? gpu.visible_mib * MIB : gpu.memory_gb * 1e9;
}

export function cudaTotalBytes(gpu) {
  return gpu.cuda_total_mib ? gpu.cuda_total_mib * MIB : usableBytes(gpu) - TABLES.engines.vllm.driver_reserve_mib * MIB;
}

export function perRankNeed(model, opts, tp, kvReserved) {
  return weightBytes(model.params_total, opts.weight_dtype) / tp + kvReserved * kvShare(model, tp);
}

export function fitBytes(gpu, opts) {
  return usableBytes(gpu) * opts.gpu_memory_utilization;
}

export function gpusRequired(model, gpu, opts, kvReserved) {
  const cap = fitBytes(gpu, opts);
  for (let tp = 1; tp <= MAX_TP; tp *= 2) {
    if (model.q_heads % tp === 0 && perRankNeed(model, opts, tp, kvReserved) <= cap) return tp;
  }
  return null;
}

function pagedBytes(model, opts, held) {
  const lt = model.layer_types, lb = layerBytesPerToken(model, opts.kv_dtype), p = opts.page;
  const w = opts.free_sliding ? model.sliding_window : null;
  return lb * (lt.full * pages(held, p) + lt.sliding * pages(w ? Math.min(held, w) : held, p));
}

export function workloadPeak(model, opts) {
  const T = opts.context, B = opts.batch;
  if (opts.mode !== "paged") return [B * slotBytes(model, opts, T)[1], 1];
  const segs = [], ends = new Set([T]);
  for (let s = 0; s < B; s++) {
    const starts = [], lens = [];
    for (let k = s, start = 1; start <= T; k += B) {
      const n = requestLength(k, T);
      starts.push(start); lens.push(n); ends.add(Math.min(start + n - 1, T));
      start += n;
    }
    segs.push([starts, lens]);
  }
  const steps = [...ends].sort((a, b) => a - b), total = new Float64Array(steps.length);
  for (const [starts, lens] of segs) {
    let i = 0;
    for (let j = 0; j < steps.length; j++) {
      while (i + 1 < starts.length && starts[i + 1] <= steps[j]) i++;
      total[j] += pagedBytes(model, opts, Math.min(steps[j] - starts[i] + 1, lens[i]));
    }
  }
  let best = 0;
  for (let j = 1; j < steps.length; j++) if (total[j] > total[best]) best = j;
  return [total[best], steps[best]];
}

export function capacity(model, gpu, o, weights) {
  const full = o.batch * slotBytes(model, o, o.context)[1];
  const longest = slotBytes(model, o, o.context)[1];
  const [workload, step] = workloadPeak(model, o);
  const peak = Math.max(workload, longest);
  const tp = o.tp, share = kvShare(model, tp);
  const basis = o.mode !== "paged" ? "every slot reserves the full context from its first step"
    : workload >= longest ? "workload peak (paged: the most pages held at once)"
      : "one request of the full context; the workload's own peak is lower";
  return {basis, peak_step: step, kv_full_bytes: full, kv_workload_peak_bytes: workload,
    kv_longest_request_bytes: longest, kv_peak_bytes: peak,
    total_full_bytes: weights + full, total_peak_bytes: weights + peak,
    per_gpu_peak_bytes: weights / tp + peak * share, per_gpu_full_bytes: weights / tp + full * share,
    occupancy_peak: (weights / tp + peak * share) / usableBytes(gpu),
    fit_fraction: o.gpu_memory_utilization, fit_bytes: fitBytes(gpu, o),
    gpus_required: gpusRequired(model, gpu, o, peak), gpus_required_full: gpusRequired(model, gpu, o, full)};
}

export function activationEstimate(model, opts) {
  if (opts.activation_gib !== null && opts.activation_gib !== undefined) return opts.activation_gib * GIB;
  const m = opts.max_num_batched_tokens;
  const mlp = model.hidden * 4 + model.intermediate * 3 / opts.tp;
  return m * mlp * 2 + Math.min(opts.max_num_seqs, m) * model.vocab * 4;
}

export function engineBudget(model, gpu, opts) {
  if (!opts.engine) return null;
  const eng = TABLES.engines[opts.engine], tp = opts.tp;
  const total = cudaTotalBytes(gpu), requested = total * opts.gpu_memory_utilization;
  const weights = weightBytes(model.params_total, opts.weight_dtype) / tp;
  const act = activationEstimate(model, opts);
  const nonTorch = eng.non_torch_gib * GIB, comm = tp > 1 ? eng.comm_gib * GIB : 0;
  const graphs = (opts.cuda_graph_gib === null || opts.cuda_graph_gib === undefined ? eng.cuda_graph_gib : opts.cuda_graph_gib) * GIB;
  const avail = requested - weights - act - nonTorch - comm - graphs;
  const perBlock = eng.block_size * kvBytesPerToken(model, opts.kv_dtype) * kvShare(model, tp);
  const blocks = avail > 0 ? Math.max(0, Math.floor(avail / perBlock)) : 0;
  const perReq = Math.ceil(opts.context / eng.block_size);
  return {engine: opts.engine, block_size: eng.block_size, cuda_total_bytes: total,
    cuda_total_measured: !!gpu.cuda_total_mib, gpu_memory_utilization: opts.gpu_memory_utilization,
    max_num_batched_tokens: opts.max_num_batched_tokens, max_num_seqs: opts.max_num_seqs,
    requested_bytes: requested, weights_bytes: weights, activation_bytes: act,
    activation_measured: opts.activation_gib !== null && opts.activation_gib !== undefined, non_torch_bytes: nonTorch,
    comm_bytes: comm, cuda_graph_bytes: graphs, available_kv_bytes: avail, kv_blocks: blocks,
    kv_tokens: blocks * eng.block_size, max_concurrency: blocks / perReq};
}

export function decodeBound(model, gpu, opts, kvReal) {
  const tp = opts.tp;
  const step = weightBytes(model.params_active, opts.weight_dtype) / tp + kvReal * kvShare(model, tp);
  const bw = gpu.bandwidth_gbps * 1e9;
  return {bytes_per_step: step, step_seconds: step / bw, tokens_per_s: opts.batch * bw / step,
    tokens_per_s_per_seq: bw / step};
}

export function normalize(opts) {
  const o = {...TABLES.defaults, ...(opts || {})};
  if (o.tokens === null || o.tokens === undefined) o.tokens = o.context;
  return o;
}

// capacity depends on everything but the step: cached for the animation
let capKey = null, capValue = null;
function cachedCapacity(model, gpu, o, weights) {
  const key = JSON.stringify([model.id, model.params_total, gpu.id, {...o, tokens: 0}]);
  if (key !== capKey) { capKey = key; capValue = capacity(model, gpu, o, weights); }
  return capValue;
}

export function compute(model, gpu, opts) {
  const o = normalize(opts);
  if (o.weight_dtype === null || o.weight_dtype === undefined) o.weight_dtype = defaultWeightDtype(model);
  const st = batchState(model, o), tp = o.tp;
  const weights = weightBytes(model.params_total, o.weight_dtype);
  const kvRank = st.kv_reserved * kvShare(model, tp);
  const residentRank = weights / tp + kvRank;
  const fa = flashWorkspace(model, o, tp);
  const cap = cachedCapacity(model, gpu, o, weights);
  const stepEff = st.kv_reserved ? st.kv_real / st.kv_reserved : 0.0;
  return {
    model: model.id, gpu: gpu.id, options: o,
    layer_bytes_per_token: layerBytesPerToken(model, o.kv_dtype),
    kv_bytes_per_token: kvBytesPerToken(model, o.kv_dtype),
    weights_bytes: weights, capacity: cap, gpus_required: cap.gpus_required,
    kv_real_bytes: st.kv_real, kv_reserved_bytes: st.kv_reserved,
    total_bytes: weights + st.kv_reserved,
    per_gpu: {tp, kv_share: kvShare(model, tp), weights_bytes: weights / tp, kv_bytes: kvRank,
      resident_bytes: residentRank, usable_bytes: usableBytes(gpu), occupancy: residentRank / usableBytes(gpu),
      peak_without_flash: cap.per_gpu_peak_bytes + fa.without_flash, peak_with_flash: cap.per_gpu_peak_bytes + fa.with_flash},
    step_efficiency: stepEff, efficiency: stepEff, // efficiency: deprecated alias (see deprecated)
    run_efficiency: runEfficiency(model, o),
    requests_done: st.requests_done, slots: st.slots, flash: fa,
    engine: engineBudget(model, gpu, o), decode: decodeBound(model, gpu, o, st.kv_real),
    paper_band: {used_before_paging: [0.204, 0.382], waste_with_paging_below: 0.04},
    deprecated: TABLES.deprecated,
  };
}
