// The page: state in the URL, controls, info panel, formula box, papers, factoids, tooltips, animation.
// Every text reaches the DOM through textContent or new Option(): no string is ever parsed as HTML.

import {configure, compute, defaultWeightDtype, layerBytesPerToken} from "./formulas.js";
import {fmtBytes, fmtParams} from "./canvas.js";
import {drawScene, particleCount} from "./draw.js";

const DATA = JSON.parse(document.getElementById("kv-data").textContent);
configure(DATA);
const MODELS = new Map(DATA.models.map((m) => [m.id, m]));
const GPUS = new Map(DATA.gpus.map((g) => [g.id, g]));
const LISTS = {
  batch: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
  context: [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 1048576],
  tp: [1, 2, 4, 8, 16, 32, 64], kv: Object.keys(DATA.kv_dtypes), w: Object.keys(DATA.weight_dtypes),
  model: [...MODELS.keys()], gpu: [...GPUS.keys()],
};
const DEFAULT = {model: "llama-3.1-8b", gpu: "h100-sxm", batch: 8, context: 8192, tokens: 8192, kv: "bf16",
  w: "bf16", tp: 1, cb: 1, paged: 1, flash: 1, engine: 0, util: 0.9, mnbt: 8192, mns: 256};
const $ = (id) => document.getElementById(id);
const shown = new Map();
// Write an element's text only when it changes (no relayout while playing otherwise).
function put(id, value) {
  if (shown.get(id) === value) return;
  shown.set(id, value);
  $(id).textContent = value;
}
// Replace an element's children with nodes built from [tag, className, text] triples.
function putNodes(id, key, parts) {
  if (shown.get(id) === key) return;
  shown.set(id, key);
  $(id).replaceChildren(...parts.map(([tag, cls, text]) => {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = text;
    return el;
  }));
}
const S = {...DEFAULT};
let lastUpdate = 0, shownStep = -1;
let result = null, playing = false, speed = 1, regions = [], dot = null, labels = [], lanes = [], stamp = 0;
let lastFrame = performance.now();
window.kvFrames = 0; // frame counter, read by the benchmark

const int = (x) => Math.round(x).toLocaleString("en-US");
const pct = (x) => `${(100 * x).toLocaleString("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1})} %`;
const clampInt = (raw, lo, hi) => {
  const n = Number(raw);
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, Math.round(n))) : null;
};

// URL parameters, validated and clamped as the CLI validates them; unknown names and values are ignored.
function readURL() {
  const q = location.search ? new URLSearchParams(location.search) : new URLSearchParams(DATA.initial || {});
  const lim = DATA.limits, eng = DATA.engine_limits;
  const ints = {batch: [1, lim.batch], context: [1, lim.context], tp: [1, lim.tp],
    mnbt: eng.max_num_batched_tokens, mns: eng.max_num_seqs};
  for (const [key, raw] of q) {
    if (["model", "gpu", "kv", "w"].includes(key)) { if (LISTS[key].includes(raw)) S[key] = raw; }
    else if (["cb", "paged", "flash", "engine"].includes(key)) S[key] = raw === "1" ? 1 : 0;
    else if (key in ints && clampInt(raw, ...ints[key]) !== null) S[key] = clampInt(raw, ...ints[key]);
    else if (key === "util" && Number.isFinite(Number(raw))) {
      S.util = Math.min(eng.gpu_memory_utilization[1], Math.max(eng.gpu_memory_utilization[0], Number(raw)));
    }
  }
  if (!(q.has("w") && LISTS.w.includes(q.get("w")))) S.w = shippedDtype(S.model);
  if (!LISTS.tp.includes(S.tp)) LISTS.tp = [...new Set([...LISTS.tp, S.tp])].sort((a, b) => a - b);
  if (!LISTS.batch.includes(S.batch)) LISTS.batch = [...new Set([...LISTS.batch, S.batch])].sort((a, b) => a - b);
  if (!LISTS.context.includes(S.context)) LISTS.context = [...new Set([...LISTS.context, S.context])].sort((a, b) => a - b);
  const t = clampInt(q.get("tokens"), 0, S.context);
  S.tokens = q.has("tokens") && t !== null ? t : S.context;
  if (S.paged) S.cb = 1;
}

