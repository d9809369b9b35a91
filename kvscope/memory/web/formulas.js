// Mirror of kvscope/memory/formulas.py, function for function (read its docstring for the
// definitions and references). The dtype, engine and default tables come from the Python side through
// configure(data); tests evaluate shared vectors written by Python against this module in chromium.

export const GIB = 2 ** 30;
export const MIB = 2 ** 20;
const PHI_INV = 0.6180339887498949;
const MAX_TP = 1024;
let TABLES = null;

export function configure(data) {
  TABLES = {kv: data.kv_dtypes, w: data.weight_dtypes, engines: data.engines, defaults: data.defaults};
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

export function slotAt(slot, step, batch, context, mode) {
  if (mode === "static") {
    const n = requestLength(slot, context);
    return {tokens: Math.min(step, n), request: slot, done: step >= n ? 1 : 0};
  }
  let k = slot, start = 1, done = 0;
  for (;;) {
    const n = requestLength(k, context);
    if (step < start + n) return {tokens: Math.max(0, step - start + 1), request: k, done};
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

export function slotBytes(model, opts, n) {
  const lt = model.layer_types, lb = layerBytesPerToken(model, opts.kv_dtype);
  const w = opts.free_sliding ? model.sliding_window : null;
  const real = lb * (lt.full * n + lt.sliding * (w ? Math.min(n, w) : n));
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
  for (let s = 0; s < B; s++) {
    let k = s, start = 1;
    while (start <= T) {
      const n = requestLength(k, T);
      const m = Math.min(n, T - start + 1);
      real += lt.full * sumTo(m) + lt.sliding * sumWindow(m, w);
      if (mode === "paged") {
        reserved += lt.full * sumPages(m, null, opts.page) + lt.sliding * sumPages(m, w, opts.page);
      }
      if (mode === "static") {
        real += (T - m) * (lt.full * m + lt.sliding * (w ? Math.min(m, w) : m));
        break;
      }
      start += n; k += B;
    }
    if (mode !== "paged") reserved += T * (lt.full * T + lt.sliding * (w ? Math.min(T, w) : T));
  }
  return reserved ? (lb * real) / (lb * reserved) : 0.0;
}

export function batchState(model, opts) {
  const slots = [];
  let real = 0, reserved = 0, done = 0;
  for (let s = 0; s < opts.batch; s++) {
    const st = slotAt(s, opts.tokens, opts.batch, opts.context, opts.mode);
    const [r, v] = slotBytes(model, opts, st.tokens);
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

export function perRankNeed(model, opts, tp, kvReserved) {
  return weightBytes(model.params_total, opts.weight_dtype) / tp + kvReserved * kvShare(model, tp);
}

export function gpusRequired(model, gpu, opts, kvReserved) {
  const cap = usableBytes(gpu);
  for (let tp = 1; tp <= MAX_TP; tp *= 2) {
    if (model.q_heads % tp === 0 && perRankNeed(model, opts, tp, kvReserved) <= cap) return tp;
  }
  return null;
}

export function activationEstimate(model, opts, eng) {
  if (opts.activation_gib !== null && opts.activation_gib !== undefined) return opts.activation_gib * GIB;
  const mlp = model.hidden * 4 + model.intermediate * 3 / opts.tp;
  return eng.max_num_batched_tokens * mlp * 2 + eng.max_num_seqs * model.vocab * 4 + eng.non_torch_gib * GIB;
}

export function engineBudget(model, gpu, opts) {
  if (!opts.engine) return null;
  const eng = TABLES.engines[opts.engine], tp = opts.tp;
  const requested = usableBytes(gpu) * eng.gpu_memory_utilization;
  const weights = weightBytes(model.params_total, opts.weight_dtype) / tp;
  const act = activationEstimate(model, opts, eng);
  const avail = requested - weights - act;
  const perBlock = eng.block_size * kvBytesPerToken(model, opts.kv_dtype) * kvShare(model, tp);
  const blocks = avail > 0 ? Math.max(0, Math.floor(avail / perBlock)) : 0;
  const perReq = Math.ceil(opts.context / eng.block_size);
  return {engine: opts.engine, ...eng, requested_bytes: requested, weights_bytes: weights,
    activation_bytes: act, available_kv_bytes: avail, kv_blocks: blocks,
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

export function compute(model, gpu, opts) {
  const o = normalize(opts);
  const st = batchState(model, o), tp = o.tp;
  const weights = weightBytes(model.params_total, o.weight_dtype);
  const kvRank = st.kv_reserved * kvShare(model, tp);
  const residentRank = weights / tp + kvRank;
  const fa = flashWorkspace(model, o, tp);
  return {
    model: model.id, gpu: gpu.id, options: o,
    layer_bytes_per_token: layerBytesPerToken(model, o.kv_dtype),
    kv_bytes_per_token: kvBytesPerToken(model, o.kv_dtype),
    weights_bytes: weights, kv_real_bytes: st.kv_real, kv_reserved_bytes: st.kv_reserved,
    total_bytes: weights + st.kv_reserved,
    per_gpu: {tp, kv_share: kvShare(model, tp), weights_bytes: weights / tp, kv_bytes: kvRank,
      resident_bytes: residentRank, usable_bytes: usableBytes(gpu), occupancy: residentRank / usableBytes(gpu),
      peak_without_flash: residentRank + fa.without_flash, peak_with_flash: residentRank + fa.with_flash},
    efficiency: st.kv_reserved ? st.kv_real / st.kv_reserved : 0.0,
    run_efficiency: runEfficiency(model, o),
    requests_done: st.requests_done, slots: st.slots,
    flash: fa, gpus_required: gpusRequired(model, gpu, o, st.kv_reserved),
    engine: engineBudget(model, gpu, o), decode: decodeBound(model, gpu, o, st.kv_real),
    paper_band: {used_before_paging: [0.204, 0.382], waste_with_paging_below: 0.04},
  };
}