function writeURL() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(S)) q.set(k, String(k === "tokens" ? Math.round(v) : v));
  history.replaceState(null, "", `?${q}`);
}

function options() {
  return {batch: S.batch, context: S.context, tokens: Math.round(S.tokens), kv_dtype: S.kv, weight_dtype: S.w,
    mode: S.paged ? "paged" : S.cb ? "cb" : "static", flash: !!S.flash, tp: S.tp, page: 16,
    free_sliding: true, engine: S.engine ? "vllm" : null, activation_gib: null, cuda_graph_gib: null,
    gpu_memory_utilization: S.util, max_num_batched_tokens: S.mnbt, max_num_seqs: S.mns};
}

function fillSelect(id, values, label) {
  $(id).replaceChildren(...values.map((v) => new Option(label(v), String(v))));
}

function tokensLabel(n) {
  return n >= 1048576 && n % 1048576 === 0 ? `${n / 1048576}M` : n >= 1024 && n % 1024 === 0 ? `${n / 1024}K` : int(n);
}

function setupControls() {
  fillSelect("batch", LISTS.batch, int);
  fillSelect("context", LISTS.context, tokensLabel);
  fillSelect("tp", LISTS.tp, String);
  fillSelect("kv", LISTS.kv, (k) => DATA.kv_dtypes[k].label);
  fillSelect("w", LISTS.w, (k) => DATA.weight_dtypes[k].label);
  fillSelect("model", LISTS.model, (k) => MODELS.get(k).name);
  fillSelect("gpu", LISTS.gpu, (k) => GPUS.get(k).name);
  for (const id of ["batch", "context", "tp"]) $(id).addEventListener("change", (e) => set(id, Number(e.target.value)));
  for (const id of ["kv", "w", "model", "gpu"]) $(id).addEventListener("change", (e) => set(id, e.target.value));
  $("tokens").addEventListener("input", (e) => set("tokens", Number(e.target.value)));
  $("speed").addEventListener("change", (e) => { speed = Number(e.target.value); });
  $("play").addEventListener("click", () => setPlaying(!playing));
  for (const id of ["cb", "paged", "flash", "engine"]) $(id).addEventListener("click", () => toggle(id));
}

function toggle(id) {
  S[id] = S[id] ? 0 : 1;
  if (id === "paged" && S.paged) S.cb = 1;   // paging runs on continuous batching (vLLM)
  if (id === "cb" && !S.cb) S.paged = 0;
  update();
}

const shippedDtype = (id) => defaultWeightDtype(MODELS.get(id)); // DeepSeek-V3: fp8, else bf16

function set(key, value) {
  S[key] = value;
  if (key === "context") S.tokens = value;
  if (key === "model") S.w = shippedDtype(value);
  update();
}

function setPlaying(on) {
  playing = on;
  $("play").textContent = on ? "Pause" : "Play";
  $("play").setAttribute("aria-pressed", String(on));
  if (on && S.tokens >= S.context) S.tokens = 0;
  if (!on) { S.tokens = Math.round(S.tokens); update(); }
}

function syncControls() {
  const setValue = (el, v) => { if (el.value !== v) el.value = v; };
  for (const id of ["batch", "context", "tp", "kv", "w", "model", "gpu"]) setValue($(id), String(S[id]));
  for (const id of ["cb", "paged", "flash", "engine"]) {
    if ($(id).getAttribute("aria-pressed") !== String(!!S[id])) $(id).setAttribute("aria-pressed", String(!!S[id]));
  }
  const slider = $("tokens");
  if (slider.max !== String(S.context)) slider.max = String(S.context);
  setValue(slider, String(Math.round(S.tokens)));
}

function update() {
  const model = MODELS.get(S.model), gpu = GPUS.get(S.gpu);
  result = compute(model, gpu, options());
  stamp += 1;
  syncControls();
  renderInfo(model, gpu, result);
  renderFormula(model, gpu, result);
  renderPapers();
  refreshFactoid();
  if (!playing) writeURL();
}

function effClass(x) { return x > 0.8 ? "good" : x >= 0.5 ? "mid" : "bad"; }

function renderInfo(model, gpu, r) {
  const o = r.options, pg = r.per_gpu, cap = r.capacity;
  put("v-model", `${model.name} · ${fmtParams(model.params_total)} params`);
  const warn = model.native_context && o.context > model.native_context ? ` (above native ${int(model.native_context)})` : "";
  put("v-context", `${int(o.tokens)} / ${int(o.context)} tokens${warn}`);
  put("v-unit", {static: `${int(o.context)} tokens per slot`, cb: `${int(o.context)} tokens per request`,
    paged: `${o.page}-token pages`}[o.mode] + (S.flash ? " + SRAM tiles" : ""));
  put("k-full", `KV for ${int(o.batch)} × ${int(o.context)}`);
  put("v-full", fmtBytes(cap.kv_full_bytes));
  put("v-kvpeak", cap.kv_peak_bytes > cap.kv_workload_peak_bytes ? `${fmtBytes(cap.kv_peak_bytes)}: one full-context request`
    : `${fmtBytes(cap.kv_peak_bytes)} at step ${int(cap.peak_step)}`);
  put("v-basis", `Capacity basis: ${cap.basis}. The rows above are at the peak; the drawing and the gauge show step ${int(o.tokens)}: ${fmtBytes(r.kv_reserved_bytes)} reserved, ${fmtBytes(r.kv_real_bytes)} hold tokens.`);
  put("v-total", `${fmtBytes(cap.total_peak_bytes)} at the peak`);
  const saved = pg.peak_without_flash - pg.peak_with_flash;
  putNodes("v-peak", `${S.flash}|${pg.peak_with_flash}|${pg.peak_without_flash}`, S.flash
    ? [["span", "", fmtBytes(pg.peak_with_flash)], ["s", "", fmtBytes(pg.peak_without_flash)],
      ["span", "save", `−${fmtBytes(saved)} (${(100 * saved / pg.peak_without_flash).toFixed(0)} %) with Flash`]]
    : [["span", "", fmtBytes(pg.peak_without_flash)], ["span", "save", `Flash would save ${fmtBytes(saved)}`]]);
  put("v-weights", `${fmtBytes(r.weights_bytes)} (${DATA.weight_dtypes[o.weight_dtype].label})`);
  put("v-kv", `${int(r.kv_bytes_per_token)} B/token`);
  const full = cap.gpus_required_full ? `${cap.gpus_required_full}` : "none with TP alone";
  const fit = `${Math.round(100 * cap.fit_fraction)} %`;
  put("v-gpus", cap.gpus_required ? `${cap.gpus_required}${cap.gpus_required > 1 ? " (tensor parallel)" : ""} at the peak, ≤ ${fit} of each · every slot full: ${full}` : `none: no power-of-two TP fits the peak in ${fit} of each GPU`);
  putNodes("v-eff", `${r.run_efficiency}|${r.step_efficiency}`, [["span", effClass(r.run_efficiency), pct(r.run_efficiency)],
    ["span", "", ` over the run · ${pct(r.step_efficiency)} at step ${int(o.tokens)}`], ["span", "band", "paper: 20.4–38.2 % before paging, > 96 % paged"]]);
  putNodes("v-occ", `${cap.occupancy_peak}|${o.tp}`, [["span", cap.occupancy_peak > 1 ? "bad" : "", pct(cap.occupancy_peak)],
    ["span", "", ` of ${fmtBytes(pg.usable_bytes)} at the peak (tp ${o.tp})`]]);
  put("v-done", int(r.requests_done));
  renderEngine(r.engine, o);
}

function renderEngine(e, o) {
  $("v-engine").hidden = !e;
  if (!e) return;
  const rows = [["CUDA total × util", `${fmtBytes(e.cuda_total_bytes)}${e.cuda_total_measured ? "" : " (est.)"} × ${e.gpu_memory_utilization}`],
    ["− weights", fmtBytes(e.weights_bytes)], ["− activation (est.)", `${fmtBytes(e.activation_bytes)} @ ${int(e.max_num_batched_tokens)} tok`],
    ["− non-torch, comm, graphs", fmtBytes(e.non_torch_bytes + e.comm_bytes + e.cuda_graph_bytes)],
    ["vLLM available KV", e.available_kv_bytes > 0 ? fmtBytes(e.available_kv_bytes) : `none: does not fit (short by ${fmtBytes(-e.available_kv_bytes)})`],
    ["KV cache size", `${int(e.kv_tokens)} tokens`],
    ["max concurrency", `${e.max_concurrency.toFixed(2)}× @ ${int(o.context)}${e.max_concurrency < 1 ? " (< 1: vLLM refuses to start)" : ""}`]];
  const key = JSON.stringify(rows);
  if (shown.get("v-engine") === key) return;
  shown.set("v-engine", key);
  $("v-engine").replaceChildren(...rows.map(([k, v]) => {
    const div = document.createElement("div"), a = document.createElement("span"), b = document.createElement("span");
    a.textContent = k; b.textContent = v; div.append(a, b);
    return div;
  }));
}

// The formula box: per-token bytes, then the reservation rule of the mode, then Flash and the bound.
function renderFormula(model, gpu, r) {
  const o = r.options, b = DATA.kv_dtypes[o.kv_dtype], lt = model.layer_types;
  const layers = lt.full + lt.sliding, lb = layerBytesPerToken(model, o.kv_dtype);
  const per = model.mla
    ? `KV/token = layers · (rank + rope) · bytes\n         = ${layers} · (${model.mla.rank} + ${model.mla.rope}) · ${b.bits / 8}`
    : `KV/token = 2 · layers · kv_heads · head_dim · bytes\n         = 2 · ${layers} · ${model.kv_heads} · ${model.head_dim} · ${b.bits / 8}`;
  const scale = b.per === "tensor" ? "" : " (+ scales)";
  const slide = lt.sliding ? `\n${lt.sliding} sliding layers hold min(n, ${int(model.sliding_window)})` : "";
  const B = int(o.batch), T = int(o.context), cap = r.capacity;
  const mode = {
    static: `static: every slot reserves T until the batch ends\nKV = B · T · KV/token = ${B} · ${T} · ${int(layers * lb)} B = ${fmtBytes(cap.kv_full_bytes)}\nfinished-but-held tokens count as waste`,
    cb: `CB: a finished request frees its slot at once;\neach request still reserves T\nKV = B · T · KV/token = ${B} · ${T} · ${int(layers * lb)} B = ${fmtBytes(cap.kv_full_bytes)}`,
    paged: `paged: a request of n tokens holds ⌈n/${o.page}⌉·${o.page} slots\nKV = Σ ⌈nᵢ/${o.page}⌉·${o.page} · KV/token, peak ${fmtBytes(cap.kv_peak_bytes)}\n(every slot full: ${fmtBytes(cap.kv_full_bytes)})`,
  }[o.mode];
  const fa = r.flash, H = Math.ceil(model.q_heads / o.tp);
  const flash = S.flash
    ? `Flash: scores stay in SRAM tiles; HBM gets B·H·N·4 = ${fmtBytes(fa.with_flash)}\n(saved ${fmtBytes(fa.saved)} of B·H·N²·${fa.score_bytes})`
    : `no Flash: scores B·H·N²·${fa.score_bytes} = ${B}·${H}·${int(o.tokens)}²·${fa.score_bytes} = ${fmtBytes(fa.without_flash)}`;
  put("v-formula", `${per}${scale}\n         = ${int(layers * lb)} B${slide}
${mode}
η = real / reserved = ${pct(r.run_efficiency)} over the run
${flash}
tok/s ≤ BW / bytes per step = ${int(gpu.bandwidth_gbps)} GB/s / ${(r.decode.bytes_per_step / 1e9).toFixed(2)} GB × ${B} = ${int(r.decode.tokens_per_s)}`);
}

const PAPERS = [
  ["cb", "Orca: continuous batching (Yu et al., OSDI'22)", "https://www.usenix.org/conference/osdi22/presentation/yu"],
  ["paged", "vLLM PagedAttention (Kwon et al., SOSP'23)", "https://arxiv.org/abs/2309.06180"],
  ["flash", "FlashAttention (Dao et al., 2022)", "https://arxiv.org/abs/2205.14135"],
  ["flash", "FlashAttention-2 (Dao, 2023)", "https://arxiv.org/abs/2307.08691"],
];

function renderPapers() {
  const hide = !(S.cb || S.paged || S.flash);
  if ($("papers").hidden !== hide) $("papers").hidden = hide;
  const list = PAPERS.filter(([k]) => S[k]);
  const key = list.map(([, t]) => t).join("|");
  if (shown.get("v-papers") === key) return;
  shown.set("v-papers", key);
  $("v-papers").replaceChildren(...list.map(([, t, u]) => {
    const li = document.createElement("li"), a = document.createElement("a");
    a.href = u; a.target = "_blank"; a.rel = "noopener noreferrer"; a.textContent = t;
    li.append(a);
    return li;
  }));
}

let factIndex = 0;
function factoids() {
  const m = MODELS.get(S.model), g = GPUS.get(S.gpu), r = result, cap = r.capacity;
  const f = [`Decode is memory-bound: at most ${int(r.decode.tokens_per_s)} tokens/s for the batch (${r.decode.tokens_per_s_per_seq.toFixed(1)} per sequence) = ${int(g.bandwidth_gbps)} GB/s ÷ bytes read per step.`,
    `One token adds ${int(r.kv_bytes_per_token)} B of KV; ${int(S.batch)} × ${int(S.context)} tokens hold ${fmtBytes(cap.kv_full_bytes)}.`,
    `${g.name} is sold as ${g.memory_gb} GB; it exposes ${fmtBytes(r.per_gpu.usable_bytes)}${g.visible_mib ? ` (${int(g.visible_mib)} MiB in nvidia-smi)` : " (marketed value, not verified)"}.`];
  if (!m.mla && m.kv_heads < m.q_heads) f.push(`GQA: ${m.q_heads} query heads share ${m.kv_heads} kv_heads, a ${m.q_heads / m.kv_heads}× smaller KV cache than multi-head attention.`);
  if (m.params_active < m.params_total) f.push(`MoE: all ${fmtParams(m.params_total)} parameters stay resident; only ${fmtParams(m.params_active)} are read per token.`);
  return f;
}

// The factoid shown now, recomputed from the current numbers on every change.
function refreshFactoid() {
  const list = factoids();
  put("v-factoid", list[factIndex % list.length]);
}

function setupTooltips(canvas) {
  const tip = $("tip");
  const show = (text, x, y) => {
    tip.textContent = text; tip.hidden = false;
    tip.style.left = `${Math.min(x + 14, innerWidth - 330)}px`; tip.style.top = `${Math.min(y + 14, innerHeight - 120)}px`;
  };
  document.addEventListener("mousemove", (e) => {
    const el = e.target.closest ? e.target.closest("[data-tip]") : null;
    if (e.target === canvas) {
      const rect = canvas.getBoundingClientRect(), x = e.clientX - rect.left, y = e.clientY - rect.top;
      const hit = regions.filter((r) => x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h).pop();
      if (hit) return show(hit.tip, e.clientX, e.clientY);
    } else if (el) return show(el.dataset.tip, e.clientX, e.clientY);
    tip.hidden = true;
  });
}

function paint(now, full = false) {
  const canvas = $("view"), dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    full = true;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ({regions, dot, labels, lanes} = drawScene(ctx, w, h, {model: MODELS.get(S.model), gpu: GPUS.get(S.gpu), r: result,
    opts: result.options, live: playing ? S.tokens : result.options.tokens, stamp, flags: {cb: !!S.cb, paged: !!S.paged, flash: !!S.flash}}, now, full));
  return canvas;
}

function frame(now) {
  const dt = Math.min(0.1, (now - lastFrame) / 1000);
  lastFrame = now;
  if (playing) {
    S.tokens = Math.min(S.context, S.tokens + dt * speed * S.context / 20);
    // numbers and memory cells follow the step at 8 Hz (a full repaint each); the dot, particles, tiles
    // and banner animate every frame
    if (Math.round(S.tokens) !== shownStep && now - lastUpdate >= 125) { update(); lastUpdate = now; shownStep = Math.round(S.tokens); }
    if (S.tokens >= S.context) setPlaying(false);
  }
  paint(now);
  window.kvFrames += 1;
  requestAnimationFrame(frame);
}

readURL();
setupControls();
update();
setInterval(() => { factIndex += 1; refreshFactoid(); }, 6000);
setupTooltips($("view"));
// For tests: draw at a fixed animation time and return the pixels as a data URL; the dot's position.
window.kvscope = {state: S, result: () => result, setPlaying, set, snapshot: (t) => paint(t, true).toDataURL(),
  dot: () => dot, regions: () => regions, labels: () => labels, lanes: () => lanes, paint,
  particles: () => particleCount({r: result})};
requestAnimationFrame(frame);
